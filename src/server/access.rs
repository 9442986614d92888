//! What [`Context`] tells about who a connection is and what it may do: its peer, the
//! identity its token proved, the data the application attached, and the channel
//! permissions; and the token refresh that keeps it open past its first token's `exp`.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::{Identity, TokenError};
use crate::server::context::Context;

impl Context<'_> {
    /// The address of the peer.
    pub fn peer(&self) -> SocketAddr {
        *self.peer
    }

    /// Who this connection's token says it is; `None` when the server checks no tokens or the
    /// connection is anonymous (`Auth::required(false)`).
    pub fn identity(&self) -> Option<&Identity> {
        self.attached.as_ref()?.identity.as_deref()
    }

    /// The data attached to this connection ([`Accept::data`](crate::Accept::data) or
    /// [`Context::set_data`]), if it is a `T`.
    pub fn data<T: Any>(&self) -> Option<&T> {
        self.attached.as_ref()?.data.as_ref()?.downcast_ref()
    }

    /// The attached data, to change, if it is a `T`.
    pub fn data_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.attached.as_mut()?.data.as_mut()?.downcast_mut()
    }

    /// Attaches `data` to this connection, replacing what was attached.
    pub fn set_data<T: Any + Send>(&mut self, data: T) {
        self.attached.get_or_insert_default().data = Some(Box::new(data));
    }

    /// Whether the server checks tokens ([`ServerBuilder::auth`](crate::ServerBuilder::auth)),
    /// so an application can tell an anonymous connection from a server without auth.
    pub fn tokens_checked(&self) -> bool {
        self.services.auth.as_deref().is_some()
    }

    /// Whether this connection may subscribe to `channel`: its token's `subs` (or the
    /// server's default for tokens without), the anonymous default without a token, and
    /// always when the server checks no tokens.
    pub fn may_subscribe(&self, channel: &str) -> bool {
        match (self.identity(), self.services.auth.as_deref()) {
            (Some(identity), _) => identity.may_subscribe(channel),
            (None, Some(auth)) => auth.anonymous_may_subscribe(channel),
            (None, None) => true,
        }
    }

    /// Whether this connection may publish on `channel` (as [`Context::may_subscribe`], with
    /// `pubs`).
    pub fn may_publish(&self, channel: &str) -> bool {
        match (self.identity(), self.services.auth.as_deref()) {
            (Some(identity), _) => identity.may_publish(channel),
            (None, Some(auth)) => auth.anonymous_may_publish(channel),
            (None, None) => true,
        }
    }

    /// Replaces this connection's token with a fresh one for the same user (`sub`): its
    /// claims (name, permissions) apply from now on and the connection stays open until the
    /// new `exp`. A bad token changes nothing; an anonymous connection, or one on a server
    /// that checks no tokens, cannot take one ([`TokenError::Anonymous`]). Subscriptions made
    /// before stay; the fresh token's permissions apply to what the connection asks next.
    pub fn refresh_token(&mut self, token: &str) -> Result<&Identity, TokenError> {
        let auth = self.services.auth.as_deref().ok_or(TokenError::Anonymous)?;
        let current = self.identity().ok_or(TokenError::Anonymous)?;
        let fresh = auth.refresh(current, token)?;
        let left = crate::auth::time_left(&fresh, auth.leeway());
        let attached = self.attached.get_or_insert_default();
        attached.expires = left.map(|left| Instant::now() + left);
        Ok(attached.identity.insert(Arc::new(fresh)))
    }
}

//! What an application implements: [`Handler`], and how it accepts an upgrade: [`Accept`].
//! What it is handed, [`Context`](crate::Context), lives with the loop that builds it.

use std::any::Any;

use crate::protocol::close::CloseCode;
use crate::protocol::handshake::{HttpError, Request};
use crate::protocol::outbound::Message;
use crate::server::context::Context;

/// An application served on one path. One value serves every connection on its path, so
/// per-connection state is kept by [`ConnectionId`](crate::ConnectionId). All callbacks run on the event loop
/// thread: they must not block.
pub trait Handler {
    /// Decides on an upgrade request before it is accepted: `Ok` with how to accept it (a
    /// subprotocol the client offered, data for the connection), or an HTTP error to refuse
    /// it (403 for an origin it does not serve, 401 with `WWW-Authenticate` for missing
    /// credentials, ...). With [`ServerBuilder::auth`](crate::ServerBuilder::auth) the token
    /// was checked before this is called: [`Request::identity`] says who it is. The default
    /// accepts without a subprotocol or data.
    fn on_upgrade(&mut self, request: &Request) -> Result<Accept, HttpError> {
        let _ = request;
        Ok(Accept::new())
    }

    /// The connection is open.
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A whole message arrived.
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>);

    /// A message arrived over the connection's rate limit
    /// ([`Config::max_message_rate`](crate::Config::max_message_rate)); it is not handed to
    /// [`Handler::on_message`]. The default closes the connection 1008 `rate limit`; a route
    /// may answer with an error instead (the server still closes a connection that goes on
    /// for another burst).
    fn on_rate_limited(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let _ = message;
        ctx.close(CloseCode::POLICY_VIOLATION, "rate limit");
    }

    /// A connection that was backpressured has read enough of what it was sent to fall to its
    /// route's low watermark: sending to it is worthwhile again.
    fn on_drain(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// The connection left the open state: `code` is the peer's close code, the one the server
    /// sent, or 1006 when the connection dropped without a close. Sends to this connection are
    /// dropped from here on; messages to others still go out. Its topics are left for it, and
    /// the keys it claimed are released after this returns.
    fn on_close(&mut self, ctx: &mut Context<'_>, code: CloseCode, reason: &str) {
        let _ = (ctx, code, reason);
    }

    /// A timer this connection's callbacks set ([`Context::set_timer`]) is due; the
    /// connection is still open.
    fn on_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        let _ = (ctx, token);
    }

    /// Redis decided a claim this connection made ([`Context::claim`] answered
    /// [`Claim::Pending`](crate::Claim::Pending)): `granted` says whether `key` is its own now.
    /// Only with a cluster; not called if the connection closed meanwhile.
    fn on_claim(&mut self, ctx: &mut Context<'_>, key: &str, granted: bool) {
        let _ = (ctx, key, granted);
    }
}

/// How [`Handler::on_upgrade`] accepts a connection: the subprotocol to select, and data the
/// connection carries from then on ([`Context::data`](crate::Context::data) in every later
/// callback: the user it is, a session, anything the application keeps per connection).
///
/// ```
/// use wsloop::{Accept, HttpError, Request};
///
/// struct Session {
///     tenant: String,
/// }
///
/// fn on_upgrade(request: &Request) -> Result<Accept, HttpError> {
///     let tenant = request.query("tenant").ok_or(HttpError::new(400, "no tenant"))?;
///     Ok(Accept::new().data(Session { tenant: tenant.into_owned() }))
/// }
/// # let _ = on_upgrade;
/// ```
#[derive(Default)]
pub struct Accept {
    pub(crate) protocol: Option<String>,
    pub(crate) data: Option<Box<dyn Any + Send>>,
}

impl Accept {
    /// Accept without a subprotocol or data.
    pub fn new() -> Accept {
        Accept::default()
    }

    /// Select this subprotocol; it must be one the client offered (else the server answers
    /// 500: the handler is wrong, not the client).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Accept {
        self.protocol = Some(protocol.into());
        self
    }

    /// The connection carries `data` (read back with [`Context::data`](crate::Context::data)
    /// as the same type).
    pub fn data<T: Any + Send>(mut self, data: T) -> Accept {
        self.data = Some(Box::new(data));
        self
    }
}

impl std::fmt::Debug for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accept")
            .field("protocol", &self.protocol)
            .field("data", &self.data.is_some())
            .finish()
    }
}

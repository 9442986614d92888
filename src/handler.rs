//! What an application implements: [`Handler`]. What it is handed,
//! [`Context`](crate::Context), lives with the loop that builds it.

use crate::protocol::close::CloseCode;
use crate::protocol::handshake::{HttpError, Request};
use crate::protocol::outbound::Message;
use crate::server::context::Context;

/// An application served on one path. One value serves every connection on its path, so
/// per-connection state is kept by [`ConnectionId`](crate::ConnectionId). All callbacks run on the event loop
/// thread: they must not block.
pub trait Handler {
    /// Decides on an upgrade request before it is accepted: `Ok` with the subprotocol to select
    /// (one the client offered, or `None`), or an HTTP error to refuse it (for example 403 for
    /// a bad `Origin` or missing credentials). The default accepts without a subprotocol.
    fn on_upgrade(&mut self, request: &Request) -> Result<Option<String>, HttpError> {
        let _ = request;
        Ok(None)
    }

    /// The connection is open.
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A whole message arrived.
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>);

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

    /// Redis decided a claim this connection made ([`Context::claim`] answered
    /// [`Claim::Pending`](crate::Claim::Pending)): `granted` says whether `key` is its own now.
    /// Only with a cluster; not called if the connection closed meanwhile.
    fn on_claim(&mut self, ctx: &mut Context<'_>, key: &str, granted: bool) {
        let _ = (ctx, key, granted);
    }
}

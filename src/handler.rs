//! What an application implements ([`Handler`]) and the names it deals in. What it is handed,
//! [`Context`], lives with the loop that builds it.

use std::fmt;

use crate::protocol::close::CloseCode;
use crate::protocol::handshake::{HttpError, Request};
pub use crate::protocol::outbound::Message;
pub use crate::server::context::Context;

/// Identifies one connection for as long as the server runs; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

impl ConnectionId {
    /// The slab slot this connection occupies.
    pub(crate) fn slot(self) -> usize {
        (self.0 & 0xFFFF_FFFF) as usize
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0 >> 32)
    }
}

/// What happened to a message given to [`Context::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued; it goes out when the socket takes it.
    Queued,
    /// Queued, but the connection's queue is above its route's high watermark: the peer reads
    /// slower than it is sent to. [`Handler::on_drain`] says when it has caught up.
    Backpressured,
    /// Not sent: the connection is closing or closed, or its route drops messages for a
    /// receiver past its `max_buffered` ([`SlowConsumer::DropMessages`](crate::SlowConsumer)).
    Dropped,
}

/// An application served on one path. One value serves every connection on its path, so
/// per-connection state is kept by [`ConnectionId`]. All callbacks run on the event loop
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
    /// dropped from here on; messages to others still go out. Its topics are left for it.
    fn on_close(&mut self, ctx: &mut Context<'_>, code: CloseCode, reason: &str) {
        let _ = (ctx, code, reason);
    }
}

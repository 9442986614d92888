//! What an application implements ([`Handler`]) and the names it deals in. What it is handed,
//! [`Context`], lives with the loop that builds it.

use std::fmt;

use crate::protocol::close::CloseCode;
use crate::protocol::handshake::{HttpError, Request};
pub use crate::protocol::outbound::Message;
pub use crate::server::context::Context;

/// Identifies one connection for as long as the server runs; never reused. It names the
/// event loop that owns the connection, so a message to it can reach it from any loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

/// Bits of an id: the slab slot, then the loop, then the loop's serial number.
const SLOT_BITS: u32 = 24;
const LOOP_BITS: u32 = 8;

impl ConnectionId {
    /// The most connections one loop holds at once (slots an id can name).
    pub(crate) const MAX_SLOTS: usize = 1 << SLOT_BITS;
    /// The most event loops a server runs.
    pub(crate) const MAX_LOOPS: usize = 1 << LOOP_BITS;
    /// No connection: the `except` of a delivery that spares nobody (one from another
    /// instance). Its slot is past any a loop uses (`max_connections` is below it).
    pub(crate) const NOBODY: ConnectionId = ConnectionId(u64::MAX);

    /// The id of the `serial`th connection of loop `event_loop`, in slab slot `slot`.
    pub(crate) fn new(serial: u64, event_loop: usize, slot: usize) -> ConnectionId {
        debug_assert!(slot < Self::MAX_SLOTS && event_loop < Self::MAX_LOOPS);
        ConnectionId(
            serial << (SLOT_BITS + LOOP_BITS) | (event_loop as u64) << SLOT_BITS | slot as u64,
        )
    }

    /// The slab slot this connection occupies.
    pub(crate) fn slot(self) -> usize {
        (self.0 & ((1 << SLOT_BITS) - 1)) as usize
    }

    /// The event loop that owns this connection: 0 unless the server runs several
    /// ([`ServerBuilder::threads`](crate::ServerBuilder::threads)).
    pub fn loop_index(self) -> usize {
        ((self.0 >> SLOT_BITS) & ((1 << LOOP_BITS) - 1)) as usize
    }

    fn serial(self) -> u64 {
        self.0 >> (SLOT_BITS + LOOP_BITS)
    }
}

impl fmt::Display for ConnectionId {
    /// `#7` on the first loop, `#2.7` on loop 2.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.loop_index() {
            0 => write!(f, "#{}", self.serial()),
            n => write!(f, "#{n}.{}", self.serial()),
        }
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

//! The names the server and applications share: which connection ([`ConnectionId`]) and what
//! became of a message sent to it ([`SendStatus`]). A leaf: it depends on nothing of wsloop.

use std::fmt;

/// Identifies one connection. It names the event loop that owns the connection, so a message
/// to it can reach it from any loop. An id is not reused while the loop has made fewer than
/// 2^32 connections since the one that had it (its serial number has 32 bits): at 50,000 new
/// connections a second, about a day. An application that keeps ids of closed connections
/// longer than that should not compare them with new ones.
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

    /// The id as a number, for naming a connection outside the process (the HTTP API, logs
    /// a backend reads): [`ConnectionId::from_u64`] gives the id back. (It uses all 64 bits:
    /// JSON carries it as a string, since JavaScript's numbers hold 53.)
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// The id [`ConnectionId::to_u64`] gave this number for. Any number is some id; one no
    /// connection has is simply not found.
    pub fn from_u64(n: u64) -> ConnectionId {
        ConnectionId(n)
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

/// What happened to a message given to [`Context::send`](crate::Context::send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued; it goes out when the socket takes it.
    Queued,
    /// Queued, but the connection's queue is above its route's high watermark: the peer reads
    /// slower than it is sent to. [`Handler::on_drain`](crate::Handler::on_drain) says when it has caught up.
    Backpressured,
    /// Not sent: the connection is closing or closed, or its route drops messages for a
    /// receiver past its `max_buffered` ([`SlowConsumer::DropMessages`](crate::SlowConsumer)).
    Dropped,
}

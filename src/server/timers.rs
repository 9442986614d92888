//! Connection deadlines: one min-heap for all connections, so the loop sleeps until the
//! earliest. Entries are never removed early; each connection remembers the one entry that is
//! live for it, and stale ones are skipped when they come up.
//!
//! Deadlines are kept as [`Stamp`]s, half the size of an `Instant`: every connection has one in
//! its slot and one in the heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::ids::ConnectionId;
use crate::protocol::stamp::Stamp;

/// A deadline for connection `id` (in slab slot [`ConnectionId::slot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline {
    pub(crate) at: Stamp,
    pub(crate) id: ConnectionId,
}

/// The deadline queue.
#[derive(Debug)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Deadline>>,
}

impl Timers {
    /// An empty queue.
    pub(crate) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
        }
    }

    pub(crate) fn schedule(&mut self, deadline: Deadline) {
        self.heap.push(Reverse(deadline));
    }

    /// The earliest pending deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.at.instant())
    }

    /// Removes and returns a deadline that has passed, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        let now = Stamp::of(now);
        match self.heap.peek() {
            Some(Reverse(d)) if d.at <= now => self.heap.pop().map(|Reverse(d)| d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        for (secs, key) in [(3, 1), (1, 2), (2, 3)] {
            let at = Stamp::of(t0 + Duration::from_secs(secs));
            let id = ConnectionId(1 << 32 | key);
            timers.schedule(Deadline { at, id });
        }
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let due: Vec<usize> = std::iter::from_fn(|| timers.pop_due(t0 + Duration::from_secs(2)))
            .map(|d| d.id.slot())
            .collect();
        assert_eq!(due, [2, 3]);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(3)));
    }
}

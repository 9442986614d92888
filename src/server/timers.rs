//! Connection deadlines: one min-heap for all connections, so the loop sleeps until the
//! earliest. Entries are never removed early; each connection remembers the one entry that is
//! live for it, and stale ones are skipped when they come up.
//!
//! Deadlines are kept as [`Tick`]s, half the size of an `Instant`: every connection has one in
//! its slot and one in the heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::ids::ConnectionId;

/// A moment on the loop's clock: nanoseconds since its [`Timers`] were made (a `u64` of them
/// lasts 584 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(u64);

impl Tick {
    /// Later than any deadline: no deadline.
    pub(crate) const NEVER: Tick = Tick(u64::MAX);
}

/// A deadline for connection `id` (in slab slot [`ConnectionId::slot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline {
    pub(crate) at: Tick,
    pub(crate) id: ConnectionId,
}

/// The deadline queue.
#[derive(Debug)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Deadline>>,
    /// Tick zero.
    epoch: Instant,
}

impl Timers {
    /// A queue whose clock starts at `epoch`.
    pub(crate) fn new(epoch: Instant) -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            epoch,
        }
    }

    /// `at` on the loop's clock; a time before the epoch is tick zero (it is past).
    pub(crate) fn tick(&self, at: Instant) -> Tick {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        // Short of NEVER even in 584 years.
        Tick(u64::try_from(nanos).unwrap_or(u64::MAX - 1))
    }

    fn instant(&self, tick: Tick) -> Instant {
        self.epoch + Duration::from_nanos(tick.0)
    }

    pub(crate) fn schedule(&mut self, deadline: Deadline) {
        self.heap.push(Reverse(deadline));
    }

    /// The earliest pending deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| self.instant(d.at))
    }

    /// Removes and returns a deadline that has passed, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        let now = self.tick(now);
        match self.heap.peek() {
            Some(Reverse(d)) if d.at <= now => self.heap.pop().map(|Reverse(d)| d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0);
        for (secs, key) in [(3, 1), (1, 2), (2, 3)] {
            let at = timers.tick(t0 + Duration::from_secs(secs));
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

    #[test]
    fn ticks_are_exact_and_ordered_like_instants() {
        let t0 = Instant::now();
        let timers = Timers::new(t0);
        let at = t0 + Duration::from_nanos(1_234_567_891);
        assert_eq!(timers.instant(timers.tick(at)), at);
        assert!(timers.tick(at) < timers.tick(at + Duration::from_nanos(1)));
        assert!(timers.tick(at) < Tick::NEVER);
    }
}

//! Connection deadlines: one min-heap for all connections, so the loop sleeps until the
//! earliest. Entries are never removed early; each connection remembers the one entry that is
//! live for it, and stale ones are skipped when they come up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A deadline for the connection in slab slot `key` whose id is `serial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) key: usize,
    pub(crate) serial: u64,
}

/// The deadline queue.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Deadline>>,
}

impl Timers {
    pub(crate) fn schedule(&mut self, deadline: Deadline) {
        self.heap.push(Reverse(deadline));
    }

    /// The earliest pending deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.at)
    }

    /// Removes and returns a deadline that has passed, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
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
        let mut timers = Timers::default();
        for (secs, key) in [(3, 1), (1, 2), (2, 3)] {
            timers.schedule(Deadline {
                at: t0 + Duration::from_secs(secs),
                key,
                serial: 0,
            });
        }
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let due: Vec<usize> = std::iter::from_fn(|| timers.pop_due(t0 + Duration::from_secs(2)))
            .map(|d| d.key)
            .collect();
        assert_eq!(due, [2, 3]);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(3)));
    }
}

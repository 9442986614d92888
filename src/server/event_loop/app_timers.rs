//! Timers applications set ([`Context::set_timer`](crate::Context::set_timer)): a min-heap of
//! (due, order set, connection, token) beside the connections' own deadlines. A due timer of
//! a connection that is gone or no longer open is dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::dispatch::Dispatch;
use super::EventLoop;
use crate::ids::ConnectionId;
use crate::server::context::Current;

/// The application's timers on one loop.
#[derive(Debug, Default)]
pub(super) struct AppTimers {
    /// Due time, the order it was set in (equal times fire in that order), connection, token.
    heap: BinaryHeap<Reverse<(Instant, u64, ConnectionId, u64)>>,
    set: u64,
}

impl AppTimers {
    /// When the next one is due.
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, ..))| *at)
    }
}

impl EventLoop {
    /// Takes the timers the last callbacks set into the heap.
    pub(super) fn take_timers(&mut self, now: Instant) {
        for (id, after, token) in self.app.services.outbox.timers.drain(..) {
            let timers = &mut self.app_timers;
            timers.set += 1;
            timers
                .heap
                .push(Reverse((now + after, timers.set, id, token)));
        }
    }

    /// Calls `on_timer` for every timer due by `now` whose connection is still open.
    pub(super) fn fire_app_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, _, id, token))) = self.app_timers.heap.peek().copied() {
            if at > now {
                break;
            }
            self.app_timers.heap.pop();
            let Some(entry) = self.entries.get_mut(id.slot()) else {
                continue;
            };
            if entry.conn.id() != id {
                continue;
            }
            let (peer, route) = (entry.conn.peer(), entry.conn.route());
            let (Some(route), Some(open)) = (route, entry.conn.open()) else {
                continue;
            };
            let mut events = Dispatch::new(&mut self.app, peer, now);
            events.call(id, route, open, Current::None, |handler, ctx| {
                handler.on_timer(ctx, token)
            });
            self.deliver_outbox(now);
            self.mark_dirty(id.slot());
        }
    }
}

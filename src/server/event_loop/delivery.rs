//! Delivery of frames a callback addressed to other connections: private sends, sends to a
//! list, and broadcasts through the hub. Each frame was encoded once; every receiver's queue
//! holds the same `Arc`. A receiver that would hold more than `max_buffered` unread bytes is a
//! slow consumer and is closed instead of being queued to.

use std::sync::Arc;
use std::time::Instant;

use super::EventLoop;
use crate::handler::{ConnectionId, Target};

impl EventLoop {
    /// Delivers everything in the outbox, and whatever the callbacks that delivery causes (a
    /// slow consumer's `on_close`) add to it.
    pub(super) fn deliver_outbox(&mut self, now: Instant) {
        while !self.outbox.deliveries.is_empty() {
            for (target, frame) in std::mem::take(&mut self.outbox.deliveries) {
                match target {
                    Target::One(id) => self.deliver(id.slot(), Some(id), &frame, now),
                    Target::Many(ids) => {
                        for id in ids {
                            self.deliver(id.slot(), Some(id), &frame, now);
                        }
                    }
                    Target::RouteExcept { route, except } => {
                        // Membership changes only in `flush`, never during delivery.
                        for i in 0..self.hub.members(route).len() {
                            let key = self.hub.members(route)[i];
                            if key != except.slot() {
                                self.deliver(key, None, &frame, now);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Queues `frame` for the connection in slot `key` (if it is `expected`, when given).
    fn deliver(
        &mut self,
        key: usize,
        expected: Option<ConnectionId>,
        frame: &Arc<[u8]>,
        now: Instant,
    ) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let conn = &mut entry.conn;
        if expected.is_some_and(|id| id != conn.id()) || !conn.accepts_messages() {
            return;
        }
        let limit = self.app.config.max_buffered;
        if conn.outgoing().queue.len() + frame.len() > limit {
            // What was queued this turn has not been offered to the socket yet: offer it now,
            // so only what the peer really leaves unread counts against the limit.
            if let Err(e) = conn.outgoing().queue.write_to(&mut entry.socket) {
                conn.on_io_error(&e, &mut self.app, &mut self.outbox);
            }
        }
        // (A failed write above has closed the connection: then nothing is queued.) A frame
        // larger than the limit still goes to a receiver that has read everything, so a queue
        // holds at most `max_buffered` plus one message.
        if conn.accepts_messages() {
            let queue = &mut conn.outgoing().queue;
            if queue.is_empty() || queue.len() + frame.len() <= limit {
                queue.push_shared(frame.clone());
            } else {
                conn.on_slow_consumer(now, &mut self.app, &mut self.outbox);
            }
        }
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(key);
        }
    }
}

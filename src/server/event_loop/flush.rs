//! The end of a connection's turn: its queue is written out, then its registration, hub
//! membership and deadline are brought up to date from where it now stands, or its socket is
//! dropped once it is closed. Where it stands is read once ([`Connection::standing`]) and
//! handed to each step, not asked of its state again by every step.
//!
//! [`Connection::standing`]: crate::connection::Connection::standing

use std::time::Instant;

use log::warn;
use mio::{Interest, Token};

use super::dispatch::Dispatch;
use super::{high_watermark, Entry, EventLoop};
use crate::connection::{RouteId, Standing};
use crate::server::timers::Deadline;

impl EventLoop {
    /// Writes out every connection touched this turn and brings its registration, hub
    /// membership and deadline up to date; drops the closed ones.
    pub(super) fn flush(&mut self, now: Instant) {
        while let Some(key) = self.dirty.pop() {
            self.flush_one(key, now);
        }
    }

    /// Writes out one connection and brings its registration, hub membership and deadline up
    /// to date; drops it if it is closed.
    pub(super) fn flush_one(&mut self, key: usize, now: Instant) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.dirty = false;
        let before = entry.conn.standing();
        // Above the high watermark before the write: sends reported Backpressured.
        if before.buffered > high_watermark(&self.app.router, before.route) {
            entry.backpressured = true;
        }
        let Entry {
            conn, transport, ..
        } = &mut *entry;
        if transport.wants_write(before.buffered) {
            match transport.flush(conn.queue()) {
                Ok(sent) => self.app.metrics.bytes_sent += sent as u64,
                Err(e) => {
                    let mut events = Dispatch::new(&mut self.app, entry.conn.peer(), now);
                    entry.conn.on_io_error(&e, &mut events);
                    self.deliver_outbox(now);
                }
            }
        }
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.conn.after_flush();
        if entry.conn.wants_write_shutdown() {
            entry.transport.shutdown();
        }
        let mut standing = entry.conn.standing();
        if self.after_drain(key, standing, now) {
            standing = self.entries[key].conn.standing();
        }
        self.update_membership(key, standing.route);
        if standing.closed {
            let mut entry = self.entries.remove(key);
            // Last chance for what waits inside the transport (TLS records, close_notify).
            entry.transport.shutdown();
            let _ = self.poll.registry().deregister(entry.transport.socket());
            self.app.publisher.count(self.index, self.entries.len());
            return;
        }
        self.update_interest(key, standing);
        self.schedule(key);
    }

    /// Tells the handler of a connection that went above its high watermark (see `flush_one`)
    /// once it falls to its low watermark. Returns whether it did (the handler may have sent
    /// or closed).
    fn after_drain(&mut self, key: usize, standing: Standing, now: Instant) -> bool {
        let entry = &mut self.entries[key];
        if !entry.backpressured {
            return false;
        }
        let Some(policy) = self.app.router.backpressure(standing.route) else {
            entry.backpressured = false;
            return false;
        };
        if standing.buffered > policy.low_watermark {
            return false;
        }
        entry.backpressured = false;
        let mut events = Dispatch::new(&mut self.app, entry.conn.peer(), now);
        entry.conn.on_drain(now, &self.conn_config, &mut events);
        self.deliver_outbox(now);
        self.mark_dirty(key);
        true
    }

    /// Puts a connection in its route's member list while it is open and accepts messages
    /// (`wanted`, its route then), and takes it out otherwise.
    fn update_membership(&mut self, key: usize, wanted: Option<RouteId>) {
        let entry = &mut self.entries[key];
        if entry.membership.map(|m| m.route()) == wanted {
            return;
        }
        if let Some(old) = entry.membership.take() {
            if let Some((moved, place)) = self.app.services.hub.leave(old) {
                self.entries[moved].membership = Some(place);
            }
        }
        if let Some(route) = wanted {
            self.entries[key].membership = Some(self.app.services.hub.join(route, key));
        }
    }

    /// Registers what the connection's state asks for: readable unless reading is paused,
    /// writable only while bytes wait.
    fn update_interest(&mut self, key: usize, standing: Standing) {
        let entry = &mut self.entries[key];
        let wants_read = standing.wants_read(high_watermark(&self.app.router, standing.route));
        let wants_write = entry.transport.wants_write(standing.buffered);
        let interest = match (wants_read, wants_write) {
            (_, false) => Interest::READABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
        };
        if interest != entry.interest {
            if let Err(e) =
                self.poll
                    .registry()
                    .reregister(entry.transport.socket(), Token(key), interest)
            {
                warn!("{} reregister failed: {e}", entry.conn.peer());
            }
            entry.interest = interest;
        }
        // Input may have arrived while reading was paused: no new edge will announce it.
        if !interest.is_readable() {
            entry.read_paused = true;
        } else if entry.read_paused {
            entry.read_paused = false;
            self.read_again(key);
        }
    }

    fn schedule(&mut self, key: usize) {
        let entry = &mut self.entries[key];
        let Some(at) = entry.conn.next_deadline() else {
            return;
        };
        if at < entry.timer_at {
            entry.timer_at = at;
            let id = entry.conn.id();
            self.timers.schedule(Deadline { at, id });
        }
    }
}

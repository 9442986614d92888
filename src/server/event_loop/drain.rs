//! Stopping a loop, the two ways: at once ([`EventLoop::begin_shutdown`]: close 1001 to
//! every connection, as for SIGINT), or by a drain ([`EventLoop::begin_drain`], SIGTERM):
//! `/readyz` and new WebSocket upgrades get 503 while the listener stays open, and the
//! connections open when the drain began are closed with 1012, oldest first, spread evenly
//! over the drain window; when it is over the listener closes and the loop stops like a
//! shutdown. Either way the loop ends once its connections are gone or the close timeout is
//! up ([`EventLoop::shutdown_is_over`]).
//!
//! The spreading never blocks the loop: the time of the next close is one more deadline the
//! loop's poll waits for ([`Drain::next_at`]), and each turn closes those whose time came.

use std::time::{Duration, Instant};

use log::info;

use super::{Dispatch, EventLoop};
use crate::ids::ConnectionId;
use crate::protocol::close::CloseCode;
use crate::server::shutdown::Stop;

/// What a drain closes with.
const RESTART: (CloseCode, &str) = (CloseCode::SERVICE_RESTART, "service restart");
/// What a shutdown closes with.
const GOING_AWAY: (CloseCode, &str) = (CloseCode::GOING_AWAY, "server shutting down");

/// A drain under way on one loop.
#[derive(Debug)]
pub(super) struct Drain {
    started: Instant,
    window: Duration,
    /// The connections open when the drain began, oldest first; the `i`th of `n` gets its
    /// close at `started + window * i / n`.
    order: Vec<ConnectionId>,
    /// How many of `order` had their turn.
    done: usize,
    /// How many of those were still open at their turn, and got 1012.
    closed: usize,
}

impl Drain {
    /// A drain of `open` (in any order) over `window`, from `started`.
    fn new(started: Instant, window: Duration, mut open: Vec<ConnectionId>) -> Drain {
        // Within a loop an id's high bits are its serial number: sorted, oldest first.
        open.sort_unstable();
        Drain {
            started,
            window,
            order: open,
            done: 0,
            closed: 0,
        }
    }

    /// When the `i`th connection's turn comes.
    fn turn_at(&self, i: usize) -> Instant {
        let n = self.order.len().max(1) as u128;
        // The window is at most 24 hours (`Config::validate`): its nanoseconds fit in a u64.
        let offset = self.window.as_nanos() * i as u128 / n;
        self.started + Duration::from_nanos(offset as u64)
    }

    /// The next time the drain has something to do: the next connection's turn, or the end of
    /// the window.
    pub(super) fn next_at(&self) -> Instant {
        if self.done < self.order.len() {
            self.turn_at(self.done)
        } else {
            self.started + self.window
        }
    }

    /// The connections whose turn came by `now` and did not have it yet.
    fn due(&mut self, now: Instant) -> std::ops::Range<usize> {
        let from = self.done;
        while self.done < self.order.len() && self.turn_at(self.done) <= now {
            self.done += 1;
        }
        from..self.done
    }

    /// Every connection had its turn and the window is over.
    fn is_over(&self, now: Instant) -> bool {
        self.done == self.order.len() && now >= self.started + self.window
    }
}

impl EventLoop {
    /// Acts on what the server's shared stop state asks, if this loop does not do it yet;
    /// `why` names the cause for the log (a signal), else the request is named.
    pub(super) fn on_stop_request(&mut self, now: Instant, why: Option<&str>) {
        match self.stop.requested() {
            Stop::No => {}
            Stop::Drain => self.begin_drain(now, why.unwrap_or("drain requested")),
            Stop::Now => self.begin_shutdown(now, why.unwrap_or("shutdown requested")),
        }
    }

    /// Starts draining: the listener stays open (new requests are answered, `/readyz` with
    /// 503, upgrades with 503: see `Dispatch::on_request`), and the open connections get
    /// their close over the drain window, by [`EventLoop::drain_turn`].
    fn begin_drain(&mut self, now: Instant, why: &str) {
        if self.drain.is_some() || self.shutdown_deadline.is_some() {
            return;
        }
        let open: Vec<ConnectionId> = (self.entries.iter())
            .filter(|(_, entry)| entry.conn.route().is_some())
            .map(|(_, entry)| entry.conn.id())
            .collect();
        let window = self.config.drain_window;
        info!("{why}: draining {} connections over {window:?}", open.len());
        self.drain = Some(Drain::new(now, window, open));
        self.drain_turn(now);
    }

    /// Closes the connections whose turn came with 1012; once the window is over, stops
    /// accepting and waits for the closing handshakes like a shutdown.
    pub(super) fn drain_turn(&mut self, now: Instant) {
        let Some(mut drain) = self.drain.take() else {
            return;
        };
        for i in drain.due(now) {
            let id = drain.order[i];
            // Gone already, or closing on its own: its turn passes.
            if (self.entries.get(id.slot()))
                .is_some_and(|entry| entry.conn.id() == id && entry.conn.route().is_some())
            {
                drain.closed += 1;
                self.close_one(id.slot(), now, RESTART);
            }
        }
        if !drain.is_over(now) {
            self.drain = Some(drain);
            return;
        }
        info!(
            "drain done: {} connections closed with 1012 over {:?}; waiting up to {:?} for \
             the closing handshakes",
            drain.closed, drain.window, self.config.close_timeout
        );
        self.stop_serving(now, RESTART);
    }

    /// Stops accepting, sends every open connection close 1001, and gives them the close
    /// timeout to finish. Cuts short a drain under way.
    pub(crate) fn begin_shutdown(&mut self, now: Instant, why: &str) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.drain = None;
        info!("{why}: closing {} connections", self.entries.len());
        self.stop_serving(now, GOING_AWAY);
    }

    /// Closes the listener, closes every connection still open with `close` (and drops those
    /// whose request is not answered yet), and sets the time by which the loop ends.
    fn stop_serving(&mut self, now: Instant, close: (CloseCode, &str)) {
        if let Some(mut listener) = self.http_listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(now + self.config.close_timeout);
        let keys: Vec<usize> = self.entries.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close_one(key, now, close);
        }
    }

    /// Whether a shutdown under way is over: every connection is gone, or the time is up (and
    /// those left are reset).
    pub(super) fn shutdown_is_over(&mut self, now: Instant) -> bool {
        let Some(deadline) = self.shutdown_deadline else {
            return false;
        };
        if !self.entries.is_empty() && now < deadline {
            return false;
        }
        self.tell_unlogged_refusals(now, true);
        info!(
            "shutdown complete ({} connections dropped)",
            self.entries.len()
        );
        for (_, entry) in &mut self.entries {
            entry.transport.reset_on_close();
        }
        true
    }

    /// Closes one connection with `close`, delivers what its handler sent as it closed, and
    /// flushes it this turn.
    fn close_one(&mut self, key: usize, now: Instant, close: (CloseCode, &str)) {
        let entry = &mut self.entries[key];
        let mut events = Dispatch::new(&mut self.app, entry.conn.peer(), now);
        entry
            .conn
            .on_shutdown(now, &self.conn_config, close, &mut events);
        self.deliver_outbox(now);
        self.mark_dirty(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<ConnectionId> {
        (1..=n)
            .rev()
            .map(|serial| ConnectionId::new(serial, 0, 0))
            .collect()
    }

    #[test]
    fn turns_are_spread_evenly_over_the_window_oldest_first() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut drain = Drain::new(start, ms(400), ids(4));
        assert_eq!(drain.order[0], ConnectionId::new(1, 0, 0), "oldest first");
        assert_eq!(drain.due(start), 0..1, "the first at once");
        assert_eq!(drain.next_at(), start + ms(100));
        assert_eq!(drain.due(start + ms(99)), 1..1);
        assert_eq!(drain.due(start + ms(250)), 1..3, "two turns came meanwhile");
        assert_eq!(drain.next_at(), start + ms(300));
        assert_eq!(drain.due(start + ms(300)), 3..4);
        assert_eq!(
            drain.next_at(),
            start + ms(400),
            "then the end of the window"
        );
        assert!(!drain.is_over(start + ms(399)));
        assert!(drain.is_over(start + ms(400)));
    }

    #[test]
    fn a_zero_window_closes_everyone_at_once() {
        let start = Instant::now();
        let mut drain = Drain::new(start, Duration::ZERO, ids(1000));
        assert_eq!(drain.due(start), 0..1000);
        assert!(drain.is_over(start));
    }

    #[test]
    fn a_drain_of_nobody_still_lasts_its_window() {
        let start = Instant::now();
        let mut drain = Drain::new(start, Duration::from_secs(2), Vec::new());
        assert_eq!(drain.due(start), 0..0);
        assert_eq!(drain.next_at(), start + Duration::from_secs(2));
        assert!(!drain.is_over(start + Duration::from_secs(1)));
    }
}

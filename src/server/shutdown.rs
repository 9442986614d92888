//! How a running server is asked to stop: the [`ShutdownHandle`] and the one state every loop
//! of a server shares (serving, draining, stopping now), which only ever moves forward.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use mio::Waker;

/// What the server's loops were asked to do. The order matters: a request never lowers it
/// (`fetch_max`), so an immediate shutdown overrides a drain and a drain cannot undo one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Stop {
    /// Serving: nothing asked.
    No = 0,
    /// Drain: readiness fails, open connections are closed with 1012 over the drain window.
    Drain = 1,
    /// Stop now: close every connection with 1001 at once.
    Now = 2,
}

/// Stops a running [`Server`](crate::Server); cheap to clone and send to other threads.
#[derive(Clone)]
pub struct ShutdownHandle {
    /// Every loop's.
    wakers: Arc<[Arc<Waker>]>,
    /// A [`Stop`], shared by the server's loops and handles.
    state: Arc<AtomicU8>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// A handle for a server whose loops wake with `wakers`.
    pub(crate) fn new(wakers: Arc<[Arc<Waker>]>) -> ShutdownHandle {
        ShutdownHandle {
            wakers,
            state: Arc::new(AtomicU8::new(Stop::No as u8)),
        }
    }

    /// Asks the server to stop now: it stops accepting, closes every connection with 1001
    /// `server shutting down` at once, gives the closing handshakes the close timeout, and
    /// returns from [`Server::run`](crate::Server::run). Also cuts short a drain under way.
    pub fn shutdown(&self) {
        self.ask(Stop::Now);
    }

    /// Asks the server to drain, for a restart behind a load balancer: `GET /readyz` answers
    /// 503 at once (and new WebSocket upgrades too) while the listener stays open; each loop
    /// closes its open connections with 1012 `service restart`, oldest first, spread evenly
    /// over [`Config::drain_window`](crate::Config::drain_window), so that their clients do not
    /// all reconnect in the same instant; then it stops accepting, gives the closing
    /// handshakes the close timeout, and [`Server::run`](crate::Server::run) returns. Does
    /// nothing once the server is stopping.
    pub fn drain(&self) {
        self.ask(Stop::Drain);
    }

    fn ask(&self, what: Stop) {
        self.state.fetch_max(what as u8, Ordering::AcqRel);
        for waker in self.wakers.iter() {
            let _ = waker.wake();
        }
    }

    /// What was asked so far.
    pub(crate) fn requested(&self) -> Stop {
        match self.state.load(Ordering::Acquire) {
            0 => Stop::No,
            1 => Stop::Drain,
            _ => Stop::Now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_never_lowers_what_was_asked() {
        let handle = ShutdownHandle::new(Arc::new([]));
        assert_eq!(handle.requested(), Stop::No);
        handle.drain();
        assert_eq!(handle.requested(), Stop::Drain);
        handle.shutdown();
        assert_eq!(handle.requested(), Stop::Now);
        handle.drain();
        assert_eq!(
            handle.requested(),
            Stop::Now,
            "a drain does not undo a shutdown"
        );
    }
}

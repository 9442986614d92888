//! The state every actor shares: the settings, the deadline, the counters, the checker's
//! latencies; and the pacer that spaces out an actor's iterations to a rate.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::rng::Rng;
use crate::stats::Stats;
use crate::Settings;

/// How long any single blocking operation of an actor may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Shared {
    pub settings: Settings,
    pub deadline: Instant,
    pub stats: Stats,
    /// Round-trip latencies in microseconds.
    pub echo_latency: Mutex<Vec<u64>>,
    pub broadcast_latency: Mutex<Vec<u64>>,
    /// Tells this run's checker messages from anyone else's.
    pub nonce: u64,
    /// Flood sequence numbers, shared by the flooders.
    pub flood_seq: AtomicU64,
}

impl Shared {
    pub fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Sleeps for `d`, or until the deadline if that comes first.
    pub fn sleep(&self, d: Duration) {
        let d = d.min(self.left());
        if !d.is_zero() {
            thread::sleep(d);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.settings.addr)
    }
}

/// Spaces out an actor's iterations to a rate; never bursts to catch up.
pub struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    /// `rate` per second over `threads` threads, for one of them.
    pub fn new(rate: f64, threads: usize) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(threads.max(1) as f64 / rate),
            next: Instant::now(),
        }
    }

    /// Waits until `n` more iterations are due (or the deadline).
    pub fn wait(&mut self, shared: &Shared, n: u32) {
        self.next += self.interval * n;
        let now = Instant::now();
        if self.next > now {
            shared.sleep(self.next - now);
        } else if now - self.next > Duration::from_secs(1) {
            self.next = now; // behind (a slow machine): do not catch up in a burst
        }
    }
}

pub fn new_shared(settings: Settings) -> Arc<Shared> {
    let deadline = Instant::now() + settings.duration;
    Arc::new(Shared {
        settings,
        deadline,
        stats: Stats::default(),
        echo_latency: Mutex::default(),
        broadcast_latency: Mutex::default(),
        nonce: Rng::new().next() % 1_000_000,
        flood_seq: AtomicU64::new(0),
    })
}

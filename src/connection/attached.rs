//! What an open connection carries beyond its endpoint, allocated only when there is something
//! to carry: who its token says it is, the application's own data, when the token runs out,
//! its message-rate bucket, and whether it holds a place in the per-IP and per-user counts.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::Identity;

/// Boxed in the connection's state (one pointer when empty), so an idle connection without
/// auth or limits pays 8 bytes for it.
#[derive(Default)]
pub(crate) struct Attached {
    pub(crate) identity: Option<Arc<Identity>>,
    /// What `on_upgrade` attached ([`Accept::data`](crate::Accept::data)) or a callback set.
    pub(crate) data: Option<Box<dyn Any + Send>>,
    /// When the token stops being valid (its `exp` plus the leeway): the connection is closed
    /// 1008 `token expired` then, unless a refresh moved it.
    pub(crate) expires: Option<Instant>,
    pub(crate) rate: Option<RateBucket>,
    /// Counted in the server's per-IP and per-user connection counts, to be released.
    pub(crate) counted: bool,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("user", &self.identity.as_ref().map(|i| i.user()))
            .field("data", &self.data.is_some())
            .field("expires", &self.expires)
            .field("rate", &self.rate)
            .field("counted", &self.counted)
            .finish()
    }
}

/// What a message does to the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowance {
    /// Within the rate.
    Within,
    /// Over it: the message is not handed on.
    Over,
    /// Over it by another whole burst: the connection goes.
    Flood,
}

/// A token bucket: `rate` messages a second, bursts of `rate`. Going over borrows against the
/// future down to one more burst, so a client that keeps sending is closed after another
/// `rate` messages, and one that stops pays its debt back before sending again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateBucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateBucket {
    pub(crate) fn new(rate: u32, now: Instant) -> RateBucket {
        RateBucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: now,
        }
    }

    /// Takes one message's token at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> Allowance {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate) - 1.0;
        if self.tokens >= 0.0 {
            Allowance::Within
        } else if self.tokens >= -self.rate {
            Allowance::Over
        } else {
            Allowance::Flood
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What a connection with a rate limit, a token or attached data carries besides its
    /// slab entry (README: Authentication, Floods).
    #[test]
    fn what_a_connection_carries_stays_small() {
        let size = std::mem::size_of::<Attached>();
        assert!(size <= 96, "Attached is {size} B");
    }

    #[test]
    fn a_burst_passes_the_next_is_over_and_another_burst_floods() {
        let start = Instant::now();
        let mut bucket = RateBucket::new(5, start);
        let takes: Vec<Allowance> = (0..11).map(|_| bucket.take(start)).collect();
        assert!(
            takes[..5].iter().all(|a| *a == Allowance::Within),
            "{takes:?}"
        );
        assert!(
            takes[5..10].iter().all(|a| *a == Allowance::Over),
            "{takes:?}"
        );
        assert_eq!(takes[10], Allowance::Flood);
    }

    #[test]
    fn the_rate_refills_and_debt_is_paid_back_first() {
        let start = Instant::now();
        let mut bucket = RateBucket::new(10, start);
        for _ in 0..10 {
            assert_eq!(bucket.take(start), Allowance::Within);
        }
        assert_eq!(bucket.take(start), Allowance::Over);
        // 0.2 s later: 2 tokens back, 1 of them owed.
        let later = start + Duration::from_millis(200);
        assert_eq!(bucket.take(later), Allowance::Within);
        assert_eq!(bucket.take(later), Allowance::Over);
        // A steady 10 a second is within forever.
        let mut at = later + Duration::from_secs(1);
        for _ in 0..100 {
            at += Duration::from_millis(100);
            assert_eq!(bucket.take(at), Allowance::Within);
        }
    }
}

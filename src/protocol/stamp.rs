//! A moment in 8 bytes: what a connection keeps of the times it is handed.
//!
//! An `Instant` takes 16 bytes on Linux (seconds and nanoseconds, padded), and an idle
//! connection keeps two (when its peer was last heard, and a deadline while it opens or closes).
//! At a million connections those halves are 16 MB. A [`Stamp`] is the signed nanoseconds from
//! one fixed instant of the process, its origin, so every `Instant` within 292 years of it
//! round-trips exactly, earlier ones included.
//!
//! The origin is the first instant ever stamped, so no clock is read here: time still comes
//! only from the caller.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An `Instant`, as nanoseconds from the process's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(i64);

impl Stamp {
    /// Later than any moment stamped: no deadline.
    pub(crate) const NEVER: Stamp = Stamp(i64::MAX);

    /// `at`, in 8 bytes. Times over 292 years from the origin are clamped (short of NEVER).
    /// The last instant stamped on this thread is remembered: a loop hands every connection
    /// it reads in one turn the same `now`, and an `Instant` difference (with its
    /// normalisation and a 128-bit nanosecond count) cost 50 instructions a read.
    /// The check is inlined into the caller (a call saving registers cost as much as the
    /// check); a new instant is stamped out of line.
    #[inline]
    pub(crate) fn of(at: Instant) -> Stamp {
        match LAST.with(Cell::get) {
            Some((instant, stamp)) if instant == at => stamp,
            _ => Stamp::remember(at),
        }
    }

    #[inline(never)]
    fn remember(at: Instant) -> Stamp {
        let stamp = Stamp::compute(at);
        LAST.with(|last| last.set(Some((at, stamp))));
        stamp
    }

    fn compute(at: Instant) -> Stamp {
        let origin = *ORIGIN.get_or_init(|| at);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX - 1);
        match at.checked_duration_since(origin) {
            Some(after) => Stamp(nanos(after)),
            None => Stamp(-nanos(origin - at)),
        }
    }

    /// `d` after this moment (saturating short of NEVER); NEVER stays NEVER. Plain integer
    /// arithmetic: the loop computes every connection's next deadline after each batch of
    /// reads, where `Instant` sums and differences were 11 instructions a message.
    pub(crate) fn after(self, d: Duration) -> Stamp {
        if self == Stamp::NEVER {
            return self;
        }
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Stamp(self.0.saturating_add(nanos).min(i64::MAX - 1))
    }

    /// The `Instant` stamped.
    pub(crate) fn instant(self) -> Instant {
        let origin = *ORIGIN
            .get()
            .expect("only NEVER exists before the first stamp, and it has no instant");
        let nanos = Duration::from_nanos(self.0.unsigned_abs());
        if self.0 >= 0 {
            origin + nanos
        } else {
            origin - nanos
        }
    }
}

/// The instant every stamp counts from: the first one stamped.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

thread_local! {
    /// The last instant this thread stamped, and its stamp.
    static LAST: Cell<Option<(Instant, Stamp)>> = const { Cell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_exactly_before_and_after_the_origin() {
        let now = Instant::now();
        for at in [
            now,
            now + Duration::from_nanos(1),
            now + Duration::from_secs(86_400 * 365),
            now - Duration::from_nanos(1_234_567_891),
        ] {
            assert_eq!(Stamp::of(at).instant(), at);
        }
    }

    #[test]
    fn after_adds_exactly_and_saturates_short_of_never() {
        let now = Instant::now();
        let d = Duration::new(3, 123_456_789);
        assert_eq!(Stamp::of(now).after(d).instant(), now + d);
        assert_eq!(Stamp(1).after(Duration::MAX), Stamp(i64::MAX - 1));
        assert_eq!(Stamp::NEVER.after(Duration::ZERO), Stamp::NEVER);
    }

    #[test]
    fn stamps_order_like_instants_and_never_is_last() {
        let now = Instant::now();
        let a = Stamp::of(now - Duration::from_secs(1));
        let b = Stamp::of(now);
        let c = Stamp::of(now + Duration::from_nanos(1));
        assert!(a < b && b < c && c < Stamp::NEVER);
        assert_eq!(std::mem::size_of::<Stamp>(), 8);
    }
}

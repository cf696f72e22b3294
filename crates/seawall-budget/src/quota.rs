//! A budget's quota as the IETF `RateLimit` fields describe it, reported to
//! [`seawall_core::quota`] when a layer up the stack listens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use seawall_core::quota::{self, Quota};

use crate::gcra::{Gcra, Rate};

/// The policy a budget states: `limit` calls every `window`, under the
/// budget's name. Made when the budget is built; a reload updates the
/// numbers (a report racing it may state the old limit with the new
/// window: quota headers are advice).
#[derive(Debug)]
pub(crate) struct Policy {
    name: Arc<str>,
    limit: AtomicU32,
    window_ns: AtomicU64,
}

impl Policy {
    /// `rate` calls every `per`, in whole seconds: a window under a second
    /// (or not a whole number of them) is stated per second, the rate scaled
    /// to it (rounded down, at least 1).
    pub(crate) fn new(name: &str, rate: u32, per: Duration) -> Policy {
        let (limit, window) = stated(rate, per);
        Policy {
            name: Arc::from(name),
            limit: AtomicU32::new(limit),
            window_ns: AtomicU64::new(seawall_core::time::nanos(window)),
        }
    }

    /// States `rate` per `per` from now on (a reload).
    pub(crate) fn update(&self, rate: u32, per: Duration) {
        let (limit, window) = stated(rate, per);
        self.limit.store(limit, Ordering::Relaxed);
        self.window_ns
            .store(seawall_core::time::nanos(window), Ordering::Relaxed);
    }

    fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    fn window(&self) -> Duration {
        Duration::from_nanos(self.window_ns.load(Ordering::Relaxed))
    }

    /// Reports `cell`'s quota at `now` if a layer listens: what is left, and
    /// how long until the budget is whole again. Out of line: the call path
    /// only tests whether anyone listens.
    #[cold]
    #[inline(never)]
    pub(crate) fn report(&self, cell: &Gcra, rate: &Rate, now: u64) {
        quota::report(
            Quota::new(self.name.clone(), self.limit(), self.window())
                .remaining(cell.available(rate, now))
                .reset(Duration::from_nanos(cell.debt(now))),
        );
    }
}

/// `rate` calls every `per` as a limit and a window of whole seconds.
fn stated(rate: u32, per: Duration) -> (u32, Duration) {
    if per.subsec_nanos() == 0 && per.as_secs() > 0 {
        (rate, per)
    } else {
        let per_ns = seawall_core::time::nanos(per).max(1);
        let per_second = u128::from(rate) * 1_000_000_000 / u128::from(per_ns);
        (
            u32::try_from(per_second).unwrap_or(u32::MAX).max(1),
            Duration::from_secs(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_seconds() {
        let p = Policy::new("a", 100, Duration::from_secs(60));
        assert_eq!((p.limit(), p.window()), (100, Duration::from_secs(60)));
        let p = Policy::new("a", 10, Duration::from_millis(100));
        assert_eq!((p.limit(), p.window()), (100, Duration::from_secs(1)));
        let p = Policy::new("a", 3, Duration::from_millis(1500));
        assert_eq!((p.limit(), p.window()), (2, Duration::from_secs(1)));
        let p = Policy::new("a", 1, Duration::from_secs(3600 * 24 * 365));
        assert_eq!(p.limit(), 1);
        let p = Policy::new("a", u32::MAX, Duration::from_nanos(1));
        assert_eq!(p.limit(), u32::MAX);
        let p = Policy::new("a", 1, Duration::ZERO);
        assert!(p.limit() >= 1);
    }
}

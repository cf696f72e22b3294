//! A budget's quota as the IETF `RateLimit` fields describe it, reported to
//! [`seawall_core::quota`] when a layer up the stack listens.

use std::sync::Arc;
use std::time::Duration;

use seawall_core::quota::{self, Quota};

use crate::gcra::{Gcra, Rate};

/// The policy a budget states: `limit` calls every `window`, under the
/// budget's name. Made once, when the budget is built.
#[derive(Debug)]
pub(crate) struct Policy {
    name: Arc<str>,
    limit: u32,
    window: Duration,
}

impl Policy {
    /// `rate` calls every `per`, in whole seconds: a window under a second
    /// (or not a whole number of them) is stated per second, the rate scaled
    /// to it (rounded down, at least 1).
    pub(crate) fn new(name: &str, rate: u32, per: Duration) -> Policy {
        let (limit, window) = if per.subsec_nanos() == 0 && per.as_secs() > 0 {
            (rate, per)
        } else {
            let per_ns = seawall_core::time::nanos(per).max(1);
            let per_second = u128::from(rate) * 1_000_000_000 / u128::from(per_ns);
            (
                u32::try_from(per_second).unwrap_or(u32::MAX).max(1),
                Duration::from_secs(1),
            )
        };
        Policy {
            name: Arc::from(name),
            limit,
            window,
        }
    }

    /// Reports `cell`'s quota at `now` if a layer listens: what is left, and
    /// how long until the budget is whole again. Out of line: the call path
    /// only tests whether anyone listens.
    #[cold]
    #[inline(never)]
    pub(crate) fn report(&self, cell: &Gcra, rate: &Rate, now: u64) {
        quota::report(
            Quota::new(self.name.clone(), self.limit, self.window)
                .remaining(cell.available(rate, now))
                .reset(Duration::from_nanos(cell.debt(now))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_seconds() {
        let p = Policy::new("a", 100, Duration::from_secs(60));
        assert_eq!((p.limit, p.window), (100, Duration::from_secs(60)));
        let p = Policy::new("a", 10, Duration::from_millis(100));
        assert_eq!((p.limit, p.window), (100, Duration::from_secs(1)));
        let p = Policy::new("a", 3, Duration::from_millis(1500));
        assert_eq!((p.limit, p.window), (2, Duration::from_secs(1)));
        let p = Policy::new("a", 1, Duration::from_secs(3600 * 24 * 365));
        assert_eq!(p.limit, 1);
        let p = Policy::new("a", u32::MAX, Duration::from_nanos(1));
        assert_eq!(p.limit, u32::MAX);
        let p = Policy::new("a", 1, Duration::ZERO);
        assert!(p.limit >= 1);
    }
}

//! Checked time arithmetic: a configured duration added to an instant never
//! panics.
//!
//! Configured durations are bounded by [`MAX_DURATION`](crate::config::MAX_DURATION)
//! when a builder validates them, but a duration can also come from a peer (a
//! `Retry-After` header), from arithmetic on configured values (a backoff that
//! grows), or from a config built without validation. `Instant + Duration`
//! panics on overflow; [`deadline`] saturates to a point decades away instead,
//! which every timer treats as "never".

use std::time::Duration;
use tokio::time::Instant;

/// How far away [`deadline`] puts a point that cannot be represented: about
/// 30 years, the same horizon tokio uses for "never".
pub const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + after`, or a point about 30 years from `now` ([`FAR_FUTURE`]) when
/// that sum overflows or lies further away.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::time::{FAR_FUTURE, deadline};
/// use tokio::time::Instant;
///
/// let now = Instant::now();
/// assert_eq!(deadline(now, Duration::from_secs(1)), now + Duration::from_secs(1));
/// assert_eq!(deadline(now, Duration::MAX), now + FAR_FUTURE);
/// ```
pub fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after.min(FAR_FUTURE))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// `d` in whole nanoseconds, saturating at `u64::MAX` (about 584 years):
/// the unit every layer keeps its readings of a [`Clock`](crate::Clock) in.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::time::nanos;
///
/// assert_eq!(nanos(Duration::from_millis(2)), 2_000_000);
/// assert_eq!(nanos(Duration::MAX), u64::MAX);
/// ```
#[inline]
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// [`deadline`] for `std::time::Instant`.
pub fn std_deadline(now: std::time::Instant, after: Duration) -> std::time::Instant {
    now.checked_add(after.min(FAR_FUTURE))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_instead_of_panicking() {
        let now = Instant::now();
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            FAR_FUTURE,
            Duration::MAX,
        ] {
            let at = deadline(now, d);
            assert!(at >= now);
            assert!(at - now <= FAR_FUTURE);
            let s = std::time::Instant::now();
            let at = std_deadline(s, d);
            assert!(at >= s && at - s <= FAR_FUTURE);
        }
        assert_eq!(deadline(now, Duration::MAX), now + FAR_FUTURE);
    }
}

//! Growth of the open duration on repeated trips, jittered by seawall-core's
//! seedable [`SplitMix64`].

use std::time::Duration;

use seawall_core::config::MAX_DURATION;
use seawall_core::rand::SplitMix64;

use crate::config::OpenBackoff;

/// The open duration after `level` repeated trips: never longer than
/// `max_open_duration` nor [`MAX_DURATION`], and never a panic, whatever
/// the floats say (a config built without validation may hold NaN or
/// infinities; `Duration::from_secs_f64` panics on those).
pub(crate) fn open_duration(
    base: Duration,
    backoff: Option<&OpenBackoff>,
    level: u32,
    rng: &mut SplitMix64,
) -> Duration {
    let Some(b) = backoff else {
        return base.min(MAX_DURATION);
    };
    let max = b.max_open_duration.min(MAX_DURATION).as_secs_f64();
    let grown = base.as_secs_f64() * b.multiplier.powi(level.min(1_000) as i32);
    let spread = 1.0 + b.jitter * (2.0 * rng.next_f64() - 1.0);
    seconds(grown.min(max) * spread, max)
}

/// `secs` as a `Duration` in `0..=max` (`max` itself at most
/// [`MAX_DURATION`]): NaN and negatives are zero, anything larger is `max`.
fn seconds(secs: f64, max: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    // `max` is finite and at most 365 days, so this conversion cannot fail;
    // were it to, the cap is the answer.
    Duration::try_from_secs_f64(secs.min(max)).unwrap_or(MAX_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_jitters() {
        let base = Duration::from_secs(10);
        let mut rng = SplitMix64::new(1);
        assert_eq!(open_duration(base, None, 5, &mut rng), base);
        let no_jitter = OpenBackoff {
            jitter: 0.0,
            max_open_duration: Duration::from_secs(60),
            ..OpenBackoff::default()
        };
        let d = |level, rng: &mut SplitMix64| open_duration(base, Some(&no_jitter), level, rng);
        assert_eq!(d(0, &mut rng), Duration::from_secs(10));
        assert_eq!(d(1, &mut rng), Duration::from_secs(20));
        assert_eq!(d(2, &mut rng), Duration::from_secs(40));
        assert_eq!(d(3, &mut rng), Duration::from_secs(60));
        assert_eq!(d(u32::MAX, &mut rng), Duration::from_secs(60));
        let jittered = OpenBackoff {
            jitter: 0.5,
            ..no_jitter
        };
        for _ in 0..100 {
            let d = open_duration(base, Some(&jittered), 0, &mut rng);
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(15),
                "{d:?}"
            );
            let d = open_duration(base, Some(&jittered), 9, &mut rng);
            assert!(
                d >= Duration::from_secs(30) && d <= Duration::from_secs(60),
                "{d:?}"
            );
        }
    }

    #[test]
    fn hostile_numbers_never_panic_and_stay_bounded() {
        // Unvalidated configs: the breaker's own validation rejects these,
        // the arithmetic must still not panic on them.
        let huge = Duration::from_secs(u64::MAX);
        for (multiplier, jitter, max) in [
            (1e300, 0.0, huge),
            (2.0, 0.0, huge),
            (f64::INFINITY, 1.0, huge),
            (f64::NAN, f64::NAN, huge),
            (2.0, f64::INFINITY, Duration::from_secs(60)),
            (-1.0, -1.0, Duration::ZERO),
            (2.0, 1e308, MAX_DURATION),
        ] {
            let b = OpenBackoff {
                multiplier,
                jitter,
                max_open_duration: max,
                ..OpenBackoff::default()
            };
            let mut rng = SplitMix64::new(3);
            for level in [0, 1, 2, 60, 64, 1_000, u32::MAX] {
                for base in [Duration::from_nanos(1), Duration::from_secs(30), huge] {
                    let d = open_duration(base, Some(&b), level, &mut rng);
                    assert!(d <= MAX_DURATION, "{multiplier} {jitter} {max:?}: {d:?}");
                    assert!(d <= max, "{d:?} over {max:?}");
                }
            }
        }
        // Near the cap the conversion of u64::MAX seconds used to panic.
        let b = OpenBackoff {
            multiplier: 1e300,
            jitter: 0.0,
            max_open_duration: huge,
            ..OpenBackoff::default()
        };
        let d = open_duration(
            Duration::from_secs(30),
            Some(&b),
            1,
            &mut SplitMix64::new(1),
        );
        assert_eq!(d, MAX_DURATION);
        assert_eq!(
            open_duration(huge, None, 0, &mut SplitMix64::new(1)),
            MAX_DURATION
        );
    }
}

//! Growth of the open duration on repeated trips, and the tiny seedable PRNG
//! (splitmix64) that jitters it.

use std::time::Duration;

use crate::config::OpenBackoff;

/// splitmix64: one `u64` of state, good enough to spread open durations.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform float in `[0, 1)`.
pub(crate) fn unit(state: &mut u64) -> f64 {
    (splitmix(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// The open duration after `level` repeated trips.
pub(crate) fn open_duration(
    base: Duration,
    backoff: Option<&OpenBackoff>,
    level: u32,
    rng: &mut u64,
) -> Duration {
    let Some(b) = backoff else {
        return base;
    };
    let max = b.max_open_duration.as_secs_f64();
    let grown = (base.as_secs_f64() * b.multiplier.powi(level.min(1_000) as i32)).min(max);
    let spread = 1.0 + b.jitter * (2.0 * unit(rng) - 1.0);
    Duration::from_secs_f64((grown * spread).clamp(0.0, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_seeded_and_uniform_enough() {
        let (mut a, mut b) = (7, 7);
        assert_eq!(splitmix(&mut a), splitmix(&mut b));
        let mut s = 1;
        let mean = (0..10_000).map(|_| unit(&mut s)).sum::<f64>() / 10_000.0;
        assert!((0.45..0.55).contains(&mean), "{mean}");
    }

    #[test]
    fn grows_caps_and_jitters() {
        let base = Duration::from_secs(10);
        let mut rng = 1;
        assert_eq!(open_duration(base, None, 5, &mut rng), base);
        let no_jitter = OpenBackoff {
            jitter: 0.0,
            max_open_duration: Duration::from_secs(60),
            ..OpenBackoff::default()
        };
        let d = |level, rng: &mut u64| open_duration(base, Some(&no_jitter), level, rng);
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
}

//! The exponential backoff schedule of a [`LoopBudget`](crate::LoopBudget).
//!
//! Step `k` (counting from 0) waits `min(initial × multiplierᵏ, max)`,
//! computed in whole nanoseconds and rounded to the nearest one, so the
//! default schedule is exactly 10ms, 15ms, 22.5ms, 33.75ms, … up to 1s.

use std::time::Duration;

use seawall_core::time::nanos;

/// Delays of successive backoff steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Schedule {
    initial: u64,
    multiplier: f64,
    max: u64,
}

impl Schedule {
    /// A schedule; inputs are validated by the config (a multiplier below 1
    /// or not finite is treated as 1).
    pub(crate) fn new(initial: Duration, multiplier: f64, max: Duration) -> Schedule {
        let multiplier = if multiplier.is_finite() && multiplier >= 1.0 {
            multiplier
        } else {
            1.0
        };
        Schedule {
            initial: nanos(initial),
            multiplier,
            max: nanos(max).max(nanos(initial)),
        }
    }

    /// The delay of step `step`.
    pub(crate) fn delay(&self, step: u32) -> Duration {
        // Steps beyond 2000 are capped anyway for any multiplier > 1; the
        // clamp keeps `powi` in range.
        let exp = i32::try_from(step.min(2000)).unwrap_or(2000);
        let d = self.initial as f64 * self.multiplier.powi(exp);
        let ns = if d >= self.max as f64 {
            self.max
        } else {
            d.round() as u64
        };
        Duration::from_nanos(ns)
    }

    /// Whether step `step` has reached the cap (later steps are equal).
    pub(crate) fn is_capped(&self, step: u32) -> bool {
        nanos(self.delay(step)) >= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_exact() {
        let s = Schedule::new(Duration::from_millis(10), 1.5, Duration::from_secs(1));
        let got: Vec<u64> = (0..14).map(|k| nanos(s.delay(k))).collect();
        assert_eq!(
            got,
            [
                10_000_000,
                15_000_000,
                22_500_000,
                33_750_000,
                50_625_000,
                75_937_500,
                113_906_250,
                170_859_375,
                256_289_063, // 256_289_062.5 rounded to nearest
                384_433_594,
                576_650_391,
                864_975_586,
                1_000_000_000,
                1_000_000_000,
            ]
        );
        assert!(!s.is_capped(11));
        assert!(s.is_capped(12));
        assert_eq!(s.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn a_multiplier_of_one_is_constant() {
        let s = Schedule::new(Duration::from_millis(5), 1.0, Duration::from_secs(1));
        assert_eq!(s.delay(0), s.delay(1000));
        let bad = Schedule::new(Duration::from_millis(5), f64::NAN, Duration::ZERO);
        assert_eq!(bad.delay(3), Duration::from_millis(5));
    }
}

//! Backoff strategies: how long to wait before each retry.
//!
//! A [`Backoff`] is plain data (strategy, base, multiplier, jitter, cap). Its
//! delays come out of an iterator, [`Backoff::delays`] (seeded, so a test can
//! replay it) or [`Backoff::iter`] (randomly seeded), usable without tower:
//!
//! ```
//! use std::time::Duration;
//! use seawall_retry::Backoff;
//!
//! let ms = Duration::from_millis;
//! let exp = Backoff::exponential(ms(100), 2.0).max_delay(ms(500));
//! let first: Vec<_> = exp.delays(0).take(5).collect();
//! assert_eq!(first, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
//! ```
//!
//! With `n` the retry number (1 for the first retry):
//!
//! | strategy | delay before retry `n` |
//! |----------|------------------------|
//! | [`constant(d)`](Backoff::constant) | `d` |
//! | [`linear(base)`](Backoff::linear) | `base × n` |
//! | [`exponential(base, m)`](Backoff::exponential) | `base × m^(n-1)` |
//! | [`fibonacci(base)`](Backoff::fibonacci) | `base × F(n)`, F = 1, 1, 2, 3, 5, 8… |
//! | [`decorrelated_jitter(base, max)`](Backoff::decorrelated_jitter) | `min(max, uniform(base, 3 × previous))`, previous starting at `base` (AWS's "decorrelated jitter") |
//!
//! [`jitter(f)`](Backoff::jitter) spreads each delay of the first four
//! uniformly over `delay × [1 - f, 1 + f]`; [`max_delay`](Backoff::max_delay)
//! caps every delay, after jitter. Delays never panic: a result too large for
//! a `Duration` saturates (and is then capped).

use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::config::Check;
use seawall_core::time::nanos;

use seawall_core::rand::{SplitMix64, random_seed};

/// Which formula a [`Backoff`] follows; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Strategy {
    /// The same delay every time.
    Constant,
    /// `base × n`.
    Linear,
    /// `base × multiplier^(n-1)` (the default).
    #[default]
    Exponential,
    /// `base × F(n)`: grows more gently than doubling.
    Fibonacci,
    /// AWS's decorrelated jitter: `min(max_delay, uniform(base, 3 × previous))`.
    DecorrelatedJitter,
}

impl Strategy {
    /// The snake_case name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Constant => "constant",
            Strategy::Linear => "linear",
            Strategy::Exponential => "exponential",
            Strategy::Fibonacci => "fibonacci",
            Strategy::DecorrelatedJitter => "decorrelated_jitter",
        }
    }
}

/// How long to wait before each retry: a strategy, a jitter factor and a cap.
///
/// The constructors make a backoff without jitter or cap; [`Backoff::default`]
/// is the layer's default: exponential from 100ms, multiplier 2, jitter 0.2,
/// capped at 5s.
///
/// With feature `serde` it deserialises from
/// `{ strategy = "exponential", base = "100ms", multiplier = 2.0, jitter = 0.2, max_delay = "5s" }`
/// (every field optional, defaults as [`Backoff::default`]).
///
/// ```
/// use std::time::Duration;
/// use seawall_retry::Backoff;
///
/// let ms = Duration::from_millis;
/// // Fibonacci with ±10% jitter: every delay within 10% of base × F(n).
/// let fib = Backoff::fibonacci(ms(100)).jitter(0.1);
/// for (d, f) in fib.delays(7).zip([1u32, 1, 2, 3, 5, 8]) {
///     assert!(d >= ms(90) * f && d <= ms(110) * f, "{d:?}");
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Backoff {
    strategy: Strategy,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    base: Duration,
    multiplier: f64,
    jitter: f64,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    max_delay: Option<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100), 2.0)
            .jitter(0.2)
            .max_delay(Duration::from_secs(5))
    }
}

/// The growth bound of decorrelated jitter: each delay is drawn up to three
/// times the previous one, as in AWS's formula.
const DECORRELATED_GROWTH: f64 = 3.0;

impl Backoff {
    fn new(strategy: Strategy, base: Duration) -> Self {
        Backoff {
            strategy,
            base,
            multiplier: 2.0,
            jitter: 0.0,
            max_delay: None,
        }
    }

    /// The same delay before every retry (`Duration::ZERO` retries at once).
    pub fn constant(delay: Duration) -> Self {
        Backoff::new(Strategy::Constant, delay)
    }

    /// `base × n` before retry `n`.
    pub fn linear(base: Duration) -> Self {
        Backoff::new(Strategy::Linear, base)
    }

    /// `base × multiplier^(n-1)` before retry `n`. The multiplier must be
    /// in `1..=100` (checked by [`Backoff::validate`] and the layer's builder).
    pub fn exponential(base: Duration, multiplier: f64) -> Self {
        Backoff {
            multiplier,
            ..Backoff::new(Strategy::Exponential, base)
        }
    }

    /// `base × F(n)` before retry `n`, with F the Fibonacci numbers 1, 1, 2, 3, 5…
    pub fn fibonacci(base: Duration) -> Self {
        Backoff::new(Strategy::Fibonacci, base)
    }

    /// AWS's decorrelated jitter: each delay is uniform between `base` and
    /// three times the previous delay (the first "previous" is `base`), capped
    /// at `max`. Random by construction, so [`jitter`](Self::jitter) does not
    /// apply; `max` is the same cap as [`max_delay`](Self::max_delay).
    pub fn decorrelated_jitter(base: Duration, max: Duration) -> Self {
        Backoff::new(Strategy::DecorrelatedJitter, base).max_delay(max)
    }

    /// Spreads each delay uniformly over `delay × [1 - factor, 1 + factor]`;
    /// `factor` in `0..=1` (0, the constructors' default, means none). Not
    /// for decorrelated jitter.
    pub fn jitter(mut self, factor: f64) -> Self {
        self.jitter = factor;
        self
    }

    /// Caps every delay (after jitter).
    pub fn max_delay(mut self, cap: Duration) -> Self {
        self.max_delay = Some(cap);
        self
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The base delay.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The multiplier of the exponential strategy.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The jitter factor.
    pub fn jitter_factor(&self) -> f64 {
        self.jitter
    }

    /// The cap, if any.
    pub fn cap(&self) -> Option<Duration> {
        self.max_delay
    }

    /// Checks every field; the error names each bad one (`base`,
    /// `multiplier`, `jitter`, `max_delay`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_retry::Backoff;
    ///
    /// let err = Backoff::exponential(Duration::ZERO, 0.5).jitter(2.0).validate().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "base: 0s must be longer than zero; multiplier: 0.5 is not in 1..=100; jitter: 2 is not in 0..=1"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        // A zero constant delay (retry at once) is legitimate: a balancer
        // below may send the retry to another replica.
        if self.strategy == Strategy::Constant {
            check.duration("base", self.base);
        } else {
            check.nonzero_duration("base", self.base);
        }
        if self.strategy == Strategy::Exponential {
            check.in_range("multiplier", self.multiplier, 1.0, 100.0);
        }
        check.ratio("jitter", self.jitter);
        if let Some(cap) = self.max_delay {
            check.nonzero_duration("max_delay", cap);
            if !cap.is_zero() && !self.base.is_zero() {
                check.at_most("base", self.base, "max_delay", cap);
            }
        }
        if self.strategy == Strategy::DecorrelatedJitter {
            if self.jitter != 0.0 && self.jitter.is_finite() {
                check.fail(
                    "jitter",
                    self.jitter,
                    "does not apply to decorrelated_jitter, which is random already",
                );
            }
            if self.max_delay.is_none() {
                check.fail("max_delay", "none", "is required by decorrelated_jitter");
            }
        }
        check.finish()
    }

    /// The delays before retry 1, 2, 3… (an endless iterator), with jitter
    /// drawn from a generator seeded with `seed`: the same seed gives the
    /// same sequence.
    pub fn delays(&self, seed: u64) -> Delays {
        Delays {
            backoff: *self,
            n: 0,
            rng: SplitMix64::new(seed),
            fib: (0, 1),
            previous: nanos(self.base) as f64,
        }
    }

    /// The delays before retry 1, 2, 3…, with a random seed.
    pub fn iter(&self) -> Delays {
        self.delays(random_seed())
    }
}

impl IntoIterator for Backoff {
    type Item = Duration;
    type IntoIter = Delays;

    fn into_iter(self) -> Delays {
        self.iter()
    }
}

/// Nanoseconds to a `Duration`, saturating; NaN and negatives are zero.
fn duration(nanos: f64) -> Duration {
    if nanos.is_nan() || nanos <= 0.0 {
        Duration::ZERO
    } else if nanos >= u64::MAX as f64 {
        Duration::from_nanos(u64::MAX)
    } else {
        Duration::from_nanos(nanos.round() as u64)
    }
}

/// The endless iterator of a [`Backoff`]'s delays; see [`Backoff::delays`].
///
/// Computed in `f64` nanoseconds, exact for integer multiples of the base up
/// to about 104 days.
#[derive(Debug, Clone)]
pub struct Delays {
    backoff: Backoff,
    n: u32,
    rng: SplitMix64,
    fib: (u64, u64),
    previous: f64,
}

impl Delays {
    /// How many delays this iterator has produced.
    pub fn count_so_far(&self) -> u32 {
        self.n
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.n = self.n.saturating_add(1);
        let b = &self.backoff;
        let base = nanos(b.base) as f64;
        let cap = b.max_delay.map_or(f64::INFINITY, |d| nanos(d) as f64);
        let raw = match b.strategy {
            Strategy::Constant => base,
            Strategy::Linear => base * f64::from(self.n),
            Strategy::Exponential => {
                let exp = i32::try_from(self.n - 1).unwrap_or(i32::MAX);
                base * b.multiplier.powi(exp)
            }
            Strategy::Fibonacci => {
                let (a, f) = self.fib;
                self.fib = (f, a.saturating_add(f));
                base * f as f64
            }
            Strategy::DecorrelatedJitter => {
                let hi = (self.previous * DECORRELATED_GROWTH).max(base);
                let d = (base + self.rng.next_f64() * (hi - base)).min(cap);
                self.previous = d;
                return Some(duration(d));
            }
        };
        let jittered = if b.jitter > 0.0 {
            raw * (1.0 + b.jitter * (2.0 * self.rng.next_f64() - 1.0))
        } else {
            raw
        };
        // `f64::min` would turn a NaN (a NaN multiplier) into the cap.
        Some(duration(if jittered.is_nan() {
            0.0
        } else {
            jittered.min(cap)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn first(b: Backoff, n: usize) -> Vec<Duration> {
        b.delays(1).take(n).collect()
    }

    #[test]
    fn exact_sequences_without_jitter() {
        assert_eq!(first(Backoff::constant(ms(50)), 4), [ms(50); 4]);
        assert_eq!(
            first(Backoff::linear(ms(100)), 5),
            [ms(100), ms(200), ms(300), ms(400), ms(500)]
        );
        assert_eq!(
            first(Backoff::exponential(ms(100), 2.0), 6),
            [ms(100), ms(200), ms(400), ms(800), ms(1600), ms(3200)]
        );
        assert_eq!(
            first(Backoff::exponential(ms(100), 1.5), 4),
            [ms(100), ms(150), ms(225), Duration::from_micros(337_500)]
        );
        assert_eq!(
            first(Backoff::fibonacci(ms(100)), 7),
            [
                ms(100),
                ms(100),
                ms(200),
                ms(300),
                ms(500),
                ms(800),
                ms(1300)
            ]
        );
    }

    #[test]
    fn cap_applies_to_every_strategy() {
        let cap = ms(350);
        for b in [
            Backoff::constant(ms(500)),
            Backoff::linear(ms(100)),
            Backoff::exponential(ms(100), 2.0),
            Backoff::fibonacci(ms(100)),
            Backoff::decorrelated_jitter(ms(100), cap),
        ] {
            let b = b.max_delay(cap);
            let ds = first(b, 20);
            assert!(ds.iter().all(|d| *d <= cap), "{b:?}: {ds:?}");
            assert_eq!(ds[19], cap, "{b:?} reaches the cap");
        }
        assert_eq!(
            first(Backoff::linear(ms(100)).max_delay(ms(250)), 4),
            [ms(100), ms(200), ms(250), ms(250)]
        );
    }

    #[test]
    fn jitter_is_seeded_and_bounded() {
        let b = Backoff::exponential(ms(100), 2.0).jitter(0.25);
        let a: Vec<_> = b.delays(99).take(8).collect();
        let again: Vec<_> = b.delays(99).take(8).collect();
        assert_eq!(a, again, "same seed, same sequence");
        let other: Vec<_> = b.delays(100).take(8).collect();
        assert_ne!(a, other, "another seed, another sequence");
        for seed in 0..200 {
            for (i, d) in b.delays(seed).take(8).enumerate() {
                let nominal = 100.0 * 2f64.powi(i as i32);
                let got = d.as_secs_f64() * 1000.0;
                assert!(
                    got >= nominal * 0.75 - 1e-6 && got <= nominal * 1.25 + 1e-6,
                    "seed {seed} retry {}: {got}ms not within ±25% of {nominal}ms",
                    i + 1
                );
            }
        }
        // The jitter spreads: not all at the nominal value.
        assert!(a.iter().zip([100u64, 200, 400]).any(|(d, n)| *d != ms(n)));
    }

    #[test]
    fn decorrelated_jitter_follows_the_aws_formula() {
        let (base, cap) = (ms(100), ms(2000));
        let b = Backoff::decorrelated_jitter(base, cap);
        let seq: Vec<_> = b.delays(5).take(30).collect();
        assert_eq!(seq, b.delays(5).take(30).collect::<Vec<_>>());
        let mut previous = base;
        for d in &seq {
            assert!(*d >= base, "{d:?} below base");
            assert!(
                *d <= (previous * 3).min(cap),
                "{d:?} above 3 × {previous:?}"
            );
            previous = *d;
        }
        // Replays the formula with the same generator.
        let mut rng = SplitMix64::new(5);
        let mut prev = 100_000_000.0f64;
        for d in seq.iter().take(5) {
            let want = (1e8 + rng.next_f64() * (prev * 3.0 - 1e8)).min(2e9);
            assert_eq!(*d, duration(want));
            prev = want;
        }
    }

    #[test]
    fn huge_values_saturate_instead_of_panicking() {
        let b = Backoff::exponential(Duration::from_secs(u64::MAX / 2), 100.0);
        let ds: Vec<_> = b.delays(0).take(100).collect();
        assert_eq!(ds[99], Duration::from_nanos(u64::MAX));
        let nan = Backoff::exponential(ms(1), f64::NAN);
        assert_eq!(nan.delays(0).nth(3), Some(Duration::ZERO));
        let fib: Vec<_> = Backoff::fibonacci(ms(1)).delays(0).take(200).collect();
        assert_eq!(fib[199], Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn validation_names_every_bad_field() {
        assert!(Backoff::default().validate().is_ok());
        assert!(
            Backoff::decorrelated_jitter(ms(10), ms(1000))
                .validate()
                .is_ok()
        );
        let err = Backoff::decorrelated_jitter(ms(10), ms(5))
            .jitter(0.1)
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "base: 10ms must be at most max_delay (5ms); \
             jitter: 0.1 does not apply to decorrelated_jitter, which is random already"
        );
        let no_cap = Backoff {
            max_delay: None,
            ..Backoff::decorrelated_jitter(ms(10), ms(50))
        };
        assert_eq!(
            no_cap.validate().unwrap_err().to_string(),
            "max_delay: none is required by decorrelated_jitter"
        );
        assert_eq!(
            Backoff::constant(ms(1))
                .max_delay(Duration::ZERO)
                .validate()
                .unwrap_err()
                .to_string(),
            "max_delay: 0s must be longer than zero"
        );
        assert_eq!(
            Backoff::exponential(ms(1), f64::NAN)
                .validate()
                .unwrap_err()
                .to_string(),
            "multiplier: NaN is not in 1..=100"
        );
    }

    #[test]
    fn iter_is_endless_and_counts() {
        let mut it = Backoff::constant(ms(1)).iter();
        assert_eq!(it.nth(999), Some(ms(1)));
        assert_eq!(it.count_so_far(), 1000);
        let mut via_into = Backoff::linear(ms(2)).into_iter();
        assert_eq!(via_into.next(), Some(ms(2)));
    }

    proptest::proptest! {
        #[test]
        fn delays_respect_cap_and_jitter_bounds(
            kind in 0u8..5,
            base_ms in 1u64..10_000,
            multiplier in 1.0f64..10.0,
            jitter in 0.0f64..=1.0,
            cap_factor in 1u64..1000,
            seed: u64,
        ) {
            let base = ms(base_ms);
            let cap = base * u32::try_from(cap_factor).unwrap();
            let b = match kind {
                0 => Backoff::constant(base),
                1 => Backoff::linear(base),
                2 => Backoff::exponential(base, multiplier),
                3 => Backoff::fibonacci(base),
                _ => Backoff::decorrelated_jitter(base, cap),
            };
            let b = if kind < 4 { b.jitter(jitter) } else { b }.max_delay(cap);
            proptest::prop_assert!(b.validate().is_ok());
            let plain = Backoff { jitter: 0.0, ..b };
            for (d, nominal) in b.delays(seed).zip(plain.delays(seed)).take(64) {
                proptest::prop_assert!(d <= cap);
                if kind < 4 {
                    // Within ±jitter of the unjittered delay (then capped).
                    let lo = nominal.as_secs_f64() * (1.0 - jitter) - 1e-9;
                    let hi = (nominal.as_secs_f64() * (1.0 + jitter)).min(cap.as_secs_f64()) + 1e-9;
                    proptest::prop_assert!(d.as_secs_f64() >= lo.min(cap.as_secs_f64()) && d.as_secs_f64() <= hi);
                } else {
                    proptest::prop_assert!(d >= base);
                }
            }
        }
    }
}

//! Configuration: the plain-data [`BreakerConfig`], its [`TripPolicy`], the
//! optional [`OpenBackoff`], and the [`BreakerBuilder`] that validates them.
//!
//! Every default is written on the field it belongs to and in the table of
//! [`BreakerConfig`]. Validation reports every bad field at once, named as the
//! config field is named (`policy.rate`, `open_backoff.multiplier`, …).

use std::time::Duration;

use seawall_core::config::Check;
use seawall_core::{Clock, ConfigError, ErrorsAsFailures};

use crate::layer::BreakerLayer;
use crate::state::CircuitBreaker;

/// The longest count window ([`TripPolicy::FailureRateCount`]'s `window`):
/// 65 536 calls. The window is a ring of one byte per call, allocated when a
/// breaker is made (one per key in a keyed layer), so this bounds it at
/// 64 KiB; a failure rate needs far fewer calls to be meaningful.
pub const MAX_COUNT_WINDOW: u32 = 65_536;

/// The most buckets of a time window ([`TripPolicy::FailureRateTime`],
/// [`TripPolicy::SlowCallRate`]): 1000, allocated with the breaker.
pub const MAX_BUCKETS: u32 = 1_000;

/// When a closed breaker trips open.
///
/// Rate policies never trip before `min_calls` outcomes are in their window.
/// Outcomes classified [`Outcome::Ignore`](seawall_core::Outcome::Ignore)
/// (and cancelled calls, by default) are not counted at all.
///
/// With the `serde` feature it deserialises as a table with a `kind` tag:
/// `{ kind = "failure_rate_count", window = 100, rate = 0.5, min_calls = 20 }`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum TripPolicy {
    /// Trip on the `threshold`-th failure in a row; a success resets the
    /// count. Needs no clock: the cheapest policy, and the default
    /// (`threshold` 5).
    ConsecutiveFailures {
        /// Failures in a row that trip the breaker (default 5).
        threshold: u32,
    },
    /// Trip when the share of failures among the last `window` calls reaches
    /// `rate` (and at least `min_calls` calls are in the window).
    FailureRateCount {
        /// How many of the most recent calls the window holds.
        window: u32,
        /// Failure share in `(0, 1]` that trips the breaker.
        rate: f64,
        /// Calls the window must hold before the breaker may trip.
        min_calls: u32,
    },
    /// Trip when the share of failures among the calls of the last `window`
    /// of time reaches `rate`. The window is `buckets` buckets of
    /// `window / buckets` each, so memory is fixed and old outcomes leave the
    /// window one bucket at a time.
    FailureRateTime {
        /// How much recent time the window covers.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        window: Duration,
        /// Buckets the window is split into.
        buckets: u32,
        /// Failure share in `(0, 1]` that trips the breaker.
        rate: f64,
        /// Calls the window must hold before the breaker may trip.
        min_calls: u32,
    },
    /// Trip when the share of *slow* calls (slower than `threshold`, whatever
    /// their outcome) among the calls of the last `window` of time reaches
    /// `rate`. Time-bucketed like [`TripPolicy::FailureRateTime`]. Failures
    /// are counted in the stats but do not trip this policy.
    SlowCallRate {
        /// A call that takes longer than this is slow.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        threshold: Duration,
        /// Slow share in `(0, 1]` that trips the breaker.
        rate: f64,
        /// How much recent time the window covers.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        window: Duration,
        /// Buckets the window is split into.
        buckets: u32,
        /// Calls the window must hold before the breaker may trip.
        min_calls: u32,
    },
}

impl Default for TripPolicy {
    fn default() -> Self {
        TripPolicy::ConsecutiveFailures { threshold: 5 }
    }
}

impl TripPolicy {
    /// [`TripPolicy::ConsecutiveFailures`].
    pub fn consecutive_failures(threshold: u32) -> Self {
        TripPolicy::ConsecutiveFailures { threshold }
    }

    /// [`TripPolicy::FailureRateCount`].
    pub fn failure_rate_count(window: u32, rate: f64, min_calls: u32) -> Self {
        TripPolicy::FailureRateCount {
            window,
            rate,
            min_calls,
        }
    }

    /// [`TripPolicy::FailureRateTime`] with 10 buckets.
    pub fn failure_rate_time(window: Duration, rate: f64, min_calls: u32) -> Self {
        TripPolicy::FailureRateTime {
            window,
            buckets: 10,
            rate,
            min_calls,
        }
    }

    /// [`TripPolicy::SlowCallRate`] with 10 buckets.
    pub fn slow_call_rate(
        threshold: Duration,
        rate: f64,
        window: Duration,
        min_calls: u32,
    ) -> Self {
        TripPolicy::SlowCallRate {
            threshold,
            rate,
            window,
            buckets: 10,
            min_calls,
        }
    }

    fn check(&self, check: &mut Check) {
        fn rate(check: &mut Check, rate: f64) {
            check.ratio("policy.rate", rate);
            if rate == 0.0 {
                check.fail("policy.rate", rate, "must be greater than zero");
            }
        }
        fn buckets(check: &mut Check, window: Duration, buckets: u32) {
            check.nonzero_duration("policy.window", window);
            check.nonzero("policy.buckets", buckets);
            if buckets > 0 && window.as_nanos() < u128::from(buckets) * 1_000_000 {
                check.fail(
                    "policy.buckets",
                    buckets,
                    format!("must leave buckets of at least 1ms (window {window:?})"),
                );
            }
            // The buckets are allocated with the breaker (16 bytes each).
            if buckets > MAX_BUCKETS {
                check.fail("policy.buckets", buckets, "must be at most 1000");
            }
        }
        match *self {
            TripPolicy::ConsecutiveFailures { threshold } => {
                check.nonzero("policy.threshold", threshold);
            }
            TripPolicy::FailureRateCount {
                window,
                rate: r,
                min_calls,
            } => {
                // The window is a ring of one byte per call, allocated
                // when the breaker (or each key's breaker) is made: 64 KiB
                // at most, and no policy needs a longer memory than that.
                check.nonzero("policy.window", window);
                if window > MAX_COUNT_WINDOW {
                    check.fail("policy.window", window, "must be at most 65536");
                }
                rate(check, r);
                check.nonzero("policy.min_calls", min_calls);
                check.at_most("policy.min_calls", min_calls, "policy.window", window);
            }
            TripPolicy::FailureRateTime {
                window,
                buckets: b,
                rate: r,
                min_calls,
            } => {
                buckets(check, window, b);
                rate(check, r);
                check.nonzero("policy.min_calls", min_calls);
            }
            TripPolicy::SlowCallRate {
                threshold,
                rate: r,
                window,
                buckets: b,
                min_calls,
            } => {
                check.nonzero_duration("policy.threshold", threshold);
                rate(check, r);
                buckets(check, window, b);
                check.nonzero("policy.min_calls", min_calls);
            }
        }
    }

    pub(crate) fn needs_start_time(&self) -> bool {
        matches!(self, TripPolicy::SlowCallRate { .. })
    }
}

/// How the open duration grows when a breaker trips again soon after it
/// closed (or a probe fails): `open_duration × multiplier^n`, capped at
/// `max_open_duration`, then spread by `± jitter` (a fraction) from a seedable
/// PRNG. `n` goes back to zero once the breaker has stayed closed for
/// `reset_after`.
///
/// | field | default |
/// |-------|---------|
/// | `multiplier` | 2.0 |
/// | `max_open_duration` | 5 minutes |
/// | `jitter` | 0.1 (±10 %) |
/// | `reset_after` | 60s |
/// | `seed` | `None` (a random seed per layer) |
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct OpenBackoff {
    /// Growth factor per repeated trip (at least 1).
    pub multiplier: f64,
    /// The longest a breaker stays open (before jitter is bounded by it too).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_open_duration: Duration,
    /// Random spread in `0..=1` applied to each open duration.
    pub jitter: f64,
    /// Closed this long, the breaker forgets its earlier trips.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub reset_after: Duration,
    /// Seed of the jitter PRNG, for reproducible tests.
    pub seed: Option<u64>,
}

impl Default for OpenBackoff {
    fn default() -> Self {
        OpenBackoff {
            multiplier: 2.0,
            max_open_duration: Duration::from_secs(300),
            jitter: 0.1,
            reset_after: Duration::from_secs(60),
            seed: None,
        }
    }
}

impl OpenBackoff {
    /// The defaults (see the table above); change them with the setters:
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_breaker::OpenBackoff;
    ///
    /// let backoff = OpenBackoff::new()
    ///     .multiplier(3.0)
    ///     .max_open_duration(Duration::from_secs(120))
    ///     .jitter(0.0);
    /// assert_eq!(backoff.reset_after, Duration::from_secs(60));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`multiplier`](Self::multiplier) (default 2.0).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets [`max_open_duration`](Self::max_open_duration) (default 5 minutes).
    pub fn max_open_duration(mut self, d: Duration) -> Self {
        self.max_open_duration = d;
        self
    }

    /// Sets [`jitter`](Self::jitter) (default 0.1).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets [`reset_after`](Self::reset_after) (default 60s).
    pub fn reset_after(mut self, d: Duration) -> Self {
        self.reset_after = d;
        self
    }

    /// Sets [`seed`](Self::seed) (default none: a random seed per layer).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    fn check(&self, check: &mut Check, open_duration: Duration) {
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            check.fail(
                "open_backoff.multiplier",
                self.multiplier,
                "must be a finite number of at least 1",
            );
        }
        check.ratio("open_backoff.jitter", self.jitter);
        check.nonzero_duration("open_backoff.max_open_duration", self.max_open_duration);
        check.nonzero_duration("open_backoff.reset_after", self.reset_after);
        check.at_most(
            "open_duration",
            open_duration,
            "open_backoff.max_open_duration",
            self.max_open_duration,
        );
    }
}

/// The whole configuration of a breaker, as plain data.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | the `name` field of events and label of metrics |
/// | `policy` | [`TripPolicy::ConsecutiveFailures`] `{ threshold: 5 }` | when a closed breaker trips |
/// | `open_duration` | 30s | how long it stays open before probing |
/// | `half_open_max_calls` | 3 | concurrent probes admitted while half-open |
/// | `success_threshold` | 2 | probe successes that close it |
/// | `open_backoff` | `None` | growth of `open_duration` on repeated trips |
/// | `cancelled_is_failure` | `false` | whether a dropped, unfinished call counts as a failure |
///
/// With the `serde` feature, missing fields take their defaults, unknown
/// fields are an error, and durations are written `"30s"`, `"250ms"`.
///
/// Built from [`BreakerConfig::new`] (the defaults) and setters named as the
/// fields:
///
/// ```
/// use std::time::Duration;
/// use seawall_breaker::{BreakerConfig, TripPolicy};
///
/// let config = BreakerConfig::new()
///     .name("payments")
///     .policy(TripPolicy::consecutive_failures(3))
///     .open_duration(Duration::from_secs(10));
/// assert!(config.validate().is_ok());
/// assert_eq!(config.half_open_max_calls, 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Name used in events and metrics.
    pub name: String,
    /// When a closed breaker trips.
    pub policy: TripPolicy,
    /// How long an open breaker refuses calls before it admits probes.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub open_duration: Duration,
    /// The most probes in flight at once while half-open; further calls are
    /// rejected, not queued.
    pub half_open_max_calls: u32,
    /// Probe successes (in a row) that close a half-open breaker; any probe
    /// failure re-opens it.
    pub success_threshold: u32,
    /// Optional growth of the open duration on repeated trips.
    pub open_backoff: Option<OpenBackoff>,
    /// Count a call dropped before it finished (a cancelled future) as a
    /// failure. By default it counts as neither.
    pub cancelled_is_failure: bool,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            name: seawall_core::names::DEFAULT_NAME.to_owned(),
            policy: TripPolicy::default(),
            open_duration: Duration::from_secs(30),
            half_open_max_calls: 3,
            success_threshold: 2,
            open_backoff: None,
            cancelled_is_failure: false,
        }
    }
}

impl BreakerConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`name`](Self::name) (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets [`policy`](Self::policy) (default 5 consecutive failures).
    pub fn policy(mut self, policy: TripPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets [`open_duration`](Self::open_duration) (default 30s).
    pub fn open_duration(mut self, d: Duration) -> Self {
        self.open_duration = d;
        self
    }

    /// Sets [`half_open_max_calls`](Self::half_open_max_calls) (default 3).
    pub fn half_open_max_calls(mut self, n: u32) -> Self {
        self.half_open_max_calls = n;
        self
    }

    /// Sets [`success_threshold`](Self::success_threshold) (default 2).
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n;
        self
    }

    /// Sets [`open_backoff`](Self::open_backoff) (default none).
    pub fn open_backoff(mut self, backoff: OpenBackoff) -> Self {
        self.open_backoff = Some(backoff);
        self
    }

    /// Sets [`cancelled_is_failure`](Self::cancelled_is_failure) (default `false`).
    pub fn cancelled_is_failure(mut self, yes: bool) -> Self {
        self.cancelled_is_failure = yes;
        self
    }

    /// Checks every field; reports all bad ones.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        self.policy.check(&mut check);
        check
            .nonzero_duration("open_duration", self.open_duration)
            .nonzero("half_open_max_calls", self.half_open_max_calls)
            .nonzero("success_threshold", self.success_threshold);
        if let Some(b) = &self.open_backoff {
            b.check(&mut check, self.open_duration);
        }
        check.finish()
    }
}

/// Builds a [`BreakerLayer`] (or a bare [`CircuitBreaker`]); every method
/// sets the [`BreakerConfig`] field of the same name.
///
/// ```
/// use std::time::Duration;
/// use seawall_breaker::{BreakerLayer, TripPolicy};
///
/// let layer = BreakerLayer::builder()
///     .name("payments")
///     .policy(TripPolicy::failure_rate_count(50, 0.5, 10))
///     .open_duration(Duration::from_secs(10))
///     .build()
///     .expect("valid config");
/// assert_eq!(layer.config().half_open_max_calls, 3);
///
/// let err = BreakerLayer::builder().half_open_max_calls(0).build().unwrap_err();
/// assert_eq!(err.to_string(), "half_open_max_calls: 0 must be greater than zero");
/// ```
#[derive(Debug, Clone)]
pub struct BreakerBuilder<C = ErrorsAsFailures> {
    config: BreakerConfig,
    classify: C,
    clock: Clock,
}

impl Default for BreakerBuilder {
    fn default() -> Self {
        BreakerBuilder::from_config(BreakerConfig::default())
    }
}

impl BreakerBuilder {
    /// Starts from a whole config.
    pub fn from_config(config: BreakerConfig) -> BreakerBuilder {
        BreakerBuilder {
            config,
            classify: ErrorsAsFailures,
            clock: Clock::default(),
        }
    }
}

impl<C> BreakerBuilder<C> {
    /// Sets [`BreakerConfig::name`] (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Sets [`BreakerConfig::policy`] (default 5 consecutive failures).
    pub fn policy(mut self, policy: TripPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Sets [`BreakerConfig::open_duration`] (default 30s).
    pub fn open_duration(mut self, d: Duration) -> Self {
        self.config.open_duration = d;
        self
    }

    /// Sets [`BreakerConfig::half_open_max_calls`] (default 3).
    pub fn half_open_max_calls(mut self, n: u32) -> Self {
        self.config.half_open_max_calls = n;
        self
    }

    /// Sets [`BreakerConfig::success_threshold`] (default 2).
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.config.success_threshold = n;
        self
    }

    /// Sets [`BreakerConfig::open_backoff`] (default none).
    pub fn open_backoff(mut self, backoff: OpenBackoff) -> Self {
        self.config.open_backoff = Some(backoff);
        self
    }

    /// Sets [`BreakerConfig::cancelled_is_failure`] (default `false`).
    pub fn cancelled_is_failure(mut self, yes: bool) -> Self {
        self.config.cancelled_is_failure = yes;
        self
    }

    /// Sets what counts as a failure (default [`ErrorsAsFailures`]).
    pub fn classify<C2>(self, classify: C2) -> BreakerBuilder<C2> {
        BreakerBuilder {
            config: self.config,
            classify,
            clock: self.clock,
        }
    }

    /// Sets where the breaker reads the time (default [`Clock::tokio`],
    /// which follows `tokio::time::pause`/`advance`).
    ///
    /// The breaker only reads its clock (the open period, the time window,
    /// slow calls, time in state); it sets no timer, so any clock works: a
    /// [`Clock::manual`] drives it with no runtime at all, and the TSC clock
    /// (`Clock::tsc`, seawall-core feature `quanta`) makes the reading of
    /// an open breaker's refusal cheaper.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_breaker::{CircuitBreaker, State};
    /// use seawall_core::Clock;
    ///
    /// let (clock, hand) = Clock::manual();
    /// let breaker = CircuitBreaker::builder().clock(clock).build_breaker().unwrap();
    /// breaker.trip();
    /// hand.advance(Duration::from_secs(30)); // the default open duration
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// ```
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The config built so far.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Validates the config and builds the layer (and its one shared breaker).
    pub fn build(self) -> Result<BreakerLayer<C>, ConfigError> {
        let breaker = CircuitBreaker::with_clock(&self.config, self.clock)?;
        Ok(BreakerLayer::from_parts(breaker, self.classify))
    }

    /// Validates the config and builds a bare [`CircuitBreaker`], without tower.
    pub fn build_breaker(self) -> Result<CircuitBreaker, ConfigError> {
        CircuitBreaker::with_clock(&self.config, self.clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = BreakerConfig::default();
        assert_eq!(c.policy, TripPolicy::ConsecutiveFailures { threshold: 5 });
        assert_eq!(c.open_duration, Duration::from_secs(30));
        assert_eq!(c.half_open_max_calls, 3);
        assert_eq!(c.success_threshold, 2);
        assert_eq!(c.name, "default");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let c = BreakerConfig {
            policy: TripPolicy::consecutive_failures(0),
            open_duration: Duration::ZERO,
            half_open_max_calls: 0,
            success_threshold: 0,
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "policy.threshold: 0 must be greater than zero; \
             open_duration: 0s must be longer than zero; \
             half_open_max_calls: 0 must be greater than zero; \
             success_threshold: 0 must be greater than zero"
        );
    }

    #[test]
    fn rate_policies_are_checked() {
        let c = BreakerConfig {
            policy: TripPolicy::failure_rate_count(0, 1.5, 0),
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "policy.window: 0 must be greater than zero; \
             policy.rate: 1.5 is not in 0..=1; \
             policy.min_calls: 0 must be greater than zero"
        );
        let c = BreakerConfig {
            policy: TripPolicy::failure_rate_count(10, 0.0, 20),
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "policy.rate: 0 must be greater than zero; \
             policy.min_calls: 20 must be at most policy.window (10)"
        );
        let c = BreakerConfig {
            policy: TripPolicy::failure_rate_time(Duration::ZERO, -0.1, 5),
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "policy.window: 0s must be longer than zero; \
             policy.buckets: 10 must leave buckets of at least 1ms (window 0ns); \
             policy.rate: -0.1 is not in 0..=1"
        );
        let c = BreakerConfig {
            policy: TripPolicy::slow_call_rate(Duration::ZERO, f64::NAN, Duration::from_secs(1), 1),
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "policy.threshold: 0s must be longer than zero; policy.rate: NaN is not in 0..=1"
        );
    }

    #[test]
    fn backoff_is_checked() {
        let c = BreakerConfig {
            open_backoff: Some(OpenBackoff {
                multiplier: 0.5,
                max_open_duration: Duration::from_secs(1),
                jitter: 2.0,
                reset_after: Duration::ZERO,
                seed: None,
            }),
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "open_backoff.multiplier: 0.5 must be a finite number of at least 1; \
             open_backoff.jitter: 2 is not in 0..=1; \
             open_backoff.reset_after: 0s must be longer than zero; \
             open_duration: 30s must be at most open_backoff.max_open_duration (1s)"
        );
    }

    #[test]
    fn every_duration_and_size_is_bounded() {
        let huge = Duration::from_secs(u64::MAX);
        let c = BreakerConfig {
            open_duration: huge,
            open_backoff: Some(OpenBackoff {
                max_open_duration: huge,
                reset_after: huge,
                ..OpenBackoff::default()
            }),
            ..BreakerConfig::default()
        };
        let e = c.validate().unwrap_err();
        let fields: Vec<_> = e.errors().iter().map(|e| e.field()).collect();
        assert_eq!(
            fields,
            [
                "open_duration",
                "open_backoff.max_open_duration",
                "open_backoff.reset_after"
            ]
        );
        // The trip that used to panic: a cap of u64::MAX seconds, reached at
        // the first repeated trip.
        let c = BreakerConfig {
            open_backoff: Some(OpenBackoff {
                multiplier: 1e300,
                max_open_duration: huge,
                ..OpenBackoff::default()
            }),
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "open_backoff.max_open_duration: 18446744073709551615s must be at most 365 days (31536000s)"
        );
        let max = seawall_core::config::MAX_DURATION;
        let c = BreakerConfig {
            open_duration: max,
            policy: TripPolicy::slow_call_rate(max, 0.5, max, 1),
            open_backoff: Some(OpenBackoff {
                max_open_duration: max,
                reset_after: max,
                ..OpenBackoff::default()
            }),
            ..BreakerConfig::default()
        };
        assert!(c.validate().is_ok(), "MAX_DURATION itself is allowed");
        let c = BreakerConfig {
            policy: TripPolicy::slow_call_rate(huge, 0.5, huge, 1),
            ..BreakerConfig::default()
        };
        let e = c.validate().unwrap_err();
        let fields: Vec<_> = e.errors().iter().map(|e| e.field()).collect();
        assert_eq!(fields, ["policy.threshold", "policy.window"]);
        let c = BreakerConfig {
            policy: TripPolicy::failure_rate_count(u32::MAX, 0.5, 1),
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "policy.window: 4294967295 must be at most 65536"
        );
        let c = BreakerConfig {
            policy: TripPolicy::FailureRateTime {
                window: max,
                buckets: u32::MAX,
                rate: 0.5,
                min_calls: 1,
            },
            ..BreakerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "policy.buckets: 4294967295 must be at most 1000"
        );
    }
}

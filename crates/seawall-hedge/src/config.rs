//! [`HedgeConfig`] (the layer as data) and [`HedgeBuilder`].

use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use seawall_core::classify::ErrorsAsFailures;
use seawall_core::clone::{ByClone, CloneFn};
use seawall_core::config::{Check, MAX_DURATION};
use seawall_core::names::DEFAULT_NAME;
use seawall_core::{Clock, ConfigError, KeyMapConfig};
use seawall_timeout::AdaptiveTimeoutConfig;

use crate::budget::MAX_BUDGET_HEDGES;
use crate::keyed::KeyedHedgeLayer;
use crate::layer::HedgeLayer;

/// The most hedges per request ([`HedgeConfig::max_hedges`]) a layer
/// accepts: 4. Each hedge is another full call to the backend; past a
/// couple, a hedge adds load far faster than it removes latency.
pub const MAX_HEDGES: u32 = 4;

/// The most latencies a layer waits for before following the percentile
/// ([`HedgeConfig::min_samples`]).
pub const MAX_MIN_SAMPLES: u64 = seawall_timeout::MAX_SAMPLES;

/// Everything about a hedging layer that is data.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | `name` field of tracing events, `name` label of metrics |
/// | `max_hedges` | 1 | extra attempts per request, in `0..=`[`MAX_HEDGES`] (0 turns hedging off) |
/// | `delay` | none | a fixed hedge delay; when set, nothing is measured |
/// | `percentile` | 95 | the percentile of the layer's recent first-attempt latencies the delay follows, in `(0, 100]` |
/// | `multiplier` | 1.0 | delay = percentile × `multiplier`, before clamping; greater than zero |
/// | `min_delay` | 1ms | the floor of the delay |
/// | `max_delay` | 1s | the ceiling of the delay |
/// | `initial_delay` | `max_delay` | the delay until `min_samples` latencies are known, in `min_delay..=max_delay` |
/// | `min_samples` | 100 | latencies needed before the percentile is used, in `1..=`[`MAX_MIN_SAMPLES`] |
/// | `window` | 10s | how far back latencies count |
/// | `budget_ratio` | 0.1 | hedges allowed per call, in `0..=1` |
/// | `budget_min_per_sec` | 10 | hedges allowed per second whatever the traffic, at most [`MAX_BUDGET_HEDGES`] |
/// | `budget_burst` | 100 | hedges the budget may save up, in `1..=`[`MAX_BUDGET_HEDGES`] |
///
/// Every duration is at most 365 days ([`MAX_DURATION`]). See
/// [`HedgeBudget`](crate::HedgeBudget) for what the three budget fields
/// guarantee.
///
/// With feature `serde` (every field optional):
///
/// ```toml
/// name = "users-api"
/// percentile = 90.0
/// min_delay = "2ms"
/// max_delay = "250ms"
/// budget_ratio = 0.05
/// ```
///
/// In code, with the setters (the struct is `#[non_exhaustive]`):
///
/// ```
/// use std::time::Duration;
/// use seawall_hedge::HedgeConfig;
///
/// let config = HedgeConfig::new()
///     .name("users-api")
///     .percentile(90.0)
///     .max_delay(Duration::from_millis(250));
/// assert!(config.validate().is_ok());
///
/// let err = config.max_hedges(9).validate().unwrap_err();
/// assert_eq!(err.to_string(), "max_hedges: 9 is not in 0..=4");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct HedgeConfig {
    /// The layer's name in events and metrics.
    pub name: String,
    /// Extra attempts per request (0 turns hedging off).
    pub max_hedges: u32,
    /// A fixed hedge delay; when set, nothing is measured.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub delay: Option<Duration>,
    /// The percentile of recent latencies the delay follows.
    pub percentile: f64,
    /// Delay = percentile × `multiplier`, before clamping.
    pub multiplier: f64,
    /// The shortest delay.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub min_delay: Duration,
    /// The longest delay.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_delay: Duration,
    /// The delay until `min_samples` latencies are known (`None`: `max_delay`).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub initial_delay: Option<Duration>,
    /// Latencies needed in the window before the percentile is used.
    pub min_samples: u64,
    /// How far back latencies count.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// Hedges allowed per call.
    pub budget_ratio: f64,
    /// Hedges allowed per second whatever the traffic.
    pub budget_min_per_sec: u32,
    /// Hedges the budget may save up.
    pub budget_burst: u32,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            name: DEFAULT_NAME.to_owned(),
            max_hedges: 1,
            delay: None,
            percentile: 95.0,
            multiplier: 1.0,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(1),
            initial_delay: None,
            min_samples: 100,
            window: Duration::from_secs(10),
            budget_ratio: 0.1,
            budget_min_per_sec: 10,
            budget_burst: 100,
        }
    }
}

seawall_core::config_setters!(HedgeConfig {
    max_hedges: u32,
    delay: Duration,
    percentile: f64,
    multiplier: f64,
    min_delay: Duration,
    max_delay: Duration,
    initial_delay: Duration,
    min_samples: u64,
    window: Duration,
    budget_ratio: f64,
    budget_min_per_sec: u32,
    budget_burst: u32,
});

impl HedgeConfig {
    /// Sets `name` (default `"default"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks every field; the error names each bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check.in_range("max_hedges", self.max_hedges, 0, MAX_HEDGES);
        if let Some(delay) = self.delay {
            check.duration("delay", delay);
        }
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            check.fail("percentile", self.percentile, "is not in (0, 100]");
        }
        check.positive("multiplier", self.multiplier);
        check.nonzero_duration("min_delay", self.min_delay);
        check.nonzero_duration("max_delay", self.max_delay);
        check.at_most("min_delay", self.min_delay, "max_delay", self.max_delay);
        if let Some(initial) = self.initial_delay
            && self.min_delay <= self.max_delay
            && !(self.min_delay..=self.max_delay).contains(&initial)
        {
            let reason = format!(
                "is not in min_delay..=max_delay ({:?}..={:?})",
                self.min_delay, self.max_delay
            );
            check.fail("initial_delay", format_args!("{initial:?}"), reason);
        }
        check.in_range("min_samples", self.min_samples, 1, MAX_MIN_SAMPLES);
        check.nonzero_duration("window", self.window);
        check.ratio("budget_ratio", self.budget_ratio);
        check.in_range(
            "budget_min_per_sec",
            self.budget_min_per_sec,
            0,
            MAX_BUDGET_HEDGES,
        );
        check.in_range("budget_burst", self.budget_burst, 1, MAX_BUDGET_HEDGES);
        check.finish()
    }

    /// The adaptive timeout's config whose deadline is this layer's delay.
    pub(crate) fn tracker_config(&self) -> AdaptiveTimeoutConfig {
        let mut builder = AdaptiveTimeoutConfig::builder()
            .name(self.name.clone())
            .percentile(self.percentile)
            .multiplier(self.multiplier)
            .min(self.min_delay)
            .max(self.max_delay)
            .base(self.initial_delay.unwrap_or(self.max_delay))
            .min_samples(self.min_samples)
            .window(self.window);
        if let Some(delay) = self.delay {
            // The tracker refuses a zero fixed deadline; a zero delay hedges
            // at once, which the shortest timer does too.
            builder = builder.fixed(delay.max(Duration::from_nanos(1)).min(MAX_DURATION));
        }
        builder.into_config()
    }
}

/// Builds a [`HedgeLayer`]; from [`HedgeLayer::builder`].
///
/// Methods named after [`HedgeConfig`]'s fields set them;
/// [`clone_with`](Self::clone_with), [`classify`](Self::classify) and
/// [`clock`](Self::clock) add what is code. [`build`](Self::build) reports
/// every bad field at once.
///
/// ```
/// use std::time::Duration;
/// use seawall_hedge::HedgeLayer;
///
/// let err = HedgeLayer::builder()
///     .max_hedges(5)
///     .min_delay(Duration::from_secs(2))
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "max_hedges: 5 is not in 0..=4; min_delay: 2s must be at most max_delay (1s)"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct HedgeBuilder<P = ByClone, C = ErrorsAsFailures> {
    config: HedgeConfig,
    clock: Clock,
    policy: P,
    classify: C,
}

impl HedgeBuilder {
    /// A builder holding the defaults.
    pub fn new() -> Self {
        HedgeBuilder {
            config: HedgeConfig::default(),
            clock: Clock::tokio(),
            policy: ByClone,
            classify: ErrorsAsFailures,
        }
    }
}

impl Default for HedgeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! builder_setters {
    ($($field:ident: $t:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets [`HedgeConfig::", stringify!($field), "`].")]
            #[must_use]
            pub fn $field(mut self, value: $t) -> Self {
                self.config.$field = value.into();
                self
            }
        )*
    };
}

impl<P, C> HedgeBuilder<P, C> {
    builder_setters!(
        max_hedges: u32,
        delay: Duration,
        percentile: f64,
        multiplier: f64,
        min_delay: Duration,
        max_delay: Duration,
        initial_delay: Duration,
        min_samples: u64,
        window: Duration,
        budget_ratio: f64,
        budget_min_per_sec: u32,
        budget_burst: u32,
    );

    /// Sets [`HedgeConfig::name`].
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Replaces the whole config.
    #[must_use]
    pub fn config(mut self, config: HedgeConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock latencies and the budget's floor are read on (default
    /// tokio's). Timers are always tokio's.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Copies requests with `f`; a request for which it returns `None` is
    /// sent once and never hedged (counted in
    /// [`HedgeStats::not_cloneable`](crate::HedgeStats::not_cloneable)).
    /// Providing it is how a caller says which requests are safe to send
    /// twice (idempotent).
    pub fn clone_with<F>(self, f: F) -> HedgeBuilder<CloneFn<F>, C> {
        HedgeBuilder {
            config: self.config,
            clock: self.clock,
            policy: CloneFn::new(f),
            classify: self.classify,
        }
    }

    /// Copies requests with `policy` (any
    /// [`CloneRequest`](seawall_core::clone::CloneRequest)).
    pub fn clone_policy<Q>(self, policy: Q) -> HedgeBuilder<Q, C> {
        HedgeBuilder {
            config: self.config,
            clock: self.clock,
            policy,
            classify: self.classify,
        }
    }

    /// Decides which answers are good (default: every `Ok`). An attempt
    /// whose answer is a [`Failure`](seawall_core::Outcome::Failure) does
    /// not end the call while another attempt is still running.
    pub fn classify<D>(self, classify: D) -> HedgeBuilder<P, D> {
        HedgeBuilder {
            config: self.config,
            clock: self.clock,
            policy: self.policy,
            classify,
        }
    }

    /// Validates the config and builds the layer.
    pub fn build(self) -> Result<HedgeLayer<P, C>, ConfigError> {
        HedgeLayer::from_parts(&self.config, self.clock, self.policy, self.classify)
    }

    /// Validates the config and builds a [`KeyedHedgeLayer`] keyed by
    /// `key_fn`, its keys held in a map bounded by `keys` (errors under
    /// `keys.`).
    pub fn build_keyed<F, K>(
        self,
        key_fn: F,
        keys: KeyMapConfig,
    ) -> Result<KeyedHedgeLayer<F, K, P, C>, ConfigError>
    where
        K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    {
        let clock = self.clock.clone();
        let config = self.config.clone();
        self.build()?.keyed(key_fn, &config, keys, clock)
    }
}

//! Configuration: [`AdaptiveTimeoutConfig`] (plain data, deserialisable with
//! feature `serde`) and [`AdaptiveTimeoutBuilder`], which fills and
//! validates it.
//!
//! Every field's default is in the table on [`AdaptiveTimeoutConfig`].
//! Validation reports every bad field at once, named as the field.

use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::config::Check;

use crate::layer::{AdaptiveTimeoutLayer, KeyedAdaptiveTimeoutLayer};

/// The longest `max` or `fixed` deadline accepted: 365 days, the
/// [`MAX_DURATION`](seawall_core::config::MAX_DURATION) that bounds every
/// duration of the config.
pub const LONGEST_DEADLINE: Duration = seawall_core::config::MAX_DURATION;

/// The largest `min_samples` and `refresh_every`: 2^24 (16 777 216) samples.
pub const MAX_SAMPLES: u64 = 1 << 24;

/// The configuration of an adaptive (or fixed) timeout, as plain data.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | the `name` field of tracing events and label of metrics |
/// | `fixed` | none | when set, a fixed deadline: nothing is measured, every other latency field is ignored |
/// | `percentile` | 99.0 | which latency percentile of the window the deadline follows, in `(0, 100]` |
/// | `multiplier` | 1.5 | deadline = percentile × multiplier (before clamping) |
/// | `min` | 10ms | the shortest deadline ever applied |
/// | `max` | 10s | the longest deadline ever applied |
/// | `base` | 1s | the deadline until `min_samples` latencies are in the window; in `min..=max` |
/// | `min_samples` | 100 | latencies needed in the window before the percentile is trusted |
/// | `window` | 60s | how far back latencies count; ages out in 6 steps of `window / 6` |
/// | `refresh_every` | 1000 | the deadline is recomputed after this many samples per recorder shard (and at every window step) |
/// | `sample_every` | 32 | once the window holds 16 × `min_samples` × `sample_every` calls (so at least 16 × `min_samples` are still measured), measure about one call in this many, chosen at random, to save a clock read per call; 1 measures every call |
/// | `key_capacity` | 1000 | keyed layer only: most keys held at once |
/// | `key_idle_ttl` | 5 minutes | keyed layer only: a key unused this long may be evicted |
/// | `key_metrics` | `false` | keyed layer only, feature `metrics`: report each key's learned deadline as its own series (`key` label); see below |
///
/// Per-key series are opt-in because keys often come from requests: with
/// `key_metrics`, a key's series exists from its first learned deadline and
/// reads NaN once the key leaves the map, and an exporter's idle timeout
/// (metrics-exporter-prometheus: `idle_timeout`) must drop it, or the series
/// of every key ever learned stay in every scrape. Without it, a keyed layer
/// reports only its name-labelled counters.
///
/// Every duration is at most 365 days ([`MAX_DURATION`](seawall_core::config::MAX_DURATION),
/// also [`LONGEST_DEADLINE`]); `min_samples` and `refresh_every` are at most
/// [`MAX_SAMPLES`]; `key_capacity` at most
/// [`MAX_CAPACITY`](seawall_core::config::MAX_CAPACITY); `percentile` is in
/// `(0, 100]` and `multiplier` a finite number greater than zero.
///
/// The deadline is `clamp(percentile(p) × multiplier, min, max)`; see the
/// [crate docs](crate) for how it is computed and kept up to date.
///
/// With feature `serde`, the config deserialises with every field optional
/// and durations written as `"250ms"` or `"30s"`:
///
/// ```
/// use std::time::Duration;
/// use seawall_timeout::AdaptiveTimeoutConfig;
///
/// let cfg = AdaptiveTimeoutConfig { max: Duration::from_secs(2), ..Default::default() };
/// assert_eq!(cfg.percentile, 99.0);
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct AdaptiveTimeoutConfig {
    /// The layer's name in tracing events and metric labels.
    pub name: String,
    /// A fixed deadline; when set, the layer measures nothing.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub fixed: Option<Duration>,
    /// The percentile of recent latencies the deadline follows, in `(0, 100]`.
    pub percentile: f64,
    /// Deadline = percentile × `multiplier`, before clamping; greater than zero.
    pub multiplier: f64,
    /// The shortest deadline.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub min: Duration,
    /// The longest deadline.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max: Duration,
    /// The deadline before `min_samples` latencies are in the window.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub base: Duration,
    /// Latencies needed in the window before the percentile is used.
    pub min_samples: u64,
    /// How far back latencies count.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// Samples per recorder shard between two recomputations of the deadline.
    pub refresh_every: u32,
    /// Under high traffic, measure about one call in this many (1..=1024).
    pub sample_every: u32,
    /// Keyed layer: most keys held at once.
    pub key_capacity: usize,
    /// Keyed layer: how long a key must be unused before it may be evicted.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub key_idle_ttl: Duration,
    /// Keyed layer, feature `metrics`: a series per key for its learned
    /// deadline (default `false`; see the table above).
    pub key_metrics: bool,
}

impl Default for AdaptiveTimeoutConfig {
    fn default() -> Self {
        AdaptiveTimeoutConfig {
            name: seawall_core::names::DEFAULT_NAME.to_owned(),
            fixed: None,
            percentile: 99.0,
            multiplier: 1.5,
            min: Duration::from_millis(10),
            max: Duration::from_secs(10),
            base: Duration::from_secs(1),
            min_samples: 100,
            window: Duration::from_secs(60),
            refresh_every: 1000,
            sample_every: 32,
            key_capacity: 1000,
            key_idle_ttl: Duration::from_secs(300),
            key_metrics: false,
        }
    }
}

impl AdaptiveTimeoutConfig {
    /// Checks every field; the error names each bad one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_timeout::AdaptiveTimeoutConfig;
    ///
    /// let cfg = AdaptiveTimeoutConfig { percentile: 0.0, multiplier: -1.0, ..Default::default() };
    /// assert_eq!(
    ///     cfg.validate().unwrap_err().to_string(),
    ///     "percentile: 0 is not in (0, 100]; multiplier: -1 must be a finite number greater than zero"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        // `nonzero_duration` bounds every duration by MAX_DURATION, which is
        // LONGEST_DEADLINE: a deadline never overflows an `Instant`.
        if let Some(fixed) = self.fixed {
            check.nonzero_duration("fixed", fixed);
        }
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            check.fail("percentile", self.percentile, "is not in (0, 100]");
        }
        check.positive("multiplier", self.multiplier);
        check.nonzero_duration("min", self.min);
        check.nonzero_duration("max", self.max);
        check.at_most("min", self.min, "max", self.max);
        if self.min <= self.max && !(self.min..=self.max).contains(&self.base) {
            let reason = format!("is not in min..=max ({:?}..={:?})", self.min, self.max);
            check.fail("base", format_args!("{:?}", self.base), reason);
        }
        // Counts of samples, not sizes of anything allocated, but bounded so
        // a typo cannot mean "never adaptive" or "never refreshed".
        check.in_range("min_samples", self.min_samples, 1, MAX_SAMPLES);
        check.nonzero_duration("window", self.window);
        check.in_range("refresh_every", self.refresh_every, 1, MAX_SAMPLES as u32);
        check.in_range("sample_every", self.sample_every, 1, 1024);
        check.capacity("key_capacity", self.key_capacity);
        check.nonzero_duration("key_idle_ttl", self.key_idle_ttl);
        check.finish()
    }
}

/// Builds an [`AdaptiveTimeoutLayer`] (or its keyed variant); made by
/// [`AdaptiveTimeoutLayer::builder`]. Each method sets the
/// [`AdaptiveTimeoutConfig`] field of the same name; the defaults are in its
/// table.
///
/// ```
/// use std::time::Duration;
/// use seawall_timeout::AdaptiveTimeoutLayer;
///
/// let layer = AdaptiveTimeoutLayer::builder()
///     .name("search")
///     .percentile(99.9)
///     .multiplier(2.0)
///     .min(Duration::from_millis(50))
///     .max(Duration::from_secs(5))
///     .build()
///     .expect("valid config");
/// assert_eq!(layer.stats().deadline, Duration::from_secs(1), "base until warmed up");
///
/// let err = AdaptiveTimeoutLayer::builder().min(Duration::from_secs(20)).build().unwrap_err();
/// assert_eq!(err.to_string(), "min: 20s must be at most max (10s)");
/// ```
#[derive(Debug, Clone, Default)]
pub struct AdaptiveTimeoutBuilder {
    config: AdaptiveTimeoutConfig,
}

impl AdaptiveTimeoutBuilder {
    /// A builder holding the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the name used in tracing events and metric labels.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Switches to a fixed deadline: nothing is measured.
    pub fn fixed(mut self, deadline: Duration) -> Self {
        self.config.fixed = Some(deadline);
        self
    }

    /// Sets the percentile the deadline follows, in `(0, 100]`.
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.config.percentile = percentile;
        self
    }

    /// Sets the multiplier applied to the percentile.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.config.multiplier = multiplier;
        self
    }

    /// Sets the shortest deadline.
    pub fn min(mut self, min: Duration) -> Self {
        self.config.min = min;
        self
    }

    /// Sets the longest deadline.
    pub fn max(mut self, max: Duration) -> Self {
        self.config.max = max;
        self
    }

    /// Sets the deadline used until `min_samples` latencies are known.
    pub fn base(mut self, base: Duration) -> Self {
        self.config.base = base;
        self
    }

    /// Sets how many latencies the window needs before the percentile is used.
    pub fn min_samples(mut self, min_samples: u64) -> Self {
        self.config.min_samples = min_samples;
        self
    }

    /// Sets how far back latencies count.
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// Sets how many samples per recorder shard trigger a recomputation.
    pub fn refresh_every(mut self, refresh_every: u32) -> Self {
        self.config.refresh_every = refresh_every;
        self
    }

    /// Sets how sparsely calls are measured under high traffic (1 = every call).
    pub fn sample_every(mut self, sample_every: u32) -> Self {
        self.config.sample_every = sample_every;
        self
    }

    /// Keyed layer: sets the most keys held at once.
    pub fn key_capacity(mut self, key_capacity: usize) -> Self {
        self.config.key_capacity = key_capacity;
        self
    }

    /// Keyed layer: sets how long a key must be unused before it may be evicted.
    pub fn key_idle_ttl(mut self, key_idle_ttl: Duration) -> Self {
        self.config.key_idle_ttl = key_idle_ttl;
        self
    }

    /// Keyed layer, feature `metrics`: reports each key's learned deadline as
    /// a series of its own (default off; see [`AdaptiveTimeoutConfig`]).
    pub fn key_metrics(mut self, on: bool) -> Self {
        self.config.key_metrics = on;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &AdaptiveTimeoutConfig {
        &self.config
    }

    /// Validates the configuration and builds the layer.
    pub fn build(self) -> Result<AdaptiveTimeoutLayer, ConfigError> {
        AdaptiveTimeoutLayer::from_config(&self.config)
    }

    /// Validates the configuration and builds a keyed layer: one deadline per
    /// key that `key_fn` takes out of each request.
    pub fn build_keyed<F, K>(
        self,
        key_fn: F,
    ) -> Result<KeyedAdaptiveTimeoutLayer<F, K>, ConfigError>
    where
        K: std::hash::Hash + Eq + Clone + std::fmt::Display + Send + Sync + 'static,
    {
        KeyedAdaptiveTimeoutLayer::from_config(key_fn, &self.config)
    }
}

/// The validated numbers the tracker runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub(crate) fixed: Option<u64>,
    pub(crate) quantile: f64,
    pub(crate) multiplier: f64,
    pub(crate) min_ns: u64,
    pub(crate) max_ns: u64,
    pub(crate) base_ns: u64,
    pub(crate) min_samples: u64,
    pub(crate) interval_ns: u64,
    pub(crate) refresh_every: u32,
    pub(crate) sample_every: u32,
    /// Highest value the histograms track, in microseconds.
    pub(crate) high_us: u64,
    /// A keyed tracker reports its deadline under its key.
    #[cfg(feature = "metrics")]
    pub(crate) key_metrics: bool,
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Params {
    /// Assumes `config` is valid.
    pub(crate) fn new(config: &AdaptiveTimeoutConfig) -> Self {
        let fixed = config.fixed.map(nanos);
        let high_us = if fixed.is_some() {
            2
        } else {
            u64::try_from(config.max.as_micros())
                .unwrap_or(u64::MAX)
                .saturating_mul(2)
                .max(2)
        };
        Params {
            fixed,
            quantile: config.percentile / 100.0,
            multiplier: config.multiplier,
            min_ns: nanos(config.min),
            max_ns: nanos(config.max),
            base_ns: nanos(config.base),
            min_samples: config.min_samples,
            interval_ns: (nanos(config.window) / crate::window::SLOTS as u64).max(1),
            refresh_every: config.refresh_every,
            sample_every: config.sample_every,
            high_us,
            #[cfg(feature = "metrics")]
            key_metrics: config.key_metrics,
        }
    }

    pub(crate) fn fixed(deadline: Duration) -> Self {
        Params::new(&AdaptiveTimeoutConfig {
            fixed: Some(deadline),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(cfg: AdaptiveTimeoutConfig) -> String {
        cfg.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(AdaptiveTimeoutConfig::default().validate().is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let d = AdaptiveTimeoutConfig::default;
        assert_eq!(
            err(AdaptiveTimeoutConfig {
                percentile: 100.5,
                ..d()
            }),
            "percentile: 100.5 is not in (0, 100]"
        );
        assert_eq!(
            err(AdaptiveTimeoutConfig {
                percentile: f64::NAN,
                ..d()
            }),
            "percentile: NaN is not in (0, 100]"
        );
        assert_eq!(
            err(AdaptiveTimeoutConfig {
                multiplier: 0.0,
                ..d()
            }),
            "multiplier: 0 must be a finite number greater than zero"
        );
        assert_eq!(
            err(AdaptiveTimeoutConfig {
                min: Duration::from_secs(11),
                ..d()
            }),
            "min: 11s must be at most max (10s)"
        );
        assert_eq!(
            err(AdaptiveTimeoutConfig {
                base: Duration::from_millis(5),
                ..d()
            }),
            "base: 5ms is not in min..=max (10ms..=10s)"
        );
        assert_eq!(
            err(AdaptiveTimeoutConfig {
                window: Duration::ZERO,
                ..d()
            }),
            "window: 0s must be longer than zero"
        );
        assert_eq!(
            err(AdaptiveTimeoutConfig {
                fixed: Some(Duration::ZERO),
                ..d()
            }),
            "fixed: 0s must be longer than zero"
        );
        assert_eq!(
            err(AdaptiveTimeoutConfig {
                max: Duration::from_secs(400 * 24 * 3600),
                base: Duration::from_secs(1),
                ..d()
            }),
            "max: 34560000s must be at most 365 days (31536000s)"
        );
    }

    #[test]
    fn all_problems_are_reported_together() {
        let cfg = AdaptiveTimeoutConfig {
            min: Duration::ZERO,
            min_samples: 0,
            refresh_every: 0,
            sample_every: 0,
            key_capacity: 0,
            key_idle_ttl: Duration::ZERO,
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err();
        let fields: Vec<_> = e.errors().iter().map(|e| e.field()).collect();
        assert_eq!(
            fields,
            [
                "min",
                "min_samples",
                "refresh_every",
                "sample_every",
                "key_capacity",
                "key_idle_ttl"
            ]
        );
    }

    #[test]
    fn every_duration_and_count_is_bounded() {
        let huge = Duration::from_secs(u64::MAX);
        let cfg = AdaptiveTimeoutConfig {
            fixed: Some(huge),
            max: huge,
            window: huge,
            key_idle_ttl: huge,
            min_samples: u64::MAX,
            refresh_every: u32::MAX,
            key_capacity: usize::MAX,
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err();
        let fields: Vec<_> = e.errors().iter().map(|e| e.field()).collect();
        assert_eq!(
            fields,
            [
                "fixed",
                "max",
                "min_samples",
                "window",
                "refresh_every",
                "key_capacity",
                "key_idle_ttl"
            ]
        );
        let at_the_bound = AdaptiveTimeoutConfig {
            fixed: Some(LONGEST_DEADLINE),
            max: LONGEST_DEADLINE,
            base: LONGEST_DEADLINE,
            window: LONGEST_DEADLINE,
            key_idle_ttl: LONGEST_DEADLINE,
            min_samples: MAX_SAMPLES,
            refresh_every: MAX_SAMPLES as u32,
            key_capacity: seawall_core::config::MAX_CAPACITY,
            ..Default::default()
        };
        assert!(at_the_bound.validate().is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserialises_humane_durations() {
        #[derive(serde::Deserialize)]
        struct Wrap {
            timeout: AdaptiveTimeoutConfig,
        }
        let w: Wrap = toml::from_str(
            "[timeout]\nname = \"db\"\nmax = \"2s\"\nmin = \"25ms\"\nbase = \"500ms\"\nfixed = \"3s\"\n",
        )
        .unwrap();
        assert_eq!(w.timeout.name, "db");
        assert_eq!(w.timeout.max, Duration::from_secs(2));
        assert_eq!(w.timeout.min, Duration::from_millis(25));
        assert_eq!(w.timeout.fixed, Some(Duration::from_secs(3)));
        assert_eq!(w.timeout.percentile, 99.0);
        let bad = toml::from_str::<AdaptiveTimeoutConfig>("maximum = \"2s\"");
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown field `maximum`")
        );
    }
}

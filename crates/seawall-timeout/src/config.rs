//! Configuration: [`AdaptiveTimeoutConfig`] (plain data, deserialisable with
//! feature `serde`) and [`AdaptiveTimeoutBuilder`], which fills and
//! validates it.
//!
//! Every field's default is in the table on [`AdaptiveTimeoutConfig`].
//! Validation reports every bad field at once, named as the field.

use std::time::Duration;

use seawall_core::config::Check;
use seawall_core::time::nanos;
use seawall_core::{Clock, ConfigError, KeyMapConfig};

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
/// | `sample_every` | 32 | once the window holds 16 × `min_samples` × `sample_every` calls (so at least 16 × `min_samples` are still measured), measure about one call in this many, chosen at random; 1 measures every call |
///
/// A keyed layer's own settings (the bounds of its map of keys, per-key
/// metrics) are in [`KeyedAdaptiveTimeoutConfig`], around this one.
///
/// Every duration is at most 365 days ([`MAX_DURATION`](seawall_core::config::MAX_DURATION),
/// also [`LONGEST_DEADLINE`]); `min_samples` and `refresh_every` are at most
/// [`MAX_SAMPLES`]; `percentile` is in `(0, 100]` and `multiplier` a finite
/// number greater than zero.
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
/// let mut cfg = AdaptiveTimeoutConfig::default();
/// cfg.max = Duration::from_secs(2);
/// assert_eq!(cfg.percentile, 99.0);
/// assert!(cfg.validate().is_ok());
///
/// // Or through the builder, which validates when it builds.
/// let cfg = AdaptiveTimeoutConfig::builder().max(Duration::from_secs(2)).into_config();
/// assert_eq!(cfg.max, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
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
        }
    }
}

impl AdaptiveTimeoutConfig {
    /// A builder holding the defaults: the same as
    /// [`AdaptiveTimeoutLayer::builder`].
    pub fn builder() -> AdaptiveTimeoutBuilder {
        AdaptiveTimeoutBuilder::new()
    }

    /// Checks every field; the error names each bad one.
    ///
    /// ```
    /// use seawall_timeout::AdaptiveTimeoutConfig;
    ///
    /// let mut cfg = AdaptiveTimeoutConfig::default();
    /// cfg.percentile = 0.0;
    /// cfg.multiplier = -1.0;
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
        check.finish()
    }
}

/// The configuration of a keyed layer ([`KeyedAdaptiveTimeoutLayer`]), as
/// plain data: the config every key's deadline follows, the bounds of the
/// map of keys, and whether each key reports its own metric series.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `per_key` | [`AdaptiveTimeoutConfig::default`] | each key's deadline (and the overflow deadline's); its `name` names the layer |
/// | `keys` | capacity 1000, idle TTL 5 minutes | the map of keys: most keys held at once (`capacity`, at most [`MAX_CAPACITY`](seawall_core::config::MAX_CAPACITY)), and how long a key must be unused before it may be evicted (`idle_ttl`) |
/// | `key_metrics` | `false` | feature `metrics`: report each key's learned deadline as its own series (`key` label); see below |
///
/// The default capacity is 1000 keys rather than [`KeyMapConfig`]'s 10 000:
/// a key holds histograms of up to 4 KiB.
///
/// Per-key series are opt-in because keys often come from requests: with
/// `key_metrics`, a key's series exists from its first learned deadline and
/// reads NaN once the key leaves the map, and an exporter's idle timeout
/// (metrics-exporter-prometheus: `idle_timeout`) must drop it, or the series
/// of every key ever learned stay in every scrape. Without it, a keyed layer
/// reports only its name-labelled counters.
///
/// ```
/// use std::time::Duration;
/// use seawall_timeout::{AdaptiveTimeoutConfig, KeyedAdaptiveTimeoutConfig};
///
/// let cfg = KeyedAdaptiveTimeoutConfig::from(
///     AdaptiveTimeoutConfig::builder().max(Duration::from_secs(2)).into_config(),
/// )
/// .capacity(100)
/// .idle_ttl(Duration::from_secs(60));
/// assert_eq!(cfg.keys.capacity, 100);
/// assert!(cfg.validate().is_ok());
///
/// let err = cfg.capacity(0).validate().unwrap_err();
/// assert_eq!(err.to_string(), "keys.capacity: 0 must be greater than zero");
/// ```
///
/// With feature `serde`, in TOML the per-key config and the map bounds are
/// tables of their own:
///
/// ```toml
/// [client.timeout]
/// key_metrics = true
///
/// [client.timeout.per_key]
/// max = "2s"
///
/// [client.timeout.keys]
/// capacity = 10000
/// idle_ttl = "5m"
/// ```
///
/// A field a `[keys]` table leaves out keeps this table's default (capacity
/// 1000, idle TTL 5 minutes), not [`KeyMapConfig`]'s capacity of 10 000: a
/// timeout key holds up to 4 KiB, ten times a breaker's or budget's.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct KeyedAdaptiveTimeoutConfig {
    /// The config each key's deadline follows.
    pub per_key: AdaptiveTimeoutConfig,
    /// The bounds of the map of keys.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "keys_over_timeout_defaults")
    )]
    pub keys: KeyMapConfig,
    /// Feature `metrics`: a series per key for its learned deadline (default
    /// `false`; see above).
    pub key_metrics: bool,
}

/// The timeout's default map bounds.
fn default_keys() -> KeyMapConfig {
    KeyMapConfig::new().capacity(1000)
}

/// A `[keys]` table whose missing fields keep [`default_keys`].
#[cfg(feature = "serde")]
fn keys_over_timeout_defaults<'de, D>(de: D) -> Result<KeyMapConfig, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Keys {
        capacity: Option<usize>,
        #[serde(default, with = "humantime_serde")]
        idle_ttl: Option<Duration>,
    }
    let keys = <Keys as serde::Deserialize>::deserialize(de)?;
    let mut out = default_keys();
    if let Some(capacity) = keys.capacity {
        out.capacity = capacity;
    }
    if let Some(idle_ttl) = keys.idle_ttl {
        out.idle_ttl = idle_ttl;
    }
    Ok(out)
}

impl Default for KeyedAdaptiveTimeoutConfig {
    fn default() -> Self {
        KeyedAdaptiveTimeoutConfig::from(AdaptiveTimeoutConfig::default())
    }
}

impl From<AdaptiveTimeoutConfig> for KeyedAdaptiveTimeoutConfig {
    /// `per_key` with the default map bounds, without per-key metrics.
    fn from(per_key: AdaptiveTimeoutConfig) -> Self {
        KeyedAdaptiveTimeoutConfig {
            per_key,
            keys: default_keys(),
            key_metrics: false,
        }
    }
}

impl KeyedAdaptiveTimeoutConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the config each key's deadline follows.
    pub fn per_key(mut self, per_key: AdaptiveTimeoutConfig) -> Self {
        self.per_key = per_key;
        self
    }

    /// Sets the bounds of the map of keys.
    pub fn keys(mut self, keys: KeyMapConfig) -> Self {
        self.keys = keys;
        self
    }

    /// Sets the most keys held at once (`keys.capacity`).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.keys.capacity = capacity;
        self
    }

    /// Sets how long a key must be unused before it may be evicted
    /// (`keys.idle_ttl`).
    pub fn idle_ttl(mut self, idle_ttl: Duration) -> Self {
        self.keys.idle_ttl = idle_ttl;
        self
    }

    /// Feature `metrics`: reports each key's learned deadline as a series of
    /// its own (default off; see above).
    pub fn key_metrics(mut self, on: bool) -> Self {
        self.key_metrics = on;
        self
    }

    /// Checks every field; the error names each bad one by its path
    /// (`per_key.max`, `keys.capacity`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check.nested("per_key", self.per_key.validate());
        check.nested("keys", self.keys.validate());
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
    clock: Clock,
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

    /// Sets the clock latencies are measured on (and the window ages by);
    /// [`Clock::tokio`] by default. The deadline's timer is tokio's whatever
    /// the clock: see [the crate docs](crate#clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &AdaptiveTimeoutConfig {
        &self.config
    }

    /// The configuration built so far, unvalidated (the clock is not part of
    /// it).
    pub fn into_config(self) -> AdaptiveTimeoutConfig {
        self.config
    }

    /// Validates the configuration and builds the layer.
    pub fn build(self) -> Result<AdaptiveTimeoutLayer, ConfigError> {
        AdaptiveTimeoutLayer::with_clock(&self.config, self.clock)
    }

    /// Validates the configuration and builds a keyed layer: one deadline per
    /// key that `key_fn` takes out of each request, each following this
    /// configuration, with the default bounds of the map of keys (see
    /// [`KeyedAdaptiveTimeoutConfig`]; [`KeyedAdaptiveTimeoutLayer::new`]
    /// takes the whole keyed config).
    pub fn build_keyed<F, K>(
        self,
        key_fn: F,
    ) -> Result<KeyedAdaptiveTimeoutLayer<F, K>, ConfigError>
    where
        K: std::hash::Hash + Eq + Clone + std::fmt::Display + Send + Sync + 'static,
    {
        let config = KeyedAdaptiveTimeoutConfig::from(self.config);
        KeyedAdaptiveTimeoutLayer::with_clock(key_fn, config, self.clock)
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
            key_metrics: false,
        }
    }

    /// The names of the config fields whose numbers differ from `old`'s,
    /// for a reload's event.
    pub(crate) fn changed_from(&self, old: &Params) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let fields = [
            (self.fixed != old.fixed, "fixed"),
            (self.quantile != old.quantile, "percentile"),
            (self.multiplier != old.multiplier, "multiplier"),
            (self.min_ns != old.min_ns, "min"),
            (self.max_ns != old.max_ns, "max"),
            (self.base_ns != old.base_ns, "base"),
            (self.min_samples != old.min_samples, "min_samples"),
            (self.refresh_every != old.refresh_every, "refresh_every"),
            (self.sample_every != old.sample_every, "sample_every"),
        ];
        for (differs, name) in fields {
            if differs {
                changed.push(name);
            }
        }
        changed
    }

    /// Per-key metrics on or off (keyed layers).
    #[cfg_attr(not(feature = "metrics"), allow(unused_mut))]
    pub(crate) fn key_metrics(mut self, on: bool) -> Self {
        #[cfg(feature = "metrics")]
        {
            self.key_metrics = on;
        }
        let _ = on;
        self
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
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err();
        let fields: Vec<_> = e.errors().iter().map(|e| e.field()).collect();
        assert_eq!(
            fields,
            ["min", "min_samples", "refresh_every", "sample_every",]
        );
    }

    #[test]
    fn every_duration_and_count_is_bounded() {
        let huge = Duration::from_secs(u64::MAX);
        let cfg = AdaptiveTimeoutConfig {
            fixed: Some(huge),
            max: huge,
            window: huge,
            min_samples: u64::MAX,
            refresh_every: u32::MAX,
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err();
        let fields: Vec<_> = e.errors().iter().map(|e| e.field()).collect();
        assert_eq!(
            fields,
            ["fixed", "max", "min_samples", "window", "refresh_every",]
        );
        let at_the_bound = AdaptiveTimeoutConfig {
            fixed: Some(LONGEST_DEADLINE),
            max: LONGEST_DEADLINE,
            base: LONGEST_DEADLINE,
            window: LONGEST_DEADLINE,
            min_samples: MAX_SAMPLES,
            refresh_every: MAX_SAMPLES as u32,
            ..Default::default()
        };
        assert!(at_the_bound.validate().is_ok());
        let keyed = KeyedAdaptiveTimeoutConfig::from(at_the_bound)
            .capacity(seawall_core::config::MAX_CAPACITY)
            .idle_ttl(LONGEST_DEADLINE);
        assert!(keyed.validate().is_ok());
    }

    #[test]
    fn a_keyed_config_names_its_fields_by_path() {
        let cfg = KeyedAdaptiveTimeoutConfig::from(AdaptiveTimeoutConfig {
            min: Duration::ZERO,
            ..Default::default()
        })
        .capacity(usize::MAX)
        .idle_ttl(Duration::ZERO);
        let e = cfg.validate().unwrap_err();
        let fields: Vec<_> = e.errors().iter().map(|e| e.field()).collect();
        assert_eq!(fields, ["per_key.min", "keys.capacity", "keys.idle_ttl"]);
        assert!(KeyedAdaptiveTimeoutConfig::default().validate().is_ok());
        assert_eq!(KeyedAdaptiveTimeoutConfig::default().keys.capacity, 1000);
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

    #[cfg(feature = "serde")]
    #[test]
    fn a_keyed_config_deserialises_per_key_and_keys_tables() {
        #[derive(serde::Deserialize)]
        struct Wrap {
            timeout: KeyedAdaptiveTimeoutConfig,
        }
        let w: Wrap = toml::from_str(
            "[timeout]\nkey_metrics = true\n[timeout.per_key]\nname = \"peers\"\nmax = \"2s\"\n[timeout.keys]\ncapacity = 50\nidle_ttl = \"1m\"\n",
        )
        .unwrap();
        assert!(w.timeout.key_metrics);
        assert_eq!(w.timeout.per_key.name, "peers");
        assert_eq!(w.timeout.per_key.max, Duration::from_secs(2));
        assert_eq!(w.timeout.keys.capacity, 50);
        assert_eq!(w.timeout.keys.idle_ttl, Duration::from_secs(60));
        let w: Wrap = toml::from_str("[timeout]\n").unwrap();
        assert_eq!(w.timeout, KeyedAdaptiveTimeoutConfig::default());
        let bad = toml::from_str::<KeyedAdaptiveTimeoutConfig>("key_capacity = 5");
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown field `key_capacity`")
        );
    }
}

//! Configuration: [`ShedConfig`] (plain data, `serde` with the feature) and
//! [`ShedBuilder`], which fills and validates it.

use std::sync::Arc;
use std::time::Duration;

use seawall_core::config::{Check, MAX_DURATION};
use seawall_core::names::DEFAULT_NAME;
use seawall_core::{Clock, ConfigError, ErrorsAsFailures};

use crate::layer::ShedLayer;
use crate::limit::Limit;
use crate::pressure::{MemoryPressure, MemoryPressureConfig, PressureSignal};
use crate::priority::NoPriority;
use crate::state::MAX_LIMIT;

/// Everything a [`ShedLayer`] is built from. Field names equal the builder's
/// method names and this struct's setters' (`ShedConfig::new().soft_limit(80)`);
/// defaults are written on each field. The clock is not configuration: it
/// is set on the [`ShedBuilder`].
///
/// With the `serde` feature it deserialises, durations as `"250ms"`:
///
/// ```toml
/// name = "api"
/// limit = { gradient2 = { min = 10, max = 500 } }
/// soft_limit = 80
/// critical_headroom = 0.1
/// max_queue_delay = "20ms"
/// queue_capacity = 64
///
/// [memory_pressure]          # shed by priority when memory runs short
/// shed_sheddable_at = 0.7
/// shed_normal_at = 0.9
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct ShedConfig {
    /// The `name` of tracing events and the `name` label of metrics.
    /// Default `"default"`.
    pub name: String,
    /// The in-flight limit: fixed or adaptive. Default `Limit::Fixed(100)`.
    /// The builder's `max_in_flight(n)` is shorthand for `Limit::Fixed(n)`.
    /// Every limit lies in `1..=`[`MAX_LIMIT`](crate::MAX_LIMIT).
    pub limit: Limit,
    /// Start of the probabilistic band: a `Normal` request arriving with `n`
    /// in flight is shed with probability `clamp(n / soft_limit - 1, 0, 1)`,
    /// and every `Sheddable` one is shed once `n >= soft_limit`. Must not
    /// exceed the limit's maximum. Default `None` (no band).
    pub soft_limit: Option<usize>,
    /// Fraction of the limit only `Critical` requests may use, in `0..1`
    /// (`ceil(limit × critical_headroom)` slots). Default 0.
    pub critical_headroom: f64,
    /// The `retry_after` suggested in every `Overloaded`, in
    /// `1ms..=365 days` ([`MIN_RETRY_AFTER`](Self::MIN_RETRY_AFTER) to
    /// [`MAX_DURATION`]): never zero. Default 100ms.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub retry_after: Duration,
    /// Adaptive limits: the sampling window; the limit is updated at most
    /// once per window. Longer than zero, at most 365 days. Default 1s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// Adaptive limits: completed calls a window needs before it closes,
    /// in `1..=2^24` ([`MAX_CAPACITY`](seawall_core::config::MAX_CAPACITY)).
    /// Default 10.
    pub window_min_samples: usize,
    /// Queue mode: how long a request may wait for a slot; longer than zero,
    /// at most 365 days. Default `None` (no queue: reject at once).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_queue_delay: Option<Duration>,
    /// Queue mode: most requests waiting at once, in `1..=2^24`
    /// ([`MAX_CAPACITY`](seawall_core::config::MAX_CAPACITY)). The queue
    /// grows as it fills and never reserves its capacity. Default 100.
    pub queue_capacity: usize,
    /// Seed of the probabilistic band's generator (tests). Default `None`
    /// (seeded from the process's randomness).
    pub seed: Option<u64>,
    /// Shed by priority when memory runs short: `build()` starts a
    /// [`MemoryPressure`] sampler with this config (inside a tokio
    /// runtime). Default `None` (no pressure signal).
    pub memory_pressure: Option<MemoryPressureConfig>,
}

impl Default for ShedConfig {
    fn default() -> Self {
        ShedConfig {
            name: DEFAULT_NAME.to_owned(),
            limit: Limit::default(),
            soft_limit: None,
            critical_headroom: 0.0,
            retry_after: Duration::from_millis(100),
            window: Duration::from_secs(1),
            window_min_samples: 10,
            max_queue_delay: None,
            queue_capacity: 100,
            seed: None,
            memory_pressure: None,
        }
    }
}

seawall_core::config_setters!(ShedConfig {
    limit: Limit,
    soft_limit: usize,
    critical_headroom: f64,
    retry_after: Duration,
    window: Duration,
    window_min_samples: usize,
    max_queue_delay: Duration,
    queue_capacity: usize,
    seed: u64,
    memory_pressure: MemoryPressureConfig,
});

impl ShedConfig {
    /// Sets `name` (default `"default"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A fixed hard limit: shorthand for `.limit(Limit::Fixed(n))`.
    #[must_use]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.limit = Limit::Fixed(n);
        self
    }

    /// The shortest [`retry_after`](ShedConfig::retry_after) accepted: 1ms.
    /// A retry hint is never zero (`Retry-After: 0` tells a caller to hammer
    /// an overloaded service at once).
    pub const MIN_RETRY_AFTER: Duration = Duration::from_millis(1);

    /// Checks every field; the error names each bad one.
    ///
    /// Every field is checked whether or not its mode is on (a `window` with
    /// a fixed limit, a `queue_capacity` without `max_queue_delay`): a value
    /// out of range is a mistake either way, and turning the mode on later
    /// must not be what reveals it. The bounds are listed in `docs/shed.md`
    /// ("Bounds").
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut c = Check::new();
        let max = match &self.limit {
            Limit::Fixed(n) => {
                // The config's own path (`limit = { fixed = n }` in a file), which
                // the builder's `max_in_flight(n)` sets.
                c.in_range("limit.fixed", *n, 1, MAX_LIMIT);
                *n
            }
            Limit::Aimd(a) => {
                bounds(&mut c, "limit.aimd", a.initial, a.min, a.max);
                if !(0.5..1.0).contains(&a.backoff_ratio) {
                    c.fail(
                        "limit.aimd.backoff_ratio",
                        a.backoff_ratio,
                        "is not in 0.5..1",
                    );
                }
                c.nonzero_duration("limit.aimd.timeout", a.timeout);
                a.max
            }
            Limit::Gradient2(g) => {
                bounds(&mut c, "limit.gradient2", g.initial, g.min, g.max);
                if !(g.smoothing > 0.0 && g.smoothing <= 1.0) {
                    c.fail("limit.gradient2.smoothing", g.smoothing, "is not in (0, 1]");
                }
                // Growth per window beyond the limit's own bound means nothing.
                c.in_range("limit.gradient2.queue_size", g.queue_size, 0, MAX_LIMIT);
                if !(g.tolerance.is_finite() && g.tolerance >= 1.0) {
                    c.fail(
                        "limit.gradient2.tolerance",
                        g.tolerance,
                        "must be a finite number of at least 1",
                    );
                }
                c.capacity("limit.gradient2.long_window", g.long_window);
                g.max
            }
            Limit::Vegas(v) => {
                bounds(&mut c, "limit.vegas", v.initial, v.min, v.max);
                if !(v.smoothing > 0.0 && v.smoothing <= 1.0) {
                    c.fail("limit.vegas.smoothing", v.smoothing, "is not in (0, 1]");
                }
                c.positive("limit.vegas.alpha", v.alpha);
                if !(v.beta.is_finite() && v.beta > v.alpha) {
                    c.fail(
                        "limit.vegas.beta",
                        v.beta,
                        format!("must be greater than alpha ({})", v.alpha),
                    );
                }
                c.capacity("limit.vegas.probe_multiplier", v.probe_multiplier);
                v.max
            }
        };
        if let Some(soft) = self.soft_limit {
            c.nonzero("soft_limit", soft);
            if soft > max && max > 0 {
                c.fail(
                    "soft_limit",
                    soft,
                    format!("must be at most the limit's maximum ({max})"),
                );
            }
        }
        if !(0.0..1.0).contains(&self.critical_headroom) {
            c.fail(
                "critical_headroom",
                self.critical_headroom,
                "is not in 0..1",
            );
        }
        c.duration_in(
            "retry_after",
            self.retry_after,
            Self::MIN_RETRY_AFTER,
            MAX_DURATION,
        );
        c.nonzero_duration("window", self.window);
        c.capacity("window_min_samples", self.window_min_samples);
        if let Some(d) = self.max_queue_delay {
            c.nonzero_duration("max_queue_delay", d);
        }
        c.capacity("queue_capacity", self.queue_capacity);
        if let Some(memory) = &self.memory_pressure {
            c.nested("memory_pressure", memory.validate());
        }
        c.finish()
    }
}

fn bounds(c: &mut Check, path: &str, initial: usize, min: usize, max: usize) {
    c.nonzero(&format!("{path}.min"), min);
    if max > MAX_LIMIT {
        c.fail(
            format!("{path}.max"),
            max,
            format!("must be at most {MAX_LIMIT}"),
        );
    }
    c.at_most(&format!("{path}.min"), min, &format!("{path}.max"), max);
    if !(min <= initial && initial <= max) {
        c.fail(
            format!("{path}.initial"),
            initial,
            format!("is not in {min}..={max}"),
        );
    }
}

/// The pressure signal a shedder consults: the one given, else a
/// [`MemoryPressure`] started from the config's `memory_pressure`.
/// Also returns the [`MemoryPressure`] when it was started here, so that a
/// reload can change its thresholds.
#[allow(clippy::type_complexity)]
pub(crate) fn pressure_from(
    config: &ShedConfig,
    given: Option<Arc<dyn PressureSignal>>,
) -> Result<(Option<Arc<dyn PressureSignal>>, Option<MemoryPressure>), ConfigError> {
    if given.is_some() {
        return Ok((given, None));
    }
    let Some(memory) = &config.memory_pressure else {
        return Ok((None, None));
    };
    let signal = MemoryPressure::start_named(&config.name, memory)?;
    Ok((Some(Arc::new(signal.clone())), Some(signal)))
}

/// Builds a [`ShedLayer`]; start with [`ShedLayer::builder`].
///
/// ```
/// use std::time::Duration;
/// use seawall_shed::{Aimd, Limit, Priority, ShedLayer};
///
/// let layer = ShedLayer::builder()
///     .name("api")
///     .limit(Limit::Aimd(Aimd::new().min(4).max(256)))
///     .soft_limit(16)
///     .critical_headroom(0.1)
///     .max_queue_delay(Duration::from_millis(20))
///     .priority(|req: &&str| if req.starts_with("/health") { Priority::Critical } else { Priority::Normal })
///     .build()?;
/// assert_eq!(layer.stats().limit, 20);
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ShedBuilder<P = NoPriority, C = ErrorsAsFailures> {
    config: ShedConfig,
    priority: P,
    classify: C,
    signal: Option<Arc<dyn PressureSignal>>,
    clock: Clock,
}

impl ShedBuilder {
    pub(crate) fn new() -> Self {
        ShedBuilder {
            config: ShedConfig::default(),
            priority: NoPriority,
            classify: ErrorsAsFailures,
            signal: None,
            clock: Clock::default(),
        }
    }

    /// A builder starting from `config`.
    pub fn from_config(config: ShedConfig) -> Self {
        ShedBuilder {
            config,
            priority: NoPriority,
            classify: ErrorsAsFailures,
            signal: None,
            clock: Clock::default(),
        }
    }
}

impl<P, C> ShedBuilder<P, C> {
    /// See [`ShedConfig::name`]. Default `"default"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// A fixed hard limit: shorthand for `.limit(Limit::Fixed(n))`. Default 100.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.limit = Limit::Fixed(n);
        self
    }

    /// See [`ShedConfig::limit`]. Default `Limit::Fixed(100)`.
    pub fn limit(mut self, limit: Limit) -> Self {
        self.config.limit = limit;
        self
    }

    /// See [`ShedConfig::soft_limit`]. Default none.
    pub fn soft_limit(mut self, n: usize) -> Self {
        self.config.soft_limit = Some(n);
        self
    }

    /// See [`ShedConfig::critical_headroom`]. Default 0.
    pub fn critical_headroom(mut self, fraction: f64) -> Self {
        self.config.critical_headroom = fraction;
        self
    }

    /// See [`ShedConfig::retry_after`]. Default 100ms.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config.retry_after = after;
        self
    }

    /// See [`ShedConfig::window`]. Default 1s.
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// See [`ShedConfig::window_min_samples`]. Default 10.
    pub fn window_min_samples(mut self, n: usize) -> Self {
        self.config.window_min_samples = n;
        self
    }

    /// Turns on the queue mode; see [`ShedConfig::max_queue_delay`].
    pub fn max_queue_delay(mut self, delay: Duration) -> Self {
        self.config.max_queue_delay = Some(delay);
        self
    }

    /// See [`ShedConfig::queue_capacity`]. Default 100.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.config.queue_capacity = n;
        self
    }

    /// See [`ShedConfig::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Sheds by priority when memory runs short; see
    /// [`ShedConfig::memory_pressure`] and [`MemoryPressureConfig`]
    /// (thresholds 0.7 and 0.9, hysteresis 0.05, sampled every 1s by
    /// default). `build()` then needs a tokio runtime. Replaces a signal
    /// given to [`pressure_signal`](Self::pressure_signal).
    pub fn memory_pressure(mut self, config: MemoryPressureConfig) -> Self {
        self.config.memory_pressure = Some(config);
        self.signal = None;
        self
    }

    /// Sheds by `signal`'s level: a [`MemoryPressure`] shared by several
    /// layers, a [`ManualPressure`](crate::ManualPressure), or any
    /// [`PressureSignal`]. Replaces [`memory_pressure`](Self::memory_pressure).
    pub fn pressure_signal(mut self, signal: impl PressureSignal) -> Self {
        self.config.memory_pressure = None;
        self.signal = Some(Arc::new(signal));
        self
    }

    /// Takes each request's [`Priority`](crate::Priority) from `f`. Default:
    /// every request is `Normal`.
    pub fn priority<F>(self, f: F) -> ShedBuilder<F, C> {
        ShedBuilder {
            config: self.config,
            priority: f,
            classify: self.classify,
            signal: self.signal,
            clock: self.clock,
        }
    }

    /// What counts as a *drop* for an adaptive limit: an
    /// [`Outcome::Failure`](seawall_core::Outcome::Failure) makes AIMD and
    /// Vegas back off; an `Ignore` is not sampled. Default
    /// [`ErrorsAsFailures`] (`Err` is a drop). Unused by the fixed limit.
    pub fn classify<K>(self, classify: K) -> ShedBuilder<P, K> {
        ShedBuilder {
            config: self.config,
            priority: self.priority,
            classify,
            signal: self.signal,
            clock: self.clock,
        }
    }

    /// Where an adaptive limit reads the time: each call's RTT and the end
    /// of each sampling window. Default [`Clock::tokio`] (follows
    /// `tokio::time::pause`). The fixed limit reads no clock at all.
    ///
    /// What stays on tokio's timers whatever the clock: the queue mode's
    /// `max_queue_delay` (a tokio sleep, and the wait is measured on tokio's
    /// clock so that the two agree) and the memory sampler's interval. So a
    /// [`Clock::manual`] drives the adaptive limits with no runtime (a test
    /// moves it by hand around `Permit::finish`); it does not shorten a
    /// queue wait. A TSC clock ([`Clock::tsc`](seawall_core::Clock), feature
    /// `quanta` of `seawall-core`) makes the two readings per measured call cheaper.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_core::{Clock, Outcome, rand::SplitMix64};
    /// use seawall_shed::{Aimd, Limit, Priority, ShedLayer};
    ///
    /// let (clock, hand) = Clock::manual();
    /// let layer = ShedLayer::builder()
    ///     .limit(Limit::Aimd(Aimd::new().initial(10).min(1).max(100).timeout(Duration::from_secs(1))))
    ///     .window_min_samples(1)
    ///     .clock(clock)
    ///     .build()?;
    /// let shedder = layer.shedder();
    /// let permit = shedder.try_acquire(Priority::Normal, &mut SplitMix64::new(1)).unwrap();
    /// hand.advance(Duration::from_secs(2)); // slower than the AIMD timeout: a drop
    /// permit.finish(Outcome::Success);
    /// assert_eq!(layer.stats().limit, 9);
    /// # Ok::<(), seawall_core::ConfigError>(())
    /// ```
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &ShedConfig {
        &self.config
    }

    /// Validates and builds the layer; the error names every bad field.
    pub fn build(self) -> Result<ShedLayer<P, C>, ConfigError> {
        ShedLayer::with_parts(
            &self.config,
            self.priority,
            self.classify,
            self.signal,
            self.clock,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::{Aimd, Gradient2};

    fn err(config: ShedConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(ShedConfig::default().validate().is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(
            err(ShedConfig {
                limit: Limit::Fixed(0),
                ..ShedConfig::default()
            }),
            "limit.fixed: 0 is not in 1..=16777215"
        );
        assert_eq!(
            err(ShedConfig {
                soft_limit: Some(200),
                critical_headroom: 1.0,
                max_queue_delay: Some(Duration::ZERO),
                queue_capacity: 0,
                ..ShedConfig::default()
            }),
            "soft_limit: 200 must be at most the limit's maximum (100); \
             critical_headroom: 1 is not in 0..1; \
             max_queue_delay: 0s must be longer than zero; \
             queue_capacity: 0 must be greater than zero"
        );
        assert_eq!(
            err(ShedConfig {
                limit: Limit::Aimd(Aimd {
                    initial: 1,
                    min: 5,
                    max: 4,
                    backoff_ratio: 1.0,
                    timeout: Duration::ZERO,
                }),
                window: Duration::ZERO,
                window_min_samples: 0,
                ..ShedConfig::default()
            }),
            "limit.aimd.min: 5 must be at most limit.aimd.max (4); \
             limit.aimd.initial: 1 is not in 5..=4; \
             limit.aimd.backoff_ratio: 1 is not in 0.5..1; \
             limit.aimd.timeout: 0s must be longer than zero; \
             window: 0s must be longer than zero; \
             window_min_samples: 0 must be greater than zero"
        );
        assert_eq!(
            err(ShedConfig {
                limit: Limit::Gradient2(Gradient2 {
                    min: 0,
                    smoothing: 0.0,
                    tolerance: 0.5,
                    long_window: 0,
                    ..Gradient2::default()
                }),
                ..ShedConfig::default()
            }),
            "limit.gradient2.min: 0 must be greater than zero; \
             limit.gradient2.smoothing: 0 is not in (0, 1]; \
             limit.gradient2.tolerance: 0.5 must be a finite number of at least 1; \
             limit.gradient2.long_window: 0 must be greater than zero"
        );
        assert_eq!(
            err(ShedConfig {
                limit: Limit::Vegas(crate::limit::Vegas {
                    alpha: 0.0,
                    beta: 0.0,
                    probe_multiplier: 0,
                    ..Default::default()
                }),
                ..ShedConfig::default()
            }),
            "limit.vegas.alpha: 0 must be a finite number greater than zero; \
             limit.vegas.beta: 0 must be greater than alpha (0); \
             limit.vegas.probe_multiplier: 0 must be greater than zero"
        );
    }

    #[test]
    fn every_size_and_duration_is_bounded() {
        use crate::limit::Vegas;
        use seawall_core::config::MAX_CAPACITY;

        let huge = Duration::from_secs(u64::MAX);
        let past = MAX_DURATION + Duration::from_nanos(1);
        assert_eq!(
            err(ShedConfig {
                retry_after: Duration::ZERO,
                window: huge,
                window_min_samples: MAX_CAPACITY + 1,
                max_queue_delay: Some(huge),
                queue_capacity: 4_294_967_295,
                ..ShedConfig::default()
            }),
            "retry_after: 0ns is not in 1ms..=31536000s; \
             window: 18446744073709551615s must be at most 365 days (31536000s); \
             window_min_samples: 16777217 must be at most 16777216 (2^24); \
             max_queue_delay: 18446744073709551615s must be at most 365 days (31536000s); \
             queue_capacity: 4294967295 must be at most 16777216 (2^24)"
        );
        // Checked without the queue mode too, and usize::MAX.
        assert_eq!(
            err(ShedConfig {
                retry_after: past,
                queue_capacity: usize::MAX,
                ..ShedConfig::default()
            }),
            format!(
                "retry_after: 31536000.000000001s is not in 1ms..=31536000s; \
                 queue_capacity: {} must be at most 16777216 (2^24)",
                usize::MAX
            )
        );
        assert_eq!(
            err(ShedConfig {
                limit: Limit::Aimd(Aimd {
                    timeout: past,
                    max: usize::MAX,
                    ..Aimd::default()
                }),
                ..ShedConfig::default()
            }),
            format!(
                "limit.aimd.max: {} must be at most 16777215; \
                 limit.aimd.timeout: 31536000.000000001s must be at most 365 days (31536000s)",
                usize::MAX
            )
        );
        assert_eq!(
            err(ShedConfig {
                limit: Limit::Gradient2(Gradient2 {
                    queue_size: MAX_LIMIT + 1,
                    long_window: usize::MAX,
                    ..Gradient2::default()
                }),
                ..ShedConfig::default()
            }),
            format!(
                "limit.gradient2.queue_size: 16777216 is not in 0..=16777215; \
                 limit.gradient2.long_window: {} must be at most 16777216 (2^24)",
                usize::MAX
            )
        );
        assert_eq!(
            err(ShedConfig {
                limit: Limit::Vegas(Vegas {
                    probe_multiplier: 1 << 32,
                    ..Vegas::default()
                }),
                ..ShedConfig::default()
            }),
            "limit.vegas.probe_multiplier: 4294967296 must be at most 16777216 (2^24)"
        );
        // Every bound itself is accepted.
        let edges = ShedConfig {
            limit: Limit::Aimd(Aimd {
                initial: MAX_LIMIT,
                max: MAX_LIMIT,
                timeout: MAX_DURATION,
                ..Aimd::default()
            }),
            retry_after: ShedConfig::MIN_RETRY_AFTER,
            window: MAX_DURATION,
            window_min_samples: MAX_CAPACITY,
            max_queue_delay: Some(MAX_DURATION),
            queue_capacity: MAX_CAPACITY,
            ..ShedConfig::default()
        };
        assert_eq!(edges.validate(), Ok(()));
        let edges = ShedConfig {
            limit: Limit::Gradient2(Gradient2 {
                queue_size: MAX_LIMIT,
                long_window: MAX_CAPACITY,
                ..Gradient2::default()
            }),
            retry_after: MAX_DURATION,
            max_queue_delay: Some(Duration::from_nanos(1)),
            queue_capacity: 1,
            ..ShedConfig::default()
        };
        assert_eq!(edges.validate(), Ok(()));
        let edges = ShedConfig {
            limit: Limit::Vegas(Vegas {
                probe_multiplier: MAX_CAPACITY,
                ..Vegas::default()
            }),
            ..ShedConfig::default()
        };
        assert_eq!(edges.validate(), Ok(()));
    }

    #[test]
    fn the_builder_reports_through_build() {
        let e = ShedLayer::builder()
            .max_in_flight(0)
            .soft_limit(0)
            .build()
            .unwrap_err();
        assert_eq!(e.errors().len(), 2);
        assert_eq!(e.field(), "limit.fixed");
        assert_eq!(e.errors()[1].field(), "soft_limit");
    }
}

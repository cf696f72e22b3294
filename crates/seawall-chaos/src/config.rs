//! The chaos layer's configuration: [`ChaosConfig`] (plain data, serde) and
//! [`Placement`].

use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::config::Check;
use seawall_core::names::DEFAULT_NAME;

/// The longest latency a chaos layer injects ([`ChaosConfig::latency`] and
/// [`ChaosConfig::latency_max`]): one hour. Longer is a hang, not latency,
/// and a typo (`"10h"` for `"10ms"`) must not park requests for a day.
pub const MAX_LATENCY: Duration = Duration::from_secs(60 * 60);

/// Where a chaos layer injects relative to the inner call.
///
/// | value | latency | error or outcome |
/// |-------|---------|------------------|
/// | `before` (default) | before the inner future is first polled | instead of the inner call: the inner service is not called |
/// | `after` | after the inner future has completed | replaces the inner call's result: the inner service did the work |
///
/// With latency placed before, the inner service's `call` is still made at
/// once (the readiness its `poll_ready` gave belongs to this call); only its
/// future waits. A service that starts work in `call` rather than in its
/// future (tower's `Buffer` sends the request then) starts it before the
/// delay.
///
/// `before` models a failure on the way to the service (the request never
/// arrives); `after` a failure on the way back (the work was done, the caller
/// does not learn it), which is what checks that retries are safe to repeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Placement {
    /// Before the inner call; an injected fault skips it.
    #[default]
    Before,
    /// After the inner call; an injected fault replaces its result.
    After,
}

/// Everything about a chaos layer that is data.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | `name` field of tracing events, `name` label of metrics |
/// | `enabled` | `true` | whether the layer injects at all; switch at run time with [`ChaosHandle`](crate::ChaosHandle) |
/// | `seed` | none (a random seed, reported by [`ChaosHandle::seed`](crate::ChaosHandle::seed)) | the seed of the draws: the same seed, the same faults for the same sequence of calls |
/// | `placement` | `before` | see [`Placement`] |
/// | `error_rate` | 0 | share of calls that get an injected error, in `0..=1` |
/// | `latency_rate` | 0 | share of calls that get injected latency, in `0..=1` |
/// | `latency` | 0s | the latency injected; with `latency_max`, the least of a uniform range; at most [`MAX_LATENCY`] (1 hour) |
/// | `latency_max` | none | the most of a uniform range `latency..=latency_max`; at most [`MAX_LATENCY`] |
/// | `outcome_rate` | 0 | share of calls whose response is replaced, in `0..=1`; needs an outcome given in code ([`ChaosBuilder::outcome_with`](crate::ChaosBuilder::outcome_with)) |
///
/// Each call draws independently for latency, error and outcome; a call can
/// get latency and an error, but never both an error and an outcome (the
/// error wins). With `latency_rate` above zero, the latency (or
/// `latency_max`) must be above zero.
///
/// In code, with the setters (the struct is `#[non_exhaustive]`):
///
/// ```
/// use std::time::Duration;
/// use seawall_chaos::ChaosConfig;
///
/// let config = ChaosConfig::new()
///     .name("payments")
///     .seed(42)
///     .error_rate(0.1)
///     .latency_rate(0.2)
///     .latency(Duration::from_millis(50))
///     .latency_max(Duration::from_millis(500));
/// assert!(config.validate().is_ok());
/// let err = ChaosConfig::new().error_rate(f64::NAN).validate().unwrap_err();
/// assert_eq!(err.to_string(), "error_rate: NaN is not in 0..=1");
/// ```
///
/// With feature `serde` (every field optional):
///
/// ```toml
/// name = "payments"
/// seed = 42
/// placement = "after"
/// error_rate = 0.1
/// latency_rate = 0.2
/// latency = "50ms"
/// latency_max = "500ms"
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct ChaosConfig {
    /// The layer's name in events and metrics.
    pub name: String,
    /// Whether the layer injects at all.
    pub enabled: bool,
    /// The seed of the draws; `None` for a random one.
    pub seed: Option<u64>,
    /// Where faults go relative to the inner call.
    pub placement: Placement,
    /// Share of calls that get an injected error.
    pub error_rate: f64,
    /// Share of calls that get injected latency.
    pub latency_rate: f64,
    /// The latency injected (the least of the range with `latency_max`).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub latency: Duration,
    /// The most of a uniform latency range.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub latency_max: Option<Duration>,
    /// Share of calls whose response is replaced.
    pub outcome_rate: f64,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            name: DEFAULT_NAME.to_owned(),
            enabled: true,
            seed: None,
            placement: Placement::Before,
            error_rate: 0.0,
            latency_rate: 0.0,
            latency: Duration::ZERO,
            latency_max: None,
            outcome_rate: 0.0,
        }
    }
}

seawall_core::config_setters!(ChaosConfig {
    enabled: bool,
    seed: u64,
    placement: Placement,
    error_rate: f64,
    latency_rate: f64,
    latency: Duration,
    latency_max: Duration,
    outcome_rate: f64,
});

impl ChaosConfig {
    /// Sets `name` (default `"default"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks every field; the error names each bad one (`error_rate`,
    /// `latency`, `latency_max`, …).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        if self.name.is_empty() {
            check.fail("name", "\"\"", "must not be empty");
        }
        self.check_runtime(&mut check);
        check.finish()
    }

    /// The checks of the fields a [`ChaosHandle`](crate::ChaosHandle) may
    /// change at run time.
    pub(crate) fn check_runtime(&self, check: &mut Check) {
        check.ratio("error_rate", self.error_rate);
        check.ratio("latency_rate", self.latency_rate);
        check.ratio("outcome_rate", self.outcome_rate);
        check_latency(check, self.latency_rate, self.latency, self.latency_max);
    }
}

/// `latency` (and `latency_max`) within [`MAX_LATENCY`], in order, and above
/// zero when latency is injected at all.
fn check_latency(check: &mut Check, rate: f64, lo: Duration, hi: Option<Duration>) {
    check.duration_in("latency", lo, Duration::ZERO, MAX_LATENCY);
    if let Some(hi) = hi {
        check.duration_in("latency_max", hi, Duration::ZERO, MAX_LATENCY);
        if hi < lo {
            check.at_most("latency", lo, "latency_max", hi);
        }
    }
    if rate > 0.0 && hi.unwrap_or(lo).is_zero() {
        check.fail(
            "latency",
            format_args!("{lo:?}"),
            "must be greater than zero when latency_rate is above zero",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_inject_nothing() {
        let c = ChaosConfig::new();
        assert!(c.validate().is_ok());
        assert!(c.enabled);
        assert_eq!(c.error_rate + c.latency_rate + c.outcome_rate, 0.0);
    }

    #[test]
    fn hostile_values_are_named() {
        let err = ChaosConfig::new()
            .name("")
            .error_rate(f64::NAN)
            .latency_rate(2.0)
            .outcome_rate(-0.5)
            .latency(Duration::from_secs(7200))
            .validate()
            .unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "error_rate",
                "latency_rate",
                "outcome_rate",
                "latency"
            ]
        );
        assert!(
            err.to_string().contains("latency_rate: 2 is not in 0..=1"),
            "{err}"
        );

        let err = ChaosConfig::new()
            .latency(Duration::from_millis(10))
            .latency_max(Duration::from_millis(5))
            .validate()
            .unwrap_err();
        assert_eq!(err.field(), "latency");

        let err = ChaosConfig::new()
            .latency_max(Duration::MAX)
            .validate()
            .unwrap_err();
        assert_eq!(err.field(), "latency_max");

        let err = ChaosConfig::new().latency_rate(0.5).validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "latency: 0ns must be greater than zero when latency_rate is above zero"
        );
        // A range from zero is fine.
        assert!(
            ChaosConfig::new()
                .latency_rate(0.5)
                .latency_max(Duration::from_millis(1))
                .validate()
                .is_ok()
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserialises_with_humantime_durations() {
        let c: ChaosConfig = toml::from_str(
            r#"
            name = "payments"
            enabled = false
            seed = 42
            placement = "after"
            error_rate = 0.1
            latency_rate = 0.2
            latency = "50ms"
            latency_max = "1s"
            outcome_rate = 0.0
            "#,
        )
        .unwrap();
        assert_eq!(
            c,
            ChaosConfig::new()
                .name("payments")
                .enabled(false)
                .seed(42)
                .placement(Placement::After)
                .error_rate(0.1)
                .latency_rate(0.2)
                .latency(Duration::from_millis(50))
                .latency_max(Duration::from_secs(1))
        );
        assert!(toml::from_str::<ChaosConfig>("errors = 1").is_err());
        // What TOML can say but a rate cannot be.
        for hostile in [
            "error_rate = nan",
            "latency_rate = inf",
            "outcome_rate = -1.0",
        ] {
            let c: ChaosConfig = toml::from_str(hostile).unwrap();
            assert!(c.validate().is_err(), "{hostile}");
        }
        assert!(toml::from_str::<ChaosConfig>(r#"latency = "100000000000000000000s""#).is_err());
        let c: ChaosConfig = toml::from_str(r#"latency = "2h""#).unwrap();
        assert_eq!(c.validate().unwrap_err().field(), "latency");
    }
}

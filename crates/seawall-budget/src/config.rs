//! Configuration: plain-data configs, their builders and validation.
//!
//! Every config is plain data (`Clone`, `Debug`, `Default` with the
//! documented defaults; with feature `serde`, `Deserialize` with durations
//! written as `"250ms"`, `"30s"`), and every builder method sets the config
//! field of the same name. `build()` / `from_config()` validate and report
//! *every* bad field at once in a [`ConfigError`].

use std::time::Duration;

use seawall_core::config::{Check, MAX_DURATION};
use seawall_core::names::DEFAULT_NAME;
use seawall_core::{Clock, ConfigError, KeyMapConfig};

use crate::layer::BudgetLayer;
use crate::loop_budget::LoopBudget;

/// What a [`BudgetLayer`] does with a call when the budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BudgetMode {
    /// Fail fast: the response future resolves at once to
    /// [`BudgetExhausted`](seawall_core::BudgetExhausted) with the time until
    /// the next token. The default.
    #[default]
    Reject,
    /// Backpressure: `poll_ready` parks on a timer until a token is due, then
    /// reserves it for the next `call`.
    Wait,
}

/// The default burst for a rate: a tenth of it, at least one.
pub(crate) fn default_burst(rate: u32) -> u32 {
    (rate / 10).max(1)
}

/// Checks `rate`, `per` and `burst` alone and together. The budget keeps time
/// in u64 nanoseconds, and its arrival time may run `burst × per / rate`
/// ahead of now; bounding that span by [`MAX_DURATION`] keeps every sum of
/// the algorithm far below `u64::MAX` (584 years), where it would saturate
/// and admit everything.
fn check_rate(check: &mut Check, rate: u32, per: Duration, burst: Option<u32>) {
    check.nonzero("rate", rate).nonzero_duration("per", per);
    if let Some(b) = burst {
        check.nonzero("burst", b);
    }
    if rate == 0 || per.is_zero() || per > MAX_DURATION || burst == Some(0) {
        // Already reported; the checks below need all three in range.
        return;
    }
    // Whole nanoseconds: one token every `per / rate` of them, at least one.
    let per_ns = per.as_nanos();
    if u128::from(rate) > per_ns {
        check.fail(
            "rate",
            rate,
            format!("is more than one per nanosecond over per ({per:?})"),
        );
        return;
    }
    let emission = per_ns / u128::from(rate);
    let burst = burst_or_default(rate, burst);
    if emission * u128::from(burst) > MAX_DURATION.as_nanos() {
        check.fail(
            "burst",
            burst,
            format!(
                "takes more than 365 days to refill at rate / per \
                 (burst × per / rate must be at most {}s)",
                MAX_DURATION.as_secs()
            ),
        );
    }
}

fn burst_or_default(rate: u32, burst: Option<u32>) -> u32 {
    burst.unwrap_or_else(|| default_burst(rate))
}

/// Configuration of a [`LoopBudget`].
///
/// | field | default | bounds | meaning |
/// |-------|---------|--------|---------|
/// | `name` | `"default"` | | shown in tracing events and metric labels |
/// | `rate` | 1000 | 1 ..= 1 per ns | tokens per `per` |
/// | `per` | 1s | 1ns ..= 365 days | the span `rate` is counted over |
/// | `burst` | `rate / 10`, at least 1 | 1 ..= a refill of ≤ 365 days | most tokens held (taken at once) |
/// | `backoff_initial` | 10ms | 1ns ..= `backoff_max` | first [`LoopBudget::backoff`] delay |
/// | `backoff_multiplier` | 1.5 | finite, ≥ 1 | each further delay is this times the last |
/// | `backoff_max` | 1s | ..= 365 days | the cap on backoff delays |
///
/// The bounds are those of every budget: `per` and every other duration at
/// most [`MAX_DURATION`] (365 days), at most one token per nanosecond, and a
/// full burst refilled within 365 days (`burst × per / rate ≤ MAX_DURATION`),
/// so that the budget's nanosecond arithmetic never saturates.
///
/// ```
/// use std::time::Duration;
/// use seawall_budget::{LoopBudget, LoopBudgetConfig};
///
/// let cfg = LoopBudgetConfig::new().rate(50).burst(5);
/// let budget = LoopBudget::from_config(&cfg).unwrap();
/// assert_eq!(budget.config().backoff_initial, Duration::from_millis(10));
/// ```
///
/// Every field has a setter of the same name (`LoopBudgetConfig::new().rate(50)`),
/// so the struct can gain fields without breaking a caller.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct LoopBudgetConfig {
    /// Name in tracing events and metric labels.
    pub name: String,
    /// Tokens per `per`.
    pub rate: u32,
    /// The span `rate` is counted over.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub per: Duration,
    /// Most tokens held at once; `None` means `rate / 10`, at least 1.
    pub burst: Option<u32>,
    /// The first backoff delay.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub backoff_initial: Duration,
    /// Growth factor of successive backoff delays (at least 1).
    pub backoff_multiplier: f64,
    /// The cap on backoff delays.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub backoff_max: Duration,
}

impl Default for LoopBudgetConfig {
    fn default() -> Self {
        LoopBudgetConfig {
            name: DEFAULT_NAME.to_owned(),
            rate: 1000,
            per: Duration::from_secs(1),
            burst: None,
            backoff_initial: Duration::from_millis(10),
            backoff_multiplier: 1.5,
            backoff_max: Duration::from_secs(1),
        }
    }
}

seawall_core::config_setters!(LoopBudgetConfig {
    name: impl Into<String>,
    rate: u32,
    per: Duration,
    burst: u32,
    backoff_initial: Duration,
    backoff_multiplier: f64,
    backoff_max: Duration,
});

impl LoopBudgetConfig {
    /// Checks every field; see the table for what is valid.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check_rate(&mut check, self.rate, self.per, self.burst);
        check
            .nonzero_duration("backoff_initial", self.backoff_initial)
            .positive("backoff_multiplier", self.backoff_multiplier);
        if self.backoff_multiplier.is_finite()
            && self.backoff_multiplier > 0.0
            && self.backoff_multiplier < 1.0
        {
            check.fail(
                "backoff_multiplier",
                self.backoff_multiplier,
                "must be at least 1",
            );
        }
        check.duration("backoff_max", self.backoff_max).at_most(
            "backoff_initial",
            self.backoff_initial,
            "backoff_max",
            self.backoff_max,
        );
        check.finish()
    }

    /// The burst in force (`burst`, or its default).
    pub fn effective_burst(&self) -> u32 {
        burst_or_default(self.rate, self.burst)
    }
}

/// Builds a [`LoopBudget`]; every method sets the [`LoopBudgetConfig`]
/// field of the same name.
///
/// ```
/// use std::time::Duration;
/// use seawall_budget::LoopBudget;
///
/// let budget = LoopBudget::builder()
///     .name("gossip")
///     .rate(20)
///     .per(Duration::from_secs(1))
///     .burst(5)
///     .backoff_initial(Duration::from_millis(50))
///     .backoff_multiplier(2.0)
///     .backoff_max(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// assert_eq!(budget.available(), 5);
///
/// let err = LoopBudget::builder().rate(0).burst(0).build().unwrap_err();
/// assert_eq!(err.to_string(), "rate: 0 must be greater than zero; burst: 0 must be greater than zero");
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LoopBudgetBuilder {
    config: LoopBudgetConfig,
    clock: Clock,
}

impl LoopBudgetBuilder {
    /// A builder with the defaults of [`LoopBudgetConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder starting from `config` (to set the [`clock`](Self::clock)
    /// of a budget loaded from a file).
    pub fn from_config(config: LoopBudgetConfig) -> Self {
        LoopBudgetBuilder {
            config,
            clock: Clock::default(),
        }
    }

    /// Sets where the budget reads the time (default [`Clock::tokio`]).
    ///
    /// Refill and refusals follow this clock. [`LoopBudget::backoff`]
    /// sleeps on tokio's timer whatever the clock: the backoff delay is a
    /// fixed schedule, not a reading. A [`Clock::manual`] budget needs no
    /// runtime for anything but `backoff`.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the name in tracing events and metric labels.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Sets the tokens per `per` (default 1000).
    pub fn rate(mut self, rate: u32) -> Self {
        self.config.rate = rate;
        self
    }

    /// Sets the span `rate` is counted over (default 1s).
    pub fn per(mut self, per: Duration) -> Self {
        self.config.per = per;
        self
    }

    /// Sets the most tokens held at once (default `rate / 10`, at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.config.burst = Some(burst);
        self
    }

    /// Sets the first backoff delay (default 10ms).
    pub fn backoff_initial(mut self, initial: Duration) -> Self {
        self.config.backoff_initial = initial;
        self
    }

    /// Sets the growth factor of backoff delays (default 1.5).
    pub fn backoff_multiplier(mut self, multiplier: f64) -> Self {
        self.config.backoff_multiplier = multiplier;
        self
    }

    /// Sets the cap on backoff delays (default 1s).
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.config.backoff_max = max;
        self
    }

    /// The config built so far.
    pub fn config(&self) -> &LoopBudgetConfig {
        &self.config
    }

    /// Validates and builds the budget.
    pub fn build(self) -> Result<LoopBudget, ConfigError> {
        self.config.validate()?;
        Ok(LoopBudget::from_valid(self.config, self.clock))
    }
}

/// Configuration of a [`BudgetLayer`].
///
/// | field | default | bounds | meaning |
/// |-------|---------|--------|---------|
/// | `name` | `"default"` | | shown in tracing events and metric labels |
/// | `rate` | 1000 | 1 ..= 1 per ns | calls per `per` |
/// | `per` | 1s | 1ns ..= 365 days | the span `rate` is counted over |
/// | `burst` | `rate / 10`, at least 1 | 1 ..= a refill of ≤ 365 days | most calls admitted at once |
/// | `mode` | `reject` | | [`BudgetMode::Reject`] or [`BudgetMode::Wait`] |
/// | `advertise` | `false` | | tell clients about this budget: with feature `quota`, report each decision's quota to a listening layer (the facade's `RateLimitHeadersLayer`, which writes the IETF `RateLimit` fields) |
///
/// Only a budget that faces the clients of a server should `advertise`:
/// one that guards a server's outgoing calls (a handler calling a peer
/// through its own budget) would otherwise tell the server's clients about
/// the server's quota with its peer.
///
/// The bounds are those of [`LoopBudgetConfig`]; in `Wait` mode a call
/// therefore never waits longer than `burst × per / rate` plus whatever
/// debt the budget was put into by [`LoopBudget::consume`].
///
/// Every field has a setter of the same name:
///
/// ```
/// use seawall_budget::{BudgetConfig, BudgetLayer, BudgetMode};
///
/// let cfg = BudgetConfig::new().name("api").rate(500).burst(50).mode(BudgetMode::Wait);
/// let layer = BudgetLayer::from_config(&cfg).unwrap();
/// assert_eq!(layer.mode(), BudgetMode::Wait);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct BudgetConfig {
    /// Name in tracing events and metric labels.
    pub name: String,
    /// Calls per `per`.
    pub rate: u32,
    /// The span `rate` is counted over.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub per: Duration,
    /// Most calls admitted at once; `None` means `rate / 10`, at least 1.
    pub burst: Option<u32>,
    /// What to do when the budget is spent.
    pub mode: BudgetMode,
    /// Whether the budget tells clients its quota (see the table above).
    pub advertise: bool,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            name: DEFAULT_NAME.to_owned(),
            rate: 1000,
            per: Duration::from_secs(1),
            burst: None,
            mode: BudgetMode::Reject,
            advertise: false,
        }
    }
}

seawall_core::config_setters!(BudgetConfig {
    name: impl Into<String>,
    rate: u32,
    per: Duration,
    burst: u32,
    mode: BudgetMode,
    advertise: bool,
});

impl BudgetConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check_rate(&mut check, self.rate, self.per, self.burst);
        check.finish()
    }

    /// The burst in force (`burst`, or its default).
    pub fn effective_burst(&self) -> u32 {
        burst_or_default(self.rate, self.burst)
    }

    pub(crate) fn loop_config(&self) -> LoopBudgetConfig {
        LoopBudgetConfig {
            name: self.name.clone(),
            rate: self.rate,
            per: self.per,
            burst: self.burst,
            ..LoopBudgetConfig::default()
        }
    }
}

/// Builds a [`BudgetLayer`]; every method sets the [`BudgetConfig`] field of
/// the same name.
///
/// ```
/// use seawall_budget::{BudgetLayer, BudgetMode};
///
/// let layer = BudgetLayer::builder().rate(100).burst(10).mode(BudgetMode::Wait).build().unwrap();
/// assert_eq!(layer.mode(), BudgetMode::Wait);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct BudgetBuilder {
    config: BudgetConfig,
    clock: Clock,
}

impl BudgetBuilder {
    /// A builder with the defaults of [`BudgetConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder starting from `config` (to set the [`clock`](Self::clock)
    /// of a layer loaded from a file).
    pub fn from_config(config: BudgetConfig) -> Self {
        BudgetBuilder {
            config,
            clock: Clock::default(),
        }
    }

    /// Sets where the budget reads the time (default [`Clock::tokio`]).
    ///
    /// Refill, refusals and `retry_after` follow this clock. In
    /// [`BudgetMode::Wait`] the service parks on a tokio timer set with
    /// [`Clock::instant_at`]: exact on the tokio clock; on a
    /// `Clock::tsc` clock, "tokio's now plus the wait on the TSC", which
    /// agrees with the TSC to within the drift between the two; on a
    /// [`Clock::manual`] clock, advancing the clock by hand does not wake a
    /// waiting service (advance tokio's clock too, or poll it again: each
    /// poll reads the clock and takes the token once it is due).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the name in tracing events and metric labels.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Sets the calls per `per` (default 1000).
    pub fn rate(mut self, rate: u32) -> Self {
        self.config.rate = rate;
        self
    }

    /// Sets the span `rate` is counted over (default 1s).
    pub fn per(mut self, per: Duration) -> Self {
        self.config.per = per;
        self
    }

    /// Sets the most calls admitted at once (default `rate / 10`, at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.config.burst = Some(burst);
        self
    }

    /// Sets what happens when the budget is spent (default `Reject`).
    pub fn mode(mut self, mode: BudgetMode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Whether the budget tells clients its quota (default `false`; see
    /// [`BudgetConfig`]).
    pub fn advertise(mut self, advertise: bool) -> Self {
        self.config.advertise = advertise;
        self
    }

    /// The config built so far.
    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Validates and builds the layer.
    pub fn build(self) -> Result<BudgetLayer, ConfigError> {
        self.config.validate()?;
        Ok(BudgetLayer::from_budget(
            LoopBudget::from_valid_advertised(
                self.config.loop_config(),
                self.clock,
                self.config.advertise,
            ),
            self.config.mode,
        ))
    }
}

/// Configuration of a [`KeyedBudgetLayer`](crate::KeyedBudgetLayer): one
/// budget per key, each with the [`BudgetConfig`] `per_key`, in a map
/// bounded by `keys`.
///
/// | field | default | bounds | meaning |
/// |-------|---------|--------|---------|
/// | `per_key` | [`BudgetConfig::default()`] (1000/s, bursts of 100) | those of [`BudgetConfig`]; `mode` must be `reject` | the budget of each key; its `name` names the layer |
/// | `keys.capacity` | 10 000 | 1 ..= 2^24 | most keys held at once; newcomers that find them all owing tokens share one overflow budget |
/// | `keys.idle_ttl` | 5 minutes | 1ns ..= 365 days | a key unused this long may be forgotten, once it owes nothing |
///
/// A keyed budget always rejects: `poll_ready` does not see the request, so
/// it cannot know which key to wait for. [`validate`](Self::validate)
/// therefore refuses `per_key.mode = wait` rather than ignore it, so that a
/// config asking for backpressure does not silently get rejections.
///
/// ```
/// use std::time::Duration;
/// use seawall_budget::{BudgetConfig, KeyedBudgetConfig};
/// use seawall_core::KeyMapConfig;
///
/// let cfg = KeyedBudgetConfig::new()
///     .per_key(BudgetConfig::new().name("tenants").rate(10).burst(2))
///     .keys(KeyMapConfig::new().capacity(1_000).idle_ttl(Duration::from_secs(60)));
/// assert!(cfg.validate().is_ok());
/// // Or from an unkeyed config, with the default key bounds.
/// let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(10));
/// assert_eq!(cfg.keys.capacity, 10_000);
/// ```
///
/// In TOML (feature `serde`) the two parts are tables of their own:
///
/// ```toml
/// [per_key]
/// rate = 10
/// burst = 2
///
/// [keys]
/// capacity = 1000
/// idle_ttl = "1m"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct KeyedBudgetConfig {
    /// The budget of each key (and of the overflow budget); its `name`
    /// names the layer in tracing events and metric labels.
    pub per_key: BudgetConfig,
    /// The bounds of the key map: most keys held, and how long a key must
    /// be unused before it may be forgotten (a key that owes tokens is kept
    /// until it has refilled).
    pub keys: KeyMapConfig,
}

impl From<BudgetConfig> for KeyedBudgetConfig {
    /// `per_key` with the default key bounds.
    fn from(per_key: BudgetConfig) -> Self {
        KeyedBudgetConfig {
            per_key,
            keys: KeyMapConfig::default(),
        }
    }
}

impl KeyedBudgetConfig {
    /// The defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the budget of each key.
    pub fn per_key(mut self, per_key: BudgetConfig) -> Self {
        self.per_key = per_key;
        self
    }

    /// Sets the bounds of the key map.
    pub fn keys(mut self, keys: KeyMapConfig) -> Self {
        self.keys = keys;
        self
    }

    /// Checks every field; errors name them by path (`per_key.rate`,
    /// `keys.capacity`), and `per_key.mode` must be
    /// [`BudgetMode::Reject`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check.nested("per_key", self.per_key.validate());
        if self.per_key.mode != BudgetMode::Reject {
            check.fail(
                "per_key.mode",
                "wait",
                "must be reject: a keyed budget cannot wait (poll_ready does not see the key)",
            );
        }
        check.nested("keys", self.keys.validate());
        check.finish()
    }

    /// The burst in force for each key (`per_key.burst`, or its default).
    pub fn effective_burst(&self) -> u32 {
        self.per_key.effective_burst()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(LoopBudgetConfig::default().validate().is_ok());
        assert!(BudgetConfig::default().validate().is_ok());
        assert!(KeyedBudgetConfig::default().validate().is_ok());
        assert_eq!(LoopBudgetConfig::default().effective_burst(), 100);
        assert_eq!(KeyedBudgetConfig::default().effective_burst(), 100);
        assert_eq!(default_burst(5), 1);
    }

    #[test]
    fn every_bad_field_is_named() {
        let cfg = LoopBudgetConfig::new()
            .rate(0)
            .per(Duration::ZERO)
            .burst(0)
            .backoff_initial(Duration::from_secs(2))
            .backoff_multiplier(0.5)
            .backoff_max(Duration::from_secs(1));
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "rate: 0 must be greater than zero; per: 0s must be longer than zero; \
             burst: 0 must be greater than zero; backoff_multiplier: 0.5 must be at least 1; \
             backoff_initial: 2s must be at most backoff_max (1s)"
        );
        let cfg = LoopBudgetConfig::new()
            .backoff_initial(Duration::ZERO)
            .backoff_multiplier(f64::NAN);
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "backoff_initial: 0s must be longer than zero; \
             backoff_multiplier: NaN must be a finite number greater than zero"
        );
    }

    #[test]
    fn impossible_rates_are_refused() {
        let cfg = BudgetConfig::new().rate(10).per(Duration::from_nanos(5));
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "rate: 10 is more than one per nanosecond over per (5ns)"
        );
        // Beyond what a u64 of nanoseconds holds: one error, from the bound
        // every duration has.
        let cfg = BudgetConfig::new().per(Duration::MAX);
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.errors().len(), 1, "{err}");
        assert_eq!(err.field(), "per");
        // A burst whose refill overflows the nanosecond arithmetic.
        let cfg = BudgetConfig::new().rate(1).per(MAX_DURATION).burst(585);
        assert_eq!(cfg.validate().unwrap_err().field(), "burst");
        let cfg = BudgetConfig::new().rate(1).per(MAX_DURATION).burst(1);
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn keyed_errors_name_their_paths() {
        let cfg = KeyedBudgetConfig::new()
            .per_key(BudgetConfig::new().rate(0))
            .keys(KeyMapConfig::new().capacity(0).idle_ttl(Duration::ZERO));
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "per_key.rate: 0 must be greater than zero; \
             keys.capacity: 0 must be greater than zero; \
             keys.idle_ttl: 0s must be longer than zero"
        );
        let cfg = KeyedBudgetConfig::new().keys(
            KeyMapConfig::new()
                .capacity(seawall_core::config::MAX_CAPACITY + 1)
                .idle_ttl(MAX_DURATION + Duration::from_nanos(1)),
        );
        let err = cfg.validate().unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
        assert_eq!(fields, ["keys.capacity", "keys.idle_ttl"]);
    }

    #[test]
    fn a_keyed_budget_refuses_wait_mode() {
        let cfg = KeyedBudgetConfig::from(BudgetConfig::new().mode(BudgetMode::Wait));
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.errors().len(), 1, "{err}");
        assert_eq!(err.field(), "per_key.mode");
        assert!(err.to_string().contains("must be reject"), "{err}");
    }

    #[test]
    fn setters_set_their_fields() {
        let cfg = BudgetConfig::new()
            .name("n")
            .rate(7)
            .per(Duration::from_secs(2))
            .burst(3)
            .mode(BudgetMode::Wait);
        assert_eq!(
            (cfg.name.as_str(), cfg.rate, cfg.per, cfg.burst, cfg.mode),
            ("n", 7, Duration::from_secs(2), Some(3), BudgetMode::Wait)
        );
        let l = LoopBudgetConfig::new().name("l").rate(9);
        assert_eq!((l.name.as_str(), l.rate), ("l", 9));
        let b = BudgetBuilder::from_config(cfg.clone());
        assert_eq!(b.config(), &cfg);
        let lb = LoopBudgetBuilder::from_config(l.clone());
        assert_eq!(lb.config(), &l);
    }
}

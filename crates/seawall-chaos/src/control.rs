//! The tower-free core: the switch, the rates and the draws of a chaos
//! layer ([`Control`]), and the [`ChaosHandle`] that changes them at run
//! time.
//!
//! Everything a call reads is an atomic: a disabled layer costs one relaxed
//! load per call. The draws are a pure function of the seed and the call's
//! number: call `n` of a layer gets the same three uniform numbers whatever
//! the rates, so a seeded test replays the same faults.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::config::Check;
use seawall_core::names::TARGET_CHAOS;
use seawall_core::rand::{SplitMix64, derive, random_seed};

use crate::config::{ChaosConfig, Placement};

/// What the draws of one call decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) delay: Option<Duration>,
    pub(crate) fault: Option<Fault>,
    pub(crate) after: bool,
}

/// An injected fault: an error, or a replaced response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Error,
    Outcome,
}

/// A rate in `0..=1` kept as the bits of an `f64`.
#[derive(Debug)]
struct Rate(AtomicU64);

impl Rate {
    fn new(rate: f64) -> Self {
        Rate(AtomicU64::new(rate.to_bits()))
    }

    #[inline]
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn set(&self, rate: f64) {
        self.0.store(rate.to_bits(), Ordering::Relaxed);
    }
}

/// The state every service of one chaos layer shares, and its handles.
pub(crate) struct Control {
    name: String,
    seed: u64,
    has_outcome: bool,
    enabled: AtomicBool,
    after: AtomicBool,
    error_rate: Rate,
    latency_rate: Rate,
    outcome_rate: Rate,
    // Nanoseconds, at most `MAX_LATENCY`; read as a pair that may be torn
    // by a concurrent change (then ordered, so still a valid range).
    latency_lo: AtomicU64,
    latency_hi: AtomicU64,
    // The number of the next call (the index of its draws).
    calls: AtomicU64,
    errors: AtomicU64,
    latencies: AtomicU64,
    outcomes: AtomicU64,
    passed: AtomicU64,
    // Serialises the handles' read-modify-write changes, so two concurrent
    // setters (one rate each) cannot undo each other. Never taken by a call.
    changes: Mutex<()>,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

#[cfg(feature = "metrics")]
struct Metrics {
    errors: metrics::Counter,
    latencies: metrics::Counter,
    outcomes: metrics::Counter,
    enabled: metrics::Gauge,
}

fn nanos(d: Duration) -> u64 {
    // At most `MAX_LATENCY` (validated): fits in a u64 of nanoseconds.
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Control {
    /// From a validated config; `has_outcome` says whether an outcome was
    /// given in code (an `outcome_rate` needs one).
    pub(crate) fn new(config: &ChaosConfig, has_outcome: bool) -> Self {
        let seed = config.seed.unwrap_or_else(random_seed);
        let hi = config.latency_max.unwrap_or(config.latency);
        #[cfg(feature = "metrics")]
        let metrics = {
            use seawall_core::names::{
                CHAOS_ENABLED, CHAOS_INJECTED_TOTAL, LABEL_FAULT, LABEL_NAME,
            };
            let name = config.name.clone();
            let injected = |fault: &'static str| metrics::counter!(CHAOS_INJECTED_TOTAL, LABEL_NAME => name.clone(), LABEL_FAULT => fault);
            let m = Metrics {
                errors: injected("error"),
                latencies: injected("latency"),
                outcomes: injected("outcome"),
                enabled: metrics::gauge!(CHAOS_ENABLED, LABEL_NAME => name.clone()),
            };
            m.enabled.set(if config.enabled { 1.0 } else { 0.0 });
            m
        };
        let control = Control {
            name: config.name.clone(),
            seed,
            has_outcome,
            enabled: AtomicBool::new(config.enabled),
            after: AtomicBool::new(config.placement == Placement::After),
            error_rate: Rate::new(config.error_rate),
            latency_rate: Rate::new(config.latency_rate),
            outcome_rate: Rate::new(config.outcome_rate),
            latency_lo: AtomicU64::new(nanos(config.latency)),
            latency_hi: AtomicU64::new(nanos(hi)),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latencies: AtomicU64::new(0),
            outcomes: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            changes: Mutex::new(()),
            #[cfg(feature = "metrics")]
            metrics,
        };
        tracing::info!(
            target: TARGET_CHAOS,
            name = %control.name,
            seed = control.seed,
            enabled = config.enabled,
            error_rate = config.error_rate,
            latency_rate = config.latency_rate,
            outcome_rate = config.outcome_rate,
            "chaos layer built"
        );
        control
    }

    /// The one load a call makes when the layer is disabled.
    #[inline]
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Draws for the next call and counts what was injected.
    pub(crate) fn decide(&self) -> Decision {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix64::new(derive(self.seed, n));
        // Always four draws, in this order, so that call `n` gets the same
        // numbers whatever the rates.
        let (u_latency, u_error, u_outcome, u_length) = (
            rng.next_f64(),
            rng.next_f64(),
            rng.next_f64(),
            rng.next_u64(),
        );
        // `next_f64` is in [0, 1): a rate of 1 always injects, 0 never.
        let delay = (u_latency < self.latency_rate.get()).then(|| {
            let a = self.latency_lo.load(Ordering::Relaxed);
            let b = self.latency_hi.load(Ordering::Relaxed);
            let (lo, hi) = (a.min(b), a.max(b));
            // Uniform in lo..=hi, in integers: (span + 1) × u / 2^64 < span + 1.
            let span = u128::from(hi - lo) + 1;
            let offset = (span * u128::from(u_length)) >> 64;
            Duration::from_nanos(lo + offset as u64)
        });
        let fault = if u_error < self.error_rate.get() {
            Some(Fault::Error)
        } else if u_outcome < self.outcome_rate.get() {
            Some(Fault::Outcome)
        } else {
            None
        };
        self.count(delay.is_some(), fault);
        Decision {
            delay,
            fault,
            after: self.after.load(Ordering::Relaxed),
        }
    }

    fn count(&self, delayed: bool, fault: Option<Fault>) {
        if delayed {
            self.latencies.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.metrics.latencies.increment(1);
        }
        match fault {
            Some(Fault::Error) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "metrics")]
                self.metrics.errors.increment(1);
            }
            Some(Fault::Outcome) => {
                self.outcomes.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "metrics")]
                self.metrics.outcomes.increment(1);
            }
            None if !delayed => {
                self.passed.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }

    fn set_enabled(&self, enabled: bool) {
        let was = self.enabled.swap(enabled, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.enabled.set(if enabled { 1.0 } else { 0.0 });
        if was != enabled {
            tracing::info!(
                target: TARGET_CHAOS,
                name = %self.name,
                enabled,
                "chaos {}",
                if enabled { "enabled" } else { "disabled" }
            );
        }
    }

    fn config(&self) -> ChaosConfig {
        let lo = self.latency_lo.load(Ordering::Relaxed);
        let hi = self.latency_hi.load(Ordering::Relaxed);
        ChaosConfig {
            name: self.name.clone(),
            enabled: self.is_enabled(),
            seed: Some(self.seed),
            placement: if self.after.load(Ordering::Relaxed) {
                Placement::After
            } else {
                Placement::Before
            },
            error_rate: self.error_rate.get(),
            latency_rate: self.latency_rate.get(),
            latency: Duration::from_nanos(lo.min(hi)),
            latency_max: (hi != lo).then(|| Duration::from_nanos(lo.max(hi))),
            outcome_rate: self.outcome_rate.get(),
        }
    }

    /// Validates and stores every field of `config` a handle may change.
    fn apply(&self, config: &ChaosConfig) -> Result<(), ConfigError> {
        // Nothing is left half-changed by a panic: the lock guards no data.
        let _changing = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut check = Check::new();
        config.check_runtime(&mut check);
        self.check_outcome(&mut check, config.outcome_rate);
        check.finish()?;
        self.store(config);
        self.set_enabled(config.enabled);
        Ok(())
    }

    /// A change of some fields of the current config, validated as a whole.
    fn change(&self, f: impl FnOnce(&mut ChaosConfig)) -> Result<(), ConfigError> {
        let _changing = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut config = self.config();
        f(&mut config);
        let mut check = Check::new();
        config.check_runtime(&mut check);
        self.check_outcome(&mut check, config.outcome_rate);
        check.finish()?;
        self.store(&config);
        Ok(())
    }

    fn check_outcome(&self, check: &mut Check, rate: f64) {
        if rate > 0.0 && !self.has_outcome {
            check.fail(
                "outcome_rate",
                rate,
                "needs an outcome: give one in code with `outcome_with`",
            );
        }
    }

    fn store(&self, config: &ChaosConfig) {
        let hi = config.latency_max.unwrap_or(config.latency);
        // Each store is atomic, not the set: a call racing the change may
        // see a mix of old and new rates (each one valid).
        self.after
            .store(config.placement == Placement::After, Ordering::Relaxed);
        self.error_rate.set(config.error_rate);
        self.latency_rate.set(config.latency_rate);
        self.outcome_rate.set(config.outcome_rate);
        self.latency_lo
            .store(nanos(config.latency), Ordering::Relaxed);
        self.latency_hi.store(nanos(hi), Ordering::Relaxed);
        tracing::info!(
            target: TARGET_CHAOS,
            name = %self.name,
            error_rate = config.error_rate,
            latency_rate = config.latency_rate,
            latency = ?config.latency,
            latency_max = ?config.latency_max,
            outcome_rate = config.outcome_rate,
            placement = ?config.placement,
            "chaos settings changed"
        );
    }

    pub(crate) fn stats(&self) -> ChaosStats {
        ChaosStats {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latencies: self.latencies.load(Ordering::Relaxed),
            outcomes: self.outcomes.load(Ordering::Relaxed),
            passed: self.passed.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a chaos layer's counters since it was built; see
/// [`ChaosHandle::stats`].
///
/// Only calls made while the layer was enabled and that its selection
/// took are counted (a disabled layer writes nothing per call). A call can
/// count as a latency and as an error or an outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChaosStats {
    /// Calls that drew (enabled, selected).
    pub calls: u64,
    /// Calls given an injected error.
    pub errors: u64,
    /// Calls given injected latency.
    pub latencies: u64,
    /// Calls whose response was replaced.
    pub outcomes: u64,
    /// Calls that drew and got nothing injected.
    pub passed: u64,
}

/// Switches a chaos layer at run time: on and off, its rates, its latency,
/// its placement. Cheap to clone; every clone, the layer and all its
/// services share one state.
///
/// Every change takes effect for the calls made after it (a response
/// future already made keeps what its call drew). Setters validate as the
/// config does and change nothing on error.
///
/// ```
/// use seawall_chaos::ChaosLayer;
///
/// let layer = ChaosLayer::builder().seed(7).error_rate(0.5).build().unwrap();
/// let handle = layer.handle();
/// handle.disable();
/// assert!(!handle.is_enabled());
/// handle.set_error_rate(1.0).unwrap();
/// assert!(handle.set_error_rate(f64::NAN).is_err());
/// assert_eq!(handle.config().error_rate, 1.0);
/// assert_eq!(handle.seed(), 7);
/// ```
#[derive(Clone)]
pub struct ChaosHandle {
    control: Arc<Control>,
}

impl std::fmt::Debug for ChaosHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosHandle")
            .field("name", &self.control.name)
            .field("enabled", &self.control.is_enabled())
            .finish_non_exhaustive()
    }
}

impl ChaosHandle {
    pub(crate) fn new(control: Arc<Control>) -> Self {
        ChaosHandle { control }
    }

    /// Starts injecting.
    pub fn enable(&self) {
        self.control.set_enabled(true);
    }

    /// Stops injecting: every call goes straight to the inner service, at
    /// the cost of one relaxed atomic load.
    pub fn disable(&self) {
        self.control.set_enabled(false);
    }

    /// Whether the layer injects.
    pub fn is_enabled(&self) -> bool {
        self.control.is_enabled()
    }

    /// Sets the share of calls given an error, in `0..=1`.
    pub fn set_error_rate(&self, rate: f64) -> Result<(), ConfigError> {
        self.control.change(|c| c.error_rate = rate)
    }

    /// Sets the share of calls given latency, in `0..=1`.
    pub fn set_latency_rate(&self, rate: f64) -> Result<(), ConfigError> {
        self.control.change(|c| c.latency_rate = rate)
    }

    /// Sets the share of calls whose response is replaced, in `0..=1`; an
    /// error if the layer was given no outcome.
    pub fn set_outcome_rate(&self, rate: f64) -> Result<(), ConfigError> {
        self.control.change(|c| c.outcome_rate = rate)
    }

    /// Injects `latency` exactly (at most [`MAX_LATENCY`](crate::MAX_LATENCY)).
    pub fn set_latency(&self, latency: Duration) -> Result<(), ConfigError> {
        self.control.change(|c| {
            c.latency = latency;
            c.latency_max = None;
        })
    }

    /// Injects a latency drawn uniformly from `lo..=hi`.
    pub fn set_latency_between(&self, lo: Duration, hi: Duration) -> Result<(), ConfigError> {
        self.control.change(|c| {
            c.latency = lo;
            c.latency_max = Some(hi);
        })
    }

    /// Sets where faults go relative to the inner call.
    pub fn set_placement(&self, placement: Placement) {
        // Always valid; `change` cannot fail on it alone.
        let _ = self.control.change(|c| c.placement = placement);
    }

    /// Applies a whole config at once (a live reload): `enabled`,
    /// `placement`, the rates and the latency. `name` and `seed` are fixed
    /// when the layer is built and are ignored here. Validated first;
    /// nothing changes on error.
    pub fn apply(&self, config: &ChaosConfig) -> Result<(), ConfigError> {
        self.control.apply(config)
    }

    /// The current settings, as a config (with the seed in use).
    pub fn config(&self) -> ChaosConfig {
        self.control.config()
    }

    /// The seed of the draws: given, or random and reported here (and in
    /// the `chaos layer built` event) so a failing run can be replayed.
    pub fn seed(&self) -> u64 {
        self.control.seed
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ChaosStats {
        self.control.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(config: ChaosConfig) -> Control {
        config.validate().unwrap();
        Control::new(&config, true)
    }

    #[test]
    fn rates_zero_and_one_are_exact() {
        let c = control(ChaosConfig::new().seed(1).error_rate(1.0));
        for _ in 0..1000 {
            assert_eq!(c.decide().fault, Some(Fault::Error));
        }
        let c = control(ChaosConfig::new().seed(1));
        for _ in 0..1000 {
            assert_eq!(
                c.decide(),
                Decision {
                    delay: None,
                    fault: None,
                    after: false
                }
            );
        }
        assert_eq!(c.stats().passed, 1000);
    }

    #[test]
    fn the_same_seed_replays_the_same_decisions() {
        let config = ChaosConfig::new()
            .seed(42)
            .error_rate(0.3)
            .outcome_rate(0.3)
            .latency_rate(0.5)
            .latency(Duration::from_millis(1))
            .latency_max(Duration::from_millis(100));
        let (a, b) = (control(config.clone()), control(config.clone()));
        let run = |c: &Control| (0..500).map(|_| c.decide()).collect::<Vec<_>>();
        let first = run(&a);
        assert_eq!(first, run(&b));
        let other = control(config.seed(43));
        assert_ne!(first, run(&other));
    }

    #[test]
    fn rates_hold_over_many_calls() {
        // Fixed seed: deterministic; the tolerance is 5 standard deviations.
        let c = control(
            ChaosConfig::new()
                .seed(9)
                .error_rate(0.3)
                .outcome_rate(0.5)
                .latency_rate(0.1)
                .latency(Duration::from_millis(1)),
        );
        let n = 100_000;
        for _ in 0..n {
            c.decide();
        }
        let s = c.stats();
        let near = |count: u64, p: f64| {
            let expect = n as f64 * p;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (count as f64 - expect).abs() < 5.0 * sd,
                "{count} vs {expect}"
            );
        };
        near(s.errors, 0.3);
        // Outcomes only where no error: 0.7 × 0.5.
        near(s.outcomes, 0.35);
        near(s.latencies, 0.1);
        assert_eq!(s.calls, n);
    }

    #[test]
    fn latency_stays_in_its_range_and_covers_it() {
        let (lo, hi) = (Duration::from_millis(10), Duration::from_millis(20));
        let c = control(
            ChaosConfig::new()
                .seed(3)
                .latency_rate(1.0)
                .latency(lo)
                .latency_max(hi),
        );
        let delays: Vec<_> = (0..10_000).map(|_| c.decide().delay.unwrap()).collect();
        assert!(delays.iter().all(|d| (lo..=hi).contains(d)));
        assert!(delays.iter().any(|d| *d < lo + Duration::from_millis(1)));
        assert!(delays.iter().any(|d| *d > hi - Duration::from_millis(1)));
        let c = control(
            ChaosConfig::new()
                .seed(3)
                .latency_rate(1.0)
                .latency(Duration::from_secs(3600)),
        );
        assert_eq!(c.decide().delay, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn changes_are_validated_and_atomic_as_a_whole() {
        let config = ChaosConfig::new().seed(1).error_rate(0.2);
        let c = Arc::new(Control::new(&config, false));
        let h = ChaosHandle::new(c.clone());
        let err = h.set_outcome_rate(0.5).unwrap_err();
        assert_eq!(err.field(), "outcome_rate");
        assert!(h.set_latency_rate(0.5).is_err(), "no latency set");
        assert!(h.set_latency(Duration::from_secs(7200)).is_err());
        assert!(
            h.set_latency_between(Duration::from_secs(2), Duration::from_secs(1))
                .is_err()
        );
        assert_eq!(h.config(), config.clone().seed(1));
        h.set_latency(Duration::from_millis(5)).unwrap();
        h.set_latency_rate(1.0).unwrap();
        assert_eq!(c.decide().delay, Some(Duration::from_millis(5)));
        let bad = ChaosConfig::new().error_rate(2.0).enabled(false);
        assert!(h.apply(&bad).is_err());
        assert!(h.is_enabled(), "nothing changed");
        h.apply(&ChaosConfig::new().enabled(false)).unwrap();
        assert!(!h.is_enabled());
        assert_eq!(h.config().error_rate, 0.0);
        h.set_placement(Placement::After);
        assert!(c.decide().after);
    }
}

//! [`ChaosLayer`] and its builder: wraps services in [`Chaos`], all sharing
//! one switch, one set of rates and one sequence of draws.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use seawall_core::ConfigError;
use tower_layer::Layer;

use crate::config::{ChaosConfig, Placement};
use crate::control::{ChaosHandle, ChaosStats, Control};
use crate::error::Injected;
use crate::inject::{AllRequests, NoOutcome};
use crate::service::Chaos;

/// The code half of a layer: what it injects and into which requests.
pub(crate) struct Inject<E, O, P> {
    pub(crate) error: E,
    pub(crate) outcome: O,
    pub(crate) select: P,
}

/// Injects errors, latency and replaced responses into a share of calls;
/// see the [crate docs](crate).
///
/// The layer owns the switch, the rates, the draws and the counters: every
/// service it makes, and all their clones, share them; its
/// [`handle`](Self::handle) changes them at run time.
///
/// Type parameters: `E` makes the errors ([`Injected`] unless given), `O`
/// the responses ([`NoOutcome`] unless given), `P` selects the requests
/// ([`AllRequests`] unless given).
pub struct ChaosLayer<E = Injected, O = NoOutcome, P = AllRequests> {
    control: Arc<Control>,
    inject: Arc<Inject<E, O, P>>,
}

impl<E, O, P> Clone for ChaosLayer<E, O, P> {
    fn clone(&self) -> Self {
        ChaosLayer {
            control: self.control.clone(),
            inject: self.inject.clone(),
        }
    }
}

impl<E, O, P> fmt::Debug for ChaosLayer<E, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field("config", &self.handle().config())
            .finish_non_exhaustive()
    }
}

impl ChaosLayer {
    /// A builder with the documented defaults (see [`ChaosConfig`]): enabled,
    /// all rates 0, a random seed.
    pub fn builder() -> ChaosBuilder {
        ChaosBuilder {
            config: ChaosConfig::default(),
            error: Injected,
            outcome: NoOutcome,
            has_outcome: false,
            select: AllRequests,
        }
    }

    /// A layer from plain data, injecting [`Injected`] errors; an
    /// `outcome_rate` above zero is an error here (an outcome is code: use
    /// the builder's [`config`](ChaosBuilder::config) and
    /// [`outcome_with`](ChaosBuilder::outcome_with)).
    ///
    /// ```
    /// use seawall_chaos::{ChaosConfig, ChaosLayer};
    ///
    /// let layer = ChaosLayer::from_config(&ChaosConfig::new().error_rate(0.1)).unwrap();
    /// assert_eq!(layer.handle().config().error_rate, 0.1);
    /// let err = ChaosLayer::from_config(&ChaosConfig::new().outcome_rate(0.1)).unwrap_err();
    /// assert_eq!(err.field(), "outcome_rate");
    /// ```
    pub fn from_config(config: &ChaosConfig) -> Result<Self, ConfigError> {
        ChaosLayer::builder().config(config.clone()).build()
    }
}

impl<E, O, P> ChaosLayer<E, O, P> {
    /// The handle that switches this layer at run time.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle::new(self.control.clone())
    }

    /// A snapshot of the counters of every service this layer made.
    pub fn stats(&self) -> ChaosStats {
        self.control.stats()
    }
}

impl<S, E, O, P> Layer<S> for ChaosLayer<E, O, P> {
    type Service = Chaos<S, E, O, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Chaos::new(inner, self.control.clone(), self.inject.clone())
    }
}

/// Builds a [`ChaosLayer`]; from [`ChaosLayer::builder`].
///
/// Methods named after [`ChaosConfig`]'s fields set them;
/// [`error_with`](Self::error_with), [`outcome_with`](Self::outcome_with)
/// and [`only_when`](Self::only_when) add what is code.
/// [`build`](Self::build) reports every bad field at once.
///
/// ```
/// use std::time::Duration;
/// use seawall_chaos::{ChaosLayer, Placement};
///
/// #[derive(Debug)]
/// struct Unavailable;
/// impl std::fmt::Display for Unavailable {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("503") }
/// }
/// impl std::error::Error for Unavailable {}
///
/// let layer = ChaosLayer::builder()
///     .name("payments")
///     .seed(42)
///     .error_rate(0.3)
///     .error_with(|_: &String| Unavailable)
///     .latency_rate(0.1)
///     .latency_between(Duration::from_millis(10), Duration::from_millis(200))
///     .placement(Placement::After)
///     .only_when(|req: &String| req.starts_with("/pay"))
///     .build()
///     .unwrap();
/// # let _ = layer;
/// assert!(ChaosLayer::builder().error_rate(2.0).build().is_err());
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ChaosBuilder<E = Injected, O = NoOutcome, P = AllRequests> {
    config: ChaosConfig,
    error: E,
    outcome: O,
    has_outcome: bool,
    select: P,
}

impl<E, O, P> fmt::Debug for ChaosBuilder<E, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<E, O, P> ChaosBuilder<E, O, P> {
    /// Replaces every data setting with `config`'s (the code given with
    /// `error_with`, `outcome_with` and `only_when` stays).
    pub fn config(mut self, config: ChaosConfig) -> Self {
        self.config = config;
        self
    }

    /// Names the layer in events and metrics (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Whether the layer starts enabled (default `true`).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// Seeds the draws (default: a random seed, reported by
    /// [`ChaosHandle::seed`]).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Where faults go relative to the inner call (default
    /// [`Placement::Before`]).
    pub fn placement(mut self, placement: Placement) -> Self {
        self.config.placement = placement;
        self
    }

    /// Share of calls given an error, in `0..=1` (default 0).
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.config.error_rate = rate;
        self
    }

    /// Share of calls given latency, in `0..=1` (default 0).
    pub fn latency_rate(mut self, rate: f64) -> Self {
        self.config.latency_rate = rate;
        self
    }

    /// Injects exactly `latency` (at most [`MAX_LATENCY`](crate::MAX_LATENCY)).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.config.latency = latency;
        self.config.latency_max = None;
        self
    }

    /// Injects a latency drawn uniformly from `lo..=hi`.
    pub fn latency_between(mut self, lo: Duration, hi: Duration) -> Self {
        self.config.latency = lo;
        self.config.latency_max = Some(hi);
        self
    }

    /// Share of calls whose response is replaced, in `0..=1` (default 0);
    /// needs [`outcome_with`](Self::outcome_with).
    pub fn outcome_rate(mut self, rate: f64) -> Self {
        self.config.outcome_rate = rate;
        self
    }

    /// Injects `f(&request)` as the error (default [`Injected`]): any
    /// [`InjectError`](crate::InjectError), such as a closure
    /// `Fn(&Req) -> E` with `E: Into<BoxError>`. Your error is boxed as it
    /// is, so your classifiers see your type.
    pub fn error_with<E2>(self, f: E2) -> ChaosBuilder<E2, O, P> {
        ChaosBuilder {
            config: self.config,
            error: f,
            outcome: self.outcome,
            has_outcome: self.has_outcome,
            select: self.select,
        }
    }

    /// Answers with `f(&request)` in place of the inner service's response:
    /// any [`InjectOutcome`](crate::InjectOutcome), such as a closure
    /// `Fn(&Req) -> Res`.
    pub fn outcome_with<O2>(self, f: O2) -> ChaosBuilder<E, O2, P> {
        ChaosBuilder {
            config: self.config,
            error: self.error,
            outcome: f,
            has_outcome: true,
            select: self.select,
        }
    }

    /// Injects only into requests for which `f` is true (default: all); the
    /// others pass through, undrawn and uncounted. Any
    /// [`Select`](crate::Select), such as a closure `Fn(&Req) -> bool`.
    pub fn only_when<P2>(self, f: P2) -> ChaosBuilder<E, O, P2> {
        ChaosBuilder {
            config: self.config,
            error: self.error,
            outcome: self.outcome,
            has_outcome: self.has_outcome,
            select: f,
        }
    }

    /// The layer; every bad field is reported.
    pub fn build(self) -> Result<ChaosLayer<E, O, P>, ConfigError> {
        let mut result = self.config.validate();
        if self.config.outcome_rate > 0.0 && !self.has_outcome {
            let missing = ConfigError::new(
                "outcome_rate",
                self.config.outcome_rate,
                "needs an outcome: give one in code with `outcome_with`",
            );
            result = Err(match result {
                Ok(()) => missing,
                Err(e) => e.merge(missing),
            });
        }
        result?;
        Ok(ChaosLayer {
            control: Arc::new(Control::new(&self.config, self.has_outcome)),
            inject: Arc::new(Inject {
                error: self.error,
                outcome: self.outcome,
                select: self.select,
            }),
        })
    }
}

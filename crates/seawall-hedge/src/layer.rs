//! [`HedgeLayer`] and the state its services share.

use std::fmt;
use std::sync::Arc;

use seawall_core::classify::ErrorsAsFailures;
use seawall_core::clone::ByClone;
use seawall_core::names::TARGET_HEDGE;
use seawall_core::{Clock, ConfigError};
use seawall_timeout::DeadlineTracker;
use tower_layer::Layer;

use crate::budget::HedgeBudget;
use crate::config::{HedgeBuilder, HedgeConfig};
use crate::service::Hedge;
use crate::stats::{Counters, HedgeStats};

/// What every clone of a layer and of its services shares.
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) tracker: DeadlineTracker,
    pub(crate) budget: HedgeBudget,
    pub(crate) max_hedges: u32,
    pub(crate) counters: Counters,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics::Handles,
}

impl Shared {
    pub(crate) fn stats(&self) -> HedgeStats {
        let c = &self.counters;
        HedgeStats {
            calls: self.budget.calls(),
            hedges_sent: Counters::get(&c.sent),
            hedges_won: Counters::get(&c.won),
            budget_exhausted: Counters::get(&c.budget_exhausted),
            not_cloneable: Counters::get(&c.not_cloneable),
            delay: self.publish_delay(),
            budget_balance: self.budget.balance(),
        }
    }

    /// The layer's own delay, published as `seawall_hedge_delay_seconds`
    /// (feature `metrics`) if it changed since it was last published. Run
    /// when the layer is built, after each latency its first attempts
    /// record (where the delay is recomputed), and by `stats()`: one
    /// atomic load, and a gauge write only when the delay moved.
    pub(crate) fn publish_delay(&self) -> std::time::Duration {
        let delay = self.tracker.deadline();
        #[cfg(feature = "metrics")]
        self.metrics.delay(delay);
        delay
    }

    pub(crate) fn sent(&self) {
        Counters::bump(&self.counters.sent);
        #[cfg(feature = "metrics")]
        self.metrics.sent.increment(1);
    }

    pub(crate) fn won(&self) {
        Counters::bump(&self.counters.won);
        #[cfg(feature = "metrics")]
        self.metrics.won.increment(1);
    }

    pub(crate) fn budget_exhausted(&self) {
        Counters::bump(&self.counters.budget_exhausted);
        #[cfg(feature = "metrics")]
        self.metrics.budget_exhausted.increment(1);
        tracing::debug!(target: TARGET_HEDGE, name = &*self.name, "hedge budget spent: hedge not sent");
    }

    pub(crate) fn not_cloneable(&self) {
        Counters::bump(&self.counters.not_cloneable);
        #[cfg(feature = "metrics")]
        self.metrics.not_cloneable.increment(1);
    }
}

/// Sends a second attempt of a slow request and takes the first good
/// answer; see the [crate docs](crate).
///
/// Cloning the layer shares its latency window, budget and stats: every
/// service it wraps hedges on the same delay and spends from one budget.
#[derive(Clone)]
pub struct HedgeLayer<P = ByClone, C = ErrorsAsFailures> {
    pub(crate) shared: Arc<Shared>,
    policy: P,
    classify: C,
}

impl<P, C> fmt::Debug for HedgeLayer<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("name", &self.shared.name)
            .field("max_hedges", &self.shared.max_hedges)
            .field("delay", &self.shared.tracker.deadline())
            .finish_non_exhaustive()
    }
}

impl HedgeLayer {
    /// A layer for `config` (validated), hedging every `Clone` request.
    pub fn new(config: &HedgeConfig) -> Result<Self, ConfigError> {
        Self::from_parts(config, Clock::tokio(), ByClone, ErrorsAsFailures)
    }

    /// A builder holding the defaults (see [`HedgeConfig`]).
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder::new()
    }
}

impl<P, C> HedgeLayer<P, C> {
    pub(crate) fn from_parts(
        config: &HedgeConfig,
        clock: Clock,
        policy: P,
        classify: C,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        // The tracker reports nothing of its own: the delay is this
        // layer's gauge, not an adaptive timeout's deadline of the same name.
        let tracker = DeadlineTracker::without_metrics(&config.tracker_config(), clock.clone())?;
        let budget = HedgeBudget::new(
            config.budget_ratio,
            config.budget_min_per_sec,
            config.budget_burst,
            clock,
        );
        let shared = Arc::new(Shared {
            name: config.name.as_str().into(),
            tracker,
            budget,
            max_hedges: config.max_hedges,
            counters: Counters::default(),
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Handles::new(&config.name),
        });
        shared.publish_delay();
        Ok(HedgeLayer {
            shared,
            policy,
            classify,
        })
    }

    /// A snapshot of the layer's counters, delay and budget.
    pub fn stats(&self) -> HedgeStats {
        self.shared.stats()
    }

    /// The latency window the delay follows (the adaptive timeout's core):
    /// its [`stats`](DeadlineTracker::stats) show the percentiles.
    pub fn tracker(&self) -> &DeadlineTracker {
        &self.shared.tracker
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for HedgeLayer<P, C> {
    type Service = Hedge<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::new(
            inner,
            self.shared.clone(),
            self.policy.clone(),
            self.classify.clone(),
        )
    }
}

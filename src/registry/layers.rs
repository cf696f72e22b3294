//! What the registry knows of each kind of layer: [`Register`] and the
//! handles behind it.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use seawall_core::ReloadError;

use super::{Control, Refusal};

/// What kind of layer a registered layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerKind {
    /// A [`BreakerLayer`](seawall_breaker::BreakerLayer).
    Breaker,
    /// A [`KeyedBreakerLayer`](seawall_breaker::KeyedBreakerLayer).
    KeyedBreaker,
    /// A [`ShedLayer`](seawall_shed::ShedLayer).
    Shed,
    /// A [`BudgetLayer`](seawall_budget::BudgetLayer).
    Budget,
    /// A [`KeyedBudgetLayer`](seawall_budget::KeyedBudgetLayer).
    KeyedBudget,
    /// A Redis budget (`seawall_budget_redis::RedisBudgetLayer`).
    RedisBudget,
    /// An [`AdaptiveTimeoutLayer`](seawall_timeout::AdaptiveTimeoutLayer).
    Timeout,
    /// A [`KeyedAdaptiveTimeoutLayer`](seawall_timeout::KeyedAdaptiveTimeoutLayer).
    KeyedTimeout,
    /// A [`RetryLayer`](seawall_retry::RetryLayer).
    Retry,
    /// A hedge layer (`seawall_hedge::HedgeLayer`).
    Hedge,
    /// A chaos layer (`seawall_chaos::ChaosLayer`).
    Chaos,
}

impl LayerKind {
    /// A stable snake_case name (`breaker`, `keyed_breaker`, `shed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::Breaker => "breaker",
            LayerKind::KeyedBreaker => "keyed_breaker",
            LayerKind::Shed => "shed",
            LayerKind::Budget => "budget",
            LayerKind::KeyedBudget => "keyed_budget",
            LayerKind::RedisBudget => "redis_budget",
            LayerKind::Timeout => "timeout",
            LayerKind::KeyedTimeout => "keyed_timeout",
            LayerKind::Retry => "retry",
            LayerKind::Hedge => "hedge",
            LayerKind::Chaos => "chaos",
        }
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A layer's `stats()` snapshot, by kind.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LayerStats {
    /// A breaker's stats.
    #[cfg(feature = "breaker")]
    Breaker(seawall_breaker::BreakerStats),
    /// A keyed breaker's totals over its keys.
    #[cfg(feature = "breaker")]
    KeyedBreaker(seawall_breaker::KeyedStats),
    /// A shedder's stats.
    #[cfg(feature = "shed")]
    Shed(seawall_shed::ShedStats),
    /// A budget's stats.
    #[cfg(feature = "budget")]
    Budget(seawall_budget::BudgetStats),
    /// A keyed budget's totals over its keys.
    #[cfg(feature = "budget")]
    KeyedBudget(seawall_budget::KeyedBudgetStats),
    /// A Redis budget's stats.
    #[cfg(feature = "redis")]
    RedisBudget(Box<seawall_budget_redis::RedisBudgetStats>),
    /// An adaptive timeout's stats.
    #[cfg(feature = "timeout")]
    Timeout(seawall_timeout::AdaptiveTimeoutStats),
    /// A keyed adaptive timeout: its key count and the overflow deadline.
    #[cfg(feature = "timeout")]
    KeyedTimeout {
        /// Keys held.
        keys: usize,
        /// Calls served by the overflow deadline.
        overflowed: u64,
        /// The overflow deadline's stats.
        overflow: seawall_timeout::AdaptiveTimeoutStats,
    },
    /// A retry layer's stats.
    #[cfg(feature = "retry")]
    Retry(seawall_retry::RetryStats),
    /// A hedge layer's stats.
    #[cfg(feature = "hedge")]
    Hedge(seawall_hedge::HedgeStats),
    /// A chaos layer's stats.
    #[cfg(feature = "chaos")]
    Chaos(seawall_chaos::ChaosStats),
}

/// One key's stats in a keyed layer: from [`Registry::keys`](super::Registry::keys).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KeyStats {
    /// A keyed breaker's key.
    #[cfg(feature = "breaker")]
    Breaker(seawall_breaker::BreakerStats),
    /// A keyed adaptive timeout's key.
    #[cfg(feature = "timeout")]
    Timeout(seawall_timeout::AdaptiveTimeoutStats),
}

/// A new config for one running layer: what [`Registry::reload`](super::Registry::reload) takes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LayerConfig {
    /// For a [`LayerKind::Breaker`].
    #[cfg(feature = "breaker")]
    Breaker(seawall_breaker::BreakerConfig),
    /// For a [`LayerKind::KeyedBreaker`].
    #[cfg(feature = "breaker")]
    KeyedBreaker(seawall_breaker::KeyedBreakerConfig),
    /// For a [`LayerKind::Shed`].
    #[cfg(feature = "shed")]
    Shed(seawall_shed::ShedConfig),
    /// For a [`LayerKind::Budget`].
    #[cfg(feature = "budget")]
    Budget(seawall_budget::BudgetConfig),
    /// For a [`LayerKind::KeyedBudget`].
    #[cfg(feature = "budget")]
    KeyedBudget(seawall_budget::KeyedBudgetConfig),
    /// For a [`LayerKind::Timeout`].
    #[cfg(feature = "timeout")]
    Timeout(seawall_timeout::AdaptiveTimeoutConfig),
    /// For a [`LayerKind::KeyedTimeout`].
    #[cfg(feature = "timeout")]
    KeyedTimeout(seawall_timeout::KeyedAdaptiveTimeoutConfig),
    /// For a [`LayerKind::Retry`].
    #[cfg(feature = "retry")]
    Retry(seawall_retry::RetryConfig),
    /// For a [`LayerKind::RedisBudget`]: accepted only when it equals the
    /// config the layer runs on (a Redis budget is not reloaded in place).
    #[cfg(feature = "redis")]
    RedisBudget(Box<seawall_budget_redis::RedisBudgetConfig>),
    /// For a [`LayerKind::Chaos`]: its rates, latency and switch, applied
    /// through its handle.
    #[cfg(feature = "chaos")]
    Chaos(seawall_chaos::ChaosConfig),
}

impl LayerConfig {
    /// The kind of layer this config is for.
    pub fn kind(&self) -> LayerKind {
        match *self {
            #[cfg(feature = "breaker")]
            LayerConfig::Breaker(_) => LayerKind::Breaker,
            #[cfg(feature = "breaker")]
            LayerConfig::KeyedBreaker(_) => LayerKind::KeyedBreaker,
            #[cfg(feature = "shed")]
            LayerConfig::Shed(_) => LayerKind::Shed,
            #[cfg(feature = "budget")]
            LayerConfig::Budget(_) => LayerKind::Budget,
            #[cfg(feature = "budget")]
            LayerConfig::KeyedBudget(_) => LayerKind::KeyedBudget,
            #[cfg(feature = "timeout")]
            LayerConfig::Timeout(_) => LayerKind::Timeout,
            #[cfg(feature = "timeout")]
            LayerConfig::KeyedTimeout(_) => LayerKind::KeyedTimeout,
            #[cfg(feature = "retry")]
            LayerConfig::Retry(_) => LayerKind::Retry,
            #[cfg(feature = "redis")]
            LayerConfig::RedisBudget(_) => LayerKind::RedisBudget,
            #[cfg(feature = "chaos")]
            LayerConfig::Chaos(_) => LayerKind::Chaos,
        }
    }
}

// A config for another kind of layer.
#[allow(dead_code)] // Unused when no reloadable mechanism is enabled.
fn wrong_kind(want: LayerKind, config: &LayerConfig) -> ReloadError {
    ReloadError::not_in_place(
        "kind",
        format!("a {} config cannot reload a {} layer", config.kind(), want),
    )
}

/// What the registry calls on a registered layer. Implemented here for each
/// kind; a layer's handle is a clone sharing the running layer's state.
pub(crate) trait Inspect: Send + Sync + 'static {
    fn kind(&self) -> LayerKind;
    fn stats(&self) -> LayerStats;
    /// Every key with its stats, for a keyed layer.
    fn keys(&self) -> Option<Vec<(String, KeyStats)>> {
        None
    }
    fn control(&self, control: Control, key: Option<&str>) -> Result<(), Refusal> {
        let _ = (control, key);
        Err(Refusal::Unsupported(
            "be forced open, forced closed or reset",
        ))
    }
    fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
        Err(ReloadError::not_in_place(
            "kind",
            format!(
                "a {} layer cannot be reloaded (a {} config was given)",
                self.kind(),
                config.kind()
            ),
        ))
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A layer the [`Registry`](super::Registry) can hold: every seawall layer
/// with state worth seeing (breakers, shedders, budgets, timeouts, retries,
/// hedges, chaos), keyed ones when their key is `Display`.
///
/// Sealed: the registry knows each kind's stats, controls and reload.
pub trait Register: sealed::Sealed {
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn inspect(&self) -> Arc<dyn Inspect>;
}

/// `impl Register` for a layer type through a newtype handle.
macro_rules! register {
    (
        $handle:ident<$($g:ident),*> for $layer:ty
        where [$($bounds:tt)*]
    ) => {
        struct $handle<$($g),*>($layer);

        impl<$($g),*> sealed::Sealed for $layer where $($bounds)* {}

        impl<$($g),*> Register for $layer
        where
            $($bounds)*
        {
            #[allow(private_interfaces)]
            fn inspect(&self) -> Arc<dyn Inspect> {
                Arc::new($handle(self.clone()))
            }
        }
    };
}

// Keys of keyed layers, named by their Display form.
#[allow(dead_code)]
fn render<K: fmt::Display>(key: &K) -> String {
    key.to_string()
}

#[cfg(feature = "breaker")]
mod breaker {
    use super::*;
    use seawall_breaker::{BreakerLayer, KeyedBreakerLayer};

    register!(Breaker<C> for BreakerLayer<C> where [C: Clone + Send + Sync + 'static]);

    impl<C: Clone + Send + Sync + 'static> Inspect for Breaker<C> {
        fn kind(&self) -> LayerKind {
            LayerKind::Breaker
        }
        fn stats(&self) -> LayerStats {
            LayerStats::Breaker(self.0.stats())
        }
        fn control(&self, control: Control, key: Option<&str>) -> Result<(), Refusal> {
            if key.is_some() {
                return Err(Refusal::Unsupported("name a key (it is not keyed)"));
            }
            match control {
                Control::ForceOpen => self.0.force_open(),
                Control::ForceClosed => self.0.force_closed(),
                Control::Reset => self.0.reset(),
            }
            Ok(())
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::Breaker(c) => self.0.reload(c),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::Breaker, other)),
            }
        }
    }

    register!(KeyedBreaker<KF, K, C> for KeyedBreakerLayer<KF, K, C>
    where [
        KF: Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
        C: Clone + Send + Sync + 'static,
    ]);

    impl<KF, K, C> Inspect for KeyedBreaker<KF, K, C>
    where
        KF: Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
        C: Clone + Send + Sync + 'static,
    {
        fn kind(&self) -> LayerKind {
            LayerKind::KeyedBreaker
        }
        fn stats(&self) -> LayerStats {
            LayerStats::KeyedBreaker(self.0.stats())
        }
        fn keys(&self) -> Option<Vec<(String, KeyStats)>> {
            let keys = self.0.all_key_stats();
            Some(
                keys.into_iter()
                    .map(|(k, s)| (render(&k), KeyStats::Breaker(s)))
                    .collect(),
            )
        }
        fn control(&self, control: Control, key: Option<&str>) -> Result<(), Refusal> {
            let Some(wanted) = key else {
                return Err(Refusal::Unsupported(
                    "be controlled as a whole (name one of its keys)",
                ));
            };
            // Keys are named by their Display form: find the one held.
            let mut found = None;
            for (k, _) in self.0.all_key_stats() {
                if render(&k) == wanted {
                    found = Some(k);
                    break;
                }
            }
            let key = found.ok_or(Refusal::NoKey)?;
            let held = match control {
                Control::ForceOpen => self.0.force_open(key),
                Control::ForceClosed => self.0.force_closed(key),
                Control::Reset => {
                    self.0.reset(&key);
                    true
                }
            };
            // The key was held a moment ago; if it was evicted since and the
            // map is now full, say so rather than pretend.
            if held { Ok(()) } else { Err(Refusal::NoKey) }
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::KeyedBreaker(c) => self.0.reload(c),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::KeyedBreaker, other)),
            }
        }
    }
}

#[cfg(feature = "shed")]
mod shed {
    use super::*;
    use seawall_shed::ShedLayer;

    register!(Shed<P, C> for ShedLayer<P, C>
        where [P: Clone + Send + Sync + 'static, C: Clone + Send + Sync + 'static]);

    impl<P, C> Inspect for Shed<P, C>
    where
        P: Clone + Send + Sync + 'static,
        C: Clone + Send + Sync + 'static,
    {
        fn kind(&self) -> LayerKind {
            LayerKind::Shed
        }
        fn stats(&self) -> LayerStats {
            LayerStats::Shed(self.0.stats())
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::Shed(c) => self.0.reload(c),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::Shed, other)),
            }
        }
    }
}

#[cfg(feature = "budget")]
mod budget {
    use super::*;
    use seawall_budget::{BudgetLayer, KeyedBudgetLayer};

    register!(Budget<> for BudgetLayer where []);

    impl Inspect for Budget {
        fn kind(&self) -> LayerKind {
            LayerKind::Budget
        }
        fn stats(&self) -> LayerStats {
            LayerStats::Budget(self.0.stats())
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::Budget(c) => self.0.reload(c),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::Budget, other)),
            }
        }
    }

    register!(KeyedBudget<F, K> for KeyedBudgetLayer<F, K>
    where [
        F: Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + Send + Sync + 'static,
    ]);

    impl<F, K> Inspect for KeyedBudget<F, K>
    where
        F: Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + Send + Sync + 'static,
    {
        fn kind(&self) -> LayerKind {
            LayerKind::KeyedBudget
        }
        fn stats(&self) -> LayerStats {
            LayerStats::KeyedBudget(self.0.stats())
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::KeyedBudget(c) => self.0.reload(c),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::KeyedBudget, other)),
            }
        }
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use seawall_budget_redis::RedisBudgetLayer;

    register!(RedisBudget<> for RedisBudgetLayer where []);

    impl Inspect for RedisBudget {
        fn kind(&self) -> LayerKind {
            LayerKind::RedisBudget
        }
        fn stats(&self) -> LayerStats {
            LayerStats::RedisBudget(Box::new(self.0.stats()))
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::RedisBudget(c) if **c == *self.0.config() => Ok(()),
                LayerConfig::RedisBudget(_) => Err(ReloadError::not_in_place(
                    "backend",
                    "a Redis budget is not reloaded in place; restart to apply a new one",
                )),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::RedisBudget, other)),
            }
        }
    }
}

#[cfg(feature = "timeout")]
mod timeout {
    use super::*;
    use seawall_timeout::{AdaptiveTimeoutLayer, KeyedAdaptiveTimeoutLayer};

    register!(Timeout<> for AdaptiveTimeoutLayer where []);

    impl Inspect for Timeout {
        fn kind(&self) -> LayerKind {
            LayerKind::Timeout
        }
        fn stats(&self) -> LayerStats {
            LayerStats::Timeout(self.0.stats())
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::Timeout(c) => self.0.reload(c),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::Timeout, other)),
            }
        }
    }

    register!(KeyedTimeout<F, K> for KeyedAdaptiveTimeoutLayer<F, K>
    where [
        F: Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    ]);

    impl<F, K> Inspect for KeyedTimeout<F, K>
    where
        F: Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    {
        fn kind(&self) -> LayerKind {
            LayerKind::KeyedTimeout
        }
        fn stats(&self) -> LayerStats {
            LayerStats::KeyedTimeout {
                keys: self.0.len(),
                overflowed: self.0.overflowed(),
                overflow: self.0.overflow_stats(),
            }
        }
        fn keys(&self) -> Option<Vec<(String, KeyStats)>> {
            Some(
                self.0
                    .stats()
                    .into_iter()
                    .map(|(k, s)| (render(&k), KeyStats::Timeout(s)))
                    .collect(),
            )
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::KeyedTimeout(c) => self.0.reload(c),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::KeyedTimeout, other)),
            }
        }
    }
}

#[cfg(feature = "retry")]
mod retry {
    use super::*;
    use seawall_retry::RetryLayer;

    register!(Retry<C, R, H> for RetryLayer<C, R, H>
    where [
        C: Send + Sync + 'static,
        R: Send + Sync + 'static,
        H: Send + Sync + 'static,
    ]);

    impl<C, R, H> Inspect for Retry<C, R, H>
    where
        C: Send + Sync + 'static,
        R: Send + Sync + 'static,
        H: Send + Sync + 'static,
    {
        fn kind(&self) -> LayerKind {
            LayerKind::Retry
        }
        fn stats(&self) -> LayerStats {
            LayerStats::Retry(self.0.stats())
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::Retry(c) => self.0.reload(c),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::Retry, other)),
            }
        }
    }
}

#[cfg(feature = "hedge")]
mod hedge {
    use super::*;
    use seawall_hedge::HedgeLayer;

    register!(Hedge<P, C> for HedgeLayer<P, C>
        where [P: Clone + Send + Sync + 'static, C: Clone + Send + Sync + 'static]);

    impl<P, C> Inspect for Hedge<P, C>
    where
        P: Clone + Send + Sync + 'static,
        C: Clone + Send + Sync + 'static,
    {
        fn kind(&self) -> LayerKind {
            LayerKind::Hedge
        }
        fn stats(&self) -> LayerStats {
            LayerStats::Hedge(self.0.stats())
        }
    }
}

#[cfg(feature = "chaos")]
mod chaos {
    use super::*;
    use seawall_chaos::ChaosLayer;

    register!(Chaos<E, O, P> for ChaosLayer<E, O, P>
    where [
        E: Send + Sync + 'static,
        O: Send + Sync + 'static,
        P: Send + Sync + 'static,
    ]);

    impl<E, O, P> Inspect for Chaos<E, O, P>
    where
        E: Send + Sync + 'static,
        O: Send + Sync + 'static,
        P: Send + Sync + 'static,
    {
        fn kind(&self) -> LayerKind {
            LayerKind::Chaos
        }
        fn stats(&self) -> LayerStats {
            LayerStats::Chaos(self.0.stats())
        }
        fn reload(&self, config: &LayerConfig) -> Result<(), ReloadError> {
            match config {
                LayerConfig::Chaos(c) => Ok(self.0.handle().apply(c)?),
                #[allow(unreachable_patterns)]
                other => Err(wrong_kind(LayerKind::Chaos, other)),
            }
        }
    }
}

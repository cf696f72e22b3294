//! [`BudgetLayer`] and [`KeyedBudgetLayer`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use seawall_core::names::TARGET_BUDGET;
use seawall_core::{Clock, ConfigError, KeyFn, ReloadError};
use tower_layer::Layer;

use crate::config::{BudgetBuilder, BudgetConfig, BudgetMode, KeyedBudgetConfig};
use crate::keyed::{KeyedBudgetStats, KeyedShared};
use crate::loop_budget::{BudgetStats, LoopBudget};
use crate::service::{Budget, KeyedBudget};

/// Applies a rate budget to a [`Service`](tower_service::Service).
///
/// The layer owns one [`LoopBudget`], created by `build()`; every service it
/// makes, and all their clones, share it, so [`stats`](Self::stats) sees all
/// their calls. To give two stacks separate budgets, build two layers.
///
/// See [`Budget`] for what each [`BudgetMode`] does.
///
/// ```
/// use seawall_budget::{BudgetLayer, BudgetMode};
/// use seawall_core::{Rejection, RejectionKind};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let layer = BudgetLayer::builder().rate(10).burst(2).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) }));
///
/// assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
/// assert_eq!(svc.clone().oneshot(2).await.unwrap(), 2);
/// let err = svc.clone().oneshot(3).await.unwrap_err();
/// let rejection = Rejection::find(&*err).unwrap();
/// assert_eq!(rejection.kind(), RejectionKind::BudgetExhausted);
/// assert_eq!(rejection.retry_after(), Some(std::time::Duration::from_millis(100)));
/// assert_eq!(layer.stats().iterations, 2);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BudgetLayer {
    budget: LoopBudget,
    mode: BudgetMode,
}

impl BudgetLayer {
    /// A builder; see [`BudgetConfig`] for the fields and defaults.
    pub fn builder() -> BudgetBuilder {
        BudgetBuilder::new()
    }

    /// A layer from a config, validated first.
    pub fn from_config(config: &BudgetConfig) -> Result<BudgetLayer, ConfigError> {
        BudgetBuilder::from_config(config.clone()).build()
    }

    /// A layer around an existing budget: calls through the layer and
    /// iterations of loops holding a clone of `budget` spend the same tokens.
    pub fn from_budget(budget: LoopBudget, mode: BudgetMode) -> BudgetLayer {
        BudgetLayer { budget, mode }
    }

    /// The shared budget.
    pub fn budget(&self) -> &LoopBudget {
        &self.budget
    }

    /// The mode of the services this layer makes.
    pub fn mode(&self) -> BudgetMode {
        self.mode
    }

    /// A snapshot of the shared budget's counters.
    pub fn stats(&self) -> BudgetStats {
        self.budget.stats()
    }

    /// Applies `config` to the running layer: every service it has made
    /// and will make, and every clone, share its budget, so all see the
    /// change from their next call. All of it or, on an error, none of it.
    ///
    /// - **From the next call**: `rate`, `per`, `burst`.
    /// - **Kept**: the budget's state, as [`LoopBudget::reload`] says
    ///   (tokens available stay available, capped at the new burst; tokens
    ///   spent stay spent), its counters, and every service's token held
    ///   for its next call: a Wait-mode service parked on its timer stays
    ///   parked and takes its token under the new rate when it wakes.
    /// - **Not in place** ([`ReloadError::NotInPlace`]): `mode` (a service's
    ///   `poll_ready` either never waits or may wait; a stack above it, such
    ///   as a `Buffer`, is built for one of the two), `advertise` (whether
    ///   the budget states its quota is fixed when it is built), `name`
    ///   (it labels events and metric series).
    ///
    /// A config [`validate`](BudgetConfig::validate) refuses is
    /// [`ReloadError::Invalid`]. A reload emits one `info` event (target
    /// `seawall_budget`) naming the layer and the fields that changed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_budget::{BudgetConfig, BudgetLayer};
    /// use seawall_core::ReloadError;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let config = BudgetConfig::new().rate(10).burst(2);
    /// let layer = BudgetLayer::from_config(&config).unwrap();
    /// let svc = layer.layer(service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) }));
    /// svc.clone().oneshot(1).await.unwrap();
    /// svc.clone().oneshot(2).await.unwrap();
    /// assert!(svc.clone().oneshot(3).await.is_err()); // spent
    ///
    /// // Ten times the rate: the spent burst stays spent, but the next token
    /// // is due in 10ms instead of 100ms, for the service already built.
    /// layer.reload(&config.clone().rate(100)).unwrap();
    /// assert!(svc.clone().oneshot(4).await.is_err());
    /// tokio::time::advance(Duration::from_millis(10)).await;
    /// assert_eq!(svc.clone().oneshot(5).await.unwrap(), 5);
    ///
    /// let err = layer.reload(&config.clone().mode(seawall_budget::BudgetMode::Wait)).unwrap_err();
    /// assert_eq!(err.not_in_place_field(), Some("mode"));
    /// # }
    /// ```
    pub fn reload(&self, config: &BudgetConfig) -> Result<(), ReloadError> {
        config.validate()?;
        if config.mode != self.mode {
            return Err(ReloadError::not_in_place(
                "mode",
                "a service's readiness (reject at once, or wait in poll_ready) is fixed when it is built",
            ));
        }
        if config.name != self.budget.name() {
            return Err(ReloadError::not_in_place(
                "name",
                "the name labels the budget's events and metric series",
            ));
        }
        if config.advertise != self.budget.advertises() {
            return Err(ReloadError::not_in_place(
                "advertise",
                "whether the budget states its quota is fixed when it is built",
            ));
        }
        let changed = self
            .budget
            .reload_rate(config.rate, config.per, config.burst);
        tracing::info!(
            target: TARGET_BUDGET,
            layer = "budget",
            name = %config.name,
            changed = %changed.join(", "),
            rate = config.rate,
            per = ?config.per,
            burst = config.effective_burst(),
            "budget reloaded"
        );
        Ok(())
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Budget<S> {
        Budget::new(inner, self.budget.clone(), self.mode)
    }
}

/// One rate budget per key (client, peer, tenant), taken from each request
/// by a key function, in a bounded map (capacity + idle TTL, seawall-core's
/// `KeyMap`).
///
/// A keyed budget always works in [`BudgetMode::Reject`]: the key is only
/// known in `call`, too late to wait in `poll_ready`. One busy key never
/// spends another key's budget.
///
/// # Keys chosen by callers
///
/// Keys usually come from requests, so whoever sends them chooses them. The
/// layer holds whatever they choose:
///
/// - **A key is forgotten only while it owes nothing**: idle for `keys.idle_ttl`,
///   or to make room in a full map, but only once its whole burst is
///   available again, so that forgetting it changes nothing. A throttled key
///   cannot be pushed out by a flood of junk keys and come back with a full
///   burst.
/// - **The overflow budget**: a new key that finds the map full of keys that
///   owe tokens gets no key of its own; it is served by one overflow budget
///   shared by every such newcomer, with the same `per_key` rate and burst as a
///   single key (as strict as one key, never a free pass). Its rejections
///   carry the key [`OVERFLOW_KEY`](crate::OVERFLOW_KEY) (`"<overflow>"`),
///   and [`stats`](Self::stats) counts its calls in `overflow` and its
///   rejections in `overflow_rejected`. Keys refill within
///   `burst × per / rate` of their last call, and then may be forgotten, so
///   the map cannot be pinned: newcomers get keys of their own again.
/// - **Memory**: at most `keys.capacity` keys, each under 100 bytes with the
///   map's table (75 bytes for a `u64` key). A key keeps only its GCRA
///   cell; a rejection writes the key's label inline (up to 38 bytes), so it
///   costs one allocation, the box, like an unkeyed budget's.
///
/// ```
/// use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
/// use seawall_core::Rejection;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(10).burst(1));
/// let layer = KeyedBudgetLayer::new(|peer: &&'static str| *peer, &cfg).unwrap();
/// let svc = layer.layer(service_fn(|p: &'static str| async move { Ok::<_, std::convert::Infallible>(p) }));
///
/// assert!(svc.clone().oneshot("a").await.is_ok());
/// assert!(svc.clone().oneshot("b").await.is_ok()); // another key, its own budget
/// let err = svc.clone().oneshot("a").await.unwrap_err();
/// assert_eq!(Rejection::find(&*err).unwrap().key(), Some("a"));
/// assert_eq!(layer.stats().keys, 2);
/// # }
/// ```
pub struct KeyedBudgetLayer<F, K> {
    key_fn: F,
    shared: Arc<KeyedShared<K>>,
}

impl<F: Clone, K> Clone for KeyedBudgetLayer<F, K> {
    fn clone(&self) -> Self {
        KeyedBudgetLayer {
            key_fn: self.key_fn.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<F, K: std::hash::Hash + Eq> fmt::Debug for KeyedBudgetLayer<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBudgetLayer")
            .field("config", &*self.shared.config())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<F, K> KeyedBudgetLayer<F, K>
where
    K: std::hash::Hash + Eq,
{
    /// A keyed budget taking keys with `key_fn`; validates `config`
    /// (which refuses `per_key.mode = wait`: a keyed budget always
    /// rejects). It reads tokio's clock; see [`clock`](Self::clock).
    ///
    /// The request type is inferred from `key_fn`'s argument.
    pub fn new<Req>(key_fn: F, config: &KeyedBudgetConfig) -> Result<Self, ConfigError>
    where
        F: KeyFn<Req, Key = K>,
    {
        config.validate()?;
        Ok(KeyedBudgetLayer {
            key_fn,
            shared: Arc::new(KeyedShared::new(config, Clock::default())),
        })
    }

    /// The same layer reading `clock` (default [`Clock::tokio`]) for every
    /// key's budget and for the key map's idle eviction. Call it right after
    /// [`new`](Self::new): it starts the layer afresh (full budgets, no
    /// keys), and services made from the layer before keep the old state.
    ///
    /// A keyed budget never sleeps, so any clock works alike:
    /// [`Clock::manual`] drives refill, refusals and eviction by hand with no
    /// runtime, `Clock::tsc` makes each reading cheaper.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
    /// use seawall_core::Clock;
    ///
    /// let (clock, hand) = Clock::manual();
    /// let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(10).burst(1));
    /// let layer = KeyedBudgetLayer::new(|k: &u32| *k, &cfg).unwrap().clock(clock);
    /// assert_eq!(layer.available(&7), 1);
    /// ```
    pub fn clock(self, clock: Clock) -> Self {
        KeyedBudgetLayer {
            shared: Arc::new(KeyedShared::new(&self.config(), clock)),
            key_fn: self.key_fn,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> KeyedBudgetConfig {
        self.shared.config().clone()
    }

    /// Applies `config` to the running layer: every key it holds, the
    /// overflow budget, and keys seen later, through every service it has
    /// made and will make. All of it or, on an error, none of it.
    ///
    /// - **From the next call**: `per_key.rate`, `per_key.per`,
    ///   `per_key.burst`, for the keys held and for new keys (which start
    ///   with the new burst, full).
    /// - **Kept**: every key and its state, rescaled as
    ///   [`LoopBudget::reload`] says (tokens a key has left stay its own,
    ///   capped at the new burst; tokens it spent stay spent; a larger
    ///   burst fills at the new rate), the overflow budget the same way,
    ///   and the counters. A key first seen while the reload runs may start
    ///   with the smaller of the two bursts.
    /// - **Not in place** ([`ReloadError::NotInPlace`]): `keys` (the map's
    ///   capacity and idle TTL), `per_key.advertise`, `per_key.name`.
    ///   `per_key.mode` must stay `reject`, as [`validate`](KeyedBudgetConfig::validate) says.
    ///
    /// A reload visits every key once (under the layer's reload lock, not
    /// the calls' path) and emits one `info` event (target
    /// `seawall_budget`) naming the layer and the fields that changed.
    ///
    /// ```
    /// use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
    /// use seawall_core::Clock;
    ///
    /// let (clock, _hand) = Clock::manual();
    /// let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(10).burst(4));
    /// let layer = KeyedBudgetLayer::new(|k: &u32| *k, &cfg).unwrap().clock(clock);
    /// # use tower::{Layer, Service};
    /// # let mut svc = layer.layer(tower::service_fn(|k: u32| async move { Ok::<_, std::convert::Infallible>(k) }));
    /// # let _ = svc.call(7); // key 7 has 3 of 4 left
    /// assert_eq!(layer.available(&7), 3);
    /// layer.reload(&KeyedBudgetConfig::from(BudgetConfig::new().rate(10).burst(2))).unwrap();
    /// assert_eq!(layer.available(&7), 2); // capped at the new burst
    /// assert_eq!(layer.available(&8), 2); // a new key: the new burst, full
    /// ```
    pub fn reload(&self, config: &KeyedBudgetConfig) -> Result<(), ReloadError> {
        self.shared.reload(config)
    }

    /// A snapshot of the counters, all services of this layer together.
    pub fn stats(&self) -> KeyedBudgetStats {
        self.shared.stats()
    }

    /// Whole tokens available now for `key`; a full budget for an unknown
    /// key (a new key that finds the map full is served by the overflow
    /// budget instead; see the type's docs).
    pub fn available<Q>(&self, key: &Q) -> u32
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        match self.shared.map.get(key) {
            Some(cell) => cell.available(&self.shared.rate.load(), self.shared.now()),
            None => self.shared.rate.load().burst(),
        }
    }

    /// Forgets keys idle for at least `keys.idle_ttl`; returns how many. Idle
    /// keys are also forgotten lazily while inserting new ones.
    pub fn evict_idle(&self) -> usize {
        self.shared.map.evict_idle()
    }

    /// The time between two tokens of one key.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.shared.rate.load().emission())
    }
}

impl<S, F: Clone, K> Layer<S> for KeyedBudgetLayer<F, K> {
    type Service = KeyedBudget<S, F, K>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBudget::new(inner, self.key_fn.clone(), self.shared.clone())
    }
}

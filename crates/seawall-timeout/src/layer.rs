//! The layers: [`AdaptiveTimeoutLayer`] (one deadline for everything the
//! layer wraps) and [`KeyedAdaptiveTimeoutLayer`] (one deadline per key).
//!
//! A layer owns its state, created once by `build()`: every service it makes,
//! and all their clones, share it, so [`AdaptiveTimeoutLayer::stats`] sees
//! every call. To get separate deadlines, build separate layers (or key one).

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use seawall_core::names::TARGET_TIMEOUT;
use seawall_core::{Clock, ConfigError, KeyMap, ReloadError};
use tower_layer::Layer;

use crate::config::{
    AdaptiveTimeoutBuilder, AdaptiveTimeoutConfig, KeyedAdaptiveTimeoutConfig, Params,
};
use crate::service::{AdaptiveTimeout, KeyedAdaptiveTimeout};
use crate::tracker::{AdaptiveTimeoutStats, DeadlineTracker};

/// Applies an adaptive (or fixed) deadline to every call of the wrapped
/// service; see the [crate docs](crate).
///
/// ```
/// use std::time::Duration;
/// use seawall_timeout::AdaptiveTimeoutLayer;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = AdaptiveTimeoutLayer::builder().max(Duration::from_secs(2)).build().unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }));
/// assert_eq!(svc.oneshot(1).await.unwrap(), 2);
/// assert_eq!(layer.stats().samples, 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AdaptiveTimeoutLayer {
    tracker: Arc<DeadlineTracker>,
}

impl AdaptiveTimeoutLayer {
    /// A builder holding the defaults (see [`AdaptiveTimeoutConfig`]).
    pub fn builder() -> AdaptiveTimeoutBuilder {
        AdaptiveTimeoutBuilder::new()
    }

    /// Validates `config` and builds the layer, on tokio's clock.
    pub fn from_config(config: &AdaptiveTimeoutConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, Clock::tokio())
    }

    pub(crate) fn with_clock(
        config: &AdaptiveTimeoutConfig,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        Ok(AdaptiveTimeoutLayer {
            tracker: Arc::new(DeadlineTracker::with_clock(config, clock)?),
        })
    }

    /// The layer with its latencies measured on `clock` (see [the crate
    /// docs](crate#clock)): a fresh state, so set it before the layer is
    /// used or cloned (services made before keep the old state).
    ///
    /// ```
    /// use seawall_core::Clock;
    /// use seawall_timeout::AdaptiveTimeoutLayer;
    ///
    /// let (clock, _hand) = Clock::manual();
    /// let layer = AdaptiveTimeoutLayer::builder().build().unwrap().clock(clock);
    /// assert!(!layer.tracker().clock().follows_tokio());
    /// ```
    pub fn clock(self, clock: Clock) -> Self {
        AdaptiveTimeoutLayer {
            tracker: Arc::new(self.tracker.on_clock(clock)),
        }
    }

    /// A fixed timeout, like `tower::timeout::TimeoutLayer`: measures
    /// nothing, counts timeouts, rejects with [`Elapsed`](crate::Elapsed).
    /// The deadline is capped at [`LONGEST_DEADLINE`](crate::LONGEST_DEADLINE) (365 days).
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_timeout::{AdaptiveTimeoutLayer, DeadlineSource};
    ///
    /// let layer = AdaptiveTimeoutLayer::fixed(Duration::from_millis(250));
    /// assert_eq!(layer.stats().source, DeadlineSource::Fixed);
    /// assert_eq!(layer.deadline(), Duration::from_millis(250));
    /// ```
    pub fn fixed(deadline: Duration) -> Self {
        AdaptiveTimeoutLayer {
            tracker: Arc::new(DeadlineTracker::fixed(deadline)),
        }
    }

    /// The deadline the next call gets.
    pub fn deadline(&self) -> Duration {
        self.tracker.deadline()
    }

    /// A snapshot of the deadline and the latency window.
    pub fn stats(&self) -> AdaptiveTimeoutStats {
        self.tracker.stats()
    }

    /// The tower-free core this layer's services share.
    pub fn tracker(&self) -> &DeadlineTracker {
        &self.tracker
    }

    /// Applies `config` to the running layer: every service it has made and
    /// will make, and every clone, share its tracker, so all see the change
    /// from their next call. All of it or, on an error, none of it.
    ///
    /// - **From the next call**: `percentile`, `multiplier`, the `min`/`max`
    ///   clamp (of the deadline and of a caller's `CallTimeout`), `base`,
    ///   `min_samples`, `refresh_every`, `sample_every`, and in fixed mode
    ///   the `fixed` deadline. The deadline is recomputed at once from the
    ///   samples held, so the next call gets it.
    /// - **Kept**: the latency window and its histograms (every sample, the
    ///   window's position), the timeout count, calls in flight (each keeps
    ///   the deadline it started with).
    /// - **Not in place** ([`ReloadError::NotInPlace`]): `name` (it labels
    ///   events and metric series); `fixed` set or unset (a fixed deadline
    ///   keeps no window); `window` (the ring's intervals); a `max` above
    ///   twice the one the layer was built with (the histograms' bound;
    ///   lowering it, or raising it up to that, is in place).
    ///
    /// A config [`validate`](AdaptiveTimeoutConfig::validate) refuses is
    /// [`ReloadError::Invalid`]. A reload emits one `info` event (target
    /// `seawall_timeout`) naming the layer and the fields that changed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_timeout::{AdaptiveTimeoutConfig, AdaptiveTimeoutLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let config = AdaptiveTimeoutConfig::builder()
    ///     .min(Duration::from_millis(10))
    ///     .max(Duration::from_secs(2))
    ///     .min_samples(10)
    ///     .into_config();
    /// let layer = AdaptiveTimeoutLayer::from_config(&config).unwrap();
    /// for _ in 0..10 {
    ///     layer.tracker().record(Duration::from_millis(400));
    /// }
    /// assert!(layer.deadline() >= Duration::from_millis(600)); // p99 × 1.5
    /// // A tighter max applies to the next call; the samples are kept.
    /// let mut tighter = config.clone();
    /// tighter.max = Duration::from_millis(500);
    /// tighter.base = Duration::from_millis(200);
    /// layer.reload(&tighter).unwrap();
    /// assert_eq!(layer.deadline(), Duration::from_millis(500));
    /// assert_eq!(layer.stats().samples, 10);
    ///
    /// let mut wider = config.clone();
    /// wider.window = Duration::from_secs(10);
    /// assert_eq!(layer.reload(&wider).unwrap_err().not_in_place_field(), Some("window"));
    /// # }
    /// ```
    pub fn reload(&self, config: &AdaptiveTimeoutConfig) -> Result<(), ReloadError> {
        self.tracker.reload_as(config, "adaptive_timeout")
    }
}

impl<S> Layer<S> for AdaptiveTimeoutLayer {
    type Service = AdaptiveTimeout<S>;

    fn layer(&self, inner: S) -> AdaptiveTimeout<S> {
        AdaptiveTimeout::new(inner, self.tracker.clone())
    }
}

pub(crate) struct KeyedShared<K> {
    pub(crate) map: KeyMap<K, DeadlineTracker>,
    /// The config in force; held by a reload.
    config: Mutex<KeyedAdaptiveTimeoutConfig>,
    /// The map's, every key's and the overflow tracker's clock.
    pub(crate) clock: Clock,
    /// The numbers a new key starts with: those in force, on the bounds
    /// (histograms, window) of the first key's.
    params: Mutex<Params>,
    pub(crate) name: Arc<str>,
    /// Serves the keys the map has no room for (its shard is full of keys
    /// whose deadline is learned): one deadline shared by all of them, that
    /// starts at `base` and learns like a key's.
    pub(crate) overflow: DeadlineTracker,
    /// Calls served by `overflow`.
    pub(crate) overflowed: AtomicU64,
}

impl<K: Hash + Eq + fmt::Display> KeyedShared<K> {
    /// Shared state for a validated `config`.
    fn new(config: KeyedAdaptiveTimeoutConfig, clock: Clock) -> Self
    where
        K: Clone + Send + Sync + 'static,
    {
        let params = Params::new(&config.per_key).key_metrics(config.key_metrics);
        let name: Arc<str> = config.per_key.name.as_str().into();
        // The map hands `evictable_when` readings of the same clock as the
        // keys' freshness.
        let map = KeyMap::new(config.keys)
            .clock(clock.clone())
            .evictable_when(|tracker: &DeadlineTracker, now: u64| tracker.is_fresh(now));
        #[cfg(feature = "metrics")]
        let map = map.on_evict(|_, tracker: &DeadlineTracker| tracker.retire());
        KeyedShared {
            map,
            params: Mutex::new(params),
            overflow: DeadlineTracker::with_params(params, name.clone(), clock.clone()),
            overflowed: AtomicU64::new(0),
            name,
            config: Mutex::new(config),
            clock,
        }
    }

    pub(crate) fn tracker(&self, key: K) -> Result<Arc<DeadlineTracker>, ()> {
        self.map
            .get_or_insert_with(key, |k| {
                let label: Arc<str> = k.to_string().into();
                let params = *lock(&self.params);
                DeadlineTracker::keyed(params, self.name.clone(), label, self.clock.clone())
            })
            .map_err(|_| ())
    }

    /// The bounds of a caller's `CallTimeout` in force, packed (every key's
    /// are the overflow tracker's).
    #[inline]
    pub(crate) fn clamp(&self) -> [u64; 2] {
        self.overflow.clamp()
    }

    /// The config in force.
    pub(crate) fn config(&self) -> MutexGuard<'_, KeyedAdaptiveTimeoutConfig> {
        lock(&self.config)
    }

    /// See [`KeyedAdaptiveTimeoutLayer::reload`].
    fn reload(&self, next: &KeyedAdaptiveTimeoutConfig) -> Result<(), ReloadError> {
        next.validate()?;
        // Held to the end: one reload at a time.
        let mut config = lock(&self.config);
        if config.per_key.name != next.per_key.name {
            return Err(ReloadError::not_in_place(
                "per_key.name",
                "the name labels the layer's events and metric series",
            ));
        }
        if config.keys != next.keys {
            return Err(ReloadError::not_in_place(
                "keys",
                "the key map's capacity and idle_ttl are fixed when it is built",
            ));
        }
        if config.key_metrics != next.key_metrics {
            return Err(ReloadError::not_in_place(
                "key_metrics",
                "whether a key reports its own series is fixed when it is built",
            ));
        }
        // Every key was built on the overflow tracker's bounds, so one
        // check answers for all of them.
        let params = Params::new(&next.per_key).key_metrics(next.key_metrics);
        self.overflow.check_in_place(&params).map_err(|e| match e {
            ReloadError::NotInPlace { field, reason } => {
                ReloadError::not_in_place(format!("per_key.{field}"), reason)
            }
            other => other,
        })?;
        let changed = self.overflow.apply(params);
        // New keys start on the numbers now in force; set before visiting
        // the keys (and not held meanwhile: an insert takes it under the
        // map's lock), so a key inserted during the visit has them either way.
        *lock(&self.params) = self.overflow.params();
        let mut keys = 0usize;
        self.map.for_each(|_, tracker| {
            tracker.apply(params);
            keys += 1;
        });
        *config = next.clone();
        drop(config);
        tracing::info!(
            target: TARGET_TIMEOUT,
            layer = "keyed_adaptive_timeout",
            name = &*self.name,
            changed = %changed.join(", "),
            keys,
            "adaptive timeout reloaded"
        );
        Ok(())
    }

    /// The overflow tracker, counting the call (a shared write, on this
    /// degraded path only).
    #[cold]
    pub(crate) fn overflow(&self) -> &DeadlineTracker {
        self.overflowed.fetch_add(1, Relaxed);
        &self.overflow
    }
}

/// One adaptive deadline per key (peer, host, route) taken from each request
/// by a key function; a slow peer never stretches its neighbours' deadlines.
///
/// Per-key state lives in a bounded [`KeyMap`] (`keys.capacity` keys, idle
/// keys evicted after `keys.idle_ttl` of [`KeyedAdaptiveTimeoutConfig`]); the key's `Display` form is computed
/// once, when the key is inserted, and shared by every [`Elapsed`](crate::Elapsed)
/// of that key. A key costs under 4 KiB whatever the config (its
/// histograms are compact: see the [crate docs](crate#memory)).
///
/// A key is evicted (idle, or to make room for a new one) only while its
/// deadline is the base deadline a fresh key would get, i.e. until it has
/// learned one and again once its window has drained: a flood of new keys
/// cannot make an active key forget its deadline. A key the map has no room
/// for is served by one overflow deadline shared by all such keys (never by
/// none): see [`overflow_stats`](Self::overflow_stats).
///
/// ```
/// use std::time::Duration;
/// use seawall_timeout::{KeyedAdaptiveTimeoutConfig, KeyedAdaptiveTimeoutLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let config = KeyedAdaptiveTimeoutConfig::new().capacity(100);
/// let layer = KeyedAdaptiveTimeoutLayer::new(|req: &(&'static str, u32)| req.0, &config).unwrap();
/// let svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|req: (&'static str, u32)| async move { Ok::<_, std::io::Error>(req.1) }));
/// svc.clone().oneshot(("db", 1)).await.unwrap();
/// svc.oneshot(("cache", 2)).await.unwrap();
/// assert_eq!(layer.len(), 2);
/// assert_eq!(layer.key_stats("db").unwrap().samples, 1);
/// # }
/// ```
pub struct KeyedAdaptiveTimeoutLayer<F, K> {
    key_fn: Arc<F>,
    shared: Arc<KeyedShared<K>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoned only by a panic under the lock; nothing under these locks
    // panics, and the data stays whole either way.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<F, K> Clone for KeyedAdaptiveTimeoutLayer<F, K> {
    fn clone(&self) -> Self {
        KeyedAdaptiveTimeoutLayer {
            key_fn: self.key_fn.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<F, K> fmt::Debug for KeyedAdaptiveTimeoutLayer<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAdaptiveTimeoutLayer")
            .field("name", &self.shared.name)
            .field("map", &self.shared.map)
            .finish_non_exhaustive()
    }
}

impl<F, K> KeyedAdaptiveTimeoutLayer<F, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// Validates `config` and builds a layer keyed by `key_fn` (any
    /// [`KeyFn`](seawall_core::KeyFn), e.g. a closure `Fn(&Req) -> K`), on
    /// tokio's clock.
    pub fn new(key_fn: F, config: &KeyedAdaptiveTimeoutConfig) -> Result<Self, ConfigError> {
        Self::with_clock(key_fn, config.clone(), Clock::tokio())
    }

    pub(crate) fn with_clock(
        key_fn: F,
        config: KeyedAdaptiveTimeoutConfig,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(KeyedAdaptiveTimeoutLayer {
            key_fn: Arc::new(key_fn),
            shared: Arc::new(KeyedShared::new(config, clock)),
        })
    }

    /// The layer with its latencies measured, its windows aged and its idle
    /// keys found on `clock` (its map of keys reads it too; see [the crate
    /// docs](crate#clock)): a fresh state, so set it before the layer is
    /// used or cloned (services made before keep the old state).
    pub fn clock(self, clock: Clock) -> Self {
        let config = self.shared.config().clone();
        KeyedAdaptiveTimeoutLayer {
            key_fn: self.key_fn,
            shared: Arc::new(KeyedShared::new(config, clock)),
        }
    }

    /// The configuration in force: the one the layer was built with, or
    /// the last [`reload`](Self::reload)'s.
    pub fn config(&self) -> KeyedAdaptiveTimeoutConfig {
        self.shared.config().clone()
    }

    /// Applies `config` to the running layer: every key it holds, the
    /// overflow deadline, and keys seen later, through every service it has
    /// made and will make. All of it or, on an error, none of it.
    ///
    /// What changes from the next call, what is kept (each key's window and
    /// histograms) and what cannot change in place are as for
    /// [`AdaptiveTimeoutLayer::reload`], with `per_key.` before the field's
    /// name; `keys` (the map's capacity and idle TTL) and `key_metrics`
    /// cannot change in place either. A reload visits every key once (not on
    /// the calls' path) and emits one `info` event (target
    /// `seawall_timeout`) naming the layer and the fields that changed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_timeout::{AdaptiveTimeoutConfig, KeyedAdaptiveTimeoutConfig, KeyedAdaptiveTimeoutLayer};
    ///
    /// let per_key = AdaptiveTimeoutConfig::builder().base(Duration::from_secs(1)).into_config();
    /// let config = KeyedAdaptiveTimeoutConfig::new().per_key(per_key.clone());
    /// let layer = KeyedAdaptiveTimeoutLayer::<_, u32>::new(|k: &u32| *k, &config).unwrap();
    /// let mut shorter = per_key.clone();
    /// shorter.base = Duration::from_millis(300);
    /// layer.reload(&config.clone().per_key(shorter)).unwrap();
    /// assert_eq!(layer.config().per_key.base, Duration::from_millis(300));
    /// ```
    pub fn reload(&self, config: &KeyedAdaptiveTimeoutConfig) -> Result<(), ReloadError> {
        self.shared.reload(config)
    }

    /// A snapshot of the overflow deadline: the one shared by every key the
    /// map had no room for (its shards full of keys whose deadline is
    /// learned), and how many calls it served ([`overflowed`](Self::overflowed)).
    pub fn overflow_stats(&self) -> AdaptiveTimeoutStats {
        self.shared.overflow.stats()
    }

    /// Calls served by the overflow deadline since the layer was built.
    pub fn overflowed(&self) -> u64 {
        self.shared.overflowed.load(Relaxed)
    }

    /// A snapshot of every key held.
    pub fn stats(&self) -> Vec<(K, AdaptiveTimeoutStats)> {
        let mut out = Vec::with_capacity(self.shared.map.len());
        self.shared
            .map
            .for_each(|k, tracker| out.push((k.clone(), tracker.stats())));
        out
    }

    /// A snapshot of one key, if it is held (marks the key used).
    pub fn key_stats<Q>(&self, key: &Q) -> Option<AdaptiveTimeoutStats>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared.map.get(key).map(|t| t.stats())
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.shared.map.len()
    }

    /// `true` when no key is held.
    pub fn is_empty(&self) -> bool {
        self.shared.map.is_empty()
    }

    /// Evicts the keys idle for at least `keys.idle_ttl` now, rather than on
    /// the next insert; returns how many.
    pub fn evict_idle(&self) -> usize {
        self.shared.map.evict_idle()
    }
}

impl<S, F, K> Layer<S> for KeyedAdaptiveTimeoutLayer<F, K> {
    type Service = KeyedAdaptiveTimeout<S, F, K>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedAdaptiveTimeout::new(inner, self.key_fn.clone(), self.shared.clone())
    }
}

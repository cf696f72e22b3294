//! [`KeyedBreakerLayer`]: one breaker per key (peer, host, route), in
//! seawall-core's bounded [`KeyMap`].
//!
//! See [`KeyedBreakerLayer`] for what it guarantees.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seawall_core::config::Check;
use seawall_core::key::KeyMapFull;
use seawall_core::time::nanos;
use seawall_core::{
    Clock, ConfigError, ErrorsAsFailures, KeyFn, KeyMap, KeyMapConfig, ReloadError,
};
use tower_layer::Layer;

use crate::config::BreakerConfig;
use crate::service::KeyedBreaker;
use crate::state::{BreakerStats, CircuitBreaker, Inner, Settings, State};

const WARN_EVERY: Duration = Duration::from_secs(10);

/// The config of a [`KeyedBreakerLayer`]: the config of each key's breaker,
/// the bounds of the map of keys, and whether each key reports a metric.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `per_key` | [`BreakerConfig::default`] | the config of each key's breaker |
/// | `keys.capacity` | 10 000 | most keys held at once, `1..=`[`MAX_CAPACITY`](seawall_core::config::MAX_CAPACITY) (2^24) |
/// | `keys.idle_ttl` | 5 minutes | a fresh key unused this long is evicted; at most [`MAX_DURATION`](seawall_core::config::MAX_DURATION) (365 days) |
/// | `key_metrics` | `false` | with feature `metrics`, a `seawall_breaker_state{name, key}` gauge per key (see below) |
///
/// Built from a [`BreakerConfig`] (`.into()`) or [`KeyedBreakerConfig::new`],
/// with setters:
///
/// ```
/// use std::time::Duration;
/// use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, TripPolicy};
/// use seawall_core::KeyMapConfig;
///
/// let config = KeyedBreakerConfig::from(BreakerConfig::new().policy(TripPolicy::consecutive_failures(3)))
///     .keys(KeyMapConfig::new().capacity(1_000).idle_ttl(Duration::from_secs(60)));
/// assert!(config.validate().is_ok());
/// assert!(!config.key_metrics);
/// ```
///
/// With feature `serde`, in TOML:
///
/// ```toml
/// [breaker]
/// key_metrics = false
/// [breaker.per_key]
/// open_duration = "10s"
/// policy = { kind = "consecutive_failures", threshold = 3 }
/// [breaker.keys]
/// capacity = 1000
/// idle_ttl = "1m"
/// ```
///
/// **Per-key metric series.** By default a keyed layer reports no series
/// per key: its transitions and rejections are counted per layer
/// (`seawall_breaker_transitions_total{name, state}`,
/// `seawall_breaker_rejected_total{name}`), the keys held in
/// `seawall_breaker_keys{name}`, and its overflow breaker's state in
/// `seawall_breaker_state{name, key = "(overflow)"}`: a bounded number of
/// series whatever keys callers send. With `key_metrics = true` each key's
/// breaker also sets `seawall_breaker_state{name, key}` on its transitions.
/// That gauge is set only while its key is in the map: a key may be evicted
/// only once it is fresh, i.e. after its last transition set the gauge to
/// Closed (0), and it is never set again after. The `metrics` facade cannot
/// unregister a series, so the exporter must drop idle ones (e.g.
/// `metrics-exporter-prometheus`'s `idle_timeout`): then the series alive
/// are at most `capacity` plus the keys that left within that timeout.
/// Turn it on only for keys you choose (peers from discovery), never for
/// keys taken from requests without such a timeout.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct KeyedBreakerConfig {
    /// The config of each key's breaker.
    pub per_key: BreakerConfig,
    /// The bounds of the map of keys: the most keys held at once, and how
    /// long a key must be unused before it may be evicted.
    pub keys: KeyMapConfig,
    /// With feature `metrics`, a `key`-labelled state gauge per key.
    pub key_metrics: bool,
}

impl From<BreakerConfig> for KeyedBreakerConfig {
    fn from(per_key: BreakerConfig) -> Self {
        KeyedBreakerConfig {
            per_key,
            ..KeyedBreakerConfig::default()
        }
    }
}

impl KeyedBreakerConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`per_key`](Self::per_key) (default [`BreakerConfig::default`]).
    pub fn per_key(mut self, per_key: BreakerConfig) -> Self {
        self.per_key = per_key;
        self
    }

    /// Sets [`keys`](Self::keys) (default 10 000 keys, idle after 5 minutes).
    pub fn keys(mut self, keys: KeyMapConfig) -> Self {
        self.keys = keys;
        self
    }

    /// Sets [`key_metrics`](Self::key_metrics) (default `false`).
    pub fn key_metrics(mut self, yes: bool) -> Self {
        self.key_metrics = yes;
        self
    }

    /// Checks every field; reports all bad ones (`per_key.*`,
    /// `keys.capacity`, `keys.idle_ttl`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check.nested("per_key", self.per_key.validate());
        check.nested("keys", self.keys.validate());
        check.finish()
    }
}

/// A snapshot of all keys of a keyed breaker, from [`KeyedBreakerLayer::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedStats {
    /// Keys held.
    pub keys: usize,
    /// Keys Closed.
    pub closed: usize,
    /// Keys Open.
    pub open: usize,
    /// Keys HalfOpen.
    pub half_open: usize,
    /// Keys ForcedOpen.
    pub forced_open: usize,
    /// Keys ForcedClosed.
    pub forced_closed: usize,
    /// Calls for keys the map could not hold (it was full of keys it may not
    /// evict), served by the layer's one overflow breaker.
    pub overflow_calls: u64,
    /// The overflow breaker's state (Closed until such calls fail).
    pub overflow_open: bool,
    /// Calls rejected, summed over the keys held and the overflow breaker.
    pub rejected: u64,
    /// Trips, summed over the keys held and the overflow breaker.
    pub trips: u64,
    /// Failures, summed over the keys held and the overflow breaker.
    pub failures: u64,
}

/// The key label of the overflow breaker's rejections, events and state
/// gauge (parentheses keep it apart from host names and addresses).
pub const OVERFLOW_KEY: &str = "(overflow)";

// The eviction guard; see `Inner::can_forget`. `now` is a reading of the
// map's clock, which is the layer's.
fn can_evict(inner: &Inner, now: u64) -> bool {
    inner.can_forget(now)
}

pub(crate) struct Keyed<KF, K> {
    pub(crate) key_fn: KF,
    // What `clock` rebuilds the layer from (its `per_key` as built: the
    // one running is the settings').
    config: KeyedBreakerConfig,
    pub(crate) settings: Arc<Settings>,
    map: KeyMap<K, Inner>,
    // Serves every key the map cannot hold: as strict as one key.
    overflow: crate::sync::Arc<Inner>,
    overflow_calls: AtomicU64,
    last_warn: AtomicU64,
}

impl<KF, K: Hash + Eq + Clone + fmt::Display> Keyed<KF, K> {
    /// The breaker of `key`, created if absent, or the overflow breaker when
    /// the map is full of keys it may not evict; with the key back while the
    /// breaker is fresh (it names the breaker if the call ends that).
    #[inline]
    pub(crate) fn entry(&self, key: K) -> (crate::sync::Arc<Inner>, Option<K>) {
        if let Some(inner) = self.map.get(&key) {
            let key = inner.wants_label().then_some(key);
            return (inner, key);
        }
        self.insert(key)
    }

    #[cold]
    #[inline(never)]
    fn insert(&self, key: K) -> (crate::sync::Arc<Inner>, Option<K>) {
        match self.get_or_insert(key.clone()) {
            Ok(inner) => {
                let key = inner.wants_label().then_some(key);
                (inner, key)
            }
            Err(full) => {
                self.overflow_calls.fetch_add(1, Ordering::Relaxed);
                self.warn_full(full.capacity);
                (self.overflow.clone(), None)
            }
        }
    }

    #[inline]
    fn get_or_insert(&self, key: K) -> Result<crate::sync::Arc<Inner>, KeyMapFull> {
        let mut inserted = false;
        let result = self.map.get_or_insert_with(key, |_| {
            inserted = true;
            Inner::fresh(self.settings.clone())
        });
        match result {
            Ok(inner) => {
                #[cfg(feature = "metrics")]
                if inserted {
                    metrics::gauge!(
                        seawall_core::names::BREAKER_KEYS,
                        seawall_core::names::LABEL_NAME => self.settings.name.to_string()
                    )
                    .set(self.map.len() as f64);
                }
                let _ = inserted;
                Ok(inner)
            }
            Err(full) => Err(full),
        }
    }

    #[cold]
    fn warn_full(&self, capacity: usize) {
        let now = self.settings.now();
        let last = self.last_warn.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= nanos(WARN_EVERY);
        if due
            && self
                .last_warn
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                target: seawall_core::names::TARGET_BREAKER,
                name = &*self.settings.name,
                capacity,
                overflow_calls = self.overflow_calls.load(Ordering::Relaxed),
                "keyed breaker full of keys it may not evict: new keys share the overflow breaker"
            );
        }
    }
}

/// Wraps services in a [`KeyedBreaker`]: one [`CircuitBreaker`] per key,
/// taken from each request by a [`KeyFn`]. The layer owns the map; every
/// service it makes, and all their clones, share it (build separate layers
/// for separate maps).
///
/// What it guarantees:
///
/// - **Isolation**: each key has its own [`CircuitBreaker`]; a failing peer
///   never trips its neighbours.
/// - **Bounded memory**: at most `capacity` keys; keys idle for `idle_ttl`
///   are evicted lazily on insert (no background task), Closed keys first.
/// - **Eviction never hands back a penalty**: a key may be evicted only
///   while its breaker behaves exactly as a fresh one: Closed, no failure in
///   its streak, no failure or slow call in its window, no probe or call in
///   flight, and no open-backoff history (a key that tripped is kept until it
///   has stayed closed for `open_backoff.reset_after`, since forgetting the
///   trip would shorten its next open period). So a failing peer cannot
///   escape its breaker by being pushed out of the map, however many new
///   keys callers send. The price: a key that stops being called while it
///   is open, or with failures counted, keeps its slot until it is called
///   again and recovers, or an operator [`reset`](Self::reset)s or
///   [`remove`](Self::remove)s it. Fresh keys unused for `idle_ttl` go.
/// - **Full map: one overflow breaker, never a free pass**: when a new key's
///   shard holds only keys that may not be evicted, the call is guarded by
///   the layer's one *overflow breaker*, a real breaker with the same config
///   that every such newcomer shares: it counts their failures, trips and
///   refuses them like a single key would, with [`CircuitOpen`](seawall_core::CircuitOpen)
///   errors whose key is [`OVERFLOW_KEY`]. Such calls are counted in
///   [`KeyedStats::overflow_calls`], and a `WARN` event is emitted at most
///   once every 10 seconds; if it grows, raise `capacity`. Newcomers share
///   one fate while the map is full: a healthy newcomer may be refused
///   because others failed, which is the price of bounded memory (keys
///   already held are unaffected).
/// - **No global lock per call**: an existing key costs one read lock of its
///   shard (up to 32 shards) and the breaker's lock-free path.
///
/// **Memory per key** (heap bytes held / keys, `u64` keys, the default
/// breaker config, 100 000 keys; asserted at most 100 bytes by
/// `tests/allocations.rs`): about 99 bytes, of which the map's table is
/// about 43 (a 32-byte entry and its share of empty buckets) and the key's
/// breaker 56 (a 40-byte state word, failure streak and settings pointer,
/// in one `Arc`). That is one allocation per key. A key's label, counters,
/// probe and open state and rate window are allocated only when it first
/// fails (its first call, with a rate policy), is forced or handed out
/// ([`breaker`](Self::breaker)): about 180 bytes more, plus the window
/// (one byte per call of a count window, 16 per bucket of a time window).
///
/// ```
/// use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, State, TripPolicy};
/// use tower::{service_fn, Service, ServiceExt, Layer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// struct Req { peer: u32, fail: bool }
/// let layer = KeyedBreakerLayer::new(
///     |r: &Req| r.peer,
///     &BreakerConfig::new().policy(TripPolicy::consecutive_failures(1)).into(),
/// ).unwrap();
/// let mut svc = layer.layer(service_fn(|r: Req| async move {
///     if r.fail { Err("down") } else { Ok(r.peer) }
/// }));
///
/// // Peer 1 fails once and trips; peer 2 is untouched.
/// let _ = svc.ready().await.unwrap().call(Req { peer: 1, fail: true }).await;
/// assert_eq!(layer.breaker(&1).unwrap().state(), State::Open);
/// assert!(svc.ready().await.unwrap().call(Req { peer: 1, fail: false }).await.is_err());
/// assert_eq!(svc.ready().await.unwrap().call(Req { peer: 2, fail: false }).await.unwrap(), 2);
/// assert_eq!(layer.healthiest(1), vec![(2, 1.0)]);
/// # }
/// ```
pub struct KeyedBreakerLayer<KF, K, C = ErrorsAsFailures> {
    shared: Arc<Keyed<KF, K>>,
    classify: C,
    _key: PhantomData<fn() -> K>,
}

impl<KF, K, C: Clone> Clone for KeyedBreakerLayer<KF, K, C> {
    fn clone(&self) -> Self {
        KeyedBreakerLayer {
            shared: self.shared.clone(),
            classify: self.classify.clone(),
            _key: PhantomData,
        }
    }
}

impl<KF, K, C> fmt::Debug for KeyedBreakerLayer<KF, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreakerLayer")
            .field("name", &self.shared.settings.name)
            .field("map", &self.shared.map)
            .finish_non_exhaustive()
    }
}

impl<KF, K> KeyedBreakerLayer<KF, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// A keyed layer taking keys with `key_fn`, reading tokio's clock (see
    /// [`clock`](Self::clock) for another); every bad field of `config` is
    /// reported.
    pub fn new<Req>(key_fn: KF, config: &KeyedBreakerConfig) -> Result<Self, ConfigError>
    where
        KF: KeyFn<Req, Key = K>,
    {
        config.validate()?;
        Self::assemble(key_fn, config, Clock::default())
    }

    /// Reads the time from `clock` instead: every key's breaker and the map's
    /// idle eviction read it. The breakers set no timer, so any clock works
    /// (see [`BreakerBuilder::clock`](crate::BreakerBuilder::clock)). It
    /// makes the layer's state afresh (no key, nothing counted), so set it
    /// right after [`new`](Self::new), before making services.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, State, TripPolicy};
    /// use seawall_core::Clock;
    ///
    /// let (clock, hand) = Clock::manual();
    /// let config = BreakerConfig::new()
    ///     .policy(TripPolicy::consecutive_failures(1))
    ///     .open_duration(Duration::from_secs(5));
    /// let layer = KeyedBreakerLayer::new(|k: &u32| *k, &config.into()).unwrap().clock(clock);
    /// let peer = layer.breaker_or_insert(7).unwrap();
    /// peer.try_acquire().unwrap().failure();
    /// assert_eq!(peer.state(), State::Open);
    /// hand.advance(Duration::from_secs(5));
    /// assert_eq!(peer.state(), State::HalfOpen);
    /// ```
    pub fn clock(self, clock: Clock) -> Self
    where
        KF: Clone,
    {
        let mut config = self.shared.config.clone();
        config.per_key = BreakerConfig::clone(&self.shared.settings.current());
        // `new` validated this config (or `reload` did its `per_key`), and it is all `assemble` checks.
        Self::assemble(self.shared.key_fn.clone(), &config, clock)
            .expect("the config was validated by `new`")
    }

    fn assemble(
        key_fn: KF,
        config: &KeyedBreakerConfig,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        let settings = Settings::keyed(&config.per_key, config.key_metrics, clock.clone())?;
        let overflow =
            crate::sync::Arc::new(Inner::new(settings.clone(), Some(Arc::from(OVERFLOW_KEY))));
        let map = KeyMap::new(config.keys)
            .clock(clock)
            .evictable_when(can_evict);
        Ok(KeyedBreakerLayer {
            shared: Arc::new(Keyed {
                key_fn,
                config: config.clone(),
                settings,
                map,
                overflow,
                overflow_calls: AtomicU64::new(0),
                last_warn: AtomicU64::new(0),
            }),
            classify: ErrorsAsFailures,
            _key: PhantomData,
        })
    }
}

impl<KF, K, C> KeyedBreakerLayer<KF, K, C>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// Sets what counts as a failure (default [`ErrorsAsFailures`]); the map is kept.
    pub fn classify<C2>(self, classify: C2) -> KeyedBreakerLayer<KF, K, C2> {
        KeyedBreakerLayer {
            shared: self.shared,
            classify,
            _key: PhantomData,
        }
    }

    /// The config of each key's breaker: the one the layer was built with,
    /// or the last `per_key` [`reload`](Self::reload) applied.
    pub fn config(&self) -> BreakerConfig {
        BreakerConfig::clone(&self.shared.settings.current())
    }

    /// Applies a new config to every key's breaker at once, keeping their
    /// state: `per_key` reaches every key held, the overflow breaker, the
    /// breakers [`PeerSelect`](crate::PeerSelect) and [`guard`](Self::guard)
    /// made beside the map, and every key made later (they share one set
    /// of settings). All or nothing: `config` is validated as
    /// [`new`](Self::new) validates it, and on any error nothing changes.
    /// What `per_key` changes in place, what is kept and what cannot change
    /// are listed on [`CircuitBreaker::reload`]; errors name the field
    /// under `per_key.`.
    ///
    /// `keys` (capacity, idle TTL) and `key_metrics` cannot change in place
    /// ([`ReloadError::NotInPlace`]): seawall-core's `KeyMap` takes its
    /// capacity and idle TTL when it is made and offers no safe way to
    /// change them on a live map, and whether a key reports a gauge was
    /// decided when the key was made.
    ///
    /// ```
    /// use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, KeyedBreakerLayer, State, TripPolicy};
    /// use seawall_core::KeyMapConfig;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = KeyedBreakerConfig::from(BreakerConfig::new().policy(TripPolicy::consecutive_failures(3)));
    /// let layer = KeyedBreakerLayer::new(|k: &u32| *k, &config).unwrap();
    /// let peer = layer.breaker_or_insert(1).unwrap();
    /// peer.try_acquire().unwrap().failure();
    ///
    /// // One more failure now trips key 1 (its streak is kept), and any key made later.
    /// layer.reload(&config.clone().per_key(BreakerConfig::new().policy(TripPolicy::consecutive_failures(2)))).unwrap();
    /// peer.try_acquire().unwrap().failure();
    /// assert_eq!(peer.state(), State::Open);
    ///
    /// let resized = config.clone().keys(KeyMapConfig::new().capacity(10));
    /// assert_eq!(layer.reload(&resized).unwrap_err().not_in_place_field(), Some("keys.capacity"));
    /// # }
    /// ```
    pub fn reload(&self, config: &KeyedBreakerConfig) -> Result<(), ReloadError> {
        config.validate()?;
        let built = &self.shared.config;
        if config.keys.capacity != built.keys.capacity {
            return Err(ReloadError::not_in_place(
                "keys.capacity",
                "the key map cannot be resized while it holds keys; build a new layer",
            ));
        }
        if config.keys.idle_ttl != built.keys.idle_ttl {
            return Err(ReloadError::not_in_place(
                "keys.idle_ttl",
                "the key map's idle horizon is set when it is made; build a new layer",
            ));
        }
        if config.key_metrics != built.key_metrics {
            return Err(ReloadError::not_in_place(
                "key_metrics",
                "whether a key reports a gauge is decided when the key is made",
            ));
        }
        self.shared
            .settings
            .reload(&config.per_key, "per_key.")
            .map(drop)
    }

    /// The breaker of `key`, if the map holds it. (Its label and counters
    /// are allocated now if it had none: a handed-out breaker may be
    /// forced or tripped, and must name its key when it is.)
    pub fn breaker(&self, key: &K) -> Option<CircuitBreaker> {
        let inner = self.shared.map.get(key)?;
        inner.label_with(key);
        Some(CircuitBreaker::from_inner(inner))
    }

    /// The breaker of `key`, created if absent; `None` when the map is full
    /// of keys it may not evict (calls for `key` then go to the overflow
    /// breaker, see [`overflow_breaker`](Self::overflow_breaker)).
    pub fn breaker_or_insert(&self, key: K) -> Option<CircuitBreaker> {
        let inner = self.shared.get_or_insert(key.clone()).ok()?;
        inner.label_with(&key);
        Some(CircuitBreaker::from_inner(inner))
    }

    /// The layer's overflow breaker: it guards the calls for keys the map
    /// could not hold (see the type's docs); its key label is [`OVERFLOW_KEY`].
    pub fn overflow_breaker(&self) -> CircuitBreaker {
        CircuitBreaker::from_inner(self.shared.overflow.clone())
    }

    /// The settings every breaker of the layer shares.
    pub(crate) fn settings(&self) -> &Arc<Settings> {
        &self.shared.settings
    }

    /// Removes `key` whatever its state (an operator's way to free the slot
    /// of a peer known to be gone); returns its breaker. A later call for
    /// `key` starts from a fresh breaker.
    pub fn remove(&self, key: &K) -> Option<CircuitBreaker> {
        self.shared.map.remove(key).map(CircuitBreaker::from_inner)
    }

    /// Forces `key` open (creating its entry); `false` if the map is full.
    pub fn force_open(&self, key: K) -> bool {
        self.breaker_or_insert(key)
            .map(|b| b.force_open())
            .is_some()
    }

    /// Forces `key` closed (creating its entry); `false` if the map is full.
    pub fn force_closed(&self, key: K) -> bool {
        self.breaker_or_insert(key)
            .map(|b| b.force_closed())
            .is_some()
    }

    /// Resets `key` to a fresh Closed, if the map holds it.
    pub fn reset(&self, key: &K) {
        if let Some(b) = self.breaker(key) {
            b.reset();
        }
    }

    /// The stats of `key`, if the map holds it.
    pub fn key_stats(&self, key: &K) -> Option<BreakerStats> {
        self.shared.map.get(key).map(|i| i.stats())
    }

    /// The stats of every key held.
    pub fn all_key_stats(&self) -> Vec<(K, BreakerStats)> {
        let mut out = Vec::new();
        self.shared
            .map
            .for_each(|k, inner| out.push((k.clone(), inner.stats())));
        out
    }

    /// Totals over all keys.
    pub fn stats(&self) -> KeyedStats {
        let overflow = self.shared.overflow.stats();
        let mut s = KeyedStats {
            overflow_calls: self.shared.overflow_calls.load(Ordering::Relaxed),
            overflow_open: overflow.state.is_rejecting(),
            rejected: overflow.rejected,
            trips: overflow.trips,
            failures: overflow.failures,
            ..KeyedStats::default()
        };
        self.shared.map.for_each(|_, inner| {
            let st = inner.stats();
            s.keys += 1;
            match st.state {
                State::Closed => s.closed += 1,
                State::Open => s.open += 1,
                State::HalfOpen => s.half_open += 1,
                State::ForcedOpen => s.forced_open += 1,
                State::ForcedClosed => s.forced_closed += 1,
            }
            s.rejected += st.rejected;
            s.trips += st.trips;
            s.failures += st.failures;
        });
        s
    }

    /// The health score of `key` in `0..=1` (see [`CircuitBreaker::health`]);
    /// 1 for a key the map does not hold (nothing bad is known of it).
    pub fn health(&self, key: &K) -> f64 {
        self.shared.map.get(key).map_or(1.0, |i| i.health())
    }

    /// The `n` healthiest keys held, best first (ties in no set order).
    pub fn healthiest(&self, n: usize) -> Vec<(K, f64)> {
        let mut all = Vec::new();
        self.shared
            .map
            .for_each(|k, inner| all.push((k.clone(), inner.health())));
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(n);
        all
    }

    /// How many keys the map holds.
    pub fn len(&self) -> usize {
        self.shared.map.len()
    }

    /// `true` when the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.shared.map.is_empty()
    }

    /// Evicts idle fresh keys now (normally done lazily on insert); returns how many.
    pub fn evict_idle(&self) -> usize {
        self.shared.map.evict_idle()
    }
}

impl<S, KF, K, C: Clone> Layer<S> for KeyedBreakerLayer<KF, K, C> {
    type Service = KeyedBreaker<S, KF, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedBreaker::new(inner, self.shared.clone(), self.classify.clone())
    }
}

impl<KF, K, C> KeyedBreakerLayer<KF, K, C> {
    /// The classifier of this layer, for the services peer selection builds
    /// over the same map (`select.rs`).
    pub(crate) fn classifier(&self) -> &C {
        &self.classify
    }
}

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
use seawall_core::{ConfigError, ErrorsAsFailures, KeyFn, KeyMap, KeyMapConfig};
use tower_layer::Layer;

use crate::config::BreakerConfig;
use crate::service::KeyedBreaker;
use crate::state::{BreakerStats, CircuitBreaker, Inner, Settings, State};

const WARN_EVERY: Duration = Duration::from_secs(10);

/// The config of a [`KeyedBreakerLayer`].
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `breaker` | [`BreakerConfig::default`] | the config of each key's breaker |
/// | `capacity` | 10 000 | most keys held at once, `1..=`[`MAX_CAPACITY`](seawall_core::config::MAX_CAPACITY) (2^24) |
/// | `idle_ttl` | 5 minutes | a Closed key unused this long may be evicted; at most [`MAX_DURATION`](seawall_core::config::MAX_DURATION) (365 days) |
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct KeyedBreakerConfig {
    /// The config of each key's breaker.
    pub breaker: BreakerConfig,
    /// The most keys held at once.
    pub capacity: usize,
    /// How long a key must be unused before it may be evicted.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub idle_ttl: Duration,
}

impl Default for KeyedBreakerConfig {
    fn default() -> Self {
        KeyedBreakerConfig {
            breaker: BreakerConfig::default(),
            capacity: 10_000,
            idle_ttl: Duration::from_secs(300),
        }
    }
}

impl From<BreakerConfig> for KeyedBreakerConfig {
    fn from(breaker: BreakerConfig) -> Self {
        KeyedBreakerConfig {
            breaker,
            ..KeyedBreakerConfig::default()
        }
    }
}

impl KeyedBreakerConfig {
    /// Checks every field; reports all bad ones (`breaker.*`, `capacity`, `idle_ttl`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check.nested("breaker", self.breaker.validate());
        check
            .capacity("capacity", self.capacity)
            .nonzero_duration("idle_ttl", self.idle_ttl);
        check.finish()
    }
}

/// A snapshot of all keys of a keyed breaker, from [`KeyedBreakerLayer::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Calls that passed unguarded because the map was full of protected keys.
    pub untracked: u64,
    /// Calls rejected, summed over the keys held.
    pub rejected: u64,
    /// Trips, summed over the keys held.
    pub trips: u64,
    /// Failures, summed over the keys held.
    pub failures: u64,
}

// The eviction guard; see `Inner::can_forget`.
fn can_evict(inner: &Inner) -> bool {
    inner.can_forget()
}

pub(crate) struct Keyed<KF, K> {
    pub(crate) key_fn: KF,
    pub(crate) settings: Arc<Settings>,
    map: KeyMap<K, Inner>,
    untracked: AtomicU64,
    last_warn: AtomicU64,
}

impl<KF, K: Hash + Eq + fmt::Display> Keyed<KF, K> {
    /// The breaker of `key`, created if absent; `None` when the map is full
    /// of protected keys.
    #[inline]
    pub(crate) fn entry(&self, key: K) -> Option<Arc<Inner>> {
        match self.get_or_insert(key) {
            Ok(inner) => Some(inner),
            Err(full) => {
                self.untracked.fetch_add(1, Ordering::Relaxed);
                self.warn_full(full.capacity);
                None
            }
        }
    }

    #[inline]
    fn get_or_insert(&self, key: K) -> Result<Arc<Inner>, KeyMapFull> {
        let mut inserted = false;
        let result = self.map.get_or_insert_with(key, |k| {
            inserted = true;
            Inner::new(self.settings.clone(), Some(Arc::from(k.to_string())))
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
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_nanos() as u64;
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
                untracked = self.untracked.load(Ordering::Relaxed),
                "keyed breaker full of open keys: calls for new keys pass unguarded"
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
/// - **Open keys are never forgotten while open**: a key whose breaker is
///   Open, HalfOpen or ForcedOpen is protected from eviction, so a failing
///   peer cannot escape its breaker by being pushed out of the map. The
///   protection ends when nobody has called the key for `idle_ttl` after its
///   open deadline passed (Open) or since it turned HalfOpen (with no probe
///   in flight): such a key would only have admitted a probe anyway, and a
///   peer that is gone must not hold its slot forever. ForcedOpen keys stay
///   until an operator resets them.
/// - **Full of protected keys**: when a new key's shard holds only protected
///   or in-use keys, the call for the new key passes through *unguarded*; it
///   is counted in [`KeyedStats::untracked`] and a `WARN` event is emitted at
///   most once every 10 seconds. Failing open (not rejecting) is deliberate:
///   a breaker exists to stop calls to peers known to be failing, and
///   nothing is known about this one.
/// - **No global lock per call**: an existing key costs one read lock of its
///   shard (up to 32 shards) and the breaker's lock-free path.
///
/// Memory per key, with the default consecutive-failures policy and a `u64`
/// key, is measured at 100,000 keys by `tests/allocations.rs` (heap bytes
/// held / keys) and asserted to be at most 256 bytes: the breaker state, the
/// map entry and the key's `Arc<str>` label.
///
/// ```
/// use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, State, TripPolicy};
/// use tower::{service_fn, Service, ServiceExt, Layer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// struct Req { peer: u32, fail: bool }
/// let layer = KeyedBreakerLayer::new(
///     |r: &Req| r.peer,
///     BreakerConfig { policy: TripPolicy::consecutive_failures(1), ..Default::default() }.into(),
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
    /// A keyed layer taking keys with `key_fn`; every bad field of `config`
    /// is reported. Reads tokio's clock: call it within a runtime.
    pub fn new<Req>(key_fn: KF, config: KeyedBreakerConfig) -> Result<Self, ConfigError>
    where
        KF: KeyFn<Req, Key = K>,
    {
        Self::from_config(key_fn, &config)
    }

    /// Like [`new`](Self::new), from a borrowed config.
    pub fn from_config<Req>(key_fn: KF, config: &KeyedBreakerConfig) -> Result<Self, ConfigError>
    where
        KF: KeyFn<Req, Key = K>,
    {
        config.validate()?;
        let settings = Settings::keyed(&config.breaker, config.idle_ttl)?;
        let map = KeyMap::new(
            KeyMapConfig::new()
                .capacity(config.capacity)
                .idle_ttl(config.idle_ttl),
        )
        .evictable_when(|inner: &Inner, _| can_evict(inner));
        Ok(KeyedBreakerLayer {
            shared: Arc::new(Keyed {
                key_fn,
                settings,
                map,
                untracked: AtomicU64::new(0),
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

    /// The config of each key's breaker.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.settings.config
    }

    /// The breaker of `key`, if the map holds it.
    pub fn breaker(&self, key: &K) -> Option<CircuitBreaker> {
        self.shared.map.get(key).map(CircuitBreaker::from_inner)
    }

    /// The breaker of `key`, created if absent; `None` when the map is full
    /// of protected keys.
    pub fn breaker_or_insert(&self, key: K) -> Option<CircuitBreaker> {
        self.shared
            .get_or_insert(key)
            .ok()
            .map(CircuitBreaker::from_inner)
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
        let mut s = KeyedStats {
            untracked: self.shared.untracked.load(Ordering::Relaxed),
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

    /// Evicts idle Closed keys now (normally done lazily on insert); returns how many.
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

//! [`KeyedHedgeLayer`]: one hedge delay per key (peer, host, route).

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::classify::{Classify, ErrorsAsFailures};
use seawall_core::clone::{ByClone, CloneRequest};
use seawall_core::{BoxError, Clock, ConfigError, KeyFn, KeyMap, KeyMapConfig};
use seawall_timeout::{AdaptiveTimeoutConfig, DeadlineTracker};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::HedgeConfig;
use crate::future::ResponseFuture;
use crate::layer::HedgeLayer;
use crate::service::start;
use crate::stats::HedgeStats;

/// The keys' delays.
struct Keys<K> {
    map: KeyMap<K, DeadlineTracker>,
    config: AdaptiveTimeoutConfig,
    clock: Clock,
    max_delay: Duration,
    /// Calls whose key the map had no room for (served by the layer's own
    /// delay).
    overflowed: AtomicU64,
}

impl<K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static> Keys<K> {
    fn tracker(&self, key: K) -> Option<Arc<DeadlineTracker>> {
        let made = self.map.get_or_insert_with(key, |k| {
            let label: Arc<str> = k.to_string().into();
            // The config was validated when the layer was built: `for_key`
            // cannot fail; were it to, the key hedges at `max_delay`.
            DeadlineTracker::for_key_without_metrics(&self.config, label, self.clock.clone())
                .unwrap_or_else(|_| DeadlineTracker::fixed(self.max_delay))
        });
        match made {
            Ok(tracker) => Some(tracker),
            Err(_) => {
                self.overflowed.fetch_add(1, Relaxed);
                None
            }
        }
    }
}

/// A [`HedgeLayer`] whose delay follows each key's own latency: a slow
/// peer's tail does not make its neighbours hedge later, nor a fast peer's
/// body make a slow peer hedge everything.
///
/// The budget, counters and clone policy are the layer's, shared by all
/// keys; only the delay is per key. Keys live in a bounded
/// [`KeyMap`] (`keys.capacity` keys, idle ones evicted after
/// `keys.idle_ttl`), each under 4 KiB; a key is evicted only while its
/// delay is the initial one a fresh key would get. A key the map has no
/// room for hedges on the layer's own delay (learned from all such calls).
///
/// ```
/// use std::time::Duration;
/// use seawall_core::KeyMapConfig;
/// use seawall_hedge::{HedgeConfig, KeyedHedgeLayer};
///
/// let layer: KeyedHedgeLayer<_, u8> = KeyedHedgeLayer::new(
///     |peer: &(u8, u64)| peer.0,
///     &HedgeConfig::new().max_delay(Duration::from_millis(200)),
///     KeyMapConfig::new().capacity(100),
/// )
/// .unwrap();
/// assert_eq!(layer.key_delay(&7), None, "no key before its first call");
/// assert!(layer.is_empty());
/// ```
pub struct KeyedHedgeLayer<F, K, P = ByClone, C = ErrorsAsFailures> {
    base: HedgeLayer<P, C>,
    keys: Arc<Keys<K>>,
    key_fn: Arc<F>,
}

impl<F, K, P: Clone, C: Clone> Clone for KeyedHedgeLayer<F, K, P, C> {
    fn clone(&self) -> Self {
        KeyedHedgeLayer {
            base: self.base.clone(),
            keys: self.keys.clone(),
            key_fn: self.key_fn.clone(),
        }
    }
}

impl<F, K, P, C> fmt::Debug for KeyedHedgeLayer<F, K, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedHedgeLayer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl<F, K> KeyedHedgeLayer<F, K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// A keyed layer for `config` (validated, with `keys`), hedging every
    /// `Clone` request, keyed by `key_fn` (any [`KeyFn`], e.g. a closure
    /// `Fn(&Req) -> K`), on tokio's clock.
    pub fn new(key_fn: F, config: &HedgeConfig, keys: KeyMapConfig) -> Result<Self, ConfigError> {
        HedgeLayer::new(config)?.keyed(key_fn, config, keys, Clock::tokio())
    }
}

impl<P, C> HedgeLayer<P, C> {
    pub(crate) fn keyed<F, K>(
        self,
        key_fn: F,
        config: &HedgeConfig,
        keys: KeyMapConfig,
        clock: Clock,
    ) -> Result<KeyedHedgeLayer<F, K, P, C>, ConfigError>
    where
        K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    {
        keys.validate().map_err(|e| e.prefixed("keys"))?;
        let map = KeyMap::new(keys)
            .clock(clock.clone())
            .evictable_when(|tracker: &DeadlineTracker, now: u64| tracker.is_fresh(now));
        Ok(KeyedHedgeLayer {
            base: self,
            keys: Arc::new(Keys {
                map,
                config: config.tracker_config(),
                clock,
                max_delay: config.max_delay,
                overflowed: AtomicU64::new(0),
            }),
            key_fn: Arc::new(key_fn),
        })
    }
}

impl<F, K, P, C> KeyedHedgeLayer<F, K, P, C>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// A snapshot of the layer's counters and budget; `delay` is the
    /// overflow delay (the layer's own, for keys the map had no room for).
    pub fn stats(&self) -> HedgeStats {
        self.base.stats()
    }

    /// The delay of `key`, if the map holds it (marks the key used).
    pub fn key_delay<Q>(&self, key: &Q) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.keys.map.get(key).map(|t| t.deadline())
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.map.len()
    }

    /// `true` when no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.map.is_empty()
    }

    /// Calls whose key the map had no room for.
    pub fn overflowed(&self) -> u64 {
        self.keys.overflowed.load(Relaxed)
    }
}

impl<S, F, K, P: Clone, C: Clone> Layer<S> for KeyedHedgeLayer<F, K, P, C> {
    type Service = KeyedHedge<S, F, K, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedHedge {
            inner: self.base.layer(inner),
            keys: self.keys.clone(),
            key_fn: self.key_fn.clone(),
        }
    }
}

/// Hedges the calls of `S` with one delay per key; from
/// [`KeyedHedgeLayer`]. See [`Hedge`](crate::Hedge) for readiness.
pub struct KeyedHedge<S, F, K, P = ByClone, C = ErrorsAsFailures> {
    inner: crate::Hedge<S, P, C>,
    keys: Arc<Keys<K>>,
    key_fn: Arc<F>,
}

impl<S: Clone, F, K, P: Clone, C: Clone> Clone for KeyedHedge<S, F, K, P, C> {
    fn clone(&self) -> Self {
        KeyedHedge {
            inner: self.inner.clone(),
            keys: self.keys.clone(),
            key_fn: self.key_fn.clone(),
        }
    }
}

impl<S: fmt::Debug, F, K, P, C> fmt::Debug for KeyedHedge<S, F, K, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedHedge")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, K, P, C, Req> Service<Req> for KeyedHedge<S, F, K, P, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    F: KeyFn<Req, Key = K>,
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    P: CloneRequest<Req> + Clone,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, P, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let tracker = self.keys.tracker(self.key_fn.key(&req));
        let (inner, shared, policy, classify) = self.inner.parts();
        start(inner, shared, policy, classify, req, tracker)
    }
}

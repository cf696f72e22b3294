//! [`PeerSelect`]: send each request to its preferred peer while that peer's
//! breaker admits it, otherwise to the healthiest other peers, never to an
//! open one.
//!
//! See [`PeerSelect`] for what it guarantees.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::config::Check;
use seawall_core::key::KeyHasher;
use seawall_core::{BoxError, CircuitOpen, Classify, ConfigError};
use tower_service::Service;

use crate::keyed::KeyedBreakerLayer;
use crate::service::Breaker;
use crate::state::{CircuitBreaker, Inner, Permit, Settings};

/// The config of a [`PeerSelect`].
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | the `name` label of its metrics and field of its events |
/// | `max_tries` | 3 | most peers whose breaker is asked per request, the preferred one included; `1..=`[`MAX_CAPACITY`](seawall_core::config::MAX_CAPACITY) |
///
/// With feature `serde`: `name = "replicas"`, `max_tries = 2`.
///
/// ```
/// use seawall_breaker::PeerSelectConfig;
///
/// let config = PeerSelectConfig::new().name("replicas").max_tries(2);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct PeerSelectConfig {
    /// Name used in metrics and events.
    pub name: String,
    /// The most peers whose breaker is asked for one request, the preferred
    /// peer included.
    pub max_tries: usize,
}

impl Default for PeerSelectConfig {
    fn default() -> Self {
        PeerSelectConfig {
            name: seawall_core::names::DEFAULT_NAME.to_owned(),
            max_tries: 3,
        }
    }
}

impl PeerSelectConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`name`](Self::name) (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets [`max_tries`](Self::max_tries) (default 3).
    pub fn max_tries(mut self, max_tries: usize) -> Self {
        self.max_tries = max_tries;
        self
    }

    /// Checks every field (`max_tries`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        // Not a capacity (nothing is sized by it), but bounded like one so a
        // typo does not mean "ask every peer of a huge set".
        check.capacity("max_tries", self.max_tries);
        check.finish()
    }
}

/// No peer could take a request: every peer asked refused (breaker open,
/// half-open and full) or was not ready, or the set is empty.
///
/// Resolved at once by [`PeerSelect`]'s response future. When at least one
/// breaker refused, the last refusal is this error's `source()`, so
/// [`Rejection::find`](seawall_core::Rejection::find) sees a
/// [`CircuitOpen`] (a fallback on rejections answers, a retry layer honours
/// its `retry_after`).
#[derive(Debug, Clone)]
pub struct NoPeerAvailable {
    tried: usize,
    peers: usize,
    rejection: Option<CircuitOpen>,
}

impl NoPeerAvailable {
    /// How many peers' breakers were asked.
    pub fn tried(&self) -> usize {
        self.tried
    }

    /// How many peers the set held.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// The last breaker refusal, if any breaker refused.
    pub fn rejection(&self) -> Option<&CircuitOpen> {
        self.rejection.as_ref()
    }

    /// When to try again: the last refusal's `retry_after`.
    pub fn retry_after(&self) -> Option<Duration> {
        self.rejection.as_ref().and_then(CircuitOpen::retry_after)
    }
}

impl fmt::Display for NoPeerAvailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no peer available: {} of {} peers tried",
            self.tried, self.peers
        )?;
        if let Some(r) = &self.rejection {
            write!(f, "; last refusal: {r}")?;
        }
        Ok(())
    }
}

impl Error for NoPeerAvailable {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.rejection.as_ref().map(|r| r as &(dyn Error + 'static))
    }
}

/// A snapshot of a [`PeerSelect`]'s counters, from [`PeerSelect::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerSelectStats {
    /// Peers in the set.
    pub peers: usize,
    /// Peers whose service is ready now.
    pub ready: usize,
    /// Requests sent to their preferred peer.
    pub preferred: u64,
    /// Requests sent to another peer (their preferred one refused, was not
    /// ready or not in the set, or they had no preference).
    pub other: u64,
    /// Requests answered with [`NoPeerAvailable`].
    pub no_peer: u64,
}

struct Peer<K, S> {
    key: K,
    service: S,
    // The key's entry in the layer's map (held, so the map never evicts a
    // peer of the set), or a breaker of its own when the map was full.
    breaker: CircuitBreaker,
    ready: bool,
}

const PREFERRED: usize = 0;
const OTHER: usize = 1;
const NO_PEER: usize = 2;

#[cfg(feature = "discover")]
type Changes<K, S> = Box<
    dyn FnMut(&mut Context<'_>) -> Poll<Option<Result<tower::discover::Change<K, S>, BoxError>>>
        + Send,
>;

/// Sends each request to its preferred peer when that peer's breaker admits
/// it, otherwise to the healthiest other peers in order; made by
/// [`PeerSelect::builder`] over a [`KeyedBreakerLayer`]'s map.
///
/// What it guarantees:
///
/// - **The preferred peer first.** A request's preferred peer comes from
///   `prefer(&req) -> Option<K>`. If that peer is in the set, its service is
///   ready and its breaker admits the call (closed, or a half-open probe
///   slot is free), the request goes there.
/// - **Then the healthiest others, a bounded number of them.** Otherwise
///   the other ready peers are asked in order of breaker health
///   ([`CircuitBreaker::health`]: closed and clean first, half-open and open
///   last; ties taken round-robin), until one admits or `max_tries`
///   breakers (the preferred one included) have been asked.
/// - **Never an open peer.** Every peer is asked through its breaker, which
///   refuses while Open or ForcedOpen (an open breaker whose
///   `open_duration` has passed turns half-open and may admit a probe:
///   that is how a peer recovers).
/// - **A typed error at once** when no peer admits: [`NoPeerAvailable`]
///   (with the last [`CircuitOpen`] as its source), resolved by the
///   response future without touching any peer.
/// - **Outcomes feed the breakers.** The call's result is classified with
///   the layer's classifier and recorded on the peer's breaker, as
///   [`KeyedBreaker`](crate::KeyedBreaker) would; dropping the response
///   future counts as a cancellation and gives back a probe slot.
/// - **A hedge goes elsewhere.** Called for a hedge (an attempt set by
///   `seawall_core::attempt`, as seawall-hedge's `HedgeLayer` does around
///   its inner `call`), it skips the peer the request's first attempt went
///   to, preferred or not, while another ready peer's breaker admits the
///   call; only then does the hedge go to that same peer. The attempt is
///   per thread: the hedging layer must call the selection directly (a
///   clonable handle that locks it for `poll_ready` and `call`), not
///   through a `Buffer`, whose worker calls it later, elsewhere.
/// - **Shared through such a handle, readiness can be taken.** Which peers
///   are ready is state of the `PeerSelect`, not of a handle: between one
///   caller's `poll_ready` (Ready: some peer is ready) and its `call`,
///   another request's hedge, sent through another handle, can take that
///   peer's readiness. If no other ready peer admits the call (one peer,
///   or the others pending or open), it fails at once with
///   [`NoPeerAvailable`], nothing sent. This matters when few peers are
///   ready at a time. Accept it (the refusal is fast and typed; drive the
///   handle ready again and retry), keep `max_tries` above 1 with several
///   peers so the call falls back to another ready one, or put a `Buffer`
///   in front (no refusal, but a hedge then no longer avoids its first
///   attempt's peer).
/// - **Readiness.** `poll_ready` polls the discover stream (if any) and
///   every peer not yet ready; it is `Ready` when at least one peer is ready
///   (or the set is empty: calls then fail at once), `Pending` when all are
///   pending. Peers not ready are skipped by selection. A peer whose
///   `poll_ready` fails is removed from the set (as tower's `Balance` does)
///   with a `WARN` event.
/// - **Peers**: a fixed list ([`PeerSelectBuilder::peers`], or
///   [`insert`](Self::insert)/[`remove`](Self::remove)), or, with feature
///   `discover`, a `tower::discover::Discover` stream
///   ([`PeerSelectBuilder::discover`]). Each peer holds its key's breaker in
///   the layer's map, so the map never evicts it while it is in the set;
///   if the map is full of protected keys, the peer gets a breaker of its
///   own sharing the layer's settings (config and clock, so a
///   [`KeyedBreakerLayer::reload`] reaches it too; not counted in the
///   layer's stats).
/// - **Time** is the layer's clock ([`KeyedBreakerLayer::clock`]):
///   every breaker it asks, its own included, reads it.
/// - **Cost.** When the preferred peer admits: a hash lookup of its key,
///   the breaker's admission and the call; no heap allocation (asserted in
///   `tests/allocations.rs`). Choosing among the others reads each ready
///   peer's health and sorts them in a buffer kept by the service (no
///   allocation once it has grown to the set's size).
///
/// Like tower's `Balance` it owns its peers and is not `Clone`: put it
/// behind tower's `Buffer` to share it between tasks.
///
/// This is not load balancing: requests without a preference go to the
/// healthiest peers, ties taken in turn. To spread load, use tower's
/// `Balance` over peers guarded with [`KeyedBreakerLayer::guard`] (feature
/// `balance`: their health is their `Load`).
///
/// ```
/// use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, PeerSelect, TripPolicy};
/// use tower::{service_fn, Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// struct Req { peer: u32 }
/// let layer = KeyedBreakerLayer::new(
///     |r: &Req| r.peer,
///     &BreakerConfig::new().policy(TripPolicy::consecutive_failures(1)).into(),
/// ).unwrap();
/// let peer = |id: u32| service_fn(move |_: Req| async move { Ok::<_, &str>(id) });
/// let mut select = PeerSelect::builder(&layer, |r: &Req| Some(r.peer))
///     .peers([(1, peer(1)), (2, peer(2))])
///     .build()
///     .unwrap();
///
/// assert_eq!(select.ready().await.unwrap().call(Req { peer: 1 }).await.unwrap(), 1);
/// layer.force_open(1); // peer 1's breaker refuses: its traffic goes to peer 2
/// assert_eq!(select.ready().await.unwrap().call(Req { peer: 1 }).await.unwrap(), 2);
/// layer.force_open(2); // nobody left: a typed error at once
/// let err = select.ready().await.unwrap().call(Req { peer: 1 }).await.unwrap_err();
/// assert!(err.to_string().starts_with("no peer available: 2 of 2 peers tried"));
/// # }
/// ```
pub struct PeerSelect<S, P, KF, K, C> {
    layer: KeyedBreakerLayer<KF, K, C>,
    prefer: P,
    classify: C,
    max_tries: usize,
    peers: Vec<Peer<K, S>>,
    // The set is small and fixed by its owner: a plain map, with the keyed
    // layers' fast hasher (the lookup is on the per-call path).
    index: HashMap<K, usize, KeyHasher>,
    // Peers called since they were last ready: polled by `poll_ready`.
    unready: Vec<usize>,
    ready: usize,
    // Candidates for the fallback path: (health, index), kept to reuse its
    // capacity.
    scratch: Vec<(f64, usize)>,
    turn: usize,
    counts: [u64; 3],
    name: Arc<str>,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
    #[cfg(feature = "discover")]
    discover: Option<Changes<K, S>>,
}

/// The handles of a selection's series, taken when it is built (so the
/// recorder must be installed first).
#[cfg(feature = "metrics")]
struct Metrics {
    counts: [metrics::Counter; 3],
    peers: metrics::Gauge,
}

#[cfg(feature = "metrics")]
impl Metrics {
    fn new(name: &str) -> Metrics {
        use seawall_core::names::{
            BREAKER_SELECT_NO_PEER_TOTAL, BREAKER_SELECT_OTHER_TOTAL, BREAKER_SELECT_PEERS,
            BREAKER_SELECT_PREFERRED_TOTAL, LABEL_NAME,
        };
        let counter = |id: &'static str| metrics::counter!(id, LABEL_NAME => name.to_owned());
        Metrics {
            counts: [
                counter(BREAKER_SELECT_PREFERRED_TOTAL),
                counter(BREAKER_SELECT_OTHER_TOTAL),
                counter(BREAKER_SELECT_NO_PEER_TOTAL),
            ],
            peers: metrics::gauge!(BREAKER_SELECT_PEERS, LABEL_NAME => name.to_owned()),
        }
    }
}

impl<S, P, KF, K: fmt::Debug, C> fmt::Debug for PeerSelect<S, P, KF, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerSelect")
            .field(
                "peers",
                &self.peers.iter().map(|p| &p.key).collect::<Vec<_>>(),
            )
            .field("name", &self.name)
            .field("ready", &self.ready)
            .field("max_tries", &self.max_tries)
            .finish_non_exhaustive()
    }
}

/// Builds a [`PeerSelect`]; from [`PeerSelect::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct PeerSelectBuilder<S, P, KF, K, C> {
    layer: KeyedBreakerLayer<KF, K, C>,
    prefer: P,
    config: PeerSelectConfig,
    peers: Vec<(K, S)>,
    #[cfg(feature = "discover")]
    discover: Option<Changes<K, S>>,
}

impl<S, P, KF, K: fmt::Debug, C> fmt::Debug for PeerSelectBuilder<S, P, KF, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerSelectBuilder")
            .field("config", &self.config)
            .field(
                "peers",
                &self.peers.iter().map(|p| &p.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<S, P, KF, K, C> PeerSelectBuilder<S, P, KF, K, C>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    C: Clone,
{
    /// The name of its metrics and events (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The most peers whose breaker is asked per request (default 3).
    pub fn max_tries(mut self, max_tries: usize) -> Self {
        self.config.max_tries = max_tries;
        self
    }

    /// Sets every field from `config`.
    pub fn config(mut self, config: &PeerSelectConfig) -> Self {
        self.config = config.clone();
        self
    }

    /// Adds peers (a later key replaces an earlier one's service).
    pub fn peers(mut self, peers: impl IntoIterator<Item = (K, S)>) -> Self {
        self.peers.extend(peers);
        self
    }

    /// Takes peers from a `tower::discover::Discover` stream, polled in
    /// `poll_ready` (after the peers given with [`peers`](Self::peers)).
    /// When the stream ends, the set stays as it is; when it fails,
    /// `poll_ready` returns its error.
    #[cfg(feature = "discover")]
    #[cfg_attr(docsrs, doc(cfg(feature = "discover")))]
    pub fn discover<D>(mut self, discover: D) -> Self
    where
        D: tower::discover::Discover<Key = K, Service = S> + Send + 'static,
        D::Error: Into<BoxError>,
    {
        let mut discover = Box::pin(discover);
        self.discover = Some(Box::new(move |cx: &mut Context<'_>| {
            discover
                .as_mut()
                .poll_discover(cx)
                .map(|c| c.map(|r| r.map_err(Into::into)))
        }));
        self
    }

    /// The service; every bad field is reported.
    pub fn build(self) -> Result<PeerSelect<S, P, KF, K, C>, ConfigError> {
        self.config.validate()?;
        let mut select = PeerSelect {
            classify: self.layer.classifier().clone(),
            layer: self.layer,
            prefer: self.prefer,
            max_tries: self.config.max_tries,
            peers: Vec::new(),
            index: HashMap::default(),
            unready: Vec::new(),
            ready: 0,
            scratch: Vec::new(),
            turn: 0,
            counts: [0; 3],
            name: Arc::from(self.config.name.as_str()),
            #[cfg(feature = "metrics")]
            metrics: Metrics::new(&self.config.name),
            #[cfg(feature = "discover")]
            discover: self.discover,
        };
        #[cfg(feature = "metrics")]
        select.metrics.peers.set(0.0);
        for (key, service) in self.peers {
            select.insert(key, service);
        }
        Ok(select)
    }
}

impl<S, P, KF, K, C> PeerSelect<S, P, KF, K, C>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    C: Clone,
{
    /// A builder over `layer`'s map (its config and classifier), taking each
    /// request's preferred peer with `prefer` (`None`: no preference).
    pub fn builder<Req>(
        layer: &KeyedBreakerLayer<KF, K, C>,
        prefer: P,
    ) -> PeerSelectBuilder<S, P, KF, K, C>
    where
        P: Fn(&Req) -> Option<K>,
    {
        PeerSelectBuilder {
            layer: layer.clone(),
            prefer,
            config: PeerSelectConfig::default(),
            peers: Vec::new(),
            #[cfg(feature = "discover")]
            discover: None,
        }
    }

    /// Adds a peer, or replaces the service of a peer already in the set
    /// (its breaker is kept).
    pub fn insert(&mut self, key: K, service: S) {
        if let Some(&i) = self.index.get(&key) {
            let peer = &mut self.peers[i];
            peer.service = service;
            if peer.ready {
                peer.ready = false;
                self.ready -= 1;
                self.unready.push(i);
            }
            return;
        }
        let breaker = self.breaker_for(&key);
        let i = self.peers.len();
        self.peers.push(Peer {
            key: key.clone(),
            service,
            breaker,
            ready: false,
        });
        tracing::debug!(
            target: seawall_core::names::TARGET_BREAKER,
            name = &*self.name,
            key = %seawall_core::key::Escaped(&key),
            peers = self.peers.len(),
            "peer added"
        );
        #[cfg(feature = "metrics")]
        self.metrics.peers.set(self.peers.len() as f64);
        self.index.insert(key, i);
        self.unready.push(i);
        // Both buffers hold at most one entry per peer: with this capacity
        // the call path never grows them.
        self.scratch
            .reserve(self.peers.len().saturating_sub(self.scratch.len()));
        self.unready
            .reserve(self.peers.len().saturating_sub(self.unready.len()));
    }

    /// Removes a peer; returns its service.
    pub fn remove(&mut self, key: &K) -> Option<S> {
        let i = self.index.remove(key)?;
        let peer = self.peers.swap_remove(i);
        tracing::debug!(
            target: seawall_core::names::TARGET_BREAKER,
            name = &*self.name,
            key = %seawall_core::key::Escaped(&peer.key),
            peers = self.peers.len(),
            "peer removed"
        );
        #[cfg(feature = "metrics")]
        self.metrics.peers.set(self.peers.len() as f64);
        if peer.ready {
            self.ready -= 1;
        }
        if let Some(moved) = self.peers.get(i) {
            self.index.insert(moved.key.clone(), i);
        }
        // Indexes moved: list the unready peers again (rare).
        self.unready.clear();
        self.unready.extend(
            self.peers
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.ready)
                .map(|(i, _)| i),
        );
        Some(peer.service)
    }

    /// The keys of the peers in the set.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.peers.iter().map(|p| &p.key)
    }

    /// How many peers the set holds.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// `true` when the set holds no peer.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PeerSelectStats {
        PeerSelectStats {
            peers: self.peers.len(),
            ready: self.ready,
            preferred: self.counts[PREFERRED],
            other: self.counts[OTHER],
            no_peer: self.counts[NO_PEER],
        }
    }

    /// The breaker guarding `key`, if it is in the set.
    pub fn breaker(&self, key: &K) -> Option<&CircuitBreaker> {
        self.index.get(key).map(|&i| &self.peers[i].breaker)
    }

    fn breaker_for(&self, key: &K) -> CircuitBreaker {
        self.layer
            .breaker_or_insert(key.clone())
            .unwrap_or_else(|| {
                tracing::warn!(
                    target: seawall_core::names::TARGET_BREAKER,
                    name = &*self.name,
                    key = %seawall_core::key::Escaped(&key),
                    "keyed breaker full: peer gets a breaker of its own"
                );
                CircuitBreaker::standalone(self.layer.settings(), key)
            })
    }

    #[cfg(feature = "discover")]
    fn poll_discover(&mut self, cx: &mut Context<'_>) -> Result<(), BoxError> {
        use tower::discover::Change;
        while let Some(discover) = self.discover.as_mut() {
            match discover(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.discover = None,
                Poll::Ready(Some(Err(e))) => return Err(e),
                Poll::Ready(Some(Ok(Change::Insert(key, service)))) => self.insert(key, service),
                Poll::Ready(Some(Ok(Change::Remove(key)))) => {
                    self.remove(&key);
                }
            }
        }
        Ok(())
    }

    // Picks the peer for a request, asking breakers in order; no allocation
    // (the scratch buffer has the set's capacity).
    //
    // `avoid` is the peer a hedging layer's first attempt went to
    // (`seawall_core::attempt`): a hedge goes elsewhere if another peer is
    // ready, and to that peer only when no other admits it.
    fn pick(
        &mut self,
        preferred: Option<K>,
        avoid: Option<usize>,
    ) -> Result<(usize, Permit<'static>), NoPeerAvailable> {
        let mut tried = 0;
        let mut rejection = None;
        let mut preferred = preferred.and_then(|k| self.index.get(&k).copied());
        let avoid = avoid.filter(|&a| {
            a < self.peers.len()
                && self
                    .peers
                    .iter()
                    .enumerate()
                    .any(|(j, p)| j != a && p.ready)
        });
        if avoid.is_some() && preferred == avoid {
            preferred = None;
        }
        if let Some(i) = preferred {
            let peer = &self.peers[i];
            if peer.ready {
                tried += 1;
                match peer.breaker.try_acquire_owned() {
                    Ok(permit) => {
                        self.count(PREFERRED);
                        return Ok((i, permit));
                    }
                    Err(e) => rejection = Some(e),
                }
            }
        }
        let picked = self.pick_other(preferred, avoid, tried, rejection);
        self.count(if picked.is_ok() { OTHER } else { NO_PEER });
        picked
    }

    #[inline]
    fn count(&mut self, what: usize) {
        self.counts[what] += 1;
        #[cfg(feature = "metrics")]
        self.metrics.counts[what].increment(1);
    }

    #[cold]
    fn pick_other(
        &mut self,
        preferred: Option<usize>,
        avoid: Option<usize>,
        mut tried: usize,
        mut rejection: Option<CircuitOpen>,
    ) -> Result<(usize, Permit<'static>), NoPeerAvailable> {
        let n = self.peers.len();
        if n > 0 && tried < self.max_tries {
            let start = self.turn % n;
            self.turn = self.turn.wrapping_add(1);
            self.scratch.clear();
            for i in (start..n).chain(0..start) {
                let peer = &self.peers[i];
                if peer.ready && Some(i) != preferred && Some(i) != avoid {
                    self.scratch.push((peer.breaker.health(), i));
                }
            }
            // Stable: equal health keeps the round-robin order.
            self.scratch.sort_by(|a, b| b.0.total_cmp(&a.0));
            for &(_, i) in &self.scratch {
                if tried >= self.max_tries {
                    break;
                }
                tried += 1;
                match self.peers[i].breaker.try_acquire_owned() {
                    Ok(permit) => return Ok((i, permit)),
                    Err(e) => rejection = Some(e),
                }
            }
            // No other peer admitted the hedge: its first attempt's peer.
            if let Some(a) = avoid
                && tried < self.max_tries
                && self.peers[a].ready
            {
                tried += 1;
                match self.peers[a].breaker.try_acquire_owned() {
                    Ok(permit) => return Ok((a, permit)),
                    Err(e) => rejection = Some(e),
                }
            }
        }
        Err(NoPeerAvailable {
            tried,
            peers: n,
            rejection,
        })
    }
}

impl<S, P, KF, K, C, Req> Service<Req> for PeerSelect<S, P, KF, K, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: Fn(&Req) -> Option<K>,
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = SelectFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        #[cfg(feature = "discover")]
        self.poll_discover(cx)?;
        let mut j = 0;
        let mut failed = false;
        while j < self.unready.len() {
            let i = self.unready[j];
            match self.peers[i].service.poll_ready(cx) {
                Poll::Pending => j += 1,
                Poll::Ready(Ok(())) => {
                    self.peers[i].ready = true;
                    self.ready += 1;
                    self.unready.swap_remove(j);
                }
                Poll::Ready(Err(e)) => {
                    let e: BoxError = e.into();
                    tracing::warn!(
                        target: seawall_core::names::TARGET_BREAKER,
                        name = &*self.name,
                        key = %seawall_core::key::Escaped(&self.peers[i].key),
                        error = %e,
                        "peer failed: removed from the set"
                    );
                    let key = self.peers[i].key.clone();
                    self.remove(&key);
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            // The set changed under the loop: start again (rare).
            return self.poll_ready(cx);
        }
        if self.ready > 0 || self.peers.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let preferred = (self.prefer)(&req);
        match self.pick(preferred, seawall_core::attempt::avoid()) {
            Ok((i, permit)) => {
                seawall_core::attempt::note_peer(i);
                let peer = &mut self.peers[i];
                peer.ready = false;
                self.ready -= 1;
                self.unready.push(i);
                SelectFuture {
                    kind: Kind::Called {
                        fut: peer.service.call(req),
                        permit,
                        classify: self.classify.clone(),
                    },
                }
            }
            Err(error) => SelectFuture {
                kind: Kind::Failed { error: Some(error) },
            },
        }
    }
}

pin_project! {
    /// The future of a [`PeerSelect`] call: the chosen peer's call with the
    /// permit of its breaker (recorded when the call finishes, counted as
    /// cancelled if the future is dropped first), or [`NoPeerAvailable`] at
    /// once.
    pub struct SelectFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            #[pin]
            fut: F,
            permit: Permit<'static>,
            classify: C,
        },
        Failed {
            error: Option<NoPeerAvailable>,
        },
    }
}

impl<F, C> fmt::Debug for SelectFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Failed { .. } => "failed",
        };
        f.debug_struct("SelectFuture").field("kind", &kind).finish()
    }
}

impl<F, C, T, E> Future for SelectFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                fut,
                permit,
                classify,
            } => {
                let result = ready!(fut.poll(cx));
                permit.record_in_place(classify.classify(&result), None);
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Failed { error } => Poll::Ready(Err(match error.take() {
                Some(e) => Box::new(e),
                None => "SelectFuture polled after completion".into(),
            })),
        }
    }
}

impl<KF, K, C> KeyedBreakerLayer<KF, K, C>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    C: Clone,
{
    /// Guards one peer's service with `key`'s breaker in this map (created
    /// if absent; a breaker of its own if the map is full of protected
    /// keys), classifying with this layer's classifier. The returned
    /// [`Breaker`] holds the entry, so the map does not evict it.
    ///
    /// With feature `balance` the [`Breaker`]'s `tower::load::Load` is its
    /// breaker's ill health, so tower's `Balance` over guarded peers prefers
    /// healthy ones.
    ///
    /// ```
    /// use seawall_breaker::{BreakerConfig, KeyedBreakerLayer};
    /// use tower::{service_fn, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = KeyedBreakerLayer::new(|a: &&str| a.to_string(), &BreakerConfig::default().into()).unwrap();
    /// let peer = layer.guard("10.0.0.7:80".to_string(), service_fn(|_: &str| async { Ok::<_, &str>(1) }));
    /// layer.force_open("10.0.0.7:80".to_string());
    /// assert!(peer.oneshot("ping").await.is_err());
    /// # }
    /// ```
    pub fn guard<S>(&self, key: K, service: S) -> Breaker<S, C> {
        let breaker = match self.breaker_or_insert(key.clone()) {
            Some(b) => b,
            None => CircuitBreaker::standalone(self.settings(), &key),
        };
        Breaker::new(service, breaker, self.classifier().clone())
    }
}

impl CircuitBreaker {
    // A breaker outside any map, for a peer that finds the map full: it
    // shares the layer's settings (config, clock), so a reload of the layer
    // reaches it too.
    fn standalone(settings: &Arc<Settings>, key: &impl fmt::Display) -> CircuitBreaker {
        CircuitBreaker::whole(crate::sync::Arc::new(Inner::new(
            settings.clone(),
            Some(Arc::from(key.to_string())),
        )))
    }
}

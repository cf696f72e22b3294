//! [`RedisBudgetLayer`] and [`RedisKeyedBudgetLayer`].

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use seawall_budget::BudgetMode;
use seawall_core::{Clock, ConfigError, KeyFn, KeyMap};
use tower_layer::Layer;

use crate::config::{RedisBudgetBuilder, RedisBudgetConfig};
use crate::endpoint::Endpoint;
use crate::error::RedisBudgetError;
use crate::lease::{Cell, Counters, Name};
use crate::script::Ask;
use crate::service::{RedisBudget, RedisKeyedBudget};
use crate::shared::Shared;
use crate::stats::{Backend, RedisBudgetStats};

fn shared(
    config: &RedisBudgetConfig,
    queue: usize,
    clock: Clock,
) -> Result<Arc<Shared>, ConfigError> {
    config.validate()?;
    let endpoint = Endpoint::new(config)?;
    Ok(Arc::new(Shared::new(config, endpoint, queue, clock)))
}

/// The refill queue of a keyed layer: one slot per key, up to 4096.
fn keyed_queue(config: &RedisBudgetConfig) -> usize {
    config.keys.capacity.clamp(1, 4096)
}

fn stats(shared: &Shared, keys: usize) -> RedisBudgetStats {
    let c: &Counters = &shared.counters;
    use std::sync::atomic::Ordering::Relaxed;
    RedisBudgetStats {
        admitted: c.admitted.load(Relaxed),
        rejected: c.rejected.load(Relaxed),
        round_trips: c.round_trips.load(Relaxed),
        leased: c.leased.load(Relaxed),
        fallbacks: c.fallbacks.load(Relaxed),
        key_errors: c.key_errors.load(Relaxed),
        overflowed: c.overflowed.load(Relaxed),
        backend: shared.backend(),
        last_error: shared.last_error(),
        keys,
    }
}

/// Checks that Redis answers the budget script, on a connection of its own
/// (the script is loaded if needed; nothing is written).
async fn ping(shared: &Shared) -> Result<(), RedisBudgetError> {
    let mut conn = shared.conn();
    let ask = Ask {
        key: &shared.prefix,
        owed: 0,
        debt: 0,
        wanted: 0,
    };
    let rate = crate::script::ScriptRate {
        emission_us: 1.0,
        limit_us: 1.0,
    };
    // The budget's own key answering with an error is a failed ping.
    let mut replies = conn.lease(&Counters::default(), rate, &[ask]).await?;
    replies.pop().unwrap_or(Ok(crate::script::Grant {
        granted: 0,
        wait: Duration::ZERO,
    }))?;
    Ok(())
}

/// Applies a rate budget shared by every replica that uses the same Redis
/// and the same `name`, to a [`Service`](tower_service::Service).
///
/// The services behave like seawall-budget's local `BudgetLayer`:
/// [`BudgetMode::Reject`] fails fast with
/// [`BudgetExhausted`](seawall_core::BudgetExhausted) `{ retry_after }` from
/// the response future; [`BudgetMode::Wait`] parks in `poll_ready` on a
/// timer until a token is due. See [`RedisBudget`] for the details and the
/// [crate docs](crate) for leasing, its accuracy and the fallback.
///
/// The layer owns the shared state and one background task (started on the
/// first tokio runtime it sees, at `build()` or at the first call), which
/// does all the Redis traffic and ends when the layer and all its services
/// are dropped.
///
/// # Time
///
/// The layer reads the time from its [`Clock`]
/// ([`RedisBudgetBuilder::clock`], tokio's by default): when the shared
/// budget is known to be spent until a token is due (Redis says how long),
/// the local rate that sizes leases, and when a key that Redis refused is
/// tried again. The Redis budget itself runs on Redis's clock (`TIME`),
/// whatever this one says. Its timers are tokio's: the background task's
/// probe interval and `redis_timeout`, and `Wait` mode's sleep (set with
/// [`Clock::instant_at`]). With a manual clock, moving it by hand moves the
/// layer's readings but not those timers; a TSC clock drifts from tokio's by
/// no more than the two sources do. The `Local` fallback's budget (a
/// seawall-budget `LoopBudget`) reads the layer's clock too.
///
/// ```no_run
/// use seawall_budget_redis::{FallbackPolicy, RedisBudgetLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = RedisBudgetLayer::builder()
///     .url("redis://127.0.0.1:6379")
///     .name("payments-api")
///     .rate(1000)
///     .fallback(FallbackPolicy::Local { share: 0.25 }) // four replicas
///     .build()
///     .unwrap();
/// layer.ping().await.expect("redis answers");
/// let svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) }));
/// assert_eq!(svc.oneshot(7).await.unwrap(), 7);
/// assert_eq!(layer.stats().admitted, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct RedisBudgetLayer {
    shared: Arc<Shared>,
    cell: Arc<Cell>,
}

impl fmt::Debug for RedisBudgetLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgetLayer")
            .field("config", &self.shared.config)
            .field("backend", &self.shared.backend())
            .field("cell", &self.cell)
            .finish()
    }
}

impl RedisBudgetLayer {
    /// A builder; see [`RedisBudgetConfig`] for the fields and defaults.
    pub fn builder() -> RedisBudgetBuilder {
        RedisBudgetBuilder::new()
    }

    /// A layer from a config, validated first, on tokio's clock (set another
    /// with [`RedisBudgetBuilder::clock`]). Connects in the background.
    pub fn from_config(config: &RedisBudgetConfig) -> Result<RedisBudgetLayer, ConfigError> {
        Self::make(config, Clock::default())
    }

    pub(crate) fn make(
        config: &RedisBudgetConfig,
        clock: Clock,
    ) -> Result<RedisBudgetLayer, ConfigError> {
        let shared = shared(config, 1, clock)?;
        let cell = Arc::new(shared.budget_cell());
        shared.ensure_task();
        Ok(RedisBudgetLayer { shared, cell })
    }

    /// The configuration in force.
    pub fn config(&self) -> &RedisBudgetConfig {
        &self.shared.config
    }

    /// The mode of the services this layer makes.
    pub fn mode(&self) -> BudgetMode {
        self.shared.config.mode
    }

    /// The budget in force now: Redis, or the fallback.
    pub fn backend(&self) -> Backend {
        self.shared.backend()
    }

    /// Tokens held by this replica now (leased and unspent; negative when
    /// calls were admitted on credit and not yet charged).
    pub fn leased(&self) -> i64 {
        self.cell.tokens()
    }

    /// The lease size now (adapts to the local rate).
    pub fn lease_size(&self) -> u32 {
        self.cell.lease_size()
    }

    /// A snapshot of the counters, all services of this layer together.
    pub fn stats(&self) -> RedisBudgetStats {
        stats(&self.shared, 1)
    }

    /// Whether Redis answers the budget script now, on a connection of its
    /// own (within `redis_timeout` per command; nothing is written). Use it
    /// at start-up to fail fast on a wrong URL.
    pub async fn ping(&self) -> Result<(), RedisBudgetError> {
        ping(&self.shared).await
    }
}

impl<S> Layer<S> for RedisBudgetLayer {
    type Service = RedisBudget<S>;

    fn layer(&self, inner: S) -> RedisBudget<S> {
        RedisBudget::new(inner, self.shared.clone(), self.cell.clone())
    }
}

pub(crate) struct Keyed<K> {
    pub(crate) map: KeyMap<K, Cell>,
    /// Serves every new key the map has no room for (see the layer's docs).
    pub(crate) overflow: Arc<Cell>,
}

/// One shared budget per key (client, tenant, route), taken from each
/// request by a [`KeyFn`], held in a bounded map (`keys.capacity` keys, idle
/// ones forgotten after `keys.idle_ttl`). Each key is its own Redis key,
/// `seawall:{name}:<key>`, all in the same Cluster slot unless
/// [`key_slots`](RedisBudgetConfig::key_slots) spreads them
/// (`seawall:{name#b}:<key>`).
///
/// Like seawall-budget's `KeyedBudgetLayer` it always rejects (the key is
/// only known in `call`); a config with `mode = wait` is a [`ConfigError`].
/// All keys' refills share one background task, batched into pipelines.
///
/// Keys usually come from requests, so the map holds against hostile ones:
/// - A key is forgotten (idle, or to make room) only while its cell is
///   *fresh*: no credit outstanding, no fallback debt, no refill pending, not
///   throttled (the last refill's "next token at T" has passed), not failed,
///   its `Local` fallback budget full. Forgetting it then gives nothing
///   away; a throttled key cannot be churned out of the map and back.
/// - A new key admits one call on credit before Redis answers for it.
/// - A new key the map has no room for (its shard is full of keys that may
///   not be forgotten) is served by one overflow budget shared by all such
///   keys, Redis key `seawall:{name}#overflow` (no user key can name it),
///   as strict as one key; counted in [`RedisBudgetStats::overflowed`].
///
/// See `docs/distributed.md` ("Keyed budgets under hostile keys").
///
/// The layer reads the time from its [`Clock`] (tokio's unless given
/// another with [`clock`](Self::clock)), and so does its map of keys: see
/// [`RedisBudgetLayer`] ("Time") for what a clock that does not follow tokio
/// means; with a manual clock, a key's idle time and the time it is throttled
/// for move with that clock.
///
/// ```no_run
/// use seawall_budget_redis::RedisBudgetLayer;
/// use seawall_budget_redis::RedisKeyedBudgetLayer;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cfg = RedisBudgetLayer::builder().name("per-tenant").rate(100).into_config();
/// let layer = RedisKeyedBudgetLayer::new(|tenant: &&'static str| *tenant, &cfg).unwrap();
/// let svc = layer.layer(service_fn(|t: &'static str| async move { Ok::<_, std::convert::Infallible>(t) }));
/// assert_eq!(svc.oneshot("acme").await.unwrap(), "acme");
/// assert_eq!(layer.stats().keys, 1);
/// # }
/// ```
pub struct RedisKeyedBudgetLayer<F, K> {
    key_fn: F,
    shared: Arc<Shared>,
    keyed: Arc<Keyed<K>>,
}

impl<F: Clone, K> Clone for RedisKeyedBudgetLayer<F, K> {
    fn clone(&self) -> Self {
        RedisKeyedBudgetLayer {
            key_fn: self.key_fn.clone(),
            shared: self.shared.clone(),
            keyed: self.keyed.clone(),
        }
    }
}

impl<F, K: Hash + Eq> fmt::Debug for RedisKeyedBudgetLayer<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyedBudgetLayer")
            .field("config", &self.shared.config)
            .field("backend", &self.shared.backend())
            .field("keys", &self.keyed.map.len())
            .finish_non_exhaustive()
    }
}

impl<F, K: Hash + Eq> RedisKeyedBudgetLayer<F, K> {
    /// A keyed budget taking keys with `key_fn`; validates `config`.
    pub fn new<Req>(key_fn: F, config: &RedisBudgetConfig) -> Result<Self, ConfigError>
    where
        F: KeyFn<Req, Key = K>,
    {
        let mode_err = (config.mode == BudgetMode::Wait).then(|| {
            ConfigError::new(
                "mode",
                "wait",
                "is not supported by a keyed budget (it rejects)",
            )
        });
        let shared = match (
            shared(config, keyed_queue(config), Clock::default()),
            mode_err,
        ) {
            (Ok(s), None) => s,
            (Ok(_), Some(e)) => return Err(e),
            (Err(e), None) => return Err(e),
            (Err(e), Some(m)) => return Err(e.merge(m)),
        };
        Ok(Self::with_shared(key_fn, shared))
    }

    /// The layer with its map, on `shared`'s clock. The background task
    /// starts with the first service (or the first call), so that a layer
    /// given another [`clock`](Self::clock) right away never starts one for
    /// the state it drops.
    fn with_shared(key_fn: F, shared: Arc<Shared>) -> Self {
        // A key goes only while forgetting it gives nothing away (see
        // `Cell::is_fresh`); cells' instants are readings of the layer's
        // clock, and so is the map's `now`.
        let map = KeyMap::new(shared.config.keys)
            .clock(shared.clock.clone())
            .evictable_when(|cell: &Cell, now| cell.is_fresh(now));
        RedisKeyedBudgetLayer {
            key_fn,
            keyed: Arc::new(Keyed {
                map,
                overflow: Arc::new(shared.key_cell(Name::Overflow)),
            }),
            shared,
        }
    }

    /// Reads the time from `clock` instead of tokio's, the map of keys
    /// included. The layer starts afresh on it (no keys, counters at zero):
    /// set it right after [`new`](Self::new), before making services, which
    /// would keep the state they were made with.
    ///
    /// ```
    /// use seawall_budget_redis::{RedisBudgetConfig, RedisKeyedBudgetLayer};
    /// use seawall_core::Clock;
    ///
    /// let (clock, _hand) = Clock::manual();
    /// let layer = RedisKeyedBudgetLayer::new(|k: &u32| *k, &RedisBudgetConfig::default())
    ///     .unwrap()
    ///     .clock(clock);
    /// assert_eq!(layer.stats().keys, 0);
    /// ```
    #[must_use]
    pub fn clock(self, clock: Clock) -> Self {
        let old = &self.shared;
        let shared = Arc::new(Shared::new(
            &old.config,
            old.endpoint.clone(),
            keyed_queue(&old.config),
            clock,
        ));
        Self::with_shared(self.key_fn, shared)
    }

    /// The configuration in force.
    pub fn config(&self) -> &RedisBudgetConfig {
        &self.shared.config
    }

    /// The budget in force now: Redis, or the fallback.
    pub fn backend(&self) -> Backend {
        self.shared.backend()
    }

    /// A snapshot of the counters, all keys and services together.
    pub fn stats(&self) -> RedisBudgetStats {
        stats(&self.shared, self.keyed.map.len())
    }

    /// Forgets keys idle for at least `idle_ttl`; returns how many.
    pub fn evict_idle(&self) -> usize {
        self.keyed.map.evict_idle()
    }

    /// The time between two tokens of one key.
    pub fn emission_interval(&self) -> Duration {
        self.shared.emission()
    }

    /// Whether Redis answers the budget script now; see
    /// [`RedisBudgetLayer::ping`].
    pub async fn ping(&self) -> Result<(), RedisBudgetError> {
        ping(&self.shared).await
    }
}

impl<S, F: Clone, K> Layer<S> for RedisKeyedBudgetLayer<F, K> {
    type Service = RedisKeyedBudget<S, F, K>;

    fn layer(&self, inner: S) -> Self::Service {
        // Connect and load the script before the first call needs a lease.
        self.shared.ensure_task();
        RedisKeyedBudget::new(
            inner,
            self.key_fn.clone(),
            self.shared.clone(),
            self.keyed.clone(),
        )
    }
}

/// The layer's readings on a manual clock, with no runtime and no Redis: what
/// Redis answered is applied to the cells by hand, as the background task
/// would.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use seawall_core::KeyMapConfig;

    use super::*;
    use crate::lease::Acquire;
    use crate::script::Grant;

    const DEAD: &str = "redis://127.0.0.1:1";

    /// Redis's answer to a refill planned at the clock's reading now:
    /// nothing granted, the next token due in `wait`.
    fn spent_for(shared: &Shared, cell: &Cell, wait: Duration) {
        let now = shared.now();
        let ask = cell.plan("k", now, 1, 50_000_000);
        cell.apply(&ask, Grant { granted: 0, wait }, now);
    }

    #[test]
    fn a_spent_budget_waits_on_the_layers_clock() {
        let (clock, hand) = Clock::manual();
        let layer = RedisBudgetLayer::builder()
            .url(DEAD)
            .clock(clock)
            .build()
            .unwrap();
        let shared = &layer.shared;
        hand.advance(Duration::from_secs(5));
        spent_for(shared, &layer.cell, Duration::from_millis(30));
        assert_eq!(
            shared.acquire(&layer.cell),
            Acquire::Reject(30_000_000),
            "retry after the whole wait"
        );
        hand.advance(Duration::from_millis(20));
        assert_eq!(shared.acquire(&layer.cell), Acquire::Reject(10_000_000));
        hand.advance(Duration::from_millis(10));
        // The token is due: a call on credit, and a refill queued to charge it.
        assert_eq!(
            shared.acquire(&layer.cell),
            Acquire::Admit { refundable: true }
        );
        assert_eq!(layer.leased(), -1);
        assert_eq!(layer.stats().rejected, 2);
    }

    #[test]
    fn a_throttled_key_stays_until_the_layers_clock_passes_its_time() {
        let (clock, hand) = Clock::manual();
        let keys = KeyMapConfig::new()
            .capacity(1)
            .idle_ttl(Duration::from_secs(1));
        let cfg = RedisBudgetLayer::builder()
            .url(DEAD)
            .keys(keys)
            .into_config();
        let layer = RedisKeyedBudgetLayer::new(|k: &u32| *k, &cfg)
            .unwrap()
            .clock(clock);
        let (shared, map) = (&layer.shared, &layer.keyed.map);
        let make = |k: &u32| shared.key_cell(Name::Key(Arc::from(k.to_string())));
        let cell = map.get_or_insert_with(1, make).unwrap();
        spent_for(shared, &cell, Duration::from_secs(10));
        drop(cell);
        // Idle for longer than the TTL, but throttled: neither the sweep nor
        // a newcomer may forget it (a new cell would admit on credit).
        hand.advance(Duration::from_secs(5));
        assert_eq!(layer.evict_idle(), 0);
        assert!(map.get_or_insert_with(2, make).is_err());
        assert_eq!(layer.stats().keys, 1);
        // Its time has come on the layer's clock: it is fresh, and goes.
        hand.advance(Duration::from_secs(5));
        assert_eq!(layer.evict_idle(), 1);
        assert!(map.get_or_insert_with(2, make).is_ok());
    }

    #[test]
    fn a_clock_given_to_the_keyed_layer_starts_it_afresh() {
        let cfg = RedisBudgetLayer::builder().url(DEAD).into_config();
        let layer = RedisKeyedBudgetLayer::new(|k: &u32| *k, &cfg).unwrap();
        let (clock, hand) = Clock::manual();
        hand.advance(Duration::from_secs(3));
        let layer = layer.clock(clock);
        assert_eq!(layer.shared.now(), 3_000_000_000);
        assert_eq!(layer.config(), &cfg);
        assert_eq!(layer.stats().keys, 0);
    }
}

#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! One rate budget shared by many replicas: GCRA kept in Redis, tokens
//! leased in batches, and a fallback policy for when Redis is down.
//!
//! A local budget (seawall-budget's `BudgetLayer`) holds inside one process;
//! ten replicas each admit the whole rate and the peer behind them sees ten
//! times it. [`RedisBudgetLayer`] keeps the budget in Redis instead, updated
//! atomically by one Lua script, so every replica with the same `url` and
//! `name` spends from the same budget. The services it makes behave like the
//! local ones: `Reject` fails fast with
//! [`BudgetExhausted`] `{ retry_after }` from the response future, `Wait`
//! parks in `poll_ready` on a timer. [`RedisKeyedBudgetLayer`] keeps one
//! shared budget per key in a bounded map, which forgets a key only while
//! that gives nothing away and serves new keys it has no room for from one
//! shared overflow budget (see its docs).
//!
//! # How it works
//!
//! - **One script, Redis's clock.** The GCRA state of a budget is one Redis
//!   key, `seawall:{name}` (the braces are a hash tag: one Redis Cluster
//!   slot), holding the theoretical arrival time.
//!   One Lua script (`EVALSHA`, loaded once, loaded again on `NOSCRIPT`)
//!   reads `TIME`, settles what the replica owes, grants what is available
//!   and sets the key to expire when the bucket would be full again, so
//!   replicas with skewed clocks agree and memory is bounded by the keys in
//!   use.
//! - **No round trip per call.** A replica leases `k` tokens per round trip
//!   and spends them locally with one compare-exchange each; `k` follows the
//!   local rate (`rate × lease_interval`) and never exceeds
//!   `lease_share × burst`. A refill is asked for at half a lease, so a
//!   steady caller never finds the pool empty. A call that does (at start-up,
//!   for a new key, after a jump in rate) is admitted *on credit*, at most
//!   `k` tokens, charged to Redis unconditionally by the next refill.
//!   **Accuracy:** each replica may be up to `k` tokens ahead of Redis
//!   (leased, unspent) or behind it (credit), so `n` replicas admit at most
//!   `burst + n × k` in any instant over the GCRA bound, and exactly the
//!   rate over the long run (every admitted token is charged).
//! - **Calls never wait on Redis.** All Redis traffic happens on one
//!   background task per layer (holding a `Weak`, so it ends with the
//!   layer). Each command has its own `redis_timeout`. When one fails or
//!   times out the budget switches to its [`FallbackPolicy`] (`FailOpen`,
//!   `FailClosed`, or `Local { share }`: a local GCRA at `rate × share`,
//!   seawall-budget's `LoopBudget`), probes Redis every `probe_interval`, and
//!   goes back to the shared budget when it answers; each switch is a
//!   tracing event (`WARN` / `INFO`, target `seawall_budget`) and a metric.
//!   A `Wait` service waiting for a refill waits at most one `redis_timeout`.
//!   What the `Local` fallback admitted (up to `rate`) is charged to the
//!   shared budget when Redis answers again, so replicas cut off while
//!   others are not do not add their share on top of the shared rate.
//! - **One bad key is that key's problem.** Each reply of a refill pipeline
//!   is read on its own: a key that holds something else (`WRONGTYPE`)
//!   follows the fallback policy by itself, is tried again every
//!   `probe_interval`, and is counted in
//!   [`RedisBudgetStats::key_errors`]; the other keys and the backend stay
//!   on Redis.
//! - **Time.** The budget runs on Redis's clock; locally a layer reads a
//!   `seawall_core::Clock` (tokio's unless given another with
//!   [`RedisBudgetBuilder::clock`] or [`RedisKeyedBudgetLayer::clock`]) for
//!   what it decides itself: until when the budget is known to be spent, the
//!   local rate, a key's idle time. Timers (probes, `redis_timeout`, `Wait`
//!   mode's sleep) are tokio's; see [`RedisBudgetLayer`] for what a manual or
//!   TSC clock means.
//! - **The password never prints.** `Debug` of the config and the layers,
//!   config errors, and Redis errors (kept in the stats, written to tracing)
//!   show the URL as [`redact_url`] does: `redis://user:***@host:6379/0`.
//!
//! - **One server, Cluster or Sentinel; TLS and ACL users.** [`Deployment`]
//!   says where the budget lives: one server at `url` (the default), a Redis
//!   Cluster (keys placed by hash tag, [`RedisBudgetConfig::key_slots`]
//!   spreading a keyed budget over the nodes, refills batched one pipeline
//!   per node, redirections and promoted replicas followed by the `redis`
//!   crate's cluster client, a lost node an outage of its keys alone), or a
//!   primary found through Sentinel (asked again every `probe_interval`, so a
//!   failover is followed within `failover + probe_interval +
//!   redis_timeout`). `rediss://` URLs use TLS (rustls, `ring` provider),
//!   checked against the system's roots or [`TlsConfig::ca_file`];
//!   `username`/`password` set the ACL user of every node and never print.
//!   Leasing and the fallback behave the same on all of them.
//!
//! See `docs/distributed.md` in the repository for when a shared budget is
//! worth a round trip, the algorithm in full, each deployment with its
//! measured figures, and running Redis in production.
//!
//! # Why a crate of its own
//!
//! The `redis` crate brings a connection manager, a RESP parser, URL
//! parsing, `tokio-util`, `futures-util` and a few dozen more crates. Most
//! users of seawall-budget need a budget per process and none of that, so the
//! Redis backend lives here, on top of seawall-budget's public API
//! ([`BudgetMode`], `LoopBudget` for the local
//! fallback) and seawall-core's vocabulary ([`BudgetExhausted`],
//! [`ConfigError`], `KeyFn`, `KeyMap`); seawall-budget's own dependency tree
//! stays as lean as it was.
//!
//! # Example
//!
//! ```no_run
//! use seawall_budget_redis::{Backend, RedisBudgetLayer};
//! use seawall_core::Rejection;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // The same config on every replica: one budget of 100 calls/s for all.
//! let layer = RedisBudgetLayer::builder()
//!     .url("redis://127.0.0.1:6379")
//!     .name("geocoder")
//!     .rate(100)
//!     .burst(10)
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new()
//!     .layer(layer.clone())
//!     .service(service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) }));
//! let mut refused = 0;
//! for i in 0..50 {
//!     match svc.ready().await.unwrap().call(i).await {
//!         Ok(_) => {}
//!         Err(e) => {
//!             assert!(Rejection::find(&*e).unwrap().retry_after().is_some());
//!             refused += 1;
//!         }
//!     }
//! }
//! assert!(refused > 0);
//! assert_eq!(layer.backend(), Backend::Redis);
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `metrics` | `seawall_budget_admitted_total`, `seawall_budget_exhausted_total` (label `name`), and [`BUDGET_REDIS_ROUND_TRIPS_TOTAL`], [`BUDGET_BACKEND_SWITCHES_TOTAL`] (labels `name`, `state`), [`BUDGET_BACKEND_FALLBACK`] (names in `seawall_core::names`) |
//! | `serde`   | `Deserialize` for [`RedisBudgetConfig`] and [`FallbackPolicy`]; durations as `"50ms"`, the map's bounds as a `keys` table |
//!
//! [`BUDGET_REDIS_ROUND_TRIPS_TOTAL`]: seawall_core::names::BUDGET_REDIS_ROUND_TRIPS_TOTAL
//! [`BUDGET_BACKEND_SWITCHES_TOTAL`]: seawall_core::names::BUDGET_BACKEND_SWITCHES_TOTAL
//! [`BUDGET_BACKEND_FALLBACK`]: seawall_core::names::BUDGET_BACKEND_FALLBACK
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod endpoint;
mod error;
mod future;
mod layer;
mod lease;
mod redact;
mod script;
mod service;
mod shared;
mod stats;

pub use config::{
    Deployment, FallbackPolicy, MAX_CA_FILE_LEN, MAX_KEY_SLOTS, RedisBudgetBuilder,
    RedisBudgetConfig, TlsConfig,
};
pub use error::RedisBudgetError;
pub use future::ResponseFuture;
pub use layer::{RedisBudgetLayer, RedisKeyedBudgetLayer};
pub use redact::{MAX_URL_LEN, redact_url};
pub use service::{RedisBudget, RedisKeyedBudget};
pub use stats::{Backend, RedisBudgetStats};

pub use seawall_budget::BudgetMode;
pub use seawall_core::{BudgetExhausted, ConfigError};

/// The Lua script the budget runs in Redis, for review or for loading by
/// hand (`SCRIPT LOAD`) where `EVAL` is restricted.
pub const GCRA_SCRIPT: &str = script::LUA;

#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! Fault injection for tower services: errors, latency and replaced
//! responses, injected into a share of calls, so you can check that your
//! breakers open, your retries stay within budget and your fallbacks
//! answer — before production checks it for you.
//!
//! # What [`ChaosLayer`] guarantees
//!
//! - **Three faults, each at its own rate**: an error (yours, boxed as it
//!   is so your classifiers see your type, or [`Injected`]), latency (fixed
//!   or uniform in a range, at most [`MAX_LATENCY`]), and an outcome (a
//!   response of yours in place of the inner one: an HTTP 503, a stale
//!   value). Each call draws for each; an error and an outcome never come
//!   together (the error wins); latency comes with either or alone.
//! - **Before or after the inner call** ([`Placement`]): before, an
//!   injected fault replaces the call (the inner service is never called)
//!   and latency delays the first poll of the inner future; after, the inner
//!   call runs to completion, then latency delays its result and a fault
//!   replaces it (the work was done: a retry repeats it).
//! - **Reproducible**: draws come from a seed ([`ChaosBuilder::seed`]; a
//!   random one otherwise, reported by [`ChaosHandle::seed`] and in the
//!   `chaos layer built` event). Call number `n` of a layer (counted across
//!   all its services and clones, in the order of their `call`s) always
//!   draws the same numbers, whatever the rates; so a test that makes its
//!   calls one after another replays the same faults. With concurrent
//!   callers the same faults come in the same numbered order, but which
//!   request gets number `n` depends on the interleaving.
//! - **Switchable at run time** through a [`ChaosHandle`]: `enable`,
//!   `disable`, the rates, the latency, the placement, or a whole
//!   [`ChaosConfig`] at once ([`ChaosHandle::apply`], for a live reload).
//!   Changes are validated as a config is, and change nothing on error.
//! - **Free when off**: a disabled layer costs one relaxed atomic load per
//!   call and wraps the inner future in a named future that only forwards
//!   it: no allocation, no shared write, no clock read (asserted by
//!   allocation counts). An enabled layer writes one shared counter per
//!   call (the call's number) plus the counters of what it injected.
//! - **Per request or per key**: [`ChaosBuilder::only_when`] limits faults
//!   to the requests you choose (one peer, one route, one tenant); the
//!   others pass through, undrawn and uncounted.
//! - **Honest readiness, clean cancellation**: `poll_ready` is the inner
//!   service's (chaos reserves nothing); dropping a response future drops
//!   the inner future and the timer, and a future dropped during latency
//!   placed before never polls the inner one.
//!
//! # Example: check that a retry hides one failure in three
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use seawall_chaos::{ChaosLayer, Injected};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! let chaos = ChaosLayer::builder().seed(42).error_rate(1.0 / 3.0).build().unwrap();
//! let svc = chaos.layer(service_fn(|x: u32| async move { Ok::<_, seawall_core::BoxError>(x * 2) }));
//! let mut failures = 0;
//! for x in 0..30 {
//!     match svc.clone().oneshot(x).await {
//!         Ok(y) => assert_eq!(y, x * 2),
//!         Err(e) => {
//!             assert!(e.downcast_ref::<Injected>().is_some());
//!             failures += 1;
//!         }
//!     }
//! }
//! // The same seed, the same failures, every run.
//! assert_eq!(failures as u64, chaos.stats().errors);
//!
//! // Off: every call goes straight through.
//! chaos.handle().disable();
//! assert_eq!(svc.oneshot(21).await.unwrap(), 42);
//! # }
//! ```
//!
//! Recipes — "my breaker opens", "my retries stay within budget", "my
//! fallback answers" — are in the repository's `docs/chaos.md`.
//!
//! # Where to put it
//!
//! Innermost, right above the service (or the client) whose failures it
//! stands for, under the layers it tests: `Fallback(Retry(Breaker(Chaos(client))))`.
//! Above them it would test nothing but itself.
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `metrics` | counter [`CHAOS_INJECTED_TOTAL`] (labels `name`, `fault` = `error`, `latency`, `outcome`) and gauge [`CHAOS_ENABLED`] (label `name`) through the `metrics` facade |
//! | `serde` | `Deserialize` for [`ChaosConfig`] and [`Placement`] (durations as `"250ms"`) |
//!
//! [`CHAOS_INJECTED_TOTAL`]: seawall_core::names::CHAOS_INJECTED_TOTAL
//! [`CHAOS_ENABLED`]: seawall_core::names::CHAOS_ENABLED
//!
//! # Observability
//!
//! Events with target `seawall_chaos`
//! ([`TARGET_CHAOS`](seawall_core::names::TARGET_CHAOS)): `INFO` when a
//! layer is built (with its seed), enabled, disabled or given new
//! settings; `TRACE` for each injection. [`ChaosLayer::stats`] and
//! [`ChaosHandle::stats`] count calls drawn, errors, latencies, outcomes and
//! calls let through; with feature `metrics` the injections are counters
//! whose handles are made once, when the layer is built.
//!
//! # Time
//!
//! Latency is a tokio timer (`tokio::time::sleep`), so it follows
//! `tokio::time::pause` and `advance` in tests, and needs a tokio runtime
//! with time enabled when latency is injected. The layer reads no clock.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod control;
mod error;
mod future;
mod inject;
mod layer;
mod service;

pub use config::{ChaosConfig, MAX_LATENCY, Placement};
pub use control::{ChaosHandle, ChaosStats};
pub use error::Injected;
pub use future::ResponseFuture;
pub use inject::{AllRequests, InjectError, InjectOutcome, NoOutcome, Select};
pub use layer::{ChaosBuilder, ChaosLayer};
pub use service::Chaos;

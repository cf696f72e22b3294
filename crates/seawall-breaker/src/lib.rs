#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! A circuit breaker for tower services ([`BreakerLayer`]), a keyed per-peer
//! breaker map ([`KeyedBreakerLayer`]), and the tower-free state machine under
//! both ([`CircuitBreaker`]), usable to guard any call.
//!
//! # What it guarantees
//!
//! - **States** [`State::Closed`] → [`State::Open`] → [`State::HalfOpen`] →
//!   Closed, plus [`State::ForcedOpen`] and [`State::ForcedClosed`] set by
//!   [`CircuitBreaker::force_open`] / [`CircuitBreaker::force_closed`] and
//!   cleared by [`CircuitBreaker::reset`].
//! - **Trip policies** ([`TripPolicy`]): consecutive failures (default, 5),
//!   failure rate over the last N calls, failure rate over the last T of time
//!   (fixed buckets), slow-call rate. Rate policies wait for `min_calls`.
//! - **Open** lasts `open_duration` (30s), optionally growing on repeated
//!   trips ([`OpenBackoff`]: exponential, capped, jittered, reset after a
//!   sustained close). Then **HalfOpen** admits at most `half_open_max_calls`
//!   (3) concurrent probes, rejecting (never queueing) the rest;
//!   `success_threshold` (2) probe successes close it, any probe failure
//!   re-opens it.
//! - **Rejections are immediate** [`CircuitOpen`]
//!   errors with the key, why (open, half-open full, forced) and
//!   `retry_after`, returned from the response future (so `poll_ready` only
//!   reports the inner service's readiness and the services work under
//!   `Buffer`/`Balance`).
//! - **Cancellation never leaks**: a dropped response future (or a dropped
//!   [`Permit`]) gives back its half-open probe slot and counts as neither
//!   success nor failure (unless `cancelled_is_failure`).
//! - **Shared state**: a layer owns one breaker (or one map of breakers);
//!   every service it makes and all their clones share it, so `layer.stats()`
//!   sees every call and `layer.force_open()` affects every service. To get
//!   separate state, build separate layers.
//! - **Live reload**: [`BreakerLayer::reload`], [`KeyedBreakerLayer::reload`]
//!   and [`CircuitBreaker::reload`] apply a new config to running breakers,
//!   all or nothing, keeping their state (states, open periods, windows,
//!   streaks, probes, totals); what cannot change in place is refused with
//!   [`ReloadError::NotInPlace`](seawall_core::ReloadError::NotInPlace).
//!   See [`CircuitBreaker::reload`].
//! - **Time** is read from a [`Clock`](seawall_core::Clock): tokio's by
//!   default (paused-time tests work), any other with
//!   [`BreakerBuilder::clock`] or [`KeyedBreakerLayer::clock`]. A
//!   breaker sets no timer, so a manual clock drives it with no runtime. An
//!   open breaker turns half-open once its open period is over when it is
//!   next read: a call, [`CircuitBreaker::state`] or
//!   [`CircuitBreaker::stats`] (dashboards see `HalfOpen` without traffic).
//! - **Cost**: the closed success path with the consecutive-failures policy
//!   makes no allocation, reads no clock and writes no cache line another
//!   thread writes: the core writes nothing unless a failure count must be
//!   reset, and the tower services' `'static` response future holds a handle
//!   counted in the calling thread's own *lane* of the breaker (one of eight
//!   per breaker), not in the breaker's shared reference count. A keyed
//!   layer's call holds the `Arc` its map hands out. The core's reject path
//!   makes no allocation; the tower services' reject path makes exactly one (the
//!   `Box` of the `BoxError`, as every non-zero-sized tower error costs). A
//!   keyed call for an existing key makes no allocation. All asserted in
//!   `tests/allocations.rs`.
//!
//! # Examples, one per policy
//!
//! Consecutive failures (the default), guarding a tower service:
//!
//! ```
//! use seawall_breaker::{BreakerLayer, TripPolicy};
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let layer = BreakerLayer::builder()
//!     .policy(TripPolicy::consecutive_failures(3))
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new()
//!     .layer(layer.clone())
//!     .service(service_fn(|_: ()| async { Err::<(), _>("refused") }));
//! for _ in 0..3 {
//!     let _ = svc.ready().await.unwrap().call(()).await;
//! }
//! let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
//! assert!(err.to_string().starts_with("circuit open"));
//! assert_eq!(layer.stats().trips, 1);
//! # }
//! ```
//!
//! Failure rate over the last 10 calls, without tower:
//!
//! ```
//! use seawall_breaker::{CircuitBreaker, State, TripPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let breaker = CircuitBreaker::builder()
//!     .policy(TripPolicy::failure_rate_count(10, 0.5, 4))
//!     .build_breaker()
//!     .unwrap();
//! for ok in [true, false, true] {
//!     let p = breaker.try_acquire().unwrap();
//!     if ok { p.success() } else { p.failure() }
//! }
//! assert_eq!(breaker.state(), State::Closed); // 3 calls < min_calls 4
//! breaker.try_acquire().unwrap().failure(); // 2 of 4 failed: 50%
//! assert_eq!(breaker.state(), State::Open);
//! # }
//! ```
//!
//! Failure rate over the last 10 seconds:
//!
//! ```
//! use std::time::Duration;
//! use seawall_breaker::{CircuitBreaker, State, TripPolicy};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let breaker = CircuitBreaker::builder()
//!     .policy(TripPolicy::failure_rate_time(Duration::from_secs(10), 0.5, 2))
//!     .build_breaker()
//!     .unwrap();
//! breaker.try_acquire().unwrap().failure();
//! tokio::time::advance(Duration::from_secs(11)).await; // the failure leaves the window
//! breaker.try_acquire().unwrap().success();
//! breaker.try_acquire().unwrap().success();
//! assert_eq!(breaker.state(), State::Closed);
//! # }
//! ```
//!
//! Slow-call rate, guarding a plain future:
//!
//! ```
//! use std::time::Duration;
//! use seawall_breaker::{CircuitBreaker, State, TripPolicy};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let breaker = CircuitBreaker::builder()
//!     .policy(TripPolicy::slow_call_rate(
//!         Duration::from_millis(100), // slower than this is slow
//!         0.5,
//!         Duration::from_secs(60),
//!         2,
//!     ))
//!     .build_breaker()
//!     .unwrap();
//! for _ in 0..2 {
//!     let r = breaker
//!         .call(async {
//!             tokio::time::sleep(Duration::from_millis(250)).await;
//!             Ok::<_, std::io::Error>(())
//!         })
//!         .await;
//!     assert!(r.is_ok());
//! }
//! assert_eq!(breaker.state(), State::Open);
//! # }
//! ```
//!
//! Per-peer breakers: see [`KeyedBreakerLayer`]. To send each request to its
//! preferred peer, or to the healthiest other peer when that one's breaker
//! refuses, see [`PeerSelect`]; to let tower's `Balance` prefer healthy
//! peers, guard them with [`KeyedBreakerLayer::guard`] (feature `balance`).
//!
//! # Feature flags
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `serde`   | `Deserialize` for [`BreakerConfig`], [`TripPolicy`], [`OpenBackoff`], [`KeyedBreakerConfig`] (durations as `"30s"`) |
//! | `metrics` | state gauge, transition and rejection counters, key gauge, peer selection's counters and peers gauge, through the `metrics` facade under seawall-core's names |
//! | `discover` | `PeerSelectBuilder::discover`: peers from a `tower::discover::Discover` stream (adds `tower` with its `discover` feature) |
//! | `balance` | `tower::load::Load` for [`Breaker`] (its breaker's ill health), so tower's `Balance` prefers healthy peers (adds `tower` with its `load` feature) |
//!
//! # Observability
//!
//! Every transition emits a `tracing` event with target `seawall_breaker`
//! and fields `name`, `key`, `from`, `to` (`WARN` when opening, `INFO`
//! otherwise); nothing is logged per call. With `metrics`:
//! `seawall_breaker_state` (gauge, label `name`; for a keyed layer's
//! overflow breaker also `key = "(overflow)"`, and for its keys only with
//! [`KeyedBreakerConfig::key_metrics`], so callers cannot mint series),
//! `seawall_breaker_transitions_total` (`name`, `state`),
//! `seawall_breaker_rejected_total` (`name`; its handle is taken when the
//! layer is built, so install the recorder first) and `seawall_breaker_keys`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod config;
mod error;
mod future;
mod keyed;
mod lane;
mod layer;
#[cfg(feature = "balance")]
mod load;
mod select;
mod service;
mod state;
mod sync;
mod window;

pub use config::{
    BreakerBuilder, BreakerConfig, MAX_BUCKETS, MAX_COUNT_WINDOW, OpenBackoff, TripPolicy,
};
pub use error::CallError;
pub use future::ResponseFuture;
pub use keyed::{KeyedBreakerConfig, KeyedBreakerLayer, KeyedStats, OVERFLOW_KEY};
pub use layer::BreakerLayer;
pub use seawall_core::{CircuitOpen, OpenState};
pub use select::{
    NoPeerAvailable, PeerSelect, PeerSelectBuilder, PeerSelectConfig, PeerSelectStats, SelectFuture,
};
pub use service::{Breaker, KeyedBreaker};
pub use state::{BreakerStats, CircuitBreaker, Permit, State};

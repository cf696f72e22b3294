#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! Request hedging for [tower](https://docs.rs/tower) services: when a
//! request has not been answered after a delay, send it once more and take
//! the first good answer.
//!
//! A slow tail is often not the request's fault: a GC pause, a cold cache,
//! a noisy neighbour on one replica. Sending a copy of the few slowest
//! requests cuts the tail for a small, bounded amount of extra load
//! ("The Tail at Scale", Dean & Barroso). [`HedgeLayer`] does that:
//!
//! - **The delay follows live latency.** By default a hedge is sent when
//!   the first attempt has run longer than the 95th percentile of the
//!   layer's recent first-attempt latencies, clamped to
//!   `min_delay..=max_delay` (1ms..=1s); a fixed delay is an option.
//! - **Extra load is capped.** Hedges spend from a [`HedgeBudget`]: at most
//!   10% more calls than requests, plus 10 a second, by default. A hedge the
//!   budget cannot pay for is not sent (counted in
//!   [`HedgeStats::budget_exhausted`]).
//! - **Only copyable requests are hedged.** A hedge is a copy of the
//!   request, made by a [`CloneRequest`](seawall_core::clone::CloneRequest)
//!   (by default `Clone`; [`HedgeBuilder::clone_with`] takes a closure that
//!   returns `None` for a request that must not be sent twice). Providing it
//!   is how a caller says a request is idempotent.
//! - **The first good answer wins; the others are cancelled at once.**
//!   Their futures are dropped the moment the winner answers.
//! - **Per key, if asked.** [`KeyedHedgeLayer`] keeps one delay per key
//!   (peer, host, route), in a bounded map, so that one slow peer's tail
//!   does not set everybody's delay.
//! - **A hedge goes to another peer.** Below a
//!   `seawall_breaker::PeerSelect`, a hedge avoids the peer the first
//!   attempt went to whenever another healthy peer exists (through
//!   [`seawall_core::attempt`]).
//!
//! ```
//! use std::time::Duration;
//! use seawall_hedge::HedgeLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let hedge = HedgeLayer::builder()
//!     .delay(Duration::from_millis(50)) // fixed, for the example
//!     .budget_min_per_sec(100)
//!     .build()
//!     .unwrap();
//! let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counter = attempts.clone();
//! let mut svc = ServiceBuilder::new().layer(hedge.clone()).service(service_fn(move |x: u32| {
//!     // The first attempt is slow, the hedge is fast.
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     async move {
//!         let wait = if n == 0 { 1000 } else { 10 };
//!         tokio::time::sleep(Duration::from_millis(wait)).await;
//!         Ok::<_, std::convert::Infallible>(x * 2)
//!     }
//! }));
//! let started = tokio::time::Instant::now();
//! assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
//! // Answered by the hedge: 50ms delay + 10ms, not 1s.
//! assert_eq!(started.elapsed(), Duration::from_millis(60));
//! let stats = hedge.stats();
//! assert_eq!((stats.calls, stats.hedges_sent, stats.hedges_won), (1, 1, 1));
//! # }
//! ```
//!
//! # What counts as an answer
//!
//! An answer is *good* unless the [`Classify`](seawall_core::Classify)
//! given to [`HedgeBuilder::classify`] calls it a
//! [`Failure`](seawall_core::Outcome::Failure); by default every `Ok` is
//! good and every `Err` is bad.
//!
//! - A good answer from any attempt ends the call; the other attempts are
//!   dropped.
//! - A bad answer while another attempt is still running does not end the
//!   call: the layer waits for the others, and sends no further hedge. If
//!   every attempt answers badly, the first bad answer is returned.
//! - A first attempt that fails before its hedge is sent is returned as it
//!   is: hedging is not retrying (a [`RetryLayer`](https://docs.rs/seawall-retry)
//!   above does that, within its own budget).
//!
//! Seawall refusals from below (`Overloaded`, `BudgetExhausted`,
//! `CircuitOpen`) are bad answers like any error, which gives:
//! a first attempt refused at once is returned as is, never hedged around
//! (the layer below said "not now"); a hedge refused does not cancel the
//! first attempt, whose answer is then used; and once one attempt was
//! refused, no further hedge is sent for that call.
//!
//! # Readiness
//!
//! `poll_ready` reports the inner service's readiness, for the first
//! attempt. A hedge needs the inner service ready a second time, later,
//! from inside the response future: the service that made the first
//! attempt moves into the future (the layer keeps a clone, as tower's
//! `Oneshot`-driving layers do) and is driven with `poll_ready` then
//! `call` when the hedge is due. While it is not ready the hedge waits and
//! the first attempt keeps running; if it fails, the hedge is not sent.
//! tower's own `Hedge` instead keeps a second, pre-readied service; here
//! the inner service needs only be `Clone`.
//!
//! # The latency window, shared with the adaptive timeout
//!
//! The delay is the deadline of a [`seawall_timeout::DeadlineTracker`]:
//! `clamp(percentile × multiplier, min_delay, max_delay)` of a sliding
//! window of latencies. This crate depends on `seawall-timeout` for it,
//! which bends the rule that seawall's mechanism crates never depend on
//! each other: a hedge is built on the timeout's latency window as tower's
//! hedge is built on its own histogram, and one implementation of that
//! window is better than two. Like the timeout, the layer measures every
//! call while the window fills and about one call in 32 after that.
//!
//! What is recorded is the first attempt's latency: its answer's, or, when
//! a hedge won, the time it had run when it was cancelled (a lower bound,
//! as the adaptive timeout counts a timeout as its deadline). The window
//! therefore keeps seeing the tail that hedging hides, and the delay does
//! not drift down because hedging works.
//!
//! # Costs
//!
//! A call that sends no hedge allocates nothing (asserted in the
//! workspace's allocation tests): the first attempt and the timer are
//! inline in the response future (for an inner service whose clone does not
//! allocate: tower's `Buffer`'s does, see [`Hedge`]). It costs one clone of the inner service,
//! one copy of the request, one atomic add (the budget's deposit), one
//! reference count (the layer's shared state) and a timer. A hedge costs a
//! boxed future and a budget withdrawal.
//!
//! # Feature flags
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `metrics` | counters `seawall_hedge_sent_total`, `_won_total`, `_budget_exhausted_total`, `_not_cloneable_total` (label `name`); gauge `seawall_hedge_delay_seconds` (label `name`): the layer's own delay, written when the layer is built, when a recorded latency has moved it, and by `stats()` (the delay's latency window reports no `seawall_timeout_*` series of its own) |
//! | `serde`   | `Deserialize` for [`HedgeConfig`] (durations as `"5ms"`) |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod budget;
mod config;
mod future;
mod keyed;
mod layer;
#[cfg(feature = "metrics")]
mod metrics;
mod service;
mod stats;

pub use budget::{HedgeBudget, MAX_BUDGET_HEDGES};
pub use config::{HedgeBuilder, HedgeConfig, MAX_HEDGES, MAX_MIN_SAMPLES};
pub use future::ResponseFuture;
pub use keyed::{KeyedHedge, KeyedHedgeLayer};
pub use layer::HedgeLayer;
pub use seawall_core::{BoxError, KeyMapConfig};
pub use service::Hedge;
pub use stats::HedgeStats;

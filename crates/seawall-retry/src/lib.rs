#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! Retries for tower services that help a backend recover instead of
//! multiplying its outage: backoff with jitter, a retry budget, an overall
//! deadline, and seawall's classification of what may be retried.
//!
//! # What [`RetryLayer`] guarantees
//!
//! - **Bounded amplification.** Retries draw on a [`RetryBudget`] shared by
//!   every service of the layer: over any `ttl` window a backend failing
//!   every call sees at most `(1 + ratio) × requests + min_per_sec × ttl`
//!   calls (default ratio 0.2, 10/s, 10s), not `max_attempts ×` its traffic.
//! - **Rejections are respected.** An error whose
//!   [`Rejection::find`](seawall_core::Rejection::find) is `Overloaded` or
//!   `BudgetExhausted` (a shedder or a budget below said "back off") is
//!   never retried. A `CircuitOpen` is retried after its `retry_after`,
//!   instead of the backoff delay, only if that fits in the deadline (or,
//!   without a deadline, within the backoff's `max_delay`); otherwise the
//!   layer gives up at once. `Elapsed` and other errors are retried. Replace
//!   the rule with [`RetryBuilder::retry_if`]; what counts as a failure at
//!   all (an HTTP 503 in an `Ok`) is a [`Classify`](seawall_core::Classify).
//! - **What the peer said is honoured.** A [`RetryHint`](hint::RetryHint)
//!   reader ([`RetryBuilder::hint`]) reads a hint from each failed response
//!   or error: HTTP `Retry-After`, `RateLimit` and `X-RateLimit-Reset`
//!   ([`HttpHint`](hint::HttpHint), feature `http`), gRPC `grpc-retry-pushback-ms`
//!   ([`GrpcHint`](hint::GrpcHint), feature `tonic`), or your own. The next
//!   attempt waits at least the hint; a "do not retry" stops
//!   ([`StopReason::DoNotRetry`]), and a hint past the deadline gives up at
//!   once ([`StopReason::HintTooLong`]), never sleeping past it. Turn it
//!   off with [`RetryBuilder::honour_hints`] (`honour_hints = false` in a
//!   config file). See [`hint`].
//! - **A deadline across attempts.** With [`RetryBuilder::deadline`], no
//!   retry is started whose delay would end past it. It is measured on the
//!   layer's [`Clock`](seawall_core::Clock) ([`RetryBuilder::clock`], tokio's
//!   by default), which the budget the builder makes reads too; the backoff
//!   sleep is a tokio timer whatever the clock.
//! - **The error explains itself.** When retrying stops the layer returns a
//!   [`RetryError`] (attempts, [`StopReason`], the last error as `source()`),
//!   except when the first attempt's error was not retryable, which is
//!   returned unchanged. A response classified as a failure is returned as
//!   the `Ok` it is when retrying stops.
//! - **Cheap success path.** Per call: one copy of the request (free for a
//!   `Copy` request, skipped with `max_attempts = 1`), one clone of the
//!   inner service, an `Arc` clone, a counter and, with the budget on, one
//!   atomic add: no clock read (the budget reads it every 64th request;
//!   a `deadline` costs one read per request). No heap allocation for a
//!   `Copy` request (asserted by a test). Giving up costs one allocation,
//!   the `Box` of the [`RetryError`] (asserted); a non-retryable error
//!   passed through costs nothing more.
//! - **Cancellation-safe.** Dropping the response future drops the call in
//!   flight or the backoff timer; nothing is left behind.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use seawall_core::{BoxError, Overloaded, OverloadReason};
//! use seawall_retry::{Backoff, RetryLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let layer = RetryLayer::builder()
//!     .max_attempts(3)
//!     .backoff(Backoff::exponential(Duration::from_millis(10), 2.0).jitter(0.2))
//!     .deadline(Duration::from_secs(1))
//!     .build()
//!     .unwrap();
//!
//! // A shedder below refuses: not retried, and returned unchanged.
//! let svc = ServiceBuilder::new().layer(layer.clone()).service(service_fn(|_: ()| async {
//!     Err::<(), BoxError>(Overloaded::new(OverloadReason::HardLimit).into())
//! }));
//! let err = svc.oneshot(()).await.unwrap_err();
//! assert!(err.is::<Overloaded>());
//! assert_eq!(layer.stats().attempts, 1);
//! # }
//! ```
//!
//! Without tower, a [`Backoff`] is an iterator of delays and a
//! [`RetryBudget`] is two calls, `deposit` and `try_withdraw`:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use seawall_retry::{Backoff, RetryBudget};
//!
//! let budget = RetryBudget::default();
//! let backoff = Backoff::fibonacci(Duration::from_millis(1)).max_delay(Duration::from_millis(20));
//! let mut attempts = 0;
//! budget.deposit();
//! let mut delays = backoff.iter();
//! let result = loop {
//!     attempts += 1;
//!     let result: Result<u32, &str> = if attempts < 3 { Err("busy") } else { Ok(7) };
//!     match result {
//!         Err(_) if attempts < 5 && budget.try_withdraw() => {
//!             tokio::time::sleep(delays.next().unwrap_or_default()).await;
//!         }
//!         other => break other,
//!     }
//! };
//! assert_eq!(result, Ok(7));
//! # }
//! ```
//!
//! # Live reload
//!
//! [`RetryLayer::reload`] applies new attempts, backoff, deadline, hint and
//! budget settings to the running layer and every service it made, keeping
//! its counters and its budget's balance ([`RetryBudget::reload`]).
//!
//! # Composition
//!
//! Put the retry layer *outside* a per-attempt timeout and *outside* a
//! circuit breaker: each attempt gets its own timeout (an `Elapsed` is
//! retried), and the breaker sees every attempt, answering `CircuitOpen`
//! quickly when the peer is down, which the retry layer honours. See
//! `docs/retry.md` for the full discussion.
//!
//! # Feature flags
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `serde`   | `Deserialize` for [`RetryConfig`], [`Backoff`], [`RetryBudgetConfig`] (durations as `"250ms"`) |
//! | `http`    | [`hint::HttpHint`]: hints from HTTP `Retry-After` (seconds and dates), the IETF `RateLimit` reset, `RateLimit-Reset` and `X-RateLimit-Reset` |
//! | `tonic`   | [`hint::GrpcHint`]: hints from gRPC `grpc-retry-pushback-ms` (gRFC A6) |
//! | `metrics` | counters `seawall_retry_attempts_total`, `_retries_total`, `_gave_up_total{reason}`, `_budget_exhausted_total`, `_hinted_total`, labelled `name` |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backoff;
pub mod budget;
pub mod clone;
mod config;
mod error;
pub mod future;
pub mod hint;
mod layer;
#[cfg(feature = "metrics")]
mod metrics;
mod policy;
mod service;
mod stats;

pub use backoff::{Backoff, Delays, Strategy};
pub use budget::{MAX_MIN_PER_SEC, RetryBudget, RetryBudgetConfig};
pub use clone::{ByClone, CloneFn, CloneRequest};
pub use config::{MAX_ATTEMPTS, RetryBuilder, RetryConfig};
pub use error::{RetryError, StopReason};
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::is_retryable;
pub use service::Retry;
pub use stats::RetryStats;

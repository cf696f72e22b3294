//! Adaptive timeouts for tower services: the deadline follows the latency
//! the service actually has.
//!
//! A fixed timeout is either too long (a dead peer holds callers for
//! seconds) or too short (a slow but healthy peer fails). An
//! [`AdaptiveTimeoutLayer`] measures how long calls take and gives each call
//! the deadline
//!
//! ```text
//! deadline = clamp(percentile(p) × multiplier, min, max)
//! ```
//!
//! over the latencies of the last `window` (defaults: p99, × 1.5, 10ms, 10s,
//! 60s; every default is in the table of [`AdaptiveTimeoutConfig`]). Until
//! `min_samples` latencies are in the window (100 by default) the `base`
//! deadline applies (1s).
//!
//! # What it guarantees
//!
//! - **A call that misses its deadline fails with
//!   [`Elapsed`] at the deadline**, boxed as a
//!   [`BoxError`] (tower's convention), with the key of a keyed layer. Within
//!   tokio's timer resolution (1ms), like `tower::timeout::Timeout`.
//! - **A call that completes in time passes through untouched** (its error,
//!   if any, boxed with `Into<BoxError>`).
//! - **Recent means recent**: the window is a ring of 6 interval histograms,
//!   stepped every `window / 6`; a sample counts for between 5/6 of a window
//!   and one window. After the service gets slower or faster, the deadline
//!   has followed within one window (usually much sooner: it is recomputed
//!   every `refresh_every` samples).
//! - **A degrading peer's deadline rises, but only to `max`**: a timed-out
//!   call is recorded as a latency equal to its deadline. Only successful
//!   calls (`Ok`) and timeouts are recorded: a fast error says nothing about
//!   how long a good answer takes.
//! - **Needs a tokio runtime with the timer enabled**, like tower's
//!   `Timeout`: calling the service outside one panics in tokio.
//! - **Cheap per call**: zero heap allocations on the success path; the
//!   deadline is a cached atomic read with one load; the latency is recorded
//!   into one of a few per-thread *recorder shards* (an uncontended lock), not
//!   into a structure every caller locks; the deadline is recomputed off the
//!   per-call path, by whichever call trips a refresh, under a `try_lock`.
//!   A measured call costs two clock reads (start and end), where a fixed
//!   timeout costs one; under high traffic only about one call in
//!   `sample_every` (32) is measured, chosen at random, and the others cost
//!   one clock read, like tower's `Timeout`, and touch no reference count
//!   (they hold only their tracker's number, by which a timeout finds it
//!   again). A rejection costs one allocation, the `Box` of the error.
//! - **Nothing leaks on cancellation**: dropping a response future drops its
//!   timer and records nothing. `poll_ready` only forwards the inner service's
//!   readiness (a timeout reserves nothing).
//! - **No background task**: rotation and refreshes happen lazily on the call
//!   path; [`AdaptiveTimeoutLayer::stats`] brings the window up to date.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seawall_timeout::{AdaptiveTimeoutLayer, DeadlineSource, Elapsed};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let timeout = AdaptiveTimeoutLayer::builder()
//!     .name("inventory")
//!     .percentile(99.0)
//!     .multiplier(2.0)
//!     .min(Duration::from_millis(20))
//!     .max(Duration::from_secs(2))
//!     .base(Duration::from_millis(500))
//!     .min_samples(50)
//!     .build()
//!     .expect("valid config");
//!
//! // A service that takes as long as it is told to.
//! let svc = ServiceBuilder::new()
//!     .layer(timeout.clone())
//!     .service(service_fn(|ms: u64| async move {
//!         tokio::time::sleep(Duration::from_millis(ms)).await;
//!         Ok::<_, std::io::Error>(ms)
//!     }));
//!
//! for _ in 0..50 {
//!     svc.clone().oneshot(40).await.unwrap();
//! }
//! let stats = timeout.stats();
//! assert_eq!(stats.source, DeadlineSource::Adaptive);
//! // p99 = 40ms (within the histogram's 1%), × 2.
//! assert!(stats.deadline >= Duration::from_millis(80) && stats.deadline < Duration::from_millis(81));
//!
//! // A call far slower than usual is cut at the deadline.
//! let err = svc.oneshot(1_000).await.unwrap_err();
//! let elapsed = err.downcast_ref::<Elapsed>().unwrap();
//! assert_eq!(elapsed.after(), stats.deadline);
//! # }
//! ```
//!
//! # One layer, three shapes
//!
//! - [`AdaptiveTimeoutLayer::builder`] / [`AdaptiveTimeoutLayer::from_config`]:
//!   one adaptive deadline for everything the layer wraps (one operation).
//! - [`AdaptiveTimeoutLayer::fixed`] (or `fixed` in the config): a plain
//!   fixed timeout, like `tower::timeout::TimeoutLayer`, with the same error
//!   type and stats, so a stack needs one timeout layer, not two. It measures
//!   nothing and costs what tower's does.
//! - [`AdaptiveTimeoutBuilder::build_keyed`] /
//!   [`KeyedAdaptiveTimeoutLayer::from_config`]: one deadline per key (peer,
//!   host, route) taken out of each request by a
//!   [`KeyFn`](seawall_core::KeyFn); a slow peer never stretches its
//!   neighbours' deadlines. Keys live in a bounded
//!   [`KeyMap`](seawall_core::KeyMap) (`key_capacity`, idle keys evicted
//!   after `key_idle_ttl`).
//!
//! A layer owns its state, created once by `build()`: every service it makes,
//! and all their clones, share it, so the layer's `stats()` sees every call.
//! To get separate deadlines, build separate layers (or use a keyed one).
//!
//! The mechanism is usable without tower: [`DeadlineTracker`] gives the
//! deadline and records latencies.
//!
//! # Memory
//!
//! Histograms are preallocated, cover `0..=2 × max` in microseconds with two
//! significant digits, and hold `u32` counts: about 9.5 KiB each with the
//! default `max` of 10s. A tracker (the layer, or one key of a keyed layer)
//! holds 7 of them (the ring and its sum) plus one per recorder shard: for
//! the unkeyed layer, the number of CPUs rounded up to a power of two, at
//! most 8 (90 to 150 KiB); for one key of a keyed layer, one shard (8
//! histograms, about 76 KiB), since its callers are already spread over the
//! keys. Mind `key_capacity` × that for keyed layers (1000 keys by default).
//!
//! # Observability
//!
//! `tracing` events, target `seawall_timeout`, fields `name` and `key`:
//! INFO when the deadline's source changes (base ↔ adaptive), WARN when the
//! adaptive deadline reaches `max` (INFO when it leaves it), DEBUG when it
//! changes, TRACE per timeout. [`AdaptiveTimeoutStats`] has the deadline,
//! p50/p90/p99/p999 of the window, the sample count and the timeouts.
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `serde` | `Deserialize` for [`AdaptiveTimeoutConfig`] (durations as `"250ms"`, `"30s"`) |
//! | `metrics` | gauge `seawall_timeout_deadline_seconds` (labels `name`, and `key` for keyed layers) updated on every refresh, counter `seawall_timeout_elapsed_total` (label `name`); handles are registered when the layer (or key) is built, so install the recorder first |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod future;
mod histogram;
mod layer;
#[cfg(feature = "metrics")]
mod metrics;
mod service;
mod tracker;
mod window;

pub use config::{AdaptiveTimeoutBuilder, AdaptiveTimeoutConfig, LONGEST_DEADLINE, MAX_SAMPLES};
pub use future::ResponseFuture;
pub use layer::{AdaptiveTimeoutLayer, KeyedAdaptiveTimeoutLayer};
pub use seawall_core::{BoxError, Elapsed};
pub use service::{AdaptiveTimeout, KeyedAdaptiveTimeout};
pub use tracker::{
    AdaptiveTimeoutStats, Claim, DeadlineSource, DeadlineTracker, KeyedClaim, Recorder,
};

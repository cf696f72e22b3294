#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
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
//! - **Needs a tokio runtime with the timer enabled** for a call that is
//!   pending at its first poll, like tower's `Timeout` (outside one, tokio
//!   panics when the timer is set). A call that answers at its first poll
//!   makes no timer.
//! - **Cheap per call**: zero heap allocations on the success path; the
//!   deadline is a cached atomic read with one load; the latency is recorded
//!   into one of a few per-thread *recorder shards* (an uncontended lock), not
//!   into a structure every caller locks; the deadline is recomputed off the
//!   per-call path, by whichever call trips a refresh, under a `try_lock`.
//!   A call reads the clock once (its start) and sets its timer (tokio's
//!   `Sleep`, inline) only if its first poll finds the inner future
//!   pending, for the start plus the deadline. A measured call reads the
//!   clock once more when it ends; under high traffic only about one call
//!   in `sample_every` (32) is measured, chosen at random. A call holds a
//!   reference count on its thread's recorder shard (a cache line other
//!   threads do not normally touch). A rejection costs one allocation, the
//!   `Box` of the error.
//! - **Nothing leaks on cancellation**: dropping a response future drops its
//!   timer and records nothing. `poll_ready` only forwards the inner service's
//!   readiness (a timeout reserves nothing).
//! - **No background task**: rotation and refreshes happen lazily on the call
//!   path; [`AdaptiveTimeoutLayer::stats`] brings the window up to date.
//! - **The caller's deadline is honoured**: inside a
//!   [`Deadline`](seawall_core::Deadline) scope (set by `seawall-deadline`'s
//!   `CallerDeadlineLayer`, or by hand with `Deadline::scope`), a call's
//!   timer is set for the earlier of its own deadline and the caller's
//!   (decided in `call`); when the caller's comes first the call is not a
//!   latency sample (only the calls faster than the caller's deadline could
//!   end under it, so they would pull the percentile down), and if it is
//!   still running at the caller's deadline it ends with
//!   [`DeadlineExceeded`](seawall_core::DeadlineExceeded) marked
//!   [`while_running`](seawall_core::DeadlineExceeded::while_running): not
//!   counted as a timeout, never retried, but a failure to a breaker above.
//!   So when every caller's deadline is shorter than the layer's own, the
//!   timeout learns nothing and stays at `base`. A call made after the
//!   caller's deadline has passed is not started: `DeadlineExceeded` (a
//!   refusal) at once. Cost without a scope: one thread-local read per call.
//! - **A call may ask for its own timeout**: inside a
//!   [`CallTimeout`](seawall_core::deadline::CallTimeout) scope (by hand, or
//!   from an `http` request's extensions with `seawall-deadline`'s
//!   `CallTimeoutLayer`), the call's deadline is that timeout clamped to
//!   `[min, max]` (in fixed mode: at most the fixed deadline) instead of the
//!   learned one. Such a call is not a latency sample, and its expiry
//!   ([`Elapsed`]) is not counted as a timeout of the service. The same
//!   thread-local read gives both the caller's deadline and the call timeout.
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
//! - [`KeyedAdaptiveTimeoutLayer::new`] (with a
//!   [`KeyedAdaptiveTimeoutConfig`]) / [`AdaptiveTimeoutBuilder::build_keyed`]:
//!   one deadline per key (peer, host, route) taken out of each request by a
//!   [`KeyFn`](seawall_core::KeyFn); a slow peer never stretches its
//!   neighbours' deadlines. Keys live in a bounded
//!   [`KeyMap`](seawall_core::KeyMap) (`keys.capacity`, idle keys evicted
//!   after `keys.idle_ttl`).
//!
//! A layer owns its state, created once by `build()`: every service it makes,
//! and all their clones, share it, so the layer's `stats()` sees every call.
//! To get separate deadlines, build separate layers (or use a keyed one).
//!
//! The mechanism is usable without tower: [`DeadlineTracker`] gives the
//! deadline and records latencies.
//!
//! # Live reload
//!
//! [`AdaptiveTimeoutLayer::reload`] and [`KeyedAdaptiveTimeoutLayer::reload`]
//! apply a new percentile, multiplier, clamp, base (or fixed deadline) to the
//! running layer, keeping its latency window: the next call gets the
//! deadline recomputed from the samples held. The window's shape, the name
//! and fixed-versus-adaptive cannot change in place
//! ([`ReloadError::NotInPlace`](seawall_core::ReloadError::NotInPlace)).
//!
//! # Clock
//!
//! Latencies, the window's steps and a key's freshness are readings of the
//! layer's [`Clock`](seawall_core::Clock): tokio's by default (so
//! `tokio::time::pause` and `advance` drive it), another with `.clock(..)`
//! on [the builder](AdaptiveTimeoutBuilder::clock) or on
//! [either](AdaptiveTimeoutLayer::clock)
//! [layer](KeyedAdaptiveTimeoutLayer::clock). The deadline's timer is
//! always tokio's (`tokio::time::Sleep`). So with `Clock::tsc()` (feature
//! `quanta`) latencies are measured on the TSC and the deadline is fired by
//! tokio, at tokio's now plus what is left on the TSC when the timer is
//! set; with `Clock::manual()` latencies and the window move only by hand,
//! and a call that answers at its first poll needs no runtime (a call left
//! pending still times out on tokio's time, which the manual clock does not
//! move). A keyed layer's map of keys reads the layer's clock too.
//!
//! # Memory
//!
//! A layer's own tracker keeps precise histograms: 128 buckets per power of
//! two (an HDR histogram with two significant digits: a percentile is
//! reported at most 0.8% above the true value), covering `0..=2 × max` in
//! microseconds, `u32` counts: about 9.1 KiB each with the default `max` of
//! 10s. It holds 6 (the ring) plus one per recorder shard (the number of
//! CPUs rounded up to a power of two, at most 8): 64 to 128 KiB.
//!
//! **One key of a keyed layer costs under 4 KiB, whatever the config**
//! (3.7 KiB measured over 100 000 keys with the defaults, 3.9 KiB with `max`
//! = 365 days), since keys come from requests and whoever sends them decides
//! how many there are. Its 7 histograms (the ring and one recorder shard)
//! are compact: 8 buckets per power of two, at most 112 buckets (448 bytes),
//! counted in units of `2 × max / 2^16` rounded up to a power of two (512µs
//! with the default `max`). **A key's percentiles, and so its deadline, are
//! at most 12.5% above the true value** (never below it) for latencies of
//! at least 8 units (4.1ms with the default `max`), and within one unit
//! below that: with the defaults, within 12.5% of what a layer's own tracker
//! computes on the same latencies (tested). A larger `max` makes the unit
//! coarser, never a key larger.
//!
//! # Keys: eviction and overflow
//!
//! A key's state is *fresh*, and the key may be evicted (idle for
//! `keys.idle_ttl`, or to make room for a new key), while its deadline is the
//! base one a new key would get: before it has `min_samples` latencies, and
//! again once its window has drained (a window, plus one interval, after its
//! last refresh). A key whose deadline is learned is kept: a flood of new
//! keys cannot make an active peer forget its deadline, and holding a key
//! costs `min_samples` calls through it per window. When a shard of the map
//! is full of such keys, a new key is served by the layer's **overflow
//! deadline**, one tracker shared by every key the map has no room for,
//! which starts at `base` and learns like a key: never no deadline.
//! [`KeyedAdaptiveTimeoutLayer::overflowed`] counts those calls and
//! [`KeyedAdaptiveTimeoutLayer::overflow_stats`] shows that deadline.
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
//! | `serde` | `Deserialize` for [`AdaptiveTimeoutConfig`] and [`KeyedAdaptiveTimeoutConfig`] (durations as `"250ms"`, `"30s"`; the keyed one as `[x.per_key]` and `[x.keys]` tables, `key_metrics` at `[x]`) |
//! | `metrics` | gauge `seawall_timeout_deadline_seconds` (label `name`: the layer's deadline, or a keyed layer's overflow deadline) updated on every refresh; the same gauge with labels `name` and `key` for a key, registered when the key's deadline is first learned (a key that keeps the base deadline registers nothing), updated on every refresh, and set to NaN and never written again when the key is evicted, so the live per-key series are at most `keys.capacity` (an exporter's idle timeout, e.g. metrics-exporter-prometheus's, drops the others); counter `seawall_timeout_elapsed_total` (label `name`). Handles are registered when the layer (or key) is built, so install the recorder first |
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

pub use config::{
    AdaptiveTimeoutBuilder, AdaptiveTimeoutConfig, KeyedAdaptiveTimeoutConfig, LONGEST_DEADLINE,
    MAX_SAMPLES,
};
pub use future::ResponseFuture;
pub use layer::{AdaptiveTimeoutLayer, KeyedAdaptiveTimeoutLayer};
pub use seawall_core::{BoxError, Elapsed};
pub use service::{AdaptiveTimeout, KeyedAdaptiveTimeout};
pub use tracker::{
    AdaptiveTimeoutStats, Claim, DeadlineSource, DeadlineTracker, KeyedClaim, Recorder,
};

#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! Load shedding for tower services: when offered load exceeds capacity,
//! refuse some work at once so that the work accepted still finishes fast.
//!
//! [`ShedLayer`] puts one shedder in front of a service:
//!
//! | mode | what it does | turn it on with |
//! |------|--------------|-----------------|
//! | hard limit | at most `limit` requests in flight; beyond it `Overloaded` at once | `.max_in_flight(n)` (default 100) |
//! | probabilistic band | above `soft_limit`, shed with probability `clamp(in_flight / soft_limit - 1, 0, 1)` | `.soft_limit(n)` |
//! | priorities | [`Priority`] from the request; `Sheddable` goes first, `Critical` keeps a reserved headroom | `.priority(f)`, `.critical_headroom(x)` |
//! | adaptive limit | the limit follows measured latency ([`Limit::Aimd`], [`Limit::Gradient2`], [`Limit::Vegas`]), within `[min, max]`; what counts as a drop is a [`Classify`](seawall_core::Classify) | `.limit(Limit::..)`, `.classify(c)` |
//! | bounded waiting | over the limit, wait up to `max_queue_delay` in a bounded FIFO queue | `.max_queue_delay(d)`, `.queue_capacity(n)` |
//! | memory pressure | above 0.7 of the memory limit shed `Sheddable`, above 0.9 all but `Critical` ([`pressure`]) | `.memory_pressure(cfg)`, `.pressure_signal(s)` |
//!
//! The formulas, the defaults and how to choose limits are in
//! `docs/shed.md`; the limit algorithms are documented in [`limit`].
//!
//! # What it guarantees
//!
//! - **Exact hard limit.** The in-flight count is one atomic word (shared
//!   with the admitted counter), taken by compare-and-swap *after* the
//!   decision: never more than `limit` calls run (`limit <= MAX_LIMIT`,
//!   2^24 - 1).
//! - **Rejections are values.** A shed request gets
//!   [`Overloaded`] from its response future at
//!   once, with a [`reason`](seawall_core::OverloadReason) (`HardLimit`,
//!   `Probabilistic`, `Priority`, `QueueDelay`, `QueueFull`,
//!   `MemoryPressure`) and a
//!   `retry_after`; `poll_ready` never fails for a policy reason, so the
//!   service works under `Buffer` and `Balance`.
//! - **Always ready, like tower's `LoadShed`.** `poll_ready` does not wait
//!   (the queue mode's bounded wait aside): the shedder refuses from the
//!   response future. Unlike the budget's `Wait` mode, it applies no
//!   backpressure; put it above `Balance`, not in each endpoint (`Balance`
//!   picks ready endpoints, and a shedder is always ready).
//! - **One clock seam.** What an adaptive limit measures is read from a
//!   [`Clock`](seawall_core::Clock) ([`ShedBuilder::clock`]; tokio's by
//!   default, so paused time works; a manual clock needs no runtime).
//!   Timers (the queue's delay, the memory sampler) are tokio's.
//! - **Nothing leaks.** The slot travels in a guard inside the response
//!   future: it is released when the inner future completes or when the
//!   response future is dropped. A reservation or a queue entry held by a
//!   service is given back when the service is dropped.
//! - **Cheap hot path.** Admitting allocates nothing (one compare-and-swap
//!   that also counts it, one `Arc` clone for the slot guard); the fixed mode
//!   reads no clock; a [`PressureSignal`] costs one atomic load of a
//!   cached level (memory is sampled by a background task that ends with
//!   the signal); the adaptive modes read the clock twice per call and take
//!   a short `try_lock` once per sampling window, never per call. A rejection allocates exactly once: the `Box` of
//!   tower's `BoxError` (the tower-free [`Shedder`] rejects with none).
//! - **Shared state.** The layer owns the state, created once by `build()`;
//!   every service it makes and every clone share it, so
//!   [`ShedLayer::stats`] sees everything. Build separate layers for
//!   separate limits.
//! - **Live reload.** [`ShedLayer::reload`] (or [`Shedder::reload`]) applies
//!   a new config to the running shedder, all or nothing: limits, the
//!   adaptive limit's parameters and bounds (its estimate kept, clamped),
//!   the band, headroom, queue bounds and memory thresholds change for the
//!   next call; in-flight calls, waiters and counters are kept, and a lower
//!   limit cancels nothing. See [`Shedder::reload`].
//! - **Bounded.** The queue has a capacity (it grows as it fills and never
//!   reserves it); nothing waits longer than `max_queue_delay`, and a
//!   request that did is never admitted. Every size and duration of the
//!   config has a documented bound (`docs/shed.md`, "Bounds"); a value past
//!   it is a `ConfigError` naming the field, and every `retry_after` is at
//!   least 1ms.
//! - **Model-checked hand-over.** A slot released while its waiter gives
//!   up (deadline passed, service dropped) is taken by that waiter and
//!   passed on, or handed to the next, or returned: never lost, never given
//!   twice; a reload that raises the limit while a request joins hands it
//!   the new slot exactly once, and one that lowers it while slots are
//!   released cancels nothing and loses no slot. Checked with
//!   [loom](https://docs.rs/loom) over the queue's interleavings:
//!   `RUSTFLAGS="--cfg seawall_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p seawall-shed --release --lib loom_models`
//!   (a separate `CARGO_TARGET_DIR` keeps the normal build cache).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seawall_core::{OverloadReason, Rejection};
//! use seawall_shed::{Priority, ShedLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), seawall_core::BoxError> {
//! let layer = ShedLayer::builder()
//!     .name("api")
//!     .max_in_flight(1)
//!     .priority(|req: &String| {
//!         if req == "health" { Priority::Critical } else { Priority::Normal }
//!     })
//!     .retry_after(Duration::from_millis(50))
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(layer.clone())
//!     .service(service_fn(|req: String| async move { Ok::<_, std::io::Error>(req.len()) }));
//!
//! // Hold the only slot.
//! let first = svc.ready().await?.call("slow".to_string());
//! // The next call is shed at once.
//! let err = svc.ready().await?.call("fast".to_string()).await.unwrap_err();
//! let Some(Rejection::Overloaded(o)) = Rejection::find(&*err) else { panic!() };
//! assert_eq!(o.reason(), OverloadReason::HardLimit);
//! assert_eq!(o.retry_after(), Some(Duration::from_millis(50)));
//!
//! assert_eq!(first.await?, 4);
//! assert_eq!(layer.stats().shed.hard_limit, 1);
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `serde` | `Deserialize` for [`ShedConfig`] and [`Limit`] (durations as `"250ms"`) |
//! | `metrics` | `seawall_shed_admitted_total`, `seawall_shed_rejected_total{reason}`, `seawall_shed_limit`, `seawall_shed_in_flight` through the `metrics` facade |
//!
//! Tracing: events under target `seawall_shed` with field `name`: `DEBUG`
//! when an adaptive limit changes, `WARN`/`INFO` when memory pressure rises
//! or falls a level, `TRACE` per shed request.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod future;
mod layer;
pub mod limit;
#[cfg(feature = "metrics")]
mod metrics;
pub mod pressure;
mod priority;
mod queue;
mod service;
mod state;
mod stats;
mod sync;
mod window;

pub use config::{ShedBuilder, ShedConfig};
pub use future::ResponseFuture;
pub use layer::ShedLayer;
pub use limit::{Aimd, Gradient2, Limit, Vegas};
pub use pressure::{
    ManualPressure, MemoryPressure, MemoryPressureConfig, MemoryPressureStats, MemorySample,
    MemorySource, PressureLevel, PressureSignal, SystemMemory,
};
pub use priority::{NoPriority, Priority, PriorityFn};
pub use seawall_core::{OverloadReason, Overloaded};
pub use service::Shed;
pub use state::{MAX_LIMIT, Permit, Shedder};
pub use stats::{ShedCounts, ShedStats};

#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! Rate budgets for plain loops and tower services, and bounded queues with
//! an explicit overflow policy.
//!
//! Services die of loops that spin without limit and queues that grow until
//! memory runs out. This crate gives each a bound:
//!
//! - [`LoopBudget`]: at most `rate` iterations per `per` for a plain
//!   `loop {}` (no tower needed), with exponential [`backoff`](LoopBudget::backoff)
//!   and presets ([`LoopBudget::for_network`] 1000/s, [`for_consensus`](LoopBudget::for_consensus)
//!   500/s, [`for_discovery`](LoopBudget::for_discovery) 200/s,
//!   [`for_maintenance`](LoopBudget::for_maintenance) 100/s).
//! - [`BudgetLayer`]: the same budget in front of any `Service`, rejecting
//!   ([`BudgetMode::Reject`]) or applying backpressure ([`BudgetMode::Wait`]);
//!   [`KeyedBudgetLayer`]: one budget per client or peer, in a bounded map
//!   that never forgets a key owing tokens, with one shared overflow budget
//!   for newcomers when it is full.
//! - [`bounded::channel`]: a queue that never holds more than its capacity,
//!   with an [`OverflowPolicy`](bounded::OverflowPolicy) that says what goes
//!   when it is full, and counts it; [`bounded::priority_channel`] gives
//!   each priority its own lane (own capacity and policy), drained highest
//!   first with an anti-starvation rule; [`BoundedLoop`] drains either
//!   within a budget.
//!
//! # What it guarantees
//!
//! - **Smooth**: budgets are GCRA (a token bucket kept as one theoretical
//!   arrival time): one token every `per / rate`, never more than `burst`
//!   at once, so no double burst at a window edge. Over any span `T` at most
//!   `burst + T × rate / per` tokens are admitted.
//! - **Lock-free and cheap**: a token is one clock read and one
//!   compare-exchange on one `AtomicU64` (the success path of a
//!   [`BudgetLayer`] on the TSC clock costs about what governor's direct
//!   check does); no allocation when admitted, and
//!   none when [`LoopBudget::try_consume`] refuses. A [`BudgetLayer`]
//!   rejection costs exactly one allocation: the `Box` of tower's `BoxError`
//!   around [`BudgetExhausted`], which carries
//!   `retry_after` (two for a keyed budget: the key's label is formatted
//!   when it is refused rather than kept with every key).
//! - **Shared**: a layer owns one budget; every service it makes and every
//!   clone share it, and [`BudgetLayer::stats`] sees them all. Build two
//!   layers for two budgets.
//! - **Bounded memory**: queues hold at most `capacity` items and grow as
//!   they fill instead of reserving their bound; keyed budgets hold at most
//!   `keys.capacity` keys of under 100 bytes each, and forget idle ones that owe
//!   nothing. No background task.
//! - **Bounded config**: every capacity is at most 2^24 and every duration
//!   at most 365 days ([`seawall_core::config::MAX_CAPACITY`],
//!   [`MAX_DURATION`](seawall_core::config::MAX_DURATION)); a value past a
//!   bound is a [`ConfigError`] naming its field, never a panic or an abort.
//! - **One clock**: every budget reads a [`Clock`](seawall_core::Clock),
//!   tokio's by default, so tests run with paused time. Builders take another
//!   with `.clock(..)`: a manual clock drives refill, refusals and a keyed
//!   budget's eviction by hand with no runtime; the TSC clock (feature
//!   `quanta`) makes each reading a few nanoseconds. Timers (Wait mode's
//!   parking, [`LoopBudget::backoff`]) are always tokio's; see
//!   [`BudgetBuilder::clock`] for what another clock means for Wait mode.
//! - **Reloadable in place**: [`BudgetLayer::reload`],
//!   [`KeyedBudgetLayer::reload`] and [`LoopBudget::reload`] take a new rate,
//!   `per` and burst for the next call, keeping every budget's tokens
//!   (available ones capped at the new burst, spent ones spent) and its
//!   waiters; a call racing a reload reads the old rate or the new one
//!   whole, without a lock.
//! - **Model-checked**: the GCRA cell's compare-and-swap loops (concurrent
//!   admits never take more than the burst, a cancelled reservation racing
//!   admits gives back only what is still owed, never a token twice) are checked with [loom](https://docs.rs/loom)
//!   over every interleaving:
//!   `RUSTFLAGS="--cfg seawall_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p seawall-budget --release --lib loom_models`
//!   (a separate `CARGO_TARGET_DIR` keeps the normal build cache).
//!
//! # Example
//!
//! ```
//! use seawall_budget::LoopBudget;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let budget = LoopBudget::for_maintenance(); // 100/s, bursts of 10
//! let mut swept = 0;
//! while swept < 30 {
//!     if budget.can_proceed() {
//!         budget.consume(1);
//!         swept += 1;
//!     } else {
//!         budget.backoff().await;
//!     }
//! }
//! assert_eq!(budget.stats().iterations, 30);
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `metrics` | counters through the `metrics` facade: `seawall_budget_admitted_total`, `seawall_budget_exhausted_total` (label `name`), `seawall_budget_dropped_total` (labels `name`, `reason`) |
//! | `serde`   | `Deserialize` for [`LoopBudgetConfig`], [`BudgetConfig`], [`KeyedBudgetConfig`] (tables `per_key` and `keys`), [`BudgetMode`], [`OverflowPolicy`](bounded::OverflowPolicy) and [`PriorityConfig`](bounded::PriorityConfig); durations as `"250ms"` |
//! | `quanta`  | `Clock::tsc` (seawall-core's feature of the same name): budgets that read the CPU's time-stamp counter |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
pub mod bounded;
mod bounded_loop;
mod config;
mod future;
mod gcra;
mod keyed;
mod layer;
mod loop_budget;
#[cfg(feature = "quota")]
mod quota;
mod select;
mod service;
mod sync;

pub use bounded_loop::{BoundedLoop, LoopReport};
pub use config::{
    BudgetBuilder, BudgetConfig, BudgetMode, KeyedBudgetConfig, LoopBudgetBuilder, LoopBudgetConfig,
};
pub use future::ResponseFuture;
pub use keyed::{KeyedBudgetStats, OVERFLOW_KEY};
pub use layer::{BudgetLayer, KeyedBudgetLayer};
pub use loop_budget::{BudgetStats, LoopBudget};
pub use select::{MAX_SELECT_BUDGETS, SelectBudget, SelectBudgetBuilder, SelectBudgetLayer};
pub use service::{Budget, KeyedBudget};

pub use seawall_core::{BudgetExhausted, ConfigError};

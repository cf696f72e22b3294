#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! The shared vocabulary of [seawall](https://docs.rs/seawall): what every
//! seawall layer agrees on, and nothing else.
//!
//! Each seawall mechanism (budget, breaker, shedder, adaptive timeout, retry)
//! lives in its own crate. They never depend on each other; they meet here:
//!
//! - [`classify`]: whether a call's `Result` counts as a success, a failure, or
//!   neither ([`Classify`], [`Outcome`]). The breaker, retry and adaptive
//!   limits all ask the same question.
//! - [`rejection`]: the ways a seawall layer refuses a call
//!   ([`CircuitOpen`], [`Overloaded`], [`BudgetExhausted`], [`Elapsed`],
//!   [`DeadlineExceeded`]) and
//!   one function, [`Rejection::find`], that recognises any of them inside a
//!   boxed error chain, so a retry layer knows not to retry an `Overloaded`
//!   from a shedder three layers down.
//! - [`deadline`]: the caller's [`Deadline`], carried in a task scope so that
//!   every time limit takes the smaller of its own and the caller's, and the
//!   `grpc-timeout` header that carries it between processes.
//! - [`key`]: how a keyed layer takes its key (peer, host, route) out of a
//!   request ([`KeyFn`]), and the bounded, sharded map ([`KeyMap`]) that keyed
//!   layers keep their per-key state in.
//! - [`config`]: [`ConfigError`], returned by every builder in the workspace.
//! - [`clock`]: [`Clock`], where every layer reads the time (tokio's by
//!   default, a manual clock for tests, the TSC with the `quanta` feature).
//! - [`time`]: checked deadline arithmetic for configured durations.
//! - [`rand`]: the small seedable generator layers jitter with.
//! - [`event`]: typed events (a breaker's transitions, a shedder's limit,
//!   a spent budget, …) for subscribers of the process, costing one atomic
//!   load when nobody listens.
//! - [`names`]: the `tracing` targets and `metrics` names every layer reports
//!   under, so that all layers report alike.
//!
//! The [`KeyMap`]'s races (two inserts of one new key, a lookup against an
//! eviction, a held value, the capacity) are model-checked with
//! [loom](https://docs.rs/loom) over every interleaving:
//! `RUSTFLAGS="--cfg seawall_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p seawall-core --release --lib loom_models`
//! (a separate `CARGO_TARGET_DIR` keeps the normal build cache).
//!
//! # Feature flags
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `http`    | [`classify::HttpStatus`] and [`key::ByAuthority`] for `http` requests and responses |
//! | `tonic`   | [`classify::GrpcCode`] for `tonic` results and gRPC-over-HTTP responses |
//! | `metrics` | [`names::describe_metrics`], which describes every seawall metric to the `metrics` facade |
//! | `quanta`  | [`Clock::tsc`], a clock that reads the CPU's time-stamp counter |
//!
//! # Example: asking a boxed error what it is
//!
//! ```
//! use std::time::Duration;
//! use seawall_core::{BoxError, CircuitOpen, Rejection, RejectionKind};
//!
//! let err: BoxError = CircuitOpen::new(Some(Duration::from_secs(3))).with_key("10.0.0.7:443").into();
//! let rejection = Rejection::find(&*err).expect("a seawall rejection");
//! assert_eq!(rejection.kind(), RejectionKind::CircuitOpen);
//! assert_eq!(rejection.key(), Some("10.0.0.7:443"));
//! assert_eq!(rejection.retry_after(), Some(Duration::from_secs(3)));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod attempt;
pub mod classify;
pub mod clock;
pub mod clone;
pub mod config;
pub mod deadline;
pub mod event;
pub mod key;
pub mod names;
pub mod quota;
pub mod rand;
pub mod rejection;
mod sync;
pub mod time;

pub use classify::{Classify, ErrorsAsFailures, Outcome, classify_fn};
pub use clock::{Clock, ManualClock};
pub use config::{ConfigError, FieldError, ReloadError};
pub use deadline::Deadline;
pub use key::{KeyFn, KeyMap, KeyMapConfig};
pub use rejection::{
    BudgetExhausted, CircuitOpen, DeadlineExceeded, Elapsed, KeyLabel, OpenState, OverloadReason,
    Overloaded, Rejection, RejectionKind,
};

/// The error type every seawall layer returns: tower's convention, so layers
/// stack on each other and on tower's own.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

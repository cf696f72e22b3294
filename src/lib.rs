//! # seawall
//!
//! Resilience middleware for [tower] services. Five mechanisms, each a
//! `tower::Layer` in its own crate, that compose with `ServiceBuilder` around
//! any async service, in axum, tonic and hyper servers and clients:
//!
//! | module | crate | what it does |
//! |--------|-------|--------------|
//! | [`budget`] | `seawall-budget` | rate budgets for loops and services, bounded queues |
//! | [`breaker`] | `seawall-breaker` | circuit breaker, keyed per-peer breaker map |
//! | [`shed`] | `seawall-shed` | load shedding: in-flight limits, probabilistic, priorities, adaptive |
//! | [`timeout`] | `seawall-timeout` | adaptive timeouts from live latency percentiles |
//! | [`retry`] | `seawall-retry` | backoff with jitter, retry budget, classification |
//! | [`core`] | `seawall-core` | what they share: classification, rejections, keys, config errors |
//!
//! Every layer refuses work the same way: at once, with a typed error
//! ([`CircuitOpen`], [`Overloaded`], [`BudgetExhausted`], [`Elapsed`]) boxed
//! as tower's `BoxError`, which [`Rejection::find`] recognises anywhere in an
//! error chain.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `budget`, `breaker`, `shed`, `timeout`, `retry` | yes | the mechanism crate of that name |
//! | `http` | no | HTTP status classification, keys from `http::Request` |
//! | `tonic` | no | gRPC status-code classification |
//! | `metrics` | no | reporting through the `metrics` facade |
//! | `axum` | no | [`axum::handle_error`] for `HandleErrorLayer`: rejections as 503/504 responses |
//! | `tonic` | no | [`tonic::to_status`]: rejections as gRPC statuses |
//!
//! [tower]: https://docs.rs/tower
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use seawall_core as core;
pub use seawall_core::{
    BoxError, BudgetExhausted, CircuitOpen, Classify, ConfigError, Elapsed, Outcome, Overloaded,
    Rejection, RejectionKind,
};

#[cfg(feature = "budget")]
#[cfg_attr(docsrs, doc(cfg(feature = "budget")))]
pub use seawall_budget as budget;

#[cfg(feature = "breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
pub use seawall_breaker as breaker;

#[cfg(feature = "shed")]
#[cfg_attr(docsrs, doc(cfg(feature = "shed")))]
pub use seawall_shed as shed;

#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub use seawall_timeout as timeout;

#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use seawall_retry as retry;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod tonic;

/// The names most users need, in one import: `use seawall::prelude::*;`.
pub mod prelude {
    pub use seawall_core::{
        BoxError, BudgetExhausted, CircuitOpen, Classify, ConfigError, Elapsed, Outcome,
        Overloaded, Rejection, RejectionKind,
    };
}

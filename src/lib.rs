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
//! | [`fallback`] | `seawall-fallback` | another service or a closure answers when the inner one refuses or fails (feature `fallback`) |
//! | [`chaos`] | `seawall-chaos` | fault injection: seeded errors, latency and replaced responses, to check the other layers (feature `chaos`) |
//! | [`hedge`] | `seawall-hedge` | a second attempt of a slow request after the live latency percentile, within a budget (feature `hedge`) |
//! | [`deadline`] | `seawall-deadline` | the caller's deadline read from requests, honoured by every time limit, passed downstream (feature `deadline`) |
//! | [`redis`] | `seawall-budget-redis` | a rate budget shared by many replicas, kept in Redis (feature `redis`) |
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
//! | `fallback` | no | the `fallback` module: `FallbackLayer` |
//! | `chaos` | no | the `chaos` module: `ChaosLayer`, off until built, switchable at run time |
//! | `hedge` | no | the `hedge` module: `HedgeLayer` (with `timeout`'s latency window) |
//! | `deadline` | no | the `deadline` module: `CallerDeadlineLayer`, `PropagateDeadlineLayer` |
//! | `redis` | no | the `redis` module: a rate budget shared by replicas through Redis; with `serde`, `backend = "redis"` in a `StackConfig` budget table |
//! | `http` | no | HTTP status classification, keys from `http::Request`; with `serde`, `config::ClientConfig::build_http` |
//! | `tonic` | no | gRPC status-code classification; `tonic::to_status`: rejections as gRPC statuses |
//! | `metrics` | no | reporting through the `metrics` facade, by every enabled mechanism |
//! | `quanta` | no | [`Clock::tsc`]: layers given this clock read the CPU's time-stamp counter, a few nanoseconds a reading |
//! | `serde` | no | `Deserialize` for every enabled mechanism's config; with all five mechanisms, `config::StackConfig`: a whole stack from TOML |
//! | `axum` | no | `axum::handle_error` for `HandleErrorLayer`: rejections as 429/503/504 responses (`axum::StatusMap` to choose); `axum::ByRoute`, a key per matched route |
//!
//! # Composing a stack
//!
//! [`ServiceBuilderExt`] adds each mechanism to tower's `ServiceBuilder` as a
//! method (`.budget(..)`, `.shed(..)`, `.breaker(..)`,
//! `.adaptive_timeout(..)`, `.retries(..)`), beside tower's own
//! `.timeout(..)` and `.concurrency_limit(..)`:
//!
//! ```
//! use seawall::prelude::*;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BoxError> {
//! let svc = ServiceBuilder::new()
//!     .shed(ShedLayer::fixed(256)?)
//!     .budget(BudgetLayer::builder().rate(1_000).build()?)
//!     .breaker(BreakerLayer::builder().build()?)
//!     .service(service_fn(|req: &'static str| async move { Ok::<_, BoxError>(req.len()) }));
//! assert_eq!(svc.oneshot("hello").await?, 5);
//! # Ok(()) }
//! ```
//!
//! With feature `serde`, `config::StackConfig` loads the recommended client
//! and server stacks from one TOML file and builds them, reporting every bad
//! field at once (see `docs/configuration.md`).
//!
//! [tower]: https://docs.rs/tower
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use seawall_core as core;
pub use seawall_core::{
    BoxError, BudgetExhausted, CircuitOpen, Classify, Clock, ConfigError, Elapsed,
    ErrorsAsFailures, KeyMapConfig, ManualClock, OpenState, Outcome, OverloadReason, Overloaded,
    Rejection, RejectionKind,
};
pub use seawall_core::{Deadline, DeadlineExceeded};

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

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use seawall_budget_redis as redis;

#[cfg(feature = "fallback")]
#[cfg_attr(docsrs, doc(cfg(feature = "fallback")))]
pub use seawall_fallback as fallback;
#[cfg(feature = "hedge")]
#[cfg_attr(docsrs, doc(cfg(feature = "hedge")))]
pub use seawall_hedge as hedge;

#[cfg(feature = "chaos")]
#[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
pub use seawall_chaos as chaos;

#[cfg(feature = "deadline")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadline")))]
pub use seawall_deadline as deadline;

pub mod builder;

#[cfg(any(
    feature = "breaker",
    feature = "shed",
    feature = "budget",
    feature = "timeout",
    feature = "retry",
    feature = "hedge",
    feature = "chaos"
))]
pub mod registry;
pub use builder::ServiceBuilderExt;

#[cfg(all(
    feature = "serde",
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(
        feature = "serde",
        feature = "budget",
        feature = "breaker",
        feature = "shed",
        feature = "timeout",
        feature = "retry"
    )))
)]
pub mod config;

#[cfg(any(feature = "axum", feature = "tonic"))]
mod wire;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod tonic;

/// The names most users need, in one import: `use seawall::prelude::*;`.
///
/// The shared vocabulary, [`ServiceBuilderExt`], and the layers (with their
/// configs and the types their builders take) of every enabled mechanism;
/// with `serde` and the five mechanisms, `StackConfig` and the stacks it builds.
pub mod prelude {
    pub use crate::ServiceBuilderExt;
    pub use seawall_core::{
        BoxError, BudgetExhausted, CircuitOpen, Classify, Clock, ConfigError, Elapsed,
        ErrorsAsFailures, KeyFn, KeyMapConfig, OpenState, Outcome, OverloadReason, Overloaded,
        Rejection, RejectionKind, classify_fn,
    };

    #[cfg(feature = "budget")]
    pub use seawall_budget::{
        BudgetConfig, BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget,
    };

    #[cfg(feature = "breaker")]
    pub use seawall_breaker::{
        BreakerConfig, BreakerLayer, CircuitBreaker, KeyedBreakerConfig, KeyedBreakerLayer,
        TripPolicy,
    };

    #[cfg(feature = "shed")]
    pub use seawall_shed::{Limit, Priority, ShedConfig, ShedLayer};

    #[cfg(feature = "timeout")]
    pub use seawall_timeout::{
        AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, KeyedAdaptiveTimeoutLayer,
    };

    #[cfg(feature = "retry")]
    pub use seawall_retry::{Backoff, RetryConfig, RetryLayer};

    #[cfg(feature = "redis")]
    pub use seawall_budget_redis::{FallbackPolicy, RedisBudgetConfig, RedisBudgetLayer};

    #[cfg(feature = "fallback")]
    pub use seawall_fallback::{FallbackConfig, FallbackLayer, FallbackOn};

    #[cfg(feature = "hedge")]
    pub use seawall_hedge::{HedgeConfig, HedgeLayer};

    #[cfg(all(
        feature = "serde",
        feature = "budget",
        feature = "breaker",
        feature = "shed",
        feature = "timeout",
        feature = "retry"
    ))]
    pub use crate::config::{ClientStack, ServerStack, StackConfig};
}

/// The README's example, compiled as a doctest.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "shed",
    feature = "budget",
    feature = "timeout"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

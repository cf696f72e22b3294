#![doc = include_str!("../README.md")]
//!
//! # What it guarantees
//!
//! - **Per peer.** The breaker and the timeout are keyed by the request's
//!   authority ([`ByAuthority`]: lower-case host, explicit port, IPv6 in
//!   brackets, no userinfo, at most a 253-byte name): one failing host is
//!   cut off, the others are not, and a hostile URL cannot make a key of
//!   any size.
//! - **Failures as HTTP sees them.** `5xx` and `429` responses, and
//!   transport errors, are failures ([`ResponseStatus`], the table of
//!   seawall-core's `HttpStatus`); a response is returned as a response.
//! - **Retries a peer can steer, within bounds.** A retry waits at least the
//!   peer's `Retry-After` or `RateLimit` reset ([`ResponseHint`]), never
//!   past the retry's deadline or backoff cap; retries draw on a retry
//!   budget, and refusals that say "back off" are never retried.
//! - **Bodies are never sent twice by accident.** A request whose body
//!   cannot be copied (`try_clone()` is `None`, a streaming body) is sent
//!   once: not retried, not given to the fallback.
//! - **Typed refusals.** A refused request ends at once with a
//!   `reqwest_middleware::Error::Middleware` holding a [`StackError`];
//!   [`Rejection::find`](seawall_core::Rejection::find) on the error finds
//!   the `CircuitOpen`, `Elapsed`, `BudgetExhausted`… with its key and
//!   `retry_after`. The request's own errors come back unchanged.
//! - **Cancellation.** Dropping the request's future drops the attempt in
//!   flight and the backoff timer, and gives back the breaker's probe slot
//!   and the retry's token, as the tower layers do.
//!
//! # A crate, not a facade feature
//!
//! reqwest and reqwest-middleware are pre-1.0 and release breaking versions
//! on their own cadence; this crate's public API is their types
//! (`Middleware`, `Request`, `Response`). As a feature of the facade, each
//! of their breaking releases would be a breaking release of `seawall`.
//! As its own crate it can follow them alone, and the facade stays free of
//! HTTP client dependencies. The dependency points one way: this crate is
//! built from the mechanism crates' configs; with the `config` feature it
//! also depends on the facade, to read the `[client]` part of a
//! `StackConfig` ([`SeawallMiddleware::from_config`]); the facade never
//! depends on it.
//!
//! # Cost
//!
//! reqwest-middleware boxes every middleware's future (`async_trait`); this
//! one adds, per request, one more box per attempt (the attempt holds the
//! request's `Extensions`, shared by all its attempts), one small
//! allocation for the key, and the layers' own per-call work. The bench
//! `reqwest` in the workspace's bench suite measures it against bare
//! reqwest-middleware on a loopback peer.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
#[cfg(feature = "config")]
mod config;
mod error;
mod key;
mod middleware;
mod service;

pub use classify::{ResponseHint, ResponseStatus, TryClone};
pub use error::StackError;
pub use key::ByAuthority;
pub use middleware::{
    AnswerFn, MiddlewareBuilder, ReqwestBreakerLayer, ReqwestFallbackLayer, ReqwestRetryLayer,
    ReqwestTimeoutLayer, SeawallMiddleware,
};

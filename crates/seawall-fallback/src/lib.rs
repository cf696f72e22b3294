#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! A fallback for tower services: when the inner service fails, answer from
//! a backup — another `Service` or a closure — instead.
//!
//! A seawall layer that refuses a call (an open breaker, a shedder, a spent
//! budget, a deadline) makes the refusal fast; [`FallbackLayer`] decides what
//! the caller gets instead: a replica, a cache, a default, a degraded answer.
//!
//! # What [`FallbackLayer`] guarantees
//!
//! - **When** is a [`Classify`](seawall_core::Classify) over the inner result
//!   (error boxed): by default [`FallbackOn::Rejection`], only a seawall
//!   rejection found anywhere in the error's `source()` chain
//!   ([`Rejection::find`](seawall_core::Rejection::find)); or
//!   [`FallbackOn::Failure`], any error; or your own classifier (an HTTP 503
//!   in an `Ok`, which the backup then sees as [`FailedResponse`]). Other
//!   results pass through unchanged.
//! - **What** answers is a [`Backup`]: [`ServiceBackup`] (another service,
//!   cloned for each fallback and driven to readiness in the response
//!   future, so `poll_ready` reports only the inner service) or [`FnBackup`]
//!   (a closure `Fn(Req, BoxError) -> Result<Res, E>`). The backup's answer,
//!   `Ok` or `Err`, is what the caller gets.
//! - **Requests are copied before the call**, as seawall-retry copies them:
//!   [`ByClone`] by default, or any `Fn(&Req) -> Option<Req>` through
//!   [`FallbackBuilder::clone_with`]. A request that cannot be copied is
//!   still sent; if it fails, its original error is returned (never a
//!   panic) and [`FallbackStats::not_cloneable`] counts it.
//! - **Cheap success path**: one copy of the request, one `Arc` clone and
//!   one classification; no clock read, no shared write, no heap allocation
//!   for a `Copy` (or `Arc`) request (asserted by allocation counts in
//!   `tests/allocations.rs`). The response future is a named
//!   pin-project-lite type, never boxed.
//! - **Cancellation-safe**: dropping the response future drops the inner
//!   call or the backup's call, whichever is running; nothing is left
//!   behind.
//!
//! # Fallback or retry?
//!
//! Retry sends the *same* request to the *same* service again, later; it
//! helps with transient failures and must back off. A fallback answers
//! *now*, from somewhere else; it is what to do when retrying is pointless
//! (the breaker is open) or too slow. Stack them as
//! `Fallback(Retry(Breaker(service)))`: retries first, then the fallback
//! when the breaker or the retry gives up. To send a request to *another
//! peer* of the same kind, use the peer selection of `seawall-breaker`,
//! which knows each peer's breaker.
//!
//! # Example: a backup service
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use seawall_core::{BoxError, Overloaded, OverloadReason};
//! use seawall_fallback::{FallbackLayer, FallbackOn};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let primary = service_fn(|_: u32| async {
//!     Err::<&str, BoxError>(Overloaded::new(OverloadReason::HardLimit).into())
//! });
//! let replica = service_fn(|_: u32| async { Ok::<_, BoxError>("from the replica") });
//! let layer = FallbackLayer::builder().service(replica).build().unwrap();
//! let svc = ServiceBuilder::new().layer(layer.clone()).service(primary);
//! assert_eq!(svc.oneshot(7).await.unwrap(), "from the replica");
//!
//! // With `FallbackOn::Rejection` (the default) a plain error passes through.
//! let broken = service_fn(|_: u32| async { Err::<&str, BoxError>("disk on fire".into()) });
//! let svc = ServiceBuilder::new().layer(layer.clone()).service(broken);
//! assert_eq!(svc.oneshot(7).await.unwrap_err().to_string(), "disk on fire");
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `metrics` | counters [`FALLBACK_USED_TOTAL`], [`FALLBACK_FAILED_TOTAL`] and [`FALLBACK_NOT_COPIED_TOTAL`] (label `name`) through the `metrics` facade |
//! | `serde` | `Deserialize` for [`FallbackConfig`] and [`FallbackOn`] (`on = "failure"`) |
//!
//! [`FALLBACK_USED_TOTAL`]: seawall_core::names::FALLBACK_USED_TOTAL
//! [`FALLBACK_FAILED_TOTAL`]: seawall_core::names::FALLBACK_FAILED_TOTAL
//! [`FALLBACK_NOT_COPIED_TOTAL`]: seawall_core::names::FALLBACK_NOT_COPIED_TOTAL
//!
//! # Observability
//!
//! Each fallback emits a `DEBUG` event with target `seawall_fallback`
//! ([`TARGET_FALLBACK`](seawall_core::names::TARGET_FALLBACK)) and fields
//! `name`, `error` (a fallback is a per-call event, not a state change, so it
//! is never logged above `DEBUG`); [`FallbackLayer::stats`] counts
//! fallbacks, uncopyable requests and failed backups, and with feature
//! `metrics` the same three are counters labelled with the layer's `name`
//! (`seawall_fallback_used_total`, `seawall_fallback_not_copied_total`,
//! `seawall_fallback_failed_total`). Their handles are made once, when the
//! layer is built, with the recorder installed then.
//!
//! # Time
//!
//! The layer reads no clock on its calls: it has no `Clock` to set. While
//! an event subscriber listens (`seawall_core::event`), a fallback reads
//! tokio's clock to send `FallbackUsed` at most once a second.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backup;
mod clone;
mod config;
mod error;
mod future;
mod layer;
mod service;

pub use backup::{Backup, FnBackup, ServiceBackup, ServiceBackupFuture};
pub use clone::{ByClone, CloneFn, CloneRequest};
pub use config::{FallbackBuilder, FallbackConfig, FallbackOn, NoBackup};
pub use error::FailedResponse;
pub use future::ResponseFuture;
pub use layer::{FallbackLayer, FallbackStats};
pub use service::Fallback;

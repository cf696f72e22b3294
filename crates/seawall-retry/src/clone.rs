//! How a request is copied for a possible retry.
//!
//! The inner service takes the request by value, so a retry needs a copy
//! made *before* the first call. [`Retry`](crate::Retry) asks its
//! [`CloneRequest`] for one on every call when `max_attempts > 1` (and again
//! before each retry that may be followed by another): the success path pays
//! exactly one clone of the request, and nothing for a `Copy` request.
//!
//! - [`ByClone`] (the default) uses `Clone`, so the default layer needs
//!   `Req: Clone`.
//! - [`CloneFn`] (from [`RetryBuilder::clone_with`](crate::RetryBuilder::clone_with))
//!   takes any `Fn(&Req) -> Option<Req>`: requests need not be `Clone`, and
//!   one that cannot be copied (a streaming body) returns `None`. Such a
//!   request is sent once and not retried: its result is passed through
//!   unchanged, it never panics, and [`RetryStats::not_cloneable`](crate::RetryStats::not_cloneable)
//!   counts it.
//!
//! The types are seawall-core's, shared with the other layers that resend
//! requests.

pub use seawall_core::clone::{ByClone, CloneFn, CloneRequest};

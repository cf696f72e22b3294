//! How a request is copied for a possible fallback.
//!
//! The inner service takes the request by value, so the fallback needs a copy
//! made *before* the inner call: [`Fallback`](crate::Fallback) asks its
//! [`CloneRequest`] for one on every call. The success path pays exactly that
//! one copy (nothing for a `Copy` request, a reference count for an `Arc`).
//!
//! - [`ByClone`] (the default) uses `Clone`.
//! - [`CloneFn`] (from [`FallbackBuilder::clone_with`](crate::FallbackBuilder::clone_with))
//!   takes any `Fn(&Req) -> Option<Req>`: requests need not be `Clone`, and
//!   one that cannot be copied (a streaming body) returns `None`. When such a
//!   request fails, its original error is returned unchanged (never a panic)
//!   and [`FallbackStats::not_cloneable`](crate::FallbackStats::not_cloneable)
//!   counts it.
//!
//! The types are seawall-core's, shared with the other layers that resend
//! requests.

pub use seawall_core::clone::{ByClone, CloneFn, CloneRequest};

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

/// Makes the copy of a request that a retry will send.
pub trait CloneRequest<Req> {
    /// A copy of `req`, or `None` if it cannot be copied (it is then sent
    /// once and not retried).
    fn clone_request(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with `Clone` (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByClone;

impl<Req: Clone> CloneRequest<Req> for ByClone {
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Copies requests with a closure; see [`RetryBuilder::clone_with`](crate::RetryBuilder::clone_with).
#[derive(Clone, Copy)]
pub struct CloneFn<F> {
    f: F,
}

impl<F> CloneFn<F> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        CloneFn { f }
    }
}

impl<F> std::fmt::Debug for CloneFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloneFn").finish_non_exhaustive()
    }
}

impl<Req, F> CloneRequest<Req> for CloneFn<F>
where
    F: Fn(&Req) -> Option<Req>,
{
    fn clone_request(&self, req: &Req) -> Option<Req> {
        (self.f)(req)
    }
}

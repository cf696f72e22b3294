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
//! These mirror seawall-retry's types of the same names: mechanism crates do
//! not depend on each other, and the trait is four lines.

/// Makes the copy of a request that a fallback will receive.
pub trait CloneRequest<Req> {
    /// A copy of `req`, or `None` if it cannot be copied (its failure is then
    /// returned unchanged).
    fn clone_request(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with `Clone` (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByClone;

impl<Req: Clone> CloneRequest<Req> for ByClone {
    #[inline]
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Copies requests with a closure; see [`FallbackBuilder::clone_with`](crate::FallbackBuilder::clone_with).
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
    #[inline]
    fn clone_request(&self, req: &Req) -> Option<Req> {
        (self.f)(req)
    }
}

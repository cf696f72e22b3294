//! How a layer copies a request it may need to send again.
//!
//! A service takes its request by value, so a layer that may send a request
//! a second time — a retry, a fallback — needs a copy made *before* the first
//! call. Such layers take a [`CloneRequest`]:
//!
//! - [`ByClone`] (their default) uses `Clone`: nothing for a `Copy` request,
//!   a reference count for an `Arc`.
//! - [`CloneFn`] copies with a closure, for requests that are not `Clone`
//!   (an `http::Request` with a body that can be buffered): it returns `None`
//!   for one that cannot be copied (a streaming body). The layer then sends
//!   that request once and never panics; each layer's docs say what it does
//!   instead.
//!
//! ```
//! use seawall_core::clone::{ByClone, CloneFn, CloneRequest};
//!
//! assert_eq!(ByClone.clone_request(&7), Some(7));
//! let only_small = CloneFn::new(|v: &Vec<u8>| (v.len() <= 4).then(|| v.clone()));
//! assert_eq!(only_small.clone_request(&vec![1, 2]), Some(vec![1, 2]));
//! assert_eq!(only_small.clone_request(&vec![0; 64]), None);
//! ```

/// Makes the copy of a request that a layer may send again.
pub trait CloneRequest<Req> {
    /// A copy of `req`, or `None` if it cannot be copied.
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

/// Copies requests with a closure returning `None` for a request that
/// cannot be copied.
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

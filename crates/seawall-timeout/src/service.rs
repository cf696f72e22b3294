//! The services: [`AdaptiveTimeout`] and [`KeyedAdaptiveTimeout`].
//!
//! `poll_ready` forwards the inner service's readiness (a timeout reserves
//! nothing); `call` reads the deadline (one atomic load), starts the clock
//! and returns a [`ResponseFuture`].

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::deadline::{Deadline, Limits};
use seawall_core::{BoxError, KeyFn};
use tokio::time::Instant;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::KeyedShared;
use crate::tracker::{AdaptiveTimeoutStats, DeadlineTracker, KeyedClaim};

/// A service with an adaptive (or fixed) deadline; made by
/// [`AdaptiveTimeoutLayer`](crate::AdaptiveTimeoutLayer).
#[derive(Clone, Debug)]
pub struct AdaptiveTimeout<S> {
    inner: S,
    tracker: Arc<DeadlineTracker>,
    // Fixed mode: every call's deadline is the tracker's fixed one (one
    // load, no sampling; a reload may change it).
    fixed: bool,
}

impl<S> AdaptiveTimeout<S> {
    pub(crate) fn new(inner: S, tracker: Arc<DeadlineTracker>) -> Self {
        let fixed = !tracker.is_adaptive();
        AdaptiveTimeout {
            inner,
            tracker,
            fixed,
        }
    }

    /// A snapshot of the deadline and the latency window (shared with the
    /// layer and every service it made).
    pub fn stats(&self) -> AdaptiveTimeoutStats {
        self.tracker.stats()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for AdaptiveTimeout<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        let limits = Limits::current();
        let caller = limits.deadline;
        if let Some(past) = caller.and_then(passed) {
            return ResponseFuture::refused(past, self.tracker.claim());
        }
        let mut deadline = if self.fixed {
            self.tracker.fixed_deadline()
        } else {
            self.tracker.start()
        };
        if let Some(asked) = limits.timeout {
            let clamp = self.tracker.clamp();
            // In fixed mode a caller's timeout may only shorten the fixed
            // deadline.
            let clamp = if self.fixed {
                let fixed = deadline & (u64::MAX >> 3);
                [clamp[0].min(fixed), fixed]
            } else {
                clamp
            };
            deadline = asked_for(asked, clamp);
        }
        if let Some(caller) = caller {
            deadline = binding(caller, deadline);
        }
        let claim = self.tracker.claim();
        let start = self.tracker.began();
        ResponseFuture::new(self.inner.call(req), deadline, claim, start, caller)
    }
}

/// A service with one adaptive deadline per key; made by
/// [`KeyedAdaptiveTimeoutLayer`](crate::KeyedAdaptiveTimeoutLayer).
pub struct KeyedAdaptiveTimeout<S, F, K> {
    inner: S,
    key_fn: Arc<F>,
    shared: Arc<KeyedShared<K>>,
}

impl<S: Clone, F, K> Clone for KeyedAdaptiveTimeout<S, F, K> {
    fn clone(&self) -> Self {
        KeyedAdaptiveTimeout {
            inner: self.inner.clone(),
            key_fn: self.key_fn.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, F, K> fmt::Debug for KeyedAdaptiveTimeout<S, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAdaptiveTimeout")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<S, F, K> KeyedAdaptiveTimeout<S, F, K> {
    pub(crate) fn new(inner: S, key_fn: Arc<F>, shared: Arc<KeyedShared<K>>) -> Self {
        KeyedAdaptiveTimeout {
            inner,
            key_fn,
            shared,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the wrapper, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, F, K, Req> Service<Req> for KeyedAdaptiveTimeout<S, F, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: KeyFn<Req, Key = K>,
    K: Hash + Eq + fmt::Display,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, KeyedClaim>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let limits = Limits::current();
        let caller = limits.deadline;
        let key = self.key_fn.key(&req);
        let (mut deadline, claim) = match self.shared.tracker(key) {
            Ok(tracker) => (tracker.start(), KeyedClaim::new(&tracker)),
            Err(()) => {
                let overflow = self.shared.overflow();
                (overflow.start(), KeyedClaim::new(overflow))
            }
        };
        if let Some(asked) = limits.timeout {
            deadline = asked_for(asked, self.shared.clamp());
        }
        // Every key's tracker reads the layer's clock.
        if let Some(past) = caller.and_then(passed) {
            return ResponseFuture::refused(past, claim);
        }
        if let Some(caller) = caller {
            deadline = binding(caller, deadline);
        }
        let start = crate::tracker::began(&self.shared.clock);
        ResponseFuture::new(self.inner.call(req), deadline, claim, start, caller)
    }
}

/// How long ago the caller's deadline passed, if it has: such a call is not
/// started.
#[inline]
fn passed(caller: Deadline) -> Option<std::time::Duration> {
    let now = Instant::now();
    (caller.instant() <= now).then(|| now.saturating_duration_since(caller.instant()))
}

/// The deadline of a call whose caller asked for `asked`
/// ([`CallTimeout`](seawall_core::deadline::CallTimeout)), clamped to the
/// layer's bounds, packed, marked `ASKED`; not measured: a latency sample
/// cut at a deadline the caller chose would say more about the caller than
/// the service, and its expiry is not counted as a timeout of the service.
#[cold]
#[inline(never)]
fn asked_for(asked: std::time::Duration, clamp: [u64; 2]) -> u64 {
    crate::tracker::pack(asked).clamp(clamp[0], clamp[1]) | crate::future::ASKED
}

/// `deadline` (packed), marked `CALLER` when the caller's deadline comes
/// before the call's own: decided here, at the start, so that a call ready
/// at its first poll is judged like one that is not.
#[cold]
#[inline(never)]
fn binding(caller: Deadline, deadline: u64) -> u64 {
    let own = crate::tracker::unpack(deadline & (u64::MAX >> 3));
    if caller.instant() < seawall_core::time::deadline(Instant::now(), own) {
        deadline | crate::future::CALLER
    } else {
        deadline
    }
}

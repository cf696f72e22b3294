//! [`Hedge`]: the service a [`HedgeLayer`](crate::HedgeLayer) wraps around
//! another.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::BoxError;
use seawall_core::attempt::{self, Attempt};
use seawall_core::classify::{Classify, ErrorsAsFailures};
use seawall_core::clone::{ByClone, CloneRequest};
use seawall_timeout::DeadlineTracker;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::stats::HedgeStats;

/// Hedges the calls of `S`; from [`HedgeLayer`](crate::HedgeLayer).
///
/// `S` must be `Clone`: the service made ready by [`poll_ready`](Service::poll_ready)
/// makes the first attempt and goes into the response future, where it is
/// driven ready again (`poll_ready`, then `call`, like tower's `Oneshot`)
/// when a hedge is due; the service keeps a fresh clone for the next call.
///
/// That clone is made on every hedged call, so its cost is the call's: a
/// service that is a reference count, or a `Copy` value, clones without
/// allocating. Not every handle does: tower's `Buffer` clones its sender
/// as a `PollSender`, which boxes a future on every clone, so hedging over
/// a `Buffer` allocates on every call, hedge sent or not. The no-allocation
/// guarantee of a call that sends no hedge holds for an inner service
/// whose clone does not allocate.
pub struct Hedge<S, P = ByClone, C = ErrorsAsFailures> {
    inner: S,
    shared: Arc<Shared>,
    policy: P,
    classify: C,
}

impl<S: Clone, P: Clone, C: Clone> Clone for Hedge<S, P, C> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            policy: self.policy.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, P, C> fmt::Debug for Hedge<S, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl<S, P, C> Hedge<S, P, C> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, policy: P, classify: C) -> Self {
        Hedge {
            inner,
            shared,
            policy,
            classify,
        }
    }

    /// A snapshot of the layer's counters, delay and budget (shared by every
    /// service of one layer).
    pub fn stats(&self) -> HedgeStats {
        self.shared.stats()
    }

    pub(crate) fn parts(&mut self) -> (&mut S, &Arc<Shared>, &P, &C) {
        (&mut self.inner, &self.shared, &self.policy, &self.classify)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, P, C, Req> Service<Req> for Hedge<S, P, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: CloneRequest<Req> + Clone,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, P, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        start(
            &mut self.inner,
            &self.shared,
            &self.policy,
            &self.classify,
            req,
            None,
        )
    }
}

/// Starts a call: the first attempt now, the hedge's service, copy and
/// timer into the future. `key` is a keyed layer's tracker for the
/// request's key.
pub(crate) fn start<S, Req, P, C>(
    inner: &mut S,
    shared: &Arc<Shared>,
    policy: &P,
    classify: &C,
    req: Req,
    key: Option<Arc<DeadlineTracker>>,
) -> ResponseFuture<S, Req, P, C>
where
    S: Service<Req> + Clone,
    P: CloneRequest<Req> + Clone,
    C: Clone,
{
    shared.budget.deposit();
    if shared.max_hedges == 0 {
        return ResponseFuture::once(inner.call(req));
    }
    let Some(copy) = policy.clone_request(&req) else {
        shared.not_cloneable();
        return ResponseFuture::once(inner.call(req));
    };
    // The ready service makes the first attempt and is kept for the
    // hedge; the caller's service keeps a clone for its next poll_ready.
    let clone = inner.clone();
    let mut ready = std::mem::replace(inner, clone);
    let (first, peer) = attempt::scope(Attempt::first(), || ready.call(req));
    let tracker = key.as_deref().unwrap_or(&shared.tracker);
    let delay = tracker.deadline();
    let measured = tracker.should_measure().then(|| tracker.clock().nanos());
    ResponseFuture::hedged(
        first,
        peer,
        ready,
        copy,
        delay,
        measured,
        shared.clone(),
        key,
        policy.clone(),
        classify.clone(),
    )
}

//! [`Chaos`]: the tower service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::BoxError;
use seawall_core::names::TARGET_CHAOS;
use tower_service::Service;

use crate::control::{Control, Fault};
use crate::future::ResponseFuture;
use crate::inject::{InjectError, InjectOutcome, Select};
use crate::layer::Inject;

/// A service that injects faults into a share of its calls; made by
/// [`ChaosLayer`](crate::ChaosLayer).
///
/// `poll_ready` reports the inner service's readiness, unchanged: chaos
/// reserves nothing. When a fault placed [`Before`](crate::Placement::Before)
/// skips the inner call, whatever the inner service reserved in its
/// `poll_ready` stays with it for the next call, as with tower's `Filter`
/// when its predicate rejects a request after the inner service reported
/// ready. (tower's `LoadShed` is not such a case: it sheds only when the
/// inner service is *not* ready, so it never holds a reservation then.)
pub struct Chaos<S, E, O, P> {
    inner: S,
    control: Arc<Control>,
    inject: Arc<Inject<E, O, P>>,
}

impl<S: Clone, E, O, P> Clone for Chaos<S, E, O, P> {
    fn clone(&self) -> Self {
        Chaos {
            inner: self.inner.clone(),
            control: self.control.clone(),
            inject: self.inject.clone(),
        }
    }
}

impl<S: fmt::Debug, E, O, P> fmt::Debug for Chaos<S, E, O, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("inner", &self.inner)
            .field("enabled", &self.control.is_enabled())
            .finish_non_exhaustive()
    }
}

impl<S, E, O, P> Chaos<S, E, O, P> {
    pub(crate) fn new(inner: S, control: Arc<Control>, inject: Arc<Inject<E, O, P>>) -> Self {
        Chaos {
            inner,
            control,
            inject,
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

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, E, O, P, Req> Service<Req> for Chaos<S, E, O, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    E: InjectError<Req>,
    O: InjectOutcome<Req, S::Response>,
    P: Select<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // Disabled: one relaxed load, then the inner call as it is.
        if !self.control.is_enabled() || !self.inject.select.select(&req) {
            return ResponseFuture::pass(self.inner.call(req));
        }
        let decision = self.control.decide();
        let answer = match decision.fault {
            None => None,
            Some(Fault::Error) => Some(Err(self.inject.error.error(&req))),
            Some(Fault::Outcome) => self.inject.outcome.outcome(&req).map(Ok),
        };
        if decision.delay.is_some() || answer.is_some() {
            tracing::trace!(
                target: TARGET_CHAOS,
                delay = ?decision.delay,
                fault = ?decision.fault,
                after = decision.after,
                "injecting"
            );
        }
        match (decision.after, answer, decision.delay) {
            (_, None, None) => ResponseFuture::pass(self.inner.call(req)),
            // Before: the answer replaces the call; the inner service is not called.
            (false, Some(answer), delay) => ResponseFuture::answer(answer, delay),
            (false, None, Some(delay)) => ResponseFuture::delay_first(self.inner.call(req), delay),
            (true, answer, delay) => ResponseFuture::after(self.inner.call(req), answer, delay),
        }
    }
}

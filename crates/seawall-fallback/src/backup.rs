//! What answers when the inner service fails: a [`Backup`].
//!
//! - [`ServiceBackup`]: another `Service` (a replica, a cache, a degraded
//!   read path) called with the copied request. It is cloned for each
//!   fallback and driven to readiness inside the response future, so the
//!   [`Fallback`](crate::Fallback) service's `poll_ready` reports only the
//!   inner service's readiness.
//! - [`FnBackup`]: a closure making the answer from the request and the
//!   error (a default value, a cached answer, a typed "degraded" response).
//!
//! Implement [`Backup`] for anything else.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::BoxError;
use tower_service::Service;

/// Makes the fallback answer for a request whose inner call failed.
pub trait Backup<Req> {
    /// The answer: the inner service's response type.
    type Response;
    /// The future of the answer.
    type Future: Future<Output = Result<Self::Response, BoxError>>;

    /// Answers `req`, whose inner call failed with `error`.
    fn answer(&self, req: Req, error: BoxError) -> Self::Future;
}

/// A [`Backup`] that sends the request to another service; see
/// [`FallbackBuilder::service`](crate::FallbackBuilder::service).
#[derive(Clone, Debug)]
pub struct ServiceBackup<S> {
    service: S,
}

impl<S> ServiceBackup<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        ServiceBackup { service }
    }

    /// The backup service.
    pub fn get_ref(&self) -> &S {
        &self.service
    }
}

impl<S, Req> Backup<Req> for ServiceBackup<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Future = ServiceBackupFuture<S, Req>;

    fn answer(&self, req: Req, _error: BoxError) -> Self::Future {
        ServiceBackupFuture {
            state: Call::Waiting {
                service: self.service.clone(),
                req: Some(req),
            },
        }
    }
}

pin_project! {
    /// The future of a [`ServiceBackup`]'s answer: waits for the backup
    /// service to be ready, then calls it.
    pub struct ServiceBackupFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: Call<S, Req, S::Future>,
    }
}

pin_project! {
    #[project = CallProj]
    enum Call<S, Req, F> {
        Waiting { service: S, req: Option<Req> },
        Called { #[pin] fut: F },
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ServiceBackupFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            Call::Waiting { .. } => "waiting",
            Call::Called { .. } => "called",
        };
        f.debug_struct("ServiceBackupFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, Req> Future for ServiceBackupFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                CallProj::Waiting { service, req } => {
                    ready!(service.poll_ready(cx)).map_err(Into::into)?;
                    let Some(req) = req.take() else {
                        // Only reachable if polled again after a panic in
                        // `call`; answer with an error rather than a panic.
                        return Poll::Ready(Err("fallback polled after its call panicked".into()));
                    };
                    let fut = service.call(req);
                    state.set(Call::Called { fut });
                }
                CallProj::Called { fut } => return fut.poll(cx).map_err(Into::into),
            }
        }
    }
}

/// A [`Backup`] made from a closure `Fn(Req, BoxError) -> Result<Res, E>`;
/// see [`FallbackBuilder::answer_with`](crate::FallbackBuilder::answer_with).
#[derive(Clone, Copy)]
pub struct FnBackup<F> {
    f: F,
}

impl<F> FnBackup<F> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        FnBackup { f }
    }
}

impl<F> fmt::Debug for FnBackup<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnBackup").finish_non_exhaustive()
    }
}

impl<F, Req, Res, E> Backup<Req> for FnBackup<F>
where
    F: Fn(Req, BoxError) -> Result<Res, E>,
    E: Into<BoxError>,
{
    type Response = Res;
    type Future = Ready<Result<Res, BoxError>>;

    fn answer(&self, req: Req, error: BoxError) -> Self::Future {
        ready((self.f)(req, error).map_err(Into::into))
    }
}

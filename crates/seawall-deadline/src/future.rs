//! The response futures of the two layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, DeadlineExceeded};
use tokio::time::Sleep;
use tower_service::Service;

pin_project! {
    /// The response future of [`CallerDeadline`](crate::CallerDeadline):
    /// waits for the inner service (a clone of it) to be ready, calls it and
    /// polls its future, all in the caller's deadline scope; when the
    /// deadline passes first, drops the work and ends with
    /// [`DeadlineExceeded`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct CallerFuture<S, Req, F> {
        #[pin]
        state: CallerState<S, Req, F>,
        #[pin]
        sleep: Option<Sleep>,
        deadline: Option<Deadline>,
    }
}

pin_project! {
    #[project = CallerProj]
    #[derive(Debug)]
    enum CallerState<S, Req, F> {
        // The inner service's readiness, then its call.
        Readying { service: S, request: Option<Req> },
        Called { #[pin] future: F },
        Refused { error: Option<DeadlineExceeded> },
        Done,
    }
}

impl<S, Req, F> CallerFuture<S, Req, F> {
    /// A call of `service` with `request`, inside `deadline` if any.
    pub(crate) fn new(service: S, request: Req, deadline: Option<Deadline>) -> Self {
        CallerFuture {
            state: CallerState::Readying {
                service,
                request: Some(request),
            },
            sleep: deadline.map(|d| tokio::time::sleep_until(d.instant())),
            deadline,
        }
    }

    pub(crate) fn refused(error: DeadlineExceeded) -> Self {
        CallerFuture {
            state: CallerState::Refused { error: Some(error) },
            sleep: None,
            deadline: None,
        }
    }
}

impl<S, Req, T, E> Future for CallerFuture<S, Req, S::Future>
where
    S: Service<Req, Response = T, Error = E>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let deadline = *this.deadline;
        let polled = match deadline {
            Some(d) => Deadline::sync_scope(d, || drive(this.state.as_mut(), cx)),
            None => drive(this.state.as_mut(), cx),
        };
        if let Poll::Ready(out) = polled {
            return Poll::Ready(out);
        }
        let Some(sleep) = this.sleep.as_pin_mut() else {
            return Poll::Pending;
        };
        ready!(sleep.poll(cx));
        // The caller has given up: drop the work (or the wait for
        // readiness) now, not when it ends. A call already made was cut
        // short while running; one still waiting to be called did no work.
        let running = matches!(*this.state, CallerState::Called { .. });
        this.state.set(CallerState::Done);
        let error = DeadlineExceeded::new(Duration::ZERO);
        Poll::Ready(Err(if running {
            error.while_running()
        } else {
            error
        }
        .into()))
    }
}

/// Polls the inner service ready, calls it, polls its future.
fn drive<S, Req, T, E>(
    mut state: Pin<&mut CallerState<S, Req, S::Future>>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, BoxError>>
where
    S: Service<Req, Response = T, Error = E>,
    E: Into<BoxError>,
{
    loop {
        match state.as_mut().project() {
            CallerProj::Readying { service, request } => {
                if let Err(e) = ready!(service.poll_ready(cx)) {
                    state.set(CallerState::Done);
                    return Poll::Ready(Err(e.into()));
                }
                let Some(request) = request.take() else {
                    // Taken only here, just before the state changes.
                    state.set(CallerState::Done);
                    return Poll::Ready(Err(DeadlineExceeded::new(Duration::ZERO).into()));
                };
                let future = service.call(request);
                state.set(CallerState::Called { future });
            }
            CallerProj::Called { future } => return future.poll(cx).map_err(Into::into),
            CallerProj::Refused { error } => {
                return Poll::Ready(Err(error
                    .take()
                    .unwrap_or_else(|| DeadlineExceeded::new(Duration::ZERO))
                    .into()));
            }
            CallerProj::Done => {
                return Poll::Ready(Err(DeadlineExceeded::new(Duration::ZERO).into()));
            }
        }
    }
}

pin_project! {
    /// The response future of [`PropagateDeadline`](crate::PropagateDeadline):
    /// the inner future, or [`DeadlineExceeded`] at once when nothing was left
    /// of the deadline to send.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct PropagateFuture<F> {
        #[pin]
        state: PropagateState<F>,
    }
}

pin_project! {
    #[project = PropagateProj]
    #[derive(Debug)]
    enum PropagateState<F> {
        Called { #[pin] future: F },
        Refused { error: Option<DeadlineExceeded> },
    }
}

impl<F> PropagateFuture<F> {
    pub(crate) fn called(future: F) -> Self {
        PropagateFuture {
            state: PropagateState::Called { future },
        }
    }

    pub(crate) fn refused(error: DeadlineExceeded) -> Self {
        PropagateFuture {
            state: PropagateState::Refused { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for PropagateFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            PropagateProj::Called { future } => future.poll(cx).map_err(Into::into),
            PropagateProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| DeadlineExceeded::new(Duration::ZERO))
                .into())),
        }
    }
}

//! The response futures of the two layers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::deadline::Scoped;
use seawall_core::{BoxError, DeadlineExceeded};
use tokio::time::Sleep;

pin_project! {
    /// The response future of [`CallerDeadline`](crate::CallerDeadline):
    /// the inner future polled in the caller's deadline scope, dropped with
    /// [`DeadlineExceeded`] when the deadline passes.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct CallerFuture<F> {
        #[pin]
        state: CallerState<F>,
    }
}

pin_project! {
    #[project = CallerProj]
    #[derive(Debug)]
    enum CallerState<F> {
        Scoped { #[pin] future: Scoped<F>, #[pin] sleep: Sleep },
        Plain { #[pin] future: F },
        Refused { error: Option<DeadlineExceeded> },
        Done,
    }
}

impl<F> CallerFuture<F> {
    pub(crate) fn scoped(future: Scoped<F>, sleep: Sleep) -> Self {
        CallerFuture {
            state: CallerState::Scoped { future, sleep },
        }
    }

    pub(crate) fn plain(future: F) -> Self {
        CallerFuture {
            state: CallerState::Plain { future },
        }
    }

    pub(crate) fn refused(error: DeadlineExceeded) -> Self {
        CallerFuture {
            state: CallerState::Refused { error: Some(error) },
        }
    }
}

impl<F, T, E> Future for CallerFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            CallerProj::Scoped { future, sleep } => {
                if let Poll::Ready(out) = future.poll(cx) {
                    return Poll::Ready(out.map_err(Into::into));
                }
                ready!(sleep.poll(cx));
                // The caller has given up: drop the work now, not when it ends.
                state.set(CallerState::Done);
                Poll::Ready(Err(DeadlineExceeded::new(Duration::ZERO).into()))
            }
            CallerProj::Plain { future } => future.poll(cx).map_err(Into::into),
            CallerProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| DeadlineExceeded::new(Duration::ZERO))
                .into())),
            CallerProj::Done => Poll::Ready(Err(DeadlineExceeded::new(Duration::ZERO).into())),
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

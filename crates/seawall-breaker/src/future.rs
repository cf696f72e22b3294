//! The response future shared by [`Breaker`](crate::Breaker) and
//! [`KeyedBreaker`](crate::KeyedBreaker).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::classify::judge;
use seawall_core::{BoxError, CircuitOpen, Classify};

use crate::state::Permit;

pin_project! {
    /// The future of a guarded call: the inner call with the permit that
    /// admitted it (recorded when the call finishes, counted as cancelled if
    /// the future is dropped first), or a rejection that resolves at once.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            #[pin]
            fut: F,
            permit: Permit<'static>,
            classify: C,
        },
        Rejected {
            error: Option<CircuitOpen>,
        },
        Unguarded {
            #[pin]
            fut: F,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(fut: F, permit: Permit<'static>, classify: C) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                fut,
                permit,
                classify,
            },
        }
    }

    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }

    pub(crate) fn unguarded(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Unguarded { fut },
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
            Kind::Unguarded { .. } => "unguarded",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                fut,
                permit,
                classify,
            } => {
                let result = ready!(fut.poll(cx));
                // A refusal from a layer below (a budget, a shedder) never
                // reached the peer: `judge` ignores it.
                permit.record_in_place(judge(classify, &result));
                Poll::Ready(result.map_err(Into::into))
            }
            // The one allocation of a rejection: tower's `BoxError`.
            KindProj::Rejected { error } => Poll::Ready(Err(match error.take() {
                Some(e) => Box::new(e),
                None => "ResponseFuture polled after completion".into(),
            })),
            KindProj::Unguarded { fut } => fut.poll(cx).map_err(Into::into),
        }
    }
}

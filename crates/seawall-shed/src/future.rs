//! The response future of [`Shed`](crate::Shed).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::classify::judge;
use seawall_core::{BoxError, Classify, ErrorsAsFailures};

use crate::state::Permit;

pin_project! {
    /// The response future of [`Shed`](crate::Shed): the inner call holding
    /// its slot, or a rejection that resolves at once.
    ///
    /// The slot is released when the inner future completes or when this
    /// future is dropped, whichever comes first.
    pub struct ResponseFuture<F, C = ErrorsAsFailures> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Admitted {
            #[pin]
            future: F,
            permit: Option<Permit>,
            classify: C,
        },
        Rejected {
            // Boxed when the call was rejected; `None` once handed over.
            error: Option<BoxError>,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    #[inline]
    pub(crate) fn admitted(future: F, permit: Permit, classify: C) -> Self {
        ResponseFuture {
            kind: Kind::Admitted {
                future,
                permit: Some(permit),
                classify,
            },
        }
    }

    #[inline]
    pub(crate) fn rejected(error: BoxError) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Admitted {
                future,
                permit,
                classify,
            } => {
                let result = ready!(future.poll(cx));
                // Classify only when an adaptive limit wants the sample.
                if permit.as_ref().is_some_and(Permit::measures) {
                    if let Some(permit) = permit.take() {
                        measured(permit, classify, &result);
                    }
                } else {
                    // Dropped in place (not moved out first): the slot is
                    // released.
                    *permit = None;
                }
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected { error } => Poll::Ready(Err(match error.take() {
                Some(e) => e,
                None => polled_after_completion(),
            })),
        }
    }
}

/// An adaptive limit's sample: classify the result, record, release.
/// Out of line, so a fixed limit's poll stays small enough to inline.
#[inline(never)]
fn measured<T, E: 'static, C: Classify<T, E>>(permit: Permit, classify: &C, result: &Result<T, E>) {
    // A refusal from a layer below (a budget, a breaker) never reached the
    // service: `judge` ignores it.
    permit.finish(judge(classify, result));
}

#[cold]
#[inline(never)]
fn polled_after_completion() -> BoxError {
    "ResponseFuture polled after completion".into()
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

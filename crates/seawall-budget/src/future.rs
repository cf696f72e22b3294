//! The response future of [`Budget`](crate::Budget) and
//! [`KeyedBudget`](crate::KeyedBudget).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use seawall_core::{BoxError, BudgetExhausted};

pin_project! {
    /// Either the inner service's future, or a rejection that resolves at
    /// once to a boxed [`BudgetExhausted`].
    ///
    /// No larger than the inner future plus a tag when the inner future is
    /// at least two words: a rejection is kept boxed (the one allocation
    /// every refusal makes anyway, done when the call is refused).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] fut: F },
        Rejected { err: Option<BoxError> },
    }
}

/// The constructors are public for budgets kept elsewhere (the Redis-backed
/// budget of `seawall-budget-redis` returns this same future).
impl<F> ResponseFuture<F> {
    /// The inner service was called: resolves to its result, the error boxed.
    #[inline]
    pub fn called(fut: F) -> Self {
        ResponseFuture {
            state: State::Called { fut },
        }
    }

    /// The budget refused the call: resolves at once to `err`, boxed (the
    /// box is made here, the one allocation of a refusal).
    pub fn rejected(err: BudgetExhausted) -> Self {
        ResponseFuture {
            state: State::Rejected {
                err: Some(Box::new(err)),
            },
        }
    }

    /// Refused with another error (the caller's deadline passed).
    pub(crate) fn refused(err: BoxError) -> Self {
        ResponseFuture {
            state: State::Rejected { err: Some(err) },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { fut } => fut.poll(cx).map_err(Into::into),
            StateProj::Rejected { err } => Poll::Ready(Err(take_rejection(err))),
        }
    }
}

/// The refusal, once; out of line, so that the admitted path's `poll` stays
/// small enough to inline.
#[cold]
#[inline(never)]
fn take_rejection(err: &mut Option<BoxError>) -> BoxError {
    err.take()
        .unwrap_or_else(|| "ResponseFuture polled after completion".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Ready;

    #[test]
    fn a_refusal_adds_at_most_a_boxed_error_and_a_tag() {
        type Small = Ready<Result<u64, std::convert::Infallible>>;
        assert_eq!(std::mem::size_of::<Small>(), 16);
        assert!(std::mem::size_of::<ResponseFuture<Small>>() <= 24);
        // A larger inner future: no bigger than it plus a tag.
        type Large = Ready<Result<[u64; 8], std::convert::Infallible>>;
        assert!(std::mem::size_of::<ResponseFuture<Large>>() <= std::mem::size_of::<Large>() + 8);
    }
}

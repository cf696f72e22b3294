//! The response future shared by [`Breaker`](crate::Breaker) and
//! [`KeyedBreaker`](crate::KeyedBreaker).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::classify::judge;
use seawall_core::{BoxError, CircuitOpen, Classify};

use crate::state::{KeyLabel, Permit};

pin_project! {
    /// The future of a guarded call: the inner call with the permit that
    /// admitted it (recorded when the call finishes, counted as cancelled if
    /// the future is dropped first), or a rejection that resolves at once.
    ///
    /// `K` is the key type of a [`KeyedBreaker`](crate::KeyedBreaker): the
    /// future holds the call's key while its breaker is fresh, so that the
    /// breaker is labelled with it if this call is the one that ends its
    /// freshness (a key costs no label until then).
    pub struct ResponseFuture<F, C, K = Infallible>
    where
        K: fmt::Display,
    {
        #[pin]
        kind: Kind<F, C, K>,
    }

    impl<F, C, K> PinnedDrop for ResponseFuture<F, C, K>
    where
        K: fmt::Display,
    {
        fn drop(this: Pin<&mut Self>) {
            // Only a call that still holds its key (a fresh breaker) needs
            // it to count a cancellation; otherwise the permit's own drop does.
            if let KindProj::Called { permit, key: key @ Some(_), .. } = this.project().kind.project() {
                permit.cancel_in_place(label(key));
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C, K> {
        Called {
            #[pin]
            fut: F,
            permit: Permit<'static>,
            classify: C,
            key: Option<K>,
        },
        // Boxed when the call is refused: the one allocation of a refusal,
        // made once, so the future moves two words, not the whole error.
        Rejected {
            error: Option<BoxError>,
        },
    }
}

fn label<K: fmt::Display>(key: &Option<K>) -> KeyLabel<'_> {
    key.as_ref().map(|k| k as &dyn fmt::Display)
}

impl<F, C, K: fmt::Display> ResponseFuture<F, C, K> {
    pub(crate) fn called(fut: F, permit: Permit<'static>, classify: C, key: Option<K>) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                fut,
                permit,
                classify,
                key,
            },
        }
    }

    #[inline]
    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                error: Some(Box::new(error)),
            },
        }
    }
}

impl<F, C, K: fmt::Display> fmt::Debug for ResponseFuture<F, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, C, K, T, E> Future for ResponseFuture<F, C, K>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    C: Classify<T, E>,
    K: fmt::Display,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                fut,
                permit,
                classify,
                key,
            } => {
                let result = ready!(fut.poll(cx));
                // A refusal from a layer below (a budget, a shedder) never
                // reached the peer: `judge` ignores it.
                permit.record_in_place(judge(classify, &result), label(key));
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected { error } => Poll::Ready(Err(match error.take() {
                Some(e) => e,
                None => "ResponseFuture polled after completion".into(),
            })),
        }
    }
}

//! The response future of [`Chaos`](crate::Chaos).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::BoxError;
use tokio::time::Sleep;

pin_project! {
    /// The future of a call through a chaos layer: the inner call as it is,
    /// or with latency before or after it, or an injected answer in its
    /// place. Named, never boxed; dropping it drops the inner future and the
    /// timer, whichever exist.
    pub struct ResponseFuture<F, T> {
        #[pin]
        kind: Kind<F, T>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, T> {
        // Nothing injected (or the layer disabled).
        Pass { #[pin] fut: F },
        // The inner call, with latency before or after it and possibly its
        // result replaced.
        Inner {
            #[pin] fut: F,
            #[pin] delay: Delay,
            delay_after: bool,
            replace: Option<Result<T, BoxError>>,
            done: Option<Result<T, BoxError>>,
        },
        // No inner call: an injected answer, possibly late.
        Answer { #[pin] delay: Delay, answer: Option<Result<T, BoxError>> },
    }
}

pin_project! {
    #[project = DelayProj]
    enum Delay {
        Done,
        // Starts when first polled (latency after the inner call).
        Later { after: Duration },
        Sleeping { #[pin] sleep: Sleep },
    }
}

impl Delay {
    /// A timer started now (needs a tokio runtime with time enabled).
    fn now(delay: Option<Duration>) -> Self {
        match delay {
            None => Delay::Done,
            Some(d) => Delay::Sleeping {
                sleep: tokio::time::sleep(d),
            },
        }
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.as_mut().project() {
                DelayProj::Done => return Poll::Ready(()),
                DelayProj::Later { after } => {
                    let sleep = tokio::time::sleep(*after);
                    self.set(Delay::Sleeping { sleep });
                }
                DelayProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    self.set(Delay::Done);
                    return Poll::Ready(());
                }
            }
        }
    }
}

impl<F, T> ResponseFuture<F, T> {
    pub(crate) fn pass(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Pass { fut },
        }
    }

    pub(crate) fn answer(answer: Result<T, BoxError>, delay: Option<Duration>) -> Self {
        ResponseFuture {
            kind: Kind::Answer {
                delay: Delay::now(delay),
                answer: Some(answer),
            },
        }
    }

    pub(crate) fn delay_first(fut: F, delay: Duration) -> Self {
        ResponseFuture {
            kind: Kind::Inner {
                fut,
                delay: Delay::now(Some(delay)),
                delay_after: false,
                replace: None,
                done: None,
            },
        }
    }

    pub(crate) fn after(
        fut: F,
        replace: Option<Result<T, BoxError>>,
        delay: Option<Duration>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Inner {
                fut,
                delay: match delay {
                    None => Delay::Done,
                    Some(after) => Delay::Later { after },
                },
                delay_after: true,
                replace,
                done: None,
            },
        }
    }
}

impl<F, T> fmt::Debug for ResponseFuture<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Pass { .. } => "pass",
            Kind::Inner { .. } => "inner",
            Kind::Answer { .. } => "answer",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

const POLLED_AFTER_COMPLETION: &str = "chaos ResponseFuture polled after completion";

impl<F, T, E> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { fut } => fut.poll(cx).map_err(Into::into),
            KindProj::Inner {
                fut,
                mut delay,
                delay_after,
                replace,
                done,
            } => {
                if !*delay_after {
                    ready!(delay.as_mut().poll(cx));
                }
                if done.is_none() {
                    let result = ready!(fut.poll(cx)).map_err(Into::into);
                    // After: the inner service did the work; its result is
                    // dropped for the injected one.
                    *done = Some(replace.take().unwrap_or(result));
                }
                if *delay_after {
                    ready!(delay.poll(cx));
                }
                Poll::Ready(done.take().expect(POLLED_AFTER_COMPLETION))
            }
            KindProj::Answer { delay, answer } => {
                ready!(delay.poll(cx));
                Poll::Ready(answer.take().expect(POLLED_AFTER_COMPLETION))
            }
        }
    }
}

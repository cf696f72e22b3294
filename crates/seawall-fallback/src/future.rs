//! The response future of [`Fallback`](crate::Fallback).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::names::TARGET_FALLBACK;
use seawall_core::{BoxError, Classify};

use crate::backup::Backup;
use crate::error::FailedResponse;
use crate::layer::Shared;

pin_project! {
    /// The future of a call with a fallback: the inner call, then, if it
    /// failed, the backup's answer. Dropping it drops whichever is running.
    pub struct ResponseFuture<F, Req, B, C, R>
    where
        B: Backup<Req>,
    {
        #[pin]
        state: Step<F, B::Future, Req>,
        shared: Arc<Shared<B, C, R>>,
    }
}

pin_project! {
    #[project = StepProj]
    enum Step<F, BF, Req> {
        Inner { #[pin] fut: F, copy: Option<Req> },
        Backup { #[pin] fut: BF },
    }
}

impl<F, Req, B: Backup<Req>, C, R> ResponseFuture<F, Req, B, C, R> {
    pub(crate) fn new(fut: F, copy: Option<Req>, shared: Arc<Shared<B, C, R>>) -> Self {
        ResponseFuture {
            state: Step::Inner { fut, copy },
            shared,
        }
    }
}

impl<F, Req, B: Backup<Req>, C, R> fmt::Debug for ResponseFuture<F, Req, B, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.state {
            Step::Inner { .. } => "inner",
            Step::Backup { .. } => "backup",
        };
        f.debug_struct("ResponseFuture")
            .field("step", &step)
            .finish()
    }
}

impl<F, Req, B, C, R, T, E> Future for ResponseFuture<F, Req, B, C, R>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    B: Backup<Req, Response = T>,
    C: Classify<T, BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut state = this.state;
        let shared = &**this.shared;
        loop {
            match state.as_mut().project() {
                StepProj::Inner { fut, copy } => {
                    let result = ready!(fut.poll(cx)).map_err(Into::into);
                    if !shared.classify.classify(&result).is_failure() {
                        return Poll::Ready(result);
                    }
                    let Some(req) = copy.take() else {
                        shared.note_not_copied();
                        return Poll::Ready(result);
                    };
                    let error = match result {
                        Err(e) => e,
                        Ok(_) => Box::new(FailedResponse),
                    };
                    tracing::debug!(
                        target: TARGET_FALLBACK,
                        name = %shared.config.name,
                        error = %error,
                        "falling back"
                    );
                    shared.note_fallback();
                    let fut = shared.backup.answer(req, error);
                    state.set(Step::Backup { fut });
                }
                StepProj::Backup { fut } => {
                    let result = ready!(fut.poll(cx));
                    if result.is_err() {
                        shared.note_backup_failed();
                    }
                    return Poll::Ready(result);
                }
            }
        }
    }
}

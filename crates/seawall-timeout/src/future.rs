//! The response future of [`AdaptiveTimeout`](crate::AdaptiveTimeout) and
//! [`KeyedAdaptiveTimeout`](crate::KeyedAdaptiveTimeout).
//!
//! It holds the inner future and an inline `tokio::time::Sleep` (no box). It
//! polls the inner future first, so a call that is ready at once never
//! registers its timer. On a successful completion it reads the clock once
//! more and records the latency (of every call, or of a random one in
//! `sample_every` under high traffic); at the deadline it records a timeout and resolves to
//! [`Elapsed`](crate::Elapsed). Dropping it records nothing and
//! leaves nothing behind.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::BoxError;
use tokio::time::{Instant, Sleep};

use crate::tracker::Recorder;

pin_project! {
    /// Resolves to the inner service's result, or to an
    /// [`Elapsed`](crate::Elapsed) boxed as [`BoxError`] at the deadline.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        response: F,
        #[pin]
        sleep: Sleep,
        // The call started at `sleep.deadline() - deadline`: not stored, to
        // keep the future small.
        deadline: Duration,
        recorder: Recorder,
    }
}

/// How far a timer can be set: tokio's own "far future" (about 30 years).
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

impl<F> ResponseFuture<F> {
    /// Starts the clock for a call: reads it once.
    #[inline]
    pub(crate) fn new(response: F, recorder: Recorder) -> Self {
        let deadline = recorder.deadline();
        let start = Instant::now();
        let at = start
            .checked_add(deadline)
            .or_else(|| start.checked_add(FAR))
            .unwrap_or(start);
        ResponseFuture {
            response,
            sleep: tokio::time::sleep_until(at),
            deadline,
            recorder,
        }
    }

    /// The deadline this call got.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.response.poll(cx) {
            // Only successes say how long a good answer takes; a fast error
            // must not pull the deadline down.
            if result.is_ok() && this.recorder.should_measure() {
                let now = Instant::now();
                let start = this
                    .sleep
                    .deadline()
                    .checked_sub(*this.deadline)
                    .unwrap_or(now);
                this.recorder
                    .record(now.saturating_duration_since(start), now);
            }
            return Poll::Ready(result.map_err(Into::into));
        }
        ready!(this.sleep.as_mut().poll(cx));
        // Timed-out calls are sampled like the others, or they would weigh
        // more than successes in the window.
        if this.recorder.should_measure() {
            this.recorder
                .record_timeout(*this.deadline, this.sleep.deadline());
        } else {
            this.recorder.count_timeout(*this.deadline);
        }
        Poll::Ready(Err(Box::new(this.recorder.elapsed(*this.deadline))))
    }
}

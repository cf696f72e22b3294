//! The response future of [`AdaptiveTimeout`](crate::AdaptiveTimeout) and
//! [`KeyedAdaptiveTimeout`](crate::KeyedAdaptiveTimeout).
//!
//! It holds the inner future, its deadline (packed in 8 bytes, with a bit
//! for "measured": every call while the window fills, a random one in
//! `sample_every` under high traffic), its claim on the tracker (the
//! calling thread's recorder shard, or a key's) and its timer, which starts as
//! the call's start (a reading of the tracker's clock) and becomes an
//! inline `tokio::time::Sleep` (no box) at the first poll that finds the
//! inner future pending, set for `start + deadline`. So a call that is
//! ready at its first poll never makes a timer, and a call that is not
//! times out exactly when it would had the timer started in `call` (as
//! tower's `Timeout`'s does). A measured call that succeeds reads the clock
//! once more and records its latency; at the deadline the future counts a
//! timeout and resolves to [`Elapsed`](crate::Elapsed). Dropping it records
//! nothing and leaves nothing behind.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::BoxError;
use tokio::time::Sleep;

use crate::tracker::sealed::Hold;
use crate::tracker::{Began, Claim, MEASURED, unpack};

pin_project! {
    /// Resolves to the inner service's result, or to an
    /// [`Elapsed`](crate::Elapsed) boxed as [`BoxError`] at the deadline.
    ///
    /// `C` is how the call holds on to its tracker: [`Claim`] for
    /// [`AdaptiveTimeout`](crate::AdaptiveTimeout),
    /// [`KeyedClaim`](crate::KeyedClaim) for
    /// [`KeyedAdaptiveTimeout`](crate::KeyedAdaptiveTimeout).
    #[derive(Debug)]
    pub struct ResponseFuture<F, C = Claim> {
        #[pin]
        response: F,
        #[pin]
        timer: Timer,
        // The deadline, packed (see `pack`), with `MEASURED` set for a
        // measured call.
        deadline: u64,
        claim: C,
    }
}

pin_project! {
    /// The call's start until the inner future is first pending, its timer
    /// from then on: the two never live at once, so they share their bytes.
    #[project = TimerProj]
    #[derive(Debug)]
    enum Timer {
        Started { start: Began },
        Armed { #[pin] sleep: Sleep },
    }
}

impl<F, C> ResponseFuture<F, C> {
    /// A call that started at `start`.
    #[inline]
    pub(crate) fn new(response: F, deadline: u64, claim: C, start: Began) -> Self {
        ResponseFuture {
            response,
            timer: Timer::Started { start },
            deadline,
            claim,
        }
    }

    /// The deadline this call got.
    pub fn deadline(&self) -> Duration {
        unpack(self.deadline)
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Hold,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.response.poll(cx) {
            // Only successes say how long a good answer takes; a fast error
            // must not pull the deadline down.
            if result.is_ok() && *this.deadline & MEASURED != 0 {
                record_success(this.claim, &this.timer, *this.deadline);
            }
            return Poll::Ready(result.map_err(Into::into));
        }
        loop {
            match this.timer.as_mut().project() {
                TimerProj::Armed { sleep } => {
                    ready!(sleep.poll(cx));
                    break;
                }
                TimerProj::Started { start } => {
                    let sleep = arm(this.claim, *start, *this.deadline);
                    this.timer.set(Timer::Armed { sleep });
                }
            }
        }
        let deadline = *this.deadline;
        Poll::Ready(Err(expired(this.claim, deadline)))
    }
}

// The paths off the common one live out of line (and are not generic), so
// that the poll above stays small enough to inline into the caller.

/// The timer of a call that started at `start`: tokio's, set for `start +
/// deadline` (on a clock other than tokio's, for the tokio instant at which
/// the tracker's clock reads that: tokio's now plus what is left).
#[inline(never)]
fn arm(claim: &impl Hold, start: Began, deadline: u64) -> Sleep {
    let deadline = unpack(deadline);
    let at = match start {
        Began::Tokio(at) => seawall_core::time::deadline(at, deadline),
        Began::At(reading) => claim.instant_at(reading, deadline),
    };
    tokio::time::sleep_until(at)
}

/// Records the latency of a sampled success: reads the clock once more. A
/// call whose timer runs started at `timer's deadline - deadline` (on
/// tokio's clock), so the start was never stored twice.
#[inline(never)]
fn record_success(claim: &impl Hold, timer: &Pin<&mut Timer>, deadline: u64) {
    let began = match timer.as_ref().get_ref() {
        Timer::Started { start } => *start,
        Timer::Armed { sleep } => {
            let at = sleep.deadline();
            Began::Tokio(at.checked_sub(unpack(deadline)).unwrap_or(at))
        }
    };
    claim.record(began);
}

/// Accounts for a call that hit its deadline and makes its error.
#[cold]
#[inline(never)]
fn expired(claim: &impl Hold, deadline: u64) -> BoxError {
    // Timed-out calls are measured only when chosen at the start, like the
    // others, or they would weigh more than successes in the window.
    Box::new(claim.expired(unpack(deadline), deadline & MEASURED != 0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::{Layer, Service, ServiceExt, service_fn};

    use crate::{AdaptiveTimeoutLayer, LONGEST_DEADLINE};

    #[tokio::test(start_paused = true)]
    async fn a_sampled_success_is_measured_from_the_timer_start() {
        // Every call measured, the deadline recomputed after each sample.
        let layer = AdaptiveTimeoutLayer::builder()
            .min_samples(1)
            .refresh_every(1)
            .sample_every(1)
            .build()
            .unwrap();
        let mut svc = layer.layer(service_fn(|ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, std::convert::Infallible>(ms)
        }));
        let fut = svc.ready().await.unwrap().call(40);
        // Time that passes between `call` and the first poll counts too.
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(fut.await.unwrap(), 40);
        let p50 = layer.stats().p50;
        assert!(
            p50 >= Duration::from_millis(49) && p50 <= Duration::from_millis(51),
            "{p50:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_deadline_sets_a_timer_without_overflow() {
        let mut svc = AdaptiveTimeoutLayer::fixed(Duration::MAX).layer(service_fn(|()| {
            std::future::pending::<Result<(), std::convert::Infallible>>()
        }));
        let fut = svc.ready().await.unwrap().call(());
        assert_eq!(fut.deadline(), LONGEST_DEADLINE);
        let mut fut = tokio_test::task::spawn(fut);
        tokio_test::assert_pending!(fut.poll());
        tokio::time::advance(Duration::from_secs(86_400)).await;
        tokio_test::assert_pending!(fut.poll());
    }
}

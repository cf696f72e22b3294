//! The response future of [`AdaptiveTimeout`](crate::AdaptiveTimeout) and
//! [`KeyedAdaptiveTimeout`](crate::KeyedAdaptiveTimeout).
//!
//! It holds the inner future, an inline `tokio::time::Sleep` (no box) and
//! its claim on the tracker: a recorder shard for a call chosen to be
//! measured (every call while the window fills, a random one in
//! `sample_every` under high traffic), only the tracker's ticket for the
//! others. It polls the inner future first, so a call that is ready at once
//! never registers its timer. A measured call that succeeds reads the clock
//! once more and records its latency; at the deadline the future counts a
//! timeout and resolves to [`Elapsed`](crate::Elapsed). Dropping it records
//! nothing and leaves nothing behind.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::BoxError;
use tokio::time::{Instant, Sleep};

use crate::tracker::sealed::Hold;
use crate::tracker::{Claim, unpack};

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
        sleep: Sleep,
        // The call started at `sleep.deadline() - deadline`: not stored, to
        // keep the future small (as is the deadline: packed in 8 bytes).
        deadline: u64,
        claim: C,
    }
}

impl<F, C> ResponseFuture<F, C> {
    /// Starts the clock for a call: reads it once, in `tokio::time::sleep`
    /// (which sets the timer to tokio's "far future", about 30 years, should
    /// `now + deadline` overflow).
    #[inline]
    pub(crate) fn new(response: F, deadline: u64, claim: C) -> Self {
        ResponseFuture {
            sleep: tokio::time::sleep(unpack(deadline)),
            response,
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
            if result.is_ok() && this.claim.is_measured() {
                record_success(this.claim, this.sleep.deadline(), unpack(*this.deadline));
            }
            return Poll::Ready(result.map_err(Into::into));
        }
        ready!(this.sleep.as_mut().poll(cx));
        let deadline = unpack(*this.deadline);
        Poll::Ready(Err(expired(this.claim, deadline, this.sleep.deadline())))
    }
}

// The paths off the common one live out of line (and are not generic), so
// that the poll above stays small enough to inline into the caller.

/// Records the latency of a sampled success: reads the clock once more. The
/// call started at `at - deadline` (the timer's deadline less the deadline
/// it was given), so the start was never stored.
#[inline(never)]
fn record_success(claim: &impl Hold, at: Instant, deadline: Duration) {
    let now = Instant::now();
    let start = at.checked_sub(deadline).unwrap_or(now);
    claim.record(now.saturating_duration_since(start), now);
}

/// Accounts for a call that hit its deadline and makes its error.
#[cold]
#[inline(never)]
fn expired(claim: &impl Hold, deadline: Duration, at: Instant) -> BoxError {
    // Timed-out calls are measured only when chosen at the start, like the
    // others, or they would weigh more than successes in the window.
    Box::new(claim.expired(deadline, at))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::{Layer, Service, ServiceExt, service_fn};

    use crate::{AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, LONGEST_DEADLINE};

    #[tokio::test(start_paused = true)]
    async fn a_sampled_success_is_measured_from_the_timer_start() {
        // Every call measured, the deadline recomputed after each sample.
        let layer = AdaptiveTimeoutLayer::from_config(&AdaptiveTimeoutConfig {
            min_samples: 1,
            refresh_every: 1,
            sample_every: 1,
            ..Default::default()
        })
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

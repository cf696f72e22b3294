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
//!
//! Inside a caller's [`Deadline`] scope, the future also keeps the caller's
//! deadline, read once in `call`: when it comes before `start + deadline`,
//! the timer is set for it instead, and at that instant the future resolves
//! to [`DeadlineExceeded`] marked
//! [`while_running`](DeadlineExceeded::while_running): not a timeout of the
//! service (neither counted nor recorded as one), but not a refusal either,
//! so a breaker above counts it as a failure. A call made after the caller's
//! deadline has passed is not started: its future resolves to a plain
//! `DeadlineExceeded` (a refusal) at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, DeadlineExceeded};
use tokio::time::{Instant, Sleep};

use crate::tracker::sealed::Hold;
use crate::tracker::{Began, Claim, MEASURED, unpack};

/// Set in a call's packed deadline, in `call`, when the caller's deadline
/// comes before the call's own: its timer is set for the caller's deadline,
/// and it is no latency sample. Bit 62 is otherwise always clear: `pack`
/// puts whole seconds above bit 30, and a deadline is at most
/// [`LONGEST_DEADLINE`](crate::LONGEST_DEADLINE), 365 days (< 2^25 s).
pub(crate) const CALLER: u64 = 1 << 62;

/// Set in a call's packed deadline when the caller chose it (a
/// [`CallTimeout`](seawall_core::deadline::CallTimeout)): at its expiry the
/// call ends with [`Elapsed`](crate::Elapsed) but is not counted as a
/// timeout of the service. Bit 61, clear otherwise (see [`CALLER`]).
pub(crate) const ASKED: u64 = 1 << 61;

/// The flag bits of a packed deadline, above its value.
const FLAGS: u64 = MEASURED | CALLER | ASKED;

pin_project! {
    /// Resolves to the inner service's result, or to an
    /// [`Elapsed`](crate::Elapsed) boxed as [`BoxError`] at the deadline, or
    /// to a [`DeadlineExceeded`] at the caller's deadline when that comes
    /// first.
    ///
    /// `C` is how the call holds on to its tracker: [`Claim`] for
    /// [`AdaptiveTimeout`](crate::AdaptiveTimeout),
    /// [`KeyedClaim`](crate::KeyedClaim) for
    /// [`KeyedAdaptiveTimeout`](crate::KeyedAdaptiveTimeout).
    #[derive(Debug)]
    pub struct ResponseFuture<F, C = Claim> {
        #[pin]
        response: Inner<F>,
        #[pin]
        timer: Timer,
        // The deadline, packed (see `pack`), with `MEASURED` set for a
        // measured call.
        deadline: u64,
        claim: C,
    }
}

pin_project! {
    /// The inner future, or nothing for a call refused because the caller's
    /// deadline had passed (how long ago is kept in the timer's bytes, so
    /// that this variant fits the inner future's niche, if it has one).
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner<F> {
        Called { #[pin] future: F },
        Refused,
    }
}

pin_project! {
    /// The call's start (and the caller's deadline, if any) until the inner
    /// future is first pending, its timer from then on: the two never live
    /// at once, so they share their bytes. A timer set for the caller's
    /// deadline is marked with [`CALLER`] in the packed deadline (one
    /// variant holding a `Sleep` lets the enum keep its tag in the `Sleep`'s
    /// spare bits).
    #[project = TimerProj]
    #[derive(Debug)]
    enum Timer {
        Started { start: Began, caller: Option<Instant> },
        Armed { #[pin] sleep: Sleep },
        Refused { past: Duration },
    }
}

impl<F, C> ResponseFuture<F, C> {
    /// A call that started at `start`, inside the caller's deadline
    /// `caller`, if any.
    #[inline]
    pub(crate) fn new(
        response: F,
        deadline: u64,
        claim: C,
        start: Began,
        caller: Option<Deadline>,
    ) -> Self {
        ResponseFuture {
            response: Inner::Called { future: response },
            timer: Timer::Started {
                start,
                caller: caller.map(Deadline::instant),
            },
            deadline,
            claim,
        }
    }

    /// A call not started: the caller's deadline passed `past` ago.
    #[cold]
    pub(crate) fn refused(past: Duration, claim: C) -> Self {
        ResponseFuture {
            response: Inner::Refused,
            timer: Timer::Refused { past },
            deadline: 0,
            claim,
        }
    }

    /// The deadline this call got.
    pub fn deadline(&self) -> Duration {
        unpack(self.deadline & !FLAGS)
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
        let response = match this.response.project() {
            InnerProj::Called { future } => future,
            InnerProj::Refused => return Poll::Ready(Err(refusal(&this.timer))),
        };
        if let Poll::Ready(result) = response.poll(cx) {
            // Bound by the caller (`CALLER`, decided in `call`, so also for a
            // call ready at its first poll): the calls that end before the
            // caller's deadline are only the fast ones, so recording them
            // (and not the slow ones, which the caller cuts off) would pull
            // the percentile down. Such a call is not a sample.
            if result.is_ok() && *this.deadline & (MEASURED | CALLER) == MEASURED {
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
                // Only with `Inner::Refused`, which returned above.
                TimerProj::Refused { past } => return Poll::Ready(Err(caller_passed(*past))),
                TimerProj::Started { start, caller } => {
                    let sleep = arm(this.claim, *start, *this.deadline, *caller);
                    this.timer.set(Timer::Armed { sleep });
                }
            }
        }
        let deadline = *this.deadline;
        if deadline & CALLER != 0 {
            // The caller's deadline, not the service's own, ended the call:
            // neither a timeout sample nor counted as one. The service had
            // the call, though, and had not answered: cut short while
            // running, a failure to a breaker above, not a refusal.
            return Poll::Ready(Err(cut_short()));
        }
        Poll::Ready(Err(expired(this.claim, deadline)))
    }
}

/// The timer for the caller's deadline when it binds (`CALLER`, decided in
/// `call`), for `start + deadline` otherwise.
#[inline(never)]
fn arm(claim: &impl Hold, start: Began, deadline: u64, caller: Option<Instant>) -> Sleep {
    if let Some(caller) = caller.filter(|_| deadline & CALLER != 0) {
        return tokio::time::sleep_until(caller);
    }
    let deadline = unpack(deadline & !FLAGS);
    let at = match start {
        Began::Tokio(at) => seawall_core::time::deadline(at, deadline),
        Began::At(reading) => claim.instant_at(reading, deadline),
    };
    tokio::time::sleep_until(at)
}

#[inline(never)]
fn record_success(claim: &impl Hold, timer: &Pin<&mut Timer>, deadline: u64) {
    let began = match timer.as_ref().get_ref() {
        Timer::Started { start, .. } => *start,
        Timer::Armed { sleep } => {
            let at = sleep.deadline();
            Began::Tokio(at.checked_sub(unpack(deadline & !FLAGS)).unwrap_or(at))
        }
        // Never measured.
        Timer::Refused { .. } => return,
    };
    claim.record(began);
}

/// Accounts for a call that hit its deadline and makes its error.
#[cold]
#[inline(never)]
fn refusal(timer: &Pin<&mut Timer>) -> BoxError {
    match timer.as_ref().get_ref() {
        Timer::Refused { past } => caller_passed(*past),
        _ => caller_passed(Duration::ZERO),
    }
}

#[cold]
#[inline(never)]
fn caller_passed(past: Duration) -> BoxError {
    Box::new(DeadlineExceeded::new(past))
}

#[cold]
#[inline(never)]
fn cut_short() -> BoxError {
    Box::new(DeadlineExceeded::new(Duration::ZERO).while_running())
}

#[cold]
#[inline(never)]
fn expired(claim: &impl Hold, deadline: u64) -> BoxError {
    let after = unpack(deadline & !FLAGS);
    if deadline & ASKED != 0 {
        // The caller chose this deadline: a timeout, but not one of the
        // service's, so neither counted nor recorded.
        return Box::new(claim.recorder().elapsed(after));
    }
    // Timed-out calls are measured only when chosen at the start, like the
    // others, or they would weigh more than successes in the window.
    Box::new(claim.expired(after, deadline & MEASURED != 0))
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

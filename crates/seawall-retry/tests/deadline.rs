//! The caller's deadline bounds the retries, on paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, Rejection, RejectionKind};
use seawall_retry::{Backoff, RetryError, RetryLayer, StopReason};
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A backend that fails after `took`, counting its calls.
fn failing(
    took: Duration,
) -> (
    Arc<AtomicUsize>,
    impl tower::Service<
        (),
        Response = (),
        Error = BoxError,
        Future = impl Future<Output = Result<(), BoxError>>,
    > + Clone,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let svc = service_fn(move |()| {
        counter.fetch_add(1, Ordering::Relaxed);
        async move {
            sleep(took).await;
            Err::<(), BoxError>("connection reset".into())
        }
    });
    (calls, svc)
}

#[tokio::test(start_paused = true)]
async fn no_retry_is_scheduled_past_the_callers_deadline() {
    let layer = RetryLayer::builder()
        .no_budget()
        .max_attempts(10)
        .backoff(Backoff::constant(ms(50)).jitter(0.0))
        .build()
        .unwrap();
    let (calls, backend) = failing(ms(10));
    let svc = layer.layer(backend);
    let start = Instant::now();
    // Attempts at 0, 60, 120 (each fails after 10ms, then 50ms of backoff);
    // the next would start at 180, past the caller's 150.
    let err = Deadline::scope(Deadline::after(ms(150)), svc.clone().oneshot(()))
        .await
        .unwrap_err();
    let retry = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert_eq!(retry.reason(), StopReason::Deadline);
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(
        start.elapsed(),
        ms(130),
        "gave up at the last failure, no sleep past the deadline"
    );
    assert_eq!(layer.stats().gave_up_deadline, 1);

    // Without a caller's deadline: all ten attempts.
    calls.store(0, Ordering::Relaxed);
    let _ = svc.oneshot(()).await.unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 10);
}

#[tokio::test(start_paused = true)]
async fn a_request_after_the_callers_deadline_is_not_sent() {
    let layer = RetryLayer::builder().no_budget().build().unwrap();
    let (calls, backend) = failing(ms(1));
    let deadline = Deadline::after(ms(5));
    tokio::time::advance(ms(8)).await;
    let err = Deadline::scope(deadline, layer.layer(backend).oneshot(()))
        .await
        .unwrap_err();
    let found = Rejection::find(&*err).expect("a rejection");
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    assert_eq!(err.to_string(), "the caller's deadline passed 3ms ago");
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(layer.stats().requests, 0);
}

#[tokio::test(start_paused = true)]
async fn a_later_caller_deadline_changes_nothing() {
    let layer = RetryLayer::builder()
        .no_budget()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(10)).jitter(0.0))
        .build()
        .unwrap();
    let (calls, backend) = failing(ms(1));
    let err = Deadline::scope(
        Deadline::after(ms(10_000)),
        layer.layer(backend).oneshot(()),
    )
    .await
    .unwrap_err();
    let retry = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert_eq!(retry.reason(), StopReason::AttemptsExhausted);
    assert_eq!(calls.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn deadline_exceeded_from_below_is_not_retried() {
    let layer = RetryLayer::builder()
        .no_budget()
        .max_attempts(5)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let svc = layer.layer(service_fn(move |()| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Err::<(), BoxError>(seawall_core::DeadlineExceeded::new(Duration::ZERO).into()) }
    }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(
        Rejection::find(&*err).map(|r| r.kind()),
        Some(RejectionKind::DeadlineExceeded)
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_cut_short_by_the_caller_below_is_not_retried() {
    // A failure of the peer to a breaker, but the caller has given up: no
    // retry either.
    let layer = RetryLayer::builder()
        .no_budget()
        .max_attempts(5)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let svc = layer.layer(service_fn(move |()| {
        counter.fetch_add(1, Ordering::Relaxed);
        async {
            Err::<(), BoxError>(
                seawall_core::DeadlineExceeded::new(Duration::ZERO)
                    .while_running()
                    .into(),
            )
        }
    }));
    let err = svc.oneshot(()).await.unwrap_err();
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    assert!(!found.is_refusal());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

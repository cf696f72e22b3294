//! What `RetryStats` counts and when a budget token comes back: a retry is
//! counted when it is sent, and a retry decided but never sent returns its
//! token. Paused time throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::BoxError;
use seawall_core::config::MAX_DURATION;
use seawall_retry::{Backoff, RetryBudget, RetryLayer};
use tokio_test::{assert_pending, task};
use tower::{Layer, Service, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A backend that fails every call and counts them.
fn failing(
    calls: &Arc<AtomicUsize>,
) -> impl Service<(), Response = (), Error = BoxError, Future: Send> + Clone {
    let calls = calls.clone();
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::Relaxed);
        async { Err::<(), BoxError>("down".into()) }
    })
}

#[tokio::test(start_paused = true)]
async fn dropped_during_backoff_counts_one_call_and_refunds_the_token() {
    // A floor of one retry, no ratio: the balance is exactly 1 before.
    let budget = RetryBudget::new(0.0, 1, Duration::from_secs(1)).unwrap();
    let layer = RetryLayer::builder()
        .shared_budget(budget.clone())
        .backoff(Backoff::constant(ms(100)))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(failing(&calls));
    assert_eq!(budget.balance(), 1.0);

    let mut fut = task::spawn(svc.ready().await.unwrap().call(()));
    assert_pending!(fut.poll()); // first call failed, now backing off
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(budget.balance(), 0.0, "the retry's token is taken");
    let stats = layer.stats();
    assert_eq!((stats.requests, stats.attempts, stats.retries), (1, 1, 0));

    drop(fut);
    let stats = layer.stats();
    assert_eq!(stats.attempts, 1, "one call was made");
    assert_eq!(stats.retries, 0);
    assert_eq!(budget.balance(), 1.0, "the unsent retry's token is back");
    assert_eq!(stats.budget_balance, Some(1.0));

    // The token is usable: the next request retries once.
    let _ = svc.ready().await.unwrap().call(()).await;
    assert_eq!(calls.load(Ordering::Relaxed), 3);
}

#[tokio::test(start_paused = true)]
async fn a_refund_after_the_withdrawal_expired_adds_nothing() {
    let budget = RetryBudget::new(0.0, 1, Duration::from_secs(1)).unwrap();
    let layer = RetryLayer::builder()
        .shared_budget(budget.clone())
        .backoff(Backoff::constant(Duration::from_secs(5)))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer.layer(failing(&calls));
    let mut fut = task::spawn(svc.ready().await.unwrap().call(()));
    assert_pending!(fut.poll());
    assert_eq!(budget.balance(), 0.0);
    // Past the budget's ttl the withdrawal no longer counts ...
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(budget.balance(), 1.0);
    // ... so giving it back must not make two.
    drop(fut);
    assert_eq!(budget.balance(), 1.0);
    assert_eq!(layer.stats().attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn sent_retries_are_counted() {
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .no_budget()
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(failing(&calls));
    assert!(svc.clone().oneshot(()).await.is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    let stats = layer.stats();
    assert_eq!((stats.requests, stats.attempts, stats.retries), (1, 3, 2));

    // Dropped while backing off before the third call: two calls made.
    let mut fut = task::spawn(svc.clone().oneshot(()));
    assert_pending!(fut.poll());
    tokio::time::advance(ms(10)).await;
    assert_pending!(fut.poll());
    assert_eq!(calls.load(Ordering::Relaxed), 5);
    drop(fut);
    let stats = layer.stats();
    assert_eq!((stats.requests, stats.attempts, stats.retries), (2, 5, 3));
}

#[tokio::test(start_paused = true)]
async fn the_longest_deadline_still_retries() {
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .no_budget()
        .deadline(MAX_DURATION)
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    assert!(layer.layer(failing(&calls)).oneshot(()).await.is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(layer.stats().gave_up_deadline, 0);

    let err = RetryLayer::builder()
        .deadline(Duration::from_secs(u64::MAX))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "deadline");
}

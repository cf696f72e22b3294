//! Live reload of a running retry layer and of its budget: what changes for
//! the next request, for a request in progress, and what is kept. Paused
//! tokio time and manual clocks only.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::{BoxError, Clock, ReloadError};
use seawall_retry::{Backoff, RetryBudget, RetryBudgetConfig, RetryConfig, RetryLayer};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A backend that always fails, counting its calls.
fn failing(
    calls: &Arc<AtomicUsize>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future = Ready<Result<u32, BoxError>>> + Clone
{
    let calls = calls.clone();
    tower::service_fn(move |_: u32| {
        calls.fetch_add(1, Ordering::Relaxed);
        ready(Err::<u32, BoxError>("connection reset".into()))
    })
}

fn config(max_attempts: u32) -> RetryConfig {
    RetryConfig::new()
        .name("users")
        .max_attempts(max_attempts)
        .backoff(Backoff::constant(ms(100)))
        .budget(RetryBudgetConfig::new().ratio(0.0).min_per_sec(100))
}

#[tokio::test(start_paused = true)]
async fn new_max_attempts_apply_to_the_next_request_of_services_already_built() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RetryLayer::from_config(&config(2)).unwrap();
    let svc = layer.layer(failing(&calls));
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(calls.swap(0, Ordering::Relaxed), 2);
    layer.reload(&config(4)).unwrap();
    assert_eq!(layer.config().max_attempts, 4);
    assert!(svc.clone().oneshot(2).await.is_err());
    assert_eq!(calls.swap(0, Ordering::Relaxed), 4);
    layer.reload(&config(1)).unwrap();
    assert!(svc.clone().oneshot(3).await.is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(layer.stats().requests, 3);
}

#[tokio::test(start_paused = true)]
async fn a_request_in_progress_follows_max_attempts_at_its_next_decision() {
    // Raised while the request backs off after its first attempt: it goes
    // on to the new limit.
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RetryLayer::from_config(&config(2)).unwrap();
    let svc = layer.layer(failing(&calls));
    let mut request = task::spawn(svc.clone().oneshot(1));
    assert_pending!(request.poll());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    layer.reload(&config(4)).unwrap();
    for _ in 0..3 {
        tokio::time::advance(ms(100)).await;
        let _ = request.poll();
    }
    assert!(assert_ready!(request.poll()).is_err());
    assert_eq!(calls.swap(0, Ordering::Relaxed), 4);

    // Lowered while it backs off: the retry already decided is sent, and
    // the request stops at its next decision.
    layer.reload(&config(4)).unwrap();
    let mut request = task::spawn(svc.clone().oneshot(2));
    assert_pending!(request.poll());
    layer.reload(&config(1)).unwrap();
    tokio::time::advance(ms(100)).await;
    let err = assert_ready!(request.poll()).unwrap_err();
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    let err = err.downcast_ref::<seawall_retry::RetryError>().unwrap();
    assert_eq!(err.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_new_backoff_applies_to_requests_that_retry_after_the_reload() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RetryLayer::from_config(&config(2)).unwrap();
    let svc = layer.layer(failing(&calls));
    layer
        .reload(&config(2).backoff(Backoff::constant(ms(10))))
        .unwrap();
    let mut request = task::spawn(svc.clone().oneshot(1));
    assert_pending!(request.poll());
    tokio::time::advance(ms(10)).await;
    assert!(assert_ready!(request.poll()).is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn the_budget_balance_is_kept() {
    let calls = Arc::new(AtomicUsize::new(0));
    // No floor, every request pays for one retry.
    let cfg = config(2).budget(RetryBudgetConfig::new().ratio(1.0).min_per_sec(0));
    let layer = RetryLayer::from_config(&cfg).unwrap();
    let svc = layer.layer(failing(&calls));
    // Three requests: three deposits, three retries withdrawn.
    for i in 0..3 {
        assert!(svc.clone().oneshot(i).await.is_err());
    }
    let budget = layer.budget().unwrap().clone();
    assert_eq!(budget.balance(), 0.0);
    for _ in 0..4 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 4.0);
    // Another max_attempts and ratio: the balance stays what it was.
    layer
        .reload(
            &cfg.clone()
                .max_attempts(3)
                .budget(RetryBudgetConfig::new().ratio(0.5).min_per_sec(0)),
        )
        .unwrap();
    assert_eq!(budget.balance(), 4.0);
    // New deposits at the new ratio.
    budget.deposit();
    assert_eq!(budget.balance(), 4.5);
    // A floor adds its reserve (1/s × 10s) at once.
    layer
        .reload(
            &cfg.clone()
                .max_attempts(3)
                .budget(RetryBudgetConfig::new().ratio(0.5).min_per_sec(1)),
        )
        .unwrap();
    assert_eq!(budget.balance(), 14.5);
    assert_eq!(layer.config().budget.min_per_sec, 1);
    assert_eq!(budget.config().min_per_sec, 1);
}

#[test]
fn a_new_ttl_refiles_what_counts_by_age() {
    let (clock, hand) = Clock::manual();
    let budget = RetryBudget::new(1.0, 0, Duration::from_secs(10))
        .unwrap()
        .clock(clock);
    for _ in 0..3 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 3.0);
    hand.advance(Duration::from_secs(5));
    assert_eq!(budget.balance(), 3.0);
    for _ in 0..2 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 5.0);
    // A longer window: all kept, and the deposits of 5s ago count until
    // they are 20s old, not 10s.
    let longer = RetryBudgetConfig::new()
        .ratio(1.0)
        .min_per_sec(0)
        .ttl(Duration::from_secs(20));
    budget.reload(&longer).unwrap();
    assert_eq!(budget.balance(), 5.0);
    hand.advance(Duration::from_secs(8)); // they are 13s old
    assert_eq!(budget.balance(), 5.0);
    // A shorter one: those older than it go at once (13s > 4s), the
    // younger ones (8s > 4s) too; a fresh deposit stays.
    budget.deposit();
    assert_eq!(budget.balance(), 6.0);
    let shorter = longer.clone().ttl(Duration::from_secs(4));
    budget.reload(&shorter).unwrap();
    assert_eq!(budget.balance(), 1.0);
    hand.advance(Duration::from_secs(4));
    assert_eq!(budget.balance(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn honour_hints_switches_the_reader_on_and_off() {
    use seawall_retry::hint::{Hint, hint_fn};
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = RetryLayer::builder()
        .name("users")
        .max_attempts(3)
        .backoff(Backoff::constant(ms(1)))
        .no_budget()
        .hint(hint_fn(|_: &Result<u32, BoxError>| Hint::DoNotRetry))
        .build()
        .unwrap();
    let svc = layer.layer(failing(&calls));
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(calls.swap(0, Ordering::Relaxed), 1, "the peer said no");
    layer.reload(&layer.config().honour_hints(false)).unwrap();
    assert!(svc.clone().oneshot(2).await.is_err());
    assert_eq!(calls.swap(0, Ordering::Relaxed), 3, "hints ignored");
    layer.reload(&layer.config().honour_hints(true)).unwrap();
    assert!(svc.clone().oneshot(3).await.is_err());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn refused_reloads_change_nothing() {
    let layer = RetryLayer::from_config(&config(3)).unwrap();
    let before = layer.config();
    let balance = layer.budget().unwrap().balance();
    let cases: Vec<(RetryConfig, Option<&str>)> = vec![
        (config(0), None),
        (config(5).budget(RetryBudgetConfig::new().ratio(2.0)), None),
        (config(5).deadline(Duration::ZERO), None),
        (config(5).name("other"), Some("name")),
        (
            config(5).budget(RetryBudgetConfig::new().enabled(false)),
            Some("budget.enabled"),
        ),
    ];
    for (bad, field) in cases {
        let err = layer.reload(&bad).unwrap_err();
        match field {
            Some(f) => assert_eq!(err.not_in_place_field(), Some(f), "{err}"),
            None => assert!(matches!(err, ReloadError::Invalid(_)), "{err}"),
        }
        assert_eq!(layer.config(), before);
        assert_eq!(layer.budget().unwrap().config(), before.budget);
        assert_eq!(layer.budget().unwrap().balance(), balance);
    }
    let err = layer
        .budget()
        .unwrap()
        .reload(&RetryBudgetConfig::new().ttl(Duration::from_secs(61)))
        .unwrap_err();
    assert!(matches!(err, ReloadError::Invalid(_)));
    // A layer without a budget cannot gain one in place.
    let bare = RetryLayer::from_config(&config(3).budget(RetryBudgetConfig::new().enabled(false)))
        .unwrap();
    let err = bare.reload(&config(3)).unwrap_err();
    assert_eq!(err.not_in_place_field(), Some("budget.enabled"));
}

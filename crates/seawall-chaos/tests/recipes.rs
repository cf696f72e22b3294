//! The recipes of `docs/chaos.md`, run against the real seawall layers:
//! my breaker opens, my retries stay within budget, my fallback answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seawall_breaker::{BreakerLayer, State, TripPolicy};
use seawall_chaos::{ChaosLayer, Injected, Placement};
use seawall_core::{BoxError, OverloadReason, Overloaded, Rejection, RejectionKind};
use seawall_fallback::FallbackLayer;
use seawall_retry::{Backoff, RetryBudgetConfig, RetryLayer};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// The service under test: doubles its input; counts what reaches it.
fn backend(calls: Arc<AtomicU64>) -> impl Service<u32, Response = u32, Error = BoxError> + Clone {
    service_fn(move |x: u32| {
        calls.fetch_add(1, Ordering::Relaxed);
        async move { Ok::<_, BoxError>(x * 2) }
    })
}

#[tokio::test(start_paused = true)]
async fn recipe_my_breaker_opens() {
    let calls = Arc::new(AtomicU64::new(0));
    // Every call fails before it reaches the backend.
    let chaos = ChaosLayer::builder()
        .name("payments")
        .seed(1)
        .error_rate(1.0)
        .build()
        .unwrap();
    let breaker = BreakerLayer::builder()
        .policy(TripPolicy::consecutive_failures(5))
        .open_duration(Duration::from_secs(30))
        .success_threshold(2)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(chaos.clone())
        .service(backend(calls.clone()));

    for _ in 0..5 {
        let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
        assert!(err.downcast_ref::<Injected>().is_some(), "{err}");
    }
    assert_eq!(breaker.state(), State::Open);

    // Open: refused at once by the breaker; chaos is not even reached.
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    let rejection = Rejection::find(&*err).expect("a seawall rejection");
    assert_eq!(rejection.kind(), RejectionKind::CircuitOpen);
    assert_eq!(chaos.stats().calls, 5);

    // The fault clears: after `open_duration` the probes pass and it closes.
    chaos.handle().disable();
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..2 {
        assert_eq!(svc.ready().await.unwrap().call(21).await.unwrap(), 42);
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn recipe_my_retries_stay_within_budget() {
    let calls = Arc::new(AtomicU64::new(0));
    // Placed after: the backend does the work, the caller sees a failure
    // (the case where a retry repeats work).
    let chaos = ChaosLayer::builder()
        .seed(7)
        .error_rate(1.0)
        .placement(Placement::After)
        .build()
        .unwrap();
    let (ratio, min_per_sec, ttl) = (0.2, 1, Duration::from_secs(10));
    let retry = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .budget(
            RetryBudgetConfig::new()
                .ratio(ratio)
                .min_per_sec(min_per_sec)
                .ttl(ttl),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(retry.clone())
        .layer(chaos.clone())
        .service(backend(calls.clone()));

    let requests = 100u64;
    for x in 0..requests as u32 {
        assert!(svc.clone().oneshot(x).await.is_err());
    }
    // Within one ttl window: the backend saw at most
    // (1 + ratio) × requests + min_per_sec × ttl calls, not 3 × requests.
    let bound = ((1.0 + ratio) * requests as f64) as u64 + u64::from(min_per_sec) * ttl.as_secs();
    let seen = calls.load(Ordering::Relaxed);
    assert!(seen <= bound, "{seen} calls, budget {bound}");
    assert!(seen > requests, "some retries were made: {seen}");
    assert_eq!(seen, chaos.stats().calls);
    assert_eq!(seen, retry.stats().attempts);
    assert!(retry.stats().budget_refusals > 0);
}

#[tokio::test(start_paused = true)]
async fn recipe_my_fallback_answers() {
    let calls = Arc::new(AtomicU64::new(0));
    // Half the calls are refused as a shedder downstream would refuse them.
    let chaos = ChaosLayer::builder()
        .seed(3)
        .error_rate(0.5)
        .error_with(|_: &u32| Overloaded::new(OverloadReason::HardLimit))
        .build()
        .unwrap();
    let fallback = FallbackLayer::builder()
        .answer_with(|_req: u32, _err: BoxError| Ok::<_, BoxError>(0))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(fallback.clone())
        .layer(chaos.clone())
        .service(backend(calls.clone()));

    let mut from_fallback = 0;
    for x in 1..=100u32 {
        match svc.clone().oneshot(x).await.unwrap() {
            0 => from_fallback += 1,
            y => assert_eq!(y, x * 2),
        }
    }
    // Every refusal was answered, none reached the caller as an error.
    assert_eq!(from_fallback, chaos.stats().errors);
    assert_eq!(fallback.stats().fallbacks, chaos.stats().errors);
    assert_eq!(calls.load(Ordering::Relaxed), 100 - from_fallback);
    assert!((30..=70).contains(&from_fallback), "{from_fallback}");
}

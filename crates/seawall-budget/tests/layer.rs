//! BudgetLayer and KeyedBudgetLayer driven by hand under paused time.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_budget::{
    BudgetConfig, BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget,
};
use seawall_core::KeyMapConfig;
use seawall_core::{BoxError, BudgetExhausted, Rejection, RejectionKind};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt};

/// Counts calls; always ready.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl Service<u32> for Counting {
    type Response = u32;
    type Error = Infallible;
    type Future = Ready<Result<u32, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u32) -> Self::Future {
        self.0.fetch_add(1, Ordering::Relaxed);
        ready(Ok(x))
    }
}

/// A Wait-mode budget of `rate` a second, bursts of `burst`.
fn wait_layer(rate: u32, burst: u32) -> BudgetLayer {
    BudgetLayer::builder()
        .rate(rate)
        .burst(burst)
        .mode(BudgetMode::Wait)
        .build()
        .unwrap()
}

fn retry_after(err: &BoxError) -> Duration {
    let r = Rejection::find(&**err).expect("a rejection");
    assert_eq!(r.kind(), RejectionKind::BudgetExhausted);
    r.retry_after().unwrap()
}

#[tokio::test(start_paused = true)]
async fn reject_mode_fails_fast_with_the_right_retry_after() {
    let calls = Counting::default();
    let layer = BudgetLayer::builder().rate(10).burst(2).build().unwrap();
    let mut svc = layer.layer(calls.clone());

    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    let err = svc.ready().await.unwrap().call(3).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_millis(100));
    assert!(err.downcast_ref::<BudgetExhausted>().is_some());
    assert_eq!(
        calls.0.load(Ordering::Relaxed),
        2,
        "a rejected call never reaches the inner service"
    );

    advance(Duration::from_millis(30)).await;
    let err = svc.ready().await.unwrap().call(4).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_millis(70));

    advance(Duration::from_millis(70)).await;
    assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 5);
    let stats = layer.stats();
    assert_eq!(stats.iterations, 3);
    assert_eq!(stats.exhausted, 2);
}

#[tokio::test(start_paused = true)]
async fn reject_mode_does_not_reserve_in_poll_ready() {
    let layer = BudgetLayer::builder().rate(10).burst(1).build().unwrap();
    let mut svc = layer.layer(Counting::default());
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| svc.poll_ready(cx)));
    assert!(!svc.is_reserved());
    drop(svc);
    assert_eq!(layer.budget().available(), 1, "polling ready took nothing");
}

#[tokio::test(start_paused = true)]
async fn wait_mode_wakes_exactly_when_the_token_is_due() {
    let layer = wait_layer(10, 1);
    let mut svc = layer.layer(Counting::default());
    let mut t = task::spawn(());

    assert_ready_ok!(t.enter(|cx, _| svc.poll_ready(cx)));
    assert!(svc.is_reserved());
    assert_eq!(
        assert_ready_ok!(t.enter(|cx, _| {
            let mut fut = std::pin::pin!(svc.call(1));
            std::future::Future::poll(fut.as_mut(), cx)
        })),
        1
    );

    // The next token is due in 100ms.
    assert_pending!(t.enter(|cx, _| svc.poll_ready(cx)));
    advance(Duration::from_millis(99)).await;
    assert!(!t.is_woken(), "woken before the token was due");
    assert_pending!(t.enter(|cx, _| svc.poll_ready(cx)));
    advance(Duration::from_millis(1)).await;
    assert!(t.is_woken(), "not woken when the token was due");
    assert_ready_ok!(t.enter(|cx, _| svc.poll_ready(cx)));
    assert!(svc.is_reserved());
    // One wait counts as one exhausted event, however often it was polled.
    assert_eq!(layer.stats().exhausted, 1);
    assert_eq!(layer.stats().iterations, 2);
}

#[tokio::test(start_paused = true)]
async fn wait_mode_applies_backpressure_end_to_end() {
    let layer = wait_layer(100, 1);
    let mut svc = layer.layer(Counting::default());
    let start = tokio::time::Instant::now();
    for i in 0..50 {
        assert_eq!(svc.ready().await.unwrap().call(i).await.unwrap(), i);
    }
    // 1 at once, then one every 10ms.
    assert_eq!(start.elapsed(), Duration::from_millis(490));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_service_gives_its_reserved_token_back() {
    let layer = wait_layer(10, 2);
    let mut svc = layer.layer(Counting::default());
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| svc.poll_ready(cx)));
    // Polling again does not take a second token.
    assert_ready_ok!(t.enter(|cx, _| svc.poll_ready(cx)));
    assert_eq!(layer.budget().available(), 1);

    let clone = svc.clone();
    assert!(!clone.is_reserved(), "a clone starts without a reservation");
    drop(clone);
    assert_eq!(layer.budget().available(), 1);

    drop(svc);
    assert_eq!(layer.budget().available(), 2);
    assert_eq!(
        layer.stats().iterations,
        0,
        "a refunded token was never used"
    );
}

#[tokio::test(start_paused = true)]
async fn a_parked_service_dropped_leaves_nothing_behind() {
    let layer = wait_layer(10, 1);
    let mut first = layer.layer(Counting::default());
    let mut second = first.clone();
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| first.poll_ready(cx)));
    assert_pending!(t.enter(|cx, _| second.poll_ready(cx)));
    drop(second); // parked on its timer; held nothing
    drop(first); // held a token: given back
    assert_eq!(layer.budget().available(), 1);
}

#[tokio::test(start_paused = true)]
async fn wait_mode_call_without_poll_ready_never_panics() {
    let layer = wait_layer(10, 1);
    let mut svc = layer.layer(Counting::default());
    assert_eq!(svc.call(1).await.unwrap(), 1);
    let err = svc.call(2).await.unwrap_err();
    assert_eq!(retry_after(&err), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_response_future_holds_nothing() {
    let calls = Counting::default();
    let layer = BudgetLayer::builder().rate(10).burst(2).build().unwrap();
    let mut svc = layer.layer(calls.clone());
    let fut = svc.ready().await.unwrap().call(1);
    drop(fut);
    let rejected = {
        svc.ready().await.unwrap().call(2).await.unwrap();
        svc.ready().await.unwrap().call(3)
    };
    drop(rejected);
    // The dropped call was made (its token spent); the dropped rejection
    // leaves no state behind.
    assert_eq!(calls.0.load(Ordering::Relaxed), 2);
    let stats = layer.stats();
    assert_eq!((stats.iterations, stats.exhausted), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_layer_from_a_loop_budget_shares_its_tokens() {
    let budget = LoopBudget::builder().rate(10).burst(2).build().unwrap();
    let layer = BudgetLayer::from_budget(budget.clone(), BudgetMode::Reject);
    let mut svc = layer.layer(Counting::default());
    budget.consume(1);
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert!(svc.ready().await.unwrap().call(2).await.is_err());
    assert!(budget.try_consume(1).is_err());
}

#[tokio::test(start_paused = true)]
async fn errors_from_the_inner_service_pass_through() {
    let layer = BudgetLayer::builder().rate(10).build().unwrap();
    let mut svc = layer.layer(tower::service_fn(|_: u32| async {
        Err::<u32, _>(std::io::Error::other("boom"))
    }));
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(Rejection::find(&*err).is_none());
    assert_eq!(err.to_string(), "boom");
}

#[tokio::test(start_paused = true)]
async fn keyed_budgets_are_independent_and_labelled() {
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(10).burst(2));
    let layer = KeyedBudgetLayer::new(|x: &u32| x % 2, &cfg).unwrap();
    let calls = Counting::default();
    let mut svc = layer.layer(calls.clone());

    for x in [0, 2] {
        svc.ready().await.unwrap().call(x).await.unwrap();
    }
    let err = svc.ready().await.unwrap().call(4).await.unwrap_err();
    let r = Rejection::find(&*err).unwrap();
    assert_eq!(r.key(), Some("0"));
    assert_eq!(r.retry_after(), Some(Duration::from_millis(100)));
    // Key 1 is untouched by key 0's spending.
    for x in [1, 3] {
        svc.ready().await.unwrap().call(x).await.unwrap();
    }
    assert_eq!(layer.available(&0), 0);
    assert_eq!(layer.available(&1), 0);
    assert_eq!(layer.available(&7), 2, "an unknown key has a full budget");
    let stats = layer.stats();
    assert_eq!((stats.keys, stats.admitted, stats.exhausted), (2, 4, 1));
    assert_eq!(calls.0.load(Ordering::Relaxed), 4);

    advance(Duration::from_millis(100)).await;
    svc.ready().await.unwrap().call(0).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn keyed_map_stays_bounded() {
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(10)).keys(
        KeyMapConfig::new()
            .capacity(4)
            .idle_ttl(Duration::from_secs(1)),
    );
    let layer = KeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap();
    let mut svc = layer.layer(Counting::default());
    for x in 0..100 {
        // One emission interval apart, so every key has refilled and may
        // make room for the next (a key owing tokens may not: see tests/keyed.rs).
        advance(Duration::from_millis(100)).await;
        svc.ready().await.unwrap().call(x).await.unwrap();
        assert!(layer.stats().keys <= 4);
    }
    assert_eq!(layer.stats().overflow, 0);
    // Idle keys are forgotten within two TTLs.
    for _ in 0..2 {
        advance(Duration::from_secs(2)).await;
        layer.evict_idle();
    }
    assert_eq!(layer.stats().keys, 0);
}

#[test]
fn bad_configs_name_their_fields() {
    let err = BudgetLayer::builder().rate(0).build().unwrap_err();
    assert_eq!(err.to_string(), "rate: 0 must be greater than zero");
    let err = BudgetLayer::builder()
        .per(Duration::ZERO)
        .burst(0)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "per: 0s must be longer than zero; burst: 0 must be greater than zero"
    );
    let cfg =
        KeyedBudgetConfig::from(BudgetConfig::new().rate(0)).keys(KeyMapConfig::new().capacity(0));
    let err = KeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "per_key.rate: 0 must be greater than zero; keys.capacity: 0 must be greater than zero"
    );
}

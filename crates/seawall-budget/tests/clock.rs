//! Budgets on a manual clock, with no runtime at all: refill, refusals and
//! their `retry_after`, a keyed budget's idle eviction, all moved by hand.
//! And what a manual clock means for Wait mode, which sleeps on tokio's
//! timer.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_budget::{
    BudgetConfig, BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget,
};
use seawall_core::{BoxError, Clock, KeyMapConfig, Rejection};
use seawall_test_support::service::Echo;
use tower::{Layer, Service};

const MS: Duration = Duration::from_millis(1);

/// `poll_ready`, `call` and one poll of the response, by hand.
fn call_now<S: Service<u32, Error = BoxError>>(
    svc: &mut S,
    req: u32,
) -> Result<S::Response, BoxError> {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Err(e),
        Poll::Pending => panic!("not ready"),
    }
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("the response is pending"),
    }
}

fn retry_after(err: &BoxError) -> Duration {
    Rejection::find(&**err)
        .and_then(|r| r.retry_after())
        .expect("a budget rejection")
}

#[test]
fn a_loop_budget_refills_and_refuses_by_hand() {
    let (clock, hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .rate(10)
        .burst(2)
        .clock(clock)
        .build()
        .unwrap();
    assert!(!budget.clock().follows_tokio());
    assert!(budget.try_consume(2).is_ok());
    assert_eq!(budget.available(), 0);
    assert_eq!(budget.utilisation(), 1.0);
    assert_eq!(budget.try_consume(1).unwrap_err().retry_after(), 100 * MS);
    assert!(!budget.can_proceed());

    hand.advance(40 * MS);
    assert_eq!(budget.try_consume(1).unwrap_err().retry_after(), 60 * MS);
    hand.advance(60 * MS);
    assert!(budget.can_proceed());
    budget.consume(1);
    // Into debt: five more than the burst, paid back at 10 a second.
    budget.consume(5);
    assert_eq!(budget.try_consume(1).unwrap_err().retry_after(), 600 * MS);
    hand.advance(Duration::from_secs(10));
    assert_eq!(budget.available(), 2);
    let stats = budget.stats();
    assert_eq!(stats.iterations, 2 + 1 + 5);
    assert_eq!(stats.exhausted, 4);
}

#[test]
fn a_manual_clock_that_saturates_does_not_panic() {
    let (clock, hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .rate(1)
        .burst(1)
        .clock(clock)
        .build()
        .unwrap();
    budget.consume(u32::MAX);
    hand.advance(Duration::MAX);
    // The clock stops at its largest reading: nothing panics, and the budget
    // still limits (a reading near u64::MAX would have saturated its sums
    // and admitted everything).
    assert!(budget.try_consume(1).is_ok(), "the debt is paid by then");
    for _ in 0..1000 {
        assert!(budget.try_consume(1).is_err(), "1 a second, burst 1");
    }
    let _ = budget.available();
    let _ = budget.stats();
}

#[test]
fn a_budget_layer_refuses_and_refills_without_a_runtime() {
    let (clock, hand) = Clock::manual();
    let layer = BudgetLayer::builder()
        .rate(10)
        .burst(2)
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    assert_eq!(call_now(&mut svc, 1).unwrap(), 1);
    assert_eq!(call_now(&mut svc, 2).unwrap(), 2);
    let err = call_now(&mut svc, 3).unwrap_err();
    assert_eq!(retry_after(&err), 100 * MS);
    hand.advance(99 * MS);
    assert_eq!(retry_after(&call_now(&mut svc, 4).unwrap_err()), MS);
    hand.advance(MS);
    assert_eq!(call_now(&mut svc, 5).unwrap(), 5);
    let stats = layer.stats();
    assert_eq!((stats.iterations, stats.exhausted), (3, 2));
}

#[test]
fn from_config_keeps_the_clock_of_the_builder() {
    let (clock, hand) = Clock::manual();
    let cfg = BudgetConfig::new().rate(1).burst(1);
    let layer = seawall_budget::BudgetBuilder::from_config(cfg)
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    assert!(call_now(&mut svc, 1).is_ok());
    assert!(call_now(&mut svc, 1).is_err());
    hand.advance(Duration::from_secs(1));
    assert!(call_now(&mut svc, 1).is_ok());
}

#[test]
fn wait_mode_on_a_manual_clock_takes_the_token_when_polled_after_the_hand_moves() {
    // A token available needs no timer, so no runtime either.
    let (clock, hand) = Clock::manual();
    let layer = BudgetLayer::builder()
        .rate(10)
        .burst(1)
        .mode(BudgetMode::Wait)
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    assert_eq!(call_now(&mut svc, 1).unwrap(), 1);
    hand.advance(100 * MS);
    assert_eq!(call_now(&mut svc, 2).unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn wait_mode_on_a_manual_clock_is_not_woken_by_tokio_time_alone() {
    let (clock, hand) = Clock::manual();
    let layer = BudgetLayer::builder()
        .rate(10)
        .burst(1)
        .mode(BudgetMode::Wait)
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = tokio_test::task::spawn(layer.layer(Echo));
    assert_eq!(call_now(&mut *svc, 1).unwrap(), 1);
    // Spent: parks on a tokio timer set to "tokio now + 100ms".
    assert!(
        svc.enter(|cx, mut s| Service::<u32>::poll_ready(&mut *s, cx))
            .is_pending()
    );
    // Tokio's clock fires the timer, but the manual clock has not moved:
    // still no token, and the timer is set again (no spinning).
    tokio::time::advance(100 * MS).await;
    assert!(svc.is_woken());
    assert!(
        svc.enter(|cx, mut s| Service::<u32>::poll_ready(&mut *s, cx))
            .is_pending()
    );
    // Once the hand moves, the next poll takes the token.
    hand.advance(100 * MS);
    assert!(
        svc.enter(|cx, mut s| Service::<u32>::poll_ready(&mut *s, cx))
            .is_ready()
    );
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(
        pin!(svc.call(2)).poll(&mut cx),
        Poll::Ready(Ok(2))
    ));
    assert_eq!(layer.stats().exhausted, 1, "one wait counted once");
}

fn keyed(clock: Clock) -> KeyedBudgetLayer<fn(&u32) -> u32, u32> {
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(10).burst(1)).keys(
        KeyMapConfig::new()
            .capacity(2)
            .idle_ttl(Duration::from_secs(1)),
    );
    KeyedBudgetLayer::new((|k: &u32| *k) as fn(&u32) -> u32, &cfg)
        .unwrap()
        .clock(clock)
}

#[test]
fn a_keyed_budget_refills_each_key_by_hand() {
    let (clock, hand) = Clock::manual();
    let layer = keyed(clock);
    let mut svc = layer.layer(Echo);
    assert!(call_now(&mut svc, 1).is_ok());
    assert!(call_now(&mut svc, 2).is_ok());
    let err = call_now(&mut svc, 1).unwrap_err();
    assert_eq!(retry_after(&err), 100 * MS);
    assert_eq!(Rejection::find(&*err).unwrap().key(), Some("1"));
    assert_eq!(layer.available(&1), 0);
    hand.advance(100 * MS);
    assert_eq!(layer.available(&1), 1);
    assert!(call_now(&mut svc, 1).is_ok());
}

#[test]
fn a_keyed_budget_evicts_idle_keys_on_its_own_clock() {
    let (clock, hand) = Clock::manual();
    let layer = keyed(clock);
    let mut svc = layer.layer(Echo);
    assert!(call_now(&mut svc, 1).is_ok());
    assert!(call_now(&mut svc, 2).is_ok());
    // Both keys owe their token: a third key finds the map full and is
    // served by the overflow budget.
    assert!(call_now(&mut svc, 3).is_ok());
    assert_eq!(layer.stats().overflow, 1);
    // Idle past the TTL and refilled: forgotten, by the manual clock alone.
    hand.advance(Duration::from_secs(1));
    assert_eq!(layer.evict_idle(), 2);
    assert_eq!(layer.stats().keys, 0);
    assert!(call_now(&mut svc, 3).is_ok());
    assert_eq!(layer.stats().keys, 1);
}

#[test]
fn a_key_that_owes_tokens_outlives_its_ttl() {
    let (clock, hand) = Clock::manual();
    let cfg = KeyedBudgetConfig::from(
        BudgetConfig::new()
            .rate(1)
            .per(Duration::from_secs(10))
            .burst(1),
    )
    .keys(KeyMapConfig::new().capacity(4).idle_ttl(MS));
    let layer = KeyedBudgetLayer::new(|k: &u32| *k, &cfg)
        .unwrap()
        .clock(clock);
    let mut svc = layer.layer(Echo);
    assert!(call_now(&mut svc, 1).is_ok());
    hand.advance(Duration::from_secs(5));
    assert_eq!(layer.evict_idle(), 0, "key 1 still owes 5s");
    hand.advance(Duration::from_secs(5));
    assert_eq!(layer.evict_idle(), 1);
}

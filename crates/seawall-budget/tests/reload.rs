//! Live reload of running budgets: what changes from the next call, what is
//! kept, and what a reload refuses. Manual clocks and paused tokio time only.

use std::convert::Infallible;
use std::time::Duration;

use seawall_budget::{
    BudgetConfig, BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget,
};
use seawall_core::{Clock, KeyMapConfig, ReloadError};
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt, service_fn};

type Echo = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Infallible>>>;

fn echo() -> Echo {
    service_fn(|x: u32| std::future::ready(Ok(x)))
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn spent_tokens_stay_spent() {
    let (clock, hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .rate(10)
        .burst(4)
        .clock(clock)
        .build()
        .unwrap();
    budget.try_consume(4).unwrap();
    // Same rate and burst, another backoff: nothing spent comes back.
    budget
        .reload(&budget.config().backoff_initial(Duration::from_millis(5)))
        .unwrap();
    assert_eq!(budget.available(), 0);
    assert!(budget.try_consume(1).is_err());
    assert_eq!(budget.next_backoff(), Duration::from_millis(5));
    // The refill goes on as before.
    hand.advance(100 * MS);
    assert_eq!(budget.available(), 1);
    assert_eq!(budget.stats().iterations, 4);
}

#[test]
fn a_higher_rate_admits_more_from_the_next_call() {
    let (clock, hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .rate(10)
        .burst(2)
        .clock(clock)
        .build()
        .unwrap();
    budget.try_consume(2).unwrap();
    let refused = budget.try_consume(1).unwrap_err();
    assert_eq!(refused.retry_after(), 100 * MS);
    budget.reload(&budget.config().rate(100)).unwrap();
    // Both tokens still owed, each now worth 10ms.
    assert_eq!(budget.try_consume(1).unwrap_err().retry_after(), 10 * MS);
    hand.advance(10 * MS);
    assert!(budget.try_consume(1).is_ok());
    hand.advance(10 * MS);
    assert!(budget.try_consume(1).is_ok());
    assert!(budget.try_consume(1).is_err());
}

#[test]
fn a_lower_rate_makes_what_is_owed_take_longer() {
    let (clock, _hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .rate(100)
        .burst(4)
        .clock(clock)
        .build()
        .unwrap();
    budget.try_consume(3).unwrap(); // 1 of 4 left
    budget.reload(&budget.config().rate(10)).unwrap();
    assert_eq!(budget.available(), 1);
    budget.try_consume(1).unwrap();
    assert_eq!(budget.try_consume(1).unwrap_err().retry_after(), 100 * MS);
}

#[test]
fn a_smaller_burst_caps_the_bank_and_a_larger_one_fills_at_the_rate() {
    let (clock, hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .rate(10)
        .burst(10)
        .clock(clock)
        .build()
        .unwrap();
    assert_eq!(budget.available(), 10);
    budget.reload(&budget.config().burst(3)).unwrap();
    assert_eq!(budget.available(), 3);
    assert_eq!(budget.burst(), 3);
    budget.try_consume(1).unwrap(); // 2 of 3
    // A larger burst hands out nothing at once...
    budget.reload(&budget.config().burst(6)).unwrap();
    assert_eq!(budget.available(), 2);
    // ...and fills up to it at the rate.
    hand.advance(400 * MS);
    assert_eq!(budget.available(), 6);
    hand.advance(Duration::from_secs(10));
    assert_eq!(budget.available(), 6);
}

#[test]
fn debt_stays_owed_across_a_reload() {
    let (clock, hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .rate(10)
        .burst(2)
        .clock(clock)
        .build()
        .unwrap();
    budget.consume(5); // 3 tokens past the burst
    budget.reload(&budget.config().rate(20).burst(4)).unwrap();
    // Owed: 5 - 2 = 3 past the old burst, i.e. -3 available; at 20/s that
    // is 150ms to come back to zero, 50ms more for the first token.
    assert_eq!(budget.try_consume(1).unwrap_err().retry_after(), 200 * MS);
    hand.advance(200 * MS);
    assert!(budget.try_consume(1).is_ok());
}

#[test]
fn invalid_and_not_in_place_change_nothing() {
    let (clock, _hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .name("sweeper")
        .rate(10)
        .burst(4)
        .clock(clock)
        .build()
        .unwrap();
    budget.try_consume(1).unwrap();
    let before = budget.config();
    let err = budget.reload(&before.clone().rate(0).burst(2)).unwrap_err();
    assert!(matches!(err, ReloadError::Invalid(_)), "{err}");
    let err = budget
        .reload(&before.clone().name("other").rate(99))
        .unwrap_err();
    assert_eq!(err.not_in_place_field(), Some("name"));
    assert_eq!(budget.config(), before);
    assert_eq!(budget.available(), 3);
    assert_eq!(budget.burst(), 4);

    let layer = BudgetLayer::builder().rate(10).burst(2).build().unwrap();
    let config = BudgetConfig::new().rate(10).burst(2);
    for (bad, field) in [
        (config.clone().mode(BudgetMode::Wait).rate(50), "mode"),
        (config.clone().name("x").rate(50), "name"),
        (config.clone().advertise(true).rate(50), "advertise"),
    ] {
        let err = layer.reload(&bad).unwrap_err();
        assert_eq!(err.not_in_place_field(), Some(field));
        assert_eq!(layer.budget().config().rate, 10);
    }
    let err = layer
        .reload(&config.clone().per(Duration::ZERO))
        .unwrap_err();
    assert!(matches!(err, ReloadError::Invalid(_)));
    assert_eq!(layer.budget().emission_interval(), 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn services_built_before_the_reload_see_it() {
    let config = BudgetConfig::new().rate(10).burst(1);
    let layer = BudgetLayer::from_config(&config).unwrap();
    let a = layer.layer(echo());
    let b = a.clone();
    assert!(a.clone().oneshot(1).await.is_ok());
    assert!(b.clone().oneshot(2).await.is_err());
    layer.reload(&config.clone().rate(1000).burst(5)).unwrap();
    tokio::time::advance(5 * MS).await;
    // 5ms at 1000/s: 5 tokens, both old services share them.
    for i in 0..5 {
        let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
        assert!(svc.oneshot(i).await.is_ok(), "call {i}");
    }
    assert!(a.clone().oneshot(9).await.is_err());
    assert_eq!(layer.stats().iterations, 6);
}

#[tokio::test(start_paused = true)]
async fn wait_mode_waiters_survive_a_reload() {
    let config = BudgetConfig::new().rate(10).burst(1).mode(BudgetMode::Wait);
    let layer = BudgetLayer::from_config(&config).unwrap();
    let mut first = layer.layer(echo());
    let mut waiter = layer.layer(echo());
    assert!(first.ready().await.is_ok());
    // The only token is held by `first`: the waiter parks on its timer.
    let mut ready = task::spawn(waiter.ready());
    assert_pending!(ready.poll());
    layer.reload(&config.clone().rate(20).burst(2)).unwrap();
    assert_pending!(ready.poll());
    // `first` still holds its token through the reload and spends it.
    assert_eq!(first.call(1).await.unwrap(), 1);
    // The waiter wakes when its token was due under the old rate (100ms)
    // and takes it under the new one; it is never refused.
    tokio::time::advance(100 * MS).await;
    assert!(ready.is_woken());
    assert_ready_ok!(ready.poll());
    drop(ready);
    assert_eq!(waiter.call(2).await.unwrap(), 2);
    assert_eq!(layer.stats().iterations, 2);
    assert_eq!(layer.stats().exhausted, 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_held_across_a_reload_is_given_back_whole() {
    let config = BudgetConfig::new().rate(10).burst(2).mode(BudgetMode::Wait);
    let layer = BudgetLayer::from_config(&config).unwrap();
    let mut held = layer.layer(echo());
    assert!(held.ready().await.is_ok());
    layer.reload(&config.clone().rate(100)).unwrap();
    assert_eq!(layer.budget().available(), 1);
    // Dropped unused: its token comes back, at the new rate's worth.
    drop(held);
    assert_eq!(layer.budget().available(), 2);
    assert_eq!(layer.stats().iterations, 0);
}

#[test]
fn keyed_reload_reaches_held_keys_new_keys_and_the_overflow() {
    let (clock, hand) = Clock::manual();
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(10).burst(4))
        .keys(KeyMapConfig::new().capacity(1));
    let layer = KeyedBudgetLayer::new(|k: &u32| *k, &cfg)
        .unwrap()
        .clock(clock);
    let mut svc = layer.layer(echo());
    for _ in 0..4 {
        assert!(seawall_test_support::service::ready_call_ok(&mut svc, 7));
    }
    assert!(!seawall_test_support::service::ready_call_ok(&mut svc, 7));
    // Key 8 finds the map full of a key owing tokens: the overflow budget.
    assert!(seawall_test_support::service::ready_call_ok(&mut svc, 8));
    assert_eq!(layer.stats().overflow, 1);

    let next = KeyedBudgetConfig::from(BudgetConfig::new().rate(100).burst(2))
        .keys(KeyMapConfig::new().capacity(1));
    layer.reload(&next).unwrap();
    assert_eq!(layer.config(), next);
    assert_eq!(layer.emission_interval(), 10 * MS);
    // Key 7 spent its burst: still spent, now refilling at 100/s.
    assert_eq!(layer.available(&7), 0);
    assert!(!seawall_test_support::service::ready_call_ok(&mut svc, 7));
    hand.advance(10 * MS);
    assert!(seawall_test_support::service::ready_call_ok(&mut svc, 7));
    assert!(!seawall_test_support::service::ready_call_ok(&mut svc, 7));
    // A key never seen gets the new burst.
    assert_eq!(layer.available(&99), 2);
    // The overflow budget had 3 of 4: capped at 2.
    assert!(seawall_test_support::service::ready_call_ok(&mut svc, 9));
    assert!(seawall_test_support::service::ready_call_ok(&mut svc, 10));
    assert!(!seawall_test_support::service::ready_call_ok(&mut svc, 11));
    assert_eq!(layer.stats().overflow_rejected, 1);

    // Refused changes leave it as it is.
    let err = layer
        .reload(
            &KeyedBudgetConfig::from(BudgetConfig::new().rate(5))
                .keys(KeyMapConfig::new().capacity(10)),
        )
        .unwrap_err();
    assert_eq!(err.not_in_place_field(), Some("keys"));
    let err = layer
        .reload(
            &KeyedBudgetConfig::from(BudgetConfig::new().rate(5).mode(BudgetMode::Wait))
                .keys(KeyMapConfig::new().capacity(1)),
        )
        .unwrap_err();
    assert!(matches!(err, ReloadError::Invalid(_)));
    assert_eq!(layer.config(), next);
}

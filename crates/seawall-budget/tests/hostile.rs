//! Hostile config values, one test each: every one is a `ConfigError` naming
//! its field, or a value that serves without panicking.

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_budget::bounded::{self, LaneConfig, OverflowPolicy, PriorityConfig};
use seawall_budget::{
    BoundedLoop, BudgetConfig, BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer,
    LoopBudget, LoopBudgetConfig,
};
use seawall_core::KeyMapConfig;
use seawall_core::config::{MAX_CAPACITY, MAX_DURATION};
use tower::{Layer, Service, ServiceExt, service_fn};

const YEAR: Duration = MAX_DURATION;

fn echo() -> impl Service<u32, Response = u32, Error = std::convert::Infallible> + Clone {
    service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) })
}

// Queues: capacities past the bound used to be reserved up front, so
// `4_294_967_295` aborted the process ("memory allocation of ... failed") and
// `usize::MAX` panicked ("capacity overflow").

#[test]
fn a_queue_capacity_of_u32_max_is_a_config_error() {
    let err = bounded::channel::<u64>(4_294_967_295, OverflowPolicy::Wait).unwrap_err();
    assert_eq!(
        err.to_string(),
        "capacity: 4294967295 must be at most 16777216 (2^24)"
    );
}

#[test]
fn a_queue_capacity_of_usize_max_is_a_config_error() {
    for capacity in [usize::MAX, i64::MAX as usize, MAX_CAPACITY + 1] {
        let err = bounded::channel::<u64>(capacity, OverflowPolicy::DropOldest).unwrap_err();
        assert_eq!(err.field(), "capacity");
    }
}

#[tokio::test]
async fn a_queue_of_max_capacity_serves() {
    let (tx, mut rx) = bounded::channel::<u64>(MAX_CAPACITY, OverflowPolicy::Reject).unwrap();
    for i in 0..1000 {
        assert!(tx.send(i).await.is_ok());
    }
    assert_eq!(rx.recv().await, Some(0));
    assert_eq!(rx.capacity(), MAX_CAPACITY);
    assert_eq!(rx.len(), 999);
}

#[test]
fn a_huge_lane_capacity_is_a_config_error_naming_the_lane() {
    let cfg = PriorityConfig::new([
        LaneConfig::new(4, OverflowPolicy::Wait),
        LaneConfig::new(MAX_CAPACITY, OverflowPolicy::Reject),
        LaneConfig::new(4_294_967_295, OverflowPolicy::DropOldest),
        LaneConfig::new(usize::MAX, OverflowPolicy::DropNewest),
    ]);
    let err = bounded::priority_channel::<u64>(&cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "lanes[2].capacity: 4294967295 must be at most 16777216 (2^24); \
         lanes[3].capacity: 18446744073709551615 must be at most 16777216 (2^24)"
    );
}

#[test]
fn too_many_lanes_is_a_config_error() {
    let cfg = PriorityConfig::new(
        std::iter::repeat_n(LaneConfig::new(1, OverflowPolicy::Reject), 257).collect::<Vec<_>>(),
    );
    let err = bounded::priority_channel::<u64>(&cfg).unwrap_err();
    assert_eq!(err.to_string(), "lanes: 257 lanes must be at most 256");
    let cfg = PriorityConfig::new(
        std::iter::repeat_n(LaneConfig::new(1, OverflowPolicy::Reject), 256).collect::<Vec<_>>(),
    );
    assert!(bounded::priority_channel::<u64>(&cfg).is_ok());
}

#[tokio::test]
async fn a_strict_priority_channel_with_a_huge_fair_every_serves() {
    for fair_every in [0, 2, usize::MAX] {
        let cfg = PriorityConfig::new([
            LaneConfig::new(MAX_CAPACITY, OverflowPolicy::Wait),
            LaneConfig::new(MAX_CAPACITY, OverflowPolicy::Wait),
        ])
        .fair_every(fair_every);
        let (tx, mut rx) = bounded::priority_channel::<u32>(&cfg).unwrap();
        let _ = tx.send(1, 10).await.unwrap();
        let _ = tx.send(0, 20).await.unwrap();
        let _ = tx.send(usize::MAX, 30).await.unwrap();
        assert_eq!(rx.recv().await, Some(20));
        assert_eq!(rx.stats().total().capacity, 2 * MAX_CAPACITY);
    }
}

// Durations.

#[test]
fn per_past_max_duration_is_one_error_naming_per() {
    for per in [
        MAX_DURATION + Duration::from_nanos(1),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ] {
        let cfg = BudgetConfig::new().per(per);
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.errors().len(), 1, "{err}");
        assert_eq!(err.field(), "per");
        assert_eq!(err.reason(), "must be at most 365 days (31536000s)");
    }
}

#[test]
fn a_backoff_past_max_duration_is_a_config_error() {
    let cfg = LoopBudgetConfig::new().backoff_max(Duration::MAX);
    assert_eq!(
        cfg.validate().unwrap_err().to_string(),
        "backoff_max: 18446744073709551615.999999999s must be at most 365 days (31536000s)"
    );
    let cfg = LoopBudgetConfig::new()
        .backoff_initial(Duration::from_secs(u64::MAX))
        .backoff_max(Duration::from_secs(u64::MAX));
    let err = cfg.validate().unwrap_err();
    let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
    assert_eq!(fields, ["backoff_initial", "backoff_max"]);
}

#[test]
fn a_keyed_budget_past_its_bounds_is_a_config_error() {
    let cfg = KeyedBudgetConfig::new().keys(
        KeyMapConfig::new()
            .capacity(usize::MAX)
            .idle_ttl(Duration::from_secs(u64::MAX)),
    );
    assert_eq!(
        cfg.validate().unwrap_err().to_string(),
        "keys.capacity: 18446744073709551615 must be at most 16777216 (2^24); \
         keys.idle_ttl: 18446744073709551615s must be at most 365 days (31536000s)"
    );
}

// GCRA arithmetic: `burst × per / rate` is how far ahead of now the
// budget's arrival time may run, in u64 nanoseconds. Past 584 years it
// overflowed and saturated, and a saturated limit admits every take: one
// token a year with a burst of u32::MAX became no limit at all.

#[test]
fn a_burst_that_takes_more_than_max_duration_to_refill_is_a_config_error() {
    let cfg = BudgetConfig::new().rate(1).per(YEAR).burst(u32::MAX);
    assert_eq!(
        cfg.validate().unwrap_err().to_string(),
        "burst: 4294967295 takes more than 365 days to refill at rate / per \
         (burst × per / rate must be at most 31536000s)"
    );
    let cfg = BudgetConfig::new()
        .rate(1)
        .per(Duration::from_secs(1))
        .burst(u32::MAX);
    assert_eq!(cfg.validate().unwrap_err().field(), "burst");
    // The same burst at a rate that refills it within a year is fine.
    let cfg = BudgetConfig::new()
        .rate(1_000_000_000)
        .per(Duration::from_secs(1))
        .burst(u32::MAX);
    assert!(cfg.validate().is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_largest_products_serve_exactly() {
    // u32::MAX tokens a year in bursts of u32::MAX: the largest rate × burst.
    let budget = LoopBudget::builder()
        .rate(u32::MAX)
        .per(YEAR)
        .burst(u32::MAX)
        .build()
        .unwrap();
    assert_eq!(budget.available(), u32::MAX);
    assert!(budget.try_consume(u32::MAX).is_ok());
    let err = budget.try_consume(1).unwrap_err();
    assert_eq!(err.retry_after(), budget.emission_interval());
    budget.consume(u32::MAX); // deep into debt, without overflow
    assert!(budget.try_consume(1).is_err());
    assert_eq!(budget.utilisation(), 1.0);

    // One token a year, bursts of one.
    let budget = LoopBudget::builder()
        .rate(1)
        .per(YEAR)
        .burst(1)
        .build()
        .unwrap();
    assert!(budget.try_consume(1).is_ok());
    assert_eq!(budget.try_consume(1).unwrap_err().retry_after(), YEAR);
    for _ in 0..1000 {
        budget.consume(u32::MAX); // saturates, never wraps
    }
    assert!(budget.try_consume(1).is_err());
    assert_eq!(budget.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn wait_mode_parks_for_up_to_a_year_and_then_serves() {
    let layer = BudgetLayer::builder()
        .rate(1)
        .per(YEAR)
        .burst(1)
        .mode(BudgetMode::Wait)
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_pending());
    tokio::time::advance(YEAR - Duration::from_secs(1)).await;
    assert!(svc.poll_ready(&mut cx).is_pending());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert_eq!(svc.call(2).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_debt_of_centuries_in_wait_mode_parks_without_panicking() {
    let budget = LoopBudget::builder()
        .rate(1)
        .per(YEAR)
        .burst(1)
        .build()
        .unwrap();
    // Work already done is accounted for: u32::MAX years of debt, saturated.
    budget.consume(u32::MAX);
    let mut svc = BudgetLayer::from_budget(budget, BudgetMode::Wait).layer(echo());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_pending());
    tokio::time::advance(YEAR).await;
    assert!(svc.poll_ready(&mut cx).is_pending());
    // Reject mode says when, without overflowing either.
    let err = BudgetLayer::from_budget(svc.budget().clone(), BudgetMode::Reject)
        .layer(echo())
        .oneshot(1)
        .await
        .unwrap_err();
    let rejection = seawall_core::Rejection::find(&*err).unwrap();
    assert!(rejection.retry_after().unwrap() > YEAR);
}

#[tokio::test(start_paused = true)]
async fn the_longest_backoff_sleeps_a_year_and_bounded_loop_sums_it() {
    let budget = LoopBudget::builder()
        .rate(1)
        .per(YEAR)
        .burst(1)
        .backoff_initial(YEAR)
        .backoff_multiplier(1e308)
        .backoff_max(YEAR)
        .build()
        .unwrap();
    assert_eq!(budget.next_backoff(), YEAR);
    let (tx, rx) = bounded::channel(MAX_CAPACITY, OverflowPolicy::Reject).unwrap();
    for i in 0..3u32 {
        let _ = tx.try_send(i).unwrap();
    }
    drop(tx);
    let report = BoundedLoop::new(rx, budget).run(|_| async {}).await;
    assert_eq!(report.processed, 3);
    assert_eq!(report.backoff_time, 2 * YEAR);
}

#[test]
fn loop_budget_new_keeps_its_config_valid() {
    for rate in [0, 1, 1_000_000_000, 1_000_000_001, u32::MAX] {
        let budget = LoopBudget::new(rate);
        assert!(budget.config().validate().is_ok(), "rate {rate}");
        assert!(budget.config().rate >= 1 && budget.config().rate <= 1_000_000_000);
    }
}

#[tokio::test(start_paused = true)]
async fn a_keyed_budget_at_its_bounds_serves() {
    let cfg = KeyedBudgetConfig::new()
        .per_key(BudgetConfig::new().rate(u32::MAX).per(YEAR).burst(u32::MAX))
        .keys(KeyMapConfig::new().capacity(MAX_CAPACITY).idle_ttl(YEAR));
    let layer = KeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap();
    let svc = layer.layer(echo());
    for k in 0..100 {
        assert_eq!(svc.clone().oneshot(k).await.unwrap(), k);
    }
    assert_eq!(layer.available(&7), u32::MAX - 1);
    // Idle keys go within two TTLs of their last use (the map sweeps once
    // per TTL), even when the TTL is the longest allowed.
    tokio::time::advance(YEAR).await;
    let first = layer.evict_idle();
    tokio::time::advance(YEAR).await;
    assert_eq!(first + layer.evict_idle(), 100);
    assert_eq!(layer.stats().keys, 0);
}

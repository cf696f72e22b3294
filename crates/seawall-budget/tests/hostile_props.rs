//! Hostile values into every public builder and constructor: each one is a
//! `ConfigError` naming a field of the config, or a value that serves a
//! call, a send or a receive without panicking.
//!
//! Panics are caught with `catch_unwind` and fail the case. An abort (an
//! allocation the machine cannot satisfy) cannot be caught; no constructor
//! reserves memory by its bound any more, so none should happen.
//!
//! Budgets run on a manual clock, driven by hand with no runtime; only what
//! sleeps on tokio's timer (Wait mode's parking, the queues' waits, a
//! `BoundedLoop`'s backoff) runs in a paused runtime.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use seawall_budget::bounded::{self, LaneConfig, OverflowPolicy, PriorityConfig};
use seawall_budget::{
    BoundedLoop, Budget, BudgetBuilder, BudgetConfig, BudgetLayer, BudgetMode, ConfigError,
    KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget, LoopBudgetBuilder, LoopBudgetConfig,
};
use seawall_core::config::{MAX_CAPACITY, MAX_DURATION};
use seawall_core::{BoxError, Clock, KeyMapConfig, ManualClock, Rejection};
use seawall_test_support::runtime;
use tower::{Layer, Service, ServiceExt, service_fn};

const NS: Duration = Duration::from_nanos(1);

fn u32s() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(10),
        Just(1_000),
        Just(1_000_000_000),
        Just(1_000_000_001),
        Just(u32::MAX - 1),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

fn usizes() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(16),
        Just(17),
        Just(MAX_CAPACITY - 1),
        Just(MAX_CAPACITY),
        Just(MAX_CAPACITY + 1),
        Just((1usize << 32) - 1),
        Just(1usize << 32),
        Just((1usize << 32) + 1),
        Just(i64::MAX as usize),
        Just(u64::MAX as usize),
        Just(usize::MAX),
        0usize..64,
    ]
}

fn durations() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(NS),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(1)),
        Just(MAX_DURATION - NS),
        Just(MAX_DURATION),
        Just(MAX_DURATION + NS),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
        (0u64..=u64::MAX).prop_map(Duration::from_nanos),
    ]
}

fn floats() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(0.5),
        Just(1.0),
        Just(1.5),
        Just(-1.0),
        Just(1e308),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        any::<f64>(),
    ]
}

fn policies() -> impl Strategy<Value = OverflowPolicy> {
    prop_oneof![
        Just(OverflowPolicy::DropOldest),
        Just(OverflowPolicy::DropNewest),
        Just(OverflowPolicy::Reject),
        Just(OverflowPolicy::Wait),
    ]
}

fn modes() -> impl Strategy<Value = BudgetMode> {
    prop_oneof![Just(BudgetMode::Reject), Just(BudgetMode::Wait)]
}

/// Runs `f`, turning a panic into a failed case.
fn no_panic<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        TestCaseError::fail(format!("{what} panicked: {msg}"))
    })
}

/// A current-thread runtime with paused time: timers of a year fire at once.
fn block_on<F: Future>(f: F) -> F::Output {
    runtime::paused().block_on(f)
}

/// Every field of every error is one the config has.
fn names_fields(err: &ConfigError, fields: &[&str]) -> Result<(), TestCaseError> {
    for e in err.errors() {
        let known = fields.iter().any(|f| {
            e.field() == *f
                || e.field()
                    .strip_prefix(f)
                    .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
        });
        prop_assert!(known, "unexpected field in `{err}`");
    }
    Ok(())
}

const RATE_FIELDS: &[&str] = &["rate", "per", "burst"];

fn echo() -> impl Service<u32, Response = u32, Error = std::convert::Infallible> + Clone {
    service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) })
}

/// A budget on the manual clock `hand` moves that admits its first token,
/// refuses once spent, and has a token again after `MAX_DURATION`: the
/// bound on a full burst's refill. No runtime.
fn serves(budget: &LoopBudget, hand: &ManualClock) -> Result<(), TestCaseError> {
    prop_assert!(budget.burst() >= 1);
    prop_assert!(budget.can_proceed());
    prop_assert!(budget.try_consume(1).is_ok());
    budget.consume(budget.burst());
    let _ = budget.available();
    let _ = budget.utilisation();
    let _ = budget.stats();
    if let Err(e) = budget.try_consume(1) {
        prop_assert!(e.retry_after() <= MAX_DURATION + MAX_DURATION);
    }
    prop_assert!(budget.next_backoff() <= MAX_DURATION);
    hand.advance(MAX_DURATION + MAX_DURATION);
    prop_assert!(budget.try_consume(1).is_ok());
    Ok(())
}

/// `poll_ready`, `call` and one poll of the response, by hand (no runtime:
/// the service must not need a timer): `Some` response, or `None` for a
/// refusal with a `retry_after` in bounds.
fn call_now<S: Service<u32, Error = BoxError>>(
    svc: &mut S,
    req: u32,
) -> Result<Option<S::Response>, TestCaseError> {
    let mut cx = Context::from_waker(Waker::noop());
    prop_assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    match std::pin::pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(Ok(r)) => Ok(Some(r)),
        Poll::Ready(Err(e)) => {
            let r = Rejection::find(&*e);
            prop_assert!(r.is_some(), "not a rejection: {e}");
            let after = r.and_then(|r| r.retry_after()).unwrap_or_default();
            prop_assert!(after <= MAX_DURATION + MAX_DURATION);
            Ok(None)
        }
        Poll::Pending => Err(TestCaseError::fail("the response is pending")),
    }
}

/// Reject mode on a manual clock, no runtime: one call through `svc`; once
/// the budget is spent, a refusal; after `MAX_DURATION` twice, a call again.
fn reject_serves<S>(mut svc: Budget<S>, hand: &ManualClock) -> Result<(), TestCaseError>
where
    S: Service<u32, Response = u32, Error = std::convert::Infallible>,
{
    prop_assert_eq!(call_now(&mut svc, 1)?, Some(1));
    let burst = svc.budget().burst();
    svc.budget().consume(burst);
    prop_assert_eq!(call_now(&mut svc, 2)?, None);
    hand.advance(MAX_DURATION + MAX_DURATION);
    prop_assert_eq!(call_now(&mut svc, 3)?, Some(3));
    Ok(())
}

/// Wait mode, on tokio's (paused) clock: its parking is a tokio timer. One
/// call, then a wait until a token is due.
async fn wait_serves<S>(mut svc: Budget<S>) -> Result<(), TestCaseError>
where
    S: Service<u32, Response = u32, Error = std::convert::Infallible>,
{
    prop_assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    let burst = svc.budget().burst();
    svc.budget().consume(burst);
    let mut cx = Context::from_waker(Waker::noop());
    let _ = svc.poll_ready(&mut cx);
    tokio::time::advance(MAX_DURATION + MAX_DURATION).await;
    prop_assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    prop_assert_eq!(svc.call(2).await.unwrap(), 2);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn loop_budget_builder(
        rate in u32s(),
        per in durations(),
        burst in proptest::option::of(u32s()),
        initial in durations(),
        multiplier in floats(),
        max in durations(),
    ) {
        let mut cfg = LoopBudgetConfig::new()
            .rate(rate)
            .per(per)
            .backoff_initial(initial)
            .backoff_multiplier(multiplier)
            .backoff_max(max);
        cfg.burst = burst;
        let (clock, hand) = Clock::manual();
        let built = no_panic("LoopBudget::from_config", || {
            LoopBudgetBuilder::from_config(cfg).clock(clock).build()
        })?;
        match built {
            Err(e) => names_fields(
                &e,
                &["rate", "per", "burst", "backoff_initial", "backoff_multiplier", "backoff_max"],
            )?,
            Ok(budget) => no_panic("a LoopBudget", || serves(&budget, &hand))??,
        }
    }

    #[test]
    fn loop_budget_new(rate in u32s()) {
        let budget = no_panic("LoopBudget::new", || LoopBudget::new(rate))?;
        prop_assert!(budget.config().validate().is_ok());
        // The same config on a manual clock.
        let (clock, hand) = Clock::manual();
        let budget = LoopBudgetBuilder::from_config(budget.config().clone())
            .clock(clock)
            .build()
            .unwrap();
        no_panic("a LoopBudget", || serves(&budget, &hand))??;
    }

    #[test]
    fn budget_layer_builder(
        rate in u32s(),
        per in durations(),
        burst in proptest::option::of(u32s()),
        mode in modes(),
    ) {
        let mut cfg = BudgetConfig::new().rate(rate).per(per).mode(mode);
        cfg.burst = burst;
        let built = no_panic("BudgetLayer::from_config", || BudgetLayer::from_config(&cfg))?;
        match built {
            Err(e) => names_fields(&e, RATE_FIELDS)?,
            Ok(layer) => {
                // Wait mode parks on tokio's timer: a paused runtime.
                no_panic("a Budget", || {
                    block_on(async {
                        let svc = BudgetLayer::from_budget(layer.budget().clone(), BudgetMode::Wait);
                        wait_serves(svc.layer(echo())).await
                    })
                })??;
                // Reject mode needs no timer: a manual clock, no runtime.
                let (clock, hand) = Clock::manual();
                let layer = BudgetBuilder::from_config(cfg).clock(clock).build().unwrap();
                let svc = BudgetLayer::from_budget(layer.budget().clone(), BudgetMode::Reject);
                no_panic("a Budget", || reject_serves(svc.layer(echo()), &hand))??;
            }
        }
    }

    #[test]
    fn keyed_budget_layer(
        rate in u32s(),
        per in durations(),
        burst in proptest::option::of(u32s()),
        capacity in usizes(),
        idle_ttl in durations(),
    ) {
        let mut per_key = BudgetConfig::new().rate(rate).per(per);
        per_key.burst = burst;
        let cfg = KeyedBudgetConfig::new()
            .per_key(per_key)
            .keys(KeyMapConfig::new().capacity(capacity).idle_ttl(idle_ttl));
        let built = no_panic("KeyedBudgetLayer::new", || {
            KeyedBudgetLayer::new(|k: &u32| *k % 4, &cfg)
        })?;
        match built {
            Err(e) => names_fields(&e, &["per_key.rate", "per_key.per", "per_key.burst", "keys.capacity", "keys.idle_ttl"])?,
            Ok(layer) => no_panic("a KeyedBudget", || {
                // A manual clock: no runtime.
                let (clock, hand) = Clock::manual();
                let layer = layer.clock(clock);
                let mut svc = layer.layer(echo());
                for k in 0..8 {
                    if let Some(x) = call_now(&mut svc, k)? {
                        prop_assert_eq!(x, k);
                    }
                }
                prop_assert!(layer.stats().keys <= 4);
                let _ = layer.available(&1);
                hand.advance(MAX_DURATION + MAX_DURATION);
                let _ = layer.evict_idle();
                hand.advance(MAX_DURATION + MAX_DURATION);
                let _ = layer.evict_idle();
                prop_assert_eq!(call_now(&mut svc, 3)?, Some(3));
                Ok(())
            })??,
        }
    }

    #[test]
    fn bounded_channel(capacity in usizes(), policy in policies(), items in 0usize..40) {
        let built = no_panic("bounded::channel", || bounded::channel::<u64>(capacity, policy))?;
        match built {
            Err(e) => {
                prop_assert_eq!(e.field(), "capacity");
                prop_assert!(capacity == 0 || capacity > MAX_CAPACITY);
            }
            Ok((tx, rx)) => {
                prop_assert_eq!(rx.capacity(), capacity);
                no_panic("a bounded queue", || block_on(async move {
                    for i in 0..items as u64 {
                        let _ = tx.try_send(i);
                    }
                    prop_assert!(rx.len() <= capacity.min(items));
                    drop(tx);
                    let budget = LoopBudget::new(u32::MAX);
                    let report = BoundedLoop::new(rx, budget).run(|_| async {}).await;
                    prop_assert_eq!(report.processed + report.queue.dropped(), items as u64);
                    Ok(())
                }))??;
            }
        }
    }

    #[test]
    fn priority_channel(
        lanes in proptest::collection::vec((usizes(), policies()), 0..5),
        fair_every in usizes(),
        sends in proptest::collection::vec((usizes(), 0u32..100), 0..40),
    ) {
        let cfg = PriorityConfig::new(lanes.iter().map(|&(c, p)| LaneConfig::new(c, p)))
            .fair_every(fair_every);
        let built = no_panic("bounded::priority_channel", || {
            bounded::priority_channel::<u32>(&cfg)
        })?;
        match built {
            Err(e) => names_fields(&e, &["lanes", "fair_every"])?,
            Ok((tx, mut rx)) => no_panic("a priority channel", || block_on(async move {
                for &(lane, item) in &sends {
                    let _ = tx.try_send(lane, item);
                }
                let stats = rx.stats();
                prop_assert_eq!(stats.lanes.len(), lanes.len());
                for (lane, s) in stats.lanes.iter().enumerate() {
                    prop_assert!(s.len <= lanes[lane].0);
                }
                drop(tx);
                let mut got = 0;
                while rx.recv().await.is_some() {
                    got += 1;
                }
                prop_assert_eq!(got, stats.total().len);
                Ok(())
            }))??,
        }
    }

    #[test]
    fn bounded_loop_with_a_hostile_budget(
        rate in u32s(),
        per in durations(),
        burst in proptest::option::of(u32s()),
        initial in durations(),
        multiplier in floats(),
        max in durations(),
        items in 0u64..6,
    ) {
        let mut cfg = LoopBudgetConfig::new()
            .rate(rate)
            .per(per)
            .backoff_initial(initial)
            .backoff_multiplier(multiplier)
            .backoff_max(max);
        cfg.burst = burst;
        let Ok(budget) = LoopBudget::from_config(&cfg) else { return Ok(()) };
        no_panic("BoundedLoop::run", || block_on(async move {
            let (tx, rx) = bounded::channel(MAX_CAPACITY, OverflowPolicy::Wait).unwrap();
            for i in 0..items {
                let _ = tx.try_send(i).unwrap();
            }
            drop(tx);
            // A budget may refill far slower than its backoff schedule
            // sleeps (a token a year, backoff capped at 1ns): then the loop
            // backs off many times, and a second of paused time is enough
            // to show it neither panics nor stops early.
            let run = BoundedLoop::new(rx, budget).run(|_| async {});
            if let Ok(report) = tokio::time::timeout(Duration::from_secs(1), run).await {
                prop_assert_eq!(report.processed, items);
            }
            Ok(())
        }))??;
    }
}

/// Hostile durations from a file are the same errors as from code.
#[cfg(feature = "serde")]
#[test]
fn hostile_durations_from_toml_are_config_errors() {
    for per in ["0s", "31536000s 1ns", "18446744073709551615s", "500years"] {
        let cfg: BudgetConfig = toml::from_str(&format!("per = \"{per}\"")).unwrap();
        assert_eq!(
            BudgetLayer::from_config(&cfg).unwrap_err().field(),
            "per",
            "{per}"
        );
    }
    let cfg: KeyedBudgetConfig =
        toml::from_str("[keys]\ncapacity = 18446744073709551615\nidle_ttl = \"1000years\"")
            .unwrap();
    let err = KeyedBudgetLayer::new(|k: &u32| *k, &cfg).unwrap_err();
    let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
    assert_eq!(fields, ["keys.capacity", "keys.idle_ttl"]);
    let cfg: PriorityConfig = toml::from_str(
        "lanes = [{ capacity = 4, policy = \"wait\" }, { capacity = 4294967295, policy = \"reject\" }]",
    )
    .unwrap();
    assert_eq!(
        bounded::priority_channel::<u8>(&cfg).unwrap_err().field(),
        "lanes[1].capacity"
    );
}

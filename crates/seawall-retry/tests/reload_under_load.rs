//! A budget + adaptive timeout + retry stack under load while a task
//! reloads all three every 100ms, alternating two configs, for 3 simulated
//! seconds (paused time, one thread: deterministic). No call fails because
//! of a reload, no budget token is lost or handed out twice, and the
//! layers' state (latency window, counters, budget) survives.

use std::time::Duration;

use seawall_budget::{BudgetConfig, BudgetLayer, BudgetMode};
use seawall_core::BoxError;
use seawall_retry::{Backoff, RetryBudgetConfig, RetryConfig, RetryLayer};
use seawall_timeout::{AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, DeadlineSource};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);
const TASKS: u64 = 8;
const RUN: Duration = Duration::from_secs(3);

#[tokio::test(start_paused = true)]
async fn reloads_every_100ms_under_load_lose_nothing() {
    let budget_a = BudgetConfig::new()
        .name("stack")
        .rate(1000)
        .burst(10)
        .mode(BudgetMode::Wait);
    let budget_b = budget_a.clone().rate(2000).burst(20);
    let timeout_a = AdaptiveTimeoutConfig::builder()
        .name("stack")
        .min(20 * MS)
        .max(1000 * MS)
        .base(100 * MS)
        .min_samples(20)
        .into_config();
    let mut timeout_b = timeout_a.clone();
    timeout_b.percentile = 95.0;
    timeout_b.multiplier = 3.0;
    timeout_b.min = 30 * MS;
    let retry_a = RetryConfig::new()
        .name("stack")
        .max_attempts(3)
        .backoff(Backoff::constant(5 * MS));
    let retry_b = retry_a
        .clone()
        .max_attempts(4)
        .budget(RetryBudgetConfig::new().ratio(0.1).min_per_sec(5));

    let budget = BudgetLayer::from_config(&budget_a).unwrap();
    let timeout = AdaptiveTimeoutLayer::from_config(&timeout_a).unwrap();
    let retry = RetryLayer::from_config(&retry_a).unwrap();
    let backend = service_fn(|_: u64| async {
        tokio::time::sleep(MS).await;
        Ok::<_, BoxError>(())
    });
    let svc = ServiceBuilder::new()
        .layer(retry.clone())
        .layer(timeout.clone())
        .layer(budget.clone())
        .service(backend);

    // Tasks on this thread (`spawn_local`): the stack's futures need not
    // be `Send` for the test, and one thread keeps it deterministic.
    let local = tokio::task::LocalSet::new();
    let _guard = local.enter();
    let start = Instant::now();
    let end = start + RUN;
    let callers: Vec<_> = (0..TASKS)
        .map(|t| {
            let svc = svc.clone();
            tokio::task::spawn_local(async move {
                let mut calls = 0u64;
                while Instant::now() < end {
                    if let Err(e) = svc.clone().oneshot(t).await {
                        panic!("call {calls} of task {t} failed: {e}");
                    }
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let reloader = {
        let (budget, timeout, retry) = (budget.clone(), timeout.clone(), retry.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(100 * MS);
            tick.tick().await;
            let mut reloads = 0u32;
            loop {
                tick.tick().await;
                if Instant::now() >= end {
                    return reloads;
                }
                let b = reloads.is_multiple_of(2);
                budget
                    .reload(if b { &budget_b } else { &budget_a })
                    .unwrap();
                timeout
                    .reload(if b { &timeout_b } else { &timeout_a })
                    .unwrap();
                retry.reload(if b { &retry_b } else { &retry_a }).unwrap();
                reloads += 1;
            }
        })
    };
    let (calls, reloads) = local
        .run_until(async move {
            let mut calls = 0;
            for c in callers {
                calls += c.await.unwrap();
            }
            (calls, reloader.await.unwrap())
        })
        .await;
    assert!(reloads >= 28, "{reloads} reloads");

    // Every call went through once: one budget token each, no retry, no
    // timeout.
    let retried = retry.stats();
    assert_eq!(retried.requests, calls);
    assert_eq!(retried.retries, 0);
    assert_eq!(budget.stats().iterations, calls);
    assert_eq!(timeout.stats().timeouts, 0);
    // The budget bounded them the whole time, as exactly as its maths says:
    // the first burst, then 100ms at each rate in turn (1000/s first, 2000/s
    // after every even reload), nothing lost, nothing handed out twice. The
    // slack is the calls still in flight at the end and a token's rounding
    // at each reload.
    let mut expected = 10u64;
    for interval in 0..=u64::from(reloads) {
        expected += if interval.is_multiple_of(2) { 100 } else { 200 };
    }
    assert!(
        calls.abs_diff(expected) <= TASKS + u64::from(reloads),
        "{calls} calls, {expected} expected"
    );
    // No token is held by anyone now: once refilled, the budget is whole.
    tokio::time::advance(Duration::from_secs(1)).await;
    let burst = budget.budget().burst();
    assert_eq!(budget.budget().available(), burst);
    // The latency window outlived 30 reloads: adaptive, with samples.
    let window = timeout.stats();
    assert_eq!(window.source, DeadlineSource::Adaptive);
    assert!(window.samples >= 20, "{window:?}");
}

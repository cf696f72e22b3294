//! Retries: seawall's `RetryLayer` against the bare service, tower's `Retry`
//! with a `TpsBudget` policy and tower-resilience's retry, on the success
//! path and on the give-up path (a failing service, the retry budget spent:
//! one attempt, then the failure goes back to the caller), in one run;
//! then a shedder's `Overloaded` from below (never retried), and the retry
//! budgets alone (seawall's and tower's `TpsBudget`).
//!
//! `cargo bench -p seawall-benches --bench retry`

use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_benches::{Echo, Fail, Failing, TpsPolicy, call, contended_case, two_workers};
use seawall_core::{OverloadReason, Overloaded};
use seawall_retry::{Backoff, RetryBudget, RetryLayer};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service};
use tower_resilience::retry::{RetryBudgetBuilder, RetryLayer as ResilienceRetryLayer};

fn seawall_spent() -> RetryLayer {
    RetryLayer::builder()
        .backoff(Backoff::constant(Duration::ZERO))
        .shared_budget(RetryBudget::new(0.0, 0, Duration::from_secs(1)).unwrap())
        .build()
        .unwrap()
}

fn resilience_retry() -> ResilienceRetryLayer<u64, u64, Fail> {
    ResilienceRetryLayer::<u64, u64, Fail>::builder()
        .max_attempts(3)
        .fixed_backoff(Duration::ZERO)
        .build()
}

fn resilience_spent() -> ResilienceRetryLayer<u64, u64, Fail> {
    let budget = RetryBudgetBuilder::new()
        .token_bucket()
        .tokens_per_second(0.0)
        .max_tokens(1)
        .initial_tokens(0)
        .build()
        .unwrap();
    ResilienceRetryLayer::<u64, u64, Fail>::builder()
        .max_attempts(3)
        .fixed_backoff(Duration::ZERO)
        .budget(budget)
        .build()
}

fn single_thread(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("retry");

    let mut svc = Echo;
    g.bench_function("bare", |b| b.iter(|| call(&mut svc, black_box(1))));

    let mut svc = RetryLayer::builder().build().unwrap().layer(Echo);
    g.bench_function("seawall_retry_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = RetryLayer::builder()
        .no_budget()
        .build()
        .unwrap()
        .layer(Echo);
    g.bench_function("seawall_retry_no_budget_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = seawall_spent().layer(Failing);
    g.bench_function("seawall_retry_budget_spent_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = tower::retry::RetryLayer::new(TpsPolicy::new()).layer(Echo);
    g.bench_function("tower_retry_tps_budget_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = tower::retry::RetryLayer::new(TpsPolicy::spent()).layer(Failing);
    g.bench_function("tower_retry_tps_budget_spent_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = resilience_retry().layer(Echo);
    g.bench_function("tower_resilience_retry_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = resilience_spent().layer(Failing);
    g.bench_function("tower_resilience_retry_budget_spent_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let rt = two_workers();
    let one = |_: u64, _: u64| 1;
    for (name, by_tasks) in [("retry_2_threads", false), ("retry_8_tasks", true)] {
        let mut g = c.benchmark_group(name);
        macro_rules! case {
            ($id:expr, $svc:expr) => {
                contended_case(&mut g, $id, &rt, by_tasks, $svc, one)
            };
        }
        case!("bare", Echo);
        case!(
            "seawall_retry",
            RetryLayer::builder().build().unwrap().layer(Echo)
        );
        case!(
            "tower_retry_tps_budget",
            tower::retry::RetryLayer::new(TpsPolicy::new()).layer(Echo)
        );
        case!("tower_resilience_retry", resilience_retry().layer(Echo));
        g.finish();
    }
}

/// A shedder below: every call is refused with an `Overloaded`, which the
/// layer passes through without a retry.
#[derive(Clone, Copy)]
struct Shedding;

impl Service<u64> for Shedding {
    type Response = u64;
    type Error = Overloaded;
    type Future = Ready<Result<u64, Overloaded>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Overloaded>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: u64) -> Self::Future {
        ready(Err(Overloaded::new(OverloadReason::HardLimit)))
    }
}

fn passed_through_and_budgets(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("retry_budget");
    let mut svc = RetryLayer::builder().build().unwrap().layer(Shedding);
    g.bench_function("seawall_retry_overloaded_passed_through", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let budget = RetryBudget::default();
    g.bench_function("seawall_budget_deposit", |b| b.iter(|| budget.deposit()));
    g.bench_function("seawall_budget_try_withdraw", |b| {
        b.iter(|| budget.try_withdraw())
    });
    let tps = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    g.bench_function("tower_tps_budget_deposit", |b| b.iter(|| tps.deposit()));
    g.bench_function("tower_tps_budget_withdraw", |b| b.iter(|| tps.withdraw()));
    g.finish();
}

criterion_group!(
    benches,
    single_thread,
    contended,
    passed_through_and_budgets
);
criterion_main!(benches);

//! Per-call cost of the retry layer against the bare service and tower's
//! `Retry` with a `TpsBudget` policy, in the same run.
//!
//! Every service answers `Ready` at once; each iteration is `poll_ready` +
//! `call` + one poll of the future with a noop waker (no runtime overhead).

use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_core::{OverloadReason, Overloaded};
use seawall_retry::RetryLayer;
use tower::retry::Policy;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service};

#[derive(Clone, Copy)]
struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = Overloaded;
    type Future = Ready<Result<u64, Overloaded>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Overloaded>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, x: u64) -> Self::Future {
        ready(Ok(x))
    }
}

/// A shedder below: every call is refused with a non-retryable `Overloaded`.
#[derive(Clone, Copy)]
struct Shedding;

impl Service<u64> for Shedding {
    type Response = u64;
    type Error = Overloaded;
    type Future = Ready<Result<u64, Overloaded>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Overloaded>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: u64) -> Self::Future {
        ready(Err(Overloaded::new(OverloadReason::HardLimit)))
    }
}

/// tower's usual budgeted policy: deposit on success, withdraw per retry.
#[derive(Clone)]
struct TpsPolicy {
    budget: Arc<TpsBudget>,
    attempts: u32,
}

impl<Res, E> Policy<u64, Res, E> for TpsPolicy {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts > 1 && self.budget.withdraw() => {
                self.attempts -= 1;
                Some(ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn drive<S: Service<u64>>(svc: &mut S, cx: &mut Context<'_>, x: u64) -> bool {
    if !matches!(svc.poll_ready(cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let mut fut = pin!(svc.call(x));
    matches!(fut.as_mut().poll(cx), Poll::Ready(Ok(_)))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let mut group = c.benchmark_group("retry");

    let mut bare = Bare;
    group.bench_function("bare", |b| {
        b.iter(|| drive(&mut bare, &mut cx, black_box(1)))
    });

    let layer = RetryLayer::builder().build().expect("valid");
    let mut svc = layer.layer(Bare);
    group.bench_function("seawall_retry_success", |b| {
        b.iter(|| drive(&mut svc, &mut cx, black_box(1)))
    });

    let layer = RetryLayer::builder().no_budget().build().expect("valid");
    let mut svc = layer.layer(Bare);
    group.bench_function("seawall_retry_success_no_budget", |b| {
        b.iter(|| drive(&mut svc, &mut cx, black_box(1)))
    });

    let layer = RetryLayer::builder().build().expect("valid");
    let mut svc = layer.layer(Shedding);
    group.bench_function("seawall_retry_rejection_passed_through", |b| {
        b.iter(|| drive(&mut svc, &mut cx, black_box(1)))
    });

    let policy = TpsPolicy {
        budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        attempts: 3,
    };
    let mut tower_retry = tower::retry::RetryLayer::new(policy).layer(Bare);
    group.bench_function("tower_retry_tps_budget_success", |b| {
        b.iter(|| drive(&mut tower_retry, &mut cx, black_box(1)))
    });

    group.finish();

    // The tower-free pieces, to see where the time goes.
    let mut core = c.benchmark_group("retry_core");
    core.bench_function("tokio_instant_now", |b| b.iter(tokio::time::Instant::now));
    let budget = seawall_retry::RetryBudget::default();
    core.bench_function("seawall_budget_deposit", |b| b.iter(|| budget.deposit()));
    core.bench_function("seawall_budget_try_withdraw", |b| {
        b.iter(|| budget.try_withdraw())
    });
    let tps = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    core.bench_function("tower_tps_budget_deposit", |b| b.iter(|| tps.deposit()));
    core.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

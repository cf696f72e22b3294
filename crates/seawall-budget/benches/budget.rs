//! Per-call cost of the budget against the bare service and its peers, all
//! in one run: `cargo bench -p seawall-budget --bench budget`.
//!
//! Services are driven by hand (`poll_ready` + `call` + one poll of the
//! future with a no-op waker): no runtime in the measured loop.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_budget::bounded::{self, OverflowPolicy};
use seawall_budget::{BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget};
use tower::limit::{ConcurrencyLimitLayer, RateLimitLayer};
use tower::{Layer, Service};

#[derive(Clone)]
struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u64) -> Self::Future {
        ready(Ok(x))
    }
}

#[inline(always)]
fn call_once<S: Service<u64>>(svc: &mut S, cx: &mut Context<'_>, x: u64) -> bool {
    if !matches!(svc.poll_ready(cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let fut = pin!(svc.call(x));
    matches!(fut.poll(cx), Poll::Ready(Ok(_)))
}

// A rate no bench run can exhaust: one token per nanosecond, a 4s burst.
const HUGE_RATE: u32 = 1_000_000_000;
const HUGE_BURST: u32 = u32::MAX;

fn services(c: &mut Criterion) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut g = c.benchmark_group("service");

    let mut bare = Bare;
    g.bench_function("bare", |b| {
        b.iter(|| call_once(&mut bare, &mut cx, black_box(1)))
    });

    let layer = BudgetLayer::builder()
        .rate(HUGE_RATE)
        .burst(HUGE_BURST)
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare);
    g.bench_function("budget_layer_within_budget", |b| {
        b.iter(|| call_once(&mut svc, &mut cx, black_box(1)))
    });

    let layer = BudgetLayer::builder()
        .rate(HUGE_RATE)
        .burst(HUGE_BURST)
        .mode(BudgetMode::Wait)
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare);
    g.bench_function("budget_layer_wait_mode_within_budget", |b| {
        b.iter(|| call_once(&mut svc, &mut cx, black_box(1)))
    });

    let layer = BudgetLayer::builder()
        .rate(1)
        .per(Duration::from_secs(3600))
        .burst(1)
        .build()
        .unwrap();
    layer.budget().consume(1);
    let mut svc = layer.layer(Bare);
    g.bench_function("budget_layer_rejecting", |b| {
        b.iter(|| call_once(&mut svc, &mut cx, black_box(1)))
    });

    let cfg = KeyedBudgetConfig {
        rate: HUGE_RATE,
        burst: Some(HUGE_BURST),
        ..Default::default()
    };
    let keyed = KeyedBudgetLayer::new(|x: &u64| *x % 1000, &cfg).unwrap();
    let mut svc = keyed.layer(Bare);
    let mut i = 0u64;
    g.bench_function("keyed_budget_1k_keys_within_budget", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            call_once(&mut svc, &mut cx, i)
        })
    });

    let mut svc = ConcurrencyLimitLayer::new(1_000).layer(Bare);
    g.bench_function("tower_concurrency_limit", |b| {
        b.iter(|| call_once(&mut svc, &mut cx, black_box(1)))
    });

    // RateLimit makes its Sleep at construction: needs a runtime then, not
    // while measuring.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut svc = {
        let _guard = rt.enter();
        RateLimitLayer::new(u64::MAX, Duration::from_secs(3600)).layer(Bare)
    };
    g.bench_function("tower_rate_limit", |b| {
        b.iter(|| call_once(&mut svc, &mut cx, black_box(1)))
    });
    g.finish();
}

fn loops(c: &mut Criterion) {
    let mut g = c.benchmark_group("loop");
    let budget = LoopBudget::builder()
        .rate(HUGE_RATE)
        .burst(HUGE_BURST)
        .build()
        .unwrap();
    g.bench_function("loop_budget_can_proceed_consume", |b| {
        b.iter(|| {
            if budget.can_proceed() {
                budget.consume(black_box(1));
            }
        })
    });
    g.bench_function("loop_budget_try_consume", |b| {
        b.iter(|| budget.try_consume(black_box(1)).is_ok())
    });

    g.bench_function("clock_tokio_instant_now", |b| {
        b.iter(tokio::time::Instant::now)
    });
    g.bench_function("clock_std_instant_now", |b| b.iter(std::time::Instant::now));

    let quota = governor::Quota::per_second(NonZeroU32::new(HUGE_RATE).unwrap())
        .allow_burst(NonZeroU32::new(HUGE_BURST).unwrap());
    let limiter = governor::RateLimiter::direct(quota);
    g.bench_function("governor_direct_check", |b| {
        b.iter(|| limiter.check().is_ok())
    });
    g.finish();
}

fn queues(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    g.throughput(criterion::Throughput::Elements(64));
    let (tx, mut rx) = bounded::channel::<u64>(64, OverflowPolicy::Reject).unwrap();
    g.bench_function("bounded_try_send_try_recv_x64", |b| {
        b.iter(|| {
            for i in 0..64 {
                let _ = tx.try_send(black_box(i));
            }
            let mut sum = 0;
            while let Some(x) = rx.try_recv() {
                sum += x;
            }
            sum
        })
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(64);
    g.bench_function("tokio_mpsc_try_send_try_recv_x64", |b| {
        b.iter(|| {
            for i in 0..64 {
                let _ = tx.try_send(black_box(i));
            }
            let mut sum = 0;
            while let Ok(x) = rx.try_recv() {
                sum += x;
            }
            sum
        })
    });
    g.finish();
}

criterion_group!(benches, services, loops, queues);
criterion_main!(benches);

//! Per-call cost: the bare service, ShedLayer's admit and reject paths
//! (without and with a pressure signal), and tower's ConcurrencyLimit and
//! LoadShed<ConcurrencyLimit>, in one run.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_shed::{
    ManualPressure, MemoryPressure, MemoryPressureConfig, PressureLevel, Priority, ShedLayer,
    ShedRng,
};
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{Layer, Service};

#[derive(Clone)]
struct Bare;
impl Service<u64> for Bare {
    type Response = u64;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u64, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, x: u64) -> Self::Future {
        std::future::ready(Ok(x))
    }
}

#[inline(always)]
fn once<S: Service<u64>>(svc: &mut S, cx: &mut Context<'_>, x: u64) -> bool {
    if svc.poll_ready(cx).is_pending() {
        return false;
    }
    let fut = pin!(svc.call(x));
    match fut.poll(cx) {
        Poll::Ready(r) => r.is_ok(),
        Poll::Pending => false,
    }
}

fn bench(c: &mut Criterion) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut g = c.benchmark_group("shed");

    let mut bare = Bare;
    g.bench_function("bare", |b| {
        b.iter(|| once(&mut bare, &mut cx, black_box(1)))
    });

    let layer = ShedLayer::fixed(1000).unwrap();
    let mut shed = layer.layer(Bare);
    g.bench_function("shed_admit_fixed", |b| {
        b.iter(|| assert!(once(&mut shed, &mut cx, black_box(1))))
    });

    // The same with a pressure signal consulted on every call: one by hand,
    // and the real memory sampler (spawned on a runtime that is never
    // driven, so the level stays that of its first sample).
    let manual = ShedLayer::builder()
        .max_in_flight(1000)
        .pressure_signal(ManualPressure::new())
        .build()
        .unwrap();
    let mut shed = manual.layer(Bare);
    g.bench_function("shed_admit_fixed_pressure_manual", |b| {
        b.iter(|| assert!(once(&mut shed, &mut cx, black_box(1))))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let memory = {
        let _in = rt.enter();
        MemoryPressure::start(&MemoryPressureConfig::default()).unwrap()
    };
    let with_memory = ShedLayer::builder()
        .max_in_flight(1000)
        .pressure_signal(memory)
        .build()
        .unwrap();
    let mut shed = with_memory.layer(Bare);
    g.bench_function("shed_admit_fixed_pressure_memory", |b| {
        b.iter(|| assert!(once(&mut shed, &mut cx, black_box(1))))
    });
    let severe = ManualPressure::new();
    severe.set(PressureLevel::Severe);
    let mut shed = ShedLayer::builder()
        .pressure_signal(severe)
        .build()
        .unwrap()
        .layer(Bare);
    g.bench_function("shed_reject_pressure", |b| {
        b.iter(|| assert!(!once(&mut shed, &mut cx, black_box(1))))
    });

    let layer = ShedLayer::fixed(1).unwrap();
    let _held = layer
        .shedder()
        .try_acquire(Priority::Critical, &mut ShedRng::new(1))
        .unwrap();
    let mut shed_reject = layer.layer(Bare);
    g.bench_function("shed_reject", |b| {
        b.iter(|| assert!(!once(&mut shed_reject, &mut cx, black_box(1))))
    });

    let shedder = layer.shedder();
    let mut rng = ShedRng::new(2);
    g.bench_function("shedder_reject_core", |b| {
        b.iter(|| black_box(shedder.try_acquire(Priority::Normal, &mut rng).is_err()))
    });

    let mut limit = ConcurrencyLimitLayer::new(1000).layer(Bare);
    g.bench_function("tower_concurrency_limit", |b| {
        b.iter(|| assert!(once(&mut limit, &mut cx, black_box(1))))
    });

    let mut load_shed = LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(1000).layer(Bare));
    g.bench_function("tower_load_shed_concurrency_limit", |b| {
        b.iter(|| assert!(once(&mut load_shed, &mut cx, black_box(1))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

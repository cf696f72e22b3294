//! Per-call cost: the bare service, ShedLayer's admit and reject paths, and
//! tower's ConcurrencyLimit and LoadShed<ConcurrencyLimit>, in one run.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_shed::{Priority, ShedLayer, ShedRng};
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

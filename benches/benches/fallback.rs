//! Degraded mode: the fallback layer and peer selection against the bare
//! service, the keyed breaker and tower's `Steer`, in one run.
//!
//! `cargo bench -p seawall-benches --bench fallback`
//!
//! Every service answers `Ready` at once; each iteration is `poll_ready` +
//! `call` + polling the future to completion with a no-op waker (no runtime
//! overhead).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_benches::{Echo, Fail, Failing, call};
use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, PeerSelect};
use seawall_core::BoxError;
use seawall_fallback::{FallbackLayer, FallbackOn};
use tower::Layer;

fn fallback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = rt.enter();

    let mut group = c.benchmark_group("fallback");
    let mut bare = Echo;
    group.bench_function("bare", |b| b.iter(|| call(&mut bare, black_box(1))));

    let layer = FallbackLayer::builder()
        .answer_with(|x: u64, _: BoxError| Ok::<_, Fail>(x))
        .build()
        .expect("valid");
    let mut svc = layer.layer(Echo);
    group.bench_function("seawall_fallback_fn_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let layer = FallbackLayer::builder()
        .on(FallbackOn::Failure)
        .service(Echo)
        .build()
        .expect("valid");
    let mut svc = layer.layer(Echo);
    group.bench_function("seawall_fallback_service_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = layer.layer(Failing);
    group.bench_function("seawall_fallback_service_falling_back", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    group.finish();
}

fn peer_select(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = rt.enter();

    let mut group = c.benchmark_group("peer_select");
    let mut bare = Echo;
    group.bench_function("bare", |b| b.iter(|| call(&mut bare, black_box(1))));

    let keyed =
        KeyedBreakerLayer::new(|r: &u64| *r % 4, &BreakerConfig::default().into()).expect("valid");
    let mut svc = keyed.layer(Echo);
    group.bench_function("seawall_keyed_breaker_4_keys", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            call(&mut svc, black_box(i))
        })
    });

    let keyed =
        KeyedBreakerLayer::new(|r: &u64| *r % 4, &BreakerConfig::default().into()).expect("valid");
    let mut select = PeerSelect::builder(&keyed, |r: &u64| Some(*r % 4))
        .peers((0..4).map(|id| (id, Echo)))
        .build()
        .expect("valid");
    group.bench_function("seawall_peer_select_4_preferred", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            call(&mut select, black_box(i))
        })
    });
    keyed.force_open(0);
    group.bench_function("seawall_peer_select_4_preferred_open", |b| {
        b.iter(|| call(&mut select, black_box(0)))
    });

    let mut steer = tower::steer::Steer::new(
        (0..4).map(|_| Echo).collect::<Vec<_>>(),
        |r: &u64, _: &[Echo]| (*r % 4) as usize,
    );
    group.bench_function("tower_steer_4", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            call(&mut steer, black_box(i))
        })
    });
    group.finish();
}

criterion_group!(benches, fallback, peer_select);
criterion_main!(benches);

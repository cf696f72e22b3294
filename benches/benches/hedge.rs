//! Hedging: seawall's `HedgeLayer` (adaptive and fixed delay) against the
//! bare service and tower's `Hedge`, on the path where no hedge is sent
//! (the inner service answers at once), in one run.
//!
//! Both hedges make a timer per call and a copy of the request; tower's
//! also records every latency in a mutex-guarded histogram and reads a
//! percentile from it per call, seawall's reads one atomic (the delay)
//! and records about one call in 32.
//!
//! `cargo bench -p seawall-benches --bench hedge`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_benches::{Echo, call, two_workers};
use seawall_hedge::HedgeLayer;
use tower::{Layer, hedge::Hedge};

/// tower's hedge policy: every request may be hedged.
#[derive(Debug, Clone, Copy)]
struct Always;

impl tower::hedge::Policy<u64> for Always {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }

    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

fn no_hedge(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("hedge");

    let mut svc = Echo;
    g.bench_function("bare", |b| b.iter(|| call(&mut svc, black_box(1))));

    let layer = HedgeLayer::builder().build().unwrap();
    let mut svc = layer.layer(Echo);
    // Past the window's warm-up, into sampling.
    for i in 0..60_000 {
        call(&mut svc, i).unwrap();
    }
    g.bench_function("seawall_hedge_adaptive_no_hedge", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = HedgeLayer::builder()
        .delay(Duration::from_secs(1))
        .build()
        .unwrap()
        .layer(Echo);
    g.bench_function("seawall_hedge_fixed_no_hedge", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = Hedge::new(Echo, Always, 10, 0.95, Duration::from_secs(10));
    for i in 0..60_000 {
        call(&mut svc, i).unwrap();
    }
    g.bench_function("tower_hedge_no_hedge", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    g.finish();
}

criterion_group!(benches, no_hedge);
criterion_main!(benches);

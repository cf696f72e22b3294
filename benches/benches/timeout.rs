//! Timeouts: seawall's `AdaptiveTimeoutLayer` (adaptive, fixed, keyed)
//! against the bare service, tower's `Timeout` and tower-resilience's time
//! limiter, on the success path, in one run.
//!
//! Every timeout makes a timer per call: a tokio runtime context is entered
//! for every contender alike (timers are created, never fired: the inner
//! service answers at once). The expiry path needs a timer to fire, which a
//! hand-polled loop cannot do cheaply; its allocation cost is in
//! `tests/allocations.rs`.
//!
//! `cargo bench -p seawall-benches --bench timeout`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_benches::{Echo, call, contended_case, two_workers};
use seawall_timeout::{AdaptiveTimeoutLayer, DeadlineSource, KeyedAdaptiveTimeoutLayer};
use tower::Layer;
use tower::timeout::TimeoutLayer;
use tower_resilience::timelimiter::TimeLimiterLayer;

/// Keys of the many-keys cases.
const KEYS: u64 = 10_000;
/// A stride through the keys that visits all of them, in no cache-friendly
/// order.
const STRIDE: u64 = 7_919;
const DEADLINE: Duration = Duration::from_secs(1);

/// The adaptive layer, past its warm-up (the deadline comes from measured
/// latency). Call inside a runtime context.
fn seawall_adaptive() -> AdaptiveTimeoutLayer {
    let layer = AdaptiveTimeoutLayer::builder().build().unwrap();
    let mut svc = layer.layer(Echo);
    // Past the warm-up and into sampling (from 16 × min_samples ×
    // sample_every = 51 200 calls on, with the defaults).
    for i in 0..60_000 {
        call(&mut svc, i).unwrap();
    }
    assert_eq!(layer.stats().source, DeadlineSource::Adaptive, "warmed up");
    layer
}

fn seawall_keyed(keys: u64) -> KeyedAdaptiveTimeoutLayer<fn(&u64) -> u64, u64> {
    let layer = AdaptiveTimeoutLayer::builder()
        .key_capacity((keys as usize * 2).max(1024))
        .key_idle_ttl(Duration::from_secs(3600))
        .build_keyed((|r: &u64| *r) as fn(&u64) -> u64)
        .unwrap();
    let mut svc = layer.layer(Echo);
    for k in 0..keys {
        call(&mut svc, k).unwrap();
    }
    layer
}

fn single_thread(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("timeout");

    let mut svc = Echo;
    g.bench_function("bare", |b| b.iter(|| call(&mut svc, black_box(1))));

    let mut svc = seawall_adaptive().layer(Echo);
    g.bench_function("seawall_timeout_adaptive_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = AdaptiveTimeoutLayer::fixed(DEADLINE).layer(Echo);
    g.bench_function("seawall_timeout_fixed_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let layer = seawall_keyed(1);
    let mut svc = layer.layer(Echo);
    g.bench_function("seawall_keyed_timeout_one_key", |b| {
        b.iter(|| call(&mut svc, black_box(0)))
    });
    let layer = seawall_keyed(KEYS);
    let mut svc = layer.layer(Echo);
    let mut k = 0;
    g.bench_function("seawall_keyed_timeout_10k_keys", |b| {
        b.iter(|| {
            k = (k + STRIDE) % KEYS;
            call(&mut svc, black_box(k))
        })
    });

    let mut svc = TimeoutLayer::new(DEADLINE).layer(Echo);
    g.bench_function("tower_timeout_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = TimeLimiterLayer::builder()
        .timeout_duration(DEADLINE)
        .build()
        .layer(Echo);
    g.bench_function("tower_resilience_time_limiter_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    g.finish();
}

/// Thread `t`'s keys: even or odd, over all `KEYS`.
fn spread(t: u64, i: u64) -> u64 {
    ((i * STRIDE) * 2 + t) % KEYS
}

fn contended(c: &mut Criterion) {
    let rt = two_workers();
    let one = |_: u64, _: u64| 1;
    for (name, by_tasks) in [("timeout_2_threads", false), ("timeout_8_tasks", true)] {
        let mut g = c.benchmark_group(name);
        macro_rules! case {
            ($id:expr, $svc:expr, $req:expr) => {
                contended_case(
                    &mut g,
                    $id,
                    &rt,
                    by_tasks,
                    {
                        let _enter = rt.enter();
                        $svc
                    },
                    $req,
                )
            };
        }
        case!("bare", Echo, one);
        case!(
            "seawall_timeout_adaptive",
            seawall_adaptive().layer(Echo),
            one
        );
        case!(
            "seawall_timeout_fixed",
            AdaptiveTimeoutLayer::fixed(DEADLINE).layer(Echo),
            one
        );
        case!(
            "seawall_keyed_timeout_one_key",
            seawall_keyed(1).layer(Echo),
            |_, _| 0
        );
        case!(
            "seawall_keyed_timeout_10k_keys",
            seawall_keyed(KEYS).layer(Echo),
            spread
        );
        case!(
            "tower_timeout",
            TimeoutLayer::new(DEADLINE).layer(Echo),
            one
        );
        case!(
            "tower_resilience_time_limiter",
            TimeLimiterLayer::builder()
                .timeout_duration(DEADLINE)
                .build()
                .layer(Echo),
            one
        );
        g.finish();
    }
}

criterion_group!(benches, single_thread, contended);
criterion_main!(benches);

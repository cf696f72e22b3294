//! Circuit breakers: seawall's `BreakerLayer` and `KeyedBreakerLayer`
//! against the bare service, tower's `ConcurrencyLimit` (tower has no
//! breaker; its nearest per-call gate), failsafe's breaker and
//! tower-resilience's circuit breaker, closed (success) and open
//! (rejecting), in one run; the tower-free `CircuitBreaker` alone; an open
//! breaker reading the TSC clock (`Clock::tsc`) beside failsafe's open
//! refusal; and two threads (or eight tasks) calling one breaker.
//!
//! `cargo bench -p seawall-benches --bench breaker`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_benches::{Echo, Failsafe, call, contended_case, ready_now, two_workers};
use seawall_breaker::{
    BreakerConfig, BreakerLayer, CircuitBreaker, KeyedBreakerConfig, KeyedBreakerLayer, TripPolicy,
};
use seawall_core::{Clock, KeyMapConfig};
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;
use tower_resilience::circuitbreaker::CircuitBreakerLayer;

/// Keys of the many-keys cases.
const KEYS: u64 = 10_000;
/// A stride through the keys that visits all of them, in no cache-friendly
/// order.
const STRIDE: u64 = 7_919;

fn seawall_breaker() -> BreakerLayer {
    BreakerLayer::builder().build().unwrap()
}

/// The policy closest to tower-resilience's default (failure rate over the
/// last 100 calls).
fn seawall_rate_window() -> BreakerLayer {
    BreakerLayer::from_config(
        &BreakerConfig::new().policy(TripPolicy::failure_rate_count(100, 0.5, 100)),
    )
    .unwrap()
}

fn seawall_keyed(keys: u64) -> KeyedBreakerLayer<fn(&u64) -> u64, u64> {
    let layer = KeyedBreakerLayer::new(
        (|r: &u64| *r) as fn(&u64) -> u64,
        &KeyedBreakerConfig::new().keys(
            KeyMapConfig::new()
                .capacity((keys as usize * 2).max(1024))
                .idle_ttl(Duration::from_secs(3600)),
        ),
    )
    .unwrap();
    let mut svc = layer.layer(Echo);
    for k in 0..keys {
        call(&mut svc, k).unwrap();
    }
    layer
}

/// seawall's default breaker, except that once tripped it stays open for
/// as long as a bench runs; reading `clock`.
fn seawall_stays_open(clock: Clock) -> BreakerLayer {
    let layer = BreakerLayer::builder()
        .open_duration(Duration::from_secs(3600))
        .clock(clock)
        .build()
        .unwrap();
    layer.breaker().trip();
    layer
}

fn single_thread(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("breaker");

    let mut svc = Echo;
    g.bench_function("bare", |b| b.iter(|| call(&mut svc, black_box(1))));

    let mut svc = seawall_breaker().layer(Echo);
    g.bench_function("seawall_breaker_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = seawall_rate_window().layer(Echo);
    g.bench_function("seawall_breaker_rate_window_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = seawall_stays_open(Clock::tokio()).layer(Echo);
    g.bench_function("seawall_breaker_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = seawall_stays_open(Clock::tsc()).layer(Echo);
    g.bench_function("seawall_breaker_rejecting_tsc", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    // The tower-free core: admission and outcome, no future.
    let core = CircuitBreaker::builder().build_breaker().unwrap();
    g.bench_function("seawall_core_success", |b| {
        b.iter(|| {
            if let Ok(p) = black_box(&core).try_acquire() {
                p.success()
            }
        })
    });
    let core_open = seawall_stays_open(Clock::tsc()).breaker().clone();
    g.bench_function("seawall_core_rejecting_tsc", |b| {
        b.iter(|| black_box(black_box(&core_open).try_acquire().is_err()))
    });

    let layer = seawall_keyed(1);
    let mut svc = layer.layer(Echo);
    g.bench_function("seawall_keyed_breaker_one_key", |b| {
        b.iter(|| call(&mut svc, black_box(0)))
    });
    let layer = seawall_keyed(KEYS);
    let mut svc = layer.layer(Echo);
    let mut k = 0;
    g.bench_function("seawall_keyed_breaker_10k_keys", |b| {
        b.iter(|| {
            k = (k + STRIDE) % KEYS;
            call(&mut svc, black_box(k))
        })
    });
    layer.force_open(7);
    g.bench_function("seawall_keyed_breaker_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(7)))
    });
    // 100 000 keys held, calls to 64 of them (hot in cache, as a client's
    // active peers are).
    let layer = seawall_keyed(100_000);
    let mut svc = layer.layer(Echo);
    let mut k = 0;
    g.bench_function("seawall_keyed_breaker_100k_keys_64_hot", |b| {
        b.iter(|| {
            k = (k + 1) % 64;
            call(&mut svc, black_box(k * 1_500))
        })
    });

    let mut svc = ConcurrencyLimitLayer::new(1 << 20).layer(Echo);
    g.bench_function("tower_concurrency_limit_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = Failsafe::new(Echo, Failsafe::default_breaker());
    g.bench_function("failsafe_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = Failsafe::new(Echo, Failsafe::open_breaker());
    g.bench_function("failsafe_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = CircuitBreakerLayer::builder().build().unwrap().layer(Echo);
    g.bench_function("tower_resilience_circuit_breaker_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = CircuitBreakerLayer::builder()
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .unwrap()
        .layer(Echo);
    ready_now(svc.force_open());
    g.bench_function("tower_resilience_circuit_breaker_rejecting", |b| {
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
    for (name, by_tasks) in [("breaker_2_threads", false), ("breaker_8_tasks", true)] {
        let mut g = c.benchmark_group(name);
        macro_rules! case {
            ($id:expr, $svc:expr, $req:expr) => {
                contended_case(&mut g, $id, &rt, by_tasks, $svc, $req)
            };
        }
        case!("bare", Echo, one);
        case!("seawall_breaker", seawall_breaker().layer(Echo), one);
        case!(
            "seawall_breaker_rate_window",
            seawall_rate_window().layer(Echo),
            one
        );
        case!(
            "seawall_keyed_breaker_one_key",
            seawall_keyed(1).layer(Echo),
            |_, _| 0
        );
        case!(
            "seawall_keyed_breaker_10k_keys",
            seawall_keyed(KEYS).layer(Echo),
            spread
        );
        case!(
            "tower_concurrency_limit",
            ConcurrencyLimitLayer::new(1 << 20).layer(Echo),
            one
        );
        case!(
            "failsafe",
            Failsafe::new(Echo, Failsafe::default_breaker()),
            one
        );
        case!(
            "tower_resilience_circuit_breaker",
            {
                let _enter = rt.enter();
                CircuitBreakerLayer::builder().build().unwrap().layer(Echo)
            },
            one
        );
        g.finish();
    }
}

criterion_group!(benches, single_thread, contended);
criterion_main!(benches);

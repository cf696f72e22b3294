//! Load shedding: seawall's `ShedLayer` (fixed and adaptive limits) against
//! the bare service, tower's `ConcurrencyLimit` and `LoadShed` over it
//! (tower's way to reject instead of wait), tower-resilience's bulkhead and
//! adaptive limiter, admitting (success) and shedding (rejecting), in one
//! run; then the shed layer with a pressure signal consulted on every call,
//! and the tower-free `Shedder`'s admit and reject paths.
//!
//! `cargo bench -p seawall-benches --bench shed`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_benches::{Echo, STALL, Stall, call, contended_case, hold, two_workers};
use seawall_core::rand::SplitMix64;
use seawall_shed::{
    Aimd, Limit, ManualPressure, MemoryPressure, MemoryPressureConfig, PressureLevel, Priority,
    ShedConfig, ShedLayer, Shedder,
};
use tower::Layer;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_resilience::adaptive::{AdaptiveLimiterLayer, Aimd as ResilienceAimd};
use tower_resilience::bulkhead::BulkheadLayer;

/// A limit no bench reaches (not even 8 tasks at once).
const LIMIT: usize = 1_000;

fn seawall_adaptive() -> ShedLayer {
    ShedLayer::builder()
        .limit(Limit::Aimd(
            Aimd::new().initial(LIMIT).min(LIMIT).max(LIMIT * 2),
        ))
        .build()
        .unwrap()
}

fn resilience_adaptive() -> AdaptiveLimiterLayer<ResilienceAimd> {
    AdaptiveLimiterLayer::new(
        ResilienceAimd::builder()
            .initial_limit(LIMIT)
            .min_limit(LIMIT)
            .max_limit(LIMIT * 2)
            .latency_threshold(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
}

fn bulkhead() -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent_calls(LIMIT)
        .build()
        .unwrap()
}

fn bulkhead_reject_when_full() -> BulkheadLayer {
    BulkheadLayer::builder()
        .max_concurrent_calls(LIMIT)
        .reject_when_full()
        .build()
        .unwrap()
}

fn single_thread(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("shed");

    let mut svc = Echo;
    g.bench_function("bare", |b| b.iter(|| call(&mut svc, black_box(1))));

    let mut svc = ShedLayer::fixed(LIMIT).unwrap().layer(Echo);
    g.bench_function("seawall_shed_fixed_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = seawall_adaptive().layer(Echo);
    g.bench_function("seawall_shed_adaptive_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = ShedLayer::fixed(1).unwrap().layer(Stall);
    let _held = hold(&mut svc, STALL);
    g.bench_function("seawall_shed_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = ConcurrencyLimitLayer::new(LIMIT).layer(Echo);
    g.bench_function("tower_concurrency_limit_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(LIMIT).layer(Echo));
    g.bench_function("tower_load_shed_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(1).layer(Stall));
    let _held_tower = hold(&mut svc, STALL);
    g.bench_function("tower_load_shed_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = bulkhead().layer(Echo);
    g.bench_function("tower_resilience_bulkhead_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = bulkhead_reject_when_full().layer(Echo);
    g.bench_function("tower_resilience_bulkhead_reject_mode_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = resilience_adaptive().layer(Echo);
    g.bench_function("tower_resilience_adaptive_limiter_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let rt = two_workers();
    let one = |_: u64, _: u64| 1;
    for (name, by_tasks) in [("shed_2_threads", false), ("shed_8_tasks", true)] {
        let mut g = c.benchmark_group(name);
        macro_rules! case {
            ($id:expr, $svc:expr) => {
                contended_case(&mut g, $id, &rt, by_tasks, $svc, one)
            };
        }
        case!("bare", Echo);
        case!(
            "seawall_shed_fixed",
            ShedLayer::fixed(LIMIT).unwrap().layer(Echo)
        );
        case!("seawall_shed_adaptive", seawall_adaptive().layer(Echo));
        case!(
            "tower_concurrency_limit",
            ConcurrencyLimitLayer::new(LIMIT).layer(Echo)
        );
        case!(
            "tower_load_shed",
            LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(LIMIT).layer(Echo))
        );
        case!("tower_resilience_bulkhead", bulkhead().layer(Echo));
        case!(
            "tower_resilience_adaptive_limiter",
            resilience_adaptive().layer(Echo)
        );
        g.finish();
    }
}

/// A pressure signal on every call (one set by hand, and the memory
/// sampler, whose task never runs here: the level stays that of its first
/// sample), and the tower-free shedder without the tower shell.
fn pressure_and_core(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("shed_pressure_and_core");

    let with_signal = |signal: &dyn Fn(seawall_shed::ShedBuilder) -> seawall_shed::ShedBuilder| {
        signal(ShedLayer::builder().max_in_flight(LIMIT))
            .build()
            .unwrap()
    };
    let memory = MemoryPressure::start(&MemoryPressureConfig::default()).unwrap();
    let mut svc = with_signal(&|b| b.pressure_signal(ManualPressure::new())).layer(Echo);
    g.bench_function("seawall_shed_fixed_pressure_manual_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = with_signal(&|b| b.pressure_signal(memory.clone())).layer(Echo);
    g.bench_function("seawall_shed_fixed_pressure_memory_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let severe = ManualPressure::new();
    severe.set(PressureLevel::Severe);
    let mut svc = with_signal(&|b| b.pressure_signal(severe.clone())).layer(Echo);
    g.bench_function("seawall_shed_pressure_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let config = ShedConfig::new().max_in_flight(LIMIT);
    let mut rng = SplitMix64::new(3);
    let shedder = Shedder::new(&config).unwrap();
    g.bench_function("shedder_core_success", |b| {
        b.iter(|| black_box(shedder.try_acquire(Priority::Normal, &mut rng).is_ok()))
    });
    let shedder = Shedder::with_pressure(&config, memory.clone()).unwrap();
    g.bench_function("shedder_core_pressure_success", |b| {
        b.iter(|| black_box(shedder.try_acquire(Priority::Normal, &mut rng).is_ok()))
    });
    let full = Shedder::new(&ShedConfig::new().max_in_flight(1)).unwrap();
    let _held = full.try_acquire(Priority::Critical, &mut rng).unwrap();
    g.bench_function("shedder_core_rejecting", |b| {
        b.iter(|| black_box(full.try_acquire(Priority::Normal, &mut rng).is_err()))
    });
    g.finish();
}

criterion_group!(benches, single_thread, contended, pressure_and_core);
criterion_main!(benches);

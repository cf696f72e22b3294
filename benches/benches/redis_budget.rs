//! The shared (Redis) budget: per-call cost with leasing against the local
//! `BudgetLayer` and the bare service, in one run; then Redis round trips per
//! admitted call at 10,000 calls/s.
//!
//! `cargo bench -p seawall-benches --bench redis_budget`
//!
//! Needs `redis-server` (started on a free port of 127.0.0.1, as the crate's
//! tests start it); without it only the local figures are measured, and it
//! says so.

// The benches do not depend on seawall-test-support (its tokio has
// `test-util`, which would slow every clock read measured here).
#[path = "../../crates/seawall-test-support/src/redis.rs"]
#[allow(dead_code, unreachable_pub)]
mod redis_server;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use seawall_benches::{Echo, call};
use seawall_budget::BudgetLayer;
use seawall_budget_redis::RedisBudgetLayer;
use tower::{Layer, ServiceExt};

/// A rate no bench run exhausts.
const HUGE_RATE: u32 = 1_000_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn services(c: &mut Criterion) {
    let mut g = c.benchmark_group("redis_budget");

    let mut bare = Echo;
    g.bench_function("bare", |b| b.iter(|| call(&mut bare, black_box(1))));

    let local = BudgetLayer::builder()
        .rate(HUGE_RATE)
        .burst(u32::MAX)
        .build()
        .unwrap();
    let mut svc = local.layer(Echo);
    g.bench_function("local_budget_layer", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let Some(server) = redis_server::RedisServer::start() else {
        eprintln!("SKIPPED the Redis figures: redis-server is not installed");
        return;
    };
    let rt = runtime();
    let _guard = rt.enter();
    let layer = RedisBudgetLayer::builder()
        .url(server.url())
        .name("bench")
        .rate(HUGE_RATE)
        .lease_share(0.001)
        .build()
        .unwrap();
    rt.block_on(layer.ping()).expect("redis answers");
    let mut svc = layer.layer(Echo);
    g.bench_function("redis_budget_leased", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    g.finish();
    let s = layer.stats();
    println!(
        "redis_budget_leased: {} calls, {} rejected, {} round trips ({:.6} per call), lease {}",
        s.admitted,
        s.rejected,
        s.round_trips,
        s.round_trips_per_call(),
        layer.lease_size()
    );
}

/// Offers `per_second` calls/s for `secs` (100 calls every 10ms) to a
/// budget of `rate`/s; returns (admitted, rejected, round trips).
fn paced(url: &str, rate: u32, per_second: u64, secs: u64) -> (u64, u64, u64) {
    let rt = runtime();
    rt.block_on(async {
        let layer = RedisBudgetLayer::builder()
            .url(url)
            .name(format!("paced-{rate}"))
            .rate(rate)
            .build()
            .unwrap();
        layer.ping().await.expect("redis answers");
        let svc = layer.layer(Echo);
        let per_tick = per_second / 100;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let stop = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < stop {
            tick.tick().await;
            for i in 0..per_tick {
                let _ = svc.clone().oneshot(i).await;
            }
        }
        let s = layer.stats();
        (s.admitted, s.rejected, s.round_trips)
    })
}

fn round_trips() {
    let Some(server) = redis_server::RedisServer::start() else {
        eprintln!("SKIPPED round trips per call: redis-server is not installed");
        return;
    };
    for rate in [20_000, 10_000] {
        let (admitted, rejected, trips) = paced(&server.url(), rate, 10_000, 3);
        println!(
            "10,000 calls/s offered for 3s to a {rate}/s budget: {admitted} admitted, {rejected} rejected, \
             {trips} round trips = {:.4} per admitted call",
            trips as f64 / admitted.max(1) as f64
        );
    }
}

criterion_group!(benches, services);

fn main() {
    round_trips();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

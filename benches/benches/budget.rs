//! Rate budgets: seawall's `BudgetLayer` and `KeyedBudgetLayer` against the
//! bare service, tower's `RateLimit` (and `LoadShed` over it, which is how
//! tower rejects instead of waiting), governor's GCRA limiters and
//! tower-resilience's rate limiter, in one run; then `LoopBudget` in a plain
//! loop against governor's direct check, the clock readings they rest on,
//! and the bounded queue against tokio's `mpsc`.
//!
//! `cargo bench -p seawall-benches --bench budget`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use seawall_benches::{
    Echo, Governor, KeyedGovernor, call, contended_case, hourly_quota, huge_quota, two_workers,
};
use seawall_budget::bounded::{self, OverflowPolicy};
use seawall_budget::{
    BudgetConfig, BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget,
};
use seawall_core::{Clock, KeyMapConfig};
use tower::Layer;
use tower::limit::RateLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_resilience::ratelimiter::RateLimiterLayer;

/// A rate no bench run can spend: one token per nanosecond, a 4s burst.
const HUGE_RATE: u32 = 1_000_000_000;
const HUGE_BURST: u32 = u32::MAX;
/// Keys of the many-keys cases.
const KEYS: u64 = 10_000;
/// A stride through the keys that visits all of them, in no cache-friendly
/// order.
const STRIDE: u64 = 7_919;

fn seawall_budget() -> BudgetLayer {
    seawall_budget_with(Clock::tokio(), BudgetMode::Reject)
}

fn seawall_budget_with(clock: Clock, mode: BudgetMode) -> BudgetLayer {
    BudgetLayer::builder()
        .rate(HUGE_RATE)
        .burst(HUGE_BURST)
        .mode(mode)
        .clock(clock)
        .build()
        .unwrap()
}

fn seawall_spent() -> BudgetLayer {
    let layer = BudgetLayer::builder()
        .rate(1)
        .per(Duration::from_secs(3600))
        .burst(1)
        .build()
        .unwrap();
    layer.budget().consume(1);
    layer
}

fn seawall_keyed(keys: u64) -> KeyedBudgetLayer<fn(&u64) -> u64, u64> {
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(HUGE_RATE).burst(HUGE_BURST)).keys(
        KeyMapConfig::new()
            .capacity((keys as usize * 2).max(1024))
            .idle_ttl(Duration::from_secs(3600)),
    );
    let layer = KeyedBudgetLayer::new((|r: &u64| *r) as fn(&u64) -> u64, &cfg).unwrap();
    let mut svc = layer.layer(Echo);
    for k in 0..keys {
        call(&mut svc, k).unwrap();
    }
    layer
}

fn governor_keyed(keys: u64) -> KeyedGovernor<Echo, u64> {
    let mut svc = KeyedGovernor::new(Echo, |r: &u64| *r, huge_quota());
    for k in 0..keys {
        call(&mut svc, k).unwrap();
    }
    svc
}

fn resilience_limiter(limit: usize) -> RateLimiterLayer {
    RateLimiterLayer::builder()
        .limit_for_period(limit)
        .refresh_period(Duration::from_secs(3600))
        .timeout_duration(Duration::ZERO)
        .build()
        .unwrap()
}

fn single_thread(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("budget");

    let mut svc = Echo;
    g.bench_function("bare", |b| b.iter(|| call(&mut svc, black_box(1))));

    let mut svc = seawall_budget().layer(Echo);
    g.bench_function("seawall_budget_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = seawall_budget_with(Clock::tsc(), BudgetMode::Reject).layer(Echo);
    g.bench_function("seawall_budget_tsc_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = seawall_budget_with(Clock::tokio(), BudgetMode::Wait).layer(Echo);
    g.bench_function("seawall_budget_wait_mode_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = seawall_spent().layer(Echo);
    g.bench_function("seawall_budget_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let layer = seawall_keyed(1);
    let mut svc = layer.layer(Echo);
    g.bench_function("seawall_keyed_budget_one_key", |b| {
        b.iter(|| call(&mut svc, black_box(0)))
    });
    let layer = seawall_keyed(KEYS);
    let mut svc = layer.layer(Echo);
    let mut k = 0;
    g.bench_function("seawall_keyed_budget_10k_keys", |b| {
        b.iter(|| {
            k = (k + STRIDE) % KEYS;
            call(&mut svc, black_box(k))
        })
    });

    // tower's RateLimit makes its Sleep at construction: inside the runtime
    // context, entered above.
    let mut svc = RateLimitLayer::new(u64::MAX, Duration::from_secs(3600)).layer(Echo);
    g.bench_function("tower_rate_limit_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = LoadShedLayer::new()
        .layer(RateLimitLayer::new(u64::MAX, Duration::from_secs(3600)).layer(Echo));
    g.bench_function("tower_load_shed_rate_limit_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc =
        LoadShedLayer::new().layer(RateLimitLayer::new(1, Duration::from_secs(3600)).layer(Echo));
    call(&mut svc, 1).unwrap();
    g.bench_function("tower_load_shed_rate_limit_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = Governor::new(Echo, huge_quota());
    g.bench_function("governor_direct_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = Governor::new(Echo, hourly_quota());
    call(&mut svc, 1).unwrap();
    g.bench_function("governor_direct_rejecting", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = governor_keyed(1);
    g.bench_function("governor_keyed_one_key", |b| {
        b.iter(|| call(&mut svc, black_box(0)))
    });
    let mut svc = governor_keyed(KEYS);
    let mut k = 0;
    g.bench_function("governor_keyed_10k_keys", |b| {
        b.iter(|| {
            k = (k + STRIDE) % KEYS;
            call(&mut svc, black_box(k))
        })
    });

    let mut svc = resilience_limiter(usize::MAX / 2).layer(Echo);
    g.bench_function("tower_resilience_rate_limiter_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    let mut svc = resilience_limiter(1).layer(Echo);
    call(&mut svc, 1).unwrap();
    g.bench_function("tower_resilience_rate_limiter_rejecting", |b| {
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
    for (name, by_tasks) in [("budget_2_threads", false), ("budget_8_tasks", true)] {
        let mut g = c.benchmark_group(name);
        macro_rules! case {
            ($id:expr, $svc:expr, $req:expr) => {
                contended_case(&mut g, $id, &rt, by_tasks, $svc, $req)
            };
        }
        case!("bare", Echo, one);
        case!("seawall_budget", seawall_budget().layer(Echo), one);
        case!(
            "seawall_keyed_budget_one_key",
            seawall_keyed(1).layer(Echo),
            |_, _| 0
        );
        case!(
            "seawall_keyed_budget_10k_keys",
            seawall_keyed(KEYS).layer(Echo),
            spread
        );
        case!("governor_direct", Governor::new(Echo, huge_quota()), one);
        case!("governor_keyed_one_key", governor_keyed(1), |_, _| 0);
        case!("governor_keyed_10k_keys", governor_keyed(KEYS), spread);
        case!(
            "tower_resilience_rate_limiter",
            resilience_limiter(usize::MAX / 2).layer(Echo),
            one
        );
        g.finish();
    }
}

/// `LoopBudget` in a plain loop (no tower), on tokio's clock and on the TSC,
/// against governor's direct check (the TSC through quanta), and the clock
/// readings themselves.
fn loops(c: &mut Criterion) {
    let mut g = c.benchmark_group("loop");
    for (name, clock) in [("tokio", Clock::tokio()), ("tsc", Clock::tsc())] {
        let budget = LoopBudget::builder()
            .rate(HUGE_RATE)
            .burst(HUGE_BURST)
            .clock(clock.clone())
            .build()
            .unwrap();
        g.bench_function(format!("loop_budget_can_proceed_consume_{name}"), |b| {
            b.iter(|| {
                if budget.can_proceed() {
                    budget.consume(black_box(1));
                }
            })
        });
        g.bench_function(format!("loop_budget_try_consume_{name}"), |b| {
            b.iter(|| budget.try_consume(black_box(1)).is_ok())
        });
        g.bench_function(format!("clock_{name}_nanos"), |b| b.iter(|| clock.nanos()));
    }
    g.bench_function("tokio_instant_now", |b| b.iter(tokio::time::Instant::now));
    g.bench_function("std_instant_now", |b| b.iter(std::time::Instant::now));
    let limiter = governor::RateLimiter::direct(huge_quota());
    g.bench_function("governor_direct_check", |b| {
        b.iter(|| limiter.check().is_ok())
    });
    g.finish();
}

/// 64 items through a bounded queue and back, against tokio's `mpsc`.
fn queues(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(64));
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

criterion_group!(benches, single_thread, contended, loops, queues);
criterion_main!(benches);

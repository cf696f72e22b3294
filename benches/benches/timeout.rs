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
//! The tracker's parts (a clock read, a record, the expiry path's record
//! and box, a timer made and dropped) are timed alone in `timeout_parts`.
//!
//! `cargo bench -p seawall-benches --bench timeout`
//!
//! Instructions per call: `TIMEOUT_CASE=<case> TIMEOUT_CALLS=<n>` makes the
//! binary run `n` calls of one case (after a warm-up past the adaptive
//! layer's sampling threshold) and exit, for `valgrind --tool=callgrind` at
//! two values of `n` (the difference of the counts over the difference of
//! `n` is one call's cost). Cases: `bare`, `tower`, `adaptive`,
//! `adaptive_every_call`, `fixed`, `keyed`. `rounds` has the same for every
//! layer (`ROUNDS_ONLY`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use seawall_benches::{Echo, call, contended_case, two_workers};
use seawall_core::KeyMapConfig;
use seawall_timeout::{
    AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, DeadlineSource, DeadlineTracker,
    KeyedAdaptiveTimeoutConfig, KeyedAdaptiveTimeoutLayer,
};
use tower::timeout::TimeoutLayer;
use tower::{Layer, Service};
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
    let config = KeyedAdaptiveTimeoutConfig::new().keys(
        KeyMapConfig::new()
            .capacity((keys as usize * 2).max(1024))
            .idle_ttl(Duration::from_secs(3600)),
    );
    let layer = KeyedAdaptiveTimeoutLayer::new((|r: &u64| *r) as fn(&u64) -> u64, &config).unwrap();
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
    parts(c);
}

/// The parts of the adaptive path, to see where time goes (call inside a
/// runtime context).
fn parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("timeout_parts");
    // The rejection path has to wait for a timer, which a hand-polled bench
    // cannot do cheaply; measure what the layer adds on expiry instead:
    // record the timeout and box the `Elapsed`.
    let tracker = DeadlineTracker::new(&AdaptiveTimeoutConfig::default()).unwrap();
    let recorder = tracker.recorder();
    g.bench_function("timeout_path_record_and_box", |b| {
        b.iter(|| {
            let d = recorder.deadline();
            recorder.record_timeout(d);
            let e: seawall_core::BoxError = Box::new(recorder.elapsed(d));
            black_box(e)
        })
    });
    g.bench_function("tokio_instant_now", |b| b.iter(tokio::time::Instant::now));
    let clock = tracker.clock().clone();
    g.bench_function("tokio_clock_nanos", |b| b.iter(|| clock.nanos()));
    g.bench_function("recorder_clone_drop", |b| {
        b.iter(|| black_box(tracker.recorder()))
    });
    g.bench_function("record", |b| {
        b.iter(|| recorder.record(black_box(Duration::from_micros(150))))
    });
    let rare = DeadlineTracker::new(
        &AdaptiveTimeoutConfig::builder()
            .refresh_every(1 << 24)
            .min_samples(1 << 24)
            .into_config(),
    )
    .unwrap();
    let rare = rare.recorder();
    g.bench_function("record_without_refresh", |b| {
        b.iter(|| rare.record(black_box(Duration::from_micros(150))))
    });
    let now = tokio::time::Instant::now();
    g.bench_function("sleep_until_create_drop", |b| {
        b.iter(|| black_box(tokio::time::sleep_until(now + Duration::from_secs(1))))
    });
    g.finish();
}

/// Runs `n` calls of `svc` after a warm-up, for an instruction count.
fn run_calls<S: Service<u64>>(mut svc: S, n: u64) {
    // Warm up past the adaptive layer's sampling threshold.
    for i in 0..60_000 {
        let _ = black_box(call(&mut svc, black_box(i & 1)).is_ok());
    }
    for i in 0..n {
        let _ = black_box(call(&mut svc, black_box(i & 1)).is_ok());
    }
}

/// `TIMEOUT_CASE` and `TIMEOUT_CALLS` set: runs that case alone (see the
/// module docs) and returns `true`.
fn instructions() -> bool {
    let (Ok(case), Ok(n)) = (
        std::env::var("TIMEOUT_CASE"),
        std::env::var("TIMEOUT_CALLS"),
    ) else {
        return false;
    };
    let n: u64 = n.parse().unwrap_or(0);
    // No worker threads: the counts are the calling thread's alone.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _enter = rt.enter();
    match case.as_str() {
        "bare" => run_calls(Echo, n),
        "tower" => run_calls(TimeoutLayer::new(DEADLINE).layer(Echo), n),
        "adaptive" => run_calls(
            AdaptiveTimeoutLayer::builder().build().unwrap().layer(Echo),
            n,
        ),
        "adaptive_every_call" => run_calls(
            AdaptiveTimeoutLayer::builder()
                .sample_every(1)
                .build()
                .unwrap()
                .layer(Echo),
            n,
        ),
        "fixed" => run_calls(AdaptiveTimeoutLayer::fixed(DEADLINE).layer(Echo), n),
        "keyed" => run_calls(seawall_keyed(1).layer(Echo), n),
        other => panic!("unknown case {other}"),
    }
    true
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

fn main() {
    if instructions() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

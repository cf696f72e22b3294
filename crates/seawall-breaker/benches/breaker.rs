//! Per-call cost of the breaker against the bare service and tower's
//! ConcurrencyLimit, all in one run; plus 2 threads on one breaker and on
//! different keys.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_breaker::{BreakerLayer, KeyedBreakerConfig, KeyedBreakerLayer};
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service};

#[derive(Clone)]
struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

#[inline(always)]
fn once<S: Service<u64>>(svc: &mut S, req: u64) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let fut = pin!(svc.call(req));
    matches!(fut.poll(&mut cx), Poll::Ready(Ok(_)))
}

const KEYS: u64 = 100_000;

fn keyed() -> KeyedBreakerLayer<fn(&u64) -> u64, u64> {
    fn key(r: &u64) -> u64 {
        *r
    }
    let layer = KeyedBreakerLayer::new(
        key as fn(&u64) -> u64,
        KeyedBreakerConfig {
            capacity: KEYS as usize * 5 / 4,
            idle_ttl: Duration::from_secs(3600),
            ..KeyedBreakerConfig::default()
        },
    )
    .unwrap();
    let mut svc = layer.layer(Bare);
    for k in 0..KEYS {
        once(&mut svc, k);
    }
    layer
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("call");
    let mut bare = Bare;
    g.bench_function("bare", |b| b.iter(|| once(&mut bare, black_box(1))));

    let closed = BreakerLayer::builder().build().unwrap();
    let mut svc = closed.layer(Bare);
    g.bench_function("breaker_closed_success", |b| {
        b.iter(|| once(&mut svc, black_box(1)))
    });

    let open = BreakerLayer::builder().build().unwrap();
    open.breaker().trip();
    let mut svc = open.layer(Bare);
    g.bench_function("breaker_open_rejecting", |b| {
        b.iter(|| once(&mut svc, black_box(1)))
    });

    let core = seawall_breaker::CircuitBreaker::builder()
        .build_breaker()
        .unwrap();
    g.bench_function("core_closed_success", |b| {
        b.iter(|| {
            if let Ok(p) = black_box(&core).try_acquire() {
                p.success()
            }
        })
    });
    let core_open = seawall_breaker::CircuitBreaker::builder()
        .build_breaker()
        .unwrap();
    core_open.trip();
    g.bench_function("core_open_rejecting", |b| {
        b.iter(|| black_box(black_box(&core_open).try_acquire().is_err()))
    });

    // The map holds 100k keys; calls go to 64 of them (hot in cache, as
    // a client's active peers are), then to all of them at random (each call
    // misses the cache).
    let layer = keyed();
    let mut svc = layer.layer(Bare);
    let mut k = 0u64;
    g.bench_function("keyed_existing_key_100k_keys", |b| {
        b.iter(|| {
            k = (k + 1) % 64;
            once(&mut svc, black_box(k * 1_500))
        })
    });
    g.bench_function("keyed_random_key_100k_keys", |b| {
        b.iter(|| {
            k = (k + 7919) % KEYS;
            once(&mut svc, black_box(k))
        })
    });

    let mut limit = ConcurrencyLimitLayer::new(1 << 20).layer(Bare);
    g.bench_function("tower_concurrency_limit", |b| {
        b.iter(|| once(&mut limit, black_box(1)))
    });
    g.finish();
}

// Two threads, `iters` calls each; returns the time per call per thread.
fn two_threads<S: Service<u64> + Clone + Send>(svc: &S, iters: u64, spread: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let mut svc = svc.clone();
            s.spawn(move || {
                for i in 0..iters {
                    // Thread 0 uses even keys, thread 1 odd keys.
                    once(&mut svc, black_box(((i * 2 + t) % spread) * 1_500));
                }
            });
        }
    });
    start.elapsed()
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    g.bench_function("bare", |b| b.iter_custom(|n| two_threads(&Bare, n, 1)));
    let one = BreakerLayer::builder().build().unwrap().layer(Bare);
    g.bench_function("one_breaker", |b| {
        b.iter_custom(|n| two_threads(&one, n, 1))
    });
    let layer = keyed();
    let svc = layer.layer(Bare);
    g.bench_function("keyed_different_keys", |b| {
        b.iter_custom(|n| two_threads(&svc, n, 64))
    });
    let limit = ConcurrencyLimitLayer::new(1 << 20).layer(Bare);
    g.bench_function("tower_concurrency_limit", |b| {
        b.iter_custom(|n| two_threads(&limit, n, 1))
    });
    g.finish();
}

criterion_group!(benches, single_thread, contended);
criterion_main!(benches);

//! The full stack: seawall's five layers against tower-resilience's circuit
//! breaker + retry + bulkhead + time limiter + rate limiter, and against
//! tower's nearest stack (rate limit, retry with a `TpsBudget`, timeout,
//! load shed, concurrency limit), on the success path, in one run.
//!
//! Layers, outermost first (the order `docs/architecture.md` recommends for
//! a client, with the shedder inside the timeout):
//!
//! | seawall | tower-resilience | tower |
//! |---|---|---|
//! | retry | retry | rate limit (not `Clone`: cannot sit under `Retry`) |
//! | breaker | circuit breaker | retry + `TpsBudget` |
//! | adaptive timeout | time limiter | timeout |
//! | shed (fixed limit) | bulkhead | load shed |
//! | budget | rate limiter | concurrency limit |
//!
//! `cargo bench -p seawall-benches --bench stack`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_benches::{Echo, TpsPolicy, call, contended_case, two_workers};
use seawall_breaker::BreakerLayer;
use seawall_budget::BudgetLayer;
use seawall_retry::RetryLayer;
use seawall_shed::ShedLayer;
use seawall_timeout::AdaptiveTimeoutLayer;
use tower::ServiceBuilder;
use tower_resilience::bulkhead::BulkheadLayer;
use tower_resilience::circuitbreaker::CircuitBreakerLayer;
use tower_resilience::ratelimiter::RateLimiterLayer;
use tower_resilience::retry::RetryLayer as ResilienceRetryLayer;
use tower_resilience::timelimiter::TimeLimiterLayer;

const LIMIT: usize = 1_000;
const DEADLINE: Duration = Duration::from_secs(1);

macro_rules! seawall_stack {
    () => {{
        let timeout = AdaptiveTimeoutLayer::builder().build().unwrap();
        ServiceBuilder::new()
            .layer(RetryLayer::builder().build().unwrap())
            .layer(BreakerLayer::builder().build().unwrap())
            .layer(timeout)
            .layer(ShedLayer::fixed(LIMIT).unwrap())
            .layer(
                BudgetLayer::builder()
                    .rate(1_000_000_000)
                    .burst(u32::MAX)
                    .build()
                    .unwrap(),
            )
            .service(Echo)
    }};
}

/// The inner error tower-resilience's retry sees: each layer wraps the one
/// below.
type ResilienceError = tower_resilience::circuitbreaker::CircuitBreakerError<
    tower_resilience::timelimiter::TimeLimiterError<
        tower_resilience::bulkhead::BulkheadServiceError<
            tower_resilience::ratelimiter::RateLimiterServiceError<seawall_benches::Fail>,
        >,
    >,
>;

macro_rules! resilience_stack {
    () => {{
        ServiceBuilder::new()
            .layer(
                ResilienceRetryLayer::<u64, u64, ResilienceError>::builder()
                    .max_attempts(3)
                    .fixed_backoff(Duration::ZERO)
                    .build(),
            )
            .layer(CircuitBreakerLayer::builder().build().unwrap())
            .layer(
                TimeLimiterLayer::builder()
                    .timeout_duration(DEADLINE)
                    .build(),
            )
            .layer(
                BulkheadLayer::builder()
                    .max_concurrent_calls(LIMIT)
                    .build()
                    .unwrap(),
            )
            .layer(
                RateLimiterLayer::builder()
                    .limit_for_period(usize::MAX / 2)
                    .refresh_period(Duration::from_secs(3600))
                    .timeout_duration(Duration::ZERO)
                    .build()
                    .unwrap(),
            )
            .service(Echo)
    }};
}

fn tower_policy() -> TpsPolicy {
    TpsPolicy::new()
}

/// The size of `svc`'s response future, in bytes (what every caller moves
/// and holds per call).
fn future_size<S: tower::Service<u64>>(svc: &mut S) -> usize {
    let fut = svc.call(1);
    std::mem::size_of_val(&fut)
}

fn single_thread(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    eprintln!(
        "response futures: seawall {} bytes, tower-resilience {} bytes, tower (four layers) {} bytes",
        future_size(&mut seawall_stack!()),
        future_size(&mut resilience_stack!()),
        future_size(
            &mut ServiceBuilder::new()
                .layer(tower::retry::RetryLayer::new(tower_policy()))
                .timeout(DEADLINE)
                .load_shed()
                .concurrency_limit(LIMIT)
                .service(Echo)
        ),
    );
    let mut g = c.benchmark_group("stack");

    let mut svc = Echo;
    g.bench_function("bare", |b| b.iter(|| call(&mut svc, black_box(1))));

    let mut svc = seawall_stack!();
    // Past the adaptive timeout's warm-up and into its sampling (from
    // 16 × min_samples × sample_every = 51 200 calls on, with the defaults).
    for i in 0..60_000 {
        call(&mut svc, i).unwrap();
    }
    g.bench_function("seawall_five_layers_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = resilience_stack!();
    g.bench_function("tower_resilience_five_layers_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });

    let mut svc = ServiceBuilder::new()
        .rate_limit(u64::MAX, Duration::from_secs(3600))
        .layer(tower::retry::RetryLayer::new(tower_policy()))
        .timeout(DEADLINE)
        .load_shed()
        .concurrency_limit(LIMIT)
        .service(Echo);
    g.bench_function("tower_five_layers_success", |b| {
        b.iter(|| call(&mut svc, black_box(1)))
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let rt = two_workers();
    let one = |_: u64, _: u64| 1;
    for (name, by_tasks) in [("stack_2_threads", false), ("stack_8_tasks", true)] {
        let mut g = c.benchmark_group(name);
        macro_rules! case {
            ($id:expr, $svc:expr) => {
                contended_case(
                    &mut g,
                    $id,
                    &rt,
                    by_tasks,
                    {
                        let _enter = rt.enter();
                        $svc
                    },
                    one,
                )
            };
        }
        case!("bare", Echo);
        case!("seawall_five_layers", seawall_stack!());
        case!("tower_resilience_five_layers", resilience_stack!());
        // tower's RateLimit is not `Clone`: its four other layers.
        case!(
            "tower_four_layers_without_rate_limit",
            ServiceBuilder::new()
                .layer(tower::retry::RetryLayer::new(tower_policy()))
                .timeout(DEADLINE)
                .load_shed()
                .concurrency_limit(LIMIT)
                .service(Echo)
        );
        g.finish();
    }
}

criterion_group!(benches, single_thread, contended);
criterion_main!(benches);

//! Heap allocations per call of every seawall layer, on its success path
//! (asserted: none) and on its rejection path (asserted: exactly one, the
//! `Box` of the `BoxError`, tower's convention for errors), and the same
//! counts for the peers of the benches, printed and not asserted
//! (`cargo test -p seawall-bench-allocations -- --nocapture`).
//!
//! Allocations are counted per thread (`seawall_test_support::CountingAlloc`),
//! so each test counts only its own work, whatever else the machine or the
//! test harness does meanwhile. Every service is driven by hand on the test's
//! own thread, as in the benches, inside a current-thread runtime; the
//! timeouts' expiry paths run on its paused clock.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_benches::{
    Echo, Fail, Failing, Failsafe, Governor, KeyedGovernor, STALL, Stall, TpsPolicy, call, hold,
    hourly_quota, huge_quota, ready_now,
};
use seawall_breaker::{BreakerLayer, KeyedBreakerConfig, KeyedBreakerLayer};
use seawall_budget::{BudgetConfig, BudgetLayer, KeyedBudgetConfig, KeyedBudgetLayer};
use seawall_retry::{Backoff, RetryBudget, RetryLayer};
use seawall_shed::{Aimd, Limit, ShedLayer};
use seawall_test_support::CountingAlloc;
use seawall_timeout::AdaptiveTimeoutLayer;
use tower::{Layer, Service, ServiceBuilder};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Calls per count.
const N: u64 = 1_000;

/// Allocations made by this thread so far.
fn blocks() -> u64 {
    seawall_test_support::counts().allocations
}

/// Allocations made by `N` calls of `svc` with `req`, after a warm-up (maps,
/// timer wheels and tracing call sites fill lazily), the least of three
/// runs: a one-off lazy allocation (a map or a timer level growing on first
/// use) is not a per-call cost, while a per-call allocation shows in every
/// run. Checks that every call took the path named by `ok`.
fn count<S: Service<u64>>(svc: &mut S, req: u64, ok: bool) -> u64 {
    for _ in 0..10 {
        assert_eq!(call(svc, req).is_ok(), ok, "the path under count");
    }
    (0..3)
        .map(|_| {
            let before = blocks();
            for _ in 0..N {
                let out = call(svc, black_box(req));
                if out.is_ok() != ok {
                    panic!("a call left the path under count");
                }
                drop(black_box(out));
            }
            blocks() - before
        })
        .min()
        .unwrap_or(u64::MAX)
}

/// Allocations per expiry of a timeout layer over [`Stall`]: call with
/// [`STALL`], let the paused clock pass `after`, poll the error out. Runs
/// in `block_on` of a paused runtime.
async fn expiries<S: Service<u64>>(svc: &mut S, after: Duration) -> u64 {
    async fn once<S: Service<u64>>(svc: &mut S, after: Duration) {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let mut fut = pin!(svc.call(STALL));
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "waits");
        // Awaiting `advance` yields to the runtime, whose timer then fires.
        tokio::time::advance(after).await;
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(Err(_)) => {}
            _ => panic!("expired"),
        }
    }
    for _ in 0..10 {
        once(svc, after).await;
    }
    let before = blocks();
    for _ in 0..100 {
        once(svc, after).await;
    }
    (blocks() - before) / 100
}

/// The rows of the printed table.
struct Table(Vec<(String, f64)>);

impl Table {
    fn seawall(&mut self, name: &str, n: u64, expect_per_call: u64) {
        self.0.push((name.to_string(), n as f64 / N as f64));
        assert_eq!(n, expect_per_call * N, "{name}");
    }

    fn peer(&mut self, name: &str, n: u64) {
        self.0.push((name.to_string(), n as f64 / N as f64));
    }
}

/// A current-thread runtime on a paused clock, entered: hand-polled calls
/// run in its context, not inside `block_on`, where tokio's cooperative
/// budget would make a resource return `Pending` after 128 polls that never
/// yield. The expiry cases run in `block_on` (the clock advances there).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

impl Table {
    fn print(&self) {
        println!("{:<58} allocs/call", "layer, path");
        for (name, per_call) in &self.0 {
            println!("{name:<58} {per_call:.2}");
        }
    }
}

#[test]
fn seawall_allocates_only_to_refuse() {
    let rt = runtime();
    let _enter = rt.enter();
    let mut t = Table(Vec::new());
    seawall_layers(&mut t, &rt);
    t.print();
}

#[test]
fn peers_for_comparison() {
    let rt = runtime();
    let _enter = rt.enter();
    let mut t = Table(Vec::new());
    peers(&mut t, &rt);
    t.print();
}

fn seawall_layers(t: &mut Table, rt: &tokio::runtime::Runtime) {
    t.peer("bare", count(&mut Echo, 1, true));

    // Budget.
    let layer = BudgetLayer::builder()
        .rate(1_000_000_000)
        .burst(u32::MAX)
        .build()
        .unwrap();
    t.seawall(
        "seawall budget, success",
        count(&mut layer.layer(Echo), 1, true),
        0,
    );
    let layer = BudgetLayer::builder()
        .rate(1)
        .per(Duration::from_secs(3600))
        .burst(1)
        .build()
        .unwrap();
    layer.budget().consume(1);
    t.seawall(
        "seawall budget, rejecting",
        count(&mut layer.layer(Echo), 1, false),
        1,
    );
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(1_000_000_000).burst(u32::MAX));
    let keyed = KeyedBudgetLayer::new(|r: &u64| *r, &cfg).unwrap();
    t.seawall(
        "seawall keyed budget, success",
        count(&mut keyed.layer(Echo), 3, true),
        0,
    );
    let cfg = KeyedBudgetConfig::from(
        BudgetConfig::new()
            .rate(1)
            .per(Duration::from_secs(3600))
            .burst(1),
    );
    let keyed = KeyedBudgetLayer::new(|r: &u64| *r, &cfg).unwrap();
    let mut svc = keyed.layer(Echo);
    call(&mut svc, 3).unwrap();
    t.seawall(
        "seawall keyed budget, rejecting",
        count(&mut svc, 3, false),
        1,
    );

    // Breaker.
    let layer = BreakerLayer::builder().build().unwrap();
    t.seawall(
        "seawall breaker, success",
        count(&mut layer.layer(Echo), 1, true),
        0,
    );
    layer.breaker().trip();
    t.seawall(
        "seawall breaker, rejecting",
        count(&mut layer.layer(Echo), 1, false),
        1,
    );
    let keyed = KeyedBreakerLayer::new(|r: &u64| *r, &KeyedBreakerConfig::default()).unwrap();
    let mut svc = keyed.layer(Echo);
    t.seawall(
        "seawall keyed breaker, success",
        count(&mut svc, 3, true),
        0,
    );
    keyed.force_open(3);
    t.seawall(
        "seawall keyed breaker, rejecting",
        count(&mut svc, 3, false),
        1,
    );

    // Shed.
    t.seawall(
        "seawall shed (fixed), success",
        count(&mut ShedLayer::fixed(100).unwrap().layer(Echo), 1, true),
        0,
    );
    let adaptive = ShedLayer::builder()
        .limit(Limit::Aimd(Aimd::default()))
        .build()
        .unwrap();
    t.seawall(
        "seawall shed (adaptive), success",
        count(&mut adaptive.layer(Echo), 1, true),
        0,
    );
    let mut svc = ShedLayer::fixed(1).unwrap().layer(Stall);
    let held = hold(&mut svc, STALL);
    t.seawall("seawall shed, rejecting", count(&mut svc, 1, false), 1);
    drop(held);

    // Timeout.
    let layer = AdaptiveTimeoutLayer::builder()
        .min_samples(10)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    for i in 0..100 {
        call(&mut svc, i).unwrap();
    }
    t.seawall(
        "seawall timeout (adaptive), success",
        count(&mut svc, 1, true),
        0,
    );
    t.seawall(
        "seawall timeout (fixed), success",
        count(
            &mut AdaptiveTimeoutLayer::fixed(Duration::from_secs(1)).layer(Echo),
            1,
            true,
        ),
        0,
    );
    let keyed = AdaptiveTimeoutLayer::builder()
        .build_keyed(|r: &u64| *r)
        .unwrap();
    t.seawall(
        "seawall keyed timeout, success",
        count(&mut keyed.layer(Echo), 3, true),
        0,
    );
    let mut svc = AdaptiveTimeoutLayer::fixed(Duration::from_millis(5)).layer(Stall);
    let per = rt.block_on(expiries(&mut svc, Duration::from_millis(6)));
    t.seawall("seawall timeout, expiring", per * N, 1);

    // Retry.
    t.seawall(
        "seawall retry, success",
        count(
            &mut RetryLayer::builder().build().unwrap().layer(Echo),
            1,
            true,
        ),
        0,
    );
    let spent = RetryLayer::builder()
        .backoff(Backoff::constant(Duration::ZERO))
        .shared_budget(RetryBudget::new(0.0, 0, Duration::from_secs(1)).unwrap())
        .build()
        .unwrap();
    t.seawall(
        "seawall retry, budget spent, giving up",
        count(&mut spent.layer(Failing), 1, false),
        1,
    );

    // The five layers.
    let mut svc = ServiceBuilder::new()
        .layer(RetryLayer::builder().build().unwrap())
        .layer(BreakerLayer::builder().build().unwrap())
        .layer(AdaptiveTimeoutLayer::builder().build().unwrap())
        .layer(ShedLayer::fixed(100).unwrap())
        .layer(
            BudgetLayer::builder()
                .rate(1_000_000_000)
                .burst(u32::MAX)
                .build()
                .unwrap(),
        )
        .service(Echo);
    t.seawall("seawall five layers, success", count(&mut svc, 1, true), 0);
}

fn peers(t: &mut Table, rt: &tokio::runtime::Runtime) {
    use tower::limit::{ConcurrencyLimitLayer, RateLimitLayer};
    use tower::load_shed::LoadShedLayer;
    use tower::timeout::TimeoutLayer;
    use tower_resilience::adaptive::{AdaptiveLimiterLayer, Aimd as ResilienceAimd};
    use tower_resilience::bulkhead::BulkheadLayer;
    use tower_resilience::circuitbreaker::CircuitBreakerLayer;
    use tower_resilience::ratelimiter::RateLimiterLayer;
    use tower_resilience::retry::{RetryBudgetBuilder, RetryLayer as ResilienceRetryLayer};
    use tower_resilience::timelimiter::TimeLimiterLayer;

    let hour = Duration::from_secs(3600);

    // tower.
    t.peer(
        "tower concurrency limit, success",
        count(&mut ConcurrencyLimitLayer::new(100).layer(Echo), 1, true),
    );
    t.peer(
        "tower load shed + concurrency limit, success",
        count(
            &mut LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(100).layer(Echo)),
            1,
            true,
        ),
    );
    let mut svc = LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(1).layer(Stall));
    let held = hold(&mut svc, STALL);
    t.peer(
        "tower load shed + concurrency limit, rejecting",
        count(&mut svc, 1, false),
    );
    drop(held);
    t.peer(
        "tower rate limit, success",
        count(
            &mut RateLimitLayer::new(u64::MAX, hour).layer(Echo),
            1,
            true,
        ),
    );
    let mut svc = LoadShedLayer::new().layer(RateLimitLayer::new(1, hour).layer(Echo));
    call(&mut svc, 1).unwrap();
    t.peer(
        "tower load shed + rate limit, rejecting",
        count(&mut svc, 1, false),
    );
    t.peer(
        "tower timeout, success",
        count(
            &mut TimeoutLayer::new(Duration::from_secs(1)).layer(Echo),
            1,
            true,
        ),
    );
    let mut svc = TimeoutLayer::new(Duration::from_millis(5)).layer(Stall);
    let per = rt.block_on(expiries(&mut svc, Duration::from_millis(6)));
    t.peer("tower timeout, expiring", per * N);
    let policy = TpsPolicy::new();
    t.peer(
        "tower retry + TpsBudget, success",
        count(
            &mut tower::retry::RetryLayer::new(policy).layer(Echo),
            1,
            true,
        ),
    );
    let spent = TpsPolicy::spent();
    t.peer(
        "tower retry + TpsBudget, budget spent, giving up",
        count(
            &mut tower::retry::RetryLayer::new(spent).layer(Failing),
            1,
            false,
        ),
    );

    // tower-resilience.
    let mut svc = CircuitBreakerLayer::builder().build().unwrap().layer(Echo);
    t.peer(
        "tower-resilience circuit breaker, success",
        count(&mut svc, 1, true),
    );
    ready_now(svc.force_open());
    t.peer(
        "tower-resilience circuit breaker, rejecting",
        count(&mut svc, 1, false),
    );
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(100)
        .build()
        .unwrap();
    t.peer(
        "tower-resilience bulkhead, success",
        count(&mut bulkhead.layer(Echo), 1, true),
    );
    let limiter = |limit| {
        RateLimiterLayer::builder()
            .limit_for_period(limit)
            .refresh_period(hour)
            .timeout_duration(Duration::ZERO)
            .build()
            .unwrap()
    };
    t.peer(
        "tower-resilience rate limiter, success",
        count(&mut limiter(usize::MAX / 2).layer(Echo), 1, true),
    );
    let mut svc = limiter(1).layer(Echo);
    call(&mut svc, 1).unwrap();
    t.peer(
        "tower-resilience rate limiter, rejecting",
        count(&mut svc, 1, false),
    );
    t.peer(
        "tower-resilience time limiter, success",
        count(
            &mut TimeLimiterLayer::builder()
                .timeout_duration(Duration::from_secs(1))
                .build()
                .layer(Echo),
            1,
            true,
        ),
    );
    let mut svc = TimeLimiterLayer::builder()
        .timeout_duration(Duration::from_millis(5))
        .build()
        .layer(Stall);
    let per = rt.block_on(expiries(&mut svc, Duration::from_millis(6)));
    t.peer("tower-resilience time limiter, expiring", per * N);
    t.peer(
        "tower-resilience retry, success",
        count(
            &mut ResilienceRetryLayer::<u64, u64, Fail>::builder()
                .max_attempts(3)
                .fixed_backoff(Duration::ZERO)
                .build()
                .layer(Echo),
            1,
            true,
        ),
    );
    let budget = RetryBudgetBuilder::new()
        .token_bucket()
        .tokens_per_second(0.0)
        .max_tokens(1)
        .initial_tokens(0)
        .build()
        .unwrap();
    t.peer(
        "tower-resilience retry, budget spent, giving up",
        count(
            &mut ResilienceRetryLayer::<u64, u64, Fail>::builder()
                .max_attempts(3)
                .fixed_backoff(Duration::ZERO)
                .budget(budget)
                .build()
                .layer(Failing),
            1,
            false,
        ),
    );
    let adaptive = AdaptiveLimiterLayer::new(
        ResilienceAimd::builder()
            .initial_limit(100)
            .min_limit(100)
            .max_limit(200)
            .latency_threshold(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    t.peer(
        "tower-resilience adaptive limiter, success",
        count(&mut adaptive.layer(Echo), 1, true),
    );

    // failsafe.
    t.peer(
        "failsafe breaker, success",
        count(
            &mut Failsafe::new(Echo, Failsafe::default_breaker()),
            1,
            true,
        ),
    );
    t.peer(
        "failsafe breaker, rejecting",
        count(&mut Failsafe::new(Echo, Failsafe::open_breaker()), 1, false),
    );

    // governor.
    t.peer(
        "governor direct, success",
        count(&mut Governor::new(Echo, huge_quota()), 1, true),
    );
    let mut svc = Governor::new(Echo, hourly_quota());
    call(&mut svc, 1).unwrap();
    t.peer("governor direct, rejecting", count(&mut svc, 1, false));
    t.peer(
        "governor keyed, success",
        count(
            &mut KeyedGovernor::new(Echo, |r: &u64| *r, huge_quota()),
            3,
            true,
        ),
    );
}

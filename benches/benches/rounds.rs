//! Every single-thread case of the other bench targets, in interleaved
//! rounds: each round runs every case once (200 000 calls), and the figure
//! is the median over 31 rounds. A noisy neighbour then slows all cases of a
//! round alike instead of the few criterion happened to be measuring, so the
//! *ratios* between cases hold on a shared machine.
//!
//! `cargo bench -p seawall-benches --bench rounds` prints ns/call and the
//! overhead over the bare service; with `ROUNDS_ONLY=NAME` in the
//! environment, only the cases whose name contains NAME (and the bare
//! service) run; with `ROUNDS_CALLS=N` as well, only the case named
//! exactly NAME runs, once, N calls, and nothing is printed: run it under
//! `valgrind --tool=callgrind` at two values of N, and the difference of the
//! instruction counts divided by the difference of N is the instructions of
//! one call, a figure no noisy neighbour blurs. Criterion's options (`--warm-up-time` ...) are ignored, so
//! that one `cargo bench` command runs every target.

use std::hint::black_box;
use std::time::{Duration, Instant};

use seawall_benches::{
    Echo, Fail, Failing, Failsafe, Governor, KeyedGovernor, STALL, Stall, TpsPolicy, call, hold,
    hourly_quota, huge_quota, ready_now,
};
use seawall_breaker::{
    BreakerConfig, BreakerLayer, KeyedBreakerConfig, KeyedBreakerLayer, TripPolicy,
};
use seawall_budget::{BudgetConfig, BudgetLayer, KeyedBudgetConfig, KeyedBudgetLayer};
use seawall_core::rand::SplitMix64;
use seawall_core::{Clock, KeyMapConfig};
use seawall_retry::{Backoff, RetryBudget, RetryLayer};
use seawall_shed::{
    Aimd, Limit, ManualPressure, MemoryPressure, MemoryPressureConfig, PressureLevel, Priority,
    ShedBuilder, ShedConfig, ShedLayer, Shedder,
};
use seawall_timeout::AdaptiveTimeoutLayer;
use tower::limit::{ConcurrencyLimitLayer, RateLimitLayer};
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::{Layer, Service, ServiceBuilder};
use tower_resilience::adaptive::{AdaptiveLimiterLayer, Aimd as ResilienceAimd};
use tower_resilience::bulkhead::BulkheadLayer;
use tower_resilience::circuitbreaker::CircuitBreakerLayer;
use tower_resilience::ratelimiter::RateLimiterLayer;
use tower_resilience::retry::{RetryBudgetBuilder, RetryLayer as ResilienceRetryLayer};
use tower_resilience::timelimiter::TimeLimiterLayer;

const ROUNDS: usize = 31;
const CALLS: u64 = 200_000;
const KEYS: u64 = 10_000;
const STRIDE: u64 = 7_919;
const LIMIT: usize = 1_000;
const HOUR: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_secs(1);

type Case = Box<dyn FnMut(u64)>;

/// `n` calls of `svc` with `req`, each expected to succeed (`ok`) or fail.
fn looped<S: Service<u64> + 'static>(mut svc: S, req: u64, ok: bool) -> Case {
    Box::new(move |n| {
        for _ in 0..n {
            assert_eq!(call(&mut svc, black_box(req)).is_ok(), ok);
        }
    })
}

/// `n` successful calls over all `KEYS` keys (inserted at the first run, so
/// that a case filtered out costs no memory).
fn keyed<S: Service<u64> + 'static>(mut svc: S) -> Case {
    let mut k = 0;
    let mut filled = false;
    Box::new(move |n| {
        if !filled {
            for k in 0..KEYS {
                assert!(call(&mut svc, k).is_ok());
            }
            filled = true;
        }
        for _ in 0..n {
            k = (k + STRIDE) % KEYS;
            assert!(call(&mut svc, black_box(k)).is_ok());
        }
    })
}

type ResilienceError = tower_resilience::circuitbreaker::CircuitBreakerError<
    tower_resilience::timelimiter::TimeLimiterError<
        tower_resilience::bulkhead::BulkheadServiceError<
            tower_resilience::ratelimiter::RateLimiterServiceError<Fail>,
        >,
    >,
>;

fn budget_cases(v: &mut Vec<(&'static str, Case)>) {
    let budget = || BudgetLayer::builder().rate(1_000_000_000).burst(u32::MAX);
    v.push((
        "budget/seawall_success",
        looped(budget().build().unwrap().layer(Echo), 1, true),
    ));
    // The same budget reading the TSC (through quanta, as governor does).
    v.push((
        "budget/seawall_tsc_success",
        looped(
            budget()
                .clock(seawall_core::Clock::tsc())
                .build()
                .unwrap()
                .layer(Echo),
            1,
            true,
        ),
    ));
    let spent = BudgetLayer::builder()
        .rate(1)
        .per(HOUR)
        .burst(1)
        .build()
        .unwrap();
    spent.budget().consume(1);
    v.push((
        "budget/seawall_rejecting",
        looped(spent.layer(Echo), 1, false),
    ));
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(1_000_000_000).burst(u32::MAX))
        .keys(
            seawall_core::KeyMapConfig::new()
                .capacity(KEYS as usize * 2)
                .idle_ttl(HOUR),
        );
    let k = KeyedBudgetLayer::new(|r: &u64| *r, &cfg).unwrap();
    v.push((
        "budget/seawall_keyed_one_key",
        looped(k.layer(Echo), 0, true),
    ));
    let k = KeyedBudgetLayer::new(|r: &u64| *r, &cfg).unwrap();
    v.push(("budget/seawall_keyed_10k_keys", keyed(k.layer(Echo))));
    v.push((
        "budget/tower_rate_limit_success",
        looped(RateLimitLayer::new(u64::MAX, HOUR).layer(Echo), 1, true),
    ));
    let mut shed = LoadShedLayer::new().layer(RateLimitLayer::new(1, HOUR).layer(Echo));
    call(&mut shed, 1).unwrap();
    v.push((
        "budget/tower_load_shed_rate_limit_rejecting",
        looped(shed, 1, false),
    ));
    v.push((
        "budget/governor_direct_success",
        looped(Governor::new(Echo, huge_quota()), 1, true),
    ));
    let mut g = Governor::new(Echo, hourly_quota());
    call(&mut g, 1).unwrap();
    v.push(("budget/governor_direct_rejecting", looped(g, 1, false)));
    v.push((
        "budget/governor_keyed_10k_keys",
        keyed(KeyedGovernor::new(Echo, |r: &u64| *r, huge_quota())),
    ));
    let limiter = |limit| {
        RateLimiterLayer::builder()
            .limit_for_period(limit)
            .refresh_period(HOUR)
            .timeout_duration(Duration::ZERO)
            .build()
            .unwrap()
    };
    v.push((
        "budget/tower_resilience_rate_limiter_success",
        looped(limiter(usize::MAX / 2).layer(Echo), 1, true),
    ));
    let mut r = limiter(1).layer(Echo);
    call(&mut r, 1).unwrap();
    v.push((
        "budget/tower_resilience_rate_limiter_rejecting",
        looped(r, 1, false),
    ));
}

fn breaker_cases(v: &mut Vec<(&'static str, Case)>) {
    v.push((
        "breaker/seawall_success",
        looped(
            BreakerLayer::builder().build().unwrap().layer(Echo),
            1,
            true,
        ),
    ));
    let window = BreakerLayer::from_config(
        &BreakerConfig::new().policy(TripPolicy::failure_rate_count(100, 0.5, 100)),
    )
    .unwrap();
    v.push((
        "breaker/seawall_rate_window_success",
        looped(window.layer(Echo), 1, true),
    ));
    for (name, clock) in [
        ("breaker/seawall_rejecting", Clock::tokio()),
        ("breaker/seawall_rejecting_tsc", Clock::tsc()),
    ] {
        let open = BreakerLayer::builder()
            .open_duration(HOUR)
            .clock(clock)
            .build()
            .unwrap();
        open.breaker().trip();
        v.push((name, looped(open.layer(Echo), 1, false)));
    }
    let cfg = KeyedBreakerConfig::new().keys(
        KeyMapConfig::new()
            .capacity(KEYS as usize * 2)
            .idle_ttl(HOUR),
    );
    let k = KeyedBreakerLayer::new(|r: &u64| *r, &cfg).unwrap();
    v.push((
        "breaker/seawall_keyed_one_key",
        looped(k.layer(Echo), 0, true),
    ));
    let k = KeyedBreakerLayer::new(|r: &u64| *r, &cfg).unwrap();
    v.push(("breaker/seawall_keyed_10k_keys", keyed(k.layer(Echo))));
    v.push((
        "breaker/tower_concurrency_limit_success",
        looped(ConcurrencyLimitLayer::new(1 << 20).layer(Echo), 1, true),
    ));
    v.push((
        "breaker/failsafe_success",
        looped(Failsafe::new(Echo, Failsafe::default_breaker()), 1, true),
    ));
    v.push((
        "breaker/failsafe_rejecting",
        looped(Failsafe::new(Echo, Failsafe::open_breaker()), 1, false),
    ));
    v.push((
        "breaker/tower_resilience_success",
        looped(
            CircuitBreakerLayer::builder().build().unwrap().layer(Echo),
            1,
            true,
        ),
    ));
    let open = CircuitBreakerLayer::builder()
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .unwrap()
        .layer(Echo);
    ready_now(open.force_open());
    v.push(("breaker/tower_resilience_rejecting", looped(open, 1, false)));
}

fn shed_cases(v: &mut Vec<(&'static str, Case)>) {
    v.push((
        "shed/seawall_fixed_success",
        looped(ShedLayer::fixed(LIMIT).unwrap().layer(Echo), 1, true),
    ));
    let adaptive = ShedLayer::builder()
        .limit(Limit::Aimd(
            Aimd::new().initial(LIMIT).min(LIMIT).max(LIMIT * 2),
        ))
        .build()
        .unwrap();
    v.push((
        "shed/seawall_adaptive_success",
        looped(adaptive.layer(Echo), 1, true),
    ));
    let mut full = ShedLayer::fixed(1).unwrap().layer(Stall);
    let held = hold(&mut full, STALL);
    let mut full = looped(full, 1, false);
    v.push((
        "shed/seawall_rejecting",
        Box::new(move |n| {
            let _held = &held;
            full(n)
        }),
    ));
    // A pressure signal on every call: one set by hand, the memory
    // sampler (its task never runs here: the level stays that of its first
    // sample), and one that sheds everything but `Critical`.
    let memory = MemoryPressure::start(&MemoryPressureConfig::default()).unwrap();
    let signalled = |signal: &dyn Fn(ShedBuilder) -> ShedBuilder| {
        signal(ShedLayer::builder().max_in_flight(LIMIT))
            .build()
            .unwrap()
    };
    v.push((
        "shed/seawall_pressure_manual_success",
        looped(
            signalled(&|b| b.pressure_signal(ManualPressure::new())).layer(Echo),
            1,
            true,
        ),
    ));
    v.push((
        "shed/seawall_pressure_memory_success",
        looped(
            signalled(&|b| b.pressure_signal(memory.clone())).layer(Echo),
            1,
            true,
        ),
    ));
    let severe = ManualPressure::new();
    severe.set(PressureLevel::Severe);
    v.push((
        "shed/seawall_pressure_rejecting",
        looped(
            signalled(&|b| b.pressure_signal(severe.clone())).layer(Echo),
            1,
            false,
        ),
    ));
    // The tower-free shedder: admit (the permit dropped at once), refuse.
    let shedder = Shedder::new(&ShedConfig::new().max_in_flight(LIMIT)).unwrap();
    let mut rng = SplitMix64::new(3);
    v.push((
        "shed/shedder_core_success",
        Box::new(move |n| {
            for _ in 0..n {
                assert!(black_box(shedder.try_acquire(Priority::Normal, &mut rng)).is_ok());
            }
        }),
    ));
    let full = Shedder::new(&ShedConfig::new().max_in_flight(1)).unwrap();
    let mut rng = SplitMix64::new(4);
    let held = full.try_acquire(Priority::Critical, &mut rng).unwrap();
    v.push((
        "shed/shedder_core_rejecting",
        Box::new(move |n| {
            let _held = &held;
            for _ in 0..n {
                assert!(black_box(full.try_acquire(Priority::Normal, &mut rng)).is_err());
            }
        }),
    ));
    v.push((
        "shed/tower_concurrency_limit_success",
        looped(ConcurrencyLimitLayer::new(LIMIT).layer(Echo), 1, true),
    ));
    v.push((
        "shed/tower_load_shed_success",
        looped(
            LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(LIMIT).layer(Echo)),
            1,
            true,
        ),
    ));
    let mut full = LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(1).layer(Stall));
    let held = hold(&mut full, STALL);
    let mut full = looped(full, 1, false);
    v.push((
        "shed/tower_load_shed_rejecting",
        Box::new(move |n| {
            let _held = &held;
            full(n)
        }),
    ));
    let bulkhead = BulkheadLayer::builder()
        .max_concurrent_calls(LIMIT)
        .build()
        .unwrap();
    v.push((
        "shed/tower_resilience_bulkhead_success",
        looped(bulkhead.layer(Echo), 1, true),
    ));
    let adaptive = AdaptiveLimiterLayer::new(
        ResilienceAimd::builder()
            .initial_limit(LIMIT)
            .min_limit(LIMIT)
            .max_limit(LIMIT * 2)
            .latency_threshold(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    v.push((
        "shed/tower_resilience_adaptive_limiter_success",
        looped(adaptive.layer(Echo), 1, true),
    ));
}

fn timeout_cases(v: &mut Vec<(&'static str, Case)>) {
    let adaptive = AdaptiveTimeoutLayer::builder().build().unwrap();
    let mut svc = adaptive.layer(Echo);
    // Past the warm-up and into sampling (from 16 × min_samples ×
    // sample_every = 51 200 calls on, with the defaults).
    for i in 0..60_000 {
        call(&mut svc, i).unwrap();
    }
    v.push(("timeout/seawall_adaptive_success", looped(svc, 1, true)));
    v.push((
        "timeout/seawall_fixed_success",
        looped(AdaptiveTimeoutLayer::fixed(DEADLINE).layer(Echo), 1, true),
    ));
    let config = seawall_timeout::KeyedAdaptiveTimeoutConfig::new().capacity(KEYS as usize * 2);
    let k = seawall_timeout::KeyedAdaptiveTimeoutLayer::new(|r: &u64| *r, &config).unwrap();
    v.push((
        "timeout/seawall_keyed_one_key",
        looped(k.layer(Echo), 0, true),
    ));
    let k = seawall_timeout::KeyedAdaptiveTimeoutLayer::new(|r: &u64| *r, &config.idle_ttl(HOUR))
        .unwrap();
    v.push(("timeout/seawall_keyed_10k_keys", keyed(k.layer(Echo))));
    v.push((
        "timeout/tower_timeout_success",
        looped(TimeoutLayer::new(DEADLINE).layer(Echo), 1, true),
    ));
    v.push((
        "timeout/tower_resilience_time_limiter_success",
        looped(
            TimeLimiterLayer::builder()
                .timeout_duration(DEADLINE)
                .build()
                .layer(Echo),
            1,
            true,
        ),
    ));
}

fn tps() -> TpsPolicy {
    TpsPolicy::new()
}

fn retry_cases(v: &mut Vec<(&'static str, Case)>) {
    v.push((
        "retry/seawall_success",
        looped(RetryLayer::builder().build().unwrap().layer(Echo), 1, true),
    ));
    let spent = RetryLayer::builder()
        .backoff(Backoff::constant(Duration::ZERO))
        .shared_budget(RetryBudget::new(0.0, 0, Duration::from_secs(1)).unwrap())
        .build()
        .unwrap();
    v.push((
        "retry/seawall_budget_spent_rejecting",
        looped(spent.layer(Failing), 1, false),
    ));
    v.push((
        "retry/tower_tps_budget_success",
        looped(tower::retry::RetryLayer::new(tps()).layer(Echo), 1, true),
    ));
    let spent = TpsPolicy::spent();
    v.push((
        "retry/tower_tps_budget_spent_rejecting",
        looped(
            tower::retry::RetryLayer::new(spent).layer(Failing),
            1,
            false,
        ),
    ));
    let retry = || {
        ResilienceRetryLayer::<u64, u64, Fail>::builder()
            .max_attempts(3)
            .fixed_backoff(Duration::ZERO)
    };
    v.push((
        "retry/tower_resilience_success",
        looped(retry().build().layer(Echo), 1, true),
    ));
    let budget = RetryBudgetBuilder::new()
        .token_bucket()
        .tokens_per_second(0.0)
        .max_tokens(1)
        .initial_tokens(0)
        .build()
        .unwrap();
    v.push((
        "retry/tower_resilience_budget_spent_rejecting",
        looped(retry().budget(budget).build().layer(Failing), 1, false),
    ));
}

fn stack_cases(v: &mut Vec<(&'static str, Case)>) {
    let mut seawall = ServiceBuilder::new()
        .layer(RetryLayer::builder().build().unwrap())
        .layer(BreakerLayer::builder().build().unwrap())
        .layer(AdaptiveTimeoutLayer::builder().build().unwrap())
        .layer(ShedLayer::fixed(LIMIT).unwrap())
        .layer(
            BudgetLayer::builder()
                .rate(1_000_000_000)
                .burst(u32::MAX)
                .build()
                .unwrap(),
        )
        .service(Echo);
    // Past the adaptive timeout's warm-up and into its sampling.
    for i in 0..60_000 {
        call(&mut seawall, i).unwrap();
    }
    v.push((
        "stack/seawall_five_layers_success",
        looped(seawall, 1, true),
    ));
    let resilience = ServiceBuilder::new()
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
                .refresh_period(HOUR)
                .timeout_duration(Duration::ZERO)
                .build()
                .unwrap(),
        )
        .service(Echo);
    v.push((
        "stack/tower_resilience_five_layers_success",
        looped(resilience, 1, true),
    ));
    let tower = ServiceBuilder::new()
        .rate_limit(u64::MAX, HOUR)
        .layer(tower::retry::RetryLayer::new(tps()))
        .timeout(DEADLINE)
        .load_shed()
        .concurrency_limit(LIMIT)
        .service(Echo);
    v.push(("stack/tower_five_layers_success", looped(tower, 1, true)));
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`),
    // run every case a few times, as a test that each takes its path.
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, calls) = if bench { (ROUNDS, CALLS) } else { (1, 100) };
    let only = std::env::var("ROUNDS_ONLY").ok();
    // A runtime context for the timers; no worker threads, so that
    // instruction counts are the measured thread's alone.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _enter = rt.enter();
    let mut cases: Vec<(&'static str, Case)> = vec![("bare", looped(Echo, 1, true))];
    budget_cases(&mut cases);
    breaker_cases(&mut cases);
    shed_cases(&mut cases);
    timeout_cases(&mut cases);
    retry_cases(&mut cases);
    stack_cases(&mut cases);
    if let (Some(only), Some(n)) = (&only, std::env::var("ROUNDS_CALLS").ok()) {
        let n: u64 = n.parse().unwrap_or(0);
        for (name, f) in cases.iter_mut() {
            if name == only {
                f(n);
            }
        }
        return;
    }
    if let Some(only) = &only {
        cases.retain(|(name, _)| *name == "bare" || name.contains(only.as_str()));
    }
    let mut times = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..rounds {
        for (i, (name, f)) in cases.iter_mut().enumerate() {
            if round == 0 {
                // Names the case that fails, if one does.
                eprint!("{name} ");
            }
            let start = Instant::now();
            f(calls);
            times[i].push(start.elapsed().as_nanos() as f64 / calls as f64);
        }
    }
    eprintln!();
    if !bench {
        return;
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[rounds / 2]
        })
        .collect();
    let bare = medians[0];
    println!("{:<50} {:>9} {:>9}", "case", "ns/call", "over bare");
    for ((name, _), m) in cases.iter().zip(&medians) {
        println!("{name:<50} {m:>9.1} {:>9.1}", m - bare);
    }
}

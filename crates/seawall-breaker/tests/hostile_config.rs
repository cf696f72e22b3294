//! Hostile values in every config field: each either is a `ConfigError`
//! naming the field, or builds a breaker that trips, opens and half-opens
//! (paused time) without panicking, as do its layer, keyed layer and peer
//! selection.

use std::future::{Future, Ready, ready};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use seawall_breaker::{
    BreakerConfig, BreakerLayer, CircuitBreaker, KeyedBreakerConfig, KeyedBreakerLayer,
    OpenBackoff, PeerSelect, PeerSelectConfig, State, TripPolicy,
};
use seawall_core::config::{MAX_CAPACITY, MAX_DURATION};
use seawall_core::{ConfigError, KeyMapConfig};
use seawall_test_support::runtime;
use tower::{Layer, Service, ServiceExt};

const NS: Duration = Duration::from_nanos(1);

// Each pool mostly yields an ordinary value, so that most configs carry one
// or two hostile fields and many of them are valid and get exercised.
fn durations() -> impl Strategy<Value = Duration> {
    prop_oneof![3 => Just(Duration::from_secs(30)), 2 => select(vec![
        Duration::ZERO,
        NS,
        Duration::from_millis(10),
        Duration::from_secs(30),
        MAX_DURATION,
        MAX_DURATION + NS,
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ])]
}

fn counts() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => select(vec![1, 2, 5]),
        2 => select(vec![0, 100, 65_536, 65_537, u32::MAX]),
    ]
}

fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(100), 2 => select(vec![
        0,
        1,
        2,
        100,
        MAX_CAPACITY,
        MAX_CAPACITY + 1,
        u32::MAX as usize,
        (1usize << 32) - 1,
        (1usize << 32) + 1,
        usize::MAX,
    ])]
}

fn floats() -> impl Strategy<Value = f64> {
    prop_oneof![3 => select(vec![0.5, 1.0, 2.0]), 2 => select(vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        -1.0,
        0.5,
        1.0,
        2.0,
        1e308,
    ])]
}

fn policies() -> impl Strategy<Value = TripPolicy> {
    prop_oneof![
        counts().prop_map(TripPolicy::consecutive_failures),
        (counts(), floats(), counts())
            .prop_map(|(w, r, m)| TripPolicy::failure_rate_count(w, r, m)),
        (durations(), counts(), floats(), counts()).prop_map(
            |(window, buckets, rate, min_calls)| {
                TripPolicy::FailureRateTime {
                    window,
                    buckets,
                    rate,
                    min_calls,
                }
            }
        ),
        (durations(), floats(), durations(), counts(), counts()).prop_map(
            |(threshold, rate, window, buckets, min_calls)| TripPolicy::SlowCallRate {
                threshold,
                rate,
                window,
                buckets,
                min_calls,
            }
        ),
    ]
}

fn backoffs() -> impl Strategy<Value = Option<OpenBackoff>> {
    proptest::option::of(
        (floats(), durations(), floats(), durations(), any::<u64>()).prop_map(
            |(multiplier, max_open_duration, jitter, reset_after, seed)| {
                OpenBackoff::new()
                    .multiplier(multiplier)
                    .max_open_duration(max_open_duration)
                    .jitter(jitter)
                    .reset_after(reset_after)
                    .seed(seed)
            },
        ),
    )
}

fn configs() -> impl Strategy<Value = BreakerConfig> {
    (
        policies(),
        durations(),
        counts(),
        counts(),
        backoffs(),
        any::<bool>(),
    )
        .prop_map(
            |(policy, open_duration, half_open_max_calls, success_threshold, open_backoff, c)| {
                let mut config = BreakerConfig::new()
                    .policy(policy)
                    .open_duration(open_duration)
                    .half_open_max_calls(half_open_max_calls)
                    .success_threshold(success_threshold)
                    .cancelled_is_failure(c);
                config.open_backoff = open_backoff;
                config
            },
        )
}

/// Every duration of `config` beyond [`MAX_DURATION`], by field name.
fn too_long(config: &BreakerConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut long = |field, d: Duration| {
        if d > MAX_DURATION {
            out.push(field);
        }
    };
    long("open_duration", config.open_duration);
    match config.policy {
        TripPolicy::FailureRateTime { window, .. } => long("policy.window", window),
        TripPolicy::SlowCallRate {
            threshold, window, ..
        } => {
            long("policy.threshold", threshold);
            long("policy.window", window);
        }
        _ => {}
    }
    if let Some(b) = &config.open_backoff {
        long("open_backoff.max_open_duration", b.max_open_duration);
        long("open_backoff.reset_after", b.reset_after);
    }
    out
}

const FIELDS: &[&str] = &[
    "policy.threshold",
    "policy.window",
    "policy.buckets",
    "policy.rate",
    "policy.min_calls",
    "open_duration",
    "half_open_max_calls",
    "success_threshold",
    "open_backoff.multiplier",
    "open_backoff.max_open_duration",
    "open_backoff.jitter",
    "open_backoff.reset_after",
];

fn assert_names_fields(err: &ConfigError, prefix: &str, config: &BreakerConfig) {
    let named: Vec<_> = err.errors().iter().map(|e| e.field().to_owned()).collect();
    for field in &named {
        // The keyed layer's own fields are checked by the caller.
        if let Some(bare) = field.strip_prefix(prefix) {
            assert!(FIELDS.contains(&bare), "unknown field {field} in {err}");
        }
    }
    for field in too_long(config) {
        let field = format!("{prefix}{field}");
        assert!(named.contains(&field), "{field} not reported: {err}");
    }
}

/// Trips, waits out the open state (paused time), takes a probe and fails
/// it, a few times so that the open duration grows with the backoff.
async fn trip_open_half_open(breaker: &CircuitBreaker) {
    for _ in 0..20 {
        if let Ok(permit) = breaker.try_acquire() {
            permit.failure();
        }
    }
    breaker.reset();
    breaker.trip();
    for _ in 0..4 {
        let stats = breaker.stats();
        assert!(stats.open_duration <= MAX_DURATION, "{stats:?}");
        match stats.state {
            State::Open => {
                let wait = stats.retry_after.expect("an open breaker says when");
                assert!(wait <= MAX_DURATION, "{wait:?}");
                tokio::time::advance(wait + Duration::from_millis(1)).await;
            }
            // Jitter may shorten an open period to nothing: then it is over
            // when read.
            State::HalfOpen => assert_eq!(stats.open_duration, Duration::ZERO, "{stats:?}"),
            other => panic!("tripped, then {other}"),
        }
        let probe = breaker
            .try_acquire()
            .expect("a probe after the open duration");
        assert!(probe.is_probe());
        assert_eq!(breaker.state(), State::HalfOpen);
        probe.failure();
    }
    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
}

#[derive(Clone, Copy)]
struct Bare(u32);

impl Service<u32> for Bare {
    type Response = u32;
    type Error = std::io::Error;
    type Future = Ready<Result<u32, std::io::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: u32) -> Self::Future {
        ready(if req.is_multiple_of(2) {
            Ok(self.0)
        } else {
            Err(std::io::Error::other("odd"))
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn breaker_config(config in configs()) {
        let rt = runtime::paused();
        let run = catch_unwind(AssertUnwindSafe(|| rt.block_on(async {
            match CircuitBreaker::from_config(&config) {
                Err(err) => assert_names_fields(&err, "", &config),
                Ok(breaker) => {
                    trip_open_half_open(&breaker).await;
                    let layer = BreakerLayer::from_config(&config).unwrap();
                    let svc = layer.layer(Bare(1));
                    for i in 0..8 {
                        let _ = svc.clone().oneshot(i).await;
                    }
                }
            }
        })));
        prop_assert!(run.is_ok(), "panicked with {config:?}");
    }

    #[test]
    fn keyed_and_select_config(
        breaker in configs(),
        capacity in sizes(),
        idle_ttl in durations(),
        max_tries in sizes(),
    ) {
        let rt = runtime::paused();
        let config = KeyedBreakerConfig::from(breaker)
            .keys(KeyMapConfig::new().capacity(capacity).idle_ttl(idle_ttl));
        let run = catch_unwind(AssertUnwindSafe(|| rt.block_on(async {
            let layer = match KeyedBreakerLayer::new(|r: &u32| *r % 3, &config) {
                Err(err) => {
                    let named: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
                    for field in &named {
                        assert!(
                            *field == "keys.capacity"
                                || *field == "keys.idle_ttl"
                                || field.starts_with("per_key."),
                            "unknown field {field}"
                        );
                    }
                    if !(1..=MAX_CAPACITY).contains(&capacity) {
                        assert!(named.contains(&"keys.capacity"), "{err}");
                    }
                    if idle_ttl > MAX_DURATION || idle_ttl.is_zero() {
                        assert!(named.contains(&"keys.idle_ttl"), "{err}");
                    }
                    assert_names_fields(&err, "per_key.", &config.per_key);
                    return;
                }
                Ok(layer) => layer,
            };
            let svc = layer.layer(Bare(1));
            for i in 0..12 {
                let _ = svc.clone().oneshot(i).await;
            }
            // A small map may be full of keys that failed (never evicted):
            // the overflow breaker then stands for key 7.
            let probe = layer
                .breaker_or_insert(7)
                .unwrap_or_else(|| layer.overflow_breaker());
            trip_open_half_open(&probe).await;
            tokio::time::advance(idle_ttl.min(MAX_DURATION)).await;
            layer.evict_idle();

            let select_config = PeerSelectConfig::new().max_tries(max_tries);
            let built = PeerSelect::builder(&layer, |r: &u32| Some(*r % 4))
                .config(&select_config)
                .peers((0..4).map(|id| (id, Bare(id))))
                .build();
            match built {
                Err(err) => {
                    assert_eq!(err.field(), "max_tries");
                    assert!(max_tries == 0 || max_tries > MAX_CAPACITY, "{err}");
                }
                Ok(mut select) => {
                    assert!((1..=MAX_CAPACITY).contains(&max_tries));
                    let mut cx = Context::from_waker(Waker::noop());
                    for i in 0..8u32 {
                        if let Poll::Ready(Ok(())) = select.poll_ready(&mut cx) {
                            let fut = pin!(select.call(i));
                            let _ = fut.poll(&mut cx);
                        }
                    }
                }
            }
        })));
        prop_assert!(run.is_ok(), "panicked with {config:?}, max_tries {max_tries}");
    }
}

//! Hostile values in every config field: each either is a `ConfigError`
//! naming the field, or builds a layer that serves and retries calls under
//! paused time without panicking.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use seawall_core::BoxError;
use seawall_core::config::MAX_DURATION;
use seawall_retry::{Backoff, RetryBudgetConfig, RetryConfig, RetryLayer};
use seawall_test_support::hostile::{durations, floats};
use seawall_test_support::runtime;
use tower::{Layer, ServiceExt, service_fn};

fn u32s(ordinary: u32) -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(ordinary), 2 => select(vec![0, 1, 2, 1000, 1001, 1_000_001, u32::MAX])]
}

fn backoffs() -> impl Strategy<Value = Backoff> {
    (
        0..5u8,
        durations(Duration::from_millis(10)),
        floats(2.0),
        floats(0.2),
        proptest::option::of(durations(Duration::from_secs(1))),
    )
        .prop_map(|(strategy, base, multiplier, jitter, cap)| {
            let b = match strategy {
                0 => Backoff::constant(base),
                1 => Backoff::linear(base),
                2 => Backoff::exponential(base, multiplier),
                3 => Backoff::fibonacci(base),
                _ => Backoff::decorrelated_jitter(base, cap.unwrap_or(Duration::from_secs(1))),
            };
            let b = if strategy == 4 { b } else { b.jitter(jitter) };
            match cap {
                Some(cap) => b.max_delay(cap),
                None => b,
            }
        })
}

prop_compose! {
    fn configs()(
        max_attempts in u32s(3),
        backoff in backoffs(),
        deadline in proptest::option::of(durations(Duration::from_secs(5))),
        enabled in any::<bool>(),
        ratio in floats(0.2),
        min_per_sec in u32s(10),
        ttl in durations(Duration::from_secs(10)),
    ) -> RetryConfig {
        let mut config = RetryConfig::new()
            .max_attempts(max_attempts)
            .backoff(backoff)
            .budget(
                RetryBudgetConfig::new()
                    .enabled(enabled)
                    .ratio(ratio)
                    .min_per_sec(min_per_sec)
                    .ttl(ttl),
            );
        config.deadline = deadline;
        config
    }
}

const FIELDS: &[&str] = &[
    "max_attempts",
    "deadline",
    "backoff.base",
    "backoff.multiplier",
    "backoff.jitter",
    "backoff.max_delay",
    "budget.ratio",
    "budget.min_per_sec",
    "budget.ttl",
];

fn too_long(c: &RetryConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if c.deadline.is_some_and(|d| d > MAX_DURATION) {
        out.push("deadline");
    }
    if c.backoff.base() > MAX_DURATION {
        out.push("backoff.base");
    }
    if c.backoff.cap().is_some_and(|d| d > MAX_DURATION) {
        out.push("backoff.max_delay");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_values(config in configs()) {
        let rt = runtime::paused();
        let run = catch_unwind(AssertUnwindSafe(|| rt.block_on(async {
            match RetryLayer::from_config(&config) {
                Err(err) => {
                    let named: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
                    for field in &named {
                        assert!(FIELDS.contains(field), "unknown field {field} in {err}");
                    }
                    for field in too_long(&config) {
                        assert!(named.contains(&field), "{field} not reported: {err}");
                    }
                }
                Ok(layer) => {
                    let calls = Arc::new(AtomicUsize::new(0));
                    let counter = calls.clone();
                    let svc = layer.layer(service_fn(move |fail: bool| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        async move {
                            if fail { Err::<(), BoxError>("down".into()) } else { Ok(()) }
                        }
                    }));
                    assert!(svc.clone().oneshot(false).await.is_ok());
                    // A failing call retries (paused time skips the waits)
                    // and ends, however long the backoff.
                    let failed = svc.clone().oneshot(true).await;
                    assert!(failed.is_err());
                    let stats = layer.stats();
                    assert_eq!(stats.attempts, calls.load(Ordering::Relaxed) as u64);
                    assert!(stats.attempts <= 1 + u64::from(config.max_attempts));
                }
            }
        })));
        prop_assert!(run.is_ok(), "panicked with {config:?}");
    }
}

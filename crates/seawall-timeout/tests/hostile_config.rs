//! Hostile values in every config field: each either is a `ConfigError`
//! naming the field, or builds layers (plain and keyed) that serve calls
//! and time them out, under paused time, without panicking.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use seawall_core::config::{MAX_CAPACITY, MAX_DURATION};
use seawall_core::{BoxError, Elapsed};
use seawall_test_support::hostile::{durations, floats};
use seawall_test_support::runtime;
use seawall_timeout::{
    AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, KeyedAdaptiveTimeoutConfig,
    KeyedAdaptiveTimeoutLayer,
};
use tower::{Layer, Service, ServiceExt, service_fn};

fn u32s(ordinary: u32) -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(ordinary), 2 => select(vec![0, 1, 2, 1 << 24, (1 << 24) + 1, u32::MAX])]
}

fn u64s(ordinary: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(ordinary),
        2 => select(vec![0, 1, 2, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, u64::MAX]),
    ]
}

fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => Just(100),
        2 => select(vec![0, 1, MAX_CAPACITY, MAX_CAPACITY + 1, u32::MAX as usize, usize::MAX]),
    ]
}

prop_compose! {
    fn configs()(
        fixed in proptest::option::weighted(0.3, durations(Duration::from_secs(1))),
        percentile in floats(99.0),
        multiplier in floats(1.5),
        min in durations(Duration::from_millis(10)),
        max in durations(Duration::from_secs(10)),
        base in durations(Duration::from_secs(1)),
        min_samples in u64s(3),
        window in durations(Duration::from_secs(60)),
        refresh_every in u32s(2),
        sample_every in u32s(1),
        capacity in sizes(),
        idle_ttl in durations(Duration::from_secs(300)),
    ) -> KeyedAdaptiveTimeoutConfig {
        // The builder does not validate until it builds: it takes anything.
        let mut builder = AdaptiveTimeoutConfig::builder()
            .percentile(percentile)
            .multiplier(multiplier)
            .min(min)
            .max(max)
            .base(base)
            .min_samples(min_samples)
            .window(window)
            .refresh_every(refresh_every)
            .sample_every(sample_every);
        if let Some(fixed) = fixed {
            builder = builder.fixed(fixed);
        }
        KeyedAdaptiveTimeoutConfig::from(builder.into_config())
            .capacity(capacity)
            .idle_ttl(idle_ttl)
    }
}

const FIELDS: &[&str] = &[
    "fixed",
    "percentile",
    "multiplier",
    "min",
    "max",
    "base",
    "min_samples",
    "window",
    "refresh_every",
    "sample_every",
];

fn too_long(c: &AdaptiveTimeoutConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if c.fixed.is_some_and(|f| f > MAX_DURATION) {
        out.push("fixed");
    }
    for (field, d) in [("min", c.min), ("max", c.max), ("window", c.window)] {
        if d > MAX_DURATION {
            out.push(field);
        }
    }
    out
}

fn bad_keys(c: &KeyedAdaptiveTimeoutConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if c.keys.capacity > MAX_CAPACITY || c.keys.capacity == 0 {
        out.push("keys.capacity");
    }
    if c.keys.idle_ttl > MAX_DURATION || c.keys.idle_ttl.is_zero() {
        out.push("keys.idle_ttl");
    }
    out
}

/// Calls that answer at once, then one that never does: it must time out by
/// `deadline`, the longest the layer may apply (advanced by hand).
async fn serve<S>(svc: S, deadline: Duration)
where
    S: Service<u64, Response = u64, Error = BoxError> + Clone,
{
    for _ in 0..10 {
        assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    }
    let mut call = tokio_test::task::spawn(svc.clone().oneshot(0));
    assert!(call.poll().is_pending());
    assert!(deadline <= MAX_DURATION, "{deadline:?}");
    tokio::time::advance(deadline + Duration::from_millis(1)).await;
    match call.poll() {
        std::task::Poll::Ready(Err(e)) => assert!(e.downcast_ref::<Elapsed>().is_some(), "{e}"),
        other => panic!("expected Elapsed after {deadline:?}, got {other:?}"),
    }
}

fn inner() -> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone {
    service_fn(|x: u64| async move {
        if x == 0 {
            std::future::pending::<()>().await;
        }
        Ok::<_, BoxError>(x)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn hostile_values(keyed_config in configs()) {
        let config = &keyed_config.per_key;
        let rt = runtime::paused();
        let run = catch_unwind(AssertUnwindSafe(|| rt.block_on(async {
            // The keyed config reports the same problems under `per_key.`,
            // and the map's under `keys.`.
            let keyed = KeyedAdaptiveTimeoutLayer::new(|x: &u64| *x % 2, &keyed_config);
            match &keyed {
                Err(err) => {
                    let named: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
                    for field in &named {
                        let known = field
                            .strip_prefix("per_key.")
                            .is_some_and(|f| FIELDS.contains(&f))
                            || *field == "keys.capacity"
                            || *field == "keys.idle_ttl";
                        assert!(known, "unknown field {field} in {err}");
                    }
                    for field in bad_keys(&keyed_config) {
                        assert!(named.contains(&field), "{field} not reported: {err}");
                    }
                }
                Ok(_) => assert!(bad_keys(&keyed_config).is_empty()),
            }
            match AdaptiveTimeoutLayer::from_config(config) {
                Err(err) => {
                    assert!(keyed.is_err(), "{err}, but the keyed config was valid");
                    let named: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
                    for field in &named {
                        assert!(FIELDS.contains(field), "unknown field {field} in {err}");
                    }
                    for field in too_long(config) {
                        assert!(named.contains(&field), "{field} not reported: {err}");
                    }
                }
                Ok(layer) => {
                    // Every deadline is at most `max` (or is `fixed`).
                    let longest = config.fixed.unwrap_or(config.max);
                    assert!(layer.deadline() <= longest);
                    serve(layer.layer(inner()), longest).await;
                    serve(layer.layer(inner()), longest).await;
                    if let Ok(keyed) = keyed {
                        serve(keyed.layer(inner()), longest).await;
                        keyed.evict_idle();
                    }
                }
            }
        })));
        prop_assert!(run.is_ok(), "panicked with {keyed_config:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_longest_fixed_deadline_never_times_out_in_practice() {
    let layer = AdaptiveTimeoutLayer::builder()
        .fixed(MAX_DURATION)
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|()| async {
        tokio::time::sleep(Duration::from_secs(86_400 * 30)).await;
        Ok::<_, BoxError>(7)
    }));
    assert_eq!(
        svc.oneshot(()).await.unwrap(),
        7,
        "a month is well inside it"
    );
    let err = AdaptiveTimeoutLayer::builder()
        .fixed(MAX_DURATION + Duration::from_nanos(1))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "fixed");
}

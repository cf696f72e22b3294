//! The layer's counters in the `metrics` facade (feature `metrics`).
#![cfg(feature = "metrics")]

use std::time::Duration;

use seawall_hedge::HedgeLayer;
use seawall_test_support::metrics::Recording;
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn hedges_are_counted_under_the_layers_name() {
    let rec = Recording::default();
    // The handles are taken when the layer is built.
    let (slow, copied) = metrics::with_local_recorder(&rec, || {
        let slow = HedgeLayer::builder()
            .name("users")
            .delay(Duration::from_millis(5))
            .budget_min_per_sec(1)
            .build()
            .unwrap();
        let copied = HedgeLayer::builder()
            .name("uploads")
            .delay(Duration::from_millis(5))
            .clone_with(|_: &u32| None)
            .build()
            .unwrap();
        (slow, copied)
    });
    // Each call's first attempt takes 100ms, its hedge 1ms.
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let svc = slow.layer(service_fn(move |n: u32| {
        let i = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let wait = if i == 0 || i == 2 { 100 } else { 1 };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Ok::<_, std::convert::Infallible>(n)
        }
    }));
    // The budget holds one hedge: the first call's hedge wins, the
    // second's is refused.
    svc.clone().oneshot(0).await.unwrap();
    svc.clone().oneshot(0).await.unwrap();
    copied
        .layer(service_fn(|n: u32| async move {
            Ok::<_, std::convert::Infallible>(n)
        }))
        .oneshot(1)
        .await
        .unwrap();

    assert_eq!(rec.counter("seawall_hedge_sent_total{name=users}"), Some(1));
    assert_eq!(rec.counter("seawall_hedge_won_total{name=users}"), Some(1));
    assert_eq!(
        rec.counter("seawall_hedge_budget_exhausted_total{name=users}"),
        Some(1)
    );
    assert_eq!(
        rec.counter("seawall_hedge_not_cloneable_total{name=uploads}"),
        Some(1)
    );
}

// The hedge's delay is its own gauge: an unnamed hedging layer and an
// unnamed adaptive timeout (both "default") do not share a series.
#[tokio::test(start_paused = true)]
async fn the_delay_is_the_hedges_own_gauge_not_the_timeouts() {
    use seawall_timeout::AdaptiveTimeoutLayer;
    let rec = Recording::default();
    let (timeout, hedge) = metrics::with_local_recorder(&rec, || {
        let timeout = AdaptiveTimeoutLayer::fixed(Duration::from_secs(5));
        let hedge = HedgeLayer::builder()
            .max_delay(Duration::from_millis(300))
            .min_samples(1)
            .build()
            .unwrap();
        (timeout, hedge)
    });
    assert_eq!(
        rec.gauge("seawall_timeout_deadline_seconds{name=default}"),
        Some(5.0),
        "the timeout's deadline, untouched by the hedge"
    );
    assert_eq!(
        rec.counter("seawall_timeout_elapsed_total{name=default}"),
        Some(0)
    );
    assert_eq!(
        rec.gauge("seawall_hedge_delay_seconds{name=default}"),
        Some(0.3)
    );

    // A learned delay is published when it changes (here on the first
    // measured call: one sample is enough).
    let svc = hedge.layer(service_fn(|n: u32| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, std::convert::Infallible>(n)
    }));
    svc.oneshot(0).await.unwrap();
    let published = rec
        .gauge("seawall_hedge_delay_seconds{name=default}")
        .unwrap();
    let delay = hedge.stats().delay;
    assert!(delay < Duration::from_millis(300), "{delay:?}");
    assert_eq!(published, delay.as_secs_f64());
    assert_eq!(
        rec.gauge("seawall_timeout_deadline_seconds{name=default}"),
        Some(5.0)
    );
    drop(timeout);
}

//! With feature `metrics`: the injection counters, labelled with the
//! layer's name and the fault, count what `stats()` counts; the gauge
//! follows the switch.
#![cfg(feature = "metrics")]

use std::time::Duration;

use seawall_chaos::ChaosLayer;
use seawall_core::names::{CHAOS_ENABLED, CHAOS_INJECTED_TOTAL};
use seawall_test_support::metrics::Recording;
use tower::{Layer, ServiceExt, service_fn};

fn injected(rec: &Recording, fault: &str) -> Option<u64> {
    rec.counter(&format!(
        "{CHAOS_INJECTED_TOTAL}{{fault={fault},name=payments}}"
    ))
}

#[tokio::test(start_paused = true)]
async fn injections_are_counted_by_fault_and_the_switch_is_a_gauge() {
    let rec = Recording::default();
    // The handles are made when the layer is built.
    let layer = metrics::with_local_recorder(&rec, || {
        ChaosLayer::builder()
            .name("payments")
            .seed(5)
            .error_rate(0.3)
            .latency_rate(0.5)
            .latency(Duration::from_millis(1))
            .outcome_rate(0.2)
            .outcome_with(|_: &u32| 0u32)
            .build()
            .unwrap()
    });
    let enabled = format!("{CHAOS_ENABLED}{{name=payments}}");
    assert_eq!(rec.gauge(&enabled), Some(1.0));
    let svc = layer.layer(service_fn(|x: u32| async move {
        Ok::<_, seawall_core::BoxError>(x)
    }));
    for x in 1..=200 {
        let _ = svc.clone().oneshot(x).await;
    }
    let s = layer.stats();
    assert!(s.errors > 0 && s.latencies > 0 && s.outcomes > 0, "{s:?}");
    assert_eq!(injected(&rec, "error"), Some(s.errors));
    assert_eq!(injected(&rec, "latency"), Some(s.latencies));
    assert_eq!(injected(&rec, "outcome"), Some(s.outcomes));
    layer.handle().disable();
    assert_eq!(rec.gauge(&enabled), Some(0.0));
    layer.handle().enable();
    assert_eq!(rec.gauge(&enabled), Some(1.0));
}

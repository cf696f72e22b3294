//! With feature `metrics`: the series named in `seawall_core::names`, against
//! a real `redis-server` on 127.0.0.1 (started here). Real time, bounded
//! waits: Redis does not follow paused time.
#![cfg(feature = "metrics")]

use std::time::Duration;

use seawall_budget_redis::{Backend, RedisBudgetLayer};
use seawall_core::names::{
    BUDGET_ADMITTED_TOTAL, BUDGET_BACKEND_FALLBACK, BUDGET_BACKEND_SWITCHES_TOTAL,
    BUDGET_REDIS_ROUND_TRIPS_TOTAL,
};
use seawall_test_support::metrics::Recording;
use seawall_test_support::redis::RedisServer;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

/// Waits (real time, bounded) until `f` holds.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_and_backend_switches_are_reported() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let rec = Recording::default();
    let layer = metrics::with_local_recorder(&rec, || {
        RedisBudgetLayer::builder()
            .url(server.url())
            .name("m")
            .redis_timeout(Duration::from_millis(250))
            .probe_interval(Duration::from_millis(50))
            .build()
            .unwrap()
    });
    layer.ping().await.unwrap();
    let svc = layer.layer(service_fn(|x: u32| async move {
        Ok::<_, std::convert::Infallible>(x)
    }));
    for i in 0..20 {
        let _ = svc.clone().oneshot(i).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let trips = format!("{BUDGET_REDIS_ROUND_TRIPS_TOTAL}{{name=m}}");
    let counted = eventually(Duration::from_secs(2), || {
        // Every round trip, the warm-up's (the script load) included.
        let n = layer.stats().round_trips;
        n > 0 && rec.counter(&trips) == Some(n)
    })
    .await;
    assert!(counted, "{:?} vs {:?}", rec.series(), layer.stats());
    let admitted = layer.stats().admitted;
    assert!(admitted > 0);
    assert_eq!(
        rec.counter(&format!("{BUDGET_ADMITTED_TOTAL}{{name=m}}")),
        Some(admitted)
    );
    let gauge = format!("{BUDGET_BACKEND_FALLBACK}{{name=m}}");
    let to_fallback = format!("{BUDGET_BACKEND_SWITCHES_TOTAL}{{name=m,state=fallback}}");
    let to_redis = format!("{BUDGET_BACKEND_SWITCHES_TOTAL}{{name=m,state=redis}}");
    assert_eq!(rec.counter(&to_fallback), Some(0));

    server.stop();
    // Calls spend the lease and ask for refills, which find Redis gone.
    for i in 0..600 {
        let _ = svc.clone().oneshot(i).await;
        if layer.backend() == Backend::Fallback {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(layer.backend(), Backend::Fallback);
    assert_eq!(rec.counter(&to_fallback), Some(1));
    assert_eq!(rec.gauge(&gauge), Some(1.0));

    server.restart();
    let back = eventually(Duration::from_secs(3), || layer.backend() == Backend::Redis).await;
    assert!(back, "the shared budget resumes");
    assert_eq!(rec.counter(&to_redis), Some(1));
    assert_eq!(rec.gauge(&gauge), Some(0.0));
}

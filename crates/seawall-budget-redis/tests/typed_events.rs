//! The Redis budget's typed events (`seawall_core::event`): a switch to the
//! fallback policy and back, against a real `redis-server` on 127.0.0.1
//! (started here). Real time, bounded waits: Redis does not follow paused
//! time. The hub is per process: only this layer's events are kept.

use std::time::Duration;

use seawall_budget_redis::{Backend, RedisBudgetLayer};
use seawall_core::event::{self, BudgetBackend, EventKind, Subscriber};
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

fn switches(events: &mut Subscriber) -> Vec<BudgetBackend> {
    let mut out = Vec::new();
    while let Some(e) = events.try_recv() {
        if &*e.layer == "ev-redis"
            && let EventKind::BackendSwitched { to, .. } = e.kind
        {
            out.push(to);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_switches_are_events() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let layer = RedisBudgetLayer::builder()
        .url(server.url())
        .name("ev-redis")
        .redis_timeout(Duration::from_millis(250))
        .probe_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    layer.ping().await.unwrap();
    let mut events = event::subscribe(1024);
    let svc = layer.layer(service_fn(|x: u32| async move {
        Ok::<_, std::convert::Infallible>(x)
    }));
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
    server.restart();
    let back = eventually(Duration::from_secs(3), || layer.backend() == Backend::Redis).await;
    assert!(back, "the shared budget resumes");
    assert_eq!(
        switches(&mut events),
        [BudgetBackend::Fallback, BudgetBackend::Redis]
    );
}

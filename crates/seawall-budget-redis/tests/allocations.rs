//! Heap allocations of the leased path, counted on the test's own thread.
//!
//! The counter is per thread, so the calls are polled by hand on this
//! thread; the runtime is current-thread and idle while counting, so the
//! background task does not run then either.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_budget_redis::RedisBudgetLayer;
use seawall_test_support::redis::RedisServer;
use seawall_test_support::service::{Echo, ready_call_ok};
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: seawall_test_support::CountingAlloc = seawall_test_support::CountingAlloc;

#[test]
fn a_leased_call_allocates_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let layer = rt.block_on(async {
        let layer = RedisBudgetLayer::builder()
            .url(server.url())
            .name("alloc")
            .rate(1_000_000)
            .burst(100_000)
            .lease_share(1.0)
            .build()
            .unwrap();
        layer.ping().await.unwrap();
        layer
    });
    let mut svc = layer.layer(Echo);
    // The first call goes on credit and asks for a lease of up to 100,000.
    assert!(ready_call_ok(&mut svc, 7u32));
    rt.block_on(async {
        for _ in 0..200 {
            if layer.leased() > 1000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert!(layer.leased() > 1000, "leased {}", layer.leased());
    let allocs = seawall_test_support::allocations(|| {
        for _ in 0..1000 {
            assert!(ready_call_ok(&mut svc, 7u32));
        }
    });
    assert_eq!(allocs, 0, "allocations in 1000 leased calls");
    assert_eq!(layer.stats().admitted, 1001);
}

/// Bytes a keyed layer keeps per key, measured over 100 000 keys made by
/// calls polled on this thread. The background task does not run meanwhile
/// (the runtime is idle), so no Redis round trip is involved: the first
/// 4096 keys' refills wait in the queue (and are counted), the others are
/// refused for want of room in it, and their cells stay in the map.
#[test]
fn a_key_costs_a_bounded_number_of_bytes() {
    const KEYS: u64 = 100_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    // Nothing listens there; nothing is sent while counting in any case.
    let url = format!(
        "redis://127.0.0.1:{}",
        seawall_test_support::redis::free_port().unwrap()
    );
    let layer = seawall_budget_redis::RedisKeyedBudgetLayer::new(
        |k: &u64| *k,
        &seawall_budget_redis::RedisBudgetLayer::builder()
            .url(url)
            .name("bytes")
            // Room to spare: shards fill unevenly, and a full one would
            // forget fresh keys to make room, which is not what is measured.
            .keys(seawall_core::KeyMapConfig::new().capacity(2 * KEYS as usize))
            .into_config(),
    )
    .unwrap();
    let mut svc = layer.layer(tower::service_fn(|k: u64| {
        std::future::ready(Ok::<_, Infallible>(k))
    }));
    let mut cx = Context::from_waker(Waker::noop());
    let counts = seawall_test_support::count(|| {
        for k in 0..KEYS {
            assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            let fut = pin!(svc.call(k));
            let _ = fut.poll(&mut cx);
        }
    });
    assert_eq!(layer.stats().keys, KEYS as usize);
    assert_eq!(layer.stats().overflowed, 0);
    let per_key = counts.bytes_retained() as f64 / KEYS as f64;
    eprintln!("{per_key:.1} bytes per key ({counts:?})");
    assert!(per_key <= 200.0, "{per_key:.1} bytes per key");
}

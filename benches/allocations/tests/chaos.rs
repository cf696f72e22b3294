//! Heap allocations per call of the chaos layer: none when it is disabled
//! (the promise that lets it stay in a production stack, switched off), and
//! none when enabled on any path whose fault is a zero-sized error, a
//! response or a delay; a user's error with data costs its own `Box`.
//! Counted per thread, services driven by hand, as in `allocations.rs`.

use std::fmt;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_benches::{Echo, call};
use seawall_chaos::{ChaosLayer, Placement};
use seawall_test_support::CountingAlloc;
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Calls per count.
const N: u64 = 1_000;

fn blocks() -> u64 {
    seawall_test_support::counts().allocations
}

/// Allocations made by `N` calls of `svc`, after a warm-up, the least of
/// three runs (a lazy one-off allocation is not a per-call cost). Checks
/// that every call took the path named by `ok`.
fn count<S: Service<u64>>(svc: &mut S, ok: bool) -> u64 {
    for _ in 0..10 {
        assert_eq!(call(svc, 1).is_ok(), ok, "the path under count");
    }
    (0..3)
        .map(|_| {
            let before = blocks();
            for _ in 0..N {
                let out = call(svc, black_box(1));
                assert_eq!(out.is_ok(), ok, "a call left the path under count");
                drop(black_box(out));
            }
            blocks() - before
        })
        .min()
        .unwrap_or(u64::MAX)
}

/// Allocations per call with injected latency: call, let the paused clock
/// pass `latency`, poll the answer out. Runs in `block_on` of a paused
/// runtime.
async fn delayed<S: Service<u64>>(svc: &mut S, latency: Duration) -> u64 {
    async fn once<S: Service<u64>>(svc: &mut S, latency: Duration) {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let mut fut = pin!(svc.call(1));
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "delayed");
        tokio::time::advance(latency).await;
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    }
    for _ in 0..10 {
        once(svc, latency).await;
    }
    let before = blocks();
    for _ in 0..100 {
        once(svc, latency).await;
    }
    (blocks() - before) / 100
}

/// An error with data: boxing it is one allocation.
#[derive(Debug)]
struct Unavailable(#[allow(dead_code)] u64);
impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unavailable")
    }
}
impl std::error::Error for Unavailable {}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn chaos_allocates_nothing_when_disabled() {
    let rt = runtime();
    let _enter = rt.enter();
    // Disabled with every rate at 1: nothing drawn, nothing injected.
    let layer = ChaosLayer::builder()
        .enabled(false)
        .error_rate(1.0)
        .latency_rate(1.0)
        .latency(Duration::from_secs(1))
        .build()
        .unwrap();
    assert_eq!(count(&mut layer.layer(Echo), true), 0, "disabled");
    assert_eq!(layer.stats().calls, 0);
}

#[test]
fn chaos_allocates_nothing_when_enabled_on_any_path_but_a_users_error() {
    let rt = runtime();
    let _enter = rt.enter();
    let layer = ChaosLayer::builder().seed(1).build().unwrap();
    assert_eq!(
        count(&mut layer.layer(Echo), true),
        0,
        "enabled, drawn, nothing injected"
    );

    for placement in [Placement::Before, Placement::After] {
        let layer = ChaosLayer::builder()
            .error_rate(1.0)
            .placement(placement)
            .build()
            .unwrap();
        assert_eq!(
            count(&mut layer.layer(Echo), false),
            0,
            "Injected, {placement:?}"
        );

        let layer = ChaosLayer::builder()
            .outcome_rate(1.0)
            .outcome_with(|r: &u64| r + 1)
            .placement(placement)
            .build()
            .unwrap();
        assert_eq!(
            count(&mut layer.layer(Echo), true),
            0,
            "outcome, {placement:?}"
        );

        let layer = ChaosLayer::builder()
            .error_rate(1.0)
            .error_with(|r: &u64| Unavailable(*r))
            .placement(placement)
            .build()
            .unwrap();
        assert_eq!(
            count(&mut layer.layer(Echo), false),
            N,
            "a user's error, {placement:?}"
        );
    }
}

#[test]
fn chaos_latency_allocates_nothing() {
    let rt = runtime();
    let latency = Duration::from_millis(5);
    for placement in [Placement::Before, Placement::After] {
        let layer = ChaosLayer::builder()
            .latency_rate(1.0)
            .latency(latency)
            .placement(placement)
            .build()
            .unwrap();
        let mut svc = layer.layer(Echo);
        let per_call = rt.block_on(delayed(&mut svc, latency));
        assert_eq!(per_call, 0, "latency, {placement:?}");
    }
}

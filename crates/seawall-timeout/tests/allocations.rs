//! Heap allocations, counted exactly on the test's own thread (a
//! current-thread runtime, futures polled by hand), so other tests and
//! threads cannot change the counts.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_test_support::runtime;
use seawall_test_support::{CountingAlloc, counts};
use seawall_timeout::{AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, DeadlineTracker};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const N: u64 = 1_000;

fn allocs_during(f: impl FnOnce()) -> u64 {
    let before = counts().allocations;
    f();
    counts().allocations - before
}

/// Calls `svc` once and polls the future to completion by hand (the inner
/// service is always ready and answers at once).
fn call_ready<S: Service<u32>>(svc: &mut S, cx: &mut Context<'_>) -> Result<S::Response, S::Error> {
    assert!(svc.poll_ready(cx).is_ready());
    let mut fut = pin!(svc.call(7));
    match fut.as_mut().poll(cx) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("the inner service answers at once"),
    }
}

#[test]
fn allocations_per_call() {
    let rt = runtime::paused();
    let mut cx = Context::from_waker(Waker::noop());

    rt.block_on(async {
        let ready = service_fn(|x: u32| std::future::ready(Ok::<_, std::io::Error>(x)));

        // Success path, adaptive mode, warmed up (the deadline is adaptive).
        let layer = AdaptiveTimeoutLayer::from_config(
            &AdaptiveTimeoutConfig::builder()
                .min_samples(10)
                .refresh_every(100_000)
                .into_config(),
        )
        .unwrap();
        let mut svc = layer.layer(ready);
        for _ in 0..100 {
            call_ready(&mut svc, &mut cx).unwrap();
        }
        assert_eq!(
            layer.stats().source,
            seawall_timeout::DeadlineSource::Adaptive
        );
        let n = allocs_during(|| {
            for _ in 0..N {
                call_ready(&mut svc, &mut cx).unwrap();
            }
        });
        assert_eq!(n, 0, "adaptive success path");

        // Success path including refreshes of the deadline (every sample).
        let layer = AdaptiveTimeoutLayer::from_config(
            &AdaptiveTimeoutConfig::builder()
                .min_samples(10)
                .refresh_every(1)
                .into_config(),
        )
        .unwrap();
        let mut svc = layer.layer(ready);
        for _ in 0..100 {
            call_ready(&mut svc, &mut cx).unwrap();
        }
        let n = allocs_during(|| {
            for _ in 0..N {
                call_ready(&mut svc, &mut cx).unwrap();
            }
        });
        assert_eq!(n, 0, "refreshing the deadline");

        // Success path under high traffic, where one call in 32 is measured.
        let layer = AdaptiveTimeoutLayer::from_config(
            &AdaptiveTimeoutConfig::builder()
                .min_samples(10)
                .into_config(),
        )
        .unwrap();
        let mut svc = layer.layer(ready);
        for _ in 0..10_000 {
            call_ready(&mut svc, &mut cx).unwrap();
        }
        let before = layer.stats().samples;
        let n = allocs_during(|| {
            for _ in 0..N {
                call_ready(&mut svc, &mut cx).unwrap();
            }
        });
        assert_eq!(n, 0, "sampled success path");
        let measured = layer.stats().samples - before;
        assert!(measured < N / 2, "sampling is on: {measured} of {N}");

        // Fixed mode.
        let mut svc = AdaptiveTimeoutLayer::fixed(Duration::from_secs(1)).layer(ready);
        call_ready(&mut svc, &mut cx).unwrap();
        let n = allocs_during(|| {
            for _ in 0..N {
                call_ready(&mut svc, &mut cx).unwrap();
            }
        });
        assert_eq!(n, 0, "fixed success path");

        // Keyed, existing key, once its deadline is learned: with feature
        // `metrics`, a key's series is registered (allocating its labels)
        // once in its life, when its deadline first becomes adaptive, and
        // before that the key reports nothing.
        let layer = AdaptiveTimeoutLayer::builder()
            .min_samples(10)
            .build_keyed(|x: &u32| *x)
            .unwrap();
        let mut svc = layer.layer(ready);
        for _ in 0..10 {
            call_ready(&mut svc, &mut cx).unwrap();
        }
        assert_eq!(
            layer.key_stats(&7).unwrap().source,
            seawall_timeout::DeadlineSource::Adaptive
        );
        let n = allocs_during(|| {
            for _ in 0..N {
                call_ready(&mut svc, &mut cx).unwrap();
            }
        });
        assert_eq!(n, 0, "keyed success path");

        // The tower-free core's timeout path: no allocation.
        let tracker = DeadlineTracker::new(&AdaptiveTimeoutConfig::default()).unwrap();
        let recorder = tracker.recorder();
        let n = allocs_during(|| {
            for _ in 0..N {
                let d = recorder.deadline();
                recorder.record_timeout(d);
                drop(recorder.elapsed(d));
            }
        });
        assert_eq!(n, 0, "core timeout path");

        // The tower layer's timeout path: exactly one, the `Box` of `Elapsed`
        // (tower's convention: errors leave as `BoxError`).
        let pending = service_fn(|_: u32| std::future::pending::<Result<u32, std::io::Error>>());
        for layer in [
            AdaptiveTimeoutLayer::fixed(Duration::from_millis(5)),
            AdaptiveTimeoutLayer::from_config(
                &AdaptiveTimeoutConfig::builder()
                    .base(Duration::from_millis(10))
                    .into_config(),
            )
            .unwrap(),
        ] {
            let mut svc = layer.layer(pending);
            // Warm up: the timer wheel and the runtime's defer list grow
            // lazily.
            for _ in 0..10 {
                timeout_once(&mut svc, &mut cx, None).await;
            }
            let before = counts().allocations;
            for _ in 0..100 {
                timeout_once(&mut svc, &mut cx, None).await;
            }
            let n = counts().allocations - before;
            assert_eq!(n, 100, "one Box per timeout");
        }

        // Keyed timeout path: the key label is shared, still one Box (the
        // key's deadline is learned in the warm-up, see above).
        let layer = AdaptiveTimeoutLayer::builder()
            .base(Duration::from_millis(10))
            .min_samples(5)
            .build_keyed(|x: &u32| *x)
            .unwrap();
        let mut svc = layer.layer(pending);
        for _ in 0..10 {
            timeout_once(&mut svc, &mut cx, Some("3")).await;
        }
        let before = counts().allocations;
        for _ in 0..100 {
            timeout_once(&mut svc, &mut cx, Some("3")).await;
        }
        let n = counts().allocations - before;
        assert_eq!(n, 100, "one Box per keyed timeout");
    });
}

/// Calls `svc` (whose inner future never completes), lets the paused clock
/// reach the deadline, and checks the call expired with `key`.
async fn timeout_once<S, F, C>(svc: &mut S, cx: &mut Context<'_>, key: Option<&str>)
where
    S: Service<u32, Error = seawall_core::BoxError, Future = seawall_timeout::ResponseFuture<F, C>>,
    seawall_timeout::ResponseFuture<F, C>: Future<Output = Result<u32, seawall_core::BoxError>>,
{
    assert!(svc.poll_ready(cx).is_ready());
    let mut fut = pin!(svc.call(3));
    assert!(fut.as_mut().poll(cx).is_pending());
    // Awaiting `advance` yields to the runtime, whose timer then fires
    // (tokio's timer has a 1ms resolution: go one tick past the deadline).
    tokio::time::advance(fut.deadline() + Duration::from_millis(1)).await;
    match fut.as_mut().poll(cx) {
        Poll::Ready(Err(e)) => {
            let e = e.downcast_ref::<seawall_core::Elapsed>().expect("Elapsed");
            assert_eq!(e.key(), key);
        }
        _ => panic!("expired"),
    }
}

//! Heap allocations per call of the hedging layer when it sends no hedge
//! (asserted: none), over an answer that is ready at once and over one
//! that is pending once (so the hedge timer is registered and then
//! cancelled).

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_benches::{Echo, call};
use seawall_hedge::HedgeLayer;
use seawall_test_support::CountingAlloc;
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const N: u64 = 1_000;

fn blocks() -> u64 {
    seawall_test_support::counts().allocations
}

/// Like `count` in `allocations.rs`: the least of three runs of `N` calls,
/// after a warm-up.
fn count<S: Service<u64>>(svc: &mut S) -> u64 {
    for i in 0..10 {
        assert!(call(svc, i).is_ok());
    }
    (0..3)
        .map(|_| {
            let before = blocks();
            for i in 0..N {
                let out = call(svc, black_box(i));
                assert!(out.is_ok(), "the success path");
                drop(black_box(out));
            }
            blocks() - before
        })
        .min()
        .unwrap_or(u64::MAX)
}

/// Answers on the second poll: the hedging future polls its timer once.
#[derive(Debug, Clone, Copy)]
struct PendingOnce;

struct Once(bool, u64);

impl Future for Once {
    type Output = Result<u64, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0 {
            Poll::Ready(Ok(self.1))
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Service<u64> for PendingOnce {
    type Response = u64;
    type Error = std::convert::Infallible;
    type Future = Once;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Once {
        Once(false, req)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn a_call_that_sends_no_hedge_allocates_nothing() {
    let rt = runtime();
    let _enter = rt.enter();

    let adaptive = HedgeLayer::builder().min_samples(10).build().unwrap();
    let mut svc = adaptive.layer(Echo);
    assert_eq!(count(&mut svc), 0, "adaptive delay, answer ready at once");
    let mut svc = adaptive.layer(PendingOnce);
    assert_eq!(count(&mut svc), 0, "adaptive delay, answer pending once");

    let fixed = HedgeLayer::builder()
        .delay(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut svc = fixed.layer(PendingOnce);
    assert_eq!(count(&mut svc), 0, "fixed delay, answer pending once");

    // And nothing was hedged: the path under count is the no-hedge one.
    assert_eq!(adaptive.stats().hedges_sent + fixed.stats().hedges_sent, 0);
    assert!(adaptive.stats().calls >= 2 * 3 * N);
}

#[test]
fn a_keyed_call_that_sends_no_hedge_allocates_nothing() {
    let rt = runtime();
    let _enter = rt.enter();

    let keyed = HedgeLayer::builder()
        .min_samples(10)
        .build_keyed::<_, u64>(|r: &u64| *r % 4, seawall_hedge::KeyMapConfig::new())
        .unwrap();
    let mut svc = keyed.layer(PendingOnce);
    assert_eq!(count(&mut svc), 0, "keyed, keys held");
    assert_eq!(keyed.len(), 4);
    assert_eq!(keyed.stats().hedges_sent, 0);
}

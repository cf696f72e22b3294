//! Heap allocations of peer selection, counted exactly on the test's own
//! thread (every future is polled by hand on it).

use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, PeerSelect};
use seawall_test_support::{CountingAlloc, counts};
use tower::Service;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A bare peer answering its id at once.
#[derive(Clone, Copy)]
struct Bare(u32);

impl Service<u32> for Bare {
    type Response = u32;
    type Error = std::convert::Infallible;
    type Future = Ready<Result<u32, std::convert::Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: u32) -> Self::Future {
        ready(Ok(self.0))
    }
}

/// poll_ready + call + poll by hand with a noop waker; the answer or `None`.
fn drive<S: Service<u32, Response = u32>>(svc: &mut S, req: u32) -> Option<u32> {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r.ok(),
        Poll::Pending => panic!("bare peers answer at once"),
    }
}

/// Allocations this thread makes in `n` calls of `f`.
fn allocations(n: u32, mut f: impl FnMut(u32)) -> u64 {
    let before = counts().allocations;
    for i in 0..n {
        f(i);
    }
    counts().allocations - before
}

#[test]
fn allocation_counts() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _enter = rt.enter();
    const N: u32 = 1000;

    let layer = KeyedBreakerLayer::new(|r: &u32| *r, &BreakerConfig::default().into()).unwrap();
    let mut select = PeerSelect::builder(&layer, |r: &u32| Some(*r % 4))
        .peers((0..4).map(|id| (id, Bare(id))))
        .build()
        .unwrap();
    for i in 0..8 {
        drive(&mut select, i); // warm up
    }

    // The preferred peer admits: zero.
    assert_eq!(
        allocations(N, |i| assert_eq!(drive(&mut select, i), Some(i % 4))),
        0,
        "preferred peer"
    );

    // The preferred peer is open: the others are ranked in the service's
    // buffer, still zero (the refusal's key is a shared `Arc<str>`).
    layer.force_open(0);
    assert_eq!(
        allocations(N, |_| assert!(matches!(drive(&mut select, 0), Some(1..=3)))),
        0,
        "preferred peer open"
    );

    // Nobody admits: one allocation, the box of the `NoPeerAvailable`.
    for id in 1..4 {
        layer.force_open(id);
    }
    assert_eq!(
        allocations(N, |_| assert_eq!(drive(&mut select, 0), None)),
        u64::from(N),
        "no peer: one box"
    );
}

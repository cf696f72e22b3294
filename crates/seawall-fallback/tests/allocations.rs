//! Heap allocations, counted exactly on the test's own thread (a
//! current-thread runtime, futures polled by hand), so other tests and
//! threads cannot change the counts.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use seawall_core::BoxError;
use seawall_fallback::{FallbackLayer, FallbackOn};
use seawall_test_support::{CountingAlloc, counts};
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A zero-sized error: boxing it does not allocate, so what is counted is
/// the layer's own cost.
#[derive(Debug, Clone, Copy)]
struct Refused;
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused")
    }
}
impl std::error::Error for Refused {}

/// A bare service answering at once: `Ok(x)` or `Err(Refused)`.
#[derive(Clone, Copy)]
struct Bare {
    fail: bool,
}

impl Service<u64> for Bare {
    type Response = u64;
    type Error = Refused;
    type Future = Ready<Result<u64, Refused>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, x: u64) -> Self::Future {
        ready(if self.fail { Err(Refused) } else { Ok(x) })
    }
}

/// poll_ready + call + poll by hand with a noop waker; the answer, if any.
fn drive<S: Service<u64, Response = u64>>(svc: &mut S, x: u64) -> Option<u64> {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let mut fut = pin!(svc.call(x));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r.ok(),
        Poll::Pending => panic!("the bare service answers at once"),
    }
}

fn allocations(n: u64, mut f: impl FnMut(u64)) -> u64 {
    let before = counts().allocations;
    for i in 0..n {
        f(i);
    }
    counts().allocations - before
}

#[test]
fn allocation_counts() {
    const N: u64 = 1000;

    // Success path, closure backup: zero.
    let layer = FallbackLayer::builder()
        .on(FallbackOn::Failure)
        .answer_with(|x: u64, _: BoxError| Ok::<_, Refused>(x + 1))
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare { fail: false });
    drive(&mut svc, 0);
    assert_eq!(
        allocations(N, |i| assert_eq!(drive(&mut svc, i), Some(i))),
        0,
        "success path"
    );

    // Success path, service backup: zero.
    let layer = FallbackLayer::builder()
        .on(FallbackOn::Failure)
        .service(Bare { fail: false })
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare { fail: false });
    assert_eq!(
        allocations(N, |i| assert_eq!(drive(&mut svc, i), Some(i))),
        0,
        "success path, service backup"
    );

    // Fallback path with a ZST error: zero of ours either.
    let mut svc = layer.layer(Bare { fail: true });
    assert_eq!(
        allocations(N, |i| assert_eq!(drive(&mut svc, i), Some(i))),
        0,
        "fallback path"
    );
    assert_eq!(layer.stats().fallbacks, N);

    // A plain error passed through on rejections only: zero.
    let layer = FallbackLayer::builder()
        .answer_with(|x: u64, _: BoxError| Ok::<_, Refused>(x))
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare { fail: true });
    assert_eq!(
        allocations(N, |i| assert_eq!(drive(&mut svc, i), None)),
        0,
        "passed through"
    );
}

//! Heap allocations, counted exactly on the test's own thread (a
//! current-thread runtime, futures polled by hand), so other tests and
//! threads cannot change the counts.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_core::{BoxError, OverloadReason, Overloaded};
use seawall_retry::hint::{Hint, hint_fn};
use seawall_retry::{Backoff, RetryBudget, RetryLayer};
use seawall_test_support::runtime;
use seawall_test_support::{CountingAlloc, counts};
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A zero-sized error: boxing it does not allocate, so what is counted is
/// the retry layer's own cost.
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

/// A shedder below that refuses every call.
#[derive(Clone, Copy)]
struct Shed;
impl Service<u64> for Shed {
    type Response = u64;
    type Error = Overloaded;
    type Future = Ready<Result<u64, Overloaded>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Overloaded>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: u64) -> Self::Future {
        ready(Err(Overloaded::new(OverloadReason::HardLimit)))
    }
}

/// poll_ready + call + poll by hand with a noop waker; returns whether the call succeeded.
fn drive<S: Service<u64>>(svc: &mut S, x: u64) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("not ready"),
    }
    let mut fut = pin!(svc.call(x));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r.is_ok(),
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
    let rt = runtime::paused();
    let _enter = rt.enter();
    const N: u64 = 1000;

    // Success path with a `Copy` request, default layer (budget on): zero.
    let layer = RetryLayer::builder().build().unwrap();
    let mut svc = layer.layer(Bare { fail: false });
    drive(&mut svc, 0); // warm up
    assert_eq!(
        allocations(N, |i| assert!(drive(&mut svc, i))),
        0,
        "success path"
    );

    // Same with a deadline (one clock read, no allocation).
    let layer = RetryLayer::builder()
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare { fail: false });
    assert_eq!(
        allocations(N, |i| assert!(drive(&mut svc, i))),
        0,
        "success path with a deadline"
    );

    // With a hint reader: the success path does not read it, zero again.
    let layer = RetryLayer::builder()
        .hint(hint_fn(|_: &Result<u64, BoxError>| Hint::DoNotRetry))
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare { fail: false });
    assert_eq!(
        allocations(N, |i| assert!(drive(&mut svc, i))),
        0,
        "success path with a hint reader"
    );
    // A failure whose hint says "do not retry" is passed through: zero of
    // ours (the ZST error's box is free).
    let mut svc = layer.layer(Bare { fail: true });
    assert_eq!(
        allocations(N, |i| assert!(!drive(&mut svc, i))),
        0,
        "do-not-retry passed through"
    );
    assert_eq!(layer.stats().gave_up_do_not_retry, N);

    // A non-retryable rejection from below is passed through: zero of ours
    // (the shedder's own error box is made by the `into()` below, 1 each).
    let layer = RetryLayer::builder().build().unwrap();
    let mut svc = layer.layer(Shed);
    assert_eq!(
        allocations(N, |i| assert!(!drive(&mut svc, i))),
        N,
        "Overloaded passed through: only its own box"
    );

    // Giving up: exactly one allocation, the box of the RetryError. Three
    // attempts with zero delay (no timer) and a ZST inner error.
    let layer = RetryLayer::builder()
        .backoff(Backoff::constant(Duration::ZERO))
        .no_budget()
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare { fail: true });
    assert_eq!(
        allocations(N, |i| assert!(!drive(&mut svc, i))),
        N,
        "give-up path: one box per request"
    );
    assert_eq!(layer.stats().retries, 2 * N);

    // The same with the budget spent: refused at once, one box.
    let layer = RetryLayer::builder()
        .backoff(Backoff::constant(Duration::ZERO))
        .shared_budget(RetryBudget::new(0.0, 0, Duration::from_secs(1)).unwrap())
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare { fail: true });
    assert_eq!(
        allocations(N, |i| assert!(!drive(&mut svc, i))),
        N,
        "budget refusal: one box per request"
    );
    assert_eq!(layer.stats().budget_refusals, N);

    // Tower-free core: backoff iteration and budget bookkeeping, zero.
    let budget = RetryBudget::default();
    let backoff = Backoff::default();
    assert_eq!(
        allocations(N, |i| {
            budget.deposit();
            let _ = budget.try_withdraw();
            let d: Duration = backoff.delays(i).take(8).sum();
            assert!(d > Duration::ZERO);
        }),
        0,
        "core"
    );
}

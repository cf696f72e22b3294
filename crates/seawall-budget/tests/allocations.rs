//! Heap allocations per call, counted exactly with dhat.
//!
//! One `#[test]` runs every case in sequence: dhat's profiler is global.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use seawall_budget::bounded::{self, OverflowPolicy};
use seawall_budget::{BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget};
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: u64 = 1_000;

#[derive(Clone)]
struct Bare;

impl Service<u32> for Bare {
    type Response = u32;
    type Error = Infallible;
    type Future = Ready<Result<u32, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u32) -> Self::Future {
        ready(Ok(x))
    }
}

/// `poll_ready` + `call` + poll the future, by hand; returns whether it was Ok.
fn call_once<S: Service<u32>>(svc: &mut S, cx: &mut Context<'_>) -> bool {
    match svc.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("not ready"),
    }
    let fut = pin!(svc.call(7));
    match fut.poll(cx) {
        Poll::Ready(r) => r.is_ok(),
        Poll::Pending => panic!("pending"),
    }
}

fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

fn count(f: impl FnOnce()) -> u64 {
    let before = blocks();
    f();
    blocks() - before
}

#[test]
fn allocations_per_call() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    let _p = dhat::Profiler::builder().testing().build();
    let mut cx = Context::from_waker(Waker::noop());

    // LoopBudget: can_proceed + consume(1), admitted: 0.
    let budget = LoopBudget::builder()
        .rate(1_000_000_000)
        .burst(1_000_000)
        .build()
        .unwrap();
    let n = count(|| {
        for _ in 0..N {
            assert!(budget.can_proceed());
            budget.consume(1);
        }
    });
    assert_eq!(n, 0, "can_proceed + consume(1)");

    // LoopBudget: try_consume refused: 0 (the error is not boxed).
    let spent = LoopBudget::builder().rate(1).burst(1).build().unwrap();
    spent.consume(1);
    let n = count(|| {
        for _ in 0..N {
            assert!(spent.try_consume(1).is_err());
        }
    });
    assert_eq!(n, 0, "try_consume rejected");

    // BudgetLayer within budget, Reject mode: 0.
    let layer = BudgetLayer::builder()
        .rate(1_000_000_000)
        .burst(1_000_000)
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare);
    let n = count(|| {
        for _ in 0..N {
            assert!(call_once(&mut svc, &mut cx));
        }
    });
    assert_eq!(n, 0, "BudgetLayer (reject mode) within budget");

    // BudgetLayer within budget, Wait mode: 0.
    let layer = BudgetLayer::builder()
        .rate(1_000_000_000)
        .burst(1_000_000)
        .mode(BudgetMode::Wait)
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare);
    let n = count(|| {
        for _ in 0..N {
            assert!(call_once(&mut svc, &mut cx));
        }
    });
    assert_eq!(n, 0, "BudgetLayer (wait mode) within budget");

    // BudgetLayer rejecting: exactly 1 per call, the Box of BoxError.
    let layer = BudgetLayer::builder().rate(1).burst(1).build().unwrap();
    layer.budget().consume(1);
    let mut svc = layer.layer(Bare);
    let n = count(|| {
        for _ in 0..N {
            assert!(!call_once(&mut svc, &mut cx));
        }
    });
    assert_eq!(n, N, "BudgetLayer rejecting: one Box per rejection");

    // KeyedBudgetLayer, known key, within budget: 0.
    let cfg = KeyedBudgetConfig {
        rate: 1_000_000_000,
        burst: Some(1_000_000),
        ..Default::default()
    };
    let keyed = KeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap();
    let mut svc = keyed.layer(Bare);
    assert!(call_once(&mut svc, &mut cx)); // inserts key 7
    let n = count(|| {
        for _ in 0..N {
            assert!(call_once(&mut svc, &mut cx));
        }
    });
    assert_eq!(n, 0, "KeyedBudgetLayer, known key, within budget");

    // KeyedBudgetLayer rejecting: 1 per call (the Box), the key label is shared.
    let cfg = KeyedBudgetConfig {
        rate: 1,
        burst: Some(1),
        ..Default::default()
    };
    let keyed = KeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap();
    let mut svc = keyed.layer(Bare);
    assert!(call_once(&mut svc, &mut cx));
    let n = count(|| {
        for _ in 0..N {
            assert!(!call_once(&mut svc, &mut cx));
        }
    });
    assert_eq!(n, N, "KeyedBudgetLayer rejecting: one Box per rejection");

    // Bounded queue: send + recv after creation: 0 (capacity preallocated).
    let (tx, mut rx) = bounded::channel::<u64>(64, OverflowPolicy::DropOldest).unwrap();
    let n = count(|| {
        for i in 0..N {
            let _ = tx.try_send(i).unwrap();
            let _ = tx.try_send(i).unwrap();
            assert!(rx.try_recv().is_some());
        }
    });
    assert_eq!(n, 0, "bounded queue send/recv, overflowing included");
    let mut send = pin!(tx.send(1));
    let n = count(|| {
        assert!(send.as_mut().poll(&mut cx).is_ready());
    });
    assert_eq!(n, 0, "async send");
}

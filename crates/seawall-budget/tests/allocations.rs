//! Heap allocations per call, counted exactly by a per-thread counting
//! allocator: each test measures only what its own thread allocates, so
//! other tests (or anything else the machine runs) cannot change the count.
//! The code under test runs on the test's thread: futures are polled by
//! hand, under a current-thread runtime entered for its paused clock.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use seawall_budget::bounded::{self, LaneConfig, OverflowPolicy, PriorityConfig};
use seawall_budget::{
    BudgetConfig, BudgetLayer, BudgetMode, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget,
};
use seawall_core::KeyMapConfig;
use seawall_core::config::MAX_CAPACITY;
use seawall_test_support::service::{Echo, ready_call_ok};
use seawall_test_support::{CountingAlloc, allocations, runtime};
use tower::Layer;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const N: u64 = 1_000;

fn count(f: impl FnOnce()) -> u64 {
    allocations(f)
}

#[test]
fn loop_budget_allocates_nothing() {
    let rt = runtime::paused();
    let _guard = rt.enter();

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
}

#[test]
fn budget_layer_allocates_only_to_box_a_rejection() {
    let rt = runtime::paused();
    let _guard = rt.enter();

    // BudgetLayer within budget, Reject mode: 0.
    let layer = BudgetLayer::builder()
        .rate(1_000_000_000)
        .burst(1_000_000)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    let n = count(|| {
        for _ in 0..N {
            assert!(ready_call_ok(&mut svc, 7u32));
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
    let mut svc = layer.layer(Echo);
    let n = count(|| {
        for _ in 0..N {
            assert!(ready_call_ok(&mut svc, 7u32));
        }
    });
    assert_eq!(n, 0, "BudgetLayer (wait mode) within budget");

    // BudgetLayer rejecting: exactly 1 per call, the Box of BoxError.
    let layer = BudgetLayer::builder().rate(1).burst(1).build().unwrap();
    layer.budget().consume(1);
    let mut svc = layer.layer(Echo);
    let n = count(|| {
        for _ in 0..N {
            assert!(!ready_call_ok(&mut svc, 7u32));
        }
    });
    assert_eq!(n, N, "BudgetLayer rejecting: one Box per rejection");
}

#[test]
fn keyed_budget_layer_allocates_only_for_new_keys_and_rejections() {
    let rt = runtime::paused();
    let _guard = rt.enter();

    // KeyedBudgetLayer, known key, within budget: 0.
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(1_000_000_000).burst(1_000_000));
    let keyed = KeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap();
    let mut svc = keyed.layer(Echo);
    assert!(ready_call_ok(&mut svc, 7u32)); // inserts key 7
    let n = count(|| {
        for _ in 0..N {
            assert!(ready_call_ok(&mut svc, 7u32));
        }
    });
    assert_eq!(n, 0, "KeyedBudgetLayer, known key, within budget");

    // KeyedBudgetLayer rejecting: 2 per call, the key's label and the Box.
    // The label is formatted per refusal rather than kept with every key,
    // which would cost a key 40 bytes more (over its 100-byte bound).
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(1).burst(1));
    let keyed = KeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap();
    let mut svc = keyed.layer(Echo);
    assert!(ready_call_ok(&mut svc, 7u32));
    let n = count(|| {
        for _ in 0..N {
            assert!(!ready_call_ok(&mut svc, 7u32));
        }
    });
    assert_eq!(
        n, N,
        "KeyedBudgetLayer rejecting: the Box per rejection (the label is inline)"
    );

    // KeyedBudgetLayer, map full, overflow budget rejecting: 1 per call (the
    // Box); the overflow label is made once and shared.
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(1).burst(1))
        .keys(KeyMapConfig::new().capacity(1));
    let keyed = KeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap();
    let mut svc = keyed.layer(Echo);
    assert!(ready_call_ok(&mut svc, 7u32)); // key 7 holds the one slot, owing its token
    assert!(ready_call_ok(&mut svc, 8)); // the overflow budget's token
    let n = count(|| {
        for x in 0..N as u32 {
            assert!(!ready_call_ok(&mut svc, 100 + x));
        }
    });
    assert_eq!(
        n, N,
        "KeyedBudgetLayer overflow rejecting: one Box per rejection"
    );
    assert_eq!(keyed.stats().overflow, N + 1);
}

#[test]
fn a_bounded_queue_allocates_only_to_grow() {
    let mut cx = Context::from_waker(Waker::noop());
    let (tx, mut rx) = bounded::channel::<u64>(64, OverflowPolicy::DropOldest).unwrap();
    // Filling a fresh queue doubles its memory from the 16 slots reserved
    // when built: 32, then 64, and never past the capacity.
    let n = count(|| {
        for i in 0..100 {
            let _ = tx.try_send(i).unwrap();
        }
    });
    assert_eq!(n, 2, "growing from 16 to 64 slots");
    while rx.try_recv().is_some() {}

    // Bounded queue: send + recv once it has held its high-water mark: 0.
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

#[test]
fn a_large_bound_costs_nothing_until_it_is_used() {
    // Queues used to reserve their bound: 128 MiB for this one.
    let mut built = None;
    let c = seawall_test_support::count(|| {
        built = Some(bounded::channel::<u64>(MAX_CAPACITY, OverflowPolicy::Reject).unwrap());
    });
    assert!(c.bytes_allocated < 1024, "{c:?}");
    let (tx, mut rx) = built.unwrap();
    let c = seawall_test_support::count(|| {
        for i in 0..1000 {
            let _ = tx.try_send(i).unwrap();
        }
    });
    // 1000 items of 8 bytes: doublings up to 1024 slots, 16 KiB in all.
    assert!(c.bytes_allocated <= 16 * 1024, "{c:?}");
    assert_eq!(rx.try_recv(), Some(0));

    // The same for every lane of a priority channel.
    let c = seawall_test_support::count(|| {
        let lanes = [LaneConfig::new(MAX_CAPACITY, OverflowPolicy::Wait); 8];
        let (tx, _rx) = bounded::priority_channel::<u64>(&PriorityConfig::new(lanes)).unwrap();
        for i in 0..100 {
            let _ = tx.try_send(0, i).unwrap();
        }
    });
    assert!(c.bytes_allocated < 64 * 1024, "{c:?}");
}

//! The memory a keyed budget holds per key, counted exactly by a per-thread
//! counting allocator: the layer runs on the test's thread (a paused
//! current-thread runtime, futures polled by hand), so the count is
//! deterministic.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use seawall_budget::{KeyedBudgetConfig, KeyedBudgetLayer};
use seawall_test_support::{CountingAlloc, count};
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Clone)]
struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u64) -> Self::Future {
        ready(Ok(x))
    }
}

/// `poll_ready` + `call` + poll the future, by hand; returns whether it was Ok.
fn call_once<S: Service<u64>>(svc: &mut S, key: u64, cx: &mut Context<'_>) -> bool {
    assert!(svc.poll_ready(cx).is_ready());
    let fut = pin!(svc.call(key));
    match fut.poll(cx) {
        Poll::Ready(r) => r.is_ok(),
        Poll::Pending => panic!("pending"),
    }
}

const KEYS: u64 = 100_000;

// Design rule: a budget key costs at most 100 bytes, everything counted: the
// map's table (entry, control byte, free buckets), the key's state and its
// label. Every key here has spent its burst and been refused once, the most
// a key can hold.
#[test]
fn a_throttled_key_costs_at_most_100_bytes() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());

    let cfg = KeyedBudgetConfig {
        rate: 1,
        burst: Some(1),
        // Room for every key whatever the shards they hash to.
        capacity: 2 * KEYS as usize,
        ..Default::default()
    };
    let layer = KeyedBudgetLayer::new(|k: &u64| *k, &cfg).unwrap();
    let mut svc = layer.layer(Bare);
    let held = count(|| {
        for k in 0..KEYS {
            assert!(call_once(&mut svc, k, &mut cx));
            assert!(!call_once(&mut svc, k, &mut cx));
        }
    });
    let stats = layer.stats();
    assert_eq!(stats.keys as u64, KEYS);
    assert_eq!(stats.exhausted, KEYS);
    let per_key = held.bytes_retained() as f64 / KEYS as f64;
    println!("{per_key:.1} bytes per key ({held:?})");
    assert!(per_key <= 100.0, "{per_key:.1} bytes per key");
}

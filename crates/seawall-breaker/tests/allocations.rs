//! Heap allocations per call, and memory per key, counted on the test's own
//! thread (the runtime is current-thread and every future is polled by
//! hand), so other tests and threads cannot change the counts.

use seawall_breaker::{
    BreakerConfig, BreakerLayer, KeyedBreakerConfig, KeyedBreakerLayer, TripPolicy,
};
use seawall_core::KeyMapConfig;
use seawall_test_support::service::{Echo, ready_call_ok};
use seawall_test_support::{CountingAlloc, counts, runtime};
use tower::Layer;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const N: u64 = 10_000;

// Allocations made by this thread while `f` runs.
fn allocs_during(f: impl FnOnce()) -> u64 {
    seawall_test_support::allocations(f)
}

fn one_failure_trips() -> BreakerConfig {
    BreakerConfig::new().policy(TripPolicy::consecutive_failures(1))
}

#[test]
fn allocations_per_call() {
    let rt = runtime::paused();
    let _guard = rt.enter();

    // The tower-free core.
    let breaker = seawall_breaker::CircuitBreaker::builder()
        .build_breaker()
        .unwrap();
    breaker.try_acquire().unwrap().success();
    let n = allocs_during(|| {
        for _ in 0..N {
            breaker.try_acquire().unwrap().success();
        }
    });
    assert_eq!(n, 0, "core, closed success path");
    breaker.force_open();
    let n = allocs_during(|| {
        for _ in 0..N {
            assert!(breaker.try_acquire().is_err());
        }
    });
    assert_eq!(n, 0, "core, forced-open reject path");
    breaker.reset();
    breaker.trip();
    let n = allocs_during(|| {
        for _ in 0..N {
            assert!(breaker.try_acquire().is_err());
        }
    });
    assert_eq!(n, 0, "core, open reject path");

    // The layer.
    let layer = BreakerLayer::from_config(&one_failure_trips()).unwrap();
    let mut svc = layer.layer(Echo);
    assert!(ready_call_ok(&mut svc, 1));
    let n = allocs_during(|| {
        for i in 0..N {
            assert!(ready_call_ok(&mut svc, i));
        }
    });
    assert_eq!(n, 0, "layer, closed success path");
    layer.breaker().trip();
    let n = allocs_during(|| {
        for i in 0..N {
            assert!(!ready_call_ok(&mut svc, i));
        }
    });
    assert_eq!(n, N, "layer, reject path: exactly the Box of the BoxError");

    // The keyed layer.
    let keyed = KeyedBreakerLayer::new(|r: &u64| *r % 100, &one_failure_trips().into()).unwrap();
    let mut svc = keyed.layer(Echo);
    for i in 0..100 {
        assert!(ready_call_ok(&mut svc, i));
    }
    let n = allocs_during(|| {
        for i in 0..N {
            assert!(ready_call_ok(&mut svc, i));
        }
    });
    assert_eq!(n, 0, "keyed, existing key success path");
    keyed.force_open(7);
    let n = allocs_during(|| {
        for _ in 0..N {
            assert!(!ready_call_ok(&mut svc, 7));
        }
    });
    assert_eq!(n, N, "keyed, reject path: exactly the Box of the BoxError");
    drop(svc);
    drop(keyed);

    // Memory per key at 100,000 keys: heap bytes held by the layer and its
    // map (shards, table slots, per-key breaker state, key labels) / keys.
    const KEYS: u64 = 100_000;
    let before = counts();
    let keyed = KeyedBreakerLayer::new(
        |r: &u64| *r,
        // Head room: keys spread over 32 shards of capacity / 32 each, not
        // evenly.
        &KeyedBreakerConfig::new().keys(KeyMapConfig::new().capacity(KEYS as usize * 5 / 4)),
    )
    .unwrap();
    let mut svc = keyed.layer(Echo);
    for i in 0..KEYS {
        assert!(ready_call_ok(&mut svc, i));
    }
    assert_eq!(keyed.len() as u64, KEYS);
    let held = (counts() - before).bytes_retained();
    let per_key = held as u64 / KEYS;
    println!("keyed breaker memory: {held} bytes for {KEYS} keys = {per_key} bytes/key");
    assert!(per_key <= 100, "{per_key} bytes per key");
}

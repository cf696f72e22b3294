//! The memory a keyed budget holds per key, counted exactly by a per-thread
//! counting allocator: the layer runs on the test's thread (a paused
//! current-thread runtime, futures polled by hand), so the count is
//! deterministic.

use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
use seawall_core::KeyMapConfig;
use seawall_test_support::service::{Echo, ready_call_ok};
use seawall_test_support::{CountingAlloc, count, runtime};
use tower::Layer;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const KEYS: u64 = 100_000;

// Design rule: a budget key costs at most 100 bytes, everything counted: the
// map's table (entry, control byte, free buckets), the key's state and its
// label. Every key here has spent its burst and been refused once, the most
// a key can hold.
#[test]
fn a_throttled_key_costs_at_most_100_bytes() {
    let rt = runtime::paused();
    let _guard = rt.enter();

    // Room for every key whatever the shards they hash to.
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(1).burst(1))
        .keys(KeyMapConfig::new().capacity(2 * KEYS as usize));
    let layer = KeyedBudgetLayer::new(|k: &u64| *k, &cfg).unwrap();
    let mut svc = layer.layer(Echo);
    let held = count(|| {
        for k in 0..KEYS {
            assert!(ready_call_ok(&mut svc, k));
            assert!(!ready_call_ok(&mut svc, k));
        }
    });
    let stats = layer.stats();
    assert_eq!(stats.keys as u64, KEYS);
    assert_eq!(stats.exhausted, KEYS);
    let per_key = held.bytes_retained() as f64 / KEYS as f64;
    println!("{per_key:.1} bytes per key ({held:?})");
    assert!(per_key <= 100.0, "{per_key:.1} bytes per key");
}

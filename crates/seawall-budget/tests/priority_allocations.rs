//! Heap allocations of the priority channel after it is built, counted
//! exactly by a per-thread counting allocator (only this test's thread):
//! none to send, receive, drop by policy or refuse once each lane has held
//! its high-water mark. Lanes of at most 16 items are reserved whole when
//! the channel is built, so these allocate nothing after creation at all.

use seawall_budget::bounded::{self, LaneConfig, OverflowPolicy, PriorityConfig};
use seawall_test_support::{CountingAlloc, allocations};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const N: u64 = 1_000;

fn count(f: impl FnOnce()) -> u64 {
    allocations(f)
}

#[test]
fn the_priority_channel_allocates_only_when_built() {
    let (tx, mut rx) = bounded::priority_channel::<u64>(&PriorityConfig::new([
        LaneConfig::new(4, OverflowPolicy::Reject),
        LaneConfig::new(4, OverflowPolicy::DropOldest),
        LaneConfig::new(4, OverflowPolicy::DropNewest),
    ]))
    .unwrap();
    let n = count(|| {
        for i in 0..N {
            // Fill every lane past its capacity, then drain: every policy
            // and the anti-starvation rule run.
            for lane in 0..3 {
                for _ in 0..6 {
                    let _ = tx.try_send(lane, i);
                }
            }
            while rx.try_recv().is_some() {}
        }
    });
    assert_eq!(n, 0, "send, receive, drop and refuse after creation");
    let s = rx.stats();
    assert_eq!(s.lanes[0].rejected, 2 * N);
    assert_eq!(s.lanes[1].dropped_oldest, 2 * N);
    assert_eq!(s.lanes[2].dropped_newest, 2 * N);
    assert_eq!(s.total().received, 12 * N);
    assert!(s.fair_takes > 0);
}

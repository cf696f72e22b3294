//! Heap allocations of the priority channel after it is built, counted
//! exactly with dhat: none to send, receive, drop by policy or refuse.
//!
//! One `#[test]`: dhat's profiler is global.

use seawall_budget::bounded::{self, LaneConfig, OverflowPolicy, PriorityConfig};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: u64 = 1_000;

fn count(f: impl FnOnce()) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    f();
    dhat::HeapStats::get().total_blocks - before
}

#[test]
fn the_priority_channel_allocates_only_when_built() {
    let _p = dhat::Profiler::builder().testing().build();
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

//! Per-thread handles to one breaker, so that threads calling one breaker
//! do not write one shared cache line per call.
//!
//! A `'static` response future must own a handle to its breaker, to record
//! the call's outcome. Were that handle a clone of the breaker's `Arc`,
//! every call on every thread would add to and subtract from the one
//! reference count, and two threads would bounce its cache line between
//! their cores on every call. Instead a breaker made whole keeps a few
//! *lanes*, each an `Arc` of its own holding a clone of the breaker: a
//! thread takes its lane's handle (chosen once per thread, in turn), so the
//! count it writes is its lane's, on a line no other thread writes while
//! there are no more threads than lanes. Correctness never depends on which
//! lane a thread uses; only speed does.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::state::Inner;

/// Lanes per breaker: a power of two, at least the cores a service usually
/// runs on. 8 lanes take 2 KiB.
const LANES: usize = 8;

/// One lane: a clone of the breaker's handle, aligned so that the lane's
/// reference counts (at the start of its allocation) sit alone on their
/// cache line (and its neighbour, for CPUs that fetch lines in pairs).
#[repr(align(128))]
pub(crate) struct Lane {
    inner: crate::sync::Arc<Inner>,
}

impl Lane {
    #[inline]
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// The lanes of one breaker.
pub(crate) struct Lanes {
    lanes: [Arc<Lane>; LANES],
}

impl Lanes {
    pub(crate) fn new(inner: &crate::sync::Arc<Inner>) -> Lanes {
        Lanes {
            lanes: std::array::from_fn(|_| {
                Arc::new(Lane {
                    inner: inner.clone(),
                })
            }),
        }
    }

    /// This thread's lane.
    #[inline]
    pub(crate) fn get(&self) -> &Arc<Lane> {
        &self.lanes[thread_lane() & (LANES - 1)]
    }
}

/// This thread's lane number: given once per thread, in turn, so that the
/// first `LANES` threads to call get lanes of their own.
#[inline]
fn thread_lane() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LANE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    LANE.with(|lane| {
        let n = lane.get();
        if n != usize::MAX {
            return n;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed) & (LANES - 1);
        lane.set(n);
        n
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lanes_counts_sit_on_a_line_of_their_own() {
        assert_eq!(std::mem::align_of::<Lane>(), 128);
        // The counts are at the start of each allocation, the lane's data
        // 128 bytes after: two lanes' counts never share a 128-byte block.
        assert!(std::mem::size_of::<Lane>() >= 128);
    }

    #[test]
    fn threads_take_lanes_in_turn_and_keep_theirs() {
        let here = thread_lane();
        assert_eq!(here, thread_lane());
        let others: Vec<usize> = (0..LANES - 1)
            .map(|_| std::thread::spawn(thread_lane).join().unwrap())
            .collect();
        assert!(others.iter().all(|&n| n < LANES));
    }
}

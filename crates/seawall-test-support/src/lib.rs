//! Test support for seawall's crates; not published.
//!
//! - [`CountingAlloc`] and [`count`]: what the current thread allocates.
//! - [`service`]: an always-ready [`service::Echo`], and one call driven by
//!   hand on the test's own thread.
//! - [`runtime::paused`]: a current-thread runtime on a paused clock.
//! - [`redis::RedisServer`]: a throwaway `redis-server` on 127.0.0.1.
//! - `pong` (feature `pong`): real TCP peers on 127.0.0.1 and their client.
//! - `serve` (feature `axum`): an axum app served on 127.0.0.1 for a test.
//! - `metrics` (feature `metrics`): a recorder that keeps every series, so a
//!   test reads back what a layer reported.
//!
//! [`CountingAlloc`] is a global allocator that counts the allocations and
//! bytes of **the thread that makes them**, so an allocation test asserts
//! only its own work: a test harness thread, a runtime worker or another test
//! allocating at the same moment on a busy machine cannot change its count.
//!
//! ```
//! use seawall_test_support::{CountingAlloc, count};
//!
//! #[global_allocator]
//! static ALLOC: CountingAlloc = CountingAlloc;
//!
//! fn main() {
//!     let n = count(|| {
//!         let v: Vec<u8> = Vec::with_capacity(16);
//!         drop(v);
//!     });
//!     assert_eq!(n.allocations, 1);
//!     assert_eq!(n.bytes_allocated, 16);
//!     assert_eq!(n.bytes_retained(), 0);
//! }
//! ```
//!
//! Measure with the code under test on the current thread (a current-thread
//! runtime, or futures polled by hand): work a multi-thread runtime does on
//! its workers is not counted.
#![deny(missing_docs)]
#![allow(unsafe_code)] // Only in `CountingAlloc`'s `GlobalAlloc` impl, each use proven below.

#[cfg(feature = "proptest")]
pub mod hostile;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "pong")]
pub mod pong;
pub mod redis;
pub mod runtime;
#[cfg(feature = "axum")]
pub mod serve;
pub mod service;
#[cfg(feature = "tracing")]
pub mod trace;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // `const` initialisers and `Cell<u64>` (no destructor): reading these
    // never allocates and never registers a destructor, so the allocator can
    // use them without recursing into itself.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES_ALLOCATED: Cell<u64> = const { Cell::new(0) };
    static BYTES_FREED: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting per thread. Install it with
/// `#[global_allocator]` in the test file that measures.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

fn add(counter: &'static std::thread::LocalKey<Cell<u64>>, n: u64) {
    // `try_with`: during thread teardown the slot may be gone; such late
    // allocations belong to no test and are not counted.
    let _ = counter.try_with(|c| c.set(c.get().wrapping_add(n)));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counting touches only
// thread-local `Cell`s, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(&ALLOCATIONS, 1);
        add(&BYTES_ALLOCATED, layout.size() as u64);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(&ALLOCATIONS, 1);
        add(&BYTES_ALLOCATED, layout.size() as u64);
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(&BYTES_FREED, layout.size() as u64);
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(&ALLOCATIONS, 1);
        add(&BYTES_ALLOCATED, new_size as u64);
        add(&BYTES_FREED, layout.size() as u64);
        // SAFETY: forwarded unchanged; `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What the current thread allocated; see [`counts`] and [`count`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Allocations made (a `realloc` counts as one).
    pub allocations: u64,
    /// Bytes requested by those allocations.
    pub bytes_allocated: u64,
    /// Bytes given back by this thread.
    pub bytes_freed: u64,
}

impl Counts {
    /// Bytes allocated and not freed (by this thread) in the span measured;
    /// negative when the span freed more than it allocated.
    pub fn bytes_retained(&self) -> i64 {
        self.bytes_allocated as i64 - self.bytes_freed as i64
    }
}

impl std::ops::Sub for Counts {
    type Output = Counts;

    fn sub(self, before: Counts) -> Counts {
        Counts {
            allocations: self.allocations.wrapping_sub(before.allocations),
            bytes_allocated: self.bytes_allocated.wrapping_sub(before.bytes_allocated),
            bytes_freed: self.bytes_freed.wrapping_sub(before.bytes_freed),
        }
    }
}

/// The current thread's totals since it started. Only meaningful when
/// [`CountingAlloc`] is the global allocator; otherwise all zero.
pub fn counts() -> Counts {
    Counts {
        allocations: ALLOCATIONS.with(Cell::get),
        bytes_allocated: BYTES_ALLOCATED.with(Cell::get),
        bytes_freed: BYTES_FREED.with(Cell::get),
    }
}

/// Runs `f` and returns what the current thread allocated while it ran.
pub fn count(f: impl FnOnce()) -> Counts {
    let before = counts();
    f();
    counts() - before
}

/// Runs `f` and returns how many allocations the current thread made while it ran.
pub fn allocations(f: impl FnOnce()) -> u64 {
    count(f).allocations
}

//! A tokio runtime for tests that own their clock.

use tokio::runtime::{Builder, Runtime};

/// A current-thread runtime with time enabled and paused: it runs on the
/// test's own thread (so per-thread allocation counts see its work) and its
/// clock moves only by `tokio::time::advance` or when every task is idle.
///
/// Enter it (`let _guard = rt.enter();`) to build layers and poll futures by
/// hand, or drive a future with `block_on`.
///
/// ```
/// use std::time::Duration;
///
/// let rt = seawall_test_support::runtime::paused();
/// let _guard = rt.enter();
/// let start = tokio::time::Instant::now();
/// rt.block_on(tokio::time::advance(Duration::from_secs(3600)));
/// assert_eq!(start.elapsed(), Duration::from_secs(3600));
/// ```
///
/// # Panics
/// If the runtime cannot be built (the OS refused its resources); a test
/// cannot go on without it.
pub fn paused() -> Runtime {
    Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

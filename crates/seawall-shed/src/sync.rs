//! The synchronisation primitives of the slot accounting and the wait
//! queue's hand-over: std's, re-exported as they are, or loom's when the
//! crate is built with `--cfg seawall_loom` for the model checks. A
//! re-export, so the normal build compiles exactly the std code path.

#[cfg(seawall_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(seawall_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(seawall_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(not(seawall_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Marks a handshake that relies on the single total order of `SeqCst`
/// accesses (each side writes one atomic, then reads the other's: one of
/// them sees the other's write). A normal build has that order from the
/// accesses themselves and compiles this to nothing. loom models `SeqCst`
/// accesses as only acquire/release (a documented gap of loom, which then
/// reports both reads as stale: a false alarm), but models a `SeqCst` fence
/// exactly, so under `--cfg seawall_loom` this is one.
#[inline(always)]
pub(crate) fn seq_cst_handshake() {
    #[cfg(seawall_loom)]
    loom::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}

//! The synchronisation primitives of the wait queue's hand-over: std's,
//! re-exported as they are, or loom's when the crate is built with
//! `--cfg seawall_loom` for the model checks. A re-export, so the normal
//! build compiles exactly the std code path.

#[cfg(seawall_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(seawall_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

//! The synchronisation primitives of the breaker's state word, counters and
//! transition lock: std's, re-exported as they are, or loom's when the crate
//! is built with `--cfg seawall_loom` for the model checks. A re-export, so
//! the normal build compiles exactly the std code path.
//!
//! `Arc` is the one a breaker's `Inner` (its shared state) is held by: a
//! keyed layer's map (seawall-core's `KeyMap`) hands out its values in
//! loom's `Arc` under the same cfg, so the breaker's must be the same type.

#[cfg(seawall_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(seawall_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(seawall_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(seawall_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

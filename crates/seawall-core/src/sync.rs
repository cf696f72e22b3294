//! The synchronisation primitives of the hand-rolled concurrency (the
//! [`KeyMap`](crate::KeyMap)): std's, re-exported as they are, or loom's when
//! the crate is built with `--cfg seawall_loom` for the model checks. A
//! re-export, so the normal build compiles exactly the std code path.

#[cfg(seawall_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(seawall_loom)]
pub(crate) use loom::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
#[cfg(not(seawall_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
#[cfg(not(seawall_loom))]
pub(crate) use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

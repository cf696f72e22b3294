//! The synchronisation primitives of the GCRA cell and of the rate it reads:
//! std's, re-exported as they are, or loom's when the crate is built with
//! `--cfg seawall_loom` for the model checks. A re-export, so the normal
//! build compiles exactly the std code path.

#[cfg(seawall_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, fence};
#[cfg(not(seawall_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, fence};

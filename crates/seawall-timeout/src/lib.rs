//! Adaptive timeouts for tower services (`AdaptiveTimeoutLayer`): the
//! deadline follows live latency percentiles.
//!
//! Not built yet: this crate is a placeholder in the workspace.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

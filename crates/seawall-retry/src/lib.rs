//! Retries for tower services (`RetryLayer`): backoff strategies with
//! jitter, a retry budget and pluggable classification.
//!
//! Not built yet: this crate is a placeholder in the workspace.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

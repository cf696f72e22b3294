//! A circuit breaker (`BreakerLayer`) and a keyed per-peer breaker map
//! (`KeyedBreakerLayer`) for tower services.
//!
//! Not built yet: this crate is a placeholder in the workspace.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

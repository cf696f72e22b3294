//! Load shedding for tower services (`ShedLayer`): in-flight limits,
//! probabilistic shedding, priorities and adaptive limits.
//!
//! Not built yet: this crate is a placeholder in the workspace.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

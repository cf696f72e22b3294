//! The error a backup gets for a response classified as a failure.

use std::fmt;

/// Given to a backup in place of an error when the inner service answered
/// `Ok` but the layer's [`Classify`](seawall_core::Classify) called it a
/// failure (an HTTP 503, say). The response itself is dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailedResponse;

impl fmt::Display for FailedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response was classified as a failure")
    }
}

impl std::error::Error for FailedResponse {}

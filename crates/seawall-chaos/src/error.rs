//! [`Injected`]: the error a chaos layer injects when it is given none.

use std::fmt;

/// The error a [`ChaosLayer`](crate::ChaosLayer) injects unless given one
/// of yours ([`ChaosBuilder::error_with`](crate::ChaosBuilder::error_with)),
/// e.g. when built from a [`ChaosConfig`](crate::ChaosConfig).
///
/// A distinct type, so a test (or a classifier) can tell an injected failure
/// from a real one with `downcast_ref::<Injected>()`. It is not a seawall
/// rejection: [`Rejection::find`](seawall_core::Rejection::find) does not
/// see it, and layers that act only on rejections (a fallback with its
/// default rule) let it through, as they would a real failure. Zero-sized:
/// boxing it allocates nothing.
///
/// ```
/// use seawall_chaos::Injected;
/// use seawall_core::BoxError;
///
/// let err: BoxError = Injected.into();
/// assert!(err.downcast_ref::<Injected>().is_some());
/// assert_eq!(err.to_string(), "fault injected by a chaos layer");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Injected;

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault injected by a chaos layer")
    }
}

impl std::error::Error for Injected {}

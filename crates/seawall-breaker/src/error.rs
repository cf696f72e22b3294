//! The error of [`CircuitBreaker::call`](crate::CircuitBreaker::call): the
//! only error type that is this crate's own (rejections are seawall-core's
//! [`CircuitOpen`]).

use seawall_core::CircuitOpen;

/// Why a call guarded by [`CircuitBreaker::call`](crate::CircuitBreaker::call) failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker refused the call; it was never started.
    #[error(transparent)]
    Rejected(CircuitOpen),
    /// The call ran and returned this error.
    #[error(transparent)]
    Inner(E),
}

impl<E> CallError<E> {
    /// The rejection, if the breaker refused the call.
    pub fn rejection(&self) -> Option<&CircuitOpen> {
        match self {
            CallError::Rejected(r) => Some(r),
            CallError::Inner(_) => None,
        }
    }

    /// The call's own error, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(e) => Some(e),
        }
    }
}

//! [`StackError`]: how a seawall refusal travels in a `reqwest_middleware::Error`.

use std::error::Error;
use std::fmt;

use seawall_core::BoxError;
use seawall_retry::RetryError;

/// An error of the seawall stack (a rejection — `CircuitOpen`, `Elapsed`,
/// `BudgetExhausted`… — or a [`RetryError`] over one), as the middleware
/// returns it: in `reqwest_middleware::Error::Middleware`.
///
/// `reqwest_middleware::Error` is `#[error(transparent)]` over an
/// `anyhow::Error`, whose `source()` skips the error it holds; this wrapper
/// gives the seawall error back as its own `source()`, so
/// [`Rejection::find`](seawall_core::Rejection::find) on the
/// `reqwest_middleware::Error` finds the typed rejection:
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{CircuitOpen, Rejection, RejectionKind};
/// use seawall_reqwest::StackError;
///
/// let refused = CircuitOpen::new(Some(Duration::from_secs(5))).with_key("api.internal:443");
/// let err = reqwest_middleware::Error::middleware(StackError::new(refused.into()));
/// let rejection = Rejection::find(&err).expect("found through anyhow");
/// assert_eq!(rejection.kind(), RejectionKind::CircuitOpen);
/// assert_eq!(rejection.key(), Some("api.internal:443"));
/// ```
///
/// Errors of the request itself (connection refused, a body error) are not
/// wrapped: they come back as the `reqwest_middleware::Error` that `Next`
/// returned, also after retries (as reqwest-retry returns them).
#[derive(Debug)]
pub struct StackError(BoxError);

impl StackError {
    /// Wraps an error of the stack.
    pub fn new(error: BoxError) -> Self {
        StackError(error)
    }

    /// The error of the stack.
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The error of the stack, by value.
    pub fn into_inner(self) -> BoxError {
        self.0
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seawall: {}", self.0)
    }
}

impl Error for StackError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

/// The middleware's error for what the stack returned: the request's own
/// error unchanged (also when it is the last of several attempts), anything
/// else (a seawall rejection) in a [`StackError`].
pub(crate) fn into_middleware_error(err: BoxError) -> reqwest_middleware::Error {
    let err = match err.downcast::<reqwest_middleware::Error>() {
        Ok(own) => return *own,
        Err(err) => err,
    };
    let err = match err.downcast::<RetryError>() {
        Ok(retry) if retry.last_error().is::<reqwest_middleware::Error>() => {
            match retry
                .into_last_error()
                .downcast::<reqwest_middleware::Error>()
            {
                Ok(own) => return *own,
                // Checked just above; kept as the stack's error if not.
                Err(other) => other,
            }
        }
        Ok(retry) => retry,
        Err(err) => err,
    };
    reqwest_middleware::Error::middleware(StackError(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use seawall_core::{Elapsed, Rejection, RejectionKind};
    use seawall_retry::StopReason;
    use std::time::Duration;

    #[test]
    fn rejections_are_found_through_the_middleware_error() {
        let elapsed: BoxError = Elapsed::new(Duration::from_millis(50)).into();
        let err = into_middleware_error(elapsed);
        assert!(err.is_middleware());
        assert_eq!(
            Rejection::find(&err).map(|r| r.kind()),
            Some(RejectionKind::Elapsed)
        );
        assert!(err.to_string().starts_with("seawall: "), "{err}");

        // Under a retry error too.
        let last: BoxError = Elapsed::new(Duration::from_millis(50)).into();
        let retry: BoxError = Box::new(RetryError::new(3, StopReason::AttemptsExhausted, last));
        let err = into_middleware_error(retry);
        assert_eq!(
            Rejection::find(&err).map(|r| r.kind()),
            Some(RejectionKind::Elapsed)
        );
        match &err {
            reqwest_middleware::Error::Middleware(e) => {
                let stack = e.downcast_ref::<StackError>().expect("a StackError");
                assert!(stack.get_ref().is::<RetryError>());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_requests_own_errors_come_back_unchanged() {
        let own = reqwest_middleware::Error::middleware(std::io::Error::other("mine"));
        let err = into_middleware_error(Box::new(own));
        assert_eq!(err.to_string(), "mine");
        assert!(Rejection::find(&err).is_none());

        let own: BoxError = Box::new(reqwest_middleware::Error::middleware(
            std::io::Error::other("last"),
        ));
        let retry: BoxError = Box::new(RetryError::new(2, StopReason::AttemptsExhausted, own));
        assert_eq!(into_middleware_error(retry).to_string(), "last");
    }
}

//! The error a retry layer returns when it stops retrying.

use std::fmt;

use seawall_core::BoxError;

/// Why the retry layer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// `max_attempts` calls were made.
    AttemptsExhausted,
    /// The retry budget refused another retry.
    BudgetExhausted,
    /// The next retry (its delay, or a `CircuitOpen`'s `retry_after`) would
    /// pass the overall deadline.
    Deadline,
    /// The failure is not retryable: an `Overloaded` or `BudgetExhausted`
    /// from below, a `CircuitOpen` without a usable `retry_after`, an error
    /// your `retry_if` refused, or a request that could not be cloned.
    NotRetryable,
    /// The failed attempt said not to retry: its [`Hint`](crate::hint::Hint)
    /// was `DoNotRetry` (a negative or malformed gRPC pushback, say).
    DoNotRetry,
    /// The failed attempt asked to wait longer than the layer will: past the
    /// overall deadline, or, without a deadline, past the backoff's
    /// `max_delay`. The layer gives up at once instead of sleeping.
    HintTooLong,
}

impl StopReason {
    /// A stable snake_case name, used as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::AttemptsExhausted => "attempts_exhausted",
            StopReason::BudgetExhausted => "budget_exhausted",
            StopReason::Deadline => "deadline",
            StopReason::NotRetryable => "not_retryable",
            StopReason::DoNotRetry => "do_not_retry",
            StopReason::HintTooLong => "hint_too_long",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::AttemptsExhausted => "attempts exhausted",
            StopReason::BudgetExhausted => "retry budget exhausted",
            StopReason::Deadline => "the next retry would pass the deadline",
            StopReason::NotRetryable => "not retryable",
            StopReason::DoNotRetry => "the peer asked not to retry",
            StopReason::HintTooLong => "the peer asked to wait longer than the layer will",
        })
    }
}

/// Retrying stopped: how many attempts were made, why it stopped, and the
/// last attempt's error as [`source()`](std::error::Error::source).
///
/// Returned as a `BoxError`. Because the last error is the source,
/// [`Rejection::find`](seawall_core::Rejection::find) still finds a
/// rejection under it.
///
/// One exception keeps error handlers simple: when the *first* attempt's
/// error is not retryable, the layer did nothing, and that error is returned
/// unchanged, not wrapped.
///
/// ```
/// use seawall_core::{BoxError, Elapsed, Rejection, RejectionKind};
/// use seawall_retry::{RetryError, StopReason};
/// # use std::time::Duration;
/// # fn last() -> BoxError { Elapsed::new(Duration::from_millis(5)).into() }
/// # let err: BoxError = Box::new(RetryError::new(3, StopReason::AttemptsExhausted, last()));
/// // `err` is what a retry layer returned.
/// if let Some(retry) = err.downcast_ref::<RetryError>() {
///     assert_eq!(retry.attempts(), 3);
///     assert_eq!(retry.reason(), StopReason::AttemptsExhausted);
/// }
/// assert_eq!(Rejection::find(&*err).unwrap().kind(), RejectionKind::Elapsed);
/// assert_eq!(err.to_string(), "gave up after 3 attempts (attempts exhausted): deadline of 5ms elapsed");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("gave up after {attempts} attempt{s} ({reason}): {source}", s = if *.attempts == 1 { "" } else { "s" })]
pub struct RetryError {
    attempts: u32,
    reason: StopReason,
    source: BoxError,
}

impl RetryError {
    /// An error for `attempts` attempts that stopped for `reason`.
    pub fn new(attempts: u32, reason: StopReason, source: BoxError) -> Self {
        RetryError {
            attempts,
            reason,
            source,
        }
    }

    /// Calls made, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why retrying stopped.
    pub fn reason(&self) -> StopReason {
        self.reason
    }

    /// The last attempt's error.
    pub fn last_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }

    /// The last attempt's error, by value.
    pub fn into_last_error(self) -> BoxError {
        self.source
    }
}

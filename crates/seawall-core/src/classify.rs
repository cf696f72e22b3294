//! Outcome classification: did a call succeed, fail, or neither?
//!
//! A circuit breaker counts failures, a retry layer retries them and an
//! adaptive limit backs off on them, but what *is* a failure depends on the
//! service: an HTTP client gets `Ok(response)` for a 503, a gRPC client gets
//! `Err(status)` for a `NotFound` that says nothing about the peer's health.
//! Every seawall layer that needs the answer takes a [`Classify`].
//!
//! | classifier | `Ok` | `Err` |
//! |------------|------|-------|
//! | [`ErrorsAsFailures`] (default) | success | failure |
//! | [`classify_fn`] | your closure decides | your closure decides |
//! | [`HttpStatus`] (feature `http`) | failure for 5xx and 429, success otherwise (configurable) | failure |
//! | [`GrpcCode`] (feature `tonic`) | see its docs | failure for server-side codes, success for caller-side codes |
//!
//! [`Outcome::Ignore`] lets a call count as neither: a cancelled call, a
//! `404` on a lookup, or a rejection you do not want to feed back.

/// What a call's result means to a layer that counts outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded: the peer is healthy.
    Success,
    /// The call failed in a way that says something about the peer's health.
    Failure,
    /// The call counts as neither a success nor a failure.
    Ignore,
}

impl Outcome {
    /// `true` for [`Outcome::Failure`].
    pub fn is_failure(self) -> bool {
        self == Outcome::Failure
    }

    /// `true` for [`Outcome::Success`].
    pub fn is_success(self) -> bool {
        self == Outcome::Success
    }
}

/// Decides what a `Result<Res, E>` from a service means.
///
/// Implemented by [`ErrorsAsFailures`] (the default of every layer),
/// [`ClassifyFn`] (any closure, through [`classify_fn`]), and behind features
/// by `HttpStatus` and `GrpcCode`.
///
/// # Example
///
/// ```
/// use seawall_core::{Classify, Outcome};
///
/// /// A lookup service: `Ok(None)` means "not found", which is not the peer's fault.
/// struct NotFoundIsFine;
///
/// impl<E> Classify<Option<String>, E> for NotFoundIsFine {
///     fn classify(&self, result: &Result<Option<String>, E>) -> Outcome {
///         match result {
///             Ok(Some(_)) => Outcome::Success,
///             Ok(None) => Outcome::Ignore,
///             Err(_) => Outcome::Failure,
///         }
///     }
/// }
///
/// let r: Result<Option<String>, ()> = Ok(None);
/// assert_eq!(NotFoundIsFine.classify(&r), Outcome::Ignore);
/// ```
pub trait Classify<Res, E> {
    /// Classifies one result.
    fn classify(&self, result: &Result<Res, E>) -> Outcome;
}

impl<Res, E, C: Classify<Res, E> + ?Sized> Classify<Res, E> for &C {
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        (**self).classify(result)
    }
}

impl<Res, E, C: Classify<Res, E> + ?Sized> Classify<Res, E> for std::sync::Arc<C> {
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        (**self).classify(result)
    }
}

/// What a call's result means to a layer that judges the service below it:
/// `classify`'s answer, except that a refusal from a seawall layer below
/// (`CircuitOpen`, `Overloaded`, `BudgetExhausted`, and a `DeadlineExceeded`
/// raised before the call started; see
/// [`Rejection::is_refusal`](crate::Rejection::is_refusal)) is
/// [`Outcome::Ignore`] whatever `classify` says: that call never reached the
/// service, so it says nothing about its health. A `DeadlineExceeded` that
/// cut a running call short is not a refusal: `classify` judges it (the
/// default, [`ErrorsAsFailures`], counts it a failure, as it would an
/// `Elapsed`).
///
/// The circuit breaker and the shedder's adaptive limit classify through
/// this; it costs nothing on `Ok` and a few type-id comparisons on `Err`.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{BoxError, BudgetExhausted, ErrorsAsFailures, Outcome, classify::judge};
///
/// let refused: Result<(), BoxError> = Err(BudgetExhausted::new(Duration::from_millis(5)).into());
/// assert_eq!(judge(&ErrorsAsFailures, &refused), Outcome::Ignore);
/// let reset: Result<(), BoxError> = Err("connection reset".into());
/// assert_eq!(judge(&ErrorsAsFailures, &reset), Outcome::Failure);
/// ```
#[inline]
pub fn judge<Res, E, C>(classify: &C, result: &Result<Res, E>) -> Outcome
where
    E: 'static,
    C: Classify<Res, E> + ?Sized,
{
    match result {
        Err(e) if crate::Rejection::is_refusal_in(e) => Outcome::Ignore,
        _ => classify.classify(result),
    }
}

/// The default classifier: `Ok` is a success, `Err` is a failure.
///
/// ```
/// use seawall_core::{Classify, ErrorsAsFailures, Outcome};
///
/// assert_eq!(ErrorsAsFailures.classify(&Ok::<_, ()>(7)), Outcome::Success);
/// assert_eq!(ErrorsAsFailures.classify(&Err::<(), _>("refused")), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorsAsFailures;

impl<Res, E> Classify<Res, E> for ErrorsAsFailures {
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// A [`Classify`] made from a closure; see [`classify_fn`].
#[derive(Clone, Copy)]
pub struct ClassifyFn<F> {
    f: F,
}

impl<F> std::fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassifyFn").finish_non_exhaustive()
    }
}

/// Makes a [`Classify`] from a closure over the call's `Result`.
///
/// ```
/// use seawall_core::{classify_fn, Classify, Outcome};
///
/// // A status-code service where 5xx is a failure and everything else is fine.
/// let classify = classify_fn(|r: &Result<u16, std::io::Error>| match r {
///     Ok(code) if *code >= 500 => Outcome::Failure,
///     Ok(_) => Outcome::Success,
///     Err(_) => Outcome::Failure,
/// });
/// assert_eq!(classify.classify(&Ok(503)), Outcome::Failure);
/// assert_eq!(classify.classify(&Ok(404)), Outcome::Success);
/// ```
pub fn classify_fn<F>(f: F) -> ClassifyFn<F> {
    ClassifyFn { f }
}

impl<F, Res, E> Classify<Res, E> for ClassifyFn<F>
where
    F: Fn(&Result<Res, E>) -> Outcome,
{
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        (self.f)(result)
    }
}

#[cfg(feature = "http")]
mod http_status;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http_status::HttpStatus;

#[cfg(feature = "tonic")]
mod grpc_code;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use grpc_code::GrpcCode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_err_as_failure() {
        assert_eq!(
            ErrorsAsFailures.classify(&Ok::<(), ()>(())),
            Outcome::Success
        );
        assert_eq!(
            ErrorsAsFailures.classify(&Err::<(), ()>(())),
            Outcome::Failure
        );
    }

    #[test]
    fn closures_decide_and_can_ignore() {
        let c = classify_fn(|r: &Result<i32, ()>| match r {
            Ok(0) => Outcome::Ignore,
            Ok(_) => Outcome::Success,
            Err(()) => Outcome::Failure,
        });
        assert_eq!(c.classify(&Ok(0)), Outcome::Ignore);
        assert_eq!(c.classify(&Ok(1)), Outcome::Success);
        assert_eq!(c.classify(&Err(())), Outcome::Failure);
        // Through a reference and an Arc, as layers hold them.
        let by_ref = &c;
        assert_eq!(by_ref.classify(&Err(())), Outcome::Failure);
        assert_eq!(std::sync::Arc::new(c).classify(&Ok(2)), Outcome::Success);
    }

    #[test]
    fn outcome_predicates() {
        assert!(Outcome::Failure.is_failure());
        assert!(!Outcome::Ignore.is_failure());
        assert!(Outcome::Success.is_success());
        assert!(!Outcome::Ignore.is_success());
    }
}

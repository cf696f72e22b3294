//! What a chaos layer injects and where: [`InjectError`], [`InjectOutcome`]
//! and [`Select`], each implemented by closures and by a default.

use seawall_core::BoxError;

use crate::error::Injected;

/// Makes the error a chaos layer injects into a call.
///
/// Implemented for every `Fn(&Req) -> E` where `E: Into<BoxError>` (your own
/// error type, boxed as it is, so your classifiers see it), and by
/// [`Injected`] (the default).
pub trait InjectError<Req> {
    /// The error for `req`.
    fn error(&self, req: &Req) -> BoxError;
}

impl<F, Req, E> InjectError<Req> for F
where
    F: Fn(&Req) -> E,
    E: Into<BoxError>,
{
    fn error(&self, req: &Req) -> BoxError {
        self(req).into()
    }
}

impl<Req> InjectError<Req> for Injected {
    fn error(&self, _: &Req) -> BoxError {
        // A zero-sized value: this `Box` does not allocate.
        Box::new(Injected)
    }
}

/// Makes the response a chaos layer answers with in place of the inner
/// service's (an HTTP 503, an empty list, a stale value).
///
/// Implemented for every `Fn(&Req) -> Res`, and by [`NoOutcome`] (the
/// default: a layer without an outcome cannot have an `outcome_rate`).
pub trait InjectOutcome<Req, Res> {
    /// The response for `req`; `None` injects nothing.
    fn outcome(&self, req: &Req) -> Option<Res>;
}

impl<F, Req, Res> InjectOutcome<Req, Res> for F
where
    F: Fn(&Req) -> Res,
{
    fn outcome(&self, req: &Req) -> Option<Res> {
        Some(self(req))
    }
}

/// The outcome of a layer that was given none: never injects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoOutcome;

impl<Req, Res> InjectOutcome<Req, Res> for NoOutcome {
    fn outcome(&self, _: &Req) -> Option<Res> {
        None
    }
}

/// Which requests a chaos layer may inject into; the others pass through
/// untouched and are not counted.
///
/// Implemented for every `Fn(&Req) -> bool`, and by [`AllRequests`] (the
/// default). Per key: compose a [`KeyFn`](seawall_core::KeyFn) with a test
/// on the key, `move |req: &Req| key_fn.key(req) == "peer-b"`.
pub trait Select<Req> {
    /// Whether faults may be injected into `req`.
    fn select(&self, req: &Req) -> bool;
}

impl<F, Req> Select<Req> for F
where
    F: Fn(&Req) -> bool,
{
    fn select(&self, req: &Req) -> bool {
        self(req)
    }
}

/// Selects every request (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllRequests;

impl<Req> Select<Req> for AllRequests {
    #[inline]
    fn select(&self, _: &Req) -> bool {
        true
    }
}

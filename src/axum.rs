//! Turning seawall rejections into HTTP responses in axum (feature `axum`).
//!
//! seawall layers return `tower::BoxError`; axum needs every error turned into
//! a response by a `HandleErrorLayer`. [`handle_error`] is that function:
//!
//! | error (anywhere in the `source()` chain) | status | body | headers |
//! |------------------------------------------|--------|------|---------|
//! | `CircuitOpen` | 503 Service Unavailable | `circuit open` | `Retry-After` when known |
//! | `Overloaded` | 503 Service Unavailable | `overloaded` | `Retry-After` when known |
//! | `BudgetExhausted` | 429 Too Many Requests | `rate budget exhausted` | `Retry-After` |
//! | `Elapsed` | 504 Gateway Timeout | `timed out` | |
//! | `DeadlineExceeded` | 504 Gateway Timeout | `deadline exceeded` | |
//! | anything else | 500 Internal Server Error | `internal error` | |
//!
//! The body is that fixed text (`text/plain`), never the error's message nor
//! the rejection's key: the message may carry a connection string with its
//! password, and the key is what the request chose. Those details go to a
//! `tracing` event, target `seawall`: at `DEBUG` for a rejection (`kind`,
//! `key`, `retry_after`, `error`), at `WARN` for a 500 (`error`), with control
//! characters escaped.
//!
//! `Retry-After` is in whole seconds, rounded up, at least 1 (a rejection
//! whose `retry_after` is zero or a few microseconds still asks for a second),
//! and at most [`MAX_RETRY_HINT`] (one day, 86400), however long the
//! rejection's `retry_after`.
//!
//! [`RejectionResponse`] does the same as an `IntoResponse` value, for
//! handlers that build their own.
//!
//! The statuses are a choice, not a law: [`StatusMap`] changes any of them
//! (say, 503 for a spent budget, as seawall 0.1 answered, or 429 for
//! a shedder too) and gives the handler that uses them:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, error_handling::HandleErrorLayer, http::StatusCode, routing::get};
//! use seawall::axum::StatusMap;
//! use tower::ServiceBuilder;
//!
//! let statuses = StatusMap::new().overloaded(StatusCode::TOO_MANY_REQUESTS);
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .layer(HandleErrorLayer::new(statuses.handler()))
//!         .timeout(Duration::from_secs(1)), // or any seawall layer
//! );
//! ```
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, error_handling::HandleErrorLayer, routing::get};
//! use tower::ServiceBuilder;
//!
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
//!     ServiceBuilder::new()
//!         .layer(HandleErrorLayer::new(seawall::axum::handle_error))
//!         .timeout(Duration::from_secs(1)), // or any seawall layer
//! );
//! ```

use ::axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::wire;
use crate::{BoxError, Rejection, RejectionKind};

pub use crate::wire::MAX_RETRY_HINT;

#[cfg(feature = "admin")]
mod admin;
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub use admin::{Access, AdminAuth, MAX_ADMIN_BODY, MIN_TOKEN_LEN, admin};
mod ratelimit;
mod route;
#[cfg(feature = "budget")]
mod route_budget;
pub use ratelimit::{
    RATELIMIT, RATELIMIT_POLICY, RateLimitFuture, RateLimitHeaders, RateLimitHeadersLayer,
};
pub use route::{ByRoute, MAX_ROUTE_LEN, MAX_ROUTES, RouteKey};
#[cfg(feature = "budget")]
#[cfg_attr(docsrs, doc(cfg(feature = "budget")))]
pub use route_budget::{ByMethodAndRoute, RouteBudgetLayer, RouteBudgets};

/// Turns any error from a seawall stack into a response; pass it to
/// `HandleErrorLayer::new`. See the [module docs](self) for the mapping, and
/// [`StatusMap`] to change it.
pub async fn handle_error(err: BoxError) -> Response {
    RejectionResponse::from(err).into_response()
}

/// The status each kind of error answers with. The defaults are in the
/// [module docs](self): 503 for an open breaker and a shedder's refusal
/// ("this server cannot take it now"), 429 for a spent rate budget ("you
/// are sending too much"), 504 for a missed deadline, 500 for any error
/// that is not a seawall rejection.
///
/// Bodies and `Retry-After` do not change with the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMap {
    circuit_open: StatusCode,
    overloaded: StatusCode,
    budget_exhausted: StatusCode,
    elapsed: StatusCode,
    deadline_exceeded: StatusCode,
    other: StatusCode,
}

impl Default for StatusMap {
    fn default() -> Self {
        StatusMap {
            circuit_open: StatusCode::SERVICE_UNAVAILABLE,
            overloaded: StatusCode::SERVICE_UNAVAILABLE,
            budget_exhausted: StatusCode::TOO_MANY_REQUESTS,
            elapsed: StatusCode::GATEWAY_TIMEOUT,
            deadline_exceeded: StatusCode::GATEWAY_TIMEOUT,
            other: StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl StatusMap {
    /// The default statuses.
    pub fn new() -> Self {
        Self::default()
    }

    /// The status of a `CircuitOpen` (default 503).
    pub fn circuit_open(mut self, status: StatusCode) -> Self {
        self.circuit_open = status;
        self
    }

    /// The status of an `Overloaded` (default 503).
    pub fn overloaded(mut self, status: StatusCode) -> Self {
        self.overloaded = status;
        self
    }

    /// The status of a `BudgetExhausted` (default 429).
    pub fn budget_exhausted(mut self, status: StatusCode) -> Self {
        self.budget_exhausted = status;
        self
    }

    /// The status of an `Elapsed` (default 504).
    pub fn elapsed(mut self, status: StatusCode) -> Self {
        self.elapsed = status;
        self
    }

    /// The status of a `DeadlineExceeded`: the caller's own deadline passed
    /// (default 504).
    pub fn deadline_exceeded(mut self, status: StatusCode) -> Self {
        self.deadline_exceeded = status;
        self
    }

    /// The status of an error that is not a seawall rejection (default 500).
    pub fn other(mut self, status: StatusCode) -> Self {
        self.other = status;
        self
    }

    /// The status of `kind`; `None` is an error that is not a rejection.
    pub fn status(&self, kind: Option<RejectionKind>) -> StatusCode {
        match kind {
            Some(RejectionKind::CircuitOpen) => self.circuit_open,
            Some(RejectionKind::Overloaded) => self.overloaded,
            Some(RejectionKind::BudgetExhausted) => self.budget_exhausted,
            Some(RejectionKind::Elapsed) => self.elapsed,
            Some(RejectionKind::DeadlineExceeded) => self.deadline_exceeded,
            // A kind this version does not know yet: "cannot take it now".
            Some(_) => self.overloaded,
            None => self.other,
        }
    }

    /// `err` as a response with these statuses.
    pub fn respond(&self, err: BoxError) -> Response {
        RejectionResponse::from(err).into_response_with(self)
    }

    /// The error handler for `HandleErrorLayer::new` that answers with
    /// these statuses.
    pub fn handler(
        self,
    ) -> impl Fn(BoxError) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
        move |err| std::future::ready(self.respond(err))
    }
}

/// An error from a seawall stack, as a response. See the [module docs](self).
///
/// Its `Debug` shows the error it holds: keep it out of responses (its
/// `IntoResponse` does).
#[derive(Debug)]
pub struct RejectionResponse(pub BoxError);

impl From<BoxError> for RejectionResponse {
    fn from(err: BoxError) -> Self {
        RejectionResponse(err)
    }
}

impl RejectionResponse {
    fn kind(&self) -> Option<RejectionKind> {
        Rejection::find(&*self.0).map(|r| r.kind())
    }

    /// The status this error maps to with the default [`StatusMap`].
    pub fn status(&self) -> StatusCode {
        StatusMap::default().status(self.kind())
    }

    /// The body: a fixed text per kind of error (see the [module docs](self)).
    pub fn body(&self) -> &'static str {
        wire::client_text(self.kind())
    }

    /// The `Retry-After` value when the rejection says when to come back:
    /// whole seconds rounded up, from 1 to [`MAX_RETRY_HINT`] (86400).
    pub fn retry_after(&self) -> Option<u64> {
        let rejection = Rejection::find(&*self.0)?;
        if rejection.kind() == RejectionKind::Elapsed {
            return None;
        }
        rejection.retry_after().map(wire::hint_secs)
    }
}

impl RejectionResponse {
    /// The response, with the statuses of `statuses`.
    pub fn into_response_with(self, statuses: &StatusMap) -> Response {
        match Rejection::find(&*self.0) {
            Some(rejection) => wire::report_rejection(&*self.0, rejection),
            None => wire::report_failure(&*self.0),
        }
        let mut res = (statuses.status(self.kind()), self.body()).into_response();
        if let Some(secs) = self.retry_after() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl IntoResponse for RejectionResponse {
    fn into_response(self) -> Response {
        self.into_response_with(&StatusMap::default())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::OverloadReason;
    use crate::wire::capture;
    use crate::{BudgetExhausted, CircuitOpen, Elapsed, Overloaded};

    fn respond(err: BoxError) -> Response {
        RejectionResponse::from(err).into_response()
    }

    fn retry_after(res: &Response) -> Option<&str> {
        res.headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap())
    }

    /// The body of `res`, which `respond` built from a `&'static str`.
    fn body(res: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(::axum::body::to_bytes(res.into_body(), 1024))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn each_kind_maps_to_its_status_and_text() {
        let res = respond(CircuitOpen::new(Some(Duration::from_millis(1500))).into());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), Some("2"));
        assert_eq!(body(res), "circuit open");

        let res = respond(
            Overloaded::new(OverloadReason::HardLimit)
                .with_retry_after(Duration::from_secs(1))
                .into(),
        );
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), Some("1"));
        assert_eq!(body(res), "overloaded");

        let res = respond(Overloaded::new(OverloadReason::Probabilistic).into());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), None);

        let res = respond(BudgetExhausted::new(Duration::from_millis(1)).into());
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&res), Some("1"));
        assert_eq!(body(res), "rate budget exhausted");

        let res = respond(Elapsed::new(Duration::from_secs(3)).into());
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(retry_after(&res), None);
        assert_eq!(body(res), "timed out");

        let res = respond(crate::core::DeadlineExceeded::new(Duration::ZERO).into());
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(retry_after(&res), None);
        assert_eq!(body(res), "deadline exceeded");

        let res = respond("database on fire".into());
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after(&res), None);
        assert_eq!(body(res), "internal error");
    }

    #[test]
    fn a_status_map_changes_only_the_statuses() {
        let statuses = StatusMap::new()
            .budget_exhausted(StatusCode::SERVICE_UNAVAILABLE)
            .overloaded(StatusCode::TOO_MANY_REQUESTS)
            .circuit_open(StatusCode::BAD_GATEWAY)
            .elapsed(StatusCode::REQUEST_TIMEOUT)
            .other(StatusCode::BAD_GATEWAY);
        let res = statuses.respond(BudgetExhausted::new(Duration::from_secs(2)).into());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), Some("2"));
        assert_eq!(body(res), "rate budget exhausted");
        let res = statuses.respond(Overloaded::new(OverloadReason::HardLimit).into());
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let res = statuses.respond(CircuitOpen::new(None).into());
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        let res = statuses.respond(Elapsed::new(Duration::from_secs(1)).into());
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        let res = StatusMap::new()
            .deadline_exceeded(StatusCode::REQUEST_TIMEOUT)
            .respond(crate::core::DeadlineExceeded::new(Duration::ZERO).into());
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        let res = statuses.respond("boom".into());
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(body(res), "internal error");

        let handler = statuses.handler();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt.block_on(handler(BudgetExhausted::new(Duration::ZERO).into()));
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(StatusMap::default(), StatusMap::new());
    }

    #[test]
    fn an_error_message_goes_to_the_log_not_the_body() {
        let (res, events) =
            capture::events(|| respond("connect to db://svc:pw@10.1.2.3 failed".into()));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            res.headers()
                .values()
                .all(|v| !v.as_bytes().windows(2).any(|w| w == b"pw"))
        );
        assert_eq!(body(res), "internal error");
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].starts_with("WARN"), "{events:?}");
        assert!(
            events[0].contains("connect to db://svc:pw@10.1.2.3 failed"),
            "{events:?}"
        );
    }

    #[test]
    fn a_key_goes_to_the_log_escaped_not_to_the_response() {
        let key = "tenant\r\nSet-Cookie: x";
        let (res, events) = capture::events(|| {
            respond(
                BudgetExhausted::new(Duration::from_millis(10))
                    .with_key(key)
                    .into(),
            )
        });
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        for (name, value) in res.headers() {
            let value = value.to_str().unwrap();
            assert!(
                !value.contains("tenant") && !value.contains("Set-Cookie"),
                "{name}: {value}"
            );
        }
        let text = body(res);
        assert_eq!(text, "rate budget exhausted");
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert!(event.starts_with("DEBUG"), "{event}");
        assert!(event.contains("kind=\"budget_exhausted\""), "{event}");
        // Present, with CR and LF escaped: no forged log line.
        assert!(event.contains("key=tenant\\r\\nSet-Cookie: x"), "{event}");
        assert!(!event.contains('\r') && !event.contains('\n'), "{event}");
    }

    #[test]
    fn retry_after_is_never_zero_nor_unbounded() {
        let cases = [
            (Duration::ZERO, "1"),
            (Duration::from_micros(400), "1"),
            (Duration::from_millis(1500), "2"),
            (Duration::from_secs(3600), "3600"),
            (Duration::from_secs(86_400), "86400"),
            (Duration::from_secs(86_401), "86400"),
            (Duration::from_secs(u64::MAX), "86400"),
            (Duration::MAX, "86400"),
        ];
        for (after, header) in cases {
            let res = respond(CircuitOpen::new(Some(after)).into());
            assert_eq!(retry_after(&res), Some(header), "{after:?}");
            let res = respond(BudgetExhausted::new(after).into());
            assert_eq!(retry_after(&res), Some(header), "{after:?}");
            let res = respond(
                Overloaded::new(OverloadReason::HardLimit)
                    .with_retry_after(after)
                    .into(),
            );
            assert_eq!(retry_after(&res), Some(header), "{after:?}");
        }
        assert_eq!(
            RejectionResponse::from(BoxError::from(CircuitOpen::new(Some(Duration::ZERO))))
                .retry_after(),
            Some(1)
        );
    }
}

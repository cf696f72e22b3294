//! Turning seawall rejections into HTTP responses in axum (feature `axum`).
//!
//! seawall layers return `tower::BoxError`; axum needs every error turned into
//! a response by a `HandleErrorLayer`. [`handle_error`] is that function:
//!
//! | error (anywhere in the `source()` chain) | status | body | headers |
//! |------------------------------------------|--------|------|---------|
//! | `CircuitOpen` | 503 Service Unavailable | `circuit open` | `Retry-After` when known |
//! | `Overloaded` | 503 Service Unavailable | `overloaded` | `Retry-After` when known |
//! | `BudgetExhausted` | 503 Service Unavailable | `rate budget exhausted` | `Retry-After` |
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

/// Turns any error from a seawall stack into a response; pass it to
/// `HandleErrorLayer::new`. See the [module docs](self) for the mapping.
pub async fn handle_error(err: BoxError) -> Response {
    RejectionResponse::from(err).into_response()
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

    /// The status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self.kind() {
            Some(RejectionKind::Elapsed | RejectionKind::DeadlineExceeded) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Some(_) => StatusCode::SERVICE_UNAVAILABLE,
            None => StatusCode::INTERNAL_SERVER_ERROR,
        }
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

impl IntoResponse for RejectionResponse {
    fn into_response(self) -> Response {
        match Rejection::find(&*self.0) {
            Some(rejection) => wire::report_rejection(&*self.0, rejection),
            None => wire::report_failure(&*self.0),
        }
        let mut res = (self.status(), self.body()).into_response();
        if let Some(secs) = self.retry_after() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
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
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
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
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
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

//! Turning seawall rejections into HTTP responses in axum (feature `axum`).
//!
//! seawall layers return `tower::BoxError`; axum needs every error turned into
//! a response by a `HandleErrorLayer`. [`handle_error`] is that function:
//!
//! | error (anywhere in the `source()` chain) | status | headers |
//! |------------------------------------------|--------|---------|
//! | `CircuitOpen`, `Overloaded`, `BudgetExhausted` | 503 Service Unavailable | `Retry-After` (whole seconds, rounded up) when known |
//! | `Elapsed` | 504 Gateway Timeout | |
//! | anything else | 500 Internal Server Error | |
//!
//! The body is the error's message as plain text. [`RejectionResponse`] does
//! the same as an `IntoResponse` value, for handlers that build their own.
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

use std::time::Duration;

use ::axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::{BoxError, Rejection, RejectionKind};

/// Turns any error from a seawall stack into a response; pass it to
/// `HandleErrorLayer::new`. See the [module docs](self) for the mapping.
pub async fn handle_error(err: BoxError) -> Response {
    RejectionResponse::from(err).into_response()
}

/// An error from a seawall stack, as a response. See the [module docs](self).
#[derive(Debug)]
pub struct RejectionResponse(pub BoxError);

impl From<BoxError> for RejectionResponse {
    fn from(err: BoxError) -> Self {
        RejectionResponse(err)
    }
}

impl RejectionResponse {
    /// The status this error maps to.
    pub fn status(&self) -> StatusCode {
        match Rejection::find(&*self.0).map(|r| r.kind()) {
            Some(RejectionKind::Elapsed) => StatusCode::GATEWAY_TIMEOUT,
            Some(_) => StatusCode::SERVICE_UNAVAILABLE,
            None => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Retry-After` value, in whole seconds rounded up, when the
    /// rejection says when to come back.
    pub fn retry_after(&self) -> Option<u64> {
        let rejection = Rejection::find(&*self.0)?;
        if rejection.kind() == RejectionKind::Elapsed {
            return None;
        }
        rejection.retry_after().map(ceil_secs)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl IntoResponse for RejectionResponse {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after();
        let mut res = (status, self.0.to_string()).into_response();
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::OverloadReason;
    use crate::{BudgetExhausted, CircuitOpen, Elapsed, Overloaded};

    fn respond(err: BoxError) -> Response {
        RejectionResponse::from(err).into_response()
    }

    fn retry_after(res: &Response) -> Option<&str> {
        res.headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap())
    }

    #[test]
    fn each_kind_maps_to_its_status() {
        let res = respond(CircuitOpen::new(Some(Duration::from_millis(1500))).into());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), Some("2"));

        let res = respond(
            Overloaded::new(OverloadReason::HardLimit)
                .with_retry_after(Duration::from_secs(1))
                .into(),
        );
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), Some("1"));

        let res = respond(Overloaded::new(OverloadReason::Probabilistic).into());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), None);

        let res = respond(BudgetExhausted::new(Duration::from_millis(1)).into());
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(&res), Some("1"));

        let res = respond(Elapsed::new(Duration::from_secs(3)).into());
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(retry_after(&res), None);

        let res = respond("database on fire".into());
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after(&res), None);
    }

    #[test]
    fn whole_seconds_round_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_nanos(2_000_000_001)), 3);
    }
}

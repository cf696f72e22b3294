//! What counts as a failure, what a peer asked for, and how a request is
//! copied: [`ResponseStatus`], [`ResponseHint`], [`TryClone`].

use http::StatusCode;
use reqwest::{Request, Response};
use seawall_core::classify::HttpStatus;
use seawall_core::clone::CloneFn;
use seawall_core::{BoxError, Classify, Outcome};
use seawall_retry::hint::{Hint, HttpHint, RetryHint};

/// Classifies `reqwest::Response`s by status code, with seawall-core's
/// [`HttpStatus`] table: by default `5xx` and `429 Too Many Requests` are
/// failures, every other status a success, and an `Err` (a connection
/// refused or reset, a timeout) a failure.
///
/// ```
/// use http::StatusCode;
/// use seawall_core::Outcome;
/// use seawall_reqwest::ResponseStatus;
///
/// let classify = ResponseStatus::new().not_failure(StatusCode::NOT_IMPLEMENTED);
/// assert_eq!(classify.outcome(StatusCode::SERVICE_UNAVAILABLE), Outcome::Failure);
/// assert_eq!(classify.outcome(StatusCode::TOO_MANY_REQUESTS), Outcome::Failure);
/// assert_eq!(classify.outcome(StatusCode::NOT_IMPLEMENTED), Outcome::Success);
/// assert_eq!(classify.outcome(StatusCode::NOT_FOUND), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResponseStatus(HttpStatus);

impl ResponseStatus {
    /// `5xx` and `429` are failures; everything else is a success.
    pub fn new() -> Self {
        ResponseStatus(HttpStatus::new())
    }

    /// Counts `code` as a failure.
    pub fn failure(self, code: StatusCode) -> Self {
        ResponseStatus(self.0.failure(code))
    }

    /// Counts `code` as a success.
    pub fn not_failure(self, code: StatusCode) -> Self {
        ResponseStatus(self.0.not_failure(code))
    }

    /// Counts `code` as neither a success nor a failure.
    pub fn ignore(self, code: StatusCode) -> Self {
        ResponseStatus(self.0.ignore(code))
    }

    /// The outcome of a response with this status.
    pub fn outcome(&self, code: StatusCode) -> Outcome {
        self.0.outcome(code)
    }
}

impl From<HttpStatus> for ResponseStatus {
    fn from(table: HttpStatus) -> Self {
        ResponseStatus(table)
    }
}

impl<E> Classify<Response, E> for ResponseStatus {
    #[inline]
    fn classify(&self, result: &Result<Response, E>) -> Outcome {
        match result {
            Ok(res) => self.0.outcome(res.status()),
            Err(_) => Outcome::Failure,
        }
    }
}

/// Reads the retry hint of a failed `reqwest::Response` with seawall-retry's
/// [`HttpHint`]: `Retry-After` (seconds or a date), the IETF `RateLimit`
/// field's reset, `RateLimit-Reset` / `X-RateLimit-Reset` once their quota
/// is spent; bounded to a day, and parsed defensively. Errors carry no hint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseHint;

impl RetryHint<Response> for ResponseHint {
    fn hint(&self, result: &Result<Response, BoxError>) -> Hint {
        match result {
            Ok(res) => HttpHint::read(res.headers()),
            Err(_) => Hint::None,
        }
    }
}

/// How the retry and the fallback copy a request before sending it:
/// `reqwest::Request::try_clone`, which is `None` for a streaming body. Such
/// a request is sent once: never retried, and never handed to the fallback.
pub type TryClone = CloneFn<fn(&Request) -> Option<Request>>;

#[cfg(test)]
mod tests {
    use super::*;
    use seawall_core::clone::CloneRequest;

    fn try_clone() -> TryClone {
        CloneFn::new(Request::try_clone as fn(&Request) -> Option<Request>)
    }
    use std::time::Duration;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        Response::from(b.body("").unwrap())
    }

    #[test]
    fn five_hundreds_and_429_fail_by_default() {
        let c = ResponseStatus::new();
        let judge = |s| Classify::<Response, ()>::classify(&c, &Ok(response(s, &[])));
        assert_eq!(judge(200), Outcome::Success);
        assert_eq!(judge(404), Outcome::Success);
        assert_eq!(judge(429), Outcome::Failure);
        assert_eq!(judge(500), Outcome::Failure);
        assert_eq!(judge(503), Outcome::Failure);
        assert_eq!(
            Classify::<Response, &str>::classify(&c, &Err("reset")),
            Outcome::Failure
        );
        assert_eq!(
            ResponseStatus::from(HttpStatus::new().ignore(StatusCode::NOT_FOUND))
                .outcome(StatusCode::NOT_FOUND),
            Outcome::Ignore
        );
    }

    #[test]
    fn hints_come_from_the_headers() {
        let res = response(429, &[("retry-after", "2")]);
        assert_eq!(
            ResponseHint.hint(&Ok(res)),
            Hint::After(Duration::from_secs(2))
        );
        let res = response(503, &[("retry-after", "soon, maybe")]);
        assert_eq!(ResponseHint.hint(&Ok(res)), Hint::None);
        assert_eq!(ResponseHint.hint(&Err("reset".into())), Hint::None);
    }

    #[test]
    fn a_streaming_body_is_not_copied() {
        let url: reqwest::Url = "http://127.0.0.1:1/".parse().unwrap();
        let mut req = Request::new(reqwest::Method::POST, url);
        *req.body_mut() = Some(reqwest::Body::from("buffered"));
        assert!(try_clone().clone_request(&req).is_some());
        *req.body_mut() = Some(reqwest::Body::wrap(String::from("streamed")));
        assert!(try_clone().clone_request(&req).is_none());
    }
}

use tonic::Code;

use super::{Classify, Outcome};

/// Classifies gRPC results by status code.
///
/// Codes that speak of the server's health are failures by default:
/// `Unknown`, `DeadlineExceeded`, `ResourceExhausted`, `Internal`,
/// `Unavailable` and `DataLoss`. `Cancelled` is ignored (the caller gave up).
/// Every other code — `Ok`, and the caller's own mistakes such as
/// `InvalidArgument`, `NotFound` or `PermissionDenied` — is a success: the
/// server answered.
///
/// It classifies `Result<tonic::Response<T>, tonic::Status>` (a tonic client
/// or server method), `Result<tonic::Response<T>, BoxError>` (the same
/// under seawall layers, which box errors: the first `Status` in the error's
/// `source()` chain decides, and an error without one, a rejection or a
/// transport error, is a failure) and `Result<http::Response<B>, E>` (the tower service
/// under a tonic `Channel`), where it reads the `grpc-status` header of a
/// trailers-only response. A status sent in the trailers of a streamed body
/// is not visible when the response head arrives, so such a response counts
/// as a success; classify at the tonic level to see those.
///
/// ```
/// use seawall_core::{Classify, Outcome};
/// use seawall_core::classify::GrpcCode;
/// use tonic::{Code, Status};
///
/// let classify = GrpcCode::new().not_failure(Code::ResourceExhausted);
/// let err = |code| Err::<tonic::Response<()>, _>(Status::new(code, "boom"));
/// assert_eq!(classify.classify(&err(Code::Unavailable)), Outcome::Failure);
/// assert_eq!(classify.classify(&err(Code::NotFound)), Outcome::Success);
/// assert_eq!(classify.classify(&err(Code::ResourceExhausted)), Outcome::Success);
/// assert_eq!(classify.classify(&err(Code::Cancelled)), Outcome::Ignore);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcCode {
    failure: u32,
    ignore: u32,
}

impl Default for GrpcCode {
    fn default() -> Self {
        Self::new()
    }
}

fn bit(code: Code) -> u32 {
    // Codes are 0..=16; tonic maps anything else to `Unknown` (2).
    1 << (code as i32 as u32 & 31)
}

impl GrpcCode {
    /// The default sets described on the type.
    pub fn new() -> Self {
        let failure = [
            Code::Unknown,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
        ]
        .into_iter()
        .fold(0, |acc, c| acc | bit(c));
        GrpcCode {
            failure,
            ignore: bit(Code::Cancelled),
        }
    }

    /// Counts `code` as a failure.
    pub fn failure(mut self, code: Code) -> Self {
        self.failure |= bit(code);
        self.ignore &= !bit(code);
        self
    }

    /// Counts `code` as a success.
    pub fn not_failure(mut self, code: Code) -> Self {
        self.failure &= !bit(code);
        self.ignore &= !bit(code);
        self
    }

    /// Counts `code` as neither a success nor a failure.
    pub fn ignore(mut self, code: Code) -> Self {
        self.failure &= !bit(code);
        self.ignore |= bit(code);
        self
    }

    /// The outcome of a call that ended with `code`.
    pub fn outcome(&self, code: Code) -> Outcome {
        if self.failure & bit(code) != 0 {
            Outcome::Failure
        } else if self.ignore & bit(code) != 0 {
            Outcome::Ignore
        } else {
            Outcome::Success
        }
    }
}

impl<T> Classify<tonic::Response<T>, tonic::Status> for GrpcCode {
    fn classify(&self, result: &Result<tonic::Response<T>, tonic::Status>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(status) => self.outcome(status.code()),
        }
    }
}

impl<T> Classify<tonic::Response<T>, crate::BoxError> for GrpcCode {
    fn classify(&self, result: &Result<tonic::Response<T>, crate::BoxError>) -> Outcome {
        let Err(err) = result else {
            return Outcome::Success;
        };
        let mut next = Some(&**err as &(dyn std::error::Error + 'static));
        while let Some(e) = next {
            if let Some(status) = e.downcast_ref::<tonic::Status>() {
                return self.outcome(status.code());
            }
            next = e.source();
        }
        Outcome::Failure
    }
}

impl<B, E> Classify<http::Response<B>, E> for GrpcCode {
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        match result {
            Err(_) => Outcome::Failure,
            Ok(res) => match res.headers().get("grpc-status") {
                Some(v) => {
                    let code = v
                        .to_str()
                        .ok()
                        .and_then(|s| s.parse::<i32>().ok())
                        .map(Code::from)
                        .unwrap_or(Code::Unknown);
                    self.outcome(code)
                }
                None if res.status().is_server_error() => Outcome::Failure,
                None => Outcome::Success,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_with(status: Option<&str>) -> Result<http::Response<()>, ()> {
        let mut b = http::Response::builder();
        if let Some(s) = status {
            b = b.header("grpc-status", s);
        }
        Ok(b.body(()).unwrap())
    }

    #[test]
    fn default_sets() {
        let c = GrpcCode::new();
        for i in 0..=16 {
            let code = Code::from(i);
            let want = match code {
                Code::Unknown
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss => Outcome::Failure,
                Code::Cancelled => Outcome::Ignore,
                _ => Outcome::Success,
            };
            assert_eq!(c.outcome(code), want, "{code:?}");
        }
    }

    #[test]
    fn reads_trailers_only_http_responses() {
        let c = GrpcCode::new();
        assert_eq!(c.classify(&http_with(None)), Outcome::Success);
        assert_eq!(c.classify(&http_with(Some("0"))), Outcome::Success);
        assert_eq!(c.classify(&http_with(Some("14"))), Outcome::Failure);
        assert_eq!(c.classify(&http_with(Some("5"))), Outcome::Success);
        // Garbage is `Unknown`, a failure.
        assert_eq!(c.classify(&http_with(Some("x"))), Outcome::Failure);
        let transport: Result<http::Response<()>, ()> = Err(());
        assert_eq!(c.classify(&transport), Outcome::Failure);
    }

    #[test]
    fn a_boxed_status_is_classified_by_its_code() {
        #[derive(Debug)]
        struct Wrapper(tonic::Status);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let c = GrpcCode::new();
        let boxed = |e: crate::BoxError| Err::<tonic::Response<()>, _>(e);
        let status = |code| tonic::Status::new(code, "x");
        assert_eq!(
            c.classify(&boxed(status(Code::Unavailable).into())),
            Outcome::Failure
        );
        assert_eq!(
            c.classify(&boxed(status(Code::NotFound).into())),
            Outcome::Success
        );
        assert_eq!(
            c.classify(&boxed(status(Code::Cancelled).into())),
            Outcome::Ignore
        );
        let wrapped = Box::new(Wrapper(status(Code::NotFound)));
        assert_eq!(c.classify(&boxed(wrapped)), Outcome::Success);
        assert_eq!(
            c.classify(&boxed("connection reset".into())),
            Outcome::Failure
        );
        let ok: Result<tonic::Response<()>, crate::BoxError> = Ok(tonic::Response::new(()));
        assert_eq!(c.classify(&ok), Outcome::Success);
    }

    #[test]
    fn ok_tonic_response_is_success() {
        let r: Result<tonic::Response<()>, tonic::Status> = Ok(tonic::Response::new(()));
        assert_eq!(GrpcCode::new().classify(&r), Outcome::Success);
    }
}

//! [`GrpcHint`]: `grpc-retry-pushback-ms` (gRFC A6).

use std::error::Error;
use std::time::Duration;

use http::HeaderMap;
use seawall_core::BoxError;
use tonic::Status;

use super::{Hint, RetryHint, digits, trim};

/// The metadata key of a gRPC server's retry pushback (gRFC A6).
const PUSHBACK: &str = "grpc-retry-pushback-ms";

/// Reads gRPC's `grpc-retry-pushback-ms` (feature `tonic`), as gRFC A6
/// defines it.
///
/// - absent: [`Hint::None`], the backoff decides;
/// - one non-negative decimal integer of milliseconds: [`Hint::After`] that
///   long (at most [`MAX_HINT`](super::MAX_HINT));
/// - negative, malformed (empty, a sign, spaces inside, non-digits,
///   non-ASCII, a number past `u64`), or present more than once:
///   [`Hint::DoNotRetry`], the server asked not to retry (as grpc-go reads
///   it).
///
/// It reads the metadata of a `tonic::Status` error, found anywhere in the
/// error's `source()` chain (a layer above the client may have wrapped it);
/// the headers of an `http::Response` (the tower service under a tonic
/// `Channel`, where a status sent with no message is a trailers-only
/// response whose status and pushback are in the headers); and the metadata
/// of a `tonic::Response` a classifier called a failure.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::BoxError;
/// use seawall_retry::hint::{GrpcHint, Hint, RetryHint};
/// use tonic::Status;
///
/// let mut status = Status::unavailable("busy");
/// status.metadata_mut().insert("grpc-retry-pushback-ms", "250".parse().unwrap());
/// let result: Result<tonic::Response<()>, BoxError> = Err(status.into());
/// assert_eq!(GrpcHint::new().hint(&result), Hint::After(Duration::from_millis(250)));
///
/// let mut status = Status::unavailable("go away");
/// status.metadata_mut().insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
/// assert_eq!(GrpcHint::read_status(&status), Hint::DoNotRetry);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrpcHint;

impl GrpcHint {
    /// The reader.
    pub fn new() -> Self {
        GrpcHint
    }

    /// The pushback in `headers` (or a `MetadataMap`'s, through
    /// `AsRef<HeaderMap>`).
    pub fn read(headers: &HeaderMap) -> Hint {
        let mut values = headers.get_all(PUSHBACK).iter();
        match (values.next(), values.next()) {
            (None, _) => Hint::None,
            (Some(value), None) => match digits(trim(value.as_bytes())) {
                Some(ms) if ms < u64::MAX => Hint::after(Duration::from_millis(ms)),
                // Past u64 (saturated), negative or not a number.
                _ => Hint::DoNotRetry,
            },
            (Some(_), Some(_)) => Hint::DoNotRetry,
        }
    }

    /// The pushback in `status`'s metadata.
    pub fn read_status(status: &Status) -> Hint {
        Self::read(status.metadata().as_ref())
    }

    /// The pushback of the first `tonic::Status` in `err`'s `source()`
    /// chain; [`Hint::None`] without one.
    pub fn read_error(err: &(dyn Error + 'static)) -> Hint {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(status) = e.downcast_ref::<Status>() {
                return Self::read_status(status);
            }
            next = e.source();
        }
        Hint::None
    }
}

impl<B> RetryHint<http::Response<B>> for GrpcHint {
    fn hint(&self, result: &Result<http::Response<B>, BoxError>) -> Hint {
        match result {
            Ok(response) => Self::read(response.headers()),
            Err(e) => Self::read_error(&**e),
        }
    }
}

impl<T> RetryHint<tonic::Response<T>> for GrpcHint {
    fn hint(&self, result: &Result<tonic::Response<T>, BoxError>) -> Hint {
        match result {
            Ok(response) => Self::read(response.metadata().as_ref()),
            Err(e) => Self::read_error(&**e),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;
    use crate::hint::MAX_HINT;

    fn pushback(values: &[&[u8]]) -> Hint {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(PUSHBACK, HeaderValue::from_bytes(v).unwrap());
        }
        GrpcHint::read(&h)
    }

    #[test]
    fn pushback_as_grfc_a6_reads_it() {
        let ms = Duration::from_millis;
        assert_eq!(pushback(&[]), Hint::None);
        assert_eq!(pushback(&[b"0"]), Hint::After(ms(0)));
        assert_eq!(pushback(&[b"250"]), Hint::After(ms(250)));
        assert_eq!(pushback(&[b" 250 "]), Hint::After(ms(250)));
        assert_eq!(pushback(&[b"86400000"]), Hint::After(MAX_HINT));
        assert_eq!(pushback(&[b"9223372036854775807"]), Hint::After(MAX_HINT));
        for bad in [
            &b""[..],
            b"-1",
            b"-0",
            b"+5",
            b"1 0",
            b"1.5",
            b"ten",
            b"\xff",
            b"99999999999999999999999",
        ] {
            assert_eq!(pushback(&[bad]), Hint::DoNotRetry, "{bad:?}");
        }
        assert_eq!(pushback(&[b"5", b"5"]), Hint::DoNotRetry, "several values");
    }

    #[test]
    fn a_status_is_found_under_wrappers() {
        #[derive(Debug)]
        struct Wrapper(Status);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let mut status = Status::unavailable("busy");
        status
            .metadata_mut()
            .insert(PUSHBACK, "40".parse().unwrap());
        let err: BoxError = Box::new(Wrapper(status));
        let result: Result<http::Response<()>, BoxError> = Err(err);
        assert_eq!(
            GrpcHint.hint(&result),
            Hint::After(Duration::from_millis(40))
        );
        let plain: Result<http::Response<()>, BoxError> = Err("io".into());
        assert_eq!(GrpcHint.hint(&plain), Hint::None);
        let mut response = http::Response::new(());
        response
            .headers_mut()
            .insert(PUSHBACK, HeaderValue::from_static("-5"));
        assert_eq!(GrpcHint.hint(&Ok(response)), Hint::DoNotRetry);
    }

    proptest! {
        #[test]
        fn hostile_pushback_never_panics_and_stays_bounded(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4),
        ) {
            let mut h = HeaderMap::new();
            for v in &values {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.append(PUSHBACK, v);
                }
            }
            if let Hint::After(d) = GrpcHint::read(&h) {
                prop_assert!(d <= MAX_HINT);
            }
        }
    }
}

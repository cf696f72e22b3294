//! Turning seawall rejections into gRPC statuses (feature `tonic`).
//!
//! | error (anywhere in the `source()` chain) | `tonic::Code` | message |
//! |------------------------------------------|---------------|---------|
//! | `CircuitOpen` | `Unavailable` | `circuit open` |
//! | `Overloaded` | `Unavailable` | `overloaded` |
//! | `BudgetExhausted` | `ResourceExhausted` | `rate budget exhausted` |
//! | `Elapsed` | `DeadlineExceeded` | `timed out` |
//! | `DeadlineExceeded` | `DeadlineExceeded` | `deadline exceeded` |
//! | a `tonic::Status` | that status, unchanged | its own |
//! | anything else that tonic maps to a code (`Status::from_error`: an h2 or connection error) | that code | the code's description |
//! | anything else | `Unknown` | `internal error` |
//!
//! A status message goes to the remote client, so it is a fixed text per
//! kind and never the error's message or the rejection's key: the message
//! may carry a connection string with its password, and the key is what the
//! request chose. The details go to a `tracing` event, target `seawall`: at
//! `DEBUG` for a rejection (`kind`, `key`, `retry_after`, `error`) and for an
//! error tonic maps to a transport code (a peer that is down fails every call;
//! the breaker reports it once), at `WARN` for `Unknown` (`error`), with
//! control characters escaped. A `tonic::Status` found in the chain, on top
//! or wrapped (by a retry layer that gave up, say), keeps its code and
//! message: it was written for a client, by your service or the peer.
//!
//! When the rejection says when to come back, the status carries it in the
//! `grpc-retry-pushback-ms` metadata key, which gRPC clients with a retry
//! policy honour (gRFC A6): whole milliseconds, rounded up, at least 1 (a
//! pushback of 0 would send the client straight back), and at most
//! [`MAX_RETRY_HINT`] (one day, 86400000), which keeps it within the signed
//! 32-bit number clients parse. The original error stays the status's
//! `source()`, so [`Rejection::find`] still recognises a rejection inside the
//! status in the same process (a seawall retry layer above a tonic client
//! does): only its code, message and metadata cross the wire.
//!
//! # Where to call it
//!
//! - **Server**: tonic turns a layer's error into a response only when it is
//!   a `tonic::Status`; any other error resets the stream. Put
//!   `.map_err(seawall::tonic::to_status)` above the seawall layers given
//!   to `Server::builder().layer(..)`.
//! - **Client**: tonic turns a transport error into `Code::Unknown` unless it
//!   is a `Status`. Put `.map_err(seawall::tonic::to_status)` on top of the
//!   stack that wraps the `Channel`, so a rejection reaches the caller as
//!   `Unavailable`, `ResourceExhausted` or `DeadlineExceeded` with its
//!   pushback.
//!
//! ```
//! use std::time::Duration;
//! use seawall::{BoxError, CircuitOpen};
//!
//! let err: BoxError = CircuitOpen::new(Some(Duration::from_millis(250))).with_key("db-2").into();
//! let status = seawall::tonic::to_status(err);
//! assert_eq!(status.code(), tonic::Code::Unavailable);
//! assert_eq!(status.message(), "circuit open");
//! assert_eq!(status.metadata().get("grpc-retry-pushback-ms").unwrap(), "250");
//! ```
//!
//! For classifying gRPC results (which codes count as failures for the
//! breaker and retry layers), see `seawall::core::classify::GrpcCode`.
//!
//! # A client stack from a config file
//!
//! With feature `serde`, `ClientConfig::build_grpc(key_fn)` (in
//! `seawall::config`) builds the whole client stack for a tonic client:
//! retry → breaker → adaptive timeout → budget, classifying with `GrpcCode`
//! and retrying as the server's `grpc-retry-pushback-ms` asks (at least that
//! long; a negative or malformed pushback stops the retries; a pushback past
//! the retry deadline ends them at once). Put it **above** the generated
//! client, where a request is a message the retry can send again, and map
//! its errors with [`to_status`] for the caller.

use std::error::Error;
use std::sync::Arc;

use ::tonic::{Code, Status, metadata::MetadataValue};

use crate::wire;
use crate::{BoxError, Rejection, RejectionKind};

pub use crate::wire::MAX_RETRY_HINT;

/// The metadata key that carries a rejection's `retry_after`, in milliseconds.
pub const RETRY_PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

/// Turns any error from a seawall stack into a `tonic::Status`. See the
/// [module docs](self) for the mapping.
pub fn to_status(err: BoxError) -> Status {
    // Already a status (mapped lower in the stack, or from the server): unchanged.
    let err = match err.downcast::<Status>() {
        Ok(status) => return *status,
        Err(err) => err,
    };
    let Some(rejection) = Rejection::find(&*err) else {
        return failure(err);
    };
    wire::report_rejection(&*err, rejection);
    let kind = rejection.kind();
    let code = match kind {
        RejectionKind::CircuitOpen | RejectionKind::Overloaded => Code::Unavailable,
        RejectionKind::BudgetExhausted => Code::ResourceExhausted,
        RejectionKind::Elapsed | RejectionKind::DeadlineExceeded => Code::DeadlineExceeded,
        _ => Code::Unavailable,
    };
    let mut status = Status::new(code, wire::client_text(Some(kind)));
    if let Some(after) = rejection.retry_after() {
        status.metadata_mut().insert(
            RETRY_PUSHBACK_KEY,
            MetadataValue::from(wire::hint_millis(after)),
        );
    }
    status.set_source(Arc::from(err));
    status
}

/// An error that is not a rejection: a `Status` in its chain speaks for
/// it; otherwise tonic's code (h2, connection errors) with a fixed text.
fn failure(err: BoxError) -> Status {
    let mut source = Some(&*err as &(dyn Error + 'static));
    while let Some(e) = source {
        if e.is::<Status>() {
            return Status::from_error(err);
        }
        source = e.source();
    }
    match Status::try_from_error(err) {
        Ok(mapped) => {
            let code = mapped.code();
            wire::report_transport(Error::source(&mapped).unwrap_or(&mapped), code);
            // The mapped status carries the error's own text: it stays
            // in-process, as the source, with the error under it.
            let mut status = Status::new(code, code.description());
            status.set_source(Arc::new(mapped));
            status
        }
        Err(err) => {
            wire::report_failure(&*err);
            let mut status = Status::new(Code::Unknown, wire::client_text(None));
            status.set_source(Arc::from(err));
            status
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::OverloadReason;
    use crate::wire::capture;
    use crate::{BudgetExhausted, CircuitOpen, Elapsed, Overloaded};

    fn pushback(s: &Status) -> Option<&str> {
        s.metadata()
            .get(RETRY_PUSHBACK_KEY)
            .map(|v| v.to_str().unwrap())
    }

    #[test]
    fn each_kind_maps_to_its_code_and_text() {
        let s = to_status(Overloaded::new(OverloadReason::QueueFull).into());
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "overloaded");
        assert!(s.metadata().get(RETRY_PUSHBACK_KEY).is_none());

        let s = to_status(BudgetExhausted::new(Duration::from_millis(40)).into());
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), "rate budget exhausted");
        assert_eq!(pushback(&s), Some("40"));

        let s = to_status(Elapsed::new(Duration::from_millis(40)).into());
        assert_eq!(s.code(), Code::DeadlineExceeded);
        assert_eq!(s.message(), "timed out");
        assert_eq!(pushback(&s), None);

        let s = to_status(crate::core::DeadlineExceeded::new(Duration::ZERO).into());
        assert_eq!(s.code(), Code::DeadlineExceeded);
        assert_eq!(s.message(), "deadline exceeded");
        assert_eq!(pushback(&s), None);

        let s = to_status(CircuitOpen::new(None).into());
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "circuit open");
        assert_eq!(pushback(&s), None);

        let s = to_status(Status::not_found("no such user").into());
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "no such user");

        let s = to_status("boom".into());
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "internal error");
    }

    #[test]
    fn the_rejection_stays_findable_in_the_status() {
        let err: BoxError = CircuitOpen::new(Some(Duration::from_secs(2)))
            .with_key("10.0.0.7:50051")
            .into();
        let status = to_status(err);
        assert_eq!(status.message(), "circuit open");
        let found = Rejection::find(&status).expect("the rejection is the source");
        assert_eq!(found.kind(), RejectionKind::CircuitOpen);
        assert_eq!(found.key(), Some("10.0.0.7:50051"));
        assert_eq!(pushback(&status), Some("2000"));

        // Boxed again (as a tower layer returns it), it maps to itself.
        let again = to_status(status.into());
        assert_eq!(again.code(), Code::Unavailable);
        assert_eq!(pushback(&again), Some("2000"));

        let status = to_status("boom".into());
        assert_eq!(Error::source(&status).unwrap().to_string(), "boom");
    }

    #[derive(Debug)]
    struct GaveUp(BoxError);

    impl std::fmt::Display for GaveUp {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "gave up: {}", self.0)
        }
    }

    impl Error for GaveUp {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn a_wrapped_rejection_gets_its_kinds_text() {
        let err: BoxError = Box::new(GaveUp(
            BudgetExhausted::new(Duration::from_secs(1))
                .with_key("tenant-9")
                .into(),
        ));
        let status = to_status(err);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "rate budget exhausted");
        // The wrapper is kept as the source.
        let source = Error::source(&status).unwrap();
        assert!(source.to_string().starts_with("gave up"));
    }

    #[test]
    fn a_wrapped_status_keeps_its_code_and_message() {
        let err: BoxError = Box::new(GaveUp(Status::unavailable("dependency down").into()));
        let status = to_status(err);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "dependency down");
    }

    #[test]
    fn an_error_message_goes_to_the_log_not_the_status() {
        let (status, events) =
            capture::events(|| to_status("connect to db://svc:pw@10.1.2.3 failed".into()));
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "internal error");
        assert!(status.metadata().is_empty());
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].starts_with("WARN"), "{events:?}");
        assert!(events[0].contains("db://svc:pw@10.1.2.3"), "{events:?}");
        // Wrapped, the same.
        let (status, _) =
            capture::events(|| to_status(Box::new(GaveUp("password=hunter2".into()))));
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn a_key_goes_to_the_log_escaped_not_the_status() {
        let (status, events) = capture::events(|| {
            to_status(
                CircuitOpen::new(Some(Duration::from_secs(1)))
                    .with_key("peer\r\nSet-Cookie: x")
                    .into(),
            )
        });
        assert_eq!(status.message(), "circuit open");
        for kv in status.metadata().iter() {
            if let ::tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv {
                assert!(!k.as_str().contains("cookie"), "{k:?}");
                assert!(!v.to_str().unwrap().contains("peer"), "{v:?}");
            }
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].starts_with("DEBUG"), "{events:?}");
        assert!(
            events[0].contains("key=peer\\r\\nSet-Cookie: x"),
            "{events:?}"
        );
        assert!(!events[0].contains('\n'), "{events:?}");
    }

    #[test]
    fn pushback_is_never_zero_nor_unbounded() {
        let cases = [
            (Duration::ZERO, "1"),
            (Duration::from_micros(400), "1"),
            (Duration::from_micros(1_001), "2"),
            (Duration::from_millis(1500), "1500"),
            (Duration::from_secs(86_400), "86400000"),
            (Duration::from_secs(86_401), "86400000"),
            (Duration::from_secs(u64::MAX), "86400000"),
            (Duration::MAX, "86400000"),
        ];
        for (after, ms) in cases {
            let s = to_status(BudgetExhausted::new(after).into());
            assert_eq!(pushback(&s), Some(ms), "{after:?}");
            let s = to_status(CircuitOpen::new(Some(after)).into());
            assert_eq!(pushback(&s), Some(ms), "{after:?}");
            let s = to_status(
                Overloaded::new(OverloadReason::HardLimit)
                    .with_retry_after(after)
                    .into(),
            );
            assert_eq!(pushback(&s), Some(ms), "{after:?}");
        }
    }
}

//! Turning seawall rejections into gRPC statuses (feature `tonic`).
//!
//! | error (anywhere in the `source()` chain) | `tonic::Code` |
//! |------------------------------------------|---------------|
//! | `CircuitOpen` | `Unavailable` |
//! | `Overloaded` | `Unavailable` |
//! | `BudgetExhausted` | `ResourceExhausted` |
//! | `Elapsed` | `DeadlineExceeded` |
//! | a `tonic::Status` | that status, unchanged |
//! | anything else | as tonic maps it (`Status::from_error`): a status or h2 error in the chain keeps its code, otherwise `Unknown` |
//!
//! When the rejection says when to come back, the status carries it in the
//! `grpc-retry-pushback-ms` metadata key, which gRPC clients with a retry
//! policy honour (gRFC A6). The original error stays the status's
//! `source()`, so [`Rejection::find`] still recognises a rejection inside the
//! status in the same process (a seawall retry layer above a tonic client
//! does): only its code and metadata cross the wire.
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
//! let err: BoxError = CircuitOpen::new(Some(Duration::from_millis(250))).into();
//! let status = seawall::tonic::to_status(err);
//! assert_eq!(status.code(), tonic::Code::Unavailable);
//! assert_eq!(status.metadata().get("grpc-retry-pushback-ms").unwrap(), "250");
//! ```
//!
//! For classifying gRPC results (which codes count as failures for the
//! breaker and retry layers), see `seawall::core::classify::GrpcCode`.

use std::sync::Arc;

use ::tonic::{Code, Status, metadata::MetadataValue};

use crate::{BoxError, Rejection, RejectionKind};

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
        // tonic's own mapping: a `Status` or an h2 error in the chain keeps
        // its code; anything else is `Unknown`.
        return Status::from_error(err);
    };
    let code = match rejection.kind() {
        RejectionKind::CircuitOpen | RejectionKind::Overloaded => Code::Unavailable,
        RejectionKind::BudgetExhausted => Code::ResourceExhausted,
        RejectionKind::Elapsed => Code::DeadlineExceeded,
        _ => Code::Unknown,
    };
    // The rejection's own words: whatever wraps it (a retry layer giving
    // up) is in the source chain, kept below.
    let message = match rejection {
        Rejection::CircuitOpen(e) => e.to_string(),
        Rejection::Overloaded(e) => e.to_string(),
        Rejection::BudgetExhausted(e) => e.to_string(),
        Rejection::Elapsed(e) => e.to_string(),
        _ => err.to_string(),
    };
    let mut status = Status::new(code, message);
    if let Some(after) = rejection.retry_after() {
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        status
            .metadata_mut()
            .insert(RETRY_PUSHBACK_KEY, MetadataValue::from(ms));
    }
    status.set_source(Arc::from(err));
    status
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::OverloadReason;
    use crate::{BudgetExhausted, CircuitOpen, Elapsed, Overloaded};

    #[test]
    fn each_kind_maps_to_its_code() {
        let s = to_status(Overloaded::new(OverloadReason::QueueFull).into());
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.metadata().get(RETRY_PUSHBACK_KEY).is_none());

        let s = to_status(BudgetExhausted::new(Duration::from_millis(40)).into());
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.metadata().get(RETRY_PUSHBACK_KEY).unwrap(), "40");

        let s = to_status(Elapsed::new(Duration::from_millis(40)).into());
        assert_eq!(s.code(), Code::DeadlineExceeded);
        assert!(s.message().contains("40ms"));

        let s = to_status(Status::not_found("no such user").into());
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "no such user");

        let s = to_status("boom".into());
        assert_eq!(s.code(), Code::Unknown);
    }

    #[test]
    fn the_rejection_stays_findable_in_the_status() {
        let err: BoxError = CircuitOpen::new(Some(Duration::from_secs(2)))
            .with_key("10.0.0.7:50051")
            .into();
        let status = to_status(err);
        let found = Rejection::find(&status).expect("the rejection is the source");
        assert_eq!(found.kind(), RejectionKind::CircuitOpen);
        assert_eq!(found.key(), Some("10.0.0.7:50051"));
        assert_eq!(status.metadata().get(RETRY_PUSHBACK_KEY).unwrap(), "2000");

        // Boxed again (as a tower layer returns it), it maps to itself.
        let again = to_status(status.into());
        assert_eq!(again.code(), Code::Unavailable);
        assert_eq!(again.metadata().get(RETRY_PUSHBACK_KEY).unwrap(), "2000");

        let status = to_status("boom".into());
        assert_eq!(
            std::error::Error::source(&status).unwrap().to_string(),
            "boom"
        );
    }

    #[derive(Debug)]
    struct GaveUp(BoxError);

    impl std::fmt::Display for GaveUp {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "gave up: {}", self.0)
        }
    }

    impl std::error::Error for GaveUp {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn a_wrapped_rejection_speaks_for_itself() {
        let err: BoxError = Box::new(GaveUp(BudgetExhausted::new(Duration::from_secs(1)).into()));
        let status = to_status(err);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "budget exhausted; retry after 1s");
        // The wrapper is kept as the source.
        let source = std::error::Error::source(&status).unwrap();
        assert!(source.to_string().starts_with("gave up"));
    }
}

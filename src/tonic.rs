//! Turning seawall rejections into gRPC statuses (feature `tonic`).
//!
//! | error (anywhere in the `source()` chain) | `tonic::Code` |
//! |------------------------------------------|---------------|
//! | `CircuitOpen` | `Unavailable` |
//! | `Overloaded` | `Unavailable` |
//! | `BudgetExhausted` | `ResourceExhausted` |
//! | `Elapsed` | `DeadlineExceeded` |
//! | a `tonic::Status` | that status, unchanged |
//! | anything else | `Unknown` |
//!
//! When the rejection says when to come back, the status carries it in the
//! `grpc-retry-pushback-ms` metadata key, which gRPC clients with a retry
//! policy honour (gRFC A6).
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

use ::tonic::{Code, Status, metadata::MetadataValue};

use crate::{BoxError, Rejection, RejectionKind};

/// The metadata key that carries a rejection's `retry_after`, in milliseconds.
pub const RETRY_PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

/// Turns any error from a seawall stack into a `tonic::Status`. See the
/// [module docs](self) for the mapping.
pub fn to_status(err: BoxError) -> Status {
    if let Some(rejection) = Rejection::find(&*err) {
        let code = match rejection.kind() {
            RejectionKind::CircuitOpen | RejectionKind::Overloaded => Code::Unavailable,
            RejectionKind::BudgetExhausted => Code::ResourceExhausted,
            RejectionKind::Elapsed => Code::DeadlineExceeded,
            _ => Code::Unknown,
        };
        let mut status = Status::new(code, err.to_string());
        if let Some(after) = rejection.retry_after() {
            let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            status
                .metadata_mut()
                .insert(RETRY_PUSHBACK_KEY, MetadataValue::from(ms));
        }
        return status;
    }
    match err.downcast::<Status>() {
        Ok(status) => *status,
        Err(err) => Status::new(Code::Unknown, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::OverloadReason;
    use crate::{BudgetExhausted, Elapsed, Overloaded};

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
}

//! What the axum and tonic integrations tell a remote client, and where the
//! rest goes.
//!
//! A response body or a `Status` message crosses the wire to whoever sent
//! the request, so it carries a fixed text per rejection kind and nothing
//! taken from the error: not its message (which may hold a connection
//! string with a password), not the key (which the request chose, control
//! characters included). The details go to a `tracing` event with target
//! [`TARGET`], where the operator reads them.
//!
//! A retry hint is never zero (a client told "retry after 0" comes straight
//! back, at the moment the service asked for room) and never more than
//! [`MAX_RETRY_HINT`].

use std::error::Error;
use std::time::Duration;

use crate::{Rejection, RejectionKind};
use seawall_core::key::Escaped;

/// The `tracing` target of the axum and tonic integrations.
pub(crate) const TARGET: &str = "seawall";

/// The longest retry hint sent to a client: one day, however long the
/// rejection says (a breaker may be open for up to a year).
///
/// A hint is advice for one response: a client that comes back after a day
/// and is still refused gets a new hint. A day keeps the value within what
/// every client parses: `grpc-retry-pushback-ms` is a signed 32-bit number of
/// milliseconds (gRFC A6), and a client reads a larger one as "never retry";
/// 86,400,000 ms is well under its 24.8-day maximum.
pub const MAX_RETRY_HINT: Duration = Duration::from_secs(24 * 60 * 60);

/// The text a client is given for an error of `kind` (`None`: not a
/// rejection, a failure of the service).
pub(crate) fn client_text(kind: Option<RejectionKind>) -> &'static str {
    match kind {
        Some(RejectionKind::CircuitOpen) => "circuit open",
        Some(RejectionKind::Overloaded) => "overloaded",
        Some(RejectionKind::BudgetExhausted) => "rate budget exhausted",
        Some(RejectionKind::Elapsed) => "timed out",
        Some(RejectionKind::DeadlineExceeded) => "deadline exceeded",
        // A kind added to seawall-core later: still a refusal.
        Some(_) => "service unavailable",
        None => "internal error",
    }
}

/// `after` in whole seconds, rounded up, at least 1, at most
/// [`MAX_RETRY_HINT`]: the value of an HTTP `Retry-After`.
#[cfg(feature = "axum")]
pub(crate) fn hint_secs(after: Duration) -> u64 {
    let after = after.min(MAX_RETRY_HINT);
    (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1)
}

/// `after` in whole milliseconds, rounded up, at least 1, at most
/// [`MAX_RETRY_HINT`]: the value of `grpc-retry-pushback-ms`.
#[cfg(feature = "tonic")]
pub(crate) fn hint_millis(after: Duration) -> u64 {
    let after = after.min(MAX_RETRY_HINT);
    let ms = after.as_millis() + u128::from(!after.subsec_nanos().is_multiple_of(1_000_000));
    // At most 86,400,000 after the cap: always fits.
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// Records a refusal: at DEBUG, as refusals come per request under load and
/// the layers that refuse already count them (`stats()`, metrics).
pub(crate) fn report_rejection(err: &(dyn Error + 'static), rejection: Rejection<'_>) {
    tracing::debug!(
        target: TARGET,
        kind = rejection.kind().as_str(),
        key = rejection.key().map(|k| tracing::field::display(Escaped(k))),
        retry_after = ?rejection.retry_after(),
        error = %Escaped(err),
        "request refused",
    );
}

/// Records a failure that is answered as an internal error (HTTP 500, gRPC
/// `Unknown`): at WARN, as it is a fault of the service, not a policy.
pub(crate) fn report_failure(err: &(dyn Error + 'static)) {
    tracing::warn!(target: TARGET, error = %Escaped(err), "request failed");
}

/// Records a failure answered with a code of its own (a transport error
/// tonic maps to `Unavailable`, say): at DEBUG, as a peer that is down fails
/// every call, and the breaker reports it once, on its transition.
#[cfg(feature = "tonic")]
pub(crate) fn report_transport(err: &(dyn Error + 'static), code: ::tonic::Code) {
    tracing::debug!(target: TARGET, code = ?code, error = %Escaped(err), "request failed");
}

#[cfg(test)]
pub(crate) mod capture {
    //! A `tracing` subscriber that keeps this crate's events as text, for
    //! tests that check what went to the log and not to the client.

    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// The events recorded while `f` ran on this thread, one line each:
    /// `LEVEL message field=value …`.
    pub(crate) fn events<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = tracing::subscriber::with_default(Capture(seen.clone()), f);
        let lines = std::mem::take(&mut *seen.lock().unwrap_or_else(PoisonError::into_inner));
        (out, lines)
    }

    struct Capture(Arc<Mutex<Vec<String>>>);

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, " {value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, meta: &Metadata<'_>) -> bool {
            meta.target() == super::TARGET
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(event.metadata().level().to_string());
            event.record(&mut line);
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(feature = "axum", feature = "tonic"))]
    fn a_hint_rounds_up_to_at_least_one() {
        assert_eq!(hint_secs(Duration::ZERO), 1);
        assert_eq!(hint_secs(Duration::from_micros(400)), 1);
        assert_eq!(hint_secs(Duration::from_secs(2)), 2);
        assert_eq!(hint_secs(Duration::from_nanos(2_000_000_001)), 3);
        assert_eq!(hint_millis(Duration::ZERO), 1);
        assert_eq!(hint_millis(Duration::from_micros(400)), 1);
        assert_eq!(hint_millis(Duration::from_micros(1_400)), 2);
        assert_eq!(hint_millis(Duration::from_millis(250)), 250);
        assert_eq!(hint_millis(Duration::from_nanos(1)), 1);
    }

    #[test]
    #[cfg(all(feature = "axum", feature = "tonic"))]
    fn a_hint_is_capped_at_a_day() {
        for huge in [
            MAX_RETRY_HINT + Duration::from_nanos(1),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            assert_eq!(hint_secs(huge), 86_400);
            assert_eq!(hint_millis(huge), 86_400_000);
        }
        assert_eq!(hint_secs(MAX_RETRY_HINT), 86_400);
        assert!(i32::try_from(hint_millis(Duration::MAX)).is_ok());
    }

    #[test]
    fn escaped_text_has_no_control_characters() {
        let shown = Escaped("a\r\nSet-Cookie: x\u{1b}[31m").to_string();
        assert_eq!(shown, "a\\r\\nSet-Cookie: x\\u{1b}[31m");
        assert!(!shown.chars().any(char::is_control));
        assert_eq!(Escaped("plain: ünïcode").to_string(), "plain: ünïcode");
    }
}

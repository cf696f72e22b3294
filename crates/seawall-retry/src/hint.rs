//! Retry hints: what a failed response or error says about when to try
//! again.
//!
//! After a failed attempt that may be retried, the layer asks its
//! [`RetryHint`] reader what the peer said, and gets a [`Hint`]:
//!
//! - [`Hint::None`]: nothing; the backoff decides.
//! - [`Hint::After`]`(d)`: the next attempt waits **at least** `d` (the
//!   larger of `d` and the backoff's delay). If `d` does not fit what the
//!   layer will wait (the time left before its
//!   [`deadline`](crate::RetryBuilder::deadline); without a deadline the
//!   backoff's `max_delay`, or [`UNBOUNDED_HINT`] for a backoff without
//!   one), the layer gives up at once with
//!   [`StopReason::HintTooLong`](crate::StopReason::HintTooLong), without
//!   sleeping.
//! - [`Hint::DoNotRetry`]: the layer stops with
//!   [`StopReason::DoNotRetry`](crate::StopReason::DoNotRetry).
//!
//! The reader is consulted only on the failure path, after the retry rule
//! ([`RetryBuilder::retry_if`](crate::RetryBuilder::retry_if)) accepted the
//! error and while attempts remain: the success path never reads a hint.
//! Seawall's own rejections (a `CircuitOpen`'s `retry_after`) are honoured
//! by the layer itself, whatever the reader, so a reader only reads what a
//! peer sent.
//!
//! Readers:
//!
//! - [`NoHint`], the default: no peer hint, the layer behaves as it always
//!   did.
//! - [`HttpHint`] (feature `http`): HTTP `Retry-After` (seconds or date),
//!   the IETF `RateLimit` field's reset, and `RateLimit-Reset` /
//!   `X-RateLimit-Reset` once their quota is spent.
//! - [`GrpcHint`] (feature `tonic`): gRPC `grpc-retry-pushback-ms` (gRFC A6).
//! - Any closure, through [`hint_fn`].
//!
//! Every hint is bounded by [`MAX_HINT`] (the readers bound what they
//! return, and the layer bounds what any reader returns): a peer cannot ask
//! for more than a day, and the layer then waits only what its own deadline
//! (or backoff cap) allows.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use seawall_core::BoxError;
//! use seawall_retry::hint::{hint_fn, Hint};
//! use seawall_retry::{Backoff, RetryLayer};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! /// A backend whose errors say how long to wait, in milliseconds.
//! #[derive(Debug)]
//! struct Busy(u64);
//! impl std::fmt::Display for Busy {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         write!(f, "busy, come back in {}ms", self.0)
//!     }
//! }
//! impl std::error::Error for Busy {}
//!
//! let layer = RetryLayer::builder()
//!     .backoff(Backoff::constant(Duration::from_millis(10)))
//!     .deadline(Duration::from_secs(1))
//!     .hint(hint_fn(|result: &Result<u32, BoxError>| match result {
//!         Err(e) => e.downcast_ref::<Busy>().map_or(Hint::None, |b| {
//!             Hint::After(Duration::from_millis(b.0))
//!         }),
//!         Ok(_) => Hint::None,
//!     }))
//!     .build()
//!     .unwrap();
//!
//! let start = tokio::time::Instant::now();
//! let mut first = true;
//! let svc = layer.layer(service_fn(move |x: u32| {
//!     let busy = std::mem::replace(&mut first, false);
//!     async move { if busy { Err::<u32, BoxError>(Busy(250).into()) } else { Ok(x) } }
//! }));
//! assert_eq!(svc.oneshot(7).await.unwrap(), 7);
//! // The retry waited the 250ms the backend asked for, not the 10ms backoff.
//! assert_eq!(start.elapsed(), Duration::from_millis(250));
//! assert_eq!(layer.stats().hinted, 1);
//! # }
//! ```

use std::time::Duration;

use seawall_core::BoxError;

#[cfg(feature = "tonic")]
mod grpc;
#[cfg(feature = "http")]
mod http;

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use grpc::GrpcHint;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http::HttpHint;

/// The longest wait a reader returns: one day. A longer hint (a
/// `Retry-After` of a year, a pushback of `i64::MAX` ms) is read as a day.
///
/// It bounds what a peer can ask; what the layer actually waits is bounded
/// again by its own deadline, or, without one, by the backoff's `max_delay`
/// (5s by default), or, for a backoff without a `max_delay`, by
/// [`UNBOUNDED_HINT`]: a hint past that makes the layer give up at once. A
/// day is also the most a seawall server sends
/// (`seawall::axum::MAX_RETRY_HINT`).
pub const MAX_HINT: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest hint a layer with neither a deadline nor a backoff
/// `max_delay` waits for: the default backoff's cap, 5 seconds. A peer must
/// not be able to park a request for a day because its client set no bound;
/// set a [`deadline`](crate::RetryBuilder::deadline) to wait longer.
pub const UNBOUNDED_HINT: Duration = Duration::from_secs(5);

/// What a failed attempt says about the next one; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Hint {
    /// Nothing said: the backoff decides.
    #[default]
    None,
    /// Wait at least this long before the next attempt (the layer reads
    /// more than [`MAX_HINT`] as `MAX_HINT`).
    After(Duration),
    /// Do not retry this request.
    DoNotRetry,
}

impl Hint {
    /// `After(d)` with `d` at most [`MAX_HINT`].
    pub fn after(d: Duration) -> Self {
        Hint::After(d.min(MAX_HINT))
    }

    /// The stronger of two hints: `DoNotRetry` over a wait, the longer wait
    /// over the shorter, any wait over `None`.
    #[must_use]
    pub fn max(self, other: Hint) -> Hint {
        match (self, other) {
            (Hint::DoNotRetry, _) | (_, Hint::DoNotRetry) => Hint::DoNotRetry,
            (Hint::After(a), Hint::After(b)) => Hint::After(a.max(b)),
            (Hint::After(a), _) | (_, Hint::After(a)) => Hint::After(a),
            _ => Hint::None,
        }
    }
}

/// Reads a retry hint from a failed attempt's result: a response the
/// classifier called a failure (`Ok`), or an error (`Err`, boxed).
///
/// Called only on the failure path, once per failed attempt that could be
/// retried. It must not block; a peer's headers are hostile input, so parse
/// them without panicking and bound the result (see [`Hint::after`]).
///
/// ```
/// use std::time::Duration;
/// use seawall_core::BoxError;
/// use seawall_retry::hint::{Hint, RetryHint};
///
/// /// A response that carries its own hint.
/// struct Reply { wait_ms: Option<u64> }
///
/// struct ReplyHint;
/// impl RetryHint<Reply> for ReplyHint {
///     fn hint(&self, result: &Result<Reply, BoxError>) -> Hint {
///         match result {
///             Ok(Reply { wait_ms: Some(ms) }) => Hint::after(Duration::from_millis(*ms)),
///             _ => Hint::None,
///         }
///     }
/// }
/// assert_eq!(ReplyHint.hint(&Ok(Reply { wait_ms: Some(5) })), Hint::After(Duration::from_millis(5)));
/// ```
pub trait RetryHint<Res> {
    /// The hint `result` carries.
    fn hint(&self, result: &Result<Res, BoxError>) -> Hint;
}

impl<Res, H: RetryHint<Res> + ?Sized> RetryHint<Res> for &H {
    fn hint(&self, result: &Result<Res, BoxError>) -> Hint {
        (**self).hint(result)
    }
}

impl<Res, H: RetryHint<Res> + ?Sized> RetryHint<Res> for std::sync::Arc<H> {
    fn hint(&self, result: &Result<Res, BoxError>) -> Hint {
        (**self).hint(result)
    }
}

/// `Some(reader)` reads with `reader`; `None` reads nothing, as [`NoHint`]
/// (what a config with `honour_hints = false` builds).
impl<Res, H: RetryHint<Res>> RetryHint<Res> for Option<H> {
    #[inline]
    fn hint(&self, result: &Result<Res, BoxError>) -> Hint {
        match self {
            Some(reader) => reader.hint(result),
            None => Hint::None,
        }
    }
}

/// The default reader: reads nothing ([`Hint::None`]). The layer still
/// honours seawall's own rejections (a `CircuitOpen`'s `retry_after`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoHint;

impl<Res> RetryHint<Res> for NoHint {
    #[inline]
    fn hint(&self, _: &Result<Res, BoxError>) -> Hint {
        Hint::None
    }
}

/// A reader from a closure; made by [`hint_fn`].
#[derive(Clone, Copy)]
pub struct HintFn<F> {
    f: F,
}

impl<F> std::fmt::Debug for HintFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintFn").finish_non_exhaustive()
    }
}

/// A reader from a closure `Fn(&Result<Res, BoxError>) -> Hint` (see the
/// [module docs](self) for an example).
pub fn hint_fn<F>(f: F) -> HintFn<F> {
    HintFn { f }
}

impl<F, Res> RetryHint<Res> for HintFn<F>
where
    F: Fn(&Result<Res, BoxError>) -> Hint,
{
    fn hint(&self, result: &Result<Res, BoxError>) -> Hint {
        (self.f)(result)
    }
}

/// Parses an unsigned decimal number, ASCII digits only (no sign, no
/// space), saturating at `u64::MAX`; `None` when empty or not all digits.
#[cfg(feature = "http")]
pub(crate) fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Strips ASCII spaces and tabs (HTTP's optional whitespace) at both ends.
#[cfg(feature = "http")]
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stronger_hint_wins() {
        let s = Duration::from_secs;
        assert_eq!(Hint::None.max(Hint::None), Hint::None);
        assert_eq!(Hint::None.max(Hint::After(s(1))), Hint::After(s(1)));
        assert_eq!(Hint::After(s(2)).max(Hint::After(s(1))), Hint::After(s(2)));
        assert_eq!(Hint::After(s(2)).max(Hint::DoNotRetry), Hint::DoNotRetry);
        assert_eq!(Hint::after(Duration::MAX), Hint::After(MAX_HINT));
    }

    #[test]
    #[cfg(feature = "http")]
    fn digits_are_strict_and_saturate() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"120"), Some(120));
        assert_eq!(digits(b"18446744073709551616"), Some(u64::MAX));
        assert_eq!(digits(&[b'9'; 10_000]), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1.5",
            b"1e3",
            b"\xff",
            b"12a",
        ] {
            assert_eq!(digits(bad), None, "{bad:?}");
        }
        assert_eq!(trim(b" \t5 \t"), b"5");
        assert_eq!(trim(b"   "), b"");
    }
}

//! [`Deadline`]: the time by which the caller needs an answer, carried with
//! the work it is for.
//!
//! A server that knows its caller gives up in 200ms should not spend 2s on
//! the request. Every seawall time limit (the adaptive timeout, the retry
//! deadline across attempts, the budget's wait, the shed queue's wait) takes
//! the smaller of its own limit and the caller's remaining time, read with
//! [`Deadline::current`]. The adaptive timeout and the retry layer refuse at
//! once, with [`DeadlineExceeded`](crate::DeadlineExceeded), a call whose
//! caller has already given up; the budget (Wait mode) and the shedder's
//! queue refuse it only when it would have to wait (a call they can admit
//! at once, with a token or a slot free, goes through: the time limits
//! below it then refuse it).
//!
//! # The scope
//!
//! The deadline travels with the task, not with the request type: the layers
//! are generic over any request, and a handler's outgoing calls are different
//! requests from the one it serves. [`Deadline::scope`] wraps a future so
//! that, during each of its polls, [`Deadline::current`] returns the deadline;
//! [`Deadline::sync_scope`] does the same around a closure (a service's
//! `call`). A nested scope never extends an outer one: the earlier deadline
//! holds. Outside any scope [`Deadline::current`] is `None` and every layer
//! behaves as it did without deadlines. A spawned task does not inherit the
//! scope (it is polled elsewhere): wrap it in `Deadline::scope` again.
//!
//! The scope is one thread-local `Cell`, set before each poll and restored
//! after it (also when the poll panics). Reading it costs one thread-local
//! access; a layer reads it at most once per call. The same cell holds a
//! [`CallTimeout`]: a timeout one call asks of the adaptive timeout in place
//! of its own; [`Limits::current`] reads both at once.
//!
//! # Time
//!
//! A deadline is an instant on tokio's clock, like every timer
//! ([`tokio::time::Instant`]): `tokio::time::pause` and `advance` move it in
//! tests. A layer given a manual [`Clock`](crate::Clock) still measures the
//! caller's deadline on tokio's clock, since a deadline is a timer.
//!
//! # On the wire
//!
//! [`parse_grpc_timeout`] and [`format_grpc_timeout`] read and write gRPC's
//! `grpc-timeout` header; [`parse_millis`] reads a plain header holding
//! milliseconds. Peers are not trusted: anything but the exact grammar is
//! refused, and no value overflows.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seawall_core::deadline::Deadline;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! assert!(Deadline::current().is_none());
//! let deadline = Deadline::after(Duration::from_millis(200));
//! let left = Deadline::scope(deadline, async {
//!     // Any layer or handler polled in here sees the caller's deadline.
//!     Deadline::current().map(Deadline::remaining)
//! })
//! .await;
//! assert!(left.is_some_and(|d| d <= Duration::from_millis(200)));
//! assert!(Deadline::current().is_none());
//! # }
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;

/// What the current scope holds: the caller's deadline, and a timeout the
/// caller asked of the adaptive timeout for this call ([`CallTimeout`]).
/// Kept in one cell, so a layer reads both with one thread-local access.
#[derive(Clone, Copy)]
struct Current {
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

thread_local! {
    // No destructor, so the slot is always accessible and `const` makes a
    // read a couple of loads.
    static CURRENT: Cell<Current> = const {
        Cell::new(Current { deadline: None, timeout: None })
    };
}

/// What a time-limited layer reads of the current scope, in one
/// thread-local access: the caller's [`Deadline`] and the [`CallTimeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Limits {
    /// The caller's deadline ([`Deadline::current`]).
    pub deadline: Option<Deadline>,
    /// The timeout asked for this call ([`CallTimeout::current`]).
    pub timeout: Option<Duration>,
}

impl Limits {
    /// Both limits of the current scope.
    #[inline]
    pub fn current() -> Limits {
        let c = CURRENT.with(Cell::get);
        Limits {
            deadline: c.deadline.map(Deadline),
            timeout: c.timeout,
        }
    }
}

/// The instant by which the caller needs an answer; see the [module
/// docs](self).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline at `instant`.
    pub fn at(instant: Instant) -> Deadline {
        Deadline(instant)
    }

    /// A deadline `after` from now on tokio's clock (saturating: a duration
    /// too large to represent is about 30 years away).
    pub fn after(after: Duration) -> Deadline {
        Deadline(crate::time::deadline(Instant::now(), after))
    }

    /// The instant of the deadline, for a tokio timer.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// The time left before the deadline; zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// The time left before the deadline as seen at `now`; zero once passed.
    pub fn remaining_at(self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// Whether the deadline has passed (the caller has given up).
    pub fn has_passed(self) -> bool {
        self.0 <= Instant::now()
    }

    /// The earlier of this deadline and `other`.
    pub fn min_with(self, other: Option<Deadline>) -> Deadline {
        match other {
            Some(o) if o.0 < self.0 => o,
            _ => self,
        }
    }

    /// The deadline of the current scope, if the code runs inside one.
    ///
    /// One thread-local read.
    #[inline]
    pub fn current() -> Option<Deadline> {
        CURRENT.with(Cell::get).deadline.map(Deadline)
    }

    /// `own` from now, shortened to the current scope's deadline: the limit a
    /// layer with a time limit of its own applies. The second value says
    /// whether the caller's deadline is the binding one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_core::deadline::Deadline;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let ms = Duration::from_millis;
    /// assert_eq!(Deadline::clamp(ms(500)), (ms(500), false));
    /// let inner = Deadline::sync_scope(Deadline::after(ms(80)), || Deadline::clamp(ms(500)));
    /// assert_eq!(inner, (ms(80), true));
    /// # }
    /// ```
    #[inline]
    pub fn clamp(own: Duration) -> (Duration, bool) {
        match Deadline::current() {
            Some(d) => {
                let left = d.remaining();
                if left < own {
                    (left, true)
                } else {
                    (own, false)
                }
            }
            None => (own, false),
        }
    }

    /// Runs `future` with `deadline` as the current deadline during each of
    /// its polls (or the enclosing scope's, if that is earlier).
    pub fn scope<F: Future>(deadline: Deadline, future: F) -> Scoped<F> {
        Scoped {
            set: Set::Deadline(deadline),
            future,
        }
    }

    /// Runs `future` in the scope of `deadline` when there is one; with
    /// `None`, polls it as it is (an enclosing scope still holds).
    pub fn scope_opt<F: Future>(deadline: Option<Deadline>, future: F) -> Scoped<F> {
        Scoped {
            set: deadline.map_or(Set::Nothing, Set::Deadline),
            future,
        }
    }

    /// Runs `f` with `deadline` as the current deadline (or the enclosing
    /// scope's, if that is earlier): for a service's `call`, which runs
    /// before its future is first polled.
    pub fn sync_scope<R>(deadline: Deadline, f: impl FnOnce() -> R) -> R {
        let _guard = Guard::enter(Set::Deadline(deadline));
        f()
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("remaining", &self.remaining())
            .finish()
    }
}

/// A timeout the caller asks of seawall's adaptive timeout for the calls
/// made in a scope, in place of the learned (or fixed) one; the timeout
/// layer still clamps it to its `[min, max]`.
///
/// Per request, for any request type: wrap the call (`CallTimeout::scope`
/// around the response future, so that a retry's later attempts see it
/// too). For `http` requests, `seawall-deadline`'s `CallTimeoutLayer` does
/// that from a `CallTimeout` in the request's extensions. The innermost scope
/// wins. Unlike a [`Deadline`], it says how long each call may take, not
/// when the caller gives up: both apply, the earlier end holds.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::deadline::CallTimeout;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let seen = CallTimeout::scope(Duration::from_secs(2), async { CallTimeout::current() }).await;
/// assert_eq!(seen, Some(Duration::from_secs(2)));
/// assert_eq!(CallTimeout::current(), None);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallTimeout(pub Duration);

impl CallTimeout {
    /// The timeout of the current scope, if any.
    #[inline]
    pub fn current() -> Option<Duration> {
        CURRENT.with(Cell::get).timeout
    }

    /// Runs `future` with `timeout` as the current call timeout during each
    /// of its polls.
    pub fn scope<F: Future>(timeout: Duration, future: F) -> Scoped<F> {
        Scoped {
            set: Set::Timeout(timeout),
            future,
        }
    }

    /// Runs `future` in the scope of `timeout` when there is one; with
    /// `None`, polls it as it is (an enclosing scope still holds).
    pub fn scope_opt<F: Future>(timeout: Option<Duration>, future: F) -> Scoped<F> {
        Scoped {
            set: timeout.map_or(Set::Nothing, Set::Timeout),
            future,
        }
    }

    /// Runs `f` with `timeout` as the current call timeout.
    pub fn sync_scope<R>(timeout: Duration, f: impl FnOnce() -> R) -> R {
        let _guard = Guard::enter(Set::Timeout(timeout));
        f()
    }
}

/// What a scope sets.
#[derive(Debug, Clone, Copy)]
enum Set {
    Nothing,
    Deadline(Deadline),
    Timeout(Duration),
}

/// Restores the previous scope when dropped, so a panicking poll does not
/// leave its values on the thread.
struct Guard {
    previous: Current,
}

impl Guard {
    #[inline]
    fn enter(set: Set) -> Guard {
        let previous = CURRENT.with(|c| {
            let previous = c.get();
            let mut next = previous;
            match set {
                Set::Nothing => {}
                // A nested deadline never extends an outer one.
                Set::Deadline(d) => {
                    next.deadline = Some(match previous.deadline {
                        Some(p) if p < d.0 => p,
                        _ => d.0,
                    });
                }
                // The innermost call timeout wins.
                Set::Timeout(t) => next.timeout = Some(t),
            }
            c.set(next);
            previous
        });
        Guard { previous }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

pin_project! {
    /// A future polled inside a scope; see [`Deadline::scope`] and
    /// [`CallTimeout::scope`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Scoped<F> {
        set: Set,
        #[pin]
        future: F,
    }
}

impl<F> Scoped<F> {
    /// The deadline this future is polled under (before any enclosing
    /// scope's is taken into account), when it is a deadline's scope.
    pub fn deadline(&self) -> Option<Deadline> {
        match self.set {
            Set::Deadline(d) => Some(d),
            _ => None,
        }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match *this.set {
            Set::Nothing => this.future.poll(cx),
            set => {
                let _guard = Guard::enter(set);
                this.future.poll(cx)
            }
        }
    }
}

/// The longest value `grpc-timeout` can hold: 8 digits.
const GRPC_MAX_VALUE: u64 = 99_999_999;

/// Parses a `grpc-timeout` header value: 1 to 8 ASCII digits and a unit
/// (`H` hours, `M` minutes, `S` seconds, `m` millis, `u` micros, `n` nanos),
/// as the gRPC over HTTP/2 spec writes it. Anything else (a sign, a space,
/// a ninth digit, another unit) is `None`. The largest value (99,999,999
/// hours) fits a `Duration`; callers cap it to their own maximum.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::deadline::parse_grpc_timeout;
///
/// assert_eq!(parse_grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout(b"3S"), Some(Duration::from_secs(3)));
/// assert_eq!(parse_grpc_timeout(b"123456789n"), None);
/// assert_eq!(parse_grpc_timeout(b"-1S"), None);
/// ```
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        // At most 8 digits: at most 99,999,999, no overflow.
        n = n * 10 + u64::from(b - b'0');
    }
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A `grpc-timeout` value written without allocating; see
/// [`format_grpc_timeout`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GrpcTimeout {
    bytes: [u8; 9],
    len: u8,
}

impl GrpcTimeout {
    /// The value as text, e.g. `"250m"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and a unit letter are written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The value as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for GrpcTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for GrpcTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes `d` as a `grpc-timeout` value in the finest unit whose value fits
/// 8 digits, rounded down (a peer told a little less time gives up no later
/// than the caller). Durations beyond 99,999,999 hours are written as that.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::deadline::format_grpc_timeout;
///
/// assert_eq!(format_grpc_timeout(Duration::from_millis(250)).as_str(), "250000u");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(300)).as_str(), "300000m");
/// assert_eq!(format_grpc_timeout(Duration::ZERO).as_str(), "0n");
/// ```
pub fn format_grpc_timeout(d: Duration) -> GrpcTimeout {
    let nanos = d.as_nanos();
    const UNITS: [(u128, u8); 6] = [
        (1, b'n'),
        (1_000, b'u'),
        (1_000_000, b'm'),
        (1_000_000_000, b'S'),
        (60_000_000_000, b'M'),
        (3_600_000_000_000, b'H'),
    ];
    let (value, unit) = UNITS
        .iter()
        .find_map(|&(per, unit)| {
            let v = nanos / per;
            (v <= u128::from(GRPC_MAX_VALUE)).then_some((v as u64, unit))
        })
        .unwrap_or((GRPC_MAX_VALUE, b'H'));
    let mut digits = [0u8; 8];
    let mut i = digits.len();
    let mut v = value;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut bytes = [0u8; 9];
    let n = digits.len() - i;
    bytes[..n].copy_from_slice(&digits[i..]);
    bytes[n] = unit;
    GrpcTimeout {
        bytes,
        len: (n + 1) as u8,
    }
}

/// Parses a plain header holding a whole number of milliseconds (1 to 10
/// ASCII digits, nothing else): the form a user-named deadline header takes.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::deadline::parse_millis;
///
/// assert_eq!(parse_millis(b"1500"), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_millis(b"1.5"), None);
/// assert_eq!(parse_millis(b"99999999999"), None);
/// ```
pub fn parse_millis(value: &[u8]) -> Option<Duration> {
    if value.is_empty() || value.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        // At most 10 digits: below 10^10, no overflow.
        n = n * 10 + u64::from(b - b'0');
    }
    Some(Duration::from_millis(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn scope_sets_and_restores() {
        assert!(Deadline::current().is_none());
        let d = Deadline::after(ms(100));
        let seen = Deadline::scope(d, async {
            let first = Deadline::current();
            tokio::time::sleep(ms(30)).await;
            (first, Deadline::current().map(Deadline::remaining))
        })
        .await;
        assert_eq!(seen.0, Some(d));
        assert_eq!(seen.1, Some(ms(70)));
        assert!(Deadline::current().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn nested_scopes_keep_the_earlier_deadline() {
        let outer = Deadline::after(ms(50));
        let inner = Deadline::after(ms(500));
        let seen = Deadline::scope(outer, Deadline::scope(inner, async { Deadline::current() }));
        assert_eq!(seen.await, Some(outer));
        let seen = Deadline::scope(inner, Deadline::scope(outer, async { Deadline::current() }));
        assert_eq!(seen.await, Some(outer));
        let seen = Deadline::scope(
            inner,
            Deadline::scope_opt(None, async { Deadline::current() }),
        );
        assert_eq!(seen.await, Some(inner));
        assert_eq!(
            Deadline::sync_scope(inner, || Deadline::sync_scope(outer, Deadline::current)),
            Some(outer)
        );
        assert!(Deadline::current().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_poll_restores_the_previous_deadline() {
        let outer = Deadline::after(ms(900));
        Deadline::sync_scope(outer, || {
            let caught = std::panic::catch_unwind(|| {
                Deadline::sync_scope(Deadline::after(ms(1)), || panic!("boom"))
            });
            assert!(caught.is_err());
            assert_eq!(Deadline::current(), Some(outer));
        });
        assert!(Deadline::current().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_scope_does_not_leak_into_other_tasks_on_the_thread() {
        let d = Deadline::after(ms(10));
        let other = tokio::spawn(async { Deadline::current() });
        let mine = Deadline::scope(d, async {
            tokio::task::yield_now().await;
            Deadline::current()
        });
        assert_eq!(mine.await, Some(d));
        assert_eq!(other.await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn call_timeouts_nest_innermost_first_and_keep_the_deadline() {
        let d = Deadline::after(ms(100));
        let seen = Deadline::scope(
            d,
            CallTimeout::scope(
                ms(5),
                CallTimeout::scope(ms(7), async { Limits::current() }),
            ),
        )
        .await;
        assert_eq!(seen.deadline, Some(d));
        assert_eq!(seen.timeout, Some(ms(7)));
        let seen = CallTimeout::sync_scope(ms(3), || Deadline::sync_scope(d, Limits::current));
        assert_eq!((seen.deadline, seen.timeout), (Some(d), Some(ms(3))));
        assert_eq!(Limits::current(), Limits::default());
    }

    #[tokio::test(start_paused = true)]
    async fn clamp_and_passing() {
        let d = Deadline::after(ms(20));
        assert!(!d.has_passed());
        tokio::time::advance(ms(20)).await;
        assert!(d.has_passed());
        assert_eq!(d.remaining(), Duration::ZERO);
        assert_eq!(
            Deadline::sync_scope(d, || Deadline::clamp(ms(5))),
            (Duration::ZERO, true)
        );
        assert_eq!(d.min_with(None), d);
        let later = Deadline::after(ms(1));
        assert_eq!(later.min_with(Some(d)), d);
        assert_eq!(d.min_with(Some(later)), d);
    }

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout(b"7n"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_grpc_timeout(b"0m"), Some(Duration::ZERO));
        assert_eq!(
            parse_grpc_timeout(b"99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        for bad in [
            &b""[..],
            b"m",
            b"5",
            b"5x",
            b"5 m",
            b" 5m",
            b"+5m",
            b"5mm",
            b"123456789m",
            b"\xff5m",
            b"5\xc3\xa9",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
        assert_eq!(format_grpc_timeout(Duration::MAX).as_str(), "99999999H");
        assert_eq!(format_grpc_timeout(ms(99)).as_str(), "99000000n");
        assert_eq!(format!("{:?}", format_grpc_timeout(ms(1))), "\"1000000n\"");
    }

    proptest! {
        #[test]
        fn grpc_timeout_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = parse_grpc_timeout(&bytes);
            let _ = parse_millis(&bytes);
        }

        #[test]
        fn grpc_timeout_round_trips_rounding_down(nanos in any::<u64>(), secs in 0u64..400_000_000_000) {
            for d in [Duration::from_nanos(nanos), Duration::new(secs, (nanos % 1_000_000_000) as u32)] {
                let text = format_grpc_timeout(d);
                prop_assert!(text.as_bytes().len() <= 9);
                let back = parse_grpc_timeout(text.as_bytes()).expect("our own output parses");
                prop_assert!(back <= d, "{text} for {d:?}");
                // Within one unit of the finest fitting unit: a unit is
                // chosen only once the value holds at least 5 digits
                // (10^8 nanos = 100,000 micros), so 1 part in 10^5.
                if d < Duration::from_secs(99_999_999 * 3600) {
                    prop_assert!(d - back <= d / 100_000 + Duration::from_nanos(1), "{text} for {d:?}");
                }
            }
        }

        #[test]
        fn well_formed_grpc_timeouts_parse(n in 0u64..=99_999_999, unit in prop::sample::select(vec!['H', 'M', 'S', 'm', 'u', 'n'])) {
            let text = format!("{n}{unit}");
            prop_assert!(parse_grpc_timeout(text.as_bytes()).is_some());
        }
    }
}

//! The ways a seawall layer refuses a call, and how to recognise them.
//!
//! A layer that refuses a call answers at once with one of these errors,
//! boxed as [`BoxError`](crate::BoxError) like every tower error:
//!
//! | error | raised by | means |
//! |-------|-----------|-------|
//! | [`CircuitOpen`] | breaker | the peer is failing; try again after `retry_after` |
//! | [`Overloaded`] | shedder | this service is at capacity; back off |
//! | [`BudgetExhausted`] | budget | the rate budget is spent until `retry_after` |
//! | [`Elapsed`] | timeout | the call took longer than its deadline |
//! | [`DeadlineExceeded`] | any layer, `seawall-deadline` | the caller's deadline passed: nobody waits for the answer |
//!
//! Errors travel up through other layers, which may wrap them (a retry layer
//! reports its last attempt's error as its `source()`). [`Rejection::find`]
//! walks the `source()` chain and finds a seawall rejection however deep it
//! sits, so any layer or handler can ask "was this refused, and when may I try
//! again?" without knowing which crate refused it.
//!
//! All are cheap to build: no allocation beyond the `Box` the tower
//! convention costs, since a key is a [`KeyLabel`]: a short label is kept
//! inline, a long one is a shared `Arc<str>`.

use std::error::Error;
use std::fmt::{self, Write as _};

use crate::key::Escaped;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

/// Bytes a [`KeyLabel`] keeps inline, without allocating.
const INLINE_LABEL: usize = 38;

/// The key a rejection names: a short text kept inline (up to 38 bytes: any
/// number, address, host and port or tenant id of ordinary length), or a
/// shared `Arc<str>`.
///
/// Keyed layers keep no label per key (it would cost every key memory for
/// the few that are ever refused); they write the key's `Display` into a
/// label when they refuse, which allocates nothing unless it is long.
///
/// ```
/// use seawall_core::rejection::{BudgetExhausted, KeyLabel};
/// use std::time::Duration;
///
/// let label = KeyLabel::display(&10_042u64);
/// assert_eq!(&*label, "10042");
/// let err = BudgetExhausted::new(Duration::from_secs(1)).with_key(label);
/// assert_eq!(err.key(), Some("10042"));
/// ```
#[derive(Clone)]
pub struct KeyLabel(Label);

#[derive(Clone)]
enum Label {
    Inline { len: u8, bytes: [u8; INLINE_LABEL] },
    Shared(Arc<str>),
}

impl KeyLabel {
    /// The `Display` of `key`, inline when it fits in 38 bytes (no
    /// allocation), else shared.
    pub fn display(key: &(impl fmt::Display + ?Sized)) -> KeyLabel {
        let mut inline = Inline::default();
        if write!(inline, "{key}").is_ok() {
            return KeyLabel(Label::Inline {
                len: inline.len as u8,
                bytes: inline.bytes,
            });
        }
        KeyLabel(Label::Shared(Arc::from(key.to_string())))
    }
}

struct Inline {
    bytes: [u8; INLINE_LABEL],
    len: usize,
}

impl Default for Inline {
    fn default() -> Self {
        Inline {
            bytes: [0; INLINE_LABEL],
            len: 0,
        }
    }
}

impl fmt::Write for Inline {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dest = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Deref for KeyLabel {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            // Only whole `&str`s are copied in (`write_str`), so the prefix is
            // UTF-8; the empty fallback is unreachable.
            Label::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Label::Shared(s) => s,
        }
    }
}

impl fmt::Debug for KeyLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The label with its control characters escaped ([`Escaped`]): it is
/// printed into logs and messages, and keys come from requests.
impl fmt::Display for KeyLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped(&**self).fmt(f)
    }
}

impl PartialEq for KeyLabel {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for KeyLabel {}

impl From<&str> for KeyLabel {
    fn from(s: &str) -> Self {
        KeyLabel::display(s)
    }
}

impl From<String> for KeyLabel {
    fn from(s: String) -> Self {
        if s.len() <= INLINE_LABEL {
            KeyLabel::display(s.as_str())
        } else {
            KeyLabel(Label::Shared(Arc::from(s)))
        }
    }
}

impl From<Arc<str>> for KeyLabel {
    fn from(s: Arc<str>) -> Self {
        KeyLabel(Label::Shared(s))
    }
}

impl From<&Arc<str>> for KeyLabel {
    fn from(s: &Arc<str>) -> Self {
        KeyLabel(Label::Shared(s.clone()))
    }
}

/// Which kind of rejection an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// A circuit breaker is open (see [`CircuitOpen`]).
    CircuitOpen,
    /// A shedder refused the call (see [`Overloaded`]).
    Overloaded,
    /// A rate budget is spent (see [`BudgetExhausted`]).
    BudgetExhausted,
    /// A deadline passed (see [`Elapsed`]).
    Elapsed,
    /// The caller's deadline passed (see [`DeadlineExceeded`]).
    DeadlineExceeded,
}

impl RejectionKind {
    /// A stable snake_case name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::CircuitOpen => "circuit_open",
            RejectionKind::Overloaded => "overloaded",
            RejectionKind::BudgetExhausted => "budget_exhausted",
            RejectionKind::Elapsed => "elapsed",
            RejectionKind::DeadlineExceeded => "deadline_exceeded",
        }
    }

    /// Whether a caller may retry this kind of rejection at all.
    ///
    /// `Overloaded` and `BudgetExhausted` mean "back off": retrying them
    /// multiplies the load that caused them. `Elapsed` may be retried.
    /// `CircuitOpen` may be retried after its `retry_after`.
    /// `DeadlineExceeded` may not: the caller has given up, nobody waits
    /// for another attempt.
    pub fn is_retryable(self) -> bool {
        matches!(self, RejectionKind::Elapsed | RejectionKind::CircuitOpen)
    }

    /// Whether the call was refused before it reached the service.
    ///
    /// `CircuitOpen`, `Overloaded`, `BudgetExhausted` and
    /// `DeadlineExceeded` are refusals: a
    /// layer turned the call away, so the outcome says nothing about the
    /// service's health, and a breaker or adaptive limit above that layer
    /// does not count it as a failure. `Elapsed` is not: the service was
    /// called and was too slow.
    ///
    /// This is the answer for the kind alone. A `DeadlineExceeded` that cut
    /// a call already running ([`DeadlineExceeded::was_running`]) is not a
    /// refusal: the service had the call and had not answered by the
    /// caller's deadline. [`Rejection::is_refusal`] tells the two apart;
    /// layers that judge a service use it.
    pub fn is_refusal(self) -> bool {
        !matches!(self, RejectionKind::Elapsed)
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most characters of a key a rejection's message shows.
const MAX_KEY_TEXT: usize = 128;

// Keys often come from requests: a message must not carry a line break an
// attacker put there (a forged log line), nor a key of any length.
fn fmt_key(f: &mut fmt::Formatter<'_>, key: &Option<KeyLabel>) -> fmt::Result {
    let Some(k) = key else {
        return Ok(());
    };
    match k.char_indices().nth(MAX_KEY_TEXT) {
        Some((cut, _)) => write!(f, " for `{}…`", Escaped(&k[..cut])),
        None => write!(f, " for `{}`", Escaped(&**k)),
    }
}

/// Why a breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpenState {
    /// The breaker tripped and is open.
    Open,
    /// The breaker is half-open and all its probe slots are taken.
    HalfOpen,
    /// The breaker was forced open by an operator; it has no end time.
    ForcedOpen,
}

/// A circuit breaker refused the call: the peer has been failing.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::rejection::{CircuitOpen, OpenState};
///
/// let err = CircuitOpen::new(Some(Duration::from_secs(30))).with_key("db-2");
/// assert_eq!(err.state(), OpenState::Open);
/// assert_eq!(err.to_string(), "circuit open for `db-2`; retry after 30s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    key: Option<KeyLabel>,
    state: OpenState,
    retry_after: Option<Duration>,
}

impl CircuitOpen {
    /// An open breaker that will admit a probe after `retry_after`.
    pub fn new(retry_after: Option<Duration>) -> Self {
        CircuitOpen {
            key: None,
            state: OpenState::Open,
            retry_after,
        }
    }

    /// Names the key (peer, host, route) whose breaker refused the call.
    pub fn with_key(mut self, key: impl Into<KeyLabel>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets why the breaker refused (default [`OpenState::Open`]).
    pub fn with_state(mut self, state: OpenState) -> Self {
        self.state = state;
        self
    }

    /// The key whose breaker refused the call, for keyed breakers.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Why the breaker refused.
    pub fn state(&self) -> OpenState {
        self.state
    }

    /// How long until the breaker admits a probe; `None` when forced open.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            OpenState::Open => f.write_str("circuit open")?,
            OpenState::HalfOpen => f.write_str("circuit half-open and all probe slots taken")?,
            OpenState::ForcedOpen => f.write_str("circuit forced open")?,
        }
        fmt_key(f, &self.key)?;
        if let Some(after) = self.retry_after {
            write!(f, "; retry after {after:?}")?;
        }
        Ok(())
    }
}

impl Error for CircuitOpen {}

/// Why a shedder refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverloadReason {
    /// The hard in-flight limit was reached.
    HardLimit,
    /// Shed at random in the band between the soft and the hard limit.
    Probabilistic,
    /// Shed to keep room for requests of a higher priority.
    Priority,
    /// Waited in the queue longer than the maximum queue delay.
    QueueDelay,
    /// The wait queue was full.
    QueueFull,
    /// The process is short of memory.
    MemoryPressure,
}

impl OverloadReason {
    /// A stable snake_case name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OverloadReason::HardLimit => "hard_limit",
            OverloadReason::Probabilistic => "probabilistic",
            OverloadReason::Priority => "priority",
            OverloadReason::QueueDelay => "queue_delay",
            OverloadReason::QueueFull => "queue_full",
            OverloadReason::MemoryPressure => "memory_pressure",
        }
    }
}

impl fmt::Display for OverloadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OverloadReason::HardLimit => "in-flight limit reached",
            OverloadReason::Probabilistic => "shed in the probabilistic band",
            OverloadReason::Priority => "shed by priority",
            OverloadReason::QueueDelay => "waited longer than the maximum queue delay",
            OverloadReason::QueueFull => "wait queue full",
            OverloadReason::MemoryPressure => "memory pressure",
        })
    }
}

/// A shedder refused the call: the service is at capacity. Back off; do not
/// retry at once.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{Overloaded, OverloadReason};
///
/// let err = Overloaded::new(OverloadReason::HardLimit).with_retry_after(Duration::from_millis(50));
/// assert_eq!(err.to_string(), "overloaded: in-flight limit reached; retry after 50ms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overloaded {
    reason: OverloadReason,
    retry_after: Option<Duration>,
}

impl Overloaded {
    /// A rejection for `reason`.
    pub fn new(reason: OverloadReason) -> Self {
        Overloaded {
            reason,
            retry_after: None,
        }
    }

    /// Suggests when to try again.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Why the call was shed.
    pub fn reason(&self) -> OverloadReason {
        self.reason
    }

    /// A suggested delay before trying again, if the shedder has one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "overloaded: {}", self.reason)?;
        if let Some(after) = self.retry_after {
            write!(f, "; retry after {after:?}")?;
        }
        Ok(())
    }
}

impl Error for Overloaded {}

/// A rate budget is spent: no call is admitted before `retry_after`.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::BudgetExhausted;
///
/// let err = BudgetExhausted::new(Duration::from_millis(4)).with_key("tenant-9");
/// assert_eq!(err.to_string(), "budget exhausted for `tenant-9`; retry after 4ms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExhausted {
    key: Option<KeyLabel>,
    retry_after: Duration,
}

impl BudgetExhausted {
    /// A budget that has its next token in `retry_after`.
    pub fn new(retry_after: Duration) -> Self {
        BudgetExhausted {
            key: None,
            retry_after,
        }
    }

    /// Names the key whose budget is spent, for keyed budgets.
    pub fn with_key(mut self, key: impl Into<KeyLabel>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The key whose budget is spent, for keyed budgets.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// How long until the budget admits a call.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("budget exhausted")?;
        fmt_key(f, &self.key)?;
        write!(f, "; retry after {:?}", self.retry_after)
    }
}

impl Error for BudgetExhausted {}

/// A call ran past its deadline and was cancelled.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::Elapsed;
///
/// let err = Elapsed::new(Duration::from_millis(120)).with_key("search");
/// assert_eq!(err.to_string(), "deadline of 120ms elapsed for `search`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elapsed {
    after: Duration,
    key: Option<KeyLabel>,
}

impl Elapsed {
    /// A call cancelled after `after`.
    pub fn new(after: Duration) -> Self {
        Elapsed { after, key: None }
    }

    /// Names the key (operation, peer) whose deadline passed.
    pub fn with_key(mut self, key: impl Into<KeyLabel>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The deadline that passed.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The key whose deadline passed, for keyed timeouts.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline of {:?} elapsed", self.after)?;
        fmt_key(f, &self.key)
    }
}

impl Error for Elapsed {}

/// The caller's deadline passed: nobody is waiting for the answer, so the
/// work was refused before it started, or dropped when the deadline came.
///
/// Raised by `seawall-deadline`'s layers for a request that arrives (or
/// would leave) with no time left, or whose deadline passes while it runs;
/// by any seawall layer asked to start work after the current
/// [`Deadline`](crate::Deadline) has passed (a retry, a wait for a budget
/// token or a queue slot); and by the adaptive timeout when the caller's
/// deadline, not its own, cut the call short. Never retryable: the caller
/// has given up.
///
/// Two cases, told apart by [`was_running`](Self::was_running):
///
/// - **refused before start** ([`new`](Self::new)): the service did no
///   work, so it is a refusal ([`Rejection::is_refusal`]) and counts against
///   no peer's health: the caller's hurry says nothing about the peer;
/// - **cut short while running** ([`while_running`](Self::while_running)):
///   the service had the call and had not answered by the caller's
///   deadline. Not a refusal: a breaker or adaptive limit above counts it
///   as a failure (as it would an [`Elapsed`]), or a peer that hangs would
///   never trip a breaker whose callers all carry deadlines. It is still
///   no latency sample: the call was cut by the caller, not by its own
///   timeout.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::{DeadlineExceeded, Rejection, RejectionKind, BoxError};
///
/// let err: BoxError = DeadlineExceeded::new(Duration::from_millis(3)).into();
/// assert_eq!(err.to_string(), "the caller's deadline passed 3ms ago");
/// let kind = Rejection::find(&*err).unwrap().kind();
/// assert_eq!(kind, RejectionKind::DeadlineExceeded);
/// assert!(!kind.is_retryable() && kind.is_refusal());
///
/// let cut: BoxError = DeadlineExceeded::new(Duration::ZERO).while_running().into();
/// let found = Rejection::find(&*cut).unwrap();
/// assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
/// assert!(!found.is_refusal());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineExceeded {
    past: Duration,
    running: bool,
    key: Option<KeyLabel>,
}

impl DeadlineExceeded {
    /// A call refused before it started because the caller's deadline
    /// passed `past` ago.
    pub fn new(past: Duration) -> Self {
        DeadlineExceeded {
            past,
            running: false,
            key: None,
        }
    }

    /// Marks the call as cut short while it ran: the service had it and had
    /// not answered by the caller's deadline (see the type's docs).
    pub fn while_running(mut self) -> Self {
        self.running = true;
        self
    }

    /// Whether the call was cut short while it ran (`true`), rather than
    /// refused before it started (`false`).
    pub fn was_running(&self) -> bool {
        self.running
    }

    /// Names the key (operation, peer) of the refused call.
    pub fn with_key(mut self, key: impl Into<KeyLabel>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// How long ago the deadline passed when the call was refused.
    pub fn past(&self) -> Duration {
        self.past
    }

    /// The key of the refused call, when the layer is keyed.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.running {
            f.write_str("the caller's deadline passed while the call ran")?;
            return fmt_key(f, &self.key);
        }
        write!(f, "the caller's deadline passed {:?} ago", self.past)?;
        fmt_key(f, &self.key)
    }
}

impl Error for DeadlineExceeded {}

/// A seawall rejection found in an error chain; see [`Rejection::find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection<'a> {
    /// A [`CircuitOpen`].
    CircuitOpen(&'a CircuitOpen),
    /// An [`Overloaded`].
    Overloaded(&'a Overloaded),
    /// A [`BudgetExhausted`].
    BudgetExhausted(&'a BudgetExhausted),
    /// An [`Elapsed`].
    Elapsed(&'a Elapsed),
    /// A [`DeadlineExceeded`].
    DeadlineExceeded(&'a DeadlineExceeded),
}

impl<'a> Rejection<'a> {
    /// Finds the first seawall rejection in `err` or its `source()` chain.
    ///
    /// Pass a `BoxError` as `&*err`.
    ///
    /// ```
    /// use std::{error::Error, fmt};
    /// use seawall_core::{BoxError, Overloaded, OverloadReason, Rejection, RejectionKind};
    ///
    /// // Some other layer's error that wraps ours.
    /// #[derive(Debug)]
    /// struct Wrapped(BoxError);
    /// impl fmt::Display for Wrapped {
    ///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("wrapped") }
    /// }
    /// impl Error for Wrapped {
    ///     fn source(&self) -> Option<&(dyn Error + 'static)> { Some(&*self.0) }
    /// }
    ///
    /// let err: BoxError = Box::new(Wrapped(Overloaded::new(OverloadReason::Priority).into()));
    /// let found = Rejection::find(&*err).unwrap();
    /// assert_eq!(found.kind(), RejectionKind::Overloaded);
    ///
    /// let plain: BoxError = "connection refused".into();
    /// assert!(Rejection::find(&*plain).is_none());
    /// ```
    pub fn find(err: &'a (dyn Error + 'static)) -> Option<Rejection<'a>> {
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(r) = Self::of(e) {
                return Some(r);
            }
            next = e.source();
        }
        None
    }

    /// Finds a seawall rejection in an error of any `'static` type.
    ///
    /// Where [`find`](Rejection::find) takes a `&dyn Error`, this takes the
    /// error a service returned, whatever its type: a [`BoxError`] (found in
    /// it and its sources), one of the rejection types itself, or (feature
    /// `tonic`) a `tonic::Status` whose source chain holds one. Other types
    /// give `None`. Layers use it to tell a refusal from below from a
    /// failure of the service (see [`RejectionKind::is_refusal`]).
    ///
    /// ```
    /// use seawall_core::{BoxError, BudgetExhausted, Rejection, RejectionKind};
    /// use std::time::Duration;
    ///
    /// let boxed: BoxError = BudgetExhausted::new(Duration::from_millis(5)).into();
    /// let kind = Rejection::find_in(&boxed).map(|r| r.kind());
    /// assert_eq!(kind, Some(RejectionKind::BudgetExhausted));
    /// assert!(Rejection::find_in(&std::io::Error::other("reset")).is_none());
    /// ```
    ///
    /// [`BoxError`]: crate::BoxError
    pub fn find_in<E: std::any::Any>(err: &'a E) -> Option<Rejection<'a>> {
        let any: &'a dyn std::any::Any = err;
        if let Some(e) = any.downcast_ref::<crate::BoxError>() {
            return Rejection::find(&**e);
        }
        if let Some(e) = any.downcast_ref::<Box<dyn Error + Send + 'static>>() {
            return Rejection::find(&**e);
        }
        if let Some(e) = any.downcast_ref::<Box<dyn Error + 'static>>() {
            return Rejection::find(&**e);
        }
        if let Some(e) = any.downcast_ref::<CircuitOpen>() {
            return Some(Rejection::CircuitOpen(e));
        }
        if let Some(e) = any.downcast_ref::<Overloaded>() {
            return Some(Rejection::Overloaded(e));
        }
        if let Some(e) = any.downcast_ref::<BudgetExhausted>() {
            return Some(Rejection::BudgetExhausted(e));
        }
        if let Some(e) = any.downcast_ref::<Elapsed>() {
            return Some(Rejection::Elapsed(e));
        }
        if let Some(e) = any.downcast_ref::<DeadlineExceeded>() {
            return Some(Rejection::DeadlineExceeded(e));
        }
        #[cfg(feature = "tonic")]
        if let Some(status) = any.downcast_ref::<tonic::Status>() {
            return Rejection::find(status);
        }
        None
    }

    /// Whether `err` is a refusal from a seawall layer below (see
    /// [`RejectionKind::is_refusal`]): not a failure of the service.
    pub fn is_refusal_in<E: std::any::Any>(err: &E) -> bool {
        Rejection::find_in(err).is_some_and(|r| r.is_refusal())
    }

    /// Whether this rejection turned the call away before the service did
    /// any work: [`RejectionKind::is_refusal`], except that a
    /// [`DeadlineExceeded`] that cut a running call
    /// ([`DeadlineExceeded::was_running`]) is not a refusal.
    pub fn is_refusal(&self) -> bool {
        match self {
            Rejection::DeadlineExceeded(e) => !e.was_running(),
            other => other.kind().is_refusal(),
        }
    }

    /// The rejection `err` itself is, without walking its sources.
    pub fn of(err: &'a (dyn Error + 'static)) -> Option<Rejection<'a>> {
        if let Some(e) = err.downcast_ref::<CircuitOpen>() {
            Some(Rejection::CircuitOpen(e))
        } else if let Some(e) = err.downcast_ref::<Overloaded>() {
            Some(Rejection::Overloaded(e))
        } else if let Some(e) = err.downcast_ref::<BudgetExhausted>() {
            Some(Rejection::BudgetExhausted(e))
        } else if let Some(e) = err.downcast_ref::<Elapsed>() {
            Some(Rejection::Elapsed(e))
        } else {
            err.downcast_ref::<DeadlineExceeded>()
                .map(Rejection::DeadlineExceeded)
        }
    }

    /// Which kind of rejection this is.
    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::CircuitOpen(_) => RejectionKind::CircuitOpen,
            Rejection::Overloaded(_) => RejectionKind::Overloaded,
            Rejection::BudgetExhausted(_) => RejectionKind::BudgetExhausted,
            Rejection::Elapsed(_) => RejectionKind::Elapsed,
            Rejection::DeadlineExceeded(_) => RejectionKind::DeadlineExceeded,
        }
    }

    /// The key the rejection concerns, for keyed layers.
    pub fn key(&self) -> Option<&'a str> {
        match self {
            Rejection::CircuitOpen(e) => e.key(),
            Rejection::Overloaded(_) => None,
            Rejection::BudgetExhausted(e) => e.key(),
            Rejection::Elapsed(e) => e.key(),
            Rejection::DeadlineExceeded(e) => e.key(),
        }
    }

    /// When the caller may try again, if the layer knows.
    ///
    /// `Elapsed` has none: the next attempt may be made at once.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Rejection::CircuitOpen(e) => e.retry_after(),
            Rejection::Overloaded(e) => e.retry_after(),
            Rejection::BudgetExhausted(e) => Some(e.retry_after()),
            Rejection::Elapsed(_) | Rejection::DeadlineExceeded(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_inline_up_to_38_bytes() {
        let short = KeyLabel::display(&u64::MAX);
        assert!(matches!(short.0, Label::Inline { .. }));
        assert_eq!(&*short, "18446744073709551615");
        let exact = "k".repeat(INLINE_LABEL);
        assert!(matches!(
            KeyLabel::from(exact.as_str()).0,
            Label::Inline { .. }
        ));
        assert_eq!(&*KeyLabel::from(exact.as_str()), exact);
        let long = "k".repeat(INLINE_LABEL + 1);
        assert!(matches!(KeyLabel::from(long.clone()).0, Label::Shared(_)));
        assert_eq!(&*KeyLabel::display(long.as_str()), long);
        // Multi-byte text that straddles the end is not cut inside a char.
        let wide = "é".repeat(20);
        assert_eq!(&*KeyLabel::display(wide.as_str()), wide);
        let shared: Arc<str> = Arc::from("peer");
        assert_eq!(KeyLabel::from(&shared), KeyLabel::from("peer"));
        assert_eq!(format!("{:?}", KeyLabel::from("a\nb")), "\"a\\nb\"");
    }

    #[test]
    fn keys_in_messages_are_escaped_and_cut() {
        let err = BudgetExhausted::new(Duration::from_secs(1)).with_key("t\r\nSet-Cookie: x");
        let text = err.to_string();
        assert!(!text.contains('\r') && !text.contains('\n'), "{text}");
        assert!(text.contains("t\\r\\nSet-Cookie: x"), "{text}");
        assert_eq!(
            err.key(),
            Some("t\r\nSet-Cookie: x"),
            "the key itself is kept"
        );
        let long = "k".repeat(10_000);
        let text = CircuitOpen::new(None).with_key(long.as_str()).to_string();
        assert!(text.len() < 400, "{}", text.len());
        assert!(text.contains("…"));
    }
    use crate::BoxError;

    #[test]
    fn find_in_sees_boxed_plain_and_wrapped_rejections() {
        let boxed: BoxError = Overloaded::new(OverloadReason::HardLimit).into();
        assert!(Rejection::is_refusal_in(&boxed));
        let wrapped: BoxError = Box::new(Wrap("outer", boxed));
        assert!(Rejection::is_refusal_in(&wrapped));
        assert!(Rejection::is_refusal_in(&CircuitOpen::new(None)));
        let elapsed = Elapsed::new(Duration::from_millis(1));
        assert_eq!(
            Rejection::find_in(&elapsed).map(|r| r.kind()),
            Some(RejectionKind::Elapsed)
        );
        assert!(
            !Rejection::is_refusal_in(&elapsed),
            "a timeout is a failure"
        );
        let other: BoxError = "connection reset".into();
        assert!(Rejection::find_in(&other).is_none());
        assert!(Rejection::find_in(&std::io::Error::other("x")).is_none());
        assert!(Rejection::find_in(&"refused").is_none());
    }

    #[derive(Debug)]
    struct Wrap(&'static str, BoxError);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    #[test]
    fn a_rejection_wrapped_twice_is_still_found() {
        let inner: BoxError = BudgetExhausted::new(Duration::from_millis(7))
            .with_key("k")
            .into();
        let err: BoxError = Box::new(Wrap("outer", Box::new(Wrap("middle", inner))));
        let r = Rejection::find(&*err).expect("found through two wrappers");
        assert_eq!(r.kind(), RejectionKind::BudgetExhausted);
        assert_eq!(r.key(), Some("k"));
        assert_eq!(r.retry_after(), Some(Duration::from_millis(7)));
        // `of` does not walk.
        assert!(Rejection::of(&*err).is_none());
    }

    #[test]
    fn every_kind_is_recognised_with_its_fields() {
        let cases: Vec<(BoxError, RejectionKind, Option<&str>, Option<Duration>)> = vec![
            (
                CircuitOpen::new(Some(Duration::from_secs(30)))
                    .with_key("a")
                    .into(),
                RejectionKind::CircuitOpen,
                Some("a"),
                Some(Duration::from_secs(30)),
            ),
            (
                CircuitOpen::new(None)
                    .with_state(OpenState::ForcedOpen)
                    .into(),
                RejectionKind::CircuitOpen,
                None,
                None,
            ),
            (
                Overloaded::new(OverloadReason::QueueDelay)
                    .with_retry_after(Duration::from_millis(5))
                    .into(),
                RejectionKind::Overloaded,
                None,
                Some(Duration::from_millis(5)),
            ),
            (
                BudgetExhausted::new(Duration::from_millis(1)).into(),
                RejectionKind::BudgetExhausted,
                None,
                Some(Duration::from_millis(1)),
            ),
            (
                Elapsed::new(Duration::from_millis(9)).with_key("op").into(),
                RejectionKind::Elapsed,
                Some("op"),
                None,
            ),
            (
                DeadlineExceeded::new(Duration::ZERO).with_key("op").into(),
                RejectionKind::DeadlineExceeded,
                Some("op"),
                None,
            ),
        ];
        for (err, kind, key, after) in cases {
            let r = Rejection::find(&*err).unwrap();
            assert_eq!(r.kind(), kind, "{err}");
            assert_eq!(r.key(), key, "{err}");
            assert_eq!(r.retry_after(), after, "{err}");
        }
    }

    #[test]
    fn other_errors_are_not_rejections() {
        let err: BoxError = std::io::Error::other("boom").into();
        assert!(Rejection::find(&*err).is_none());
    }

    #[test]
    fn messages_explain_themselves() {
        assert_eq!(
            CircuitOpen::new(Some(Duration::from_millis(1500)))
                .with_state(OpenState::HalfOpen)
                .to_string(),
            "circuit half-open and all probe slots taken; retry after 1.5s"
        );
        assert_eq!(
            CircuitOpen::new(None)
                .with_state(OpenState::ForcedOpen)
                .with_key("p")
                .to_string(),
            "circuit forced open for `p`"
        );
        assert_eq!(
            Overloaded::new(OverloadReason::MemoryPressure).to_string(),
            "overloaded: memory pressure"
        );
        assert_eq!(
            Elapsed::new(Duration::from_secs(2)).to_string(),
            "deadline of 2s elapsed"
        );
    }

    #[test]
    fn only_timeouts_and_open_circuits_are_retryable() {
        assert!(RejectionKind::Elapsed.is_retryable());
        assert!(RejectionKind::CircuitOpen.is_retryable());
        assert!(!RejectionKind::Overloaded.is_retryable());
        assert!(!RejectionKind::BudgetExhausted.is_retryable());
        assert!(!RejectionKind::DeadlineExceeded.is_retryable());
        assert!(RejectionKind::DeadlineExceeded.is_refusal());
        // Cut short while running: a failure of the service, still not
        // retryable.
        let cut: crate::BoxError = DeadlineExceeded::new(Duration::ZERO).while_running().into();
        assert!(!Rejection::is_refusal_in(&cut));
        let found = Rejection::find(&*cut).unwrap();
        assert!(!found.kind().is_retryable() && !found.is_refusal());
        assert_eq!(
            cut.to_string(),
            "the caller's deadline passed while the call ran"
        );
        assert!(Rejection::is_refusal_in(&DeadlineExceeded::new(
            Duration::ZERO
        )));
        assert_eq!(RejectionKind::BudgetExhausted.as_str(), "budget_exhausted");
        assert_eq!(OverloadReason::QueueFull.as_str(), "queue_full");
    }
}

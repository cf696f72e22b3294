//! Typed events: what the layers of this process did that an operator
//! wants to hear about as it happens (a breaker opening, a shedder's limit
//! moving, a budget running dry, a Redis budget falling back to its local
//! policy, a fallback answering), delivered to whoever listens.
//!
//! What it guarantees:
//!
//! - **Nobody listening costs one relaxed atomic load.** Every emit point
//!   takes a closure that builds its [`Event`]; with no subscriber the closure
//!   is never called, so nothing is built, formatted or allocated.
//! - **A slow subscriber never blocks a call.** A [`Subscriber`] is a bounded
//!   channel: an event that finds it full is dropped and counted
//!   ([`Subscriber::dropped`], and the `seawall_events_dropped_total` counter
//!   with the `metrics` feature). Memory is bounded by the capacities the
//!   subscribers chose, and a channel's queue grows as it fills, it does not
//!   reserve its capacity.
//! - **Floods are folded.** Events that can happen on every call (a budget
//!   refusing, a fallback answering, an adaptive limit moving) are throttled
//!   by the layer: at most one per layer per second ([`THROTTLE`]), carrying
//!   how many occurrences it stands for, or the net change.
//! - **Dropping a subscriber unsubscribes it**, as does dropping a
//!   [`CallbackGuard`].
//!
//! # One hub per process
//!
//! Subscribers attach to one hub per process, as a `tracing` subscriber
//! attaches to the global dispatcher: a layer needs no handle to report to,
//! so no builder grows an `events(..)` setting and a stack loaded from a file
//! reports like one built by hand. Each event names its layer
//! ([`Event::layer`], the name given in the layer's builder), so a
//! subscriber that cares about some layers filters on that name.
//!
//! # Callbacks
//!
//! [`on_event`] runs a closure for every event, on the thread that emitted
//! it, before the emitting call goes on. No lock of the hub is held while it
//! runs, and a layer that emits while holding a lock of its own (a breaker
//! changing state) hands the event over only once it has released it (see
//! [`Defer`]). So a callback **may** call any seawall API, including the
//! layer that emitted (`stats()`, `force_open()`), subscribe, or drop its own
//! guard. It **should** be quick and must not block: it delays the call that
//! emitted. Events that a callback causes are delivered too (bounding that
//! recursion is the callback's business). A callback that panics is caught
//! and the call goes on (the panic hook still reports it). For anything slow
//! (a network write, a log shipper), use a [`Subscriber`] and a task.
//!
//! # Time
//!
//! [`Event::time`] is the wall clock ([`SystemTime`]) when the event was
//! built: an event is read by people and by other processes (logs, an
//! incident timeline), who need a time they can compare across layers and
//! machines. A layer's [`Clock`] reading is nanoseconds since an origin
//! private to that layer, meaningless outside it. The throttles, which are
//! behaviour and not a report, run on the layer's [`Clock`], so paused-time
//! and manual-clock tests drive them.
//!
//! # Example
//!
//! ```
//! use seawall_core::event::{self, Event, EventKind};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut events = event::subscribe(64);
//! // What a layer does at a state change (here by hand):
//! event::emit(|| Event::new("payments", EventKind::fallback_used(1)));
//! loop {
//!     let e = events.recv().await;
//!     // The hub is per process: keep the events of the layers you watch.
//!     if &*e.layer == "payments" {
//!         assert!(matches!(e.kind, EventKind::FallbackUsed { count: 1, .. }));
//!         break;
//!     }
//! }
//! assert_eq!(events.dropped(), 0);
//! # });
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use crate::Clock;
use crate::time::nanos;

/// The longest a subscriber's channel may be (2^24 events).
pub const MAX_CAPACITY: usize = 1 << 24;

/// How often a throttled event may be emitted per layer: once a second.
pub const THROTTLE: Duration = Duration::from_secs(1);

/// Events emitted while a [`Defer`] is held on one thread, kept until it is
/// released; beyond this many the extra ones are dropped (and counted, as a
/// full channel's are), so no lock scope can grow memory without bound.
const MAX_DEFERRED: usize = 64;

/// Something a layer did, as told to [`Subscriber`]s and [`on_event`]
/// callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The layer's name, as given in its builder (`"default"` when none was).
    pub layer: Arc<str>,
    /// The key (peer, host, route) of a keyed layer's event, rendered with
    /// `Display`; `None` for an unkeyed layer.
    pub key: Option<String>,
    /// The wall-clock time the event was built (see the [module
    /// docs](self#time) for why not the layer's clock).
    pub time: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// An event of layer `layer`, now, with no key.
    pub fn new(layer: impl Into<Arc<str>>, kind: EventKind) -> Event {
        Event {
            layer: layer.into(),
            key: None,
            time: SystemTime::now(),
            kind,
        }
    }

    /// The same event for key `key` (rendered with `Display`).
    pub fn with_key(mut self, key: impl fmt::Display) -> Event {
        self.key = Some(key.to_string());
        self
    }
}

/// What happened, with the data of its kind.
///
/// Both the enum and each variant are `#[non_exhaustive]`: match with `..`;
/// make one with the associated functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A circuit breaker changed state (a keyed breaker's event has the key).
    #[non_exhaustive]
    BreakerTransition {
        /// The state it left.
        from: BreakerState,
        /// The state it entered.
        to: BreakerState,
    },
    /// A shedder's in-flight limit changed (an adaptive limit moved, or a
    /// reload set it). Throttled: at most one event per [`THROTTLE`], from
    /// the limit the previous event reported to the limit now.
    #[non_exhaustive]
    ShedLimitChanged {
        /// The limit the layer last reported (its first limit before any
        /// event).
        old: usize,
        /// The limit now.
        new: usize,
    },
    /// A memory-pressure signal changed level.
    #[non_exhaustive]
    PressureChanged {
        /// The level it left.
        old: PressureLevel,
        /// The level it entered.
        new: PressureLevel,
    },
    /// A budget refused calls because it was spent. Throttled: at most one
    /// event per layer per [`THROTTLE`]; `refused` counts the refusals since
    /// the previous event (of every key, for a keyed budget: the event's key
    /// is the one refused when the event was emitted).
    #[non_exhaustive]
    BudgetExhausted {
        /// Refusals this event stands for (at least 1).
        refused: u64,
    },
    /// A shared budget switched between its backend (Redis) and its local
    /// fallback policy.
    #[non_exhaustive]
    BackendSwitched {
        /// The backend in force from now on.
        to: BudgetBackend,
    },
    /// A fallback layer answered calls with its backup. Throttled like
    /// [`BudgetExhausted`](EventKind::BudgetExhausted).
    #[non_exhaustive]
    FallbackUsed {
        /// Calls answered by the backup that this event stands for (at
        /// least 1).
        count: u64,
    },
}

impl EventKind {
    /// [`EventKind::BreakerTransition`].
    pub fn breaker_transition(from: BreakerState, to: BreakerState) -> EventKind {
        EventKind::BreakerTransition { from, to }
    }

    /// [`EventKind::ShedLimitChanged`].
    pub fn shed_limit_changed(old: usize, new: usize) -> EventKind {
        EventKind::ShedLimitChanged { old, new }
    }

    /// [`EventKind::PressureChanged`].
    pub fn pressure_changed(old: PressureLevel, new: PressureLevel) -> EventKind {
        EventKind::PressureChanged { old, new }
    }

    /// [`EventKind::BudgetExhausted`].
    pub fn budget_exhausted(refused: u64) -> EventKind {
        EventKind::BudgetExhausted { refused }
    }

    /// [`EventKind::BackendSwitched`].
    pub fn backend_switched(to: BudgetBackend) -> EventKind {
        EventKind::BackendSwitched { to }
    }

    /// [`EventKind::FallbackUsed`].
    pub fn fallback_used(count: u64) -> EventKind {
        EventKind::FallbackUsed { count }
    }

    /// A stable snake_case name of the kind (`breaker_transition`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::BreakerTransition { .. } => "breaker_transition",
            EventKind::ShedLimitChanged { .. } => "shed_limit_changed",
            EventKind::PressureChanged { .. } => "pressure_changed",
            EventKind::BudgetExhausted { .. } => "budget_exhausted",
            EventKind::BackendSwitched { .. } => "backend_switched",
            EventKind::FallbackUsed { .. } => "fallback_used",
        }
    }
}

/// A circuit breaker's state, as events report it (the breaker crate's
/// `State`, which this crate cannot name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// A few probes pass.
    HalfOpen,
    /// Forced open by an operator.
    ForcedOpen,
    /// Forced closed (disabled) by an operator.
    ForcedClosed,
}

impl BreakerState {
    /// The snake_case name the `state` metric label uses.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::ForcedClosed => "forced_closed",
        }
    }
}

/// A memory-pressure level, as events report it (the shedder's
/// `PressureLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PressureLevel {
    /// No pressure.
    Normal,
    /// Above the first threshold.
    Elevated,
    /// Above the second threshold.
    Severe,
}

impl PressureLevel {
    /// The snake_case name (`normal`, `elevated`, `severe`).
    pub fn as_str(self) -> &'static str {
        match self {
            PressureLevel::Normal => "normal",
            PressureLevel::Elevated => "elevated",
            PressureLevel::Severe => "severe",
        }
    }
}

/// Where a shared budget's decisions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BudgetBackend {
    /// The shared store (Redis).
    Redis,
    /// The local fallback policy: the store did not answer.
    Fallback,
}

impl BudgetBackend {
    /// The snake_case name the `state` metric label uses (`redis`, `fallback`).
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetBackend::Redis => "redis",
            BudgetBackend::Fallback => "fallback",
        }
    }
}

// ---------------------------------------------------------------------------
// The hub.

/// Subscribers and callbacks now: 0 makes every emit point a single load.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Every sink, copied on write: an emit clones the `Arc` under a read lock
/// and delivers with no lock held, so a callback may subscribe or
/// unsubscribe.
static SINKS: RwLock<Option<Arc<[Sink]>>> = RwLock::new(None);

#[derive(Clone)]
struct Sink {
    id: u64,
    to: To,
}

#[derive(Clone)]
enum To {
    Channel(Arc<Channel>),
    Callback(Arc<dyn Fn(&Event) + Send + Sync>),
}

fn attach(to: To) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut sinks = SINKS.write().unwrap_or_else(PoisonError::into_inner);
    let mut next: Vec<Sink> = sinks.as_deref().unwrap_or_default().to_vec();
    next.push(Sink { id, to });
    ACTIVE.store(next.len(), Ordering::Relaxed);
    *sinks = Some(next.into());
    id
}

fn detach(id: u64) {
    let mut sinks = SINKS.write().unwrap_or_else(PoisonError::into_inner);
    let next: Vec<Sink> = sinks
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|s| s.id != id)
        .cloned()
        .collect();
    ACTIVE.store(next.len(), Ordering::Relaxed);
    *sinks = if next.is_empty() {
        None
    } else {
        Some(next.into())
    };
}

/// Whether anyone listens: one relaxed atomic load. Emit points that need
/// more than [`emit`] (a throttle's clock reading) ask this first.
#[inline]
pub fn enabled() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// Emits the event `build` makes, if anyone listens; otherwise does nothing
/// and `build` is not called.
#[inline]
pub fn emit(build: impl FnOnce() -> Event) {
    if enabled() {
        dispatch(build());
    }
}

thread_local! {
    // Held `Defer`s on this thread; const-initialised, no destructor, so a
    // `Defer` costs two accesses of a plain cell.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    // Whether `DEFERRED` holds anything: the outermost `Defer` reads this
    // plain cell, not the list (whose destructor makes every access check
    // its thread-local's state).
    static HELD: Cell<bool> = const { Cell::new(false) };
    static DEFERRED: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

#[cold]
#[inline(never)]
fn dispatch(event: Event) {
    if DEPTH.try_with(Cell::get).unwrap_or(0) == 0 {
        deliver(&event);
        return;
    }
    let mut event = Some(event);
    let held = DEFERRED.try_with(|d| {
        let mut d = d.borrow_mut();
        if d.len() < MAX_DEFERRED {
            d.extend(event.take());
            let _ = HELD.try_with(|h| h.set(true));
        }
    });
    match (held, event) {
        (_, None) => {}
        // Too many held back under one lock: dropped, as by a full channel.
        (Ok(()), Some(_)) => drop_for_all(),
        // The thread is being torn down: deliver now.
        (Err(_), Some(event)) => deliver(&event),
    }
}

/// Counts an event no subscriber gets as dropped by every channel.
fn drop_for_all() {
    let sinks = SINKS.read().unwrap_or_else(PoisonError::into_inner).clone();
    for sink in sinks.as_deref().unwrap_or_default() {
        if let To::Channel(channel) = &sink.to {
            count_dropped(channel);
        }
    }
}

fn deliver(event: &Event) {
    let sinks = SINKS.read().unwrap_or_else(PoisonError::into_inner).clone();
    let Some(sinks) = sinks else { return };
    for sink in sinks.iter() {
        match &sink.to {
            To::Channel(channel) => channel.push(event),
            To::Callback(f) => {
                // A panicking callback must not unwind into the call that
                // emitted (it could poison that layer's state); the hook has
                // already reported it. AssertUnwindSafe: the callback only
                // gets a shared reference to the event, which it cannot
                // leave half-changed.
                let _ = catch_unwind(AssertUnwindSafe(|| f(event)));
            }
        }
    }
}

fn count_dropped(channel: &Channel) {
    channel.dropped.fetch_add(1, Ordering::Relaxed);
    #[cfg(feature = "metrics")]
    metrics::counter!(crate::names::EVENTS_DROPPED_TOTAL).increment(1);
}

/// Holds back, on this thread, the delivery of events emitted while it
/// lives, until it is dropped: a layer holds one with each lock it may emit
/// under, so callbacks run after the lock is released and can call back
/// into the layer. Nested guards deliver when the outermost one drops.
///
/// Costs a thread-local increment and decrement (and, when events were
/// held back, their delivery). At most 64 events are held per thread; more
/// are dropped and counted.
///
/// Most users never need it: [`Deferred`] wraps a lock guard with one.
#[derive(Debug)]
#[must_use = "events are held back only while the guard lives"]
pub struct Defer {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Defer {
    /// Starts holding back this thread's events.
    #[inline]
    pub fn new() -> Defer {
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_add(1)));
        Defer {
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Default for Defer {
    fn default() -> Defer {
        Defer::new()
    }
}

impl Drop for Defer {
    #[inline]
    fn drop(&mut self) {
        let outermost = DEPTH
            .try_with(|d| {
                let depth = d.get().saturating_sub(1);
                d.set(depth);
                depth == 0
            })
            .unwrap_or(false);
        if outermost && HELD.try_with(Cell::get).unwrap_or(false) {
            deliver_deferred();
        }
    }
}

#[cold]
#[inline(never)]
fn deliver_deferred() {
    let _ = HELD.try_with(|h| h.set(false));
    let held = DEFERRED
        .try_with(|d| {
            let mut d = d.borrow_mut();
            if d.is_empty() {
                Vec::new()
            } else {
                std::mem::take(&mut *d)
            }
        })
        .unwrap_or_default();
    for event in &held {
        deliver(event);
    }
}

/// A lock guard (or any guard) that holds back this thread's events while
/// it lives and delivers them after the inner guard is released: a layer's
/// `lock()` returns `Deferred<MutexGuard<..>>` instead of the bare guard,
/// and every emit under it is delivered once the lock is free.
#[derive(Debug)]
pub struct Deferred<G> {
    // Declared first, dropped first: the lock is released before the
    // events are delivered.
    guard: G,
    _defer: Defer,
}

impl<G> Deferred<G> {
    /// Wraps `guard`. Take the guard *after* calling this (as the argument
    /// expression does), so that every event emitted while it is held is
    /// deferred.
    #[inline]
    pub fn new(defer: Defer, guard: G) -> Deferred<G> {
        Deferred {
            guard,
            _defer: defer,
        }
    }
}

impl<G: Deref> Deref for Deferred<G> {
    type Target = G::Target;
    #[inline]
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Deferred<G> {
    #[inline]
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

// ---------------------------------------------------------------------------
// Subscribers.

struct Channel {
    capacity: usize,
    state: Mutex<Queue>,
    dropped: AtomicU64,
}

struct Queue {
    events: VecDeque<Event>,
    waker: Option<Waker>,
}

impl Channel {
    fn push(&self, event: &Event) {
        let waker = {
            let mut q = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if q.events.len() >= self.capacity {
                drop(q);
                count_dropped(self);
                return;
            }
            q.events.push_back(event.clone());
            q.waker.take()
        };
        // Woken with no lock held: a waker is the executor's code.
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A bounded channel of every event of the process, from [`subscribe`].
/// Dropping it unsubscribes.
pub struct Subscriber {
    id: u64,
    channel: Arc<Channel>,
}

/// Subscribes a bounded channel of `capacity` events (clamped to
/// `1..=`[`MAX_CAPACITY`]). An event that finds it full is dropped and
/// counted in [`Subscriber::dropped`]; the emitting call never waits.
///
/// The queue grows as it fills; it does not reserve its capacity.
pub fn subscribe(capacity: usize) -> Subscriber {
    let channel = Arc::new(Channel {
        capacity: capacity.clamp(1, MAX_CAPACITY),
        state: Mutex::new(Queue {
            events: VecDeque::new(),
            waker: None,
        }),
        dropped: AtomicU64::new(0),
    });
    let id = attach(To::Channel(Arc::clone(&channel)));
    Subscriber { id, channel }
}

impl Subscriber {
    /// The next event, waiting for one. Cancel-safe: dropping the future
    /// loses no event. The hub lives as long as the process, so this never
    /// ends with "closed".
    pub async fn recv(&mut self) -> Event {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.channel.lock().events.pop_front()
    }

    /// Polls for the next event; wakes `cx` when one arrives.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        let mut q = self.channel.lock();
        if let Some(event) = q.events.pop_front() {
            return Poll::Ready(event);
        }
        match &mut q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Events dropped because this channel was full (or, rarely, because a
    /// thread held back more than 64 events under one lock).
    pub fn dropped(&self) -> u64 {
        self.channel.dropped.load(Ordering::Relaxed)
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        self.channel.lock().events.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity, as clamped.
    pub fn capacity(&self) -> usize {
        self.channel.capacity
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("capacity", &self.channel.capacity)
            .field("len", &self.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        detach(self.id);
    }
}

/// Runs `f` for every event of the process until the returned guard is
/// dropped. See the [module docs](self#callbacks) for what `f` may do.
pub fn on_event<F>(f: F) -> CallbackGuard
where
    F: Fn(&Event) + Send + Sync + 'static,
{
    CallbackGuard {
        id: attach(To::Callback(Arc::new(f))),
    }
}

/// Keeps an [`on_event`] callback subscribed; dropping it unsubscribes.
/// Events already being delivered on other threads may still reach the
/// callback once after the drop.
#[derive(Debug)]
#[must_use = "the callback is unsubscribed when the guard is dropped"]
pub struct CallbackGuard {
    id: u64,
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        detach(self.id);
    }
}

// ---------------------------------------------------------------------------
// Throttles.

/// Folds an occurrence that can happen on every call (a refusal, a
/// fallback) into at most one event per [`THROTTLE`], carrying how many
/// occurrences it stands for. A layer keeps one and calls
/// [`note`](Self::note) where the occurrence happens.
///
/// With nobody listening, `note` is one relaxed load and counts nothing.
/// Occurrences after an event are reported by the next event (the first
/// occurrence a [`THROTTLE`] or more after the previous event), so a count
/// may wait for the next occurrence to be told.
///
/// ```
/// use std::time::Duration;
/// use seawall_core::Clock;
/// use seawall_core::event::{self, EventKind, Throttle};
///
/// let (clock, hand) = Clock::manual();
/// let throttle = Throttle::new(clock);
/// let mut events = event::subscribe(1024);
/// for _ in 0..5 {
///     throttle.note(|n| event::Event::new("doc-throttle", EventKind::budget_exhausted(n)));
/// }
/// hand.advance(Duration::from_secs(1));
/// throttle.note(|n| event::Event::new("doc-throttle", EventKind::budget_exhausted(n)));
/// let mut counts = Vec::new();
/// while let Some(e) = events.try_recv() {
///     if &*e.layer == "doc-throttle" {
///         if let EventKind::BudgetExhausted { refused, .. } = e.kind {
///             counts.push(refused);
///         }
///     }
/// }
/// assert_eq!(counts, [1, 5]);
/// ```
pub struct Throttle {
    clock: Clock,
    // Clock reading (ns) before which no event is emitted.
    next: AtomicU64,
    pending: AtomicU64,
}

impl Throttle {
    /// A throttle reading `clock` (the layer's).
    pub fn new(clock: Clock) -> Throttle {
        Throttle {
            clock,
            next: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; when anyone listens and the last event was a
    /// [`THROTTLE`] or more ago, emits `build(count)` with the occurrences
    /// since then (this one included).
    #[inline]
    pub fn note(&self, build: impl FnOnce(u64) -> Event) {
        if enabled() {
            self.note_slow(build);
        }
    }

    #[cold]
    #[inline(never)]
    fn note_slow(&self, build: impl FnOnce(u64) -> Event) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.due() {
            // The winner of `due` takes every occurrence counted so far;
            // its own increment above is among them (same variable, same
            // thread), so the count is at least 1.
            let count = self.pending.swap(0, Ordering::Relaxed);
            if count > 0 {
                dispatch(build(count));
            }
        }
    }

    /// `true` for the one caller that may emit now.
    fn due(&self) -> bool {
        due(&self.clock, &self.next)
    }
}

/// Whether the caller may emit now: the first to see the throttle's period
/// over moves it on and wins; the others lose the compare-exchange.
fn due(clock: &Clock, next: &AtomicU64) -> bool {
    let now = clock.nanos();
    let at = next.load(Ordering::Relaxed);
    now >= at
        && next
            .compare_exchange(
                at,
                now.saturating_add(nanos(THROTTLE)),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Reports a value that may change on every call (an adaptive limit) at
/// most once per [`THROTTLE`], from the value last reported to the value
/// now: a subscriber that follows the events always ends at the current
/// value, as long as the layer keeps [`observe`](Self::observe)-ing it
/// (on every call that could change it).
///
/// With nobody listening, `observe` is one relaxed load.
pub struct ValueThrottle {
    clock: Clock,
    next: AtomicU64,
    reported: AtomicU64,
}

impl ValueThrottle {
    /// A throttle reading `clock`, whose value starts at `initial`.
    pub fn new(clock: Clock, initial: u64) -> ValueThrottle {
        ValueThrottle {
            clock,
            next: AtomicU64::new(0),
            reported: AtomicU64::new(initial),
        }
    }

    /// Notes the value now; when anyone listens, it differs from the value
    /// last reported and the last report was a [`THROTTLE`] or more ago,
    /// emits `build(reported, value)`.
    #[inline]
    pub fn observe(&self, value: u64, build: impl FnOnce(u64, u64) -> Event) {
        if enabled() && self.reported.load(Ordering::Relaxed) != value {
            self.observe_slow(value, build);
        }
    }

    #[cold]
    #[inline(never)]
    fn observe_slow(&self, value: u64, build: impl FnOnce(u64, u64) -> Event) {
        if due(&self.clock, &self.next) {
            let old = self.reported.swap(value, Ordering::Relaxed);
            if old != value {
                dispatch(build(old, value));
            }
        }
    }
}

impl fmt::Debug for ValueThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueThrottle")
            .field("reported", &self.reported.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mine(layer: &str, events: &mut Subscriber) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = events.try_recv() {
            if &*e.layer == layer {
                out.push(e);
            }
        }
        out
    }

    #[tokio::test]
    async fn a_channel_receives_with_key_and_time() {
        let mut events = subscribe(1024);
        let before = SystemTime::now();
        emit(|| {
            Event::new(
                "t-channel",
                EventKind::breaker_transition(BreakerState::Closed, BreakerState::Open),
            )
            .with_key("10.0.0.1:80")
        });
        let e = loop {
            let e = events.recv().await;
            if &*e.layer == "t-channel" {
                break e;
            }
        };
        assert_eq!(e.key.as_deref(), Some("10.0.0.1:80"));
        assert!(e.time >= before);
        assert_eq!(e.kind.as_str(), "breaker_transition");
        assert!(matches!(
            e.kind,
            EventKind::BreakerTransition {
                from: BreakerState::Closed,
                to: BreakerState::Open,
                ..
            }
        ));
    }

    #[test]
    fn a_full_channel_drops_and_counts() {
        let mut events = subscribe(2);
        for _ in 0..5 {
            emit(|| Event::new("t-full", EventKind::fallback_used(1)));
        }
        // Other tests' events may take slots too: at most 2 are queued, so
        // at least 3 of the 5 were dropped.
        assert!(events.dropped() >= 3, "dropped {}", events.dropped());
        assert!(events.len() <= 2);
        let mine = mine("t-full", &mut events);
        assert!(mine.len() <= 2);
        // Room again: the next event is queued.
        emit(|| Event::new("t-full", EventKind::fallback_used(2)));
        assert!(!events.is_empty());
    }

    #[test]
    fn capacity_is_clamped() {
        assert_eq!(subscribe(0).capacity(), 1);
        assert_eq!(subscribe(usize::MAX).capacity(), MAX_CAPACITY);
    }

    #[test]
    fn a_dropped_subscriber_unsubscribes() {
        let events = subscribe(4);
        let id = events.id;
        let attached = |id| {
            SINKS
                .read()
                .unwrap()
                .as_deref()
                .is_some_and(|s| s.iter().any(|s| s.id == id))
        };
        assert!(attached(id));
        let channel = Arc::downgrade(&events.channel);
        drop(events);
        assert!(!attached(id));
        // Nothing keeps its queue alive.
        assert!(channel.upgrade().is_none());

        let guard = on_event(|_| {});
        let id = guard.id;
        assert!(attached(id));
        drop(guard);
        assert!(!attached(id));
    }

    #[test]
    fn callbacks_run_and_may_reenter_the_hub() {
        let seen = Arc::new(AtomicU64::new(0));
        let s = Arc::clone(&seen);
        let guard = on_event(move |e| {
            if &*e.layer == "t-callback" {
                s.fetch_add(1, Ordering::Relaxed);
                // Re-entering the hub from a callback: subscribe, emit.
                let _inner = subscribe(1);
                emit(|| Event::new("t-callback-inner", EventKind::fallback_used(1)));
            }
        });
        emit(|| Event::new("t-callback", EventKind::fallback_used(1)));
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        drop(guard);
        emit(|| Event::new("t-callback", EventKind::fallback_used(1)));
        assert_eq!(seen.load(Ordering::Relaxed), 1, "unsubscribed");
    }

    #[test]
    fn a_panicking_callback_does_not_unwind_into_the_emitter() {
        let _guard = on_event(|e| {
            if &*e.layer == "t-panic" {
                panic!("callback panics");
            }
        });
        emit(|| Event::new("t-panic", EventKind::fallback_used(1)));
    }

    #[test]
    fn deferred_events_are_delivered_after_the_lock() {
        let lock = Arc::new(Mutex::new(0));
        let l = Arc::clone(&lock);
        let saw_free = Arc::new(AtomicU64::new(0));
        let s = Arc::clone(&saw_free);
        let _guard = on_event(move |e| {
            if &*e.layer == "t-defer" {
                // Would deadlock if delivered under the lock.
                let free = l.try_lock().is_ok();
                s.fetch_add(if free { 1 } else { 1000 }, Ordering::Relaxed);
            }
        });
        {
            let g = Deferred::new(Defer::new(), lock.lock().unwrap());
            emit(|| Event::new("t-defer", EventKind::fallback_used(1)));
            {
                // Nested: still held back.
                let _inner = Defer::new();
                emit(|| Event::new("t-defer", EventKind::fallback_used(2)));
            }
            assert_eq!(saw_free.load(Ordering::Relaxed), 0, "held back");
            assert_eq!(*g, 0);
        }
        assert_eq!(saw_free.load(Ordering::Relaxed), 2, "delivered, lock free");
    }

    #[test]
    fn too_many_deferred_events_are_dropped_and_counted() {
        let events = subscribe(1024);
        {
            let _defer = Defer::new();
            for _ in 0..MAX_DEFERRED + 3 {
                emit(|| Event::new("t-defer-many", EventKind::fallback_used(1)));
            }
        }
        assert!(events.dropped() >= 3);
    }

    #[test]
    fn a_throttle_folds_occurrences_into_one_event_a_second() {
        let (clock, hand) = Clock::manual();
        let throttle = Throttle::new(clock);
        let mut events = subscribe(1024);
        let note = || throttle.note(|n| Event::new("t-throttle", EventKind::budget_exhausted(n)));
        note(); // emitted at once: 1
        for _ in 0..9 {
            note(); // folded
        }
        hand.advance(THROTTLE - Duration::from_nanos(1));
        note(); // still folded
        hand.advance(Duration::from_nanos(1));
        note(); // due: the 11 folded ones and this
        let counts: Vec<u64> = mine("t-throttle", &mut events)
            .into_iter()
            .map(|e| match e.kind {
                EventKind::BudgetExhausted { refused, .. } => refused,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(counts, [1, 11]);
    }

    #[test]
    fn a_value_throttle_reports_the_net_change_at_most_once_a_second() {
        let (clock, hand) = Clock::manual();
        let throttle = ValueThrottle::new(clock, 10);
        let mut events = subscribe(1024);
        let observe = |v: u64| {
            throttle.observe(v, |old, new| {
                Event::new(
                    "t-value",
                    EventKind::shed_limit_changed(old as usize, new as usize),
                )
            })
        };
        observe(10); // unchanged: nothing
        observe(11); // 10 -> 11
        for v in [12, 13, 12, 14] {
            observe(v); // within the second: folded
        }
        hand.advance(THROTTLE);
        observe(14); // 11 -> 14
        observe(14);
        hand.advance(THROTTLE);
        observe(14); // unchanged since the last report: nothing
        let changes: Vec<(usize, usize)> = mine("t-value", &mut events)
            .into_iter()
            .map(|e| match e.kind {
                EventKind::ShedLimitChanged { old, new, .. } => (old, new),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(changes, [(10, 11), (11, 14)]);
    }
}

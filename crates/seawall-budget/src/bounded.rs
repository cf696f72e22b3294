//! A bounded queue with a named overflow policy: memory never grows past
//! `capacity` items, and every item the queue does not deliver is counted
//! (and, under [`OverflowPolicy::Reject`], handed back to the sender).
//!
//! ```
//! use seawall_budget::bounded::{self, Delivery, OverflowPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (tx, mut rx) = bounded::channel(2, OverflowPolicy::DropOldest).unwrap();
//! for i in 0..5 {
//!     tx.send(i).await.unwrap();
//! }
//! drop(tx);
//! let mut got = Vec::new();
//! while let Some(i) = rx.recv().await {
//!     got.push(i);
//! }
//! assert_eq!(got, [3, 4]); // the newest two; 0, 1, 2 were dropped and counted
//! assert_eq!(rx.stats().dropped_oldest, 3);
//! # }
//! ```
//!
//! The queue is a `VecDeque` behind a `Mutex` held only to push or pop
//! (never across an `.await`). It reserves room for at most 16 items when
//! built and doubles as it fills, never past its capacity (at most
//! [`MAX_CAPACITY`], 2^24): memory follows the most items ever queued, not
//! the bound, and once a queue has held its high-water mark, sending and
//! receiving allocate nothing. Two tokio `Notify`s wake the receiver and the
//! senders waiting under [`OverflowPolicy::Wait`]. One receiver, any number
//! of senders (clone the [`Sender`]).
//!
//! [`priority_channel`] is the same queue with one lane per priority, each
//! with its own capacity and policy, drained highest priority first under a
//! documented anti-starvation rule (see [`priority`](priority_channel)).
//!
//! [`MAX_CAPACITY`]: seawall_core::config::MAX_CAPACITY

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use seawall_core::ConfigError;
use seawall_core::config::Check;
use tokio::sync::Notify;

mod priority;

pub use priority::{
    LaneConfig, MAX_LANES, PriorityConfig, PriorityReceiver, PrioritySender, PriorityStats,
    priority_channel,
};

/// The receiving half of a bounded queue, as a
/// [`BoundedLoop`](crate::BoundedLoop) drains it: [`Receiver`] or
/// [`PriorityReceiver`]. Sealed: implemented only by this crate's queues.
pub trait QueueReceiver: sealed::Sealed {
    /// What the queue holds.
    type Item;

    /// The next item; `None` once every sender is gone and the queue is
    /// drained. Cancel-safe.
    fn recv(&mut self) -> impl std::future::Future<Output = Option<Self::Item>>;

    /// The queue's counters (a priority channel's lanes added up).
    fn queue_stats(&self) -> QueueStats;
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for super::Receiver<T> {}
    impl<T> Sealed for super::PriorityReceiver<T> {}
}

impl<T> QueueReceiver for Receiver<T> {
    type Item = T;

    fn recv(&mut self) -> impl std::future::Future<Output = Option<T>> {
        Receiver::recv(self)
    }

    fn queue_stats(&self) -> QueueStats {
        self.stats()
    }
}

impl<T> QueueReceiver for PriorityReceiver<T> {
    type Item = T;

    fn recv(&mut self) -> impl std::future::Future<Output = Option<T>> {
        PriorityReceiver::recv(self)
    }

    fn queue_stats(&self) -> QueueStats {
        self.stats().total()
    }
}

/// What a full queue does with one more item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OverflowPolicy {
    /// Drop the oldest queued item to make room; the new one is queued
    /// ([`Delivery::ReplacedOldest`]). Keeps the freshest data (telemetry,
    /// state updates).
    DropOldest,
    /// Drop the new item; the queue is unchanged ([`Delivery::Dropped`]).
    /// Keeps the earliest data (a log of work accepted first).
    DropNewest,
    /// Refuse the new item and hand it back: `Err(SendError::Full(item))`.
    /// The sender decides.
    Reject,
    /// Wait (asynchronously) until there is room: backpressure on the
    /// producer. `try_send` on a full queue returns `Full(item)`.
    Wait,
}

impl OverflowPolicy {
    /// A stable snake_case name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowPolicy::DropOldest => "drop_oldest",
            OverflowPolicy::DropNewest => "drop_newest",
            OverflowPolicy::Reject => "reject",
            OverflowPolicy::Wait => "wait",
        }
    }
}

/// What happened to an item the queue accepted from a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "an item may have been dropped"]
pub enum Delivery {
    /// The item was queued; nothing was dropped.
    Queued,
    /// The item was queued and the oldest queued item was dropped for it
    /// ([`OverflowPolicy::DropOldest`]).
    ReplacedOldest,
    /// The queue was full and the item was dropped
    /// ([`OverflowPolicy::DropNewest`]).
    Dropped,
}

/// An item the queue did not take, handed back to the sender.
pub enum SendError<T> {
    /// The queue was full ([`OverflowPolicy::Reject`], or `try_send` under
    /// [`OverflowPolicy::Wait`]).
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

impl<T> SendError<T> {
    /// The item back.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(t) | SendError::Closed(t) => t,
        }
    }

    /// Whether the queue was full (rather than closed).
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("bounded queue full; item returned"),
            SendError::Closed(_) => f.write_str("bounded queue closed; item returned"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// A snapshot of a queue's counters. Every item a sender offered is in
/// exactly one of `sent - dropped_oldest` (delivered or still queued),
/// `dropped_oldest`, `dropped_newest`, `rejected` or `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// The capacity.
    pub capacity: usize,
    /// Items queued now.
    pub len: usize,
    /// The most items ever queued at once (never above `capacity`).
    pub max_len: usize,
    /// Items accepted into the queue.
    pub sent: u64,
    /// Items taken out by the receiver.
    pub received: u64,
    /// Queued items dropped to make room for newer ones (`DropOldest`).
    pub dropped_oldest: u64,
    /// New items dropped because the queue was full (`DropNewest`).
    pub dropped_newest: u64,
    /// Items handed back to the sender because the queue was full.
    pub rejected: u64,
    /// Items handed back to the sender because the receiver was gone.
    pub closed: u64,
}

impl QueueStats {
    /// Every item the queue lost or refused: `dropped_oldest +
    /// dropped_newest + rejected`.
    pub fn dropped(&self) -> u64 {
        self.dropped_oldest + self.dropped_newest + self.rejected
    }
}

/// One bounded FIFO and its counters: the plain queue is one lane, a
/// priority channel has one per priority. Lives under its channel's lock.
struct Lane<E> {
    queue: VecDeque<E>,
    capacity: usize,
    max_len: usize,
    sent: u64,
    received: u64,
    dropped_oldest: u64,
    dropped_newest: u64,
    rejected: u64,
    closed: u64,
}

/// What one offer to a lane came to.
enum Offer<E> {
    /// Full under [`OverflowPolicy::Wait`], from a sender that may wait:
    /// the entry back.
    Wait(E),
    /// What the sender gets, and an entry the lane let go of to make room
    /// or refused (for the caller to drop once the lock is released: an
    /// item's destructor may be slow).
    Done(Result<Delivery, SendError<E>>, Option<E>),
}

/// Slots a lane reserves when it is built: a small queue then never
/// allocates again, and a large bound costs nothing until it is used.
const INITIAL_SLOTS: usize = 16;

/// What a lane of `capacity` reserves when built: never more than
/// [`INITIAL_SLOTS`], whatever the capacity.
const fn initial_slots(capacity: usize) -> usize {
    if capacity < INITIAL_SLOTS {
        capacity
    } else {
        INITIAL_SLOTS
    }
}

impl<E> Lane<E> {
    /// An empty lane with room for `min(capacity, INITIAL_SLOTS)` entries;
    /// it grows as it fills (see [`push`](Self::push)). `capacity` is
    /// validated by the channel's constructor.
    fn new(capacity: usize) -> Self {
        Lane {
            queue: VecDeque::with_capacity(initial_slots(capacity)),
            capacity,
            max_len: 0,
            sent: 0,
            received: 0,
            dropped_oldest: 0,
            dropped_newest: 0,
            rejected: 0,
            closed: 0,
        }
    }

    /// Offers `entry`: queued if there is room, else `policy` decides.
    /// Every outcome is counted. `closed`: the receiver is gone.
    fn offer(
        &mut self,
        entry: E,
        policy: OverflowPolicy,
        closed: bool,
        may_wait: bool,
    ) -> Offer<E> {
        if closed {
            self.closed += 1;
            return Offer::Done(Err(SendError::Closed(entry)), None);
        }
        let mut evicted = None;
        let result = if self.queue.len() < self.capacity {
            self.push(entry);
            self.sent += 1;
            Ok(Delivery::Queued)
        } else {
            match policy {
                OverflowPolicy::DropOldest => {
                    evicted = self.queue.pop_front();
                    self.queue.push_back(entry);
                    self.sent += 1;
                    self.dropped_oldest += 1;
                    Ok(Delivery::ReplacedOldest)
                }
                OverflowPolicy::DropNewest => {
                    self.dropped_newest += 1;
                    evicted = Some(entry);
                    Ok(Delivery::Dropped)
                }
                OverflowPolicy::Wait if may_wait => return Offer::Wait(entry),
                OverflowPolicy::Reject | OverflowPolicy::Wait => {
                    self.rejected += 1;
                    Err(SendError::Full(entry))
                }
            }
        };
        self.max_len = self.max_len.max(self.queue.len());
        Offer::Done(result, evicted)
    }

    /// Appends `entry` to a lane below its capacity, first doubling the
    /// memory if it is full, but never past `capacity` slots: memory follows
    /// the high-water mark, one allocation per doubling, and is kept (a
    /// queue that filled once is likely to fill again, and shrinking would
    /// allocate on the receive path).
    fn push(&mut self, entry: E) {
        let len = self.queue.len();
        if len == self.queue.capacity() {
            // `len < capacity` here, so the target is at least `len + 1`.
            let target = len.saturating_mul(2).max(INITIAL_SLOTS).min(self.capacity);
            self.queue.reserve_exact(target - len);
        }
        self.queue.push_back(entry);
    }

    /// Takes the oldest entry out, counting it received.
    fn pop(&mut self) -> Option<E> {
        let entry = self.queue.pop_front();
        if entry.is_some() {
            self.received += 1;
        }
        entry
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            capacity: self.capacity,
            len: self.queue.len(),
            max_len: self.max_len,
            sent: self.sent,
            received: self.received,
            dropped_oldest: self.dropped_oldest,
            dropped_newest: self.dropped_newest,
            rejected: self.rejected,
            closed: self.closed,
        }
    }
}

impl<E> SendError<E> {
    fn map<T>(self, f: impl FnOnce(E) -> T) -> SendError<T> {
        match self {
            SendError::Full(e) => SendError::Full(f(e)),
            SendError::Closed(e) => SendError::Closed(f(e)),
        }
    }
}

/// Everything the two channels' handles share: who is still there, and
/// the receiver's wake-up.
struct Ends {
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
    // Woken when an item is pushed or the last sender leaves.
    not_empty: Notify,
    // Registered once here, so a drop does not build a metric key.
    #[cfg(feature = "metrics")]
    drops: DropCounters,
}

impl Ends {
    fn new() -> Self {
        Ends {
            senders: AtomicUsize::new(1),
            receiver_gone: AtomicBool::new(false),
            not_empty: Notify::new(),
            #[cfg(feature = "metrics")]
            drops: DropCounters::new(),
        }
    }

    fn is_closed(&self) -> bool {
        self.receiver_gone.load(Ordering::Acquire)
    }

    /// After an offer, outside the lock: wakes the receiver for a queued
    /// item and counts what was dropped.
    fn settle<T>(&self, result: &Result<Delivery, SendError<T>>) {
        if matches!(result, Ok(Delivery::Queued | Delivery::ReplacedOldest)) {
            self.not_empty.notify_one();
        }
        #[cfg(feature = "metrics")]
        match result {
            Ok(Delivery::ReplacedOldest) => self.drops.oldest.increment(1),
            Ok(Delivery::Dropped) => self.drops.newest.increment(1),
            Err(SendError::Full(_)) => self.drops.rejected.increment(1),
            _ => {}
        }
    }

    /// Sends `item`, waiting on `not_full` while `offer` says to wait.
    /// Registers for the wake-up before each look, so a pop between the
    /// look and the wait is not missed. Cancel-safe: dropping the future
    /// drops the item and changes nothing in the queue.
    async fn send<T>(
        not_full: &Notify,
        mut item: T,
        mut offer: impl FnMut(T) -> Full<T>,
    ) -> Result<Delivery, SendError<T>> {
        loop {
            let notified = not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match offer(item) {
                Full::Done(r) => return r,
                Full::Wait(back) => item = back,
            }
            notified.await;
        }
    }

    /// Receives with `try_recv` until it yields, or until every sender is
    /// gone and the queue is drained.
    async fn recv<R>(&self, mut try_recv: impl FnMut() -> Option<R>) -> Option<R> {
        loop {
            if let Some(taken) = try_recv() {
                return Some(taken);
            }
            if self.senders.load(Ordering::Acquire) == 0 {
                // A send racing with the last sender's drop has landed
                // before the count reached zero.
                return try_recv();
            }
            self.not_empty.notified().await;
        }
    }

    fn sender_cloned(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    fn sender_dropped(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The receiver's `Notified` stores this permit if it is not
            // waiting yet, so the close is never missed.
            self.not_empty.notify_one();
        }
    }

    /// Marks the receiver gone; the caller then wakes its waiting senders.
    fn receiver_dropped(&self) {
        self.receiver_gone.store(true, Ordering::Release);
    }
}

struct Shared<T> {
    state: Mutex<Lane<T>>,
    capacity: usize,
    policy: OverflowPolicy,
    // Woken when an item is popped or the receiver leaves.
    not_full: Notify,
    ends: Ends,
}

#[cfg(feature = "metrics")]
struct DropCounters {
    oldest: metrics::Counter,
    newest: metrics::Counter,
    rejected: metrics::Counter,
}

#[cfg(feature = "metrics")]
impl DropCounters {
    fn new() -> Self {
        use seawall_core::names::{BUDGET_DROPPED_TOTAL, DEFAULT_NAME, LABEL_NAME, LABEL_REASON};
        let counter = |reason: &'static str| metrics::counter!(BUDGET_DROPPED_TOTAL, LABEL_NAME => DEFAULT_NAME, LABEL_REASON => reason);
        DropCounters {
            oldest: counter(OverflowPolicy::DropOldest.as_str()),
            newest: counter(OverflowPolicy::DropNewest.as_str()),
            rejected: counter(OverflowPolicy::Reject.as_str()),
        }
    }
}

/// Locks a channel's state. A panic while holding the lock cannot leave a
/// queue or its counters half-updated (each update is one push/pop and a
/// few increments, with no call out), so a poisoned lock is consistent.
fn lock<S>(state: &Mutex<S>) -> MutexGuard<'_, S> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Lane<T>> {
        lock(&self.state)
    }

    fn stats(&self) -> QueueStats {
        self.lock().stats()
    }

    /// The oldest item, if any; wakes a sender waiting for room.
    fn take(&self) -> Option<T> {
        let item = self.lock().pop();
        if item.is_some() && self.policy == OverflowPolicy::Wait {
            self.not_full.notify_one();
        }
        item
    }
}

/// A bounded queue of `capacity` items with an overflow `policy`.
///
/// `capacity` must be in `1..=`[`MAX_CAPACITY`] (2^24); anything else is a
/// [`ConfigError`] naming `capacity`. The queue reserves room for at most 16
/// items here and grows as it fills, never past `capacity`: a large bound
/// costs nothing until it is used.
///
/// [`MAX_CAPACITY`]: seawall_core::config::MAX_CAPACITY
///
/// ```
/// use seawall_budget::bounded::{self, OverflowPolicy};
///
/// let err = bounded::channel::<u8>(1 << 32, OverflowPolicy::Wait).unwrap_err();
/// assert_eq!(err.to_string(), "capacity: 4294967296 must be at most 16777216 (2^24)");
/// ```
pub fn channel<T>(
    capacity: usize,
    policy: OverflowPolicy,
) -> Result<(Sender<T>, Receiver<T>), ConfigError> {
    let mut check = Check::new();
    check.capacity("capacity", capacity);
    check.finish()?;
    let shared = Arc::new(Shared {
        state: Mutex::new(Lane::new(capacity)),
        capacity,
        policy,
        not_full: Notify::new(),
        ends: Ends::new(),
    });
    Ok((
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    ))
}

/// The sending half; clone it for more producers.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// What to do when the queue is full, for one attempt.
pub(super) enum Full<T> {
    Wait(T),
    Done(Result<Delivery, SendError<T>>),
}

impl<T> Sender<T> {
    /// Offers `item` without waiting; a full queue applies the policy, with
    /// `Wait` behaving as `Reject` (the item comes back as `Full`).
    pub fn try_send(&self, item: T) -> Result<Delivery, SendError<T>> {
        match self.offer(item, false) {
            Full::Done(r) => r,
            Full::Wait(item) => Err(SendError::Full(item)),
        }
    }

    /// Offers `item`; a full queue applies the policy, and under
    /// [`OverflowPolicy::Wait`] this waits until there is room (or the
    /// receiver is gone). Cancel-safe: dropping the future before it
    /// completes drops the item and changes nothing in the queue.
    pub async fn send(&self, item: T) -> Result<Delivery, SendError<T>> {
        Ends::send(&self.shared.not_full, item, |item| self.offer(item, true)).await
    }

    fn offer(&self, item: T, may_wait: bool) -> Full<T> {
        let shared = &*self.shared;
        let closed = shared.ends.is_closed();
        let offer = shared.lock().offer(item, shared.policy, closed, may_wait);
        let (result, evicted) = match offer {
            Offer::Wait(item) => return Full::Wait(item),
            Offer::Done(result, evicted) => (result, evicted),
        };
        // Dropped outside the lock: an item's destructor may be slow.
        drop(evicted);
        shared.ends.settle(&result);
        Full::Done(result)
    }

    /// A snapshot of the queue's counters.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.ends.is_closed()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.ends.sender_cloned();
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.ends.sender_dropped();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("policy", &self.shared.policy)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The receiving half (one per queue).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is
    /// drained. Cancel-safe: an item is only removed when it is returned.
    pub async fn recv(&mut self) -> Option<T> {
        let shared = &*self.shared;
        shared.ends.recv(|| shared.take()).await
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.take()
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The overflow policy.
    pub fn policy(&self) -> OverflowPolicy {
        self.shared.policy
    }

    /// A snapshot of the queue's counters.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.ends.receiver_dropped();
        self.shared.not_full.notify_waiters();
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("policy", &self.shared.policy)
            .field("stats", &self.stats())
            .finish()
    }
}

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
//! The queue is a `VecDeque` allocated once at full capacity behind a
//! `Mutex` held only to push or pop (never across an `.await`), with two
//! tokio `Notify`s for the receiver and for senders waiting under
//! [`OverflowPolicy::Wait`]. One receiver, any number of senders (clone the
//! [`Sender`]).
//!
//! [`priority_channel`] is the same queue with one lane per priority, each
//! with its own capacity and policy, drained highest priority first under a
//! documented anti-starvation rule (see [`priority`](priority_channel)).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use seawall_core::ConfigError;
use seawall_core::config::Check;
use tokio::sync::Notify;

mod priority;

pub use priority::{
    LaneConfig, PriorityConfig, PriorityReceiver, PrioritySender, PriorityStats, priority_channel,
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

struct State<T> {
    queue: VecDeque<T>,
    max_len: usize,
    sent: u64,
    received: u64,
    dropped_oldest: u64,
    dropped_newest: u64,
    rejected: u64,
    closed: u64,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    policy: OverflowPolicy,
    // Woken when an item is pushed or the last sender leaves.
    not_empty: Notify,
    // Woken when an item is popped or the receiver leaves.
    not_full: Notify,
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
    // Registered once here, so a drop does not build a metric key.
    #[cfg(feature = "metrics")]
    drops: DropCounters,
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

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock cannot leave the queue or the
        // counters half-updated (each update is one push/pop and one
        // increment), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> QueueStats {
        let s = self.lock();
        QueueStats {
            capacity: self.capacity,
            len: s.queue.len(),
            max_len: s.max_len,
            sent: s.sent,
            received: s.received,
            dropped_oldest: s.dropped_oldest,
            dropped_newest: s.dropped_newest,
            rejected: s.rejected,
            closed: s.closed,
        }
    }
}

/// A bounded queue of `capacity` items with an overflow `policy`.
///
/// A zero capacity is a [`ConfigError`] naming `capacity`. The queue's
/// memory is allocated here, once, and never grows.
pub fn channel<T>(
    capacity: usize,
    policy: OverflowPolicy,
) -> Result<(Sender<T>, Receiver<T>), ConfigError> {
    let mut check = Check::new();
    check.nonzero("capacity", capacity);
    check.finish()?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(capacity),
            max_len: 0,
            sent: 0,
            received: 0,
            dropped_oldest: 0,
            dropped_newest: 0,
            rejected: 0,
            closed: 0,
        }),
        capacity,
        policy,
        not_empty: Notify::new(),
        not_full: Notify::new(),
        senders: AtomicUsize::new(1),
        receiver_gone: AtomicBool::new(false),
        #[cfg(feature = "metrics")]
        drops: DropCounters::new(),
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
enum Full<T> {
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
        let mut item = item;
        loop {
            // Register for a wake-up before looking, so a pop between the
            // look and the wait is not missed.
            let notified = self.shared.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.offer(item, true) {
                Full::Done(r) => return r,
                Full::Wait(back) => item = back,
            }
            notified.await;
        }
    }

    fn offer(&self, item: T, may_wait: bool) -> Full<T> {
        let shared = &*self.shared;
        let mut evicted = None;
        let result = {
            let mut s = shared.lock();
            if shared.receiver_gone.load(Ordering::Acquire) {
                s.closed += 1;
                return Full::Done(Err(SendError::Closed(item)));
            }
            let result = if s.queue.len() < shared.capacity {
                s.queue.push_back(item);
                s.sent += 1;
                Ok(Delivery::Queued)
            } else {
                match shared.policy {
                    OverflowPolicy::DropOldest => {
                        evicted = s.queue.pop_front();
                        s.queue.push_back(item);
                        s.sent += 1;
                        s.dropped_oldest += 1;
                        Ok(Delivery::ReplacedOldest)
                    }
                    OverflowPolicy::DropNewest => {
                        s.dropped_newest += 1;
                        evicted = Some(item);
                        Ok(Delivery::Dropped)
                    }
                    OverflowPolicy::Wait if may_wait => return Full::Wait(item),
                    OverflowPolicy::Reject | OverflowPolicy::Wait => {
                        s.rejected += 1;
                        Err(SendError::Full(item))
                    }
                }
            };
            s.max_len = s.max_len.max(s.queue.len());
            result
        };
        // Dropped outside the lock: an item's destructor may be slow.
        drop(evicted);
        if matches!(result, Ok(Delivery::Queued | Delivery::ReplacedOldest)) {
            shared.not_empty.notify_one();
        }
        #[cfg(feature = "metrics")]
        match result {
            Ok(Delivery::ReplacedOldest) => shared.drops.oldest.increment(1),
            Ok(Delivery::Dropped) => shared.drops.newest.increment(1),
            Err(SendError::Full(_)) => shared.drops.rejected.increment(1),
            _ => {}
        }
        Full::Done(result)
    }

    /// A snapshot of the queue's counters.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.receiver_gone.load(Ordering::Acquire)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The receiver's `Notified` stores this permit if it is not
            // waiting yet, so the close is never missed.
            self.shared.not_empty.notify_one();
        }
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
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A send racing with the last sender's drop has landed
                // before the count reached zero.
                return self.try_recv();
            }
            self.shared.not_empty.notified().await;
        }
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Option<T> {
        let item = {
            let mut s = self.shared.lock();
            let item = s.queue.pop_front();
            if item.is_some() {
                s.received += 1;
            }
            item
        };
        if item.is_some() && self.shared.policy == OverflowPolicy::Wait {
            self.shared.not_full.notify_one();
        }
        item
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
        self.shared.receiver_gone.store(true, Ordering::Release);
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

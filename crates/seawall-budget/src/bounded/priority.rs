//! Priority lanes: the tower-free queue behind [`priority_channel`], whose
//! docs hold the ordering and anti-starvation rule.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use seawall_core::ConfigError;
use seawall_core::config::Check;
use tokio::sync::Notify;

use super::{Delivery, Ends, Full, Lane, Offer, OverflowPolicy, QueueStats, SendError, lock};

/// One lane: its capacity and what it does when full.
///
/// Built with [`LaneConfig::new`], or from [`Default`] (1024 items,
/// [`OverflowPolicy::Wait`]) and the setters of the same names as the fields:
///
/// ```
/// use seawall_budget::bounded::{LaneConfig, OverflowPolicy};
///
/// let lane = LaneConfig::default().capacity(64).policy(OverflowPolicy::DropOldest);
/// assert_eq!(lane, LaneConfig::new(64, OverflowPolicy::DropOldest));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct LaneConfig {
    /// Most items the lane holds: `1..=`[`MAX_CAPACITY`] (2^24).
    ///
    /// [`MAX_CAPACITY`]: seawall_core::config::MAX_CAPACITY
    pub capacity: usize,
    /// What a full lane does with one more item.
    pub policy: OverflowPolicy,
}

impl LaneConfig {
    /// A lane of `capacity` items with `policy`.
    pub fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        LaneConfig { capacity, policy }
    }

    /// Sets the most items the lane holds.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets what a full lane does with one more item.
    pub fn policy(mut self, policy: OverflowPolicy) -> Self {
        self.policy = policy;
        self
    }
}

impl Default for LaneConfig {
    /// 1024 items, [`OverflowPolicy::Wait`]: backpressure, nothing dropped.
    fn default() -> Self {
        LaneConfig::new(1024, OverflowPolicy::Wait)
    }
}

/// The lanes of a [`priority_channel`], highest priority first, and the
/// anti-starvation rule.
///
/// With the `serde` feature it deserialises:
///
/// ```toml
/// fair_every = 8
/// lanes = [
///     { capacity = 16, policy = "wait" },
///     { capacity = 1024, policy = "drop_oldest" },
/// ]
/// ```
///
/// In code, [`PriorityConfig::new`] takes the lanes; [`Default`] is two
/// default lanes (high, low) with `fair_every` 8.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct PriorityConfig {
    /// The lanes, index 0 the highest priority: `1..=`[`MAX_LANES`] (256).
    pub lanes: Vec<LaneConfig>,
    /// While a lower lane holds an item, every `fair_every`-th take serves
    /// the oldest item of the lower lanes. `0` is strict priority; `1` is
    /// refused (it would put low lanes first). Default 8.
    #[cfg_attr(feature = "serde", serde(default = "default_fair_every"))]
    pub fair_every: usize,
}

fn default_fair_every() -> usize {
    8
}

impl Default for PriorityConfig {
    /// Two [default lanes](LaneConfig::default), high and low, `fair_every` 8.
    fn default() -> Self {
        PriorityConfig::new([LaneConfig::default(), LaneConfig::default()])
    }
}

/// The most lanes a [`PriorityConfig`] may have: 256. Every take looks at
/// each lane, so the count is bounded like any other size.
pub const MAX_LANES: usize = 256;

impl PriorityConfig {
    /// `lanes`, highest priority first, with the default `fair_every` (8).
    pub fn new(lanes: impl IntoIterator<Item = LaneConfig>) -> Self {
        PriorityConfig {
            lanes: lanes.into_iter().collect(),
            fair_every: default_fair_every(),
        }
    }

    /// Sets [`fair_every`](PriorityConfig::fair_every).
    pub fn fair_every(mut self, n: usize) -> Self {
        self.fair_every = n;
        self
    }

    /// Sets the lanes, highest priority first.
    pub fn lanes(mut self, lanes: impl IntoIterator<Item = LaneConfig>) -> Self {
        self.lanes = lanes.into_iter().collect();
        self
    }

    /// Checks every field; the error names each bad one (`lanes[2].capacity`):
    /// one to [`MAX_LANES`] lanes, each of capacity `1..=`[`MAX_CAPACITY`]
    /// (2^24), and `fair_every` not 1.
    ///
    /// [`MAX_CAPACITY`]: seawall_core::config::MAX_CAPACITY
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut c = Check::new();
        if self.lanes.is_empty() {
            c.fail("lanes", "[]", "must hold at least one lane");
        } else if self.lanes.len() > MAX_LANES {
            c.fail(
                "lanes",
                format_args!("{} lanes", self.lanes.len()),
                format!("must be at most {MAX_LANES}"),
            );
        }
        for (i, lane) in self.lanes.iter().enumerate() {
            c.capacity(&format!("lanes[{i}].capacity"), lane.capacity);
        }
        if self.fair_every == 1 {
            c.fail("fair_every", 1, "must be 0 (strict priority) or at least 2");
        }
        c.finish()
    }
}

struct State<T> {
    // Each entry is tagged with its arrival number, for the
    // anti-starvation rule.
    lanes: Vec<Lane<(u64, T)>>,
    /// The next item's sequence number (accept order across lanes).
    seq: u64,
    /// Takes in a row that went to a higher lane while a lower one waited.
    passed: usize,
    fair_takes: u64,
    len: usize,
    max_len: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    fair_every: usize,
    // One per lane: woken when an item leaves that lane or the receiver
    // leaves.
    not_full: Vec<Notify>,
    // Each lane's policy, read without the lock.
    policies: Vec<OverflowPolicy>,
    // The plain queue's ends and drop counters (`seawall_budget_dropped_total`).
    ends: Ends,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    fn stats(&self) -> PriorityStats {
        let s = self.lock();
        PriorityStats {
            lanes: s.lanes.iter().map(Lane::stats).collect(),
            max_len: s.max_len,
            fair_takes: s.fair_takes,
        }
    }
    /// The next item by priority and the anti-starvation rule, with its
    /// lane; wakes a sender waiting for room in that lane.
    fn take(&self) -> Option<(usize, T)> {
        let (lane, item) = {
            let mut guard = self.lock();
            let s = &mut *guard;
            let top = s.lanes.iter().position(|l| !l.queue.is_empty())?;
            // The oldest item below the top lane, if any waits there.
            let oldest_lower = s.lanes[top + 1..]
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.queue.front().map(|(seq, _)| (*seq, top + 1 + i)))
                .min()
                .map(|(_, lane)| lane);
            let lane = match oldest_lower {
                Some(lower) if self.fair_every != 0 && s.passed + 1 >= self.fair_every => {
                    s.passed = 0;
                    s.fair_takes += 1;
                    lower
                }
                Some(_) => {
                    // Saturating: under strict priority (`fair_every = 0`)
                    // nothing resets it while a lower lane waits.
                    s.passed = s.passed.saturating_add(1);
                    top
                }
                None => {
                    s.passed = 0;
                    top
                }
            };
            let (_, item) = s.lanes[lane].pop()?;
            s.len -= 1;
            (lane, item)
        };
        if self.policies[lane] == OverflowPolicy::Wait {
            self.not_full[lane].notify_one();
        }
        Some((lane, item))
    }
}

/// A snapshot of a priority channel's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PriorityStats {
    /// Each lane's counters, lane 0 first; each keeps the accounting of
    /// [`QueueStats`].
    pub lanes: Vec<QueueStats>,
    /// The most items queued at once across all lanes.
    pub max_len: usize,
    /// Takes the anti-starvation rule gave to a lower lane.
    pub fair_takes: u64,
}

impl PriorityStats {
    /// All lanes added up (capacity, len, every counter); `max_len` is the
    /// most queued at once across lanes.
    pub fn total(&self) -> QueueStats {
        let mut t = QueueStats {
            capacity: 0,
            len: 0,
            max_len: self.max_len,
            sent: 0,
            received: 0,
            dropped_oldest: 0,
            dropped_newest: 0,
            rejected: 0,
            closed: 0,
        };
        for l in &self.lanes {
            // At most 256 lanes of 2^24: only a 32-bit `usize` could
            // overflow, and there the sum saturates.
            t.capacity = t.capacity.saturating_add(l.capacity);
            t.len += l.len;
            t.sent += l.sent;
            t.received += l.received;
            t.dropped_oldest += l.dropped_oldest;
            t.dropped_newest += l.dropped_newest;
            t.rejected += l.rejected;
            t.closed += l.closed;
        }
        t
    }
}

/// Priority lanes: one bounded queue per priority, each with its own
/// capacity and [`OverflowPolicy`], drained highest priority first.
///
/// Lane 0 is the highest priority. [`PriorityReceiver::recv`] takes from the
/// highest lane that holds an item, with one exception that keeps low
/// lanes from starving:
///
/// > **Anti-starvation rule.** While a lower lane holds an item, at most
/// > `fair_every - 1` takes in a row go to higher lanes: the `fair_every`-th
/// > take serves the *oldest* item waiting in any lane below the highest
/// > non-empty one (oldest by the order the queue accepted them). With the
/// > default `fair_every = 8`, lower lanes get at least one take in eight
/// > while they hold work, and a higher lane never loses more than one
/// > take in eight. `fair_every = 0` is strict priority (low lanes may wait
/// > forever under a steady stream of high-priority work).
///
/// Each lane applies its own policy when full, exactly like
/// [`bounded::channel`](super::channel): `DropOldest`, `DropNewest`,
/// `Reject` (the item comes back), `Wait` (the sender waits for room in
/// *its* lane, woken when the receiver takes from that lane). Every lane
/// counts what it accepted, delivered, dropped and refused
/// ([`PriorityStats::lanes`]).
///
/// ```
/// use seawall_budget::bounded::{self, LaneConfig, OverflowPolicy, PriorityConfig};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (tx, mut rx) = bounded::priority_channel(&PriorityConfig::new([
///     LaneConfig::new(16, OverflowPolicy::Wait),       // 0: control messages
///     LaneConfig::new(256, OverflowPolicy::DropOldest), // 1: bulk updates
/// ]))
/// .unwrap();
/// tx.send(1, "bulk a").await.unwrap();
/// tx.send(1, "bulk b").await.unwrap();
/// tx.send(0, "control").await.unwrap();
/// assert_eq!(rx.recv().await, Some("control")); // higher lane first
/// assert_eq!(rx.recv().await, Some("bulk a"));
/// assert_eq!(rx.stats().lanes[1].received, 1);
/// # }
/// ```
///
/// One `Mutex` guards all lanes (held only to push or pop, never across an
/// `.await`). Each lane reserves room for at most 16 items here and grows
/// as it fills, never past its capacity, exactly like
/// [`bounded::channel`](super::channel).
///
/// A bad config (no lanes or more than [`MAX_LANES`], a capacity of zero or
/// past [`MAX_CAPACITY`], `fair_every = 1`) is a [`ConfigError`] naming
/// every bad field (`lanes[2].capacity`).
///
/// [`MAX_CAPACITY`]: seawall_core::config::MAX_CAPACITY
pub fn priority_channel<T>(
    config: &PriorityConfig,
) -> Result<(PrioritySender<T>, PriorityReceiver<T>), ConfigError> {
    config.validate()?;
    let lanes = config.lanes.iter().map(|l| Lane::new(l.capacity)).collect();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            lanes,
            seq: 0,
            passed: 0,
            fair_takes: 0,
            len: 0,
            max_len: 0,
        }),
        fair_every: config.fair_every,
        not_full: config.lanes.iter().map(|_| Notify::new()).collect(),
        policies: config.lanes.iter().map(|l| l.policy).collect(),
        ends: Ends::new(),
    });
    Ok((
        PrioritySender {
            shared: shared.clone(),
        },
        PriorityReceiver { shared },
    ))
}

/// The sending half of a [`priority_channel`]; clone it for more
/// producers.
pub struct PrioritySender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> PrioritySender<T> {
    /// Offers `item` to `lane` without waiting; a full lane applies its
    /// policy, with `Wait` behaving as `Reject`. A `lane` past the last is
    /// the last (lowest) lane.
    pub fn try_send(&self, lane: usize, item: T) -> Result<Delivery, SendError<T>> {
        match self.offer(self.lane(lane), item, false) {
            Full::Done(r) => r,
            Full::Wait(item) => Err(SendError::Full(item)),
        }
    }

    /// Offers `item` to `lane`; a full lane applies its policy, and under
    /// [`OverflowPolicy::Wait`] this waits until that lane has room (or the
    /// receiver is gone). A `lane` past the last is the last (lowest) lane.
    /// Cancel-safe: dropping the future before it completes drops the item
    /// and changes nothing in the queue.
    pub async fn send(&self, lane: usize, item: T) -> Result<Delivery, SendError<T>> {
        let lane = self.lane(lane);
        Ends::send(&self.shared.not_full[lane], item, |item| {
            self.offer(lane, item, true)
        })
        .await
    }

    fn lane(&self, lane: usize) -> usize {
        // `priority_channel` refuses a config without lanes.
        lane.min(self.shared.not_full.len() - 1)
    }

    fn offer(&self, lane: usize, item: T, may_wait: bool) -> Full<T> {
        let shared = &*self.shared;
        let closed = shared.ends.is_closed();
        let offer = {
            let mut guard = shared.lock();
            let s = &mut *guard;
            let offer = s.lanes[lane].offer((s.seq, item), shared.policies[lane], closed, may_wait);
            match &offer {
                Offer::Done(Ok(Delivery::Queued), _) => {
                    s.seq += 1;
                    s.len += 1;
                    s.max_len = s.max_len.max(s.len);
                }
                Offer::Done(Ok(Delivery::ReplacedOldest), _) => s.seq += 1,
                _ => {}
            }
            offer
        };
        let (result, evicted) = match offer {
            Offer::Wait((_, item)) => return Full::Wait(item),
            Offer::Done(result, evicted) => (result, evicted),
        };
        // Dropped outside the lock: an item's destructor may be slow.
        drop(evicted);
        let result = result.map_err(|e| e.map(|(_, item)| item));
        shared.ends.settle(&result);
        Full::Done(result)
    }

    /// A snapshot of every lane's counters.
    pub fn stats(&self) -> PriorityStats {
        self.shared.stats()
    }

    /// The number of lanes.
    pub fn lanes(&self) -> usize {
        self.shared.not_full.len()
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.ends.is_closed()
    }
}

impl<T> Clone for PrioritySender<T> {
    fn clone(&self) -> Self {
        self.shared.ends.sender_cloned();
        PrioritySender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for PrioritySender<T> {
    fn drop(&mut self) {
        self.shared.ends.sender_dropped();
    }
}

impl<T> fmt::Debug for PrioritySender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrioritySender")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The receiving half of a [`priority_channel`] (one per channel).
pub struct PriorityReceiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> PriorityReceiver<T> {
    /// The next item by priority and the anti-starvation rule; `None` once
    /// every sender is gone and all lanes are drained. Cancel-safe: an item
    /// is only removed when it is returned.
    pub async fn recv(&mut self) -> Option<T> {
        self.recv_with_lane().await.map(|(_, item)| item)
    }

    /// Like [`recv`](Self::recv), with the lane the item came from.
    pub async fn recv_with_lane(&mut self) -> Option<(usize, T)> {
        let shared = &*self.shared;
        shared.ends.recv(|| shared.take()).await
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Option<T> {
        self.try_recv_with_lane().map(|(_, item)| item)
    }

    /// The next item if one is queued now, with its lane.
    pub fn try_recv_with_lane(&mut self) -> Option<(usize, T)> {
        self.shared.take()
    }

    /// Items queued now, in all lanes.
    pub fn len(&self) -> usize {
        self.shared.lock().len
    }

    /// Whether every lane is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of lanes.
    pub fn lanes(&self) -> usize {
        self.shared.not_full.len()
    }

    /// A snapshot of every lane's counters.
    pub fn stats(&self) -> PriorityStats {
        self.shared.stats()
    }
}

impl<T> Drop for PriorityReceiver<T> {
    fn drop(&mut self) {
        self.shared.ends.receiver_dropped();
        for n in &self.shared.not_full {
            n.notify_waiters();
        }
    }
}

impl<T> fmt::Debug for PriorityReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityReceiver")
            .field("stats", &self.stats())
            .finish()
    }
}

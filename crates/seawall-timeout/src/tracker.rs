//! The tower-free core: [`DeadlineTracker`] measures latencies and keeps the
//! current deadline.
//!
//! Guarantees:
//! - [`DeadlineTracker::deadline`] is one atomic load.
//! - Recording a latency ([`Recorder::record`]) takes the lock of one of a
//!   few *recorder shards*, picked by the calling thread, so threads do not
//!   contend on a lock shared by all callers; it never allocates and never
//!   panics (histograms are preallocated; values out of range are clamped).
//! - The deadline is recomputed off the per-call path: when a shard has
//!   gathered `refresh_every` samples (fewer while warming up) or when the
//!   window steps; whoever trips it does the work under a `try_lock`, and
//!   everybody else goes on.
//! - Samples age out: the window is a ring of 6 interval histograms, stepped
//!   every `window / 6` (lazily, by the first call that sees the step is due).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError, Weak};
use std::time::Duration;

use seawall_core::names::TARGET_TIMEOUT;
use seawall_core::{ConfigError, Elapsed};
use tokio::time::Instant;

use crate::config::{AdaptiveTimeoutConfig, Params, nanos};
use crate::histogram::{Histogram, Layout};
use crate::window::Ring;

/// Where the current deadline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadlineSource {
    /// A fixed timeout: nothing is measured.
    Fixed,
    /// Fewer than `min_samples` latencies in the window: the `base` deadline.
    Base,
    /// `clamp(percentile × multiplier, min, max)` of the window.
    Adaptive,
}

/// A snapshot of a tracker (or of one key of a keyed layer).
///
/// Percentiles are of the latencies in the current window (successful calls,
/// plus timed-out calls counted as their deadline), reported at most 0.8%
/// above the true value for a layer's own deadline and at most 12.5% above
/// (or one unit of 512µs with the default `max`) for one key of a keyed
/// layer (see the [crate docs](crate#memory)), and clamped to `2 × max`.
/// They are zero when the window is empty, and always zero in fixed mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveTimeoutStats {
    /// The deadline the next call gets.
    pub deadline: Duration,
    /// Where `deadline` comes from.
    pub source: DeadlineSource,
    /// Median latency of the window.
    pub p50: Duration,
    /// 90th percentile latency of the window.
    pub p90: Duration,
    /// 99th percentile latency of the window.
    pub p99: Duration,
    /// 99.9th percentile latency of the window.
    pub p999: Duration,
    /// Latencies recorded in the window (under high traffic, about one call
    /// in `sample_every`).
    pub samples: u64,
    /// Calls that hit their deadline since the tracker was created.
    pub timeouts: u64,
}

/// Measures latencies and keeps the deadline `clamp(percentile × multiplier,
/// min, max)`; the core of [`AdaptiveTimeoutLayer`](crate::AdaptiveTimeoutLayer),
/// usable without tower.
///
/// ```
/// use std::time::Duration;
/// use seawall_timeout::{AdaptiveTimeoutConfig, DeadlineSource, DeadlineTracker};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cfg = AdaptiveTimeoutConfig { min_samples: 10, ..Default::default() };
/// let tracker = DeadlineTracker::new(&cfg).unwrap();
/// assert_eq!(tracker.deadline(), Duration::from_secs(1), "base until 10 samples");
///
/// for _ in 0..10 {
///     let deadline = tracker.deadline();
///     let outcome = tokio::time::timeout(deadline, async { 42 }).await;
///     match outcome {
///         Ok(_) => tracker.record(Duration::from_millis(100)),
///         Err(_) => tracker.record_timeout(deadline),
///     }
/// }
/// let stats = tracker.stats();
/// assert_eq!(stats.source, DeadlineSource::Adaptive);
/// // p99 of ten 100ms samples, × 1.5 (within the histogram's 1%).
/// assert!(stats.deadline >= Duration::from_millis(150) && stats.deadline < Duration::from_millis(152));
/// # }
/// ```
pub struct DeadlineTracker {
    common: Arc<Common>,
    shards: Box<[Arc<Shard>]>,
}

impl std::fmt::Debug for DeadlineTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineTracker")
            .field("name", &self.common.name)
            .field("key", &self.common.label)
            .field("deadline", &self.deadline())
            .field("shards", &self.shards.len())
            .finish()
    }
}

/// What a call needs to report its latency: a handle on one recorder shard
/// of a [`DeadlineTracker`], picked for the current thread. Cloning it (the
/// layers clone one per *measured* call only) touches only that shard's
/// reference count, not a counter shared by every thread.
#[derive(Clone)]
pub struct Recorder {
    shard: Arc<Shard>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("name", &self.shard.common.name)
            .field("key", &self.shard.common.label)
            .finish()
    }
}

struct Common {
    /// This tracker's number in the [`registry`].
    ticket: Ticket,
    params: Params,
    name: Arc<str>,
    label: Option<Arc<str>>,
    epoch: Instant,
    /// The deadline as whole seconds and nanoseconds (see [`pack_ns`]).
    deadline: AtomicU64,
    /// Pending samples in one shard that trigger a refresh.
    flush_at: AtomicU32,
    timeouts: AtomicU64,
    /// A call is measured when a per-thread random number is at most this
    /// (`u32::MAX`: every call).
    sample_below: AtomicU32,
    /// A key of a keyed layer may be evicted from this time on, in
    /// nanoseconds since `epoch`: 0 while its deadline is the base one (as a
    /// fresh key's), else when its window will have drained. Written by
    /// refreshes only, read by the map when it looks for room.
    fresh_at: AtomicU64,
    ring: Mutex<RingState>,
    shards: OnceLock<Box<[Weak<Shard>]>>,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::Handles,
}

struct RingState {
    ring: Ring,
    source: DeadlineSource,
    at_max: bool,
    /// One call in `sampling` is measured right now.
    sampling: u32,
    /// The key has left its map: its metric series is written no more.
    #[cfg(feature = "metrics")]
    retired: bool,
}

// Aligned so two shards never share a cache line.
#[repr(align(128))]
struct Shard {
    common: Arc<Common>,
    batch: Mutex<Batch>,
}

struct Batch {
    hist: Histogram,
    pending: u32,
    /// When the window steps next: a copy kept per shard (updated by every
    /// refresh) so the per-call check is a comparison of instants, not a
    /// subtraction.
    step_at: Instant,
}

impl Batch {
    /// Records `us`; `true` when a refresh is due.
    #[inline]
    fn push(&mut self, us: u64, now: Instant, flush_at: u32) -> bool {
        self.hist.record(us);
        self.pending = self.pending.saturating_add(1);
        self.pending >= flush_at || now >= self.step_at
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoned only by a panic under the lock; nothing under these locks
    // panics, and the histograms stay consistent either way.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// A small per-thread number, assigned once per thread, used to spread
/// threads over recorder shards.
#[inline]
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX
        .try_with(|i| {
            let v = i.get();
            if v != usize::MAX {
                return v;
            }
            let v = NEXT.fetch_add(1, Relaxed);
            i.set(v);
            v
        })
        .unwrap_or(0)
}

/// A per-thread xorshift32 stream, seeded from the thread's index (never 0).
#[inline]
fn thread_random() -> u32 {
    thread_local! {
        static STATE: Cell<u32> = const { Cell::new(0) };
    }
    STATE
        .try_with(|s| {
            let mut x = s.get();
            if x == 0 {
                // splitmix-style scramble of the thread index; `| 1` keeps it non-zero.
                let i = thread_index() as u64;
                let z = (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                x = ((z ^ (z >> 31)) as u32) | 1;
            }
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            s.set(x);
            x
        })
        .unwrap_or(0)
}

fn shard_count(fixed: bool) -> usize {
    if fixed {
        return 1;
    }
    // Read once per process: `available_parallelism` reads cgroup files on
    // Linux, too slow for every new key of a keyed layer.
    static SHARDS: OnceLock<usize> = OnceLock::new();
    *SHARDS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .next_power_of_two()
            .min(8)
    })
}

/// What a call starts with: its deadline, packed (see [`pack`]), and its
/// claim on the tracker.
pub(crate) type Start = (u64, Claim);

/// How an [`AdaptiveTimeout`](crate::AdaptiveTimeout) call's
/// [`ResponseFuture`](crate::ResponseFuture) holds on to its tracker: the
/// tracker's number and whether the call is measured. Opaque.
///
/// Plain data, no reference count: the future then has nothing to drop but
/// its timer, which lets the compiler build the timer in place and drop the
/// future inline (a handle with a reference count made a call cost about a
/// third more). A measured call finds its recorder shard again when it
/// ends, through a small per-thread cache; a call that times out finds its
/// tracker in a table of live trackers. A call that outlives its layer (and
/// every service of it) still times out, uncounted.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    ticket: Ticket,
    measured: bool,
}

/// How a [`KeyedAdaptiveTimeout`](crate::KeyedAdaptiveTimeout) call's
/// [`ResponseFuture`](crate::ResponseFuture) holds on to its key's
/// tracker: a reference to the key's recorder, so that a key evicted from
/// the map while the call is in flight still counts the call's timeout and
/// names its key. Opaque.
#[derive(Debug, Clone)]
pub struct KeyedClaim {
    recorder: Recorder,
    measured: bool,
}

impl KeyedClaim {
    pub(crate) fn new(tracker: &DeadlineTracker, claim: Claim) -> KeyedClaim {
        KeyedClaim {
            recorder: tracker.recorder(),
            measured: claim.measured,
        }
    }
}

pub(crate) mod sealed {
    use std::time::Duration;

    use seawall_core::Elapsed;
    use tokio::time::Instant;

    /// What a response future needs of its claim. Sealed: implemented by
    /// [`Claim`](super::Claim) and [`KeyedClaim`](super::KeyedClaim) only.
    pub trait Hold {
        /// Whether the call's latency is to be recorded.
        fn is_measured(&self) -> bool;
        /// Records the latency of a measured call that succeeded at `now`.
        fn record(&self, latency: Duration, now: Instant);
        /// Accounts for a call that hit `deadline` at `at` and makes its
        /// error.
        fn expired(&self, deadline: Duration, at: Instant) -> Elapsed;
    }
}

impl sealed::Hold for KeyedClaim {
    #[inline]
    fn is_measured(&self) -> bool {
        self.measured
    }

    fn record(&self, latency: Duration, now: Instant) {
        self.recorder.record(latency, now);
    }

    fn expired(&self, deadline: Duration, at: Instant) -> Elapsed {
        if self.measured {
            self.recorder.record_timeout(deadline, at);
        } else {
            self.recorder.count_timeout(deadline);
        }
        self.recorder.elapsed(deadline)
    }
}

impl sealed::Hold for Claim {
    #[inline]
    fn is_measured(&self) -> bool {
        self.measured
    }

    /// Records into the tracker's shard for this thread, if the tracker
    /// still exists.
    fn record(&self, latency: Duration, now: Instant) {
        if let Some(recorder) = recorders::find(self.ticket) {
            recorder.record(latency, now);
        }
    }

    /// The timeout is counted (and, for a measured call, recorded as a
    /// latency equal to the deadline) under the call's tracker, if it still
    /// exists.
    fn expired(&self, deadline: Duration, at: Instant) -> Elapsed {
        if self.measured {
            if let Some(recorder) = recorders::find(self.ticket) {
                recorder.record_timeout(deadline, at);
                return recorder.elapsed(deadline);
            }
        } else if let Some(common) = registry::find(self.ticket) {
            common.count_timeout(deadline);
            return common.elapsed(deadline);
        }
        // The layer is gone: nothing left to count in.
        Elapsed::new(deadline)
    }
}

impl Claim {
    /// A call that is not measured.
    pub(crate) fn counted(ticket: Ticket) -> Claim {
        Claim {
            ticket,
            measured: false,
        }
    }
}

/// A tracker's number, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Ticket(u64);

/// Every live tracker by its ticket, so that a call that was not measured
/// need not keep its tracker alive (a reference count touched twice per
/// call, the largest cost of a timeout after the timer itself). Only the
/// paths off the per-call one use it: creating or dropping a tracker (a
/// layer, or a key of a keyed layer) takes a write lock on one of 16
/// shards; a call timing out, a read lock, so a storm of timeouts does not
/// serialise on it.
mod registry {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, LazyLock, RwLock, Weak};

    use seawall_core::key::KeyHasher;

    use super::{Common, Ticket};

    const SHARDS: usize = 16;

    type Table = RwLock<HashMap<u64, Weak<Common>, KeyHasher>>;

    static TABLES: LazyLock<[Table; SHARDS]> = LazyLock::new(|| {
        std::array::from_fn(|_| RwLock::new(HashMap::with_hasher(KeyHasher::default())))
    });

    fn table(ticket: Ticket) -> &'static Table {
        // `% SHARDS` of a counter: consecutive trackers land on different locks.
        &TABLES[(ticket.0 % SHARDS as u64) as usize]
    }

    pub(super) fn next_ticket() -> Ticket {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Ticket(NEXT.fetch_add(1, Relaxed))
    }

    // Poisoning: nothing panics under these locks (a map insert, remove or
    // lookup), and the map is consistent either way.
    pub(super) fn register(ticket: Ticket, common: &Arc<Common>) {
        let mut t = table(ticket).write().unwrap_or_else(|p| p.into_inner());
        t.insert(ticket.0, Arc::downgrade(common));
    }

    pub(super) fn unregister(ticket: Ticket) {
        let mut t = table(ticket).write().unwrap_or_else(|p| p.into_inner());
        t.remove(&ticket.0);
    }

    pub(super) fn find(ticket: Ticket) -> Option<Arc<Common>> {
        let t = table(ticket).read().unwrap_or_else(|p| p.into_inner());
        t.get(&ticket.0).and_then(Weak::upgrade)
    }
}

/// The recorder shard of a tracker for the current thread, by ticket: a
/// small per-thread cache of weak handles in front of the [`registry`], so
/// that a measured call that ends finds its shard with one upgrade of a
/// weak count (of the thread's own shard), not a lookup under a shared lock.
mod recorders {
    use std::cell::RefCell;
    use std::sync::Weak;

    use super::{Recorder, Shard, Ticket, registry, thread_index};

    /// Trackers a thread records into, most recent first; a thread serving
    /// more layers (or keys) than this looks the others up in the registry.
    const WAYS: usize = 4;

    /// A tracker's ticket and this thread's shard of it.
    type Way = Option<(Ticket, Weak<Shard>)>;

    thread_local! {
        static CACHE: RefCell<[Way; WAYS]> = const { RefCell::new([const { None }; WAYS]) };
    }

    pub(super) fn find(ticket: Ticket) -> Option<Recorder> {
        let cached = CACHE
            .try_with(|c| {
                let c = c.borrow();
                c.iter()
                    .flatten()
                    .find(|(t, _)| *t == ticket)
                    .and_then(|(_, w)| w.upgrade())
            })
            .ok()
            .flatten();
        if let Some(shard) = cached {
            return Some(Recorder { shard });
        }
        find_slow(ticket)
    }

    #[cold]
    #[inline(never)]
    fn find_slow(ticket: Ticket) -> Option<Recorder> {
        let common = registry::find(ticket)?;
        let shards = common.shards.get()?;
        let i = thread_index() & (shards.len().max(1) - 1);
        let shard = shards.get(i)?.upgrade()?;
        let _ = CACHE.try_with(|c| {
            let mut c = c.borrow_mut();
            // Most recent first; the least recent falls out.
            c.rotate_right(1);
            c[0] = Some((ticket, std::sync::Arc::downgrade(&shard)));
        });
        Some(Recorder { shard })
    }
}

/// `ns` as seconds above bit 30 and nanoseconds (below 2^30) beneath: read
/// back without the division `Duration::from_nanos` costs on every call.
fn pack_ns(ns: u64) -> u64 {
    pack(Duration::from_nanos(ns))
}

/// `d` packed as [`pack_ns`] does; exact up to 2^33 s (272 years, far
/// beyond [`LONGEST_DEADLINE`](crate::LONGEST_DEADLINE)), saturating above.
#[inline]
pub(crate) fn pack(d: Duration) -> u64 {
    (d.as_secs().min(1 << 33) << 30) | u64::from(d.subsec_nanos())
}

/// The inverse of [`pack`].
#[inline]
pub(crate) fn unpack(packed: u64) -> Duration {
    // The low 30 bits hold fewer than 10^9 nanoseconds, so this `new`
    // never carries.
    Duration::new(packed >> 30, (packed & ((1 << 30) - 1)) as u32)
}

fn duration_us(us: u64) -> Duration {
    Duration::from_micros(us)
}

impl DeadlineTracker {
    /// A tracker for `config` (after validating it), named `config.name`.
    pub fn new(config: &AdaptiveTimeoutConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::with_params(
            Params::new(config),
            config.name.as_str().into(),
        ))
    }

    /// A fixed-deadline tracker: measures nothing, counts timeouts. The
    /// deadline is capped at [`LONGEST_DEADLINE`](crate::LONGEST_DEADLINE).
    pub fn fixed(deadline: Duration) -> Self {
        Self::with_params(
            Params::fixed(deadline.min(crate::LONGEST_DEADLINE)),
            seawall_core::names::DEFAULT_NAME.into(),
        )
    }

    /// A layer's own tracker: precise histograms, a recorder shard per CPU.
    pub(crate) fn with_params(params: Params, name: Arc<str>) -> Self {
        let layout = Layout::precise(params.high_us);
        Self::build(
            params,
            name,
            None,
            layout,
            shard_count(params.fixed.is_some()),
        )
    }

    /// One key's tracker: compact histograms and one recorder shard (its
    /// callers are already spread over the keys), so that a key costs under
    /// 4 KiB whatever `max` is.
    pub(crate) fn keyed(params: Params, name: Arc<str>, label: Arc<str>) -> Self {
        let layout = Layout::compact(params.high_us);
        Self::build(params, name, Some(label), layout, 1)
    }

    fn build(
        params: Params,
        name: Arc<str>,
        label: Option<Arc<str>>,
        layout: Layout,
        n: usize,
    ) -> Self {
        let (deadline, source) = match params.fixed {
            Some(f) => (f, DeadlineSource::Fixed),
            None => (params.base_ns, DeadlineSource::Base),
        };
        let ring = Ring::new(layout, params.interval_ns);
        let epoch = Instant::now();
        let step_at = epoch
            .checked_add(Duration::from_nanos(ring.next_rotation()))
            .unwrap_or(epoch);
        let ticket = registry::next_ticket();
        let keyed = label.is_some();
        let common = Arc::new(Common {
            ticket,
            params,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Handles::new(&name, label.as_deref(), params.key_metrics),
            name,
            label,
            epoch,
            deadline: AtomicU64::new(pack_ns(deadline)),
            flush_at: AtomicU32::new(warmup_flush(&params, n)),
            timeouts: AtomicU64::new(0),
            sample_below: AtomicU32::new(u32::MAX),
            fresh_at: AtomicU64::new(0),
            ring: Mutex::new(RingState {
                ring,
                source,
                at_max: false,
                sampling: 1,
                #[cfg(feature = "metrics")]
                retired: false,
            }),
            shards: OnceLock::new(),
        });
        let shards: Box<[Arc<Shard>]> = (0..n)
            .map(|_| {
                Arc::new(Shard {
                    common: common.clone(),
                    batch: Mutex::new(Batch {
                        hist: Histogram::new(layout),
                        pending: 0,
                        step_at,
                    }),
                })
            })
            .collect();
        let _ = common
            .shards
            .set(shards.iter().map(Arc::downgrade).collect());
        // Only a layer's own calls find their tracker by ticket; a key's
        // calls hold its recorder. So a key costs no entry in the registry,
        // and a flood of new keys takes none of its locks.
        if !keyed {
            registry::register(ticket, &common);
        }
        #[cfg(feature = "metrics")]
        common.metrics.deadline(&common.name, None, deadline, false);
        DeadlineTracker { common, shards }
    }

    /// The deadline the next call gets: one atomic load.
    #[inline]
    pub fn deadline(&self) -> Duration {
        self.common.deadline()
    }

    /// `true` unless the tracker is in fixed mode.
    #[inline]
    pub fn is_adaptive(&self) -> bool {
        self.common.params.fixed.is_none()
    }

    /// The recorder shard of the current thread.
    #[inline]
    pub fn recorder(&self) -> Recorder {
        let n = self.shards.len();
        // One shard (fixed mode, one core): no need to know the thread.
        let i = if n == 1 { 0 } else { thread_index() & (n - 1) };
        Recorder {
            shard: self.shards[i].clone(),
        }
    }

    /// What a starting call needs: its deadline (packed, see [`pack`]) and
    /// its claim on the tracker (whether it is measured: every call while
    /// the window fills, about one in `sample_every` under high traffic,
    /// none in fixed mode).
    #[inline]
    pub(crate) fn start(&self) -> Start {
        let common = &*self.common;
        let claim = Claim {
            ticket: common.ticket,
            measured: common.should_measure(),
        };
        (common.deadline.load(Relaxed), claim)
    }

    /// In fixed mode, every call's deadline (packed) and the tracker's
    /// ticket: they never change.
    pub(crate) fn fixed_start(&self) -> Option<(u64, Ticket)> {
        let common = &*self.common;
        common
            .params
            .fixed
            .map(|_| (common.deadline.load(Relaxed), common.ticket))
    }

    /// Records the latency of a call that completed; reads the clock (use
    /// [`Recorder::record`] when you have the time already).
    pub fn record(&self, latency: Duration) {
        self.recorder().record(latency, Instant::now());
    }

    /// Records a call that hit `deadline`: counted as a timeout and, in
    /// adaptive mode, as a latency equal to the deadline.
    pub fn record_timeout(&self, deadline: Duration) {
        self.recorder().record_timeout(deadline, Instant::now());
    }

    /// A snapshot: brings the window up to date (steps it, gathers every
    /// shard, recomputes the deadline) and reads it. Takes the tracker's
    /// locks; meant for dashboards, not for every call.
    pub fn stats(&self) -> AdaptiveTimeoutStats {
        self.common.stats(Instant::now())
    }

    /// The key label given to rejections (keyed layers only).
    pub fn key(&self) -> Option<&str> {
        self.common.label.as_deref()
    }

    /// Whether forgetting this (key's) tracker at `now` would change no
    /// deadline: its deadline is the base one, as a fresh key's, or its
    /// window has drained since it last refreshed. One atomic load.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        let common = &*self.common;
        common.since_epoch(now) >= common.fresh_at.load(Relaxed)
    }

    /// The key has left its map: its metric series reads NaN and is written
    /// no more, even by a call of the key still in flight.
    #[cfg(feature = "metrics")]
    pub(crate) fn retire(&self) {
        let mut state = lock(&self.common.ring);
        state.retired = true;
        self.common.metrics.retire();
    }
}

fn warmup_flush(params: &Params, shards: usize) -> u32 {
    let per_shard = params.min_samples.div_ceil(shards as u64).max(1);
    u32::try_from(per_shard)
        .unwrap_or(u32::MAX)
        .min(params.refresh_every)
}

impl Recorder {
    /// The deadline the next call gets: one atomic load.
    #[inline]
    pub fn deadline(&self) -> Duration {
        self.shard.common.deadline()
    }

    /// `true` unless the tracker is in fixed mode (where recording is a no-op).
    #[inline]
    pub fn is_adaptive(&self) -> bool {
        self.shard.common.params.fixed.is_none()
    }

    /// Records the latency of a call that completed at `now`.
    #[inline]
    pub fn record(&self, latency: Duration, now: Instant) {
        if !self.is_adaptive() {
            return;
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let common = &*self.shard.common;
        if self.push(us, now, common.flush_at.load(Relaxed)) {
            common.maintain(now);
        }
    }

    /// Whether to measure this call: always while the window is small, about
    /// one call in `sample_every` under high traffic, never in fixed mode.
    /// One relaxed load and, when sampling, a per-thread random number.
    #[inline]
    pub fn should_measure(&self) -> bool {
        self.shard.common.should_measure()
    }

    /// Records a call that hit `deadline` at `now`: a timeout and, in adaptive
    /// mode, a latency equal to the deadline.
    pub fn record_timeout(&self, deadline: Duration, now: Instant) {
        self.count_timeout(deadline);
        self.record(deadline, now);
    }

    /// Counts a timeout without recording a latency (for a call that was not
    /// sampled: see [`Recorder::should_measure`]).
    pub fn count_timeout(&self, deadline: Duration) {
        self.shard.common.count_timeout(deadline);
    }

    /// The rejection for a call that hit `deadline`, with the key label of a
    /// keyed layer (a shared `Arc<str>`: no allocation).
    pub fn elapsed(&self, deadline: Duration) -> Elapsed {
        self.shard.common.elapsed(deadline)
    }

    #[inline]
    fn push(&self, us: u64, now: Instant, flush_at: u32) -> bool {
        if let Some(mut b) = try_lock(&self.shard.batch) {
            return b.push(us, now, flush_at);
        }
        self.push_contended(us, now, flush_at)
    }

    #[cold]
    #[inline(never)]
    fn push_contended(&self, us: u64, now: Instant, flush_at: u32) -> bool {
        // Another thread shares this shard right now: try the others
        // before waiting (rare: the upgrade touches a shared count).
        if let Some(others) = self.shard.common.shards.get() {
            for other in others.iter().filter_map(Weak::upgrade) {
                if let Some(mut b) = try_lock(&other.batch) {
                    return b.push(us, now, flush_at);
                }
            }
        }
        lock(&self.shard.batch).push(us, now, flush_at)
    }
}

impl Drop for Common {
    fn drop(&mut self) {
        registry::unregister(self.ticket);
    }
}

impl Common {
    /// Whether to measure this call: always while the window is small, about
    /// one call in `sample_every` under high traffic, never in fixed mode.
    /// One relaxed load and, when sampling, a per-thread random number.
    #[inline]
    fn should_measure(&self) -> bool {
        if self.params.fixed.is_some() {
            return false;
        }
        let below = self.sample_below.load(Relaxed);
        below == u32::MAX || thread_random() <= below
    }

    fn count_timeout(&self, deadline: Duration) {
        self.timeouts.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.elapsed();
        tracing::trace!(
            target: TARGET_TIMEOUT,
            name = &*self.name,
            key = self.label.as_deref(),
            deadline = ?deadline,
            "deadline elapsed"
        );
    }

    fn elapsed(&self, deadline: Duration) -> Elapsed {
        let e = Elapsed::new(deadline);
        match &self.label {
            Some(k) => e.with_key(k.clone()),
            None => e,
        }
    }

    #[inline]
    fn deadline(&self) -> Duration {
        unpack(self.deadline.load(Relaxed))
    }

    fn since_epoch(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.epoch))
    }

    /// Refreshes if nobody else is; never waits.
    fn maintain(&self, now: Instant) {
        if let Some(mut ring) = try_lock(&self.ring) {
            self.refresh(&mut ring, self.since_epoch(now));
        }
    }

    fn stats(&self, now: Instant) -> AdaptiveTimeoutStats {
        let mut ring = lock(&self.ring);
        if self.params.fixed.is_none() {
            self.refresh(&mut ring, self.since_epoch(now));
        }
        let [p50, p90, p99, p999] = ring
            .ring
            .quantiles([0.5, 0.9, 0.99, 0.999])
            .map(duration_us);
        AdaptiveTimeoutStats {
            deadline: self.deadline(),
            source: ring.source,
            p50,
            p90,
            p99,
            p999,
            samples: ring.ring.len(),
            timeouts: self.timeouts.load(Relaxed),
        }
    }

    /// Gathers every shard into the current interval, steps the window if
    /// due, and recomputes the deadline. Runs under the ring lock; takes
    /// shard locks one at a time (a recording thread never waits for the
    /// ring lock while holding a shard lock, so this cannot deadlock).
    fn refresh(&self, state: &mut RingState, now_ns: u64) {
        // When the window steps next, once it has stepped to `now_ns`.
        let next_ns = state.ring.next_rotation_after(now_ns);
        let step_at = self
            .epoch
            .checked_add(Duration::from_nanos(next_ns))
            .unwrap_or(self.epoch);
        if let Some(shards) = self.shards.get() {
            for shard in shards.iter().filter_map(Weak::upgrade) {
                let mut b = lock(&shard.batch);
                if b.pending > 0 {
                    state.ring.absorb(&b.hist);
                    b.hist.reset();
                    b.pending = 0;
                }
                b.step_at = step_at;
            }
        }
        state.ring.rotate(now_ns);
        self.recompute(state);
    }

    fn recompute(&self, state: &mut RingState) {
        let p = &self.params;
        let samples = state.ring.len();
        let (deadline, source) = match p.fixed {
            Some(f) => (f, DeadlineSource::Fixed),
            None if samples < p.min_samples => (p.base_ns, DeadlineSource::Base),
            None => {
                let [us] = state.ring.quantiles([p.quantile]);
                let ns = us as f64 * 1_000.0 * p.multiplier;
                let ns = if ns.is_nan() {
                    p.max_ns
                } else {
                    // `as` saturates; the clamp keeps it in min..=max.
                    (ns as u64).clamp(p.min_ns, p.max_ns)
                };
                (ns, DeadlineSource::Adaptive)
            }
        };
        let old = self.deadline().as_nanos();
        if old != u128::from(deadline) {
            self.deadline.store(pack_ns(deadline), Relaxed);
            tracing::debug!(
                target: TARGET_TIMEOUT,
                name = &*self.name,
                key = self.label.as_deref(),
                deadline = ?Duration::from_nanos(deadline),
                previous = ?Duration::from_nanos(u64::try_from(old).unwrap_or(u64::MAX)),
                samples,
                "deadline updated"
            );
        }
        if state.source != source {
            tracing::info!(
                target: TARGET_TIMEOUT,
                name = &*self.name,
                key = self.label.as_deref(),
                from = ?state.source,
                to = ?source,
                deadline = ?Duration::from_nanos(deadline),
                samples,
                "deadline source changed"
            );
            state.source = source;
            let shards = self.shards.get().map_or(1, |s| s.len());
            let flush_at = if source == DeadlineSource::Adaptive {
                p.refresh_every
            } else {
                warmup_flush(p, shards)
            };
            self.flush_at.store(flush_at, Relaxed);
        }
        // Measure fewer calls once there are plenty: the estimate of calls in
        // the window does not depend on the current rate, so this does not
        // flap around the threshold.
        let calls = samples.saturating_mul(u64::from(state.sampling));
        // Sample only when that still leaves 16 × min_samples latencies.
        let enough = p
            .min_samples
            .saturating_mul(16)
            .saturating_mul(u64::from(p.sample_every));
        let sampling = if source == DeadlineSource::Adaptive && calls >= enough {
            p.sample_every.max(1)
        } else {
            1
        };
        if sampling != state.sampling {
            state.sampling = sampling;
            let below = if sampling == 1 {
                u32::MAX
            } else {
                u32::MAX / sampling
            };
            self.sample_below.store(below, Relaxed);
        }
        let at_max = source == DeadlineSource::Adaptive && deadline >= p.max_ns;
        if at_max != state.at_max {
            state.at_max = at_max;
            if at_max {
                tracing::warn!(
                    target: TARGET_TIMEOUT,
                    name = &*self.name,
                    key = self.label.as_deref(),
                    deadline = ?Duration::from_nanos(deadline),
                    "deadline reached max: the service is slower than max / multiplier"
                );
            } else {
                tracing::info!(
                    target: TARGET_TIMEOUT,
                    name = &*self.name,
                    key = self.label.as_deref(),
                    deadline = ?Duration::from_nanos(deadline),
                    "deadline back below max"
                );
            }
        }
        // A key whose deadline is learned keeps it until its window has
        // drained (one interval more for samples still in its recorder
        // shard): churning other keys cannot make it forget.
        let fresh_at = if source == DeadlineSource::Adaptive {
            state.ring.drained_at().saturating_add(p.interval_ns)
        } else {
            0
        };
        if self.fresh_at.load(Relaxed) != fresh_at {
            self.fresh_at.store(fresh_at, Relaxed);
        }
        #[cfg(feature = "metrics")]
        if !state.retired {
            let adaptive = source == DeadlineSource::Adaptive;
            self.metrics
                .deadline(&self.name, self.label.as_deref(), deadline, adaptive);
        }
    }
}

#[cfg(test)]
mod tests;

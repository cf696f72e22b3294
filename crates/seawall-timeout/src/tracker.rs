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
//! - Every time it keeps (latencies, the window's steps, a key's freshness)
//!   is a reading of its [`Clock`]; it sets no timer.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError, Weak};
use std::time::Duration;

use seawall_core::names::TARGET_TIMEOUT;
use seawall_core::rand::{SplitMix64, derive, random_seed};
use seawall_core::{Clock, ConfigError, Elapsed, ReloadError};
use tokio::time::Instant;

use crate::config::{AdaptiveTimeoutConfig, Params};
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
#[non_exhaustive]
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
/// let cfg = AdaptiveTimeoutConfig::builder().min_samples(10).into_config();
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
/// layers' calls hold one each) touches only that shard's reference count,
/// not a counter shared by every thread.
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
    /// The numbers the tracker was built with. What a reload cannot change
    /// is read from here (fixed or adaptive, the histograms' bound, the
    /// window's interval); the numbers in force are `RingState::params`.
    params: Params,
    /// The bounds of a caller's `CallTimeout`, packed (see [`pack`]): read
    /// only by a call that carries one; changed by a reload.
    clamp: [AtomicU64; 2],
    name: Arc<str>,
    label: Option<Arc<str>>,
    /// Latencies, the window's steps and a key's freshness are readings of
    /// this clock.
    clock: Clock,
    /// The deadline as whole seconds and nanoseconds (see [`pack_ns`]).
    deadline: AtomicU64,
    /// Pending samples in one shard that trigger a refresh.
    flush_at: AtomicU32,
    timeouts: AtomicU64,
    /// A call is measured when a per-thread random number is at most this
    /// (`u32::MAX`: every call).
    sample_below: AtomicU32,
    /// A key of a keyed layer may be evicted from this time on, a reading
    /// of `clock`: 0 while its deadline is the base one (as a
    /// fresh key's), else when its window will have drained. Written by
    /// refreshes only, read by the map when it looks for room.
    fresh_at: AtomicU64,
    ring: Mutex<RingState>,
    shards: OnceLock<Box<[Weak<Shard>]>>,
    /// Built without metric series (see [`DeadlineTracker::without_metrics`]).
    quiet: bool,
    /// `None` for a quiet tracker.
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Handles>,
}

struct RingState {
    /// The numbers in force (those built, or the last reload's).
    params: Params,
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
    /// When the window steps next, a reading of the clock: a copy kept per
    /// shard (updated by every refresh) so the per-call check is one
    /// comparison.
    step_at: u64,
}

impl Batch {
    /// Records `us`; `true` when a refresh is due.
    #[inline]
    fn push(&mut self, us: u64, now: u64, flush_at: u32) -> bool {
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

/// A per-thread stream of core's splitmix64, seeded once per thread from
/// [`random_seed`] and the thread's index; the high 32 bits of each value.
#[inline]
fn thread_random() -> u32 {
    thread_local! {
        static RNG: Cell<Option<SplitMix64>> = const { Cell::new(None) };
    }
    RNG.try_with(|cell| {
        let mut rng = cell
            .get()
            .unwrap_or_else(|| SplitMix64::new(derive(random_seed(), thread_index() as u64)));
        let x = rng.next_u64();
        cell.set(Some(rng));
        (x >> 32) as u32
    })
    .unwrap_or(0)
}

/// Recorder shards of a layer's own tracker: one per CPU (rounded up to a
/// power of two, at most 8), in fixed mode too, where the shards hold the
/// calls' reference counts (and tiny histograms), so that threads do not
/// share one count.
fn shard_count() -> usize {
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

/// The bit of a packed deadline set for a call whose latency is measured
/// (free: a packed deadline is below 2^63).
pub(crate) const MEASURED: u64 = 1 << 63;

/// How an [`AdaptiveTimeout`](crate::AdaptiveTimeout) call's
/// [`ResponseFuture`](crate::ResponseFuture) holds on to its tracker: a
/// reference to the recorder shard of the thread that made the call (a
/// reference count no other thread normally touches), through which a call
/// outliving its layer still counts its timeout. Opaque.
#[derive(Debug, Clone)]
pub struct Claim {
    recorder: Recorder,
}

/// How a [`KeyedAdaptiveTimeout`](crate::KeyedAdaptiveTimeout) call's
/// [`ResponseFuture`](crate::ResponseFuture) holds on to its key's
/// tracker: a reference to the key's recorder, so that a key evicted from
/// the map while the call is in flight still counts the call's timeout and
/// names its key. Opaque.
#[derive(Debug, Clone)]
pub struct KeyedClaim {
    recorder: Recorder,
}

impl KeyedClaim {
    pub(crate) fn new(tracker: &DeadlineTracker) -> KeyedClaim {
        KeyedClaim {
            recorder: tracker.recorder(),
        }
    }
}

pub(crate) use sealed::Began;

/// When a call on `clock` starts: see [`DeadlineTracker::began`].
#[inline]
pub(crate) fn began(clock: &Clock) -> Began {
    if clock.follows_tokio() {
        Began::Tokio(Instant::now())
    } else {
        Began::At(clock.nanos())
    }
}

pub(crate) mod sealed {
    use std::time::Duration;

    use seawall_core::Elapsed;
    use tokio::time::Instant;

    /// When a measured call started.
    #[derive(Debug, Clone, Copy)]
    pub enum Began {
        /// A reading of the tracker's clock.
        At(u64),
        /// A tokio instant (read back on the tracker's clock with
        /// [`Clock::nanos_at`](seawall_core::Clock::nanos_at)): a call whose
        /// timer is running keeps only the timer's instant.
        Tokio(Instant),
    }

    /// What a response future needs of its claim. Sealed: implemented by
    /// [`Claim`](super::Claim) and [`KeyedClaim`](super::KeyedClaim) only.
    pub trait Hold {
        /// The recorder the claim holds.
        fn recorder(&self) -> &super::Recorder;

        /// The tokio instant at which the tracker's clock reads `reading +
        /// deadline` (tokio's now plus the deadline once the tracker is
        /// gone).
        fn instant_at(&self, reading: u64, deadline: Duration) -> Instant {
            self.recorder().instant_at(reading, deadline)
        }

        /// Records the latency of a measured call that succeeded now.
        fn record(&self, began: Began) {
            self.recorder().record_since(began);
        }

        /// Accounts for a call that hit `deadline` (recording it as a
        /// latency when `measured`) and makes its error.
        fn expired(&self, deadline: Duration, measured: bool) -> Elapsed {
            let recorder = self.recorder();
            if measured {
                recorder.record_timeout(deadline);
            } else {
                recorder.count_timeout(deadline);
            }
            recorder.elapsed(deadline)
        }
    }
}

impl sealed::Hold for KeyedClaim {
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

impl sealed::Hold for Claim {
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

/// `ns` as seconds above bit 30 and nanoseconds (below 2^30) beneath: read
/// back without the division `Duration::from_nanos` costs on every call.
fn pack_ns(ns: u64) -> u64 {
    pack(Duration::from_nanos(ns))
}

/// `d` packed as [`pack_ns`] does; exact below 2^33 s (272 years, far
/// beyond [`LONGEST_DEADLINE`](crate::LONGEST_DEADLINE)), saturating
/// above; below 2^63, so bit 63 is free for [`MEASURED`].
#[inline]
pub(crate) fn pack(d: Duration) -> u64 {
    (d.as_secs().min((1 << 33) - 1) << 30) | u64::from(d.subsec_nanos())
}

/// The inverse of [`pack`] (ignores [`MEASURED`]).
#[inline]
pub(crate) fn unpack(packed: u64) -> Duration {
    // The low 30 bits hold fewer than 10^9 nanoseconds, so this `new`
    // never carries.
    Duration::new(
        (packed & !MEASURED) >> 30,
        (packed & ((1 << 30) - 1)) as u32,
    )
}

fn duration_us(us: u64) -> Duration {
    Duration::from_micros(us)
}

impl DeadlineTracker {
    /// A tracker for `config` (after validating it), named `config.name`,
    /// on tokio's clock.
    pub fn new(config: &AdaptiveTimeoutConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, Clock::tokio())
    }

    /// A tracker for `config` (after validating it) that measures latencies
    /// and ages its window on `clock`. With a manual clock it needs no
    /// runtime at all:
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_core::Clock;
    /// use seawall_timeout::{AdaptiveTimeoutConfig, DeadlineSource, DeadlineTracker};
    ///
    /// let (clock, hand) = Clock::manual();
    /// let cfg = AdaptiveTimeoutConfig::builder().min_samples(10).into_config();
    /// let tracker = DeadlineTracker::with_clock(&cfg, clock).unwrap();
    /// for _ in 0..10 {
    ///     tracker.record(Duration::from_millis(100));
    /// }
    /// assert_eq!(tracker.stats().source, DeadlineSource::Adaptive);
    /// // A window (60s) later, and one step more, the samples have aged out.
    /// hand.advance(Duration::from_secs(70));
    /// assert_eq!(tracker.stats().source, DeadlineSource::Base);
    /// ```
    pub fn with_clock(config: &AdaptiveTimeoutConfig, clock: Clock) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::with_params(
            Params::new(config),
            config.name.as_str().into(),
            clock,
        ))
    }

    /// One key's tracker (after validating `config`), for a keyed layer
    /// kept outside this crate (the hedging layer's per-key delay): compact
    /// histograms and one recorder shard, as each key of a
    /// [`KeyedAdaptiveTimeoutLayer`](crate::KeyedAdaptiveTimeoutLayer), so
    /// that a key costs under 4 KiB; `key` labels its rejections and stats.
    /// Keep such trackers in a [`KeyMap`](seawall_core::KeyMap) that evicts
    /// only [fresh](Self::is_fresh) ones.
    pub fn for_key(
        config: &AdaptiveTimeoutConfig,
        key: Arc<str>,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::keyed(
            Params::new(config),
            config.name.as_str().into(),
            key,
            clock,
        ))
    }

    /// As [`with_clock`](Self::with_clock), but reporting nothing through
    /// the `metrics` facade (feature `metrics`): no
    /// `seawall_timeout_deadline_seconds` or `seawall_timeout_elapsed_total`
    /// series is registered or written. For a layer kept outside this crate
    /// that reuses the tracker for a value of its own, under its own metric
    /// names (the hedging layer's delay): its name is then not confused
    /// with an adaptive timeout's of the same name. Tracing events and
    /// [`stats`](Self::stats) are unchanged.
    ///
    /// ```
    /// use seawall_core::Clock;
    /// use seawall_timeout::{AdaptiveTimeoutConfig, DeadlineTracker};
    ///
    /// let cfg = AdaptiveTimeoutConfig::builder().name("hedge").into_config();
    /// let tracker = DeadlineTracker::without_metrics(&cfg, Clock::tokio()).unwrap();
    /// assert_eq!(tracker.deadline(), cfg.base);
    /// ```
    pub fn without_metrics(
        config: &AdaptiveTimeoutConfig,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let params = Params::new(config);
        let layout = Layout::precise(params.high_us);
        let name = config.name.as_str().into();
        Ok(Self::build(
            params,
            name,
            None,
            layout,
            shard_count(),
            clock,
            true,
        ))
    }

    /// As [`for_key`](Self::for_key), but reporting nothing through the
    /// `metrics` facade: see [`without_metrics`](Self::without_metrics).
    pub fn for_key_without_metrics(
        config: &AdaptiveTimeoutConfig,
        key: Arc<str>,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let params = Params::new(config);
        let layout = Layout::compact(params.high_us);
        let name = config.name.as_str().into();
        Ok(Self::build(params, name, Some(key), layout, 1, clock, true))
    }

    /// A fixed-deadline tracker: measures nothing, counts timeouts. The
    /// deadline is capped at [`LONGEST_DEADLINE`](crate::LONGEST_DEADLINE).
    pub fn fixed(deadline: Duration) -> Self {
        Self::with_params(
            Params::fixed(deadline.min(crate::LONGEST_DEADLINE)),
            seawall_core::names::DEFAULT_NAME.into(),
            Clock::tokio(),
        )
    }

    /// A tracker like this one (same settings, name and key), fresh, on
    /// `clock`.
    pub(crate) fn on_clock(&self, clock: Clock) -> Self {
        let c = &*self.common;
        // The numbers in force, on the bounds it was built with.
        let params = lock(&c.ring).params;
        let (layout, n) = match &c.label {
            Some(_) => (Layout::compact(c.params.high_us), 1),
            None => (Layout::precise(c.params.high_us), shard_count()),
        };
        let (name, label) = (c.name.clone(), c.label.clone());
        Self::build(params, name, label, layout, n, clock, c.quiet)
    }

    /// A layer's own tracker: precise histograms, a recorder shard per CPU.
    pub(crate) fn with_params(params: Params, name: Arc<str>, clock: Clock) -> Self {
        let layout = Layout::precise(params.high_us);
        Self::build(params, name, None, layout, shard_count(), clock, false)
    }

    /// One key's tracker: compact histograms and one recorder shard (its
    /// callers are already spread over the keys), so that a key costs under
    /// 4 KiB whatever `max` is.
    pub(crate) fn keyed(params: Params, name: Arc<str>, label: Arc<str>, clock: Clock) -> Self {
        let layout = Layout::compact(params.high_us);
        Self::build(params, name, Some(label), layout, 1, clock, false)
    }

    fn build(
        params: Params,
        name: Arc<str>,
        label: Option<Arc<str>>,
        layout: Layout,
        n: usize,
        clock: Clock,
        quiet: bool,
    ) -> Self {
        let (deadline, source) = match params.fixed {
            Some(f) => (f, DeadlineSource::Fixed),
            None => (params.base_ns, DeadlineSource::Base),
        };
        // The window's intervals start at this reading.
        let origin = clock.nanos();
        let ring = Ring::new(layout, params.interval_ns, origin);
        let step_at = ring.next_rotation();
        let common = Arc::new(Common {
            params,
            clamp: clamp_of(&params).map(AtomicU64::new),
            #[cfg(feature = "metrics")]
            metrics: (!quiet)
                .then(|| crate::metrics::Handles::new(&name, label.as_deref(), params.key_metrics)),
            quiet,
            name,
            label,
            clock,
            deadline: AtomicU64::new(pack_ns(deadline)),
            flush_at: AtomicU32::new(warmup_flush(&params, n)),
            timeouts: AtomicU64::new(0),
            sample_below: AtomicU32::new(u32::MAX),
            fresh_at: AtomicU64::new(0),
            ring: Mutex::new(RingState {
                params,
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
        #[cfg(feature = "metrics")]
        if let Some(m) = &common.metrics {
            m.deadline(&common.name, None, deadline, false);
        }
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

    /// The clock this tracker reads.
    pub fn clock(&self) -> &Clock {
        &self.common.clock
    }

    /// When a call starts: tokio's now on tokio's clock (so that its timer
    /// needs no conversion), else a reading of the tracker's clock.
    #[inline]
    pub(crate) fn began(&self) -> Began {
        began(&self.common.clock)
    }

    /// Whether to measure the call starting now, as
    /// [`Recorder::should_measure`], without taking a recorder: for a layer
    /// that reads [`deadline`](Self::deadline) on every call and records
    /// only the calls it measures (the hedging layer's delay).
    #[inline]
    pub fn should_measure(&self) -> bool {
        self.common.should_measure()
    }

    /// The recorder shard of the current thread.
    #[inline]
    pub fn recorder(&self) -> Recorder {
        let n = self.shards.len();
        // One shard (a key, or one core): no need to know the thread.
        let i = if n == 1 { 0 } else { thread_index() & (n - 1) };
        Recorder {
            shard: self.shards[i].clone(),
        }
    }

    /// A starting call's deadline (packed, see [`pack`], with [`MEASURED`]
    /// when the call is measured: every call while the window fills, about
    /// one in `sample_every` under high traffic, none in fixed mode).
    #[inline]
    pub(crate) fn start(&self) -> u64 {
        let common = &*self.common;
        let measured = if common.should_measure() { MEASURED } else { 0 };
        common.deadline.load(Relaxed) | measured
    }

    /// A call's claim on this tracker: the current thread's recorder shard.
    #[inline]
    pub(crate) fn claim(&self) -> Claim {
        Claim {
            recorder: self.recorder(),
        }
    }

    /// Records the latency of a call that completed now (reads the clock,
    /// to step the window when due).
    pub fn record(&self, latency: Duration) {
        self.recorder().record(latency);
    }

    /// Records a call that hit `deadline`: counted as a timeout and, in
    /// adaptive mode, as a latency equal to the deadline.
    pub fn record_timeout(&self, deadline: Duration) {
        self.recorder().record_timeout(deadline);
    }

    /// A snapshot: brings the window up to date (steps it, gathers every
    /// shard, recomputes the deadline) and reads it. Takes the tracker's
    /// locks; meant for dashboards, not for every call.
    pub fn stats(&self) -> AdaptiveTimeoutStats {
        self.common.stats(self.common.clock.nanos())
    }

    /// The key label given to rejections (keyed layers only).
    pub fn key(&self) -> Option<&str> {
        self.common.label.as_deref()
    }

    /// Whether forgetting this (key's) tracker at `now` (a reading of its
    /// clock) would change no deadline: its deadline is the base one, as a
    /// fresh key's, or its window has drained since it last refreshed. One
    /// atomic load.
    pub fn is_fresh(&self, now: u64) -> bool {
        now >= self.common.fresh_at.load(Relaxed)
    }

    /// Applies `config` to this tracker: all of it or, on an error, none of
    /// it. Its latency window and histograms are kept; the new percentile,
    /// multiplier, `min`/`max` clamp, `base`, `min_samples`, `refresh_every`
    /// and `sample_every` (or, in fixed mode, the fixed deadline) give the
    /// deadline of the next call, recomputed at once from the samples held.
    /// See [`AdaptiveTimeoutLayer::reload`](crate::AdaptiveTimeoutLayer::reload)
    /// for what cannot change in place. Emits one `info` event (target
    /// `seawall_timeout`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_core::Clock;
    /// use seawall_timeout::{AdaptiveTimeoutConfig, DeadlineTracker};
    ///
    /// let (clock, _hand) = Clock::manual();
    /// let cfg = AdaptiveTimeoutConfig::builder().min_samples(10).multiplier(1.0).into_config();
    /// let tracker = DeadlineTracker::with_clock(&cfg, clock).unwrap();
    /// for ms in 1..=100 {
    ///     tracker.record(Duration::from_millis(ms));
    /// }
    /// let p99 = tracker.stats().deadline; // brought up to date
    /// // The same samples: the median instead of p99.
    /// let mut median = cfg.clone();
    /// median.percentile = 50.0;
    /// tracker.reload(&median).unwrap();
    /// assert!(tracker.deadline() < p99);
    /// assert!(tracker.deadline() >= Duration::from_millis(50));
    /// ```
    pub fn reload(&self, config: &AdaptiveTimeoutConfig) -> Result<(), ReloadError> {
        self.reload_as(config, "tracker")
    }

    /// [`reload`](Self::reload), its event naming the `layer` kind.
    pub(crate) fn reload_as(
        &self,
        config: &AdaptiveTimeoutConfig,
        layer: &'static str,
    ) -> Result<(), ReloadError> {
        config.validate()?;
        if *self.common.name != *config.name {
            return Err(ReloadError::not_in_place(
                "name",
                "the name labels the tracker's events and metric series",
            ));
        }
        let params = Params::new(config);
        self.check_in_place(&params)?;
        let changed = self.apply(params);
        tracing::info!(
            target: TARGET_TIMEOUT,
            layer,
            name = &*self.common.name,
            key = self.common.label.as_deref(),
            changed = %changed.join(", "),
            deadline = ?self.deadline(),
            "adaptive timeout reloaded"
        );
        Ok(())
    }

    /// Whether `params` can replace this tracker's in place.
    pub(crate) fn check_in_place(&self, params: &Params) -> Result<(), ReloadError> {
        let built = &self.common.params;
        if params.fixed.is_some() != built.fixed.is_some() {
            return Err(ReloadError::not_in_place(
                "fixed",
                "a fixed deadline keeps no latency window; switching between fixed and adaptive needs a new layer",
            ));
        }
        if built.fixed.is_none() {
            if params.interval_ns != built.interval_ns {
                return Err(ReloadError::not_in_place(
                    "window",
                    "the latency window's intervals are fixed when it is built",
                ));
            }
            // `high_us` is twice the max the histograms were built for: a
            // max up to it is still measured whole.
            let max_us = params.max_ns / 1_000;
            if max_us > built.high_us {
                return Err(ReloadError::not_in_place(
                    "max",
                    "the histograms track latencies up to twice the max they were built with",
                ));
            }
        }
        Ok(())
    }

    /// Puts `params` in force (checked by [`check_in_place`](Self::check_in_place))
    /// and recomputes the deadline; returns the fields that changed.
    pub(crate) fn apply(&self, params: Params) -> Vec<&'static str> {
        let common = &*self.common;
        let built = &common.params;
        let params = Params {
            // The bounds it was built with stay.
            high_us: built.high_us,
            interval_ns: built.interval_ns,
            ..params
        };
        let mut state = lock(&common.ring);
        let changed = params.changed_from(&state.params);
        state.params = params;
        for (slot, bound) in common.clamp.iter().zip(clamp_of(&params)) {
            slot.store(bound, Relaxed);
        }
        if state.source != DeadlineSource::Adaptive {
            let shards = common.shards.get().map_or(1, |s| s.len());
            common
                .flush_at
                .store(warmup_flush(&params, shards), Relaxed);
        } else {
            common.flush_at.store(params.refresh_every, Relaxed);
        }
        if params.fixed.is_none() {
            common.refresh(&mut state, common.clock.nanos());
        } else {
            common.recompute(&mut state);
        }
        changed
    }

    /// The numbers in force, on the bounds it was built with.
    pub(crate) fn params(&self) -> Params {
        lock(&self.common.ring).params
    }

    /// The bounds of a caller's `CallTimeout` in force, packed.
    #[inline]
    pub(crate) fn clamp(&self) -> [u64; 2] {
        self.common.clamp.each_ref().map(|b| b.load(Relaxed))
    }

    /// In fixed mode, the fixed deadline in force (packed): one load.
    #[inline]
    pub(crate) fn fixed_deadline(&self) -> u64 {
        self.common.deadline.load(Relaxed)
    }

    /// The key has left its map: its metric series reads NaN and is written
    /// no more, even by a call of the key still in flight.
    #[cfg(feature = "metrics")]
    pub(crate) fn retire(&self) {
        let mut state = lock(&self.common.ring);
        state.retired = true;
        if let Some(m) = &self.common.metrics {
            m.retire();
        }
    }
}

/// The bounds of a caller's `CallTimeout` under `params`, packed: the
/// `min`/`max` clamp, or in fixed mode anything up to the longest deadline
/// (a caller may only shorten a fixed deadline; the service checks that).
fn clamp_of(params: &Params) -> [u64; 2] {
    match params.fixed {
        Some(_) => [1, pack(crate::LONGEST_DEADLINE)],
        // Validated to at most `LONGEST_DEADLINE`, like every deadline, so
        // a packed value never reaches the flag bits.
        None => [pack_ns(params.min_ns), pack_ns(params.max_ns)],
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

    /// Records the latency of a call that completed now (reads the
    /// tracker's clock, to step the window when due).
    #[inline]
    pub fn record(&self, latency: Duration) {
        if self.is_adaptive() {
            self.record_at(latency, self.shard.common.clock.nanos());
        }
    }

    /// Records the latency of a measured call that started at `began` and
    /// completed now.
    pub(crate) fn record_since(&self, began: Began) {
        let clock = &self.shard.common.clock;
        let (latency, now) = match began {
            Began::At(start) => {
                let now = clock.nanos();
                (Duration::from_nanos(now.saturating_sub(start)), now)
            }
            Began::Tokio(start) if clock.follows_tokio() => {
                let now = Instant::now();
                (now.saturating_duration_since(start), clock.nanos_at(now))
            }
            Began::Tokio(start) => {
                let now = clock.nanos();
                let start = clock.nanos_at(start);
                (Duration::from_nanos(now.saturating_sub(start)), now)
            }
        };
        self.record_at(latency, now);
    }

    /// The tokio instant at which the tracker's clock reads `reading +
    /// deadline`.
    fn instant_at(&self, reading: u64, deadline: Duration) -> Instant {
        self.shard.common.instant_at(reading, deadline)
    }

    /// Records the latency of a call that completed at `now`, a reading of
    /// the tracker's clock.
    #[inline]
    fn record_at(&self, latency: Duration, now: u64) {
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

    /// Records a call that hit `deadline` now: a timeout and, in adaptive
    /// mode, a latency equal to the deadline.
    pub fn record_timeout(&self, deadline: Duration) {
        self.count_timeout(deadline);
        self.record(deadline);
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
    fn push(&self, us: u64, now: u64, flush_at: u32) -> bool {
        if let Some(mut b) = try_lock(&self.shard.batch) {
            return b.push(us, now, flush_at);
        }
        self.push_contended(us, now, flush_at)
    }

    #[cold]
    #[inline(never)]
    fn push_contended(&self, us: u64, now: u64, flush_at: u32) -> bool {
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

impl Common {
    /// The tokio instant at which the clock reads `reading + deadline`.
    fn instant_at(&self, reading: u64, deadline: Duration) -> Instant {
        let at = reading.saturating_add(seawall_core::time::nanos(deadline));
        self.clock.instant_at(at)
    }

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
        if let Some(m) = &self.metrics {
            m.elapsed();
        }
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

    /// Refreshes if nobody else is; never waits.
    fn maintain(&self, now: u64) {
        if let Some(mut ring) = try_lock(&self.ring) {
            self.refresh(&mut ring, now);
        }
    }

    fn stats(&self, now: u64) -> AdaptiveTimeoutStats {
        let mut ring = lock(&self.ring);
        if self.params.fixed.is_none() {
            self.refresh(&mut ring, now);
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
        let step_at = state.ring.next_rotation_after(now_ns);
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
        let params = state.params;
        let p = &params;
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
        if let Some(m) = &self.metrics
            && !state.retired
        {
            let adaptive = source == DeadlineSource::Adaptive;
            m.deadline(&self.name, self.label.as_deref(), deadline, adaptive);
        }
    }
}

#[cfg(test)]
mod tests;

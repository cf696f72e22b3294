//! Pressure signals: shed by priority when the process runs short of
//! memory (or of anything else a [`PressureSignal`] measures).
//!
//! A [`PressureSignal`] reports a [`PressureLevel`] that the shedder reads on
//! every request with **one atomic load of a cached value**; nothing is
//! measured on the call path. [`MemoryPressure`] is the ready signal: a
//! background task samples memory used / limit every `interval` (cgroup v2
//! `memory.current` / `memory.max` when the process runs in a limited
//! cgroup, otherwise the process's RSS against a budget; see
//! [`SystemMemory`]) and turns the ratio into a level with two thresholds
//! and a hysteresis margin:
//!
//! | level | entered when the ratio is | left when the ratio falls below | sheds |
//! |-------|---------------------------|----------------------------------|-------|
//! | [`Normal`](PressureLevel::Normal) | below `shed_sheddable_at` (0.7) | — | nothing |
//! | [`Elevated`](PressureLevel::Elevated) | at or above `shed_sheddable_at` (0.7) | `shed_sheddable_at - hysteresis` (0.65) | `Sheddable` |
//! | [`Severe`](PressureLevel::Severe) | at or above `shed_normal_at` (0.9) | `shed_normal_at - hysteresis` (0.85) | all but `Critical` |
//!
//! A shed request gets [`Overloaded`](seawall_core::Overloaded) with reason
//! [`OverloadReason::MemoryPressure`](seawall_core::OverloadReason::MemoryPressure),
//! counted in [`ShedCounts::memory_pressure`](crate::ShedCounts::memory_pressure).
//!
//! # What it guarantees
//!
//! - **One atomic load per call**, no clock, no allocation, no lock.
//! - **No orphan task.** The sampler holds the signal's state by a `Weak`
//!   reference: once the last clone of the [`MemoryPressure`] (and so the
//!   last layer using it) is dropped, the task ends at its next tick.
//! - **No flapping.** The level rises as soon as a sample crosses a
//!   threshold and falls only when a sample is `hysteresis` below it.
//! - **A failed sample changes nothing.** It is counted
//!   ([`MemoryPressureStats::errors`]) and the level stays where it was. A
//!   [`MemorySource`] that panics counts as a failed sample (and an `ERROR`
//!   event); the sampler carries on.
//! - **A level that is no longer measured is not kept.** If the sampler
//!   stops while the signal is in use (its runtime shut down), the level
//!   returns to `Normal`, [`MemoryPressureStats::sampling`] turns `false`
//!   and an event says so: a stale `Severe` would shed forever.
//! - **Bounded sampling.** `interval` is in `10ms..=1h`
//!   ([`MemoryPressureConfig::MIN_INTERVAL`],
//!   [`MemoryPressureConfig::MAX_INTERVAL`]), so the sampler can neither spin
//!   on `/proc` nor overflow its timer.
//!
//! # Example
//!
//! ```
//! use seawall_shed::{ManualPressure, PressureLevel, Priority, ShedLayer};
//! use seawall_core::{OverloadReason, Rejection};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), seawall_core::BoxError> {
//! // A signal set by hand; `MemoryPressure::start` samples the real one.
//! let pressure = ManualPressure::new();
//! let layer = ShedLayer::builder()
//!     .pressure_signal(pressure.clone())
//!     .priority(|req: &&'static str| if *req == "batch" { Priority::Sheddable } else { Priority::Normal })
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(layer.clone())
//!     .service(service_fn(|req: &'static str| async move { Ok::<_, std::io::Error>(req.len()) }));
//!
//! pressure.set(PressureLevel::Elevated);
//! let err = svc.ready().await?.call("batch").await.unwrap_err();
//! let Some(Rejection::Overloaded(o)) = Rejection::find(&*err) else { panic!() };
//! assert_eq!(o.reason(), OverloadReason::MemoryPressure);
//! assert_eq!(svc.ready().await?.call("query").await?, 5); // Normal still passes
//! assert_eq!(layer.stats().pressure, PressureLevel::Elevated);
//! assert_eq!(layer.stats().shed.memory_pressure, 1);
//! # Ok(()) }
//! ```

mod system;

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use seawall_core::ConfigError;
use seawall_core::config::Check;
use seawall_core::names::TARGET_SHED;
use seawall_core::time::deadline;
use tokio::time::Instant;

use crate::priority::Priority;

pub use system::SystemMemory;

/// How hard-pressed the process is, and so which priorities are shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum PressureLevel {
    /// No pressure: nothing is shed for it.
    #[default]
    Normal,
    /// Above the first threshold: [`Priority::Sheddable`] requests are shed.
    Elevated,
    /// Above the second threshold: everything but [`Priority::Critical`]
    /// is shed.
    Severe,
}

impl PressureLevel {
    /// A stable snake_case name, used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            PressureLevel::Normal => "normal",
            PressureLevel::Elevated => "elevated",
            PressureLevel::Severe => "severe",
        }
    }

    /// Whether a request of `priority` is shed at this level.
    #[inline]
    pub fn sheds(self, priority: Priority) -> bool {
        match self {
            PressureLevel::Normal => false,
            PressureLevel::Elevated => priority == Priority::Sheddable,
            PressureLevel::Severe => priority != Priority::Critical,
        }
    }

    #[inline]
    fn from_u8(v: u8) -> Self {
        match v {
            0 => PressureLevel::Normal,
            1 => PressureLevel::Elevated,
            _ => PressureLevel::Severe,
        }
    }
}

impl From<PressureLevel> for seawall_core::event::PressureLevel {
    fn from(level: PressureLevel) -> Self {
        use seawall_core::event::PressureLevel as L;
        match level {
            PressureLevel::Normal => L::Normal,
            PressureLevel::Elevated => L::Elevated,
            PressureLevel::Severe => L::Severe,
        }
    }
}

impl fmt::Display for PressureLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cheap, cached measure of pressure that a shedder consults on every
/// request.
///
/// `level` is on the per-call path: an implementation must return a value
/// cached elsewhere (one atomic load), never measure anything. Measure in a
/// background task, as [`MemoryPressure`] does, or on the events that change
/// the pressure, and store the result.
pub trait PressureSignal: Send + Sync + fmt::Debug + 'static {
    /// The level now.
    fn level(&self) -> PressureLevel;
}

impl<S: PressureSignal + ?Sized> PressureSignal for Arc<S> {
    #[inline]
    fn level(&self) -> PressureLevel {
        (**self).level()
    }
}

/// A [`PressureSignal`] set by hand: for tests, and for pressure measured
/// by the application itself. Clones share one level.
///
/// ```
/// use seawall_shed::{ManualPressure, PressureLevel, PressureSignal};
///
/// let signal = ManualPressure::new();
/// signal.set(PressureLevel::Severe);
/// assert_eq!(signal.clone().level(), PressureLevel::Severe);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualPressure {
    level: Arc<AtomicU8>,
}

impl ManualPressure {
    /// A signal at [`PressureLevel::Normal`].
    pub fn new() -> Self {
        ManualPressure::default()
    }

    /// Sets the level every clone reports.
    pub fn set(&self, level: PressureLevel) {
        self.level.store(level as u8, Ordering::Relaxed);
    }
}

impl PressureSignal for ManualPressure {
    #[inline]
    fn level(&self) -> PressureLevel {
        PressureLevel::from_u8(self.level.load(Ordering::Relaxed))
    }
}

/// How a [`MemoryPressure`] samples and where its thresholds lie. Field
/// names equal the TOML keys (the `memory_pressure` table of a shed config);
/// defaults are written on each field.
///
/// ```toml
/// [memory_pressure]
/// interval = "1s"
/// shed_sheddable_at = 0.7
/// shed_normal_at = 0.9
/// hysteresis = 0.05
/// rss_budget = 536870912   # bytes; used only outside a limited cgroup
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct MemoryPressureConfig {
    /// How often memory is sampled, in `10ms..=1h`
    /// ([`MIN_INTERVAL`](Self::MIN_INTERVAL),
    /// [`MAX_INTERVAL`](Self::MAX_INTERVAL)). Default 1s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub interval: Duration,
    /// Used / limit at or above which [`Priority::Sheddable`] requests are
    /// shed ([`PressureLevel::Elevated`]). Default 0.7.
    pub shed_sheddable_at: f64,
    /// Used / limit at or above which everything but [`Priority::Critical`]
    /// is shed ([`PressureLevel::Severe`]). At least `shed_sheddable_at`.
    /// Default 0.9.
    pub shed_normal_at: f64,
    /// A level is left only when the ratio falls this far below the
    /// threshold that raised it. In `0..shed_sheddable_at`. Default 0.05.
    pub hysteresis: f64,
    /// Outside a memory-limited cgroup, the process's RSS is compared with
    /// this many bytes. Default `None`: the machine's total memory
    /// (`MemTotal` of `/proc/meminfo`).
    pub rss_budget: Option<u64>,
}

seawall_core::config_setters!(MemoryPressureConfig {
    interval: Duration,
    shed_sheddable_at: f64,
    shed_normal_at: f64,
    hysteresis: f64,
    rss_budget: u64,
});

impl Default for MemoryPressureConfig {
    fn default() -> Self {
        MemoryPressureConfig {
            interval: Duration::from_secs(1),
            shed_sheddable_at: 0.7,
            shed_normal_at: 0.9,
            hysteresis: 0.05,
            rss_budget: None,
        }
    }
}

impl MemoryPressureConfig {
    /// The shortest sampling `interval`: 10ms. A sample is one or two reads
    /// of small kernel files (tens of microseconds), so at 10ms the sampler
    /// uses well under 1% of a core; any shorter and it turns into a busy
    /// loop on `/proc` competing with the service it protects, for no gain:
    /// the kernel batches its memory counters per CPU, so they do not move
    /// meaningfully faster.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

    /// The longest sampling `interval`: 1 hour. Memory can fill in seconds;
    /// a level sampled less often than hourly protects nothing, and a longer
    /// value is far likelier a unit typo (`"1000h"` for `"1000ms"`).
    pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

    /// Checks every field; the error names each bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut c = Check::new();
        c.duration_in(
            "interval",
            self.interval,
            Self::MIN_INTERVAL,
            Self::MAX_INTERVAL,
        );
        if !(self.shed_sheddable_at > 0.0 && self.shed_sheddable_at <= 1.0) {
            c.fail(
                "shed_sheddable_at",
                self.shed_sheddable_at,
                "is not in (0, 1]",
            );
        }
        if !(self.shed_normal_at > 0.0 && self.shed_normal_at <= 1.0) {
            c.fail("shed_normal_at", self.shed_normal_at, "is not in (0, 1]");
        }
        c.at_most(
            "shed_sheddable_at",
            self.shed_sheddable_at,
            "shed_normal_at",
            self.shed_normal_at,
        );
        if !(self.hysteresis >= 0.0 && self.hysteresis < self.shed_sheddable_at) {
            c.fail(
                "hysteresis",
                self.hysteresis,
                format!(
                    "is not in 0..shed_sheddable_at ({})",
                    self.shed_sheddable_at
                ),
            );
        }
        if let Some(budget) = self.rss_budget {
            c.nonzero("rss_budget", budget);
        }
        c.finish()
    }

    /// The level after a sample of `ratio` when the level was `current`:
    /// rises at once, falls only `hysteresis` below a threshold.
    pub(crate) fn next_level(&self, current: PressureLevel, ratio: f64) -> PressureLevel {
        let raw = |r: f64| {
            if r >= self.shed_normal_at {
                PressureLevel::Severe
            } else if r >= self.shed_sheddable_at {
                PressureLevel::Elevated
            } else {
                PressureLevel::Normal
            }
        };
        // Hold the current level while the ratio is within `hysteresis` of
        // the threshold that raised it; never hold above it.
        raw(ratio).max(current.min(raw(ratio + self.hysteresis)))
    }
}

/// One reading of memory: bytes used and the bytes that may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySample {
    /// Bytes in use.
    pub used: u64,
    /// Bytes that may be used (a cgroup's limit, or a budget). Never 0.
    pub limit: u64,
}

impl MemorySample {
    /// `used / limit`, clamped to `0..=1`.
    pub fn ratio(&self) -> f64 {
        if self.limit == 0 {
            return 1.0;
        }
        (self.used as f64 / self.limit as f64).clamp(0.0, 1.0)
    }
}

/// Where a [`MemoryPressure`] reads memory from: [`SystemMemory`] (cgroup v2
/// or RSS), or anything that can say how much is used of how much (an
/// allocator's statistics, a test's fake).
///
/// `sample` runs in the sampler task once per interval, never on the call
/// path. It should return quickly (the task runs on the runtime's threads).
pub trait MemorySource: Send + 'static {
    /// Reads memory now.
    fn sample(&mut self) -> std::io::Result<MemorySample>;

    /// What this source reads, for events and stats (`"cgroup"`, `"rss"`).
    fn kind(&self) -> &'static str {
        "custom"
    }
}

/// A snapshot of a [`MemoryPressure`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MemoryPressureStats {
    /// The level now.
    pub level: PressureLevel,
    /// The last sample's used / limit, in `0..=1`.
    pub ratio: f64,
    /// The last sample's bytes in use.
    pub used: u64,
    /// The last sample's limit in bytes.
    pub limit: u64,
    /// Samples taken (successful ones).
    pub samples: u64,
    /// Samples that failed (the level stayed where it was).
    pub errors: u64,
    /// Times the level changed.
    pub changes: u64,
    /// What the source reads (`"cgroup"`, `"rss"`, `"custom"`).
    pub source: &'static str,
    /// `true` while the sampler task runs. `false` once it stopped while
    /// the signal was still in use (its runtime shut down): the level is
    /// then `Normal` and no longer updated.
    pub sampling: bool,
}

/// Parts per million of the ratio, so stats read it without a lock.
const PPM: f64 = 1_000_000.0;

#[derive(Debug)]
struct Inner {
    name: Arc<str>,
    // Its thresholds may change while it runs (a shedder's reload); read
    // by the sampler once per sample, never by a call.
    config: std::sync::Mutex<MemoryPressureConfig>,
    source: &'static str,
    level: AtomicU8,
    ratio_ppm: AtomicU32,
    used: AtomicU64,
    limit: AtomicU64,
    samples: AtomicU64,
    errors: AtomicU64,
    changes: AtomicU64,
    sampling: AtomicBool,
}

impl Inner {
    fn config(&self) -> MemoryPressureConfig {
        // Poisoned only by a panic while held; the fields are plain values
        // replaced one by one.
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes one sample from `source` and applies it. A panic in the source
    /// (user code) is caught and counted as a failed sample: left to unwind,
    /// it would end the sampler and freeze the level where it was.
    fn sample(&self, source: &mut impl MemorySource) {
        // AssertUnwindSafe: after a panic the source is only asked again at
        // the next tick; whatever it then returns is checked like any sample.
        match panic::catch_unwind(AssertUnwindSafe(|| source.sample())) {
            Ok(sample) => self.update(sample),
            Err(payload) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(not a string)");
                tracing::error!(
                    target: TARGET_SHED,
                    name = %self.name,
                    source = self.source,
                    panic = message,
                    "memory source panicked; counted as a failed sample, the level is unchanged"
                );
            }
        }
    }

    /// Applies one sample. Only the sampler (and the constructor, before
    /// the sampler exists) calls this, so the level has one writer.
    fn update(&self, sample: std::io::Result<MemorySample>) {
        let sample = match sample {
            Ok(s) if s.limit > 0 => s,
            Ok(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: TARGET_SHED, name = %self.name, "memory sample with a zero limit ignored");
                return;
            }
            Err(error) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: TARGET_SHED, name = %self.name, %error, "memory sample failed");
                return;
            }
        };
        let ratio = sample.ratio();
        self.ratio_ppm
            .store((ratio * PPM).round() as u32, Ordering::Relaxed);
        self.used.store(sample.used, Ordering::Relaxed);
        self.limit.store(sample.limit, Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Relaxed);
        let current = PressureLevel::from_u8(self.level.load(Ordering::Relaxed));
        let next = self.config().next_level(current, ratio);
        if next == current {
            return;
        }
        self.level.store(next as u8, Ordering::Relaxed);
        self.changes.fetch_add(1, Ordering::Relaxed);
        seawall_core::event::emit(|| {
            let kind =
                seawall_core::event::EventKind::pressure_changed(current.into(), next.into());
            seawall_core::event::Event::new(Arc::clone(&self.name), kind)
        });
        if next > current {
            tracing::warn!(
                target: TARGET_SHED,
                name = %self.name,
                level = next.as_str(),
                previous = current.as_str(),
                ratio,
                used = sample.used,
                limit = sample.limit,
                source = self.source,
                "memory pressure rose"
            );
        } else {
            tracing::info!(
                target: TARGET_SHED,
                name = %self.name,
                level = next.as_str(),
                previous = current.as_str(),
                ratio,
                used = sample.used,
                limit = sample.limit,
                source = self.source,
                "memory pressure fell"
            );
        }
    }
}

/// The ready memory [`PressureSignal`]: sampled by a background task every
/// `interval`, read by shedders with one atomic load. Clones share one
/// sampler; it ends when the last clone is dropped.
///
/// [`start`](MemoryPressure::start) reads [`SystemMemory`] (cgroup v2, else
/// RSS); [`with_source`](MemoryPressure::with_source) reads any
/// [`MemorySource`]. Both take one sample at once, so the level is right
/// from the first request, and need a tokio runtime (with the `time`
/// driver) for the sampler.
///
/// ```
/// use std::time::Duration;
/// use seawall_shed::{MemoryPressure, MemoryPressureConfig, PressureSignal, ShedLayer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), seawall_core::ConfigError> {
/// let memory = MemoryPressure::start(&MemoryPressureConfig::new().interval(Duration::from_millis(500)))?;
/// let ratio = memory.stats().ratio;
/// assert!((0.0..=1.0).contains(&ratio));
/// // One signal can serve many layers.
/// let layer = ShedLayer::builder().pressure_signal(memory.clone()).build()?;
/// assert_eq!(layer.stats().pressure, memory.level());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryPressure {
    inner: Arc<Inner>,
}

impl MemoryPressure {
    /// Samples [`SystemMemory::detect`] (a limited cgroup v2, else RSS
    /// against `config.rss_budget`). Fails with a [`ConfigError`] on a bad
    /// config, when memory cannot be read here, or outside a tokio runtime.
    pub fn start(config: &MemoryPressureConfig) -> Result<Self, ConfigError> {
        MemoryPressure::start_named(seawall_core::names::DEFAULT_NAME, config)
    }

    pub(crate) fn start_named(
        name: &str,
        config: &MemoryPressureConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let source = SystemMemory::detect(config.rss_budget).map_err(|e| {
            ConfigError::new(
                "memory_pressure",
                e,
                "memory usage cannot be read on this system",
            )
        })?;
        MemoryPressure::spawn(name, config, source)
    }

    /// Samples `source` (for example an allocator's statistics, or a fake in
    /// tests). Fails with a [`ConfigError`] on a bad config or outside a
    /// tokio runtime.
    pub fn with_source(
        config: &MemoryPressureConfig,
        source: impl MemorySource,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        MemoryPressure::spawn(seawall_core::names::DEFAULT_NAME, config, source)
    }

    fn spawn(
        name: &str,
        config: &MemoryPressureConfig,
        mut source: impl MemorySource,
    ) -> Result<Self, ConfigError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(ConfigError::new(
                "memory_pressure",
                "no runtime",
                "needs a tokio runtime for its sampler: build it inside one",
            ));
        };
        let inner = Arc::new(Inner {
            name: Arc::from(name),
            config: std::sync::Mutex::new(config.clone()),
            source: source.kind(),
            level: AtomicU8::new(PressureLevel::Normal as u8),
            ratio_ppm: AtomicU32::new(0),
            used: AtomicU64::new(0),
            limit: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            sampling: AtomicBool::new(true),
        });
        inner.sample(&mut source);
        let weak = Arc::downgrade(&inner);
        let interval = config.interval;
        runtime.spawn(sample_loop(weak, source, interval));
        Ok(MemoryPressure { inner })
    }

    /// A snapshot: level, last sample, counts.
    pub fn stats(&self) -> MemoryPressureStats {
        let i = &*self.inner;
        MemoryPressureStats {
            level: self.level(),
            ratio: f64::from(i.ratio_ppm.load(Ordering::Relaxed)) / PPM,
            used: i.used.load(Ordering::Relaxed),
            limit: i.limit.load(Ordering::Relaxed),
            samples: i.samples.load(Ordering::Relaxed),
            errors: i.errors.load(Ordering::Relaxed),
            changes: i.changes.load(Ordering::Relaxed),
            source: i.source,
            sampling: i.sampling.load(Ordering::Relaxed),
        }
    }

    /// The configuration it samples with: the one it started with, with
    /// the thresholds of the last reload of the shedder that started it.
    pub fn config(&self) -> MemoryPressureConfig {
        self.inner.config()
    }

    /// Takes `config`'s thresholds (`shed_sheddable_at`, `shed_normal_at`,
    /// `hysteresis`) from the next sample on; the level is kept until then.
    /// The caller has validated `config` and checked that its `interval`
    /// and `rss_budget` are this signal's (they cannot change in place).
    pub(crate) fn set_thresholds(&self, config: &MemoryPressureConfig) {
        let mut c = self.inner.config.lock().unwrap_or_else(|p| p.into_inner());
        c.shed_sheddable_at = config.shed_sheddable_at;
        c.shed_normal_at = config.shed_normal_at;
        c.hysteresis = config.hysteresis;
    }
}

impl PressureSignal for MemoryPressure {
    #[inline]
    fn level(&self) -> PressureLevel {
        PressureLevel::from_u8(self.inner.level.load(Ordering::Relaxed))
    }
}

/// Samples every `period` while the signal lives. It holds only a `Weak`
/// between ticks, so dropping the last [`MemoryPressure`] ends it at the
/// next tick (and drops the source).
///
/// The next sample is due `period` after the last one ended (a slow or late
/// sample delays the following ones instead of bunching them up).
async fn sample_loop(weak: Weak<Inner>, mut source: impl MemorySource, period: Duration) {
    // Validated to MIN_INTERVAL..=MAX_INTERVAL; clamped again so that no
    // period can make this loop spin (zero) or its deadline overflow.
    let period = period.clamp(
        MemoryPressureConfig::MIN_INTERVAL,
        MemoryPressureConfig::MAX_INTERVAL,
    );
    let _watch = Watch(weak.clone());
    let sleep = tokio::time::sleep_until(deadline(Instant::now(), period));
    tokio::pin!(sleep);
    loop {
        sleep.as_mut().await;
        let Some(inner) = weak.upgrade() else {
            return;
        };
        inner.sample(&mut source);
        drop(inner);
        sleep.as_mut().reset(deadline(Instant::now(), period));
    }
}

/// Dropped with the sampler task. If the signal is still in use then, the
/// task was cancelled (its runtime shut down) or unwound: the level can no
/// longer be measured, so it returns to `Normal` rather than stay frozen
/// (a stale `Severe` would shed all but `Critical` forever), and an event
/// and [`MemoryPressureStats::sampling`] say so.
struct Watch(Weak<Inner>);

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(inner) = self.0.upgrade() else {
            return; // the signal is gone: the normal end
        };
        inner.sampling.store(false, Ordering::Relaxed);
        let previous = PressureLevel::from_u8(
            inner
                .level
                .swap(PressureLevel::Normal as u8, Ordering::Relaxed),
        );
        if previous != PressureLevel::Normal {
            inner.changes.fetch_add(1, Ordering::Relaxed);
        }
        if std::thread::panicking() {
            tracing::error!(
                target: TARGET_SHED,
                name = %inner.name,
                previous = previous.as_str(),
                "memory pressure sampler panicked; the level is Normal from now on"
            );
        } else {
            tracing::warn!(
                target: TARGET_SHED,
                name = %inner.name,
                previous = previous.as_str(),
                "memory pressure sampler stopped (its runtime shut down); the level is Normal from now on"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_rise_at_once_and_fall_with_hysteresis() {
        let c = MemoryPressureConfig::default();
        use PressureLevel::*;
        let mut level = Normal;
        let mut trace = Vec::new();
        for r in [
            0.5, 0.69, 0.7, 0.66, 0.651, 0.649, 0.95, 0.86, 0.851, 0.849, 0.7, 0.64, 0.92, 0.1,
        ] {
            level = c.next_level(level, r);
            trace.push(level);
        }
        assert_eq!(
            trace,
            [
                Normal, Normal, Elevated, Elevated, Elevated, Normal, Severe, Severe, Severe,
                Elevated, Elevated, Normal, Severe, Normal
            ]
        );
    }

    #[test]
    fn equal_thresholds_and_zero_hysteresis() {
        let c = MemoryPressureConfig {
            shed_sheddable_at: 0.8,
            shed_normal_at: 0.8,
            hysteresis: 0.0,
            ..MemoryPressureConfig::default()
        };
        assert_eq!(
            c.next_level(PressureLevel::Normal, 0.8),
            PressureLevel::Severe
        );
        assert_eq!(
            c.next_level(PressureLevel::Severe, 0.79),
            PressureLevel::Normal
        );
    }

    #[test]
    fn what_each_level_sheds() {
        use Priority::*;
        let shed = |l: PressureLevel| [Sheddable, Normal, Critical].map(|p| l.sheds(p));
        assert_eq!(shed(PressureLevel::Normal), [false, false, false]);
        assert_eq!(shed(PressureLevel::Elevated), [true, false, false]);
        assert_eq!(shed(PressureLevel::Severe), [true, true, false]);
    }

    #[test]
    fn every_bad_field_is_named() {
        assert!(MemoryPressureConfig::default().validate().is_ok());
        let e = MemoryPressureConfig {
            interval: Duration::ZERO,
            shed_sheddable_at: 0.95,
            shed_normal_at: 1.5,
            hysteresis: -0.1,
            rss_budget: Some(0),
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "interval: 0ns is not in 10ms..=3600s; \
             shed_normal_at: 1.5 is not in (0, 1]; \
             hysteresis: -0.1 is not in 0..shed_sheddable_at (0.95); \
             rss_budget: 0 must be greater than zero"
        );
        let e = MemoryPressureConfig {
            shed_sheddable_at: 0.0,
            shed_normal_at: f64::NAN,
            hysteresis: 0.0,
            ..MemoryPressureConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.errors().len(), 3, "{e}");
        let e = MemoryPressureConfig {
            shed_sheddable_at: 0.9,
            shed_normal_at: 0.8,
            ..MemoryPressureConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "shed_sheddable_at: 0.9 must be at most shed_normal_at (0.8)"
        );
    }

    /// Counts `seawall_shed` events at each level.
    #[derive(Default)]
    struct Events(std::sync::Mutex<Vec<tracing::Level>>);

    impl tracing::Subscriber for Events {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if event.metadata().target() == TARGET_SHED {
                self.0.lock().unwrap().push(*event.metadata().level());
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn an_event_on_each_level_change_and_none_otherwise() {
        let inner = Inner {
            name: Arc::from("t"),
            config: std::sync::Mutex::new(MemoryPressureConfig::default()),
            source: "custom",
            level: AtomicU8::new(0),
            ratio_ppm: AtomicU32::new(0),
            used: AtomicU64::new(0),
            limit: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            sampling: AtomicBool::new(true),
        };
        let events = Arc::new(Events::default());
        let sample = |used| Ok(MemorySample { used, limit: 100 });
        tracing::subscriber::with_default(events.clone(), || {
            for used in [10, 20, 75, 80, 95, 96, 60, 50] {
                inner.update(sample(used));
            }
        });
        use tracing::Level;
        assert_eq!(
            *events.0.lock().unwrap(),
            [Level::WARN, Level::WARN, Level::INFO]
        );
        assert_eq!(inner.changes.load(Ordering::Relaxed), 3);
        assert_eq!(inner.samples.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn a_zero_limit_sample_is_clamped() {
        assert_eq!(MemorySample { used: 5, limit: 0 }.ratio(), 1.0);
        assert_eq!(MemorySample { used: 5, limit: 4 }.ratio(), 1.0);
        assert_eq!(MemorySample { used: 1, limit: 4 }.ratio(), 0.25);
    }
}

//! The tower-free breaker: [`CircuitBreaker`], its [`Permit`]s and [`State`]s.
//!
//! What it guarantees:
//!
//! - **One atomic word holds the state** (and a generation that changes on
//!   every transition). A closed breaker with the consecutive-failures policy
//!   admits a call with one atomic load and records a success with one more
//!   load: no clock read, no write to shared memory unless a failure count
//!   has to be reset.
//! - **Transitions are rare and take a short mutex**, never held across an
//!   `.await`. Half-open probes are admitted under that mutex, so at most
//!   `half_open_max_calls` are ever in flight.
//! - **Outcomes count only for the state they were admitted in**: a call
//!   admitted while closed that finishes after the breaker opened does not
//!   re-trip it or steal a probe's slot.
//! - **Cancellation is safe**: a [`Permit`] dropped without an outcome counts
//!   as neither (or as a failure with `cancelled_is_failure`) and gives back
//!   its half-open probe slot.
//! - **Time is the breaker's [`Clock`]** (tokio's by default), read only
//!   where a policy needs it: when the breaker is open (to see whether
//!   `open_duration` has passed), once per call for the time-window policy,
//!   twice per call (start, end) for the slow-call policy, and on
//!   transitions. Stored times are readings of that clock in nanoseconds.
//!   No timer is set: an open breaker turns half-open when it is next read
//!   (a call, [`CircuitBreaker::state`], [`CircuitBreaker::stats`]).

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use seawall_core::event::{Defer, Deferred, Event, EventKind};
use seawall_core::rand::{SplitMix64, derive, random_seed};
use seawall_core::rejection::OpenState;
use seawall_core::time::nanos;
use seawall_core::{
    CircuitOpen, Classify, Clock, ConfigError, ErrorsAsFailures, Outcome, ReloadError,
};

use crate::backoff::open_duration;
use crate::config::{BreakerBuilder, BreakerConfig, TripPolicy};
use crate::error::CallError;
use crate::lane::{Lane, Lanes};
// loom's under `--cfg seawall_loom`, so the models below switch threads at
// every access to the state word, the counters and the transition lock.
use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard};
use crate::window::{CountWindow, Counts, Mark, TimeWindow};

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; outcomes are counted by the trip policy.
    Closed,
    /// Calls are rejected until `open_duration` has passed.
    Open,
    /// Up to `half_open_max_calls` probes pass; the rest are rejected.
    HalfOpen,
    /// Forced open by an operator: every call is rejected until
    /// [`CircuitBreaker::reset`] or [`CircuitBreaker::force_closed`].
    ForcedOpen,
    /// Forced closed (disabled) by an operator: every call passes and is
    /// counted, the breaker never trips.
    ForcedClosed,
}

impl State {
    /// A stable snake_case name, used as the `state` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::ForcedClosed => "forced_closed",
        }
    }

    /// The value of the `seawall_breaker_state` gauge.
    pub fn gauge_value(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::Open => 1.0,
            State::HalfOpen => 2.0,
            State::ForcedOpen => 3.0,
            State::ForcedClosed => 4.0,
        }
    }

    /// `true` for the states that may reject calls (open, half-open, forced open).
    pub fn is_rejecting(self) -> bool {
        matches!(self, State::Open | State::HalfOpen | State::ForcedOpen)
    }
}

impl From<State> for seawall_core::event::BreakerState {
    fn from(state: State) -> Self {
        use seawall_core::event::BreakerState as S;
        match state {
            State::Closed => S::Closed,
            State::Open => S::Open,
            State::HalfOpen => S::HalfOpen,
            State::ForcedOpen => S::ForcedOpen,
            State::ForcedClosed => S::ForcedClosed,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const FORCED_OPEN: u64 = 3;
const FORCED_CLOSED: u64 = 4;
const TAG_BITS: u32 = 3;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

fn tag(word: u64) -> u64 {
    word & TAG_MASK
}

fn state_of(word: u64) -> State {
    match tag(word) {
        CLOSED => State::Closed,
        OPEN => State::Open,
        HALF_OPEN => State::HalfOpen,
        FORCED_OPEN => State::ForcedOpen,
        _ => State::ForcedClosed,
    }
}

/// A snapshot of a breaker, from [`CircuitBreaker::stats`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerStats {
    /// The state now. An open breaker whose `open_duration` has passed is
    /// moved to `HalfOpen` by this read (as by a call), so it reads
    /// `HalfOpen`.
    pub state: State,
    /// How long the breaker has been in `state`.
    pub time_in_state: Duration,
    /// While `Open`: how long until it admits a probe.
    pub retry_after: Option<Duration>,
    /// The open duration of the last trip (grows with `open_backoff`).
    pub open_duration: Duration,
    /// Failures in a row (consecutive-failures policy).
    pub consecutive_failures: u32,
    /// Calls in the window (rate policies; 0 otherwise).
    pub window_calls: u32,
    /// Failures in the window (rate policies; 0 otherwise).
    pub window_failures: u32,
    /// Successes in the window (rate policies; 0 otherwise).
    pub window_successes: u32,
    /// Slow calls in the window (slow-call policy; 0 otherwise).
    pub window_slow_calls: u32,
    /// Probes in flight while half-open.
    pub half_open_in_flight: u32,
    /// Probe successes so far while half-open.
    pub half_open_successes: u32,
    /// Successes since creation. `None` with the consecutive-failures policy,
    /// whose success path writes no shared memory (and so counts nothing).
    pub successes: Option<u64>,
    /// Failures since creation.
    pub failures: u64,
    /// Times the breaker tripped open (forcing open is not a trip).
    pub trips: u64,
    /// Calls rejected since creation.
    pub rejected: u64,
}

/// What every breaker of one layer shares: the config (the one last applied,
/// by the build or a reload), its tunable parameters as atomics, and the
/// clock. Per-key breakers point to one `Settings`, so a reload of it
/// reaches every key at once, and keys made later.
pub(crate) struct Settings {
    // The config last applied: what `config()` returns and what transitions
    // (open duration, its backoff) and eviction read, under this short
    // read lock (a leaf: nothing else is locked while it is held). The
    // per-call paths never take it: they read `params`.
    current: std::sync::RwLock<Arc<BreakerConfig>>,
    // What the per-call and outcome paths read, one relaxed load each (the
    // same instruction as a plain load): stored by `reload`.
    params: Params,
    pub(crate) name: Arc<str>,
    pub(crate) clock: Clock,
    // The slow-call policy reads the clock at a call's start; the
    // time-window policies read it at each outcome. The policy's kind never
    // changes in place.
    needs_start: bool,
    timed: bool,
    // The policy is consecutive failures.
    streak: bool,
    // The jitter streams: breaker `n` of this layer draws from
    // `derive(seed, n)`.
    seed: u64,
    seeds: AtomicU64,
    // Keyed layers: whether each key reports a `key`-labelled state gauge.
    pub(crate) key_metrics: bool,
    // These settings are a keyed layer's (its keys, its overflow breaker,
    // the breakers peer selection makes beside its map): only the layer
    // reloads them.
    keyed: bool,
    #[cfg(feature = "metrics")]
    rejected_counter: metrics::Counter,
}

/// The parameters a reload may change that are read outside a transition.
/// Each is valid alone (validation checks no two of them against each
/// other), so an outcome racing a reload that reads some old and some new
/// values still judges by a valid config.
struct Params {
    // Consecutive-failures threshold (0 for the other policies).
    threshold: std::sync::atomic::AtomicU32,
    // Rate policies: the failure (or slow-call) rate as `f64` bits, and
    // the minimum number of calls.
    rate: std::sync::atomic::AtomicU64,
    min_calls: std::sync::atomic::AtomicU32,
    // Slow-call policy: slower than this many nanoseconds is slow.
    slow_ns: std::sync::atomic::AtomicU64,
    half_open_max_calls: std::sync::atomic::AtomicU32,
    success_threshold: std::sync::atomic::AtomicU32,
    cancelled_is_failure: std::sync::atomic::AtomicBool,
}

impl Params {
    fn new(config: &BreakerConfig) -> Params {
        use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
        let p = Params {
            threshold: AtomicU32::new(0),
            rate: AtomicU64::new(0),
            min_calls: AtomicU32::new(0),
            slow_ns: AtomicU64::new(0),
            half_open_max_calls: AtomicU32::new(0),
            success_threshold: AtomicU32::new(0),
            cancelled_is_failure: AtomicBool::new(false),
        };
        p.store(config);
        p
    }

    fn store(&self, config: &BreakerConfig) {
        let (threshold, rate, min_calls, slow) = match config.policy {
            TripPolicy::ConsecutiveFailures { threshold } => (threshold, 0.0, 0, Duration::ZERO),
            TripPolicy::FailureRateCount {
                rate, min_calls, ..
            }
            | TripPolicy::FailureRateTime {
                rate, min_calls, ..
            } => (0, rate, min_calls, Duration::ZERO),
            TripPolicy::SlowCallRate {
                threshold,
                rate,
                min_calls,
                ..
            } => (0, rate, min_calls, threshold),
        };
        let r = Ordering::Relaxed;
        self.threshold.store(threshold, r);
        self.rate.store(rate.to_bits(), r);
        self.min_calls.store(min_calls, r);
        self.slow_ns.store(nanos(slow), r);
        self.half_open_max_calls
            .store(config.half_open_max_calls, r);
        self.success_threshold.store(config.success_threshold, r);
        self.cancelled_is_failure
            .store(config.cancelled_is_failure, r);
    }

    #[inline]
    fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }
}

impl Settings {
    pub(crate) fn new(config: &BreakerConfig, clock: Clock) -> Result<Arc<Settings>, ConfigError> {
        config.validate()?;
        let seed = config
            .open_backoff
            .as_ref()
            .and_then(|b| b.seed)
            .unwrap_or_else(random_seed);
        Ok(Arc::new(Settings {
            #[cfg(feature = "metrics")]
            rejected_counter: metrics::counter!(
                seawall_core::names::BREAKER_REJECTED_TOTAL,
                seawall_core::names::LABEL_NAME => config.name.clone()
            ),
            name: Arc::from(config.name.as_str()),
            params: Params::new(config),
            needs_start: config.policy.needs_start_time(),
            timed: matches!(
                config.policy,
                TripPolicy::FailureRateTime { .. } | TripPolicy::SlowCallRate { .. }
            ),
            streak: matches!(config.policy, TripPolicy::ConsecutiveFailures { .. }),
            current: std::sync::RwLock::new(Arc::new(config.clone())),
            clock,
            seed,
            seeds: AtomicU64::new(0),
            key_metrics: true,
            keyed: false,
        }))
    }

    /// Settings for the breakers of a keyed layer; `key_metrics`: whether
    /// each key reports a `key`-labelled state gauge.
    pub(crate) fn keyed(
        config: &BreakerConfig,
        key_metrics: bool,
        clock: Clock,
    ) -> Result<Arc<Settings>, ConfigError> {
        let mut settings = Settings::new(config, clock)?;
        if let Some(s) = Arc::get_mut(&mut settings) {
            s.key_metrics = key_metrics;
            s.keyed = true;
        }
        Ok(settings)
    }

    /// A reading of the layer's clock (u64 nanoseconds last 584 years).
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.nanos()
    }

    /// The config last applied.
    pub(crate) fn current(&self) -> Arc<BreakerConfig> {
        // Poisoned only by a panic while the lock was held; `reload` does
        // not panic there, and the value is replaced whole.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `true` for the settings of a keyed layer (only the layer reloads them).
    pub(crate) fn is_keyed(&self) -> bool {
        self.keyed
    }

    /// Applies `new` to every breaker of these settings, all or nothing;
    /// returns the fields that changed. `prefix` names the config's place
    /// (`"per_key."` for a keyed layer) in errors and the event. See
    /// [`CircuitBreaker::reload`] for what changes and what cannot.
    pub(crate) fn reload(
        &self,
        new: &BreakerConfig,
        prefix: &'static str,
    ) -> Result<Vec<String>, seawall_core::ReloadError> {
        use seawall_core::ReloadError;
        let field = |f: &str| format!("{prefix}{f}");
        // A keyed layer validates its whole config (naming `per_key.*`)
        // before it gets here.
        new.validate()?;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let old: &BreakerConfig = &current;
        if new.name != old.name {
            return Err(ReloadError::not_in_place(
                field("name"),
                "events, metrics and rejections are labelled with the name the layer was built with",
            ));
        }
        check_policy_in_place(&old.policy, &new.policy)
            .map_err(|(f, why)| ReloadError::not_in_place(field(f), why))?;
        let new_seed = new.open_backoff.as_ref().and_then(|b| b.seed);
        let old_seed = old.open_backoff.as_ref().and_then(|b| b.seed);
        if new_seed.is_some() && new_seed != old_seed && new_seed != Some(self.seed) {
            return Err(ReloadError::not_in_place(
                field("open_backoff.seed"),
                "the breakers' jitter streams were seeded when they were made",
            ));
        }
        let mut changed = Vec::new();
        let mut note = |differs: bool, f: &str| {
            if differs {
                changed.push(field(f));
            }
        };
        note(new.policy != old.policy, "policy");
        note(new.open_duration != old.open_duration, "open_duration");
        note(
            new.half_open_max_calls != old.half_open_max_calls,
            "half_open_max_calls",
        );
        note(
            new.success_threshold != old.success_threshold,
            "success_threshold",
        );
        note(new.open_backoff != old.open_backoff, "open_backoff");
        note(
            new.cancelled_is_failure != old.cancelled_is_failure,
            "cancelled_is_failure",
        );
        self.params.store(new);
        *current = Arc::new(new.clone());
        drop(current);
        tracing::info!(
            target: seawall_core::names::TARGET_BREAKER,
            name = &*self.name,
            changed = %if changed.is_empty() { "(nothing)".to_owned() } else { changed.join(", ") },
            "breaker config reloaded"
        );
        Ok(changed)
    }
}

/// Whether a trip policy may change from `old` to `new` in place: only its
/// thresholds and rates, not its kind nor the shape of its window (every
/// live breaker holds a window of that shape, with the calls it counted).
fn check_policy_in_place(
    old: &TripPolicy,
    new: &TripPolicy,
) -> Result<(), (&'static str, &'static str)> {
    const KIND: &str =
        "the trip policy's kind decides what every breaker counts; build a new layer";
    const WINDOW: &str =
        "every breaker's window holds the calls it counted in this shape; build a new layer";
    match (old, new) {
        (TripPolicy::ConsecutiveFailures { .. }, TripPolicy::ConsecutiveFailures { .. }) => Ok(()),
        (
            TripPolicy::FailureRateCount { window: a, .. },
            TripPolicy::FailureRateCount { window: b, .. },
        ) => {
            if a == b {
                Ok(())
            } else {
                Err(("policy.window", WINDOW))
            }
        }
        (
            TripPolicy::FailureRateTime {
                window: a,
                buckets: ab,
                ..
            },
            TripPolicy::FailureRateTime {
                window: b,
                buckets: bb,
                ..
            },
        )
        | (
            TripPolicy::SlowCallRate {
                window: a,
                buckets: ab,
                ..
            },
            TripPolicy::SlowCallRate {
                window: b,
                buckets: bb,
                ..
            },
        ) => {
            if a != b {
                Err(("policy.window", WINDOW))
            } else if ab != bb {
                Err(("policy.buckets", WINDOW))
            } else {
                Ok(())
            }
        }
        _ => Err(("policy", KIND)),
    }
}

enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

// The part of a breaker that only transitions, probes and windowed policies
// touch.
struct Slow {
    since: u64,
    open_for: u64,
    in_flight: u32,
    probe_successes: u32,
    level: u32,
    episode: bool,
    trips: u64,
    successes: u64,
    rng: SplitMix64,
    window: Option<Window>,
}

/// What a breaker holds once it has left the fresh state: everything but
/// the state word and the failure streak. A keyed layer's breaker allocates
/// it at its first failure (its first outcome with a rate policy), or when
/// it is handed out or forced, so a key that has only ever succeeded costs
/// the map entry and a 40-byte [`Inner`].
struct Cold {
    label: Option<Arc<str>>,
    // Report a `key`-labelled state gauge: for a breaker made whole (one per
    // layer or per peer of a set), and for a keyed layer's keys only with
    // `key_metrics` (a key's series is then set only while the key is in
    // the map; see `KeyedBreakerConfig::key_metrics`).
    #[cfg(feature = "metrics")]
    key_gauge: bool,
    failures: AtomicU64,
    rejected: AtomicU64,
    open_until: AtomicU64,
    slow: Mutex<Slow>,
}

impl Cold {
    fn new(settings: &Settings, label: Option<Arc<str>>, key_gauge: bool) -> Cold {
        let _ = key_gauge;
        let now = settings.now();
        let n = settings.seeds.fetch_add(1, Ordering::Relaxed);
        let rng = SplitMix64::new(derive(settings.seed, n));
        let config = settings.current();
        let window = match config.policy {
            TripPolicy::ConsecutiveFailures { .. } => None,
            TripPolicy::FailureRateCount { window, .. } => {
                Some(Window::Count(CountWindow::new(window)))
            }
            TripPolicy::FailureRateTime {
                window, buckets, ..
            }
            | TripPolicy::SlowCallRate {
                window, buckets, ..
            } => Some(Window::Time(TimeWindow::new(nanos(window), buckets))),
        };
        Cold {
            label,
            #[cfg(feature = "metrics")]
            key_gauge,
            failures: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            slow: Mutex::new(Slow {
                since: now,
                open_for: nanos(config.open_duration),
                in_flight: 0,
                probe_successes: 0,
                level: 0,
                episode: false,
                trips: 0,
                successes: 0,
                rng,
                window,
            }),
        }
    }

    fn lock(&self) -> Deferred<MutexGuard<'_, Slow>> {
        // Events emitted under the lock reach subscribers once it is
        // released, so a callback may call back into this breaker.
        let defer = Defer::new();
        // Poisoned only by a panic under the lock; the breaker's own code does
        // not panic there, and every field is valid after each statement.
        Deferred::new(defer, self.slow.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The label of the key a call was made for, given by a keyed layer when
/// the key's breaker may not have its [`Cold`] part yet (it is made from
/// this, once, when first needed).
pub(crate) type KeyLabel<'a> = Option<&'a dyn fmt::Display>;

/// The shared state of one breaker (one per key in a keyed layer).
///
/// Small on purpose (40 bytes: a keyed layer holds one per key): the state
/// word and the failure streak, which the closed success path reads, the
/// settings every key of a layer shares, and the rest ([`Cold`]) behind a
/// pointer made when first needed. The hot fields share a cache line with
/// the `Arc`'s reference counts; a tower call writes those counts anyway
/// (its response future holds a clone), so reading the word beside them
/// costs no further miss.
pub(crate) struct Inner {
    pub(crate) settings: Arc<Settings>,
    cold: OnceLock<Box<Cold>>,
    word: AtomicU64,
    consecutive: AtomicU32,
    // Whether the policy is consecutive failures (its kind never changes in
    // place): kept here (in what would be padding) so the closed success
    // path does not chase the settings pointer. The threshold itself, which
    // a reload may change, is read from the settings by a failure.
    streak: bool,
}

impl Inner {
    /// A breaker with all its state made now, labelled `label` (a standalone
    /// breaker, a peer's own, a keyed layer's overflow breaker).
    pub(crate) fn new(settings: Arc<Settings>, label: Option<Arc<str>>) -> Inner {
        let inner = Inner::fresh(settings);
        let _ = inner
            .cold
            .set(Box::new(Cold::new(&inner.settings, label, true)));
        inner
    }

    /// A fresh breaker that makes the rest of its state (and its label, from
    /// the [`KeyLabel`] it is given then) only when it first leaves the
    /// fresh state: a keyed layer's key.
    pub(crate) fn fresh(settings: Arc<Settings>) -> Inner {
        Inner {
            word: AtomicU64::new(CLOSED),
            consecutive: AtomicU32::new(0),
            streak: settings.streak,
            cold: OnceLock::new(),
            settings,
        }
    }

    /// The rest of the state, made now (labelled from `label`) if absent.
    #[inline]
    fn cold(&self, label: KeyLabel<'_>) -> &Cold {
        self.cold.get_or_init(|| {
            let label = label.map(|k| Arc::from(k.to_string()));
            Box::new(Cold::new(&self.settings, label, self.settings.key_metrics))
        })
    }

    /// Makes the rest of the state now, labelled with `key` if it is made
    /// here: before a keyed breaker is handed out of its layer, so every
    /// later transition and rejection names its key.
    pub(crate) fn label_with(&self, key: &dyn fmt::Display) {
        self.cold(Some(key));
    }

    /// `true` until the breaker first leaves the fresh state (and has no
    /// label yet): a keyed call must then give its key to the outcome.
    #[inline]
    pub(crate) fn wants_label(&self) -> bool {
        self.cold.get().is_none()
    }

    fn lock(&self) -> Deferred<MutexGuard<'_, Slow>> {
        self.cold(None).lock()
    }

    pub(crate) fn state(&self) -> State {
        state_of(self.word_now())
    }

    /// The state word now: an open breaker whose open period is over is
    /// moved to half-open here, as its next call would move it, so that a
    /// reader (a dashboard, a health check) sees `HalfOpen` without waiting
    /// for a call.
    #[inline]
    fn word_now(&self) -> u64 {
        let word = self.word.load(Ordering::Acquire);
        if tag(word) == OPEN {
            return self.settle_open(word);
        }
        word
    }

    #[cold]
    fn settle_open(&self, word: u64) -> u64 {
        let now = self.settings.now();
        let cold = self.cold(None);
        if now < cold.open_until.load(Ordering::Relaxed) {
            return word;
        }
        let mut s = cold.lock();
        let word = self.word.load(Ordering::Relaxed);
        if tag(word) == OPEN && now >= cold.open_until.load(Ordering::Relaxed) {
            self.set_state(&mut s, HALF_OPEN, now)
        } else {
            word
        }
    }

    /// The key this breaker is labelled with, if it has one yet.
    pub(crate) fn label(&self) -> Option<&str> {
        self.cold.get().and_then(|c| c.label.as_deref())
    }

    /// Whether a keyed map may forget this breaker: only while it behaves
    /// exactly as a fresh one would, so that forgetting it hands nobody a
    /// second chance. That is: Closed (not open, half-open, or forced either
    /// way), no failure in its streak, no failure or slow call in its window
    /// (a time window forgets them as it slides), no probe in flight, and no
    /// open-backoff history a fresh breaker lacks (after a trip, the next
    /// trip within `reset_after` of closing opens for longer; a fresh
    /// breaker would open for the base duration, so the key is kept until it
    /// has stayed closed for `reset_after`). A breaker busy under its lock is
    /// not forgotten now. `now` is a reading of the layer's clock (the map's
    /// clock is the layer's).
    pub(crate) fn can_forget(&self, now: u64) -> bool {
        let word = self.word.load(Ordering::Acquire);
        if tag(word) != CLOSED || self.consecutive.load(Ordering::Acquire) != 0 {
            return false;
        }
        let Some(cold) = self.cold.get() else {
            return true;
        };
        // Called under a shard lock of the map: never wait on the breaker.
        let Ok(s) = cold.slow.try_lock() else {
            return false;
        };
        if self.word.load(Ordering::Acquire) != word || s.in_flight != 0 {
            return false;
        }
        if s.episode {
            let config = self.settings.current();
            if let Some(b) = &config.open_backoff
                && now.saturating_sub(s.since) < nanos(b.reset_after)
            {
                return false;
            }
        }
        let counts = match &s.window {
            Some(Window::Count(w)) => w.counts(),
            Some(Window::Time(w)) => w.counts(now),
            None => Counts::default(),
        };
        counts.failures == 0 && counts.slow == 0
    }

    /// Counts a refusal and says why: open with `retry_after`, or
    /// `state` (forced open, half-open full) with none.
    #[inline]
    fn reject(&self, cold: &Cold, retry_after: Option<Duration>, state: OpenState) -> CircuitOpen {
        cold.rejected.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.settings.rejected_counter.increment(1);
        let err = CircuitOpen::new(retry_after).with_state(state);
        match &cold.label {
            Some(key) => err.with_key(key.clone()),
            None => err,
        }
    }

    /// Admits a call or says why not. Returns the state word the call was
    /// admitted under and whether it holds a probe slot.
    #[inline(always)]
    pub(crate) fn acquire(&self) -> Result<(u64, bool), CircuitOpen> {
        let word = self.word.load(Ordering::Acquire);
        if tag(word) == CLOSED {
            return Ok((word, false));
        }
        self.acquire_other(word)
    }

    // Every state but Closed: out of line, so that the closed path stays
    // small where it is inlined. An open breaker's refusal is the one path
    // here that runs per call (as long as the breaker is open): it is kept
    // short, the rest is colder still.
    #[inline(never)]
    fn acquire_other(&self, word: u64) -> Result<(u64, bool), CircuitOpen> {
        // An open breaker has its cold part: it was made to trip.
        if tag(word) == OPEN
            && let Some(cold) = self.cold.get()
        {
            let now = self.settings.now();
            let until = cold.open_until.load(Ordering::Relaxed);
            if now < until {
                let retry_after = Duration::from_nanos(until - now);
                return Err(self.reject(cold, Some(retry_after), OpenState::Open));
            }
            return self.acquire_slow(now);
        }
        self.acquire_rest(word)
    }

    #[cold]
    #[inline(never)]
    fn acquire_rest(&self, word: u64) -> Result<(u64, bool), CircuitOpen> {
        match tag(word) {
            CLOSED | FORCED_CLOSED => Ok((word, false)),
            // Only a breaker that has left the fresh state refuses: its cold
            // part, and its label, exist.
            FORCED_OPEN => Err(self.reject(self.cold(None), None, OpenState::ForcedOpen)),
            _ => self.acquire_slow(self.settings.now()),
        }
    }

    #[cold]
    fn acquire_slow(&self, now: u64) -> Result<(u64, bool), CircuitOpen> {
        let mut s = self.lock();
        let mut word = self.word.load(Ordering::Acquire);
        match tag(word) {
            CLOSED | FORCED_CLOSED => return Ok((word, false)),
            FORCED_OPEN => {
                drop(s);
                return Err(self.reject(self.cold(None), None, OpenState::ForcedOpen));
            }
            OPEN => {
                let until = self.cold(None).open_until.load(Ordering::Relaxed);
                if now < until {
                    drop(s);
                    let retry_after = Duration::from_nanos(until - now);
                    return Err(self.reject(self.cold(None), Some(retry_after), OpenState::Open));
                }
                word = self.set_state(&mut s, HALF_OPEN, now);
            }
            _ => {}
        }
        if s.in_flight
            < self
                .settings
                .params
                .half_open_max_calls
                .load(Ordering::Relaxed)
        {
            s.in_flight += 1;
            Ok((word, true))
        } else {
            drop(s);
            Err(self.reject(self.cold(None), None, OpenState::HalfOpen))
        }
    }

    /// Records the outcome of a call admitted under `word`; `label` names
    /// the key if the breaker has to make its cold part now.
    #[inline]
    pub(crate) fn complete(
        &self,
        word: u64,
        probe: bool,
        outcome: Outcome,
        elapsed: Option<Duration>,
        label: KeyLabel<'_>,
    ) {
        let failure = outcome == Outcome::Failure;
        if failure {
            // A failure leaves the fresh state: the one place a keyed
            // breaker's cold part (and label) is made on the call path.
            self.cold(label).failures.fetch_add(1, Ordering::Relaxed);
        }
        if probe {
            return self.complete_probe(word, outcome, elapsed);
        }
        if outcome == Outcome::Ignore {
            return;
        }
        if !self.streak {
            return self.complete_windowed(word, failure, elapsed, label);
        }
        if failure {
            self.count_failure(word);
        } else if self.consecutive.load(Ordering::Relaxed) != 0
            && self.word.load(Ordering::Relaxed) == word
        {
            // Only a success that changes something writes.
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    fn count_failure(&self, word: u64) {
        if self.word.load(Ordering::Acquire) != word || tag(word) != CLOSED {
            return;
        }
        let n = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.settings.params.threshold.load(Ordering::Relaxed) {
            self.trip(word);
        }
    }

    fn is_slow(&self, elapsed: Option<Duration>) -> bool {
        // `elapsed` is measured (and given) only under the slow-call policy.
        self.settings.needs_start
            && elapsed
                .is_some_and(|e| nanos(e) > self.settings.params.slow_ns.load(Ordering::Relaxed))
    }

    fn complete_windowed(
        &self,
        word: u64,
        failure: bool,
        elapsed: Option<Duration>,
        label: KeyLabel<'_>,
    ) {
        let slow = self.is_slow(elapsed);
        let now = if self.settings.timed {
            self.settings.now()
        } else {
            0
        };
        let mut s = self.cold(label).lock();
        // The word changes only under this lock.
        if self.word.load(Ordering::Relaxed) != word {
            return;
        }
        if !failure {
            s.successes += 1;
        }
        let mark = Mark { failure, slow };
        let counts = match s.window.as_mut() {
            Some(Window::Count(w)) => {
                w.record(mark);
                w.counts()
            }
            Some(Window::Time(w)) => {
                w.record(now, mark);
                w.counts(now)
            }
            None => return,
        };
        if tag(word) == CLOSED && self.should_trip(counts) {
            let now = if now == 0 { self.settings.now() } else { now };
            self.open(&mut s, now, CLOSED);
        }
    }

    fn should_trip(&self, c: Counts) -> bool {
        if self.streak {
            return false;
        }
        let params = &self.settings.params;
        let bad = if self.settings.needs_start {
            c.slow
        } else {
            c.failures
        };
        let (rate, min_calls) = (params.rate(), params.min_calls.load(Ordering::Relaxed));
        c.calls > 0 && c.calls >= min_calls && f64::from(bad) / f64::from(c.calls) >= rate
    }

    #[cold]
    fn complete_probe(&self, word: u64, outcome: Outcome, elapsed: Option<Duration>) {
        let slow = self.is_slow(elapsed);
        let now = self.settings.now();
        let mut s = self.lock();
        if self.word.load(Ordering::Relaxed) != word {
            // The breaker moved on (forced, reset, re-opened): the slot this
            // probe held was given back when it did.
            return;
        }
        s.in_flight = s.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Failure => self.open(&mut s, now, HALF_OPEN),
            Outcome::Success if slow => self.open(&mut s, now, HALF_OPEN),
            Outcome::Success => {
                s.successes += 1;
                s.probe_successes += 1;
                if s.probe_successes
                    >= self
                        .settings
                        .params
                        .success_threshold
                        .load(Ordering::Relaxed)
                {
                    self.set_state(&mut s, CLOSED, now);
                }
            }
            Outcome::Ignore => {}
        }
    }

    /// A permit admitted under `word` is dropped without an outcome.
    pub(crate) fn cancel(&self, word: u64, probe: bool, label: KeyLabel<'_>) {
        if self
            .settings
            .params
            .cancelled_is_failure
            .load(Ordering::Relaxed)
        {
            self.complete(word, probe, Outcome::Failure, None, label);
        } else if probe {
            self.complete_probe(word, Outcome::Ignore, None);
        }
    }

    #[cold]
    fn trip(&self, word: u64) {
        let now = self.settings.now();
        let mut s = self.lock();
        if self.word.load(Ordering::Relaxed) == word {
            self.open(&mut s, now, CLOSED);
        }
    }

    fn open(&self, s: &mut Slow, now: u64, from: u64) {
        let config = self.settings.current();
        if let Some(b) = &config.open_backoff {
            let closed_long = now.saturating_sub(s.since) >= nanos(b.reset_after);
            s.level = if from == HALF_OPEN || (s.episode && !closed_long) {
                s.level.saturating_add(1)
            } else {
                0
            };
            s.episode = true;
        }
        let d = open_duration(
            config.open_duration,
            config.open_backoff.as_ref(),
            s.level,
            &mut s.rng,
        );
        s.open_for = nanos(d).min(u64::MAX / 2);
        s.trips += 1;
        self.cold(None)
            .open_until
            .store(now.saturating_add(s.open_for), Ordering::Relaxed);
        self.set_state(s, OPEN, now);
    }

    // Moves to `to`; returns the new word. Called with the lock held.
    fn set_state(&self, s: &mut Slow, to: u64, now: u64) -> u64 {
        let old = self.word.load(Ordering::Relaxed);
        let word = (((old >> TAG_BITS) + 1) << TAG_BITS) | to;
        s.since = now;
        s.in_flight = 0;
        s.probe_successes = 0;
        if to == CLOSED || to == FORCED_CLOSED {
            self.consecutive.store(0, Ordering::Relaxed);
            match s.window.as_mut() {
                Some(Window::Count(w)) => w.clear(),
                Some(Window::Time(w)) => w.clear(),
                None => {}
            }
        }
        self.word.store(word, Ordering::Release);
        self.emit(s, state_of(old), state_of(word));
        word
    }

    fn emit(&self, s: &Slow, from: State, to: State) {
        let name = &*self.settings.name;
        let cold = self.cold(None);
        let key = cold.label.as_deref().unwrap_or("");
        let open_for = Duration::from_nanos(s.open_for);
        seawall_core::event::emit(|| {
            let e = Event::new(
                Arc::clone(&self.settings.name),
                EventKind::breaker_transition(from.into(), to.into()),
            );
            match &cold.label {
                Some(k) => e.with_key(k),
                None => e,
            }
        });
        match to {
            State::Open | State::ForcedOpen => tracing::warn!(
                target: seawall_core::names::TARGET_BREAKER,
                name, key, %from, %to, ?open_for, "circuit breaker opened"
            ),
            _ => tracing::info!(
                target: seawall_core::names::TARGET_BREAKER,
                name, key, %from, %to, "circuit breaker state changed"
            ),
        }
        #[cfg(feature = "metrics")]
        {
            use seawall_core::names::{
                BREAKER_STATE, BREAKER_TRANSITIONS_TOTAL, LABEL_KEY, LABEL_NAME, LABEL_STATE,
            };
            match &cold.label {
                // A key's series only where its number is bounded: see
                // `Cold::key_gauge`.
                Some(k) if cold.key_gauge => {
                    metrics::gauge!(BREAKER_STATE, LABEL_NAME => name.to_owned(), LABEL_KEY => k.to_string())
                        .set(to.gauge_value())
                }
                Some(_) => {}
                None => metrics::gauge!(BREAKER_STATE, LABEL_NAME => name.to_owned())
                    .set(to.gauge_value()),
            }
            metrics::counter!(BREAKER_TRANSITIONS_TOTAL, LABEL_NAME => name.to_owned(), LABEL_STATE => to.as_str())
                .increment(1);
        }
    }

    fn force(&self, to: u64) {
        let now = self.settings.now();
        let mut s = self.lock();
        if to == CLOSED {
            s.level = 0;
            s.episode = false;
        }
        if to == OPEN {
            self.open(&mut s, now, CLOSED);
        } else {
            self.set_state(&mut s, to, now);
        }
    }

    pub(crate) fn stats(&self) -> BreakerStats {
        let Some(cold) = self.cold.get() else {
            // Never left the fresh state (a keyed layer's key that has only
            // succeeded): nothing else was kept, not even when it was made.
            return BreakerStats {
                state: self.state(),
                time_in_state: Duration::ZERO,
                retry_after: None,
                open_duration: self.settings.current().open_duration,
                consecutive_failures: self.consecutive.load(Ordering::Relaxed),
                window_calls: 0,
                window_failures: 0,
                window_successes: 0,
                window_slow_calls: 0,
                half_open_in_flight: 0,
                half_open_successes: 0,
                successes: (!self.streak).then_some(0),
                failures: 0,
                trips: 0,
                rejected: 0,
            };
        };
        self.word_now();
        let now = self.settings.now();
        // Came due between the two readings: settle it, so that the snapshot
        // never says Open with nothing left to wait.
        if tag(self.word.load(Ordering::Acquire)) == OPEN
            && now >= cold.open_until.load(Ordering::Relaxed)
        {
            self.word_now();
        }
        let s = cold.lock();
        let word = self.word.load(Ordering::Acquire);
        let state = state_of(word);
        let counts = match s.window.as_ref() {
            Some(Window::Count(w)) => w.counts(),
            Some(Window::Time(w)) => w.counts(now),
            None => Counts::default(),
        };
        let until = cold.open_until.load(Ordering::Relaxed);
        BreakerStats {
            state,
            time_in_state: Duration::from_nanos(now.saturating_sub(s.since)),
            retry_after: (state == State::Open)
                .then(|| Duration::from_nanos(until.saturating_sub(now))),
            open_duration: Duration::from_nanos(s.open_for),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            window_calls: counts.calls,
            window_failures: counts.failures,
            window_successes: counts.calls.saturating_sub(counts.failures),
            window_slow_calls: counts.slow,
            half_open_in_flight: if state == State::HalfOpen {
                s.in_flight
            } else {
                0
            },
            half_open_successes: if state == State::HalfOpen {
                s.probe_successes
            } else {
                0
            },
            successes: s.window.is_some().then_some(s.successes),
            failures: cold.failures.load(Ordering::Relaxed),
            trips: s.trips,
            rejected: cold.rejected.load(Ordering::Relaxed),
        }
    }

    /// A health score in `0..=1`: 1 for a closed breaker with no recent
    /// failure, down to 0.5 for a closed breaker about to trip, 0.25 while
    /// half-open, 0 while open or forced open; 1 when forced closed.
    pub(crate) fn health(&self) -> f64 {
        let word = self.word_now();
        match tag(word) {
            OPEN | FORCED_OPEN => 0.0,
            HALF_OPEN => 0.25,
            FORCED_CLOSED => 1.0,
            _ => {
                let params = &self.settings.params;
                let pressure = if self.streak {
                    let threshold = params.threshold.load(Ordering::Relaxed).max(1);
                    f64::from(self.consecutive.load(Ordering::Relaxed)) / f64::from(threshold)
                } else {
                    let st = self.stats();
                    let bad = if self.settings.needs_start {
                        st.window_slow_calls
                    } else {
                        st.window_failures
                    };
                    if st.window_calls == 0 {
                        0.0
                    } else {
                        f64::from(bad) / f64::from(st.window_calls) / params.rate()
                    }
                };
                1.0 - 0.5 * pressure.clamp(0.0, 1.0)
            }
        }
    }
}

/// A circuit breaker, usable without tower: ask [`try_acquire`](Self::try_acquire)
/// before a call, tell the [`Permit`] how it went.
///
/// Cheap to clone (an `Arc` inside): clones share one state.
///
/// ```
/// use seawall_breaker::{CircuitBreaker, State, TripPolicy};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let breaker = CircuitBreaker::builder()
///     .policy(TripPolicy::consecutive_failures(2))
///     .build_breaker()
///     .unwrap();
///
/// for _ in 0..2 {
///     let permit = breaker.try_acquire().expect("closed");
///     permit.failure();
/// }
/// assert_eq!(breaker.state(), State::Open);
/// let rejected = breaker.try_acquire().unwrap_err();
/// assert!(rejected.retry_after().is_some());
///
/// // Or guard any future that returns a `Result`:
/// breaker.reset();
/// let n: Result<u32, _> = breaker.call(async { Ok::<_, std::io::Error>(7) }).await;
/// assert_eq!(n.unwrap(), 7);
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: crate::sync::Arc<Inner>,
    // Per-thread handles for owned permits (a breaker made whole: built
    // alone, by a `BreakerLayer`, or for a peer); `None` for a keyed
    // layer's key, whose map hands out a reference-counted clone anyway.
    lanes: Option<Arc<Lanes>>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.settings.name)
            .field("key", &self.inner.label())
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// A builder with the documented defaults; finish with
    /// [`BreakerBuilder::build_breaker`].
    pub fn builder() -> BreakerBuilder {
        BreakerBuilder::default()
    }

    /// A breaker from a config, reading tokio's clock (see
    /// [`BreakerBuilder::clock`] for another); every bad field is reported.
    pub fn from_config(config: &BreakerConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, Clock::default())
    }

    pub(crate) fn with_clock(config: &BreakerConfig, clock: Clock) -> Result<Self, ConfigError> {
        let settings = Settings::new(config, clock)?;
        Ok(Self::whole(crate::sync::Arc::new(Inner::new(
            settings, None,
        ))))
    }

    /// A breaker made whole (not a keyed layer's key), with its lanes.
    pub(crate) fn whole(inner: crate::sync::Arc<Inner>) -> Self {
        CircuitBreaker {
            lanes: Some(Arc::new(Lanes::new(&inner))),
            inner,
        }
    }

    /// A handle to a keyed layer's key (no lanes).
    pub(crate) fn from_inner(inner: crate::sync::Arc<Inner>) -> Self {
        CircuitBreaker { inner, lanes: None }
    }

    /// Admits a call for a `'static` future, moving `inner` into the permit.
    #[inline]
    pub(crate) fn acquire_arc(
        inner: crate::sync::Arc<Inner>,
    ) -> Result<Permit<'static>, CircuitOpen> {
        let (word, probe) = inner.acquire()?;
        let start = start_of(&inner);
        Ok(Permit::starting(Handle::Owned(inner), word, probe, start))
    }

    /// Admits a call, or says why not. Never waits.
    ///
    /// The permit borrows the breaker; see
    /// [`try_acquire_owned`](Self::try_acquire_owned) for one that does not.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, CircuitOpen> {
        let (word, probe) = self.inner.acquire()?;
        Ok(Permit::new(
            &self.inner,
            Handle::Borrowed(&self.inner),
            word,
            probe,
        ))
    }

    /// Like [`try_acquire`](Self::try_acquire), with a permit that owns a
    /// handle to the breaker (to move into a task or a `'static` future).
    ///
    /// The handle is counted in one of the breaker's per-thread lanes, not
    /// in the breaker's own reference count, so threads calling one breaker
    /// do not write one shared counter on every call.
    #[inline(always)]
    pub fn try_acquire_owned(&self) -> Result<Permit<'static>, CircuitOpen> {
        let (word, probe) = self.inner.acquire()?;
        let handle = match &self.lanes {
            Some(lanes) => Handle::Lane(lanes.get().clone()),
            None => Handle::Owned(self.inner.clone()),
        };
        Ok(Permit::new(&self.inner, handle, word, probe))
    }

    /// Guards a future: rejects it at once when the breaker is open,
    /// otherwise runs it and counts `Err` as a failure. Dropping the returned
    /// future before it finishes counts as a cancellation.
    pub async fn call<F, T, E>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.call_with(&ErrorsAsFailures, fut).await
    }

    /// Like [`call`](Self::call), with your own classifier.
    pub async fn call_with<C, F, T, E>(&self, classify: &C, fut: F) -> Result<T, CallError<E>>
    where
        C: Classify<T, E> + ?Sized,
        F: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let result = fut.await;
        permit.record(classify.classify(&result));
        result.map_err(CallError::Inner)
    }

    /// The current state (see [`BreakerStats::state`] for the lazy
    /// open-to-half-open move).
    pub fn state(&self) -> State {
        self.inner.state()
    }

    /// A snapshot of the counters (takes the breaker's short mutex).
    pub fn stats(&self) -> BreakerStats {
        self.inner.stats()
    }

    /// A health score in `0..=1` (1 healthy, 0 open); see the crate docs.
    pub fn health(&self) -> f64 {
        self.inner.health()
    }

    /// Forces the breaker open: every call is rejected (with no
    /// `retry_after`) until [`reset`](Self::reset) or
    /// [`force_closed`](Self::force_closed).
    pub fn force_open(&self) {
        self.inner.force(FORCED_OPEN);
    }

    /// Forces the breaker closed: every call passes, outcomes are counted,
    /// the breaker never trips, until [`reset`](Self::reset).
    pub fn force_closed(&self) {
        self.inner.force(FORCED_CLOSED);
    }

    /// Back to a fresh `Closed`: counters of the policy, probes and open
    /// backoff are cleared (totals are kept).
    pub fn reset(&self) {
        self.inner.force(CLOSED);
    }

    /// Trips the breaker open now, as if its policy had tripped it.
    pub fn trip(&self) {
        self.inner.force(OPEN);
    }

    /// The config the breaker runs with: the one it was built from, or the
    /// last one [`reload`](Self::reload) applied.
    pub fn config(&self) -> BreakerConfig {
        BreakerConfig::clone(&self.inner.settings.current())
    }

    /// Applies a new config to this running breaker, keeping its state:
    /// every handle, every service made from its layer and every call in
    /// flight sees it, and no call fails because of it.
    ///
    /// - **All or nothing.** `config` is validated as a build validates it
    ///   ([`ReloadError::Invalid`]); a change that cannot apply in place is
    ///   refused ([`ReloadError::NotInPlace`], naming the field). On any
    ///   error nothing changes.
    /// - **Takes effect for the next call or outcome:** the policy's
    ///   thresholds (`threshold`, `rate`, `min_calls`, the slow-call
    ///   `threshold`), `half_open_max_calls`, `success_threshold`,
    ///   `cancelled_is_failure`, and for the next trip `open_duration` and
    ///   `open_backoff` (its multiplier, cap, jitter, `reset_after`).
    ///   An open period in progress keeps the end it was given when it
    ///   began (callers were told that `retry_after`); the new
    ///   `open_duration` applies from the next trip. A streak or window
    ///   already past a lowered threshold trips at the next failure (or
    ///   windowed outcome); a `half_open_max_calls` lowered below the probes
    ///   in flight refuses new probes until enough have finished, cancelling
    ///   none.
    /// - **Kept:** the state and when it was entered, the end of an open
    ///   period, the failure streak and the window's contents, the probes in
    ///   flight and their successes, the open-backoff level, the
    ///   generation, the totals (`stats()`), a forced state.
    /// - **Not in place** ([`ReloadError::NotInPlace`]): `name` (events
    ///   and metrics are labelled with it); the policy's kind
    ///   (`policy`); a count window's size or a time window's length or
    ///   bucket count (`policy.window`, `policy.buckets`: every breaker
    ///   holds its counted calls in that shape); a different
    ///   `open_backoff.seed` (the jitter streams are seeded when made; the
    ///   same seed, or none, is fine). On a keyed layer's breaker (a key's,
    ///   its overflow breaker, a peer's), `per_key`: reload the layer, which
    ///   applies to every key at once.
    ///
    /// A call racing the reload may judge its outcome by some new values and
    /// some old ones; each is valid alone. One `INFO` event (target
    /// `seawall_breaker`, fields `name` and `changed`) reports the reload.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_breaker::{BreakerBuilder, BreakerConfig, State, TripPolicy};
    /// use seawall_core::{Clock, ReloadError};
    ///
    /// let (clock, hand) = Clock::manual();
    /// let config = BreakerConfig::new()
    ///     .policy(TripPolicy::consecutive_failures(1))
    ///     .open_duration(Duration::from_secs(10));
    /// let breaker = BreakerBuilder::from_config(config.clone()).clock(clock).build_breaker().unwrap();
    /// breaker.try_acquire().unwrap().failure();
    /// assert_eq!(breaker.state(), State::Open);
    ///
    /// // Longer open periods from the next trip on; this one still ends at 10s.
    /// breaker.reload(&config.clone().open_duration(Duration::from_secs(60))).unwrap();
    /// assert_eq!(breaker.state(), State::Open);
    /// hand.advance(Duration::from_secs(10));
    /// assert_eq!(breaker.state(), State::HalfOpen);
    ///
    /// // A different kind of policy cannot apply in place: nothing changes.
    /// let other = config.clone().policy(TripPolicy::failure_rate_count(10, 0.5, 5));
    /// let err = breaker.reload(&other).unwrap_err();
    /// assert_eq!(err.not_in_place_field(), Some("policy"));
    /// assert!(matches!(breaker.reload(&config.clone().half_open_max_calls(0)), Err(ReloadError::Invalid(_))));
    /// assert_eq!(breaker.config().open_duration, Duration::from_secs(60));
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// ```
    pub fn reload(&self, config: &BreakerConfig) -> Result<(), ReloadError> {
        if self.inner.settings.is_keyed() {
            return Err(ReloadError::not_in_place(
                "per_key",
                "this breaker is one of a keyed layer's: reload the layer, which applies to every key",
            ));
        }
        self.inner.settings.reload(config, "").map(drop)
    }
}

enum Handle<'a> {
    Borrowed(&'a Inner),
    Owned(crate::sync::Arc<Inner>),
    Lane(Arc<Lane>),
}

impl Deref for Handle<'_> {
    type Target = Inner;

    #[inline(always)]
    fn deref(&self) -> &Inner {
        match self {
            Handle::Borrowed(i) => i,
            Handle::Owned(i) => i,
            Handle::Lane(l) => l.inner(),
        }
    }
}

/// The right to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Tell it how the call went with [`record`](Self::record) (or
/// [`success`](Self::success) / [`failure`](Self::failure)). Dropping it
/// unrecorded counts as a cancellation: neither success nor failure (unless
/// `cancelled_is_failure`), and a half-open probe slot is given back.
///
/// With the slow-call policy the permit remembers when it was taken; the
/// call's duration is measured when it is recorded, or given with
/// [`record_elapsed`](Self::record_elapsed).
#[must_use = "dropping a permit counts the call as cancelled"]
pub struct Permit<'a> {
    // `None` once recorded. All fields are whole words: the permit is moved
    // into response futures, and byte-sized fields written apart and read
    // back as a word stall the store buffer on every call.
    breaker: Option<Handle<'a>>,
    // The state word the call was admitted under, with PROBE set for a
    // half-open probe.
    word: u64,
    // When the call started (slow-call policy), in the settings' nanoseconds;
    // NO_START otherwise.
    start: u64,
}

const PROBE: u64 = 1 << 63;
const NO_START: u64 = u64::MAX;

/// When a call admitted by `inner` starts: a reading for the slow-call
/// policy, `NO_START` for the others (which read no clock).
#[inline(always)]
fn start_of(inner: &Inner) -> u64 {
    if !inner.streak && inner.settings.needs_start {
        inner.settings.now()
    } else {
        NO_START
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("probe", &self.is_probe())
            .field("state", &state_of(self.word & !PROBE))
            .finish()
    }
}

impl<'a> Permit<'a> {
    /// A permit for a call admitted by `inner` under `word`, held through
    /// `handle` (a handle to `inner`).
    #[inline(always)]
    fn new(inner: &Inner, handle: Handle<'a>, word: u64, probe: bool) -> Self {
        Self::starting(handle, word, probe, start_of(inner))
    }

    #[inline(always)]
    fn starting(handle: Handle<'a>, word: u64, probe: bool, start: u64) -> Self {
        Permit {
            breaker: Some(handle),
            word: if probe { word | PROBE } else { word },
            start,
        }
    }

    /// `true` when this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.word & PROBE != 0
    }

    #[inline(always)]
    fn finish(&mut self, outcome: Outcome, elapsed: Option<Duration>, label: KeyLabel<'_>) {
        if let Some(b) = self.breaker.take() {
            let elapsed = match elapsed {
                Some(e) => Some(e),
                None if self.start != NO_START => Some(Duration::from_nanos(
                    b.settings.now().saturating_sub(self.start),
                )),
                None => None,
            };
            b.complete(self.word & !PROBE, self.is_probe(), outcome, elapsed, label);
        }
    }

    /// Records the outcome through a reference (for futures that hold the
    /// permit in place); later records and the drop do nothing.
    #[inline]
    pub(crate) fn record_in_place(&mut self, outcome: Outcome, label: KeyLabel<'_>) {
        self.finish(outcome, None, label);
    }

    /// Counts the call as cancelled now, naming the key for a breaker that
    /// must make its cold part; the drop then does nothing.
    pub(crate) fn cancel_in_place(&mut self, label: KeyLabel<'_>) {
        if let Some(b) = self.breaker.take() {
            b.cancel(self.word & !PROBE, self.is_probe(), label);
        }
    }

    /// Records the call's outcome.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        self.finish(outcome, None, None);
    }

    /// Records the outcome with a duration you measured (slow-call policy).
    pub fn record_elapsed(mut self, outcome: Outcome, elapsed: Duration) {
        self.finish(outcome, Some(elapsed), None);
    }

    /// Records a success.
    #[inline]
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// Records a failure.
    #[inline]
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(b) = self.breaker.take() {
            b.cancel(self.word & !PROBE, self.is_probe(), None);
        }
    }
}

/// Model checks of the half-open probe accounting under loom (`--cfg
/// seawall_loom`): every interleaving of the threads below (up to
/// `LOOM_MAX_PREEMPTIONS` preemptions) is run.
///
/// The state word, the counters and the transition lock are loom's here
/// (`crate::sync`); the cold part's `OnceLock` is std's and is made before
/// the threads start. No time passes under loom: an open breaker's open
/// duration is ended by hand (`open_until` set to 0), so its next call moves
/// it to half-open.
#[cfg(all(test, seawall_loom))]
mod loom_models {
    use loom::sync::Arc as LoomArc;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    use super::*;

    /// A breaker that trips on one failure, admits `probes` concurrent
    /// probes and closes after `successes` probe successes: open, its open
    /// duration over.
    fn open_and_due(probes: u32, successes: u32) -> CircuitBreaker {
        let config = BreakerConfig {
            policy: TripPolicy::consecutive_failures(1),
            half_open_max_calls: probes,
            success_threshold: successes,
            ..BreakerConfig::default()
        };
        let breaker = CircuitBreaker::from_config(&config).expect("a valid config");
        breaker.trip();
        end_open_duration(&breaker);
        breaker
    }

    fn end_open_duration(breaker: &CircuitBreaker) {
        assert_eq!(breaker.state(), State::Open);
        breaker
            .inner
            .cold(None)
            .open_until
            .store(0, Ordering::Relaxed);
    }

    /// The same breaker, already half-open with every probe slot free.
    fn half_open(probes: u32, successes: u32) -> CircuitBreaker {
        let breaker = open_and_due(probes, successes);
        let inner = &breaker.inner;
        let now = inner.settings.now();
        let mut s = inner.lock();
        inner.set_state(&mut s, HALF_OPEN, now);
        drop(s);
        breaker
    }

    /// Transitions so far (the state word's generation).
    fn generation(breaker: &CircuitBreaker) -> u64 {
        breaker.inner.word.load(Ordering::Acquire) >> TAG_BITS
    }

    /// Every one of the `probes` slots is free: exactly that many new
    /// probes are admitted, and the next call is refused.
    fn assert_probe_slots_free(breaker: &CircuitBreaker, probes: u32) {
        assert_eq!(breaker.state(), State::HalfOpen);
        assert_eq!(breaker.stats().half_open_in_flight, 0, "a probe slot lost");
        let permits: Vec<_> = (0..probes)
            .map(|_| breaker.try_acquire().expect("a free probe slot"))
            .collect();
        assert!(permits.iter().all(Permit::is_probe));
        assert!(breaker.try_acquire().is_err(), "a probe slot counted twice");
    }

    /// Callers on a half-open breaker that hold their probe for a while
    /// and then drop it unrecorded: never more than `half_open_max_calls`
    /// probes at once, a caller is refused only while that many are held,
    /// and every cancelled probe gives its slot back.
    #[test]
    fn half_open_admits_at_most_max_calls_and_cancelled_probes_return_their_slots() {
        const PROBES: u32 = 2;
        loom::model(|| {
            let breaker = half_open(PROBES, 2);
            let held = LoomArc::new(AtomicUsize::new(0));
            let callers: Vec<_> = (0..3)
                .map(|_| {
                    let (breaker, held) = (breaker.clone(), held.clone());
                    thread::spawn(move || match breaker.try_acquire() {
                        Ok(permit) => {
                            assert!(permit.is_probe());
                            let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(now <= PROBES as usize, "{now} probes at once");
                            held.fetch_sub(1, Ordering::SeqCst);
                            drop(permit);
                            true
                        }
                        Err(open) => {
                            assert_eq!(open.state(), OpenState::HalfOpen);
                            false
                        }
                    })
                })
                .collect();
            let admitted = callers
                .into_iter()
                .map(|c| c.join().unwrap())
                .filter(|&a| a)
                .count();
            // A refusal means `PROBES` others held a slot then.
            assert!(admitted >= PROBES as usize);
            assert_eq!(generation(&breaker), 2, "only the trip and half-open");
            assert_probe_slots_free(&breaker, PROBES);
        });
    }

    /// Callers racing the move of an open breaker (its open duration over)
    /// to half-open: it moves once, and admits exactly
    /// `half_open_max_calls` of them while they hold their probes.
    #[test]
    fn open_to_half_open_racing_callers_admits_at_most_max_calls() {
        const PROBES: u32 = 2;
        loom::model(|| {
            let breaker = open_and_due(PROBES, 2);
            let before = generation(&breaker);
            let callers: Vec<_> = (0..3)
                .map(|_| {
                    let breaker = breaker.clone();
                    thread::spawn(move || breaker.try_acquire_owned().ok())
                })
                .collect();
            let permits: Vec<_> = callers
                .into_iter()
                .filter_map(|c| c.join().unwrap())
                .collect();
            assert_eq!(permits.len(), PROBES as usize, "probes admitted");
            assert!(permits.iter().all(Permit::is_probe));
            assert_eq!(generation(&breaker), before + 1, "one move to half-open");
            let stats = breaker.stats();
            assert_eq!(stats.state, State::HalfOpen);
            assert_eq!(stats.half_open_in_flight, PROBES);
            assert_eq!(stats.trips, 1);
            drop(permits);
            assert_probe_slots_free(&breaker, PROBES);
        });
    }

    /// What a probe's holder does with it.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Ends {
        Success,
        Failure,
        Cancel,
    }

    /// Two probes of a half-open breaker (two slots, two successes to
    /// close) ending at once, in every combination: two successes close
    /// it, a failure re-opens it once (the other outcome then counts for
    /// nothing), a success and a cancellation leave it half-open with one
    /// success and both slots free. No slot is lost or counted twice.
    #[test]
    fn racing_probe_outcomes_leave_a_consistent_breaker() {
        use Ends::*;
        for ends in [
            [Success, Success],
            [Success, Failure],
            [Failure, Failure],
            [Success, Cancel],
            [Failure, Cancel],
            [Cancel, Cancel],
        ] {
            loom::model(move || {
                let breaker = half_open(2, 2);
                let before = generation(&breaker);
                let probes: Vec<_> = ends
                    .iter()
                    .map(|&end| (end, breaker.try_acquire_owned().expect("a probe slot")))
                    .collect();
                let holders: Vec<_> = probes
                    .into_iter()
                    .map(|(end, permit)| {
                        thread::spawn(move || match end {
                            Success => permit.success(),
                            Failure => permit.failure(),
                            Cancel => drop(permit),
                        })
                    })
                    .collect();
                for h in holders {
                    h.join().unwrap();
                }
                let stats = breaker.stats();
                let failed = ends.contains(&Failure);
                let successes = ends.iter().filter(|&&e| e == Success).count();
                if failed {
                    assert_eq!(stats.state, State::Open, "{ends:?}");
                    assert_eq!(stats.trips, 2, "{ends:?}: re-opened once");
                    assert_eq!(generation(&breaker), before + 1, "{ends:?}");
                    end_open_duration(&breaker);
                    let probe = breaker.try_acquire().expect("a probe after re-opening");
                    drop(probe);
                    assert_probe_slots_free(&breaker, 2);
                } else if successes == 2 {
                    assert_eq!(stats.state, State::Closed, "{ends:?}");
                    assert_eq!(stats.trips, 1, "{ends:?}");
                    assert_eq!(generation(&breaker), before + 1, "{ends:?}");
                } else {
                    assert_eq!(generation(&breaker), before, "{ends:?}");
                    assert_eq!(stats.half_open_successes as usize, successes, "{ends:?}");
                    assert_probe_slots_free(&breaker, 2);
                }
            });
        }
    }
}

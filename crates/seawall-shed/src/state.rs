//! The tower-free shedder: one in-flight counter, one admission decision,
//! and a [`Permit`] that gives its slot back when dropped.
//!
//! [`Shedder`] is what [`ShedLayer`](crate::ShedLayer) wraps; use it directly
//! to guard work that is not a tower `Service` (a job runner, a plain loop).
//!
//! # What it guarantees
//!
//! - At most `limit` permits exist at any time (the in-flight count is one
//!   atomic word, taken by compare-and-swap after the decision, so two
//!   racing callers can never both take the last slot).
//! - Admitting and rejecting allocate nothing; a rejection is an
//!   [`Overloaded`] by value.
//! - A [`Permit`] releases its slot exactly once, when dropped, however the
//!   work ended; in queue mode the freed slot goes to the oldest waiter.

use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool as StdAtomicBool, AtomicU64 as StdAtomicU64, AtomicUsize as StdAtomicUsize, Ordering,
};
use std::time::Duration;

use seawall_core::event::{self, Event, EventKind, ValueThrottle};
use seawall_core::names::TARGET_SHED;
use seawall_core::rand::{SplitMix64, derive, random_seed};
use seawall_core::{
    BoxError, Clock, ConfigError, Outcome, OverloadReason, Overloaded, ReloadError,
};

use crate::config::ShedConfig;
use crate::pressure::{MemoryPressure, PressureLevel, PressureSignal};
use crate::priority::Priority;
use crate::queue::WaitQueue;
use crate::stats::{ShedCounts, ShedStats};
// loom's under `--cfg seawall_loom`, so the queue's models switch threads
// between a release's decrement and its look at `waiting`.
use crate::sync::{AtomicU64, AtomicUsize};
use crate::window::Window;

const REASONS: usize = 6;

/// The in-flight count and the admitted counter share one atomic word, so
/// admitting is one compare-and-swap: in flight in the low 24 bits, admitted
/// (modulo 2^40) above them.
const ADMIT: u64 = 1 << 24;
const IN_FLIGHT_MASK: u64 = ADMIT - 1;

/// The highest limit a shedder accepts (2^24 - 1).
pub const MAX_LIMIT: usize = IN_FLIGHT_MASK as usize;

#[inline]
fn in_flight_of(state: u64) -> usize {
    (state & IN_FLIGHT_MASK) as usize
}

fn reason_index(r: OverloadReason) -> usize {
    match r {
        OverloadReason::HardLimit => 0,
        OverloadReason::Probabilistic => 1,
        OverloadReason::Priority => 2,
        OverloadReason::QueueDelay => 3,
        OverloadReason::MemoryPressure => 5,
        // QueueFull, and any reason a later version adds.
        _ => 4,
    }
}

/// Whether a shedder with `config` (and a pressure signal or not) decides
/// by `in_flight < limit` alone.
fn is_plain(config: &ShedConfig, pressure: bool) -> bool {
    config.soft_limit.unwrap_or(0) == 0 && config.critical_headroom <= 0.0 && !pressure
}

/// Bits of the packed `retry_after` that hold its nanoseconds (`< 10^9 <
/// 2^30`); the seconds are above them.
const SUBSEC_BITS: u32 = 30;

/// A rejection's `retry_after`, packed in one word (whole seconds above
/// [`SUBSEC_BITS`], the nanoseconds below), so that a refusal unpacks it with
/// a shift and a mask instead of dividing nanoseconds. Validated to
/// `1ms..=365 days` (the seconds need 25 bits); the floor keeps the hint
/// above zero even for a config that skipped validation, the ceiling keeps
/// the seconds in their 34 bits whatever it holds.
fn pack_retry_after(config: &ShedConfig) -> u64 {
    let d = config.retry_after.clamp(
        ShedConfig::MIN_RETRY_AFTER,
        seawall_core::config::MAX_DURATION,
    );
    (d.as_secs() << SUBSEC_BITS) | u64::from(d.subsec_nanos())
}

#[inline]
fn unpack_retry_after(packed: u64) -> Duration {
    Duration::new(
        packed >> SUBSEC_BITS,
        (packed & ((1 << SUBSEC_BITS) - 1)) as u32,
    )
}

/// The rejection counters, one per reason, on a cache line of their own:
/// written only by rejections, so they never make an admitting thread's
/// line bounce.
#[derive(Debug, Default)]
#[repr(align(64))]
struct ShedCounters([AtomicU64; REASONS]);

/// The state a layer and all its services share.
///
/// `repr(C)` keeps the declared order: what every call reads or writes
/// (`slots`, `limit`, the flags) comes first, on one cache line (the
/// counters' alignment aligns the whole to a line, so `slots` starts one,
/// right after the `Arc`'s reference counts); the rejection counters are
/// last, on a line of their own.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Shared {
    /// In flight (low 24 bits) and admitted (above); see [`ADMIT`].
    slots: AtomicU64,
    pub(crate) limit: AtomicUsize,
    /// Entries in the wait queue (granted or not); 0 without a queue.
    pub(crate) waiting: AtomicUsize,
    /// No soft limit, no critical headroom, no pressure signal: the decision
    /// is `in_flight < limit` alone, for every priority. It and the
    /// parameters below may change in a live reload: relaxed atomics (std's:
    /// they are config, not part of the hand-over loom checks), each read
    /// with the one plain load it took as a plain field.
    plain: StdAtomicBool,
    /// `queue.is_some()`, next to the other per-call fields.
    pub(crate) queued: bool,
    /// `window.is_some()`: an adaptive limit measures every call.
    measured: bool,
    /// 0 when there is no soft limit.
    soft_limit: StdAtomicUsize,
    /// `f64` bits.
    critical_headroom: StdAtomicU64,
    /// Packed: see [`retry_after_ns`].
    retry_after: StdAtomicU64,
    /// Consulted on every decision: one atomic load behind it.
    pressure: Option<Arc<dyn PressureSignal>>,
    window: Option<Window>,
    pub(crate) queue: Option<WaitQueue>,
    bounds: (StdAtomicUsize, StdAtomicUsize),
    /// The memory signal the shedder started from its config (not one it
    /// was given): a reload may change its thresholds.
    memory: Option<MemoryPressure>,
    /// The config last applied (built or reloaded): what a reload compares
    /// with. Locked only by `reload` and `config`.
    current: std::sync::Mutex<ShedConfig>,
    pub(crate) name: Arc<str>,
    /// Where an adaptive limit reads the time (RTTs, window ends).
    clock: Clock,
    seed: u64,
    services: AtomicU64,
    /// Reports the limit's changes, at most once a second.
    limit_events: ValueThrottle,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::Metrics,
    shed: ShedCounters,
}

impl Shared {
    pub(crate) fn new(
        config: &ShedConfig,
        pressure: Option<Arc<dyn PressureSignal>>,
        clock: Clock,
    ) -> Self {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let window = config.limit.is_adaptive().then(|| {
            Window::new(
                &config.limit,
                config.window,
                config.window_min_samples,
                &clock,
            )
        });
        let queue = config
            .max_queue_delay
            .map(|d| WaitQueue::new(config.queue_capacity, d));
        let initial = config.limit.initial();
        let (min, max) = config.limit.bounds();
        let shared = Shared {
            slots: AtomicU64::new(0),
            limit: AtomicUsize::new(initial.clamp(min, max)),
            waiting: AtomicUsize::new(0),
            shed: ShedCounters::default(),
            queued: queue.is_some(),
            measured: window.is_some(),
            plain: StdAtomicBool::new(is_plain(config, pressure.is_some())),
            soft_limit: StdAtomicUsize::new(config.soft_limit.unwrap_or(0)),
            critical_headroom: StdAtomicU64::new(config.critical_headroom.to_bits()),
            retry_after: StdAtomicU64::new(pack_retry_after(config)),
            bounds: (StdAtomicUsize::new(min), StdAtomicUsize::new(max)),
            memory: None,
            current: std::sync::Mutex::new(config.clone()),
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Metrics::new(&name),
            name,
            window,
            queue,
            pressure,
            limit_events: ValueThrottle::new(clock.clone(), initial.clamp(min, max) as u64),
            clock,
            seed: config.seed.unwrap_or_else(random_seed),
            services: AtomicU64::new(0),
        };
        #[cfg(feature = "metrics")]
        shared.metrics.limit(initial);
        shared
    }

    /// A generator for a new service (or clone): independent of its siblings'.
    /// The memory signal the shedder started from its config's
    /// `memory_pressure` (its thresholds follow a reload).
    pub(crate) fn with_memory(mut self, memory: Option<MemoryPressure>) -> Self {
        self.memory = memory;
        self
    }

    /// The config last applied.
    pub(crate) fn config(&self) -> ShedConfig {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `new` in place, all or nothing; see [`Shedder::reload`].
    pub(crate) fn reload(&self, new: &ShedConfig) -> Result<(), ReloadError> {
        new.validate()?;
        // Held for the whole reload: two reloads never interleave.
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let old = &*current;
        if new.name != old.name {
            return Err(ReloadError::not_in_place(
                "name",
                "events, metrics and rejections are labelled with the name the layer was built with",
            ));
        }
        if std::mem::discriminant(&new.limit) != std::mem::discriminant(&old.limit) {
            return Err(ReloadError::not_in_place(
                "limit",
                "the kind of limit (fixed or which adaptive algorithm) decides what every call measures; build a new layer",
            ));
        }
        if new.max_queue_delay.is_some() != old.max_queue_delay.is_some() {
            return Err(ReloadError::not_in_place(
                "max_queue_delay",
                "whether requests wait in a queue is decided when the layer is built (its services reserve in poll_ready)",
            ));
        }
        if new.seed.is_some() && new.seed != old.seed && new.seed != Some(self.seed) {
            return Err(ReloadError::not_in_place(
                "seed",
                "the services' random streams were seeded when they were made",
            ));
        }
        match (&self.memory, &new.memory_pressure) {
            (Some(memory), Some(m)) => {
                let running = memory.config();
                if m.interval != running.interval {
                    return Err(ReloadError::not_in_place(
                        "memory_pressure.interval",
                        "the memory sampler's period is set when it starts",
                    ));
                }
                if m.rss_budget != running.rss_budget {
                    return Err(ReloadError::not_in_place(
                        "memory_pressure.rss_budget",
                        "the memory source is chosen when the sampler starts",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(ReloadError::not_in_place(
                    "memory_pressure",
                    "a running memory sampler cannot be removed; build a new layer",
                ));
            }
            // A signal given to the builder replaces `memory_pressure`, at
            // build as here.
            (None, Some(_)) if self.pressure.is_none() => {
                return Err(ReloadError::not_in_place(
                    "memory_pressure",
                    "a memory sampler cannot be added to a running layer; build a new layer",
                ));
            }
            _ => {}
        }

        let mut changed: Vec<&'static str> = Vec::new();
        let mut note = |differs: bool, field: &'static str| {
            if differs {
                changed.push(field);
            }
        };
        note(new.limit != old.limit, "limit");
        note(new.soft_limit != old.soft_limit, "soft_limit");
        note(
            new.critical_headroom != old.critical_headroom,
            "critical_headroom",
        );
        note(new.retry_after != old.retry_after, "retry_after");
        note(new.window != old.window, "window");
        note(
            new.window_min_samples != old.window_min_samples,
            "window_min_samples",
        );
        note(
            new.max_queue_delay != old.max_queue_delay,
            "max_queue_delay",
        );
        note(new.queue_capacity != old.queue_capacity, "queue_capacity");
        note(new.seed != old.seed, "seed");
        note(
            self.memory.is_some() && new.memory_pressure != old.memory_pressure,
            "memory_pressure",
        );

        // Everything is checked: apply. Each value is valid alone, so a call
        // racing the reload decides by a valid mix of old and new.
        let r = Ordering::Relaxed;
        self.soft_limit.store(new.soft_limit.unwrap_or(0), r);
        self.critical_headroom
            .store(new.critical_headroom.to_bits(), r);
        self.retry_after.store(pack_retry_after(new), r);
        self.plain.store(is_plain(new, self.pressure.is_some()), r);
        if let (Some(queue), Some(delay)) = (&self.queue, new.max_queue_delay) {
            queue.set_bounds(new.queue_capacity, delay);
        }
        if let (Some(memory), Some(m)) = (&self.memory, &new.memory_pressure) {
            memory.set_thresholds(m);
        }
        let (min, max) = new.limit.bounds();
        let (previous, limit) = match (&self.window, &new.limit) {
            (Some(window), adaptive) => window
                .reconfigure(adaptive, new.window, new.window_min_samples, &self.limit)
                // The kinds were checked equal above, and the window's
                // algorithm is of the config's kind.
                .unwrap_or_else(|| {
                    let l = self.limit.load(r);
                    (l, l)
                }),
            (None, fixed) => {
                let n = fixed.initial();
                (self.limit.swap(n, r), n)
            }
        };
        self.bounds.0.store(min, r);
        self.bounds.1.store(max, r);
        *current = new.clone();
        drop(current);
        #[cfg(feature = "metrics")]
        self.metrics.limit(limit);
        // A larger limit frees slots for waiters; a smaller one cancels
        // nothing: calls in flight finish, new ones are refused until the
        // count is under it. The grant looks at the queue under its lock
        // whether or not `waiting` reads 0 yet: a request joining now
        // either is seen there, or takes the lock after this and reads the
        // new limit in its own grant (no handshake on `waiting` needed on
        // this rare path).
        if limit > previous
            && let Some(queue) = &self.queue
        {
            queue.grant(self);
        }
        tracing::info!(
            target: TARGET_SHED,
            name = %self.name,
            changed = %if changed.is_empty() { "(nothing)".to_owned() } else { changed.join(", ") },
            limit,
            "shedder config reloaded"
        );
        // An adaptive limit's change is reported by its next completion
        // (through the throttle); a fixed limit changes only here.
        if self.window.is_none() && limit != previous {
            event::emit(|| {
                Event::new(
                    Arc::clone(&self.name),
                    EventKind::shed_limit_changed(previous, limit),
                )
            });
        }
        Ok(())
    }

    pub(crate) fn rng(&self) -> SplitMix64 {
        SplitMix64::new(derive(
            self.seed,
            self.services.fetch_add(1, Ordering::Relaxed),
        ))
    }

    /// The admission decision for a request of `priority` arriving when `n`
    /// others are in flight under `limit`. `None` admits.
    ///
    /// Every shedding signal meets here, so each is one more check that
    /// leaves the accounting around it alone.
    #[inline]
    pub(crate) fn decide(
        &self,
        n: usize,
        limit: usize,
        priority: Priority,
        rng: &mut SplitMix64,
    ) -> Option<OverloadReason> {
        if n >= limit {
            return Some(OverloadReason::HardLimit);
        }
        if priority == Priority::Critical {
            return None;
        }
        // One atomic load of the signal's cached level; Critical never
        // reaches here, so it is never shed for pressure.
        if let Some(signal) = &self.pressure
            && signal.level().sheds(priority)
        {
            return Some(OverloadReason::MemoryPressure);
        }
        let critical_headroom = f64::from_bits(self.critical_headroom.load(Ordering::Relaxed));
        if critical_headroom > 0.0 {
            let reserved = (limit as f64 * critical_headroom).ceil() as usize;
            if n + reserved >= limit {
                return Some(OverloadReason::Priority);
            }
        }
        let soft = self.soft_limit.load(Ordering::Relaxed);
        if soft != 0 && n >= soft {
            if priority == Priority::Sheddable {
                return Some(OverloadReason::Priority);
            }
            // clamp(n / soft - 1, 0, 1); n >= soft, so it is >= 0.
            let p = (n as f64 / soft as f64 - 1.0).min(1.0);
            if p > 0.0 && rng.next_f64() < p {
                return Some(OverloadReason::Probabilistic);
            }
        }
        None
    }

    /// Takes a slot if `priority` is admitted and returns the in-flight
    /// count with it (for [`permit`](Self::permit)), or says why not
    /// (uncounted: the caller passes the reason to [`reject`](Self::reject)).
    /// The fast path of every mode that does not queue.
    ///
    /// A plain shedder (a limit and nothing else) decides on the in-flight
    /// count alone, inline; every other configuration goes through
    /// [`decide`](Self::decide), out of line. Neither reads a clock.
    #[inline]
    pub(crate) fn take(
        &self,
        priority: Priority,
        rng: &mut SplitMix64,
    ) -> Result<usize, OverloadReason> {
        if !self.plain.load(Ordering::Relaxed) {
            return self.take_deciding(priority, rng);
        }
        let mut state = self.slots.load(Ordering::Relaxed);
        loop {
            let n = in_flight_of(state);
            if n >= self.limit.load(Ordering::Relaxed) {
                return Err(OverloadReason::HardLimit);
            }
            match self.take_slot(state) {
                Ok(()) => return Ok(n + 1),
                Err(current) => state = current,
            }
        }
    }

    /// [`take`](Self::take) with every shedding signal consulted.
    #[inline(never)]
    fn take_deciding(
        &self,
        priority: Priority,
        rng: &mut SplitMix64,
    ) -> Result<usize, OverloadReason> {
        let mut state = self.slots.load(Ordering::Relaxed);
        loop {
            let n = in_flight_of(state);
            let limit = self.limit.load(Ordering::Relaxed);
            if let Some(reason) = self.decide(n, limit, priority, rng) {
                return Err(reason);
            }
            match self.take_slot(state) {
                Ok(()) => return Ok(n + 1),
                Err(current) => state = current,
            }
        }
    }

    /// One slot more and one admitted more, in one step, if the word is
    /// still `state`.
    ///
    /// Orderings: the count guards no data, and the limit holds whatever
    /// the ordering (read-modify-writes of one word are totally ordered), so
    /// `Relaxed` would do for the count itself. `Acquire` on success makes
    /// the work of a permit's holder happen after the release of the slot it
    /// took (as a semaphore does), for free on x86. The queue's handshake
    /// (`release` against `WaitQueue::join`) does not involve this path.
    #[inline]
    fn take_slot(&self, state: u64) -> Result<(), u64> {
        self.slots
            .compare_exchange_weak(
                state,
                state.wrapping_add(ADMIT + 1),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .map(drop)
    }

    /// Admits a request of `priority` or rejects it, counted: the tower-free
    /// shedder's entry point.
    #[inline]
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        priority: Priority,
        rng: &mut SplitMix64,
    ) -> Result<Permit, Overloaded> {
        match self.take(priority, rng) {
            Ok(in_flight) => Ok(self.permit(in_flight)),
            Err(reason) => Err(self.reject(reason)),
        }
    }

    /// Applies the priority and band checks to a slot reserved in the queue.
    pub(crate) fn admit_reserved(
        self: &Arc<Self>,
        mut permit: Permit,
        priority: Priority,
        rng: &mut SplitMix64,
    ) -> Result<Permit, Overloaded> {
        let n = self.in_flight().saturating_sub(1);
        let limit = self.limit.load(Ordering::Relaxed);
        if let Some(reason) = self.decide(n, limit, priority, rng) {
            drop(permit); // hands the slot to the next waiter
            return Err(self.reject(reason));
        }
        self.slots.fetch_add(ADMIT, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.admitted();
        permit.in_flight = n + 1;
        if self.window.is_some() {
            permit.start = Some(self.clock.nanos());
        }
        Ok(permit)
    }

    /// A slot without a decision, for the queue: `true` if one was free.
    pub(crate) fn try_reserve(&self) -> bool {
        // SeqCst: a waiter's first look after joining must see a slot freed
        // before the releaser read `waiting` (see `release`).
        crate::sync::seq_cst_handshake();
        let mut state = self.slots.load(Ordering::SeqCst);
        loop {
            if in_flight_of(state) >= self.limit.load(Ordering::Relaxed) {
                return false;
            }
            match self.slots.compare_exchange_weak(
                state,
                state.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(current) => state = current,
            }
        }
    }

    /// The permit for a slot [`take`](Self::take) took, `in_flight` with
    /// it. Reads the clock only for an adaptive limit.
    #[inline]
    pub(crate) fn permit(self: &Arc<Self>, in_flight: usize) -> Permit {
        #[cfg(feature = "metrics")]
        self.metrics.admitted();
        Permit {
            shared: Arc::clone(self),
            start: if self.measured {
                Some(self.now())
            } else {
                None
            },
            in_flight,
        }
    }

    /// A reading of the shedder's clock. Out of line: the fixed mode's
    /// admit path, which reads none, then carries none of its code.
    #[inline(never)]
    fn now(&self) -> u64 {
        self.clock.nanos()
    }

    /// A permit for a slot already counted in `in_flight` (from the queue).
    pub(crate) fn reserved_permit(self: &Arc<Self>) -> Permit {
        Permit {
            shared: Arc::clone(self),
            start: None,
            in_flight: 0,
        }
    }

    /// Counts a rejection and builds its error. Out of line: the admit path
    /// carries none of it, and a rejection reads no clock and touches one
    /// atomic (its reason's counter, on a line of its own).
    #[cold]
    #[inline(never)]
    pub(crate) fn reject(&self, reason: OverloadReason) -> Overloaded {
        self.count_rejection(reason)
    }

    /// [`reject`](Self::reject), boxed as the layer's error: the one
    /// allocation of a rejection, made here so that the response future
    /// only hands it over.
    #[cold]
    #[inline(never)]
    pub(crate) fn reject_boxed(&self, reason: OverloadReason) -> BoxError {
        Box::new(self.count_rejection(reason))
    }

    #[inline]
    fn count_rejection(&self, reason: OverloadReason) -> Overloaded {
        self.shed.0[reason_index(reason)].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.rejected(reason);
        tracing::trace!(target: TARGET_SHED, name = %self.name, reason = reason.as_str(), "shed");
        Overloaded::new(reason)
            .with_retry_after(unpack_retry_after(self.retry_after.load(Ordering::Relaxed)))
    }

    /// Gives a slot back; in queue mode the oldest waiter gets it.
    #[inline]
    pub(crate) fn release(&self) {
        // Never below zero: only a permit (or a handed-over slot) releases,
        // once, and each holds one slot. SeqCst (the same locked
        // instruction as AcqRel on x86): in queue mode it pairs with the
        // SeqCst increment in `WaitQueue::join` and the load in
        // `hand_over`, so either we see the waiter, or the waiter sees the
        // freed slot. Its Release half pairs with `take_slot`'s Acquire.
        self.slots.fetch_sub(1, Ordering::SeqCst);
        if self.queued {
            self.hand_over();
        }
    }

    /// Queue mode: the freed slot goes to the oldest waiter, if any.
    #[inline(never)]
    fn hand_over(&self) {
        crate::sync::seq_cst_handshake();
        if let Some(queue) = &self.queue
            && self.waiting.load(Ordering::SeqCst) > 0
        {
            queue.grant(self);
        }
    }

    fn record(&self, start: u64, in_flight: usize, failed: bool) {
        let Some(window) = &self.window else { return };
        let now = self.clock.nanos();
        if let Some(closed) = window.record(
            now.saturating_sub(start),
            in_flight,
            failed,
            now,
            &self.limit,
        ) {
            let previous = closed.previous;
            if previous != closed.limit {
                tracing::debug!(
                    target: TARGET_SHED,
                    name = %self.name,
                    limit = closed.limit,
                    previous,
                    rtt_us = closed.rtt.as_micros() as u64,
                    "limit changed"
                );
                #[cfg(feature = "metrics")]
                self.metrics.limit(closed.limit);
                // A larger limit frees slots for waiters.
                if closed.limit > previous
                    && let Some(queue) = &self.queue
                    && self.waiting.load(Ordering::SeqCst) > 0
                {
                    queue.grant(self);
                }
            }
        }
        // Checked on every completion, not only at a change, so a change
        // folded by the throttle is reported by a later call.
        if event::enabled() {
            let limit = self.limit.load(Ordering::Relaxed) as u64;
            self.limit_events.observe(limit, |old, new| {
                Event::new(
                    Arc::clone(&self.name),
                    EventKind::shed_limit_changed(old as usize, new as usize),
                )
            });
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        in_flight_of(self.slots.load(Ordering::Relaxed))
    }

    pub(crate) fn stats(&self) -> ShedStats {
        let c = |r: OverloadReason| self.shed.0[reason_index(r)].load(Ordering::Relaxed);
        let slots = self.slots.load(Ordering::Relaxed);
        let in_flight = in_flight_of(slots);
        #[cfg(feature = "metrics")]
        self.metrics.in_flight(in_flight);
        ShedStats {
            in_flight,
            limit: self.limit.load(Ordering::Relaxed),
            min_limit: self.bounds.0.load(Ordering::Relaxed),
            max_limit: self.bounds.1.load(Ordering::Relaxed),
            queued: self.waiting.load(Ordering::Relaxed),
            admitted: slots >> 24,
            shed: ShedCounts {
                hard_limit: c(OverloadReason::HardLimit),
                probabilistic: c(OverloadReason::Probabilistic),
                priority: c(OverloadReason::Priority),
                queue_delay: c(OverloadReason::QueueDelay),
                queue_full: c(OverloadReason::QueueFull),
                memory_pressure: c(OverloadReason::MemoryPressure),
            },
            rtt_min: self.window.as_ref().and_then(Window::min_rtt),
            rtt_recent: self.window.as_ref().and_then(Window::recent_rtt),
            rtt_long: self.window.as_ref().and_then(Window::long_rtt),
            pressure: self
                .pressure
                .as_ref()
                .map_or(PressureLevel::Normal, |s| s.level()),
        }
    }
}

/// The tower-free shedder: admission decisions and in-flight accounting.
///
/// Clones share one state. [`ShedLayer`](crate::ShedLayer) is a thin shell
/// around it; [`ShedLayer::shedder`](crate::ShedLayer::shedder) returns the
/// one a layer uses (so a builder's every option, a clock and a pressure
/// signal together included, reaches a `Shedder` that way).
///
/// The probabilistic band draws from a generator the caller owns (one per
/// thread or task, so drawing writes nothing shared): seawall's
/// [`SplitMix64`].
///
/// ```
/// use seawall_core::rand::SplitMix64;
/// use seawall_shed::{OverloadReason, Priority, ShedConfig, Shedder};
///
/// let shedder = Shedder::new(&ShedConfig::new().max_in_flight(1))?;
/// let mut rng = SplitMix64::new(1);
/// let permit = shedder.try_acquire(Priority::Normal, &mut rng).expect("a free slot");
/// let refused = shedder.try_acquire(Priority::Critical, &mut rng).unwrap_err();
/// assert_eq!(refused.reason(), OverloadReason::HardLimit);
/// permit.finish(seawall_core::Outcome::Success); // or just drop it
/// assert_eq!(shedder.stats().in_flight, 0);
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Shedder {
    pub(crate) shared: Arc<Shared>,
}

impl Shedder {
    /// A shedder for a validated `config`, reading tokio's clock. With
    /// [`memory_pressure`](ShedConfig::memory_pressure) set, this starts a
    /// [`MemoryPressure`](crate::MemoryPressure) sampler, so it must run
    /// inside a tokio runtime.
    pub fn new(config: &ShedConfig) -> Result<Self, ConfigError> {
        Shedder::with_clock(config, Clock::default())
    }

    /// [`new`](Shedder::new), with an adaptive limit reading `clock` (RTTs
    /// and window ends); see [`ShedBuilder::clock`](crate::ShedBuilder::clock).
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_core::{Clock, Outcome, rand::SplitMix64};
    /// use seawall_shed::{Aimd, Limit, Priority, ShedConfig, Shedder};
    ///
    /// // No runtime: the manual clock is moved by hand.
    /// let (clock, hand) = Clock::manual();
    /// let config = ShedConfig::new()
    ///     .limit(Limit::Aimd(Aimd::new().initial(2).min(1).max(100)))
    ///     .window_min_samples(1);
    /// let shedder = Shedder::with_clock(&config, clock)?;
    /// let permit = shedder.try_acquire(Priority::Normal, &mut SplitMix64::new(1)).unwrap();
    /// hand.advance(Duration::from_secs(1)); // a 1s call closes the 1s window
    /// permit.finish(Outcome::Success);
    /// assert_eq!(shedder.limit(), 3, "AIMD grows by one at half use");
    /// assert_eq!(shedder.stats().rtt_recent, Some(Duration::from_secs(1)));
    /// # Ok::<(), seawall_core::ConfigError>(())
    /// ```
    pub fn with_clock(config: &ShedConfig, clock: Clock) -> Result<Self, ConfigError> {
        config.validate()?;
        let (pressure, memory) = crate::config::pressure_from(config, None)?;
        Ok(Shedder {
            shared: Arc::new(Shared::new(config, pressure, clock).with_memory(memory)),
        })
    }

    /// A shedder for a validated `config` that also sheds by `signal`'s
    /// level (instead of `config.memory_pressure`).
    pub fn with_pressure(
        config: &ShedConfig,
        signal: impl PressureSignal,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Shedder {
            shared: Arc::new(Shared::new(
                config,
                Some(Arc::new(signal)),
                Clock::default(),
            )),
        })
    }

    /// Admits a request of `priority` or says why not. Never waits (the
    /// queue mode is the tower layer's); allocates nothing either way.
    #[inline]
    pub fn try_acquire(
        &self,
        priority: Priority,
        rng: &mut SplitMix64,
    ) -> Result<Permit, Overloaded> {
        self.shared.try_acquire(priority, rng)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ShedStats {
        self.shared.stats()
    }

    /// The config the shedder runs with: the one it was built from, or the
    /// last one [`reload`](Self::reload) applied.
    pub fn config(&self) -> ShedConfig {
        self.shared.config()
    }

    /// Applies a new config to this running shedder, keeping its state:
    /// every clone, every service of its layer and every call in flight
    /// sees it, and no call fails because of it.
    ///
    /// - **All or nothing.** `config` is validated as a build validates it
    ///   ([`ReloadError::Invalid`]); a change that cannot apply in place is
    ///   refused ([`ReloadError::NotInPlace`], naming the field). On any
    ///   error nothing changes.
    /// - **Takes effect for the next call:** a fixed limit; an adaptive
    ///   limit's parameters and its `[min, max]` (the current estimate is
    ///   kept, clamped into the new range; `initial` is not used); `window`
    ///   and `window_min_samples` (the window in progress keeps its end);
    ///   `soft_limit`, `critical_headroom`, `retry_after`;
    ///   `max_queue_delay` and `queue_capacity` for requests that join the
    ///   queue from now on; the memory-pressure thresholds
    ///   (`shed_sheddable_at`, `shed_normal_at`, `hysteresis`) from the
    ///   sampler's next sample.
    /// - **A lower limit cancels nothing:** calls in flight finish, new ones
    ///   are refused until the count is under the new limit; a higher one
    ///   hands freed slots to queued requests at once.
    /// - **Kept:** the in-flight count and every permit, the queue's waiters
    ///   (a smaller `queue_capacity` turns none away; a waiter keeps the
    ///   deadline it was given, and is refused at its grant if it waited
    ///   longer than a lowered `max_queue_delay`), the adaptive estimate and
    ///   the RTTs measured, the counters of [`stats`](Self::stats), the
    ///   memory-pressure level.
    /// - **Not in place** ([`ReloadError::NotInPlace`]): `name`; the kind of
    ///   `limit` (fixed, or another adaptive algorithm); turning the queue on
    ///   or off (`max_queue_delay` `None` ⇄ `Some`); a different `seed`;
    ///   adding or removing `memory_pressure`, or changing its `interval` or
    ///   `rss_budget` (the sampler's period and source are set when it
    ///   starts). With a pressure signal given to the builder,
    ///   `memory_pressure` is ignored, as it is by the build.
    ///
    /// A call racing the reload may decide by some new values and some old
    /// ones; each is valid alone. One `INFO` event (target `seawall_shed`,
    /// fields `name`, `changed`, `limit`) reports the reload.
    ///
    /// ```
    /// use seawall_shed::{Aimd, Limit, Priority, ShedConfig, Shedder};
    /// use seawall_core::rand::SplitMix64;
    ///
    /// let config = ShedConfig::new().limit(Limit::Fixed(2));
    /// let shedder = Shedder::new(&config).unwrap();
    /// let mut rng = SplitMix64::new(1);
    /// let a = shedder.try_acquire(Priority::Normal, &mut rng).unwrap();
    /// let b = shedder.try_acquire(Priority::Normal, &mut rng).unwrap();
    ///
    /// // Lower the limit below the calls in flight: they go on; new ones wait their turn.
    /// shedder.reload(&config.clone().limit(Limit::Fixed(1))).unwrap();
    /// assert_eq!(shedder.in_flight(), 2);
    /// drop(a);
    /// assert!(shedder.try_acquire(Priority::Normal, &mut rng).is_err(), "1 in flight, limit 1");
    /// drop(b);
    /// assert!(shedder.try_acquire(Priority::Normal, &mut rng).is_ok());
    ///
    /// // Another kind of limit cannot apply in place: nothing changes.
    /// let err = shedder.reload(&config.clone().limit(Limit::Aimd(Aimd::new()))).unwrap_err();
    /// assert_eq!(err.not_in_place_field(), Some("limit"));
    /// assert_eq!(shedder.limit(), 1);
    /// ```
    pub fn reload(&self, config: &ShedConfig) -> Result<(), ReloadError> {
        self.shared.reload(config)
    }

    /// The limit in force now.
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Relaxed)
    }

    /// The configured limit mode's bounds `(min, max)`.
    pub fn bounds(&self) -> (usize, usize) {
        (
            self.shared.bounds.0.load(Ordering::Relaxed),
            self.shared.bounds.1.load(Ordering::Relaxed),
        )
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }
}

/// One admitted request's slot. Dropping it gives the slot back.
///
/// With an adaptive [`Limit`](crate::Limit), [`finish`](Permit::finish) also
/// records the call's RTT and outcome (a permit dropped without `finish`
/// records nothing: a cancelled call says nothing about latency).
#[derive(Debug)]
pub struct Permit {
    shared: Arc<Shared>,
    /// The clock reading at admission, when an adaptive limit measures.
    start: Option<u64>,
    in_flight: usize,
}

impl Permit {
    /// Ends the call: for an adaptive limit, records its RTT (a
    /// [`Outcome::Failure`] counts as a drop; an [`Outcome::Ignore`] records
    /// nothing); then releases the slot.
    pub fn finish(mut self, outcome: Outcome) {
        if let Some(start) = self.start.take()
            && outcome != Outcome::Ignore
        {
            self.shared
                .record(start, self.in_flight, outcome == Outcome::Failure);
        }
    }

    /// `true` when [`finish`](Permit::finish) records something (an
    /// adaptive limit measures this call).
    #[inline]
    pub fn measures(&self) -> bool {
        self.start.is_some()
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.shared.release();
    }
}

/// A reload of a shedder whose memory sampler it started from its config
/// (which an integration test cannot give a fake source).
#[cfg(all(test, not(seawall_loom)))]
mod reload_tests {
    use std::sync::atomic::AtomicU64 as Used;

    use super::*;
    use crate::pressure::{MemoryPressureConfig, MemorySample, MemorySource};

    #[derive(Clone)]
    struct Fake(Arc<Used>);

    impl MemorySource for Fake {
        fn sample(&mut self) -> std::io::Result<MemorySample> {
            Ok(MemorySample {
                used: self.0.load(Ordering::Relaxed),
                limit: 1000,
            })
        }
    }

    #[test]
    fn retry_after_packs_and_unpacks_within_its_bounds() {
        for d in [
            Duration::from_millis(1),
            Duration::from_millis(100),
            Duration::new(59, 999_999_999),
            seawall_core::config::MAX_DURATION,
        ] {
            let config = ShedConfig::new().retry_after(d);
            assert_eq!(unpack_retry_after(pack_retry_after(&config)), d);
        }
        let zero = ShedConfig::new().retry_after(Duration::ZERO);
        assert_eq!(
            unpack_retry_after(pack_retry_after(&zero)),
            ShedConfig::MIN_RETRY_AFTER
        );
        let huge = ShedConfig::new().retry_after(Duration::MAX);
        assert_eq!(
            unpack_retry_after(pack_retry_after(&huge)),
            seawall_core::config::MAX_DURATION
        );
    }

    #[tokio::test(start_paused = true)]
    async fn memory_thresholds_apply_from_the_next_sample_and_the_sampler_is_kept() {
        let memory_config = MemoryPressureConfig::new().interval(Duration::from_secs(1));
        let config = ShedConfig::new().memory_pressure(memory_config.clone());
        let memory =
            MemoryPressure::with_source(&memory_config, Fake(Arc::new(Used::new(750)))).unwrap();
        let shedder = Shedder {
            shared: Arc::new(
                Shared::new(&config, Some(Arc::new(memory.clone())), Clock::default())
                    .with_memory(Some(memory.clone())),
            ),
        };
        let mut rng = SplitMix64::new(1);
        let refused = shedder
            .try_acquire(Priority::Sheddable, &mut rng)
            .unwrap_err();
        assert_eq!(refused.reason(), OverloadReason::MemoryPressure);

        let raised = memory_config.clone().shed_sheddable_at(0.85);
        shedder
            .reload(&config.clone().memory_pressure(raised.clone()))
            .unwrap();
        assert_eq!(memory.config(), raised);
        assert_eq!(
            shedder.stats().pressure,
            PressureLevel::Elevated,
            "the level is kept until the next sample"
        );
        tokio::time::sleep(Duration::from_millis(1_001)).await;
        assert_eq!(shedder.stats().pressure, PressureLevel::Normal);
        assert!(shedder.try_acquire(Priority::Sheddable, &mut rng).is_ok());

        for (new, field) in [
            (
                config
                    .clone()
                    .memory_pressure(raised.clone().interval(Duration::from_secs(2))),
                "memory_pressure.interval",
            ),
            (
                config
                    .clone()
                    .memory_pressure(raised.clone().rss_budget(1 << 30)),
                "memory_pressure.rss_budget",
            ),
            (ShedConfig::new(), "memory_pressure"),
        ] {
            let err = shedder.reload(&new).unwrap_err();
            assert_eq!(err.not_in_place_field(), Some(field), "{err}");
            assert_eq!(memory.config(), raised);
        }
    }
}

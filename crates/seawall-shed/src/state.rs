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
use std::sync::atomic::Ordering;
use std::time::Duration;

use seawall_core::event::{self, Event, EventKind, ValueThrottle};
use seawall_core::names::TARGET_SHED;
use seawall_core::rand::{SplitMix64, derive, random_seed};
use seawall_core::{BoxError, Clock, ConfigError, Outcome, OverloadReason, Overloaded};

use crate::config::ShedConfig;
use crate::pressure::{PressureLevel, PressureSignal};
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
    /// is `in_flight < limit` alone, for every priority.
    plain: bool,
    /// `queue.is_some()`, next to the other per-call fields.
    pub(crate) queued: bool,
    /// `window.is_some()`: an adaptive limit measures every call.
    measured: bool,
    /// 0 when there is no soft limit.
    soft_limit: usize,
    critical_headroom: f64,
    retry_after: Duration,
    /// Consulted on every decision: one atomic load behind it.
    pressure: Option<Arc<dyn PressureSignal>>,
    window: Option<Window>,
    pub(crate) queue: Option<WaitQueue>,
    bounds: (usize, usize),
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
            plain: config.soft_limit.unwrap_or(0) == 0
                && config.critical_headroom <= 0.0
                && pressure.is_none(),
            soft_limit: config.soft_limit.unwrap_or(0),
            critical_headroom: config.critical_headroom,
            // Validated to at least 1ms; the floor keeps a rejection's hint
            // above zero even for a config that skipped validation.
            retry_after: config.retry_after.max(ShedConfig::MIN_RETRY_AFTER),
            bounds: (min, max),
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
        if self.critical_headroom > 0.0 {
            let reserved = (limit as f64 * self.critical_headroom).ceil() as usize;
            if n + reserved >= limit {
                return Some(OverloadReason::Priority);
            }
        }
        let soft = self.soft_limit;
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
        if !self.plain {
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
        Overloaded::new(reason).with_retry_after(self.retry_after)
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
        if let Some(closed) = window.record(now.saturating_sub(start), in_flight, failed, now) {
            let previous = self.limit.swap(closed.limit, Ordering::Relaxed);
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
            min_limit: self.bounds.0,
            max_limit: self.bounds.1,
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
        let pressure = crate::config::pressure_from(config, None)?;
        Ok(Shedder {
            shared: Arc::new(Shared::new(config, pressure, clock)),
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

    /// The limit in force now.
    pub fn limit(&self) -> usize {
        self.shared.limit.load(Ordering::Relaxed)
    }

    /// The configured limit mode's bounds `(min, max)`.
    pub fn bounds(&self) -> (usize, usize) {
        self.shared.bounds
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

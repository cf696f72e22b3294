//! [`LoopBudget`]: a smooth rate budget for plain loops, no tower needed.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use seawall_core::event::{Event, EventKind, Throttle};
use seawall_core::names::TARGET_BUDGET;
use seawall_core::time::nanos;
use seawall_core::{BudgetExhausted, Clock, ConfigError, ReloadError};
use tokio::time::Instant;

use crate::backoff::Schedule;
use crate::config::{LoopBudgetBuilder, LoopBudgetConfig};
use crate::gcra::{Gcra, Rate, RateCell, Reservation};
#[cfg(feature = "quota")]
use crate::quota::Policy;

/// The highest rate per second a budget counts: one token per nanosecond.
const MAX_PER_SECOND: u32 = 1_000_000_000;

/// A rate budget for a loop: at most `rate` iterations per `per`, in bursts
/// of at most `burst`, refilled smoothly (GCRA on one atomic).
///
/// A `LoopBudget` is a cheap handle (`Arc` inside): clone it into as many
/// tasks as you like; all clones share one budget, one backoff schedule and
/// one set of counters. It needs no background task.
///
/// # The loop pattern
///
/// ```
/// use seawall_budget::LoopBudget;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let budget = LoopBudget::new(100); // 100 iterations per second, bursts of 10
/// let mut done = 0;
/// while done < 25 {
///     if budget.try_consume(1).is_ok() {
///         done += 1; // one iteration's work
///     } else {
///         budget.backoff().await; // 10ms, 15ms, 22.5ms… until tokens are back
///     }
/// }
/// let stats = budget.stats();
/// assert_eq!(stats.iterations, 25);
/// assert!(stats.exhausted > 0 && stats.backoff_time > std::time::Duration::ZERO);
/// # }
/// ```
///
/// [`can_proceed`](Self::can_proceed) + [`consume`](Self::consume) is the
/// same pattern split in two (check, then account for the work done); from
/// one task it is exact, but two tasks may both see the last token, so from
/// many tasks prefer [`try_consume`](Self::try_consume), which checks and
/// takes in one atomic step.
///
/// # Time
///
/// The budget reads a [`Clock`], once per call: tokio's by default, so under
/// paused time (tests) it follows the paused clock exactly. Give it another
/// with [`LoopBudgetBuilder::clock`]: [`Clock::manual`] to drive refill and
/// refusals by hand with no runtime, `Clock::tsc` for the cheapest
/// reading. [`backoff`](Self::backoff) always sleeps on tokio's timer (its
/// delay is a schedule, not a reading of the clock).
///
/// ```
/// use std::time::Duration;
/// use seawall_budget::LoopBudget;
/// use seawall_core::Clock;
///
/// let (clock, hand) = Clock::manual();
/// let budget = LoopBudget::builder().rate(10).burst(1).clock(clock).build().unwrap();
/// assert!(budget.try_consume(1).is_ok());
/// let refused = budget.try_consume(1).unwrap_err();
/// assert_eq!(refused.retry_after(), Duration::from_millis(100));
/// hand.advance(Duration::from_millis(100));
/// assert!(budget.try_consume(1).is_ok());
/// ```
#[derive(Clone)]
pub struct LoopBudget {
    inner: Arc<Inner>,
}

struct Inner {
    hot: Hot,
    // Read once per call; replaced by a reload (see `RateCell`).
    rate: RateCell,
    clock: Clock,
    // Fixed for the budget's life (it labels events and metrics).
    name: Arc<str>,
    // Whether it was built to state its quota (the policy, with `quota`).
    #[cfg(not(feature = "quota"))]
    advertise: bool,
    exhausted: AtomicU64,
    // Folds refusals into at most one event a second.
    events: Throttle,
    backoffs: AtomicU64,
    backoff_nanos: AtomicU64,
    // Made only for a budget that advertises its quota.
    #[cfg(feature = "quota")]
    policy: Option<Policy>,
    // What a reload may change off the call path: read by `backoff`,
    // `config` and `reload` (which holds it while it rescales).
    live: Mutex<Live>,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

struct Live {
    config: LoopBudgetConfig,
    schedule: Schedule,
}

/// What every admitted call writes or reads, on one cache line of its own:
/// under contention only this line moves between cores, and the read-only
/// rate and clock stay shared in every core's cache.
#[repr(align(64))]
struct Hot {
    gcra: Gcra,
    iterations: AtomicU64,
    // Backoff steps taken since the budget last admitted (read per call,
    // written only by `backoff` and the first admission after it).
    step: AtomicU32,
}

#[cfg(feature = "metrics")]
struct Metrics {
    admitted: metrics::Counter,
    exhausted: metrics::Counter,
}

/// A snapshot of a [`LoopBudget`]'s (or a [`BudgetLayer`](crate::BudgetLayer)'s) counters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BudgetStats {
    /// Tokens admitted: iterations (or calls) let through, counting `n` for
    /// `consume(n)` / `try_consume(n)`.
    pub iterations: u64,
    /// Times the budget was found spent: a `false` from `can_proceed`, an
    /// `Err` from `try_consume`, a rejected call, or a call that had to wait.
    pub exhausted: u64,
    /// Calls to [`LoopBudget::backoff`].
    pub backoffs: u64,
    /// Total time slept in [`LoopBudget::backoff`].
    pub backoff_time: Duration,
    /// Whole tokens available now.
    pub available: u32,
    /// Share of the burst in use now, `0.0` (full budget) to `1.0` (spent).
    pub utilisation: f64,
}

impl fmt::Debug for LoopBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopBudget")
            .field("config", &self.config())
            .field("stats", &self.stats())
            .finish()
    }
}

impl LoopBudget {
    /// `per_second` iterations per second, bursts of a tenth of that (at
    /// least 1), default backoff (10ms ×1.5, capped at 1s).
    ///
    /// Never panics and never builds a budget its own config would refuse:
    /// the rate is clamped to `1..=1_000_000_000` per second (a budget counts
    /// at most one token per nanosecond). Use [`LoopBudget::builder`] to have
    /// a rate out of range reported as a [`ConfigError`] instead.
    pub fn new(per_second: u32) -> LoopBudget {
        let rate = per_second.clamp(1, MAX_PER_SECOND);
        LoopBudget::from_valid(
            LoopBudgetConfig {
                rate,
                ..LoopBudgetConfig::default()
            },
            Clock::default(),
        )
    }

    /// A builder; see [`LoopBudgetConfig`] for the fields and defaults.
    pub fn builder() -> LoopBudgetBuilder {
        LoopBudgetBuilder::new()
    }

    /// A budget from a config, validated first.
    pub fn from_config(config: &LoopBudgetConfig) -> Result<LoopBudget, ConfigError> {
        config.validate()?;
        Ok(LoopBudget::from_valid(config.clone(), Clock::default()))
    }

    fn preset(name: &str, rate: u32) -> LoopBudget {
        LoopBudget::from_valid(
            LoopBudgetConfig {
                name: name.to_owned(),
                rate,
                ..LoopBudgetConfig::default()
            },
            Clock::default(),
        )
    }

    /// 1000 iterations/s, bursts of 100, named `"network"`: a loop that
    /// reads or writes sockets.
    pub fn for_network() -> LoopBudget {
        Self::preset("network", 1000)
    }

    /// 500 iterations/s, bursts of 50, named `"consensus"`: rounds of a
    /// consensus or replication protocol.
    pub fn for_consensus() -> LoopBudget {
        Self::preset("consensus", 500)
    }

    /// 200 iterations/s, bursts of 20, named `"discovery"`: peer discovery,
    /// gossip, health probing.
    pub fn for_discovery() -> LoopBudget {
        Self::preset("discovery", 200)
    }

    /// 100 iterations/s, bursts of 10, named `"maintenance"`: compaction,
    /// cleanup, periodic housekeeping.
    pub fn for_maintenance() -> LoopBudget {
        Self::preset("maintenance", 100)
    }

    // Every value is clamped into range by `Rate` and `Schedule`, so this
    // cannot fail or panic; callers validate first to report bad values.
    pub(crate) fn from_valid(config: LoopBudgetConfig, clock: Clock) -> LoopBudget {
        LoopBudget::from_valid_advertised(config, clock, false)
    }

    /// [`from_valid`](Self::from_valid), for a budget that reports its
    /// quota (`advertise`) when a layer listens.
    pub(crate) fn from_valid_advertised(
        config: LoopBudgetConfig,
        clock: Clock,
        advertise: bool,
    ) -> LoopBudget {
        let rate = Rate::new(config.rate, config.per, config.effective_burst());
        let schedule = Schedule::new(
            config.backoff_initial,
            config.backoff_multiplier,
            config.backoff_max,
        );
        #[cfg(feature = "metrics")]
        let metrics = {
            use seawall_core::names::{BUDGET_ADMITTED_TOTAL, BUDGET_EXHAUSTED_TOTAL, LABEL_NAME};
            Metrics {
                admitted: metrics::counter!(BUDGET_ADMITTED_TOTAL, LABEL_NAME => config.name.clone()),
                exhausted: metrics::counter!(BUDGET_EXHAUSTED_TOTAL, LABEL_NAME => config.name.clone()),
            }
        };
        LoopBudget {
            inner: Arc::new(Inner {
                hot: Hot {
                    gcra: Gcra::new(),
                    iterations: AtomicU64::new(0),
                    step: AtomicU32::new(0),
                },
                rate: RateCell::new(rate),
                events: Throttle::new(clock.clone()),
                clock,
                name: Arc::from(config.name.as_str()),
                #[cfg(not(feature = "quota"))]
                advertise,
                exhausted: AtomicU64::new(0),
                backoffs: AtomicU64::new(0),
                backoff_nanos: AtomicU64::new(0),
                #[cfg(feature = "quota")]
                policy: advertise.then(|| Policy::new(&config.name, config.rate, config.per)),
                live: Mutex::new(Live { config, schedule }),
                #[cfg(feature = "metrics")]
                metrics,
            }),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> LoopBudgetConfig {
        self.live().config.clone()
    }

    /// Whether the budget states its quota (fixed when it is built).
    pub(crate) fn advertises(&self) -> bool {
        #[cfg(feature = "quota")]
        {
            self.inner.policy.is_some()
        }
        #[cfg(not(feature = "quota"))]
        {
            self.inner.advertise
        }
    }

    /// The budget's name (it cannot change).
    pub(crate) fn name(&self) -> &str {
        &self.inner.name
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        // Poisoned only by a panic under the lock, and nothing under it
        // panics; the data stays whole either way.
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `config` to this running budget and every clone of it (the
    /// services of a [`BudgetLayer`](crate::BudgetLayer) built on it
    /// included): all of it or, on an error, none of it.
    ///
    /// - **From the next call**: `rate`, `per`, `burst` and the backoff
    ///   schedule (`backoff_initial`, `backoff_multiplier`, `backoff_max`).
    /// - **Kept**: the budget's state. The tokens available at the reload
    ///   stay available, capped at the new burst
    ///   (`available' = min(available, burst')`); tokens owed (a budget in
    ///   debt) stay owed. So spent tokens stay spent; a higher rate pays
    ///   back what is owed sooner from the reload on; a smaller burst cuts
    ///   the bank down to it at once; a larger burst hands out nothing at
    ///   once but fills up to it at the new rate. Counters, the backoff
    ///   step, and tasks waiting for a token are kept (a task already
    ///   parked wakes when its token was due under the old rate, then takes
    ///   it under the new one).
    /// - **Not in place** ([`ReloadError::NotInPlace`]): `name` (it labels
    ///   events and metric series).
    /// - A call racing the reload is judged by the old rate or the new one,
    ///   whole, never a mix of the two; its token may be charged in the
    ///   other rate's units (off by at most the difference of one token's
    ///   worth at the two rates, for each call racing the reload).
    ///
    /// A config [`validate`](LoopBudgetConfig::validate) refuses is
    /// [`ReloadError::Invalid`]. A reload emits one `info` event (target
    /// `seawall_budget`) naming the budget and the fields that changed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_budget::{LoopBudget, LoopBudgetConfig};
    /// use seawall_core::{Clock, ReloadError};
    ///
    /// let (clock, hand) = Clock::manual();
    /// let budget = LoopBudget::builder().rate(10).burst(4).clock(clock).build().unwrap();
    /// budget.try_consume(3).unwrap(); // 1 of 4 left
    ///
    /// // 100/s instead of 10/s, bursts of 2: the token left stays, and the
    /// // next one comes 10ms later instead of 100ms.
    /// let faster = budget.config().rate(100).burst(2);
    /// budget.reload(&faster).unwrap();
    /// assert_eq!(budget.available(), 1);
    /// hand.advance(Duration::from_millis(10));
    /// assert_eq!(budget.available(), 2);
    ///
    /// // A bad config changes nothing.
    /// let err = budget.reload(&faster.clone().rate(0)).unwrap_err();
    /// assert!(matches!(err, ReloadError::Invalid(_)));
    /// assert_eq!(budget.config().rate, 100);
    /// ```
    pub fn reload(&self, config: &LoopBudgetConfig) -> Result<(), ReloadError> {
        config.validate()?;
        if config.name != *self.inner.name {
            return Err(ReloadError::not_in_place(
                "name",
                "the name labels the budget's events and metric series",
            ));
        }
        let mut live = self.live();
        let changed = changed_fields(&live.config, config);
        self.replace_rate(Rate::new(config.rate, config.per, config.effective_burst()));
        live.schedule = Schedule::new(
            config.backoff_initial,
            config.backoff_multiplier,
            config.backoff_max,
        );
        #[cfg(feature = "quota")]
        if let Some(policy) = &self.inner.policy {
            policy.update(config.rate, config.per);
        }
        live.config = config.clone();
        drop(live);
        tracing::info!(
            target: TARGET_BUDGET,
            layer = "budget",
            name = %self.inner.name,
            changed = %changed.join(", "),
            rate = config.rate,
            per = ?config.per,
            burst = config.effective_burst(),
            "budget reloaded"
        );
        Ok(())
    }

    /// The rate and the budget's config change together, for a layer's
    /// reload (which checked `config` and owns everything else).
    pub(crate) fn reload_rate(
        &self,
        rate: u32,
        per: Duration,
        burst: Option<u32>,
    ) -> Vec<&'static str> {
        let mut live = self.live();
        let mut next = live.config.clone();
        next.rate = rate;
        next.per = per;
        next.burst = burst;
        let changed = changed_fields(&live.config, &next);
        self.replace_rate(Rate::new(rate, per, next.effective_burst()));
        #[cfg(feature = "quota")]
        if let Some(policy) = &self.inner.policy {
            policy.update(rate, per);
        }
        live.config = next;
        changed
    }

    /// Swaps the rate and rescales the cell to it at one clock reading.
    fn replace_rate(&self, rate: Rate) {
        let gcra = &self.inner.hot.gcra;
        self.inner.rate.replace(rate, |old, new| {
            if old != new {
                gcra.rescale(old, new, self.read_clock());
            }
        });
    }

    /// The time between two tokens.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.inner.rate.load().emission())
    }

    /// Most tokens held at once.
    pub fn burst(&self) -> u32 {
        self.inner.rate.load().burst()
    }

    /// The clock the budget reads.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// A reading of the clock, noted for [`can_proceed`](Self::can_proceed)'s
    /// read-free answer.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        let now = self.read_clock();
        self.inner.hot.gcra.note_now(now);
        now
    }

    /// A reading of the clock, not noted: the services' path, which never
    /// asks `can_proceed` and so need not write it down.
    #[inline]
    pub(crate) fn read_clock(&self) -> u64 {
        self.inner.clock.nanos()
    }

    /// The tokio instant at which the clock reads `nanos`, for a timer.
    /// `nanos` may be a saturated sum (a budget in deep debt); the clock
    /// saturates too: a point that far away is "never" to a timer.
    pub(crate) fn instant_at(&self, nanos: u64) -> Instant {
        self.inner.clock.instant_at(nanos)
    }

    /// Whether one token is available now. Does not take it; a `true`
    /// resets the backoff schedule, a `false` counts as an exhausted event.
    ///
    /// Reads the clock only when the answer is not already certain from the
    /// last reading (tokens only accrue as time passes), so in a loop with
    /// room to spare `can_proceed` + `consume(1)` costs one clock read.
    #[inline]
    pub fn can_proceed(&self) -> bool {
        let inner = &self.inner;
        let rate = inner.rate.load();
        let ok = inner.hot.gcra.check_seen(&rate, 1)
            || inner.hot.gcra.check(&rate, 1, self.now()).is_ok();
        if ok {
            self.recovered();
        } else {
            self.note_exhausted();
        }
        ok
    }

    /// Accounts for `n` iterations of work, whether or not the budget had
    /// room: an overspent budget goes into debt and admits nothing until it
    /// is paid back, so the long-run rate still holds.
    #[inline]
    pub fn consume(&self, n: u32) {
        self.inner
            .hot
            .gcra
            .take(&self.inner.rate.load(), n, self.now());
        self.note_admitted(n);
    }

    /// Takes `n` tokens if they are all available now; otherwise takes none
    /// and says when they will be (`retry_after`). A request for more than
    /// [`burst`](Self::burst) tokens is never admitted. Allocates nothing,
    /// either way.
    #[inline]
    pub fn try_consume(&self, n: u32) -> Result<(), BudgetExhausted> {
        self.try_take_at(n, self.now())
            .map_err(|wait| BudgetExhausted::new(Duration::from_nanos(wait)))
    }

    /// One call's token, as a service takes it: one clock read, one
    /// compare-exchange, and (feature `quota`) the quota reported to a
    /// layer that listens. Returns the wait in nanoseconds when refused.
    #[inline]
    pub(crate) fn take_for_call(&self) -> Result<(), u64> {
        let now = self.read_clock();
        let taken = self.try_take_at(1, now);
        #[cfg(feature = "quota")]
        if seawall_core::quota::is_observed() {
            self.report_quota(now);
        }
        taken
    }

    /// Reports the quota at `now` to a layer that listens
    /// ([`seawall_core::quota`]).
    #[cfg(feature = "quota")]
    fn report_quota(&self, now: u64) {
        if let Some(policy) = &self.inner.policy {
            policy.report(&self.inner.hot.gcra, &self.inner.rate.load(), now);
        }
    }

    /// `try_consume` at a known time, returning the wait in nanoseconds.
    #[inline]
    pub(crate) fn try_take_at(&self, n: u32, now: u64) -> Result<(), u64> {
        match self
            .inner
            .hot
            .gcra
            .try_take(&self.inner.rate.load(), n, now)
        {
            Ok(()) => {
                self.note_admitted(n);
                self.recovered();
                Ok(())
            }
            Err(wait) => {
                self.note_exhausted();
                Err(wait)
            }
        }
    }

    /// Like `try_take_at`, without counting a refusal (a waiting service
    /// counts one per wait, not one per poll), keeping what was taken as a
    /// [`Reservation`] that [`refund`](Self::refund) may give back.
    #[inline]
    pub(crate) fn try_reserve_quiet(&self, n: u32, now: u64) -> Result<Reservation, u64> {
        let r = self
            .inner
            .hot
            .gcra
            .try_reserve(&self.inner.rate.load(), n, now);
        if r.is_ok() {
            self.note_admitted(n);
            self.recovered();
        }
        r
    }

    /// Gives back what is still owed of a reservation not used (a reserved
    /// service dropped): its tokens less the time they were held, so never
    /// a token the refill has already replaced (see [`Gcra::refund`]). The
    /// reservation's tokens no longer count as iterations.
    pub(crate) fn refund(&self, reservation: Reservation) {
        self.inner
            .hot
            .gcra
            .refund(&self.inner.rate.load(), reservation, self.now());
        self.inner
            .hot
            .iterations
            .fetch_sub(u64::from(reservation.n()), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn note_admitted(&self, n: u32) {
        self.inner
            .hot
            .iterations
            .fetch_add(u64::from(n), Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.inner.metrics.admitted.increment(u64::from(n));
    }

    pub(crate) fn note_exhausted(&self) {
        self.inner.exhausted.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.inner.metrics.exhausted.increment(1);
        let name = &self.inner.name;
        self.inner
            .events
            .note(|n| Event::new(name.clone(), EventKind::budget_exhausted(n)));
    }

    // Only reads the shared step when nothing changed, so a busy budget's
    // success path does not write this cache line.
    #[inline]
    fn recovered(&self) {
        if self.inner.hot.step.load(Ordering::Relaxed) != 0 {
            self.reset_backoff();
        }
    }

    #[cold]
    fn reset_backoff(&self) {
        let steps = self.inner.hot.step.swap(0, Ordering::Relaxed);
        if steps != 0 {
            tracing::debug!(
                target: TARGET_BUDGET,
                name = %self.inner.name,
                backoff_steps = steps,
                "budget admits again; backoff reset"
            );
        }
    }

    /// The delay the next [`backoff`](Self::backoff) will sleep.
    pub fn next_backoff(&self) -> Duration {
        let schedule = self.live().schedule;
        schedule.delay(self.inner.hot.step.load(Ordering::Relaxed))
    }

    /// Sleeps for the next backoff delay and returns it: 10ms, 15ms, 22.5ms,
    /// … (×1.5 by default), capped at `backoff_max`. The schedule is shared
    /// by all clones and goes back to the start as soon as the budget admits
    /// again (`can_proceed` true or `try_consume` Ok).
    pub async fn backoff(&self) -> Duration {
        let inner = &self.inner;
        // A copy: the lock is not held across the sleep.
        let schedule = self.live().schedule;
        // Do not advance past the cap, so the counter never wraps.
        let step = inner
            .hot
            .step
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(if schedule.is_capped(s) { s } else { s + 1 })
            })
            .unwrap_or_else(|s| s);
        let delay = schedule.delay(step);
        if step == 0 {
            tracing::debug!(
                target: TARGET_BUDGET,
                name = %inner.name,
                first_delay = ?delay,
                "budget exhausted; backing off"
            );
        }
        inner.backoffs.fetch_add(1, Ordering::Relaxed);
        let nanos = nanos(delay);
        // Saturating (a wrapped total would read as almost no backoff); off
        // the hot path, as the caller is about to sleep.
        let _ = inner
            .backoff_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(nanos))
            });
        // `delay` is at most `backoff_max` (≤ MAX_DURATION once validated);
        // tokio's `sleep` saturates a deadline past its horizon in any case.
        tokio::time::sleep(delay).await;
        delay
    }

    /// Whole tokens available now.
    pub fn available(&self) -> u32 {
        self.inner
            .hot
            .gcra
            .available(&self.inner.rate.load(), self.now())
    }

    /// Share of the burst in use now: `0.0` when the budget is full, `1.0`
    /// when it is spent (or in debt).
    pub fn utilisation(&self) -> f64 {
        self.inner
            .hot
            .gcra
            .utilisation(&self.inner.rate.load(), self.now())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BudgetStats {
        let now = self.now();
        let inner = &self.inner;
        let rate = inner.rate.load();
        BudgetStats {
            iterations: inner.hot.iterations.load(Ordering::Relaxed),
            exhausted: inner.exhausted.load(Ordering::Relaxed),
            backoffs: inner.backoffs.load(Ordering::Relaxed),
            backoff_time: Duration::from_nanos(inner.backoff_nanos.load(Ordering::Relaxed)),
            available: inner.hot.gcra.available(&rate, now),
            utilisation: inner.hot.gcra.utilisation(&rate, now),
        }
    }

    /// Whether `other` is a clone of this budget (shares its state).
    pub fn same_budget(&self, other: &LoopBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// The names of the fields that differ between `a` and `b`, for the
/// reload event.
fn changed_fields(a: &LoopBudgetConfig, b: &LoopBudgetConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if a.rate != b.rate {
        changed.push("rate");
    }
    if a.per != b.per {
        changed.push("per");
    }
    if a.effective_burst() != b.effective_burst() {
        changed.push("burst");
    }
    if a.backoff_initial != b.backoff_initial {
        changed.push("backoff_initial");
    }
    if a.backoff_multiplier != b.backoff_multiplier {
        changed.push("backoff_multiplier");
    }
    if a.backoff_max != b.backoff_max {
        changed.push("backoff_max");
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_clamps_zero() {
        let b = LoopBudget::new(0);
        assert_eq!(b.config().rate, 1);
        assert_eq!(b.burst(), 1);
        assert_eq!(b.emission_interval(), Duration::from_secs(1));
    }

    #[test]
    fn presets() {
        for (b, name, rate, burst) in [
            (LoopBudget::for_network(), "network", 1000, 100),
            (LoopBudget::for_consensus(), "consensus", 500, 50),
            (LoopBudget::for_discovery(), "discovery", 200, 20),
            (LoopBudget::for_maintenance(), "maintenance", 100, 10),
        ] {
            assert_eq!(b.config().name, name);
            assert_eq!(b.config().rate, rate);
            assert_eq!(b.burst(), burst);
            assert!(b.config().validate().is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_budget() {
        let a = LoopBudget::builder().rate(10).burst(2).build().unwrap();
        let b = a.clone();
        assert!(a.same_budget(&b));
        a.try_consume(1).unwrap();
        b.try_consume(1).unwrap();
        assert!(a.try_consume(1).is_err());
        assert_eq!(b.stats().iterations, 2);
        assert_eq!(b.stats().exhausted, 1);
    }
}

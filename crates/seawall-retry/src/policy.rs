//! The retry decision, shared by a layer and all its services: whether a
//! failure may be retried, after how long, and whether attempts, deadline
//! and budget allow it.

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use seawall_core::names::TARGET_RETRY;
use seawall_core::rand::{derive, random_seed};
use seawall_core::time::nanos;
use seawall_core::{BoxError, Clock, Rejection, ReloadError};
use tokio::time::Instant;

use crate::backoff::{Backoff, Delays};
use crate::budget::RetryBudget;
use crate::config::RetryConfig;
use crate::error::{RetryError, StopReason};
use crate::hint::{Hint, MAX_HINT, RetryHint, UNBOUNDED_HINT};
use crate::stats::{Counters, RetryStats};

/// The default rule for errors: is this failure worth another attempt?
///
/// - an [`Overloaded`](seawall_core::Overloaded) or
///   [`BudgetExhausted`](seawall_core::BudgetExhausted) anywhere in the
///   `source()` chain: **no**, they mean "back off", and a retry adds the
///   very load that caused them;
/// - a [`CircuitOpen`](seawall_core::CircuitOpen): yes (the layer then waits
///   for its `retry_after`, see [`RetryLayer`](crate::RetryLayer));
/// - an [`Elapsed`](seawall_core::Elapsed) or any other error (transport
///   errors, a refused connection): yes.
///
/// Use it to build your own rule in [`RetryBuilder::retry_if`](crate::RetryBuilder::retry_if).
///
/// ```
/// use seawall_core::{BoxError, Elapsed, OverloadReason, Overloaded};
/// use seawall_retry::is_retryable;
/// # use std::time::Duration;
///
/// let shed: BoxError = Overloaded::new(OverloadReason::HardLimit).into();
/// let slow: BoxError = Elapsed::new(Duration::from_millis(200)).into();
/// let io: BoxError = std::io::Error::other("connection reset").into();
/// assert!(!is_retryable(&*shed));
/// assert!(is_retryable(&*slow));
/// assert!(is_retryable(&*io));
/// ```
pub fn is_retryable(err: &(dyn Error + 'static)) -> bool {
    Rejection::find(err).is_none_or(|r| r.kind().is_retryable())
}

/// A user rule replacing [`is_retryable`].
pub(crate) type RetryIf = Arc<dyn Fn(&(dyn Error + 'static)) -> bool + Send + Sync>;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send the request again at `at` (now when `None`). `token` is the
    /// budget epoch the retry's token was withdrawn from, to give it back
    /// should the retry never be sent.
    Retry {
        at: Option<Instant>,
        token: Option<u32>,
    },
    /// Stop and return the last result.
    Stop(StopReason),
}

/// How long a retryable failure asks to wait.
enum Wait {
    Never,
    Backoff,
    Exactly(Duration),
}

pub(crate) struct Policy<C, K, H> {
    pub(crate) name: Arc<str>,
    // What a reload changes, read where it is needed: the call path reads
    // `max_attempts` and `deadline` (one relaxed load each, as the plain
    // fields they replace), a retry decision the rest.
    max_attempts: AtomicU32,
    /// The overall deadline in nanoseconds; 0 for none (a configured one is
    /// never zero).
    deadline: AtomicU64,
    honour_hints: AtomicBool,
    /// Read only when a retry is decided; a copy is taken under the lock.
    backoff: Mutex<Backoff>,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) classify: C,
    pub(crate) clone: K,
    pub(crate) retry_if: Option<RetryIf>,
    /// Read only while `honour_hints` is on.
    pub(crate) hint: H,
    /// The config in force, as the layer reports it; held by a reload.
    config: Mutex<RetryConfig>,
    pub(crate) counters: Counters,
    /// Where the deadline is measured and backoff timers are set from.
    clock: Clock,
    seed: u64,
    sequence: AtomicU64,
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::Handles,
}

impl<C, K, H> fmt::Debug for Policy<C, K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("max_attempts", &self.max_attempts())
            .field("backoff", &self.backoff())
            .field("deadline", &self.deadline())
            .field("budget", &self.budget)
            .field("retry_if", &self.retry_if.is_some())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Parts<C, K, H> {
    pub(crate) config: RetryConfig,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) classify: C,
    pub(crate) clone: K,
    pub(crate) retry_if: Option<RetryIf>,
    pub(crate) hint: H,
    pub(crate) clock: Clock,
}

/// A deadline as the policy keeps it: nanoseconds, 0 for none.
fn deadline_nanos(deadline: Option<Duration>) -> u64 {
    deadline.map_or(0, |d| nanos(d).max(1))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoned only by a panic under the lock; nothing under these locks
    // panics, and the data stays whole either way.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<C, K, H> Policy<C, K, H> {
    pub(crate) fn new(p: Parts<C, K, H>) -> Self {
        let c = &p.config;
        Policy {
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Handles::new(&c.name),
            name: Arc::from(c.name.as_str()),
            max_attempts: AtomicU32::new(c.max_attempts),
            deadline: AtomicU64::new(deadline_nanos(c.deadline)),
            honour_hints: AtomicBool::new(c.honour_hints),
            backoff: Mutex::new(c.backoff),
            budget: p.budget,
            classify: p.classify,
            clone: p.clone,
            retry_if: p.retry_if,
            hint: p.hint,
            config: Mutex::new(p.config),
            counters: Counters::default(),
            clock: p.clock,
            seed: random_seed(),
            sequence: AtomicU64::new(0),
        }
    }

    /// Calls per request, the first included, in force now.
    #[inline]
    pub(crate) fn max_attempts(&self) -> u32 {
        self.max_attempts.load(Ordering::Relaxed)
    }

    /// The overall deadline in force now.
    #[inline]
    fn deadline(&self) -> Option<Duration> {
        match self.deadline.load(Ordering::Relaxed) {
            0 => None,
            // Saturated (an unvalidated deadline past u64 nanoseconds): as
            // long as any.
            u64::MAX => Some(Duration::MAX),
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// The backoff in force now.
    fn backoff(&self) -> Backoff {
        *lock(&self.backoff)
    }

    /// The config in force.
    pub(crate) fn config(&self) -> RetryConfig {
        lock(&self.config).clone()
    }

    /// Applies `next`; see [`RetryLayer::reload`](crate::RetryLayer::reload).
    pub(crate) fn reload(&self, next: &RetryConfig) -> Result<(), ReloadError> {
        let mut config = lock(&self.config);
        next.validate()?;
        if next.name != config.name {
            return Err(ReloadError::not_in_place(
                "name",
                "the name labels the layer's events and metric series",
            ));
        }
        if self.budget.is_some() != next.budget.enabled {
            return Err(ReloadError::not_in_place(
                "budget.enabled",
                "whether the layer has a retry budget is fixed when it is built",
            ));
        }
        let budget_changed = match &self.budget {
            Some(budget) => {
                let current = budget.config();
                let wanted = next.budget.clone().enabled(current.enabled);
                // Validates first: on an error nothing has changed yet.
                wanted != current && {
                    budget.reload(&wanted)?;
                    true
                }
            }
            None => false,
        };
        let mut changed = Vec::new();
        if next.max_attempts != config.max_attempts {
            changed.push("max_attempts");
        }
        if next.backoff != config.backoff {
            changed.push("backoff");
        }
        if next.deadline != config.deadline {
            changed.push("deadline");
        }
        if next.honour_hints != config.honour_hints {
            changed.push("honour_hints");
        }
        if budget_changed {
            changed.push("budget");
        }
        self.max_attempts
            .store(next.max_attempts, Ordering::Relaxed);
        self.deadline
            .store(deadline_nanos(next.deadline), Ordering::Relaxed);
        self.honour_hints
            .store(next.honour_hints, Ordering::Relaxed);
        *lock(&self.backoff) = next.backoff;
        *config = next.clone();
        if let Some(budget) = &self.budget {
            config.budget = budget.config().enabled(true);
        }
        drop(config);
        tracing::info!(
            target: TARGET_RETRY,
            layer = "retry",
            name = %self.name,
            changed = %changed.join(", "),
            max_attempts = next.max_attempts,
            "retry reloaded"
        );
        Ok(())
    }

    pub(crate) fn stats(&self) -> RetryStats {
        self.counters
            .snapshot(self.budget.as_ref().map(RetryBudget::balance))
    }

    /// Counts a new request and deposits it in the budget. Returns its start
    /// (a clock reading) when a deadline needs one (the only clock read on
    /// this path).
    pub(crate) fn begin(&self) -> Option<u64> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.attempts.increment(1);
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        // One relaxed load, as the field it replaces; a deadline turned on
        // by a reload applies to requests that start after it.
        (self.deadline.load(Ordering::Relaxed) != 0).then(|| self.now())
    }

    /// A reading of the layer's clock. Out of line: the success path of a
    /// layer without a deadline carries none of it.
    #[inline(never)]
    fn now(&self) -> u64 {
        self.clock.nanos()
    }

    pub(crate) fn note_not_cloneable(&self) {
        self.counters.not_cloneable.fetch_add(1, Ordering::Relaxed);
    }

    fn wait_for(&self, err: &(dyn Error + 'static)) -> Wait {
        let retryable = match &self.retry_if {
            Some(rule) => rule(err),
            None => is_retryable(err),
        };
        if !retryable {
            return Wait::Never;
        }
        match Rejection::find(err) {
            Some(Rejection::CircuitOpen(open)) => match open.retry_after() {
                // Forced open: no end in sight.
                None => Wait::Never,
                // Without a deadline, a wait longer than the backoff's cap
                // does not fit either.
                Some(after)
                    if self.deadline().is_none()
                        && self.backoff().cap().is_some_and(|cap| after > cap) =>
                {
                    Wait::Never
                }
                Some(after) => Wait::Exactly(after),
            },
            _ => Wait::Backoff,
        }
    }

    /// Decides after a failed attempt: `result` is the failure, a response
    /// the classifier called a failure (`Ok`) or an error. `attempts` counts
    /// calls made so far.
    pub(crate) fn decide<Res>(
        &self,
        attempts: u32,
        can_resend: bool,
        start: Option<u64>,
        delays: &mut Option<Delays>,
        result: &Result<Res, BoxError>,
    ) -> Decision
    where
        H: RetryHint<Res>,
    {
        let err = result.as_ref().err();
        let wait = match err {
            None => Wait::Backoff,
            Some(e) => self.wait_for(&**e),
        };
        if matches!(wait, Wait::Never) {
            return Decision::Stop(StopReason::NotRetryable);
        }
        if attempts >= self.max_attempts() {
            return Decision::Stop(StopReason::AttemptsExhausted);
        }
        if !can_resend {
            return Decision::Stop(StopReason::NotRetryable);
        }
        // What the peer said, read only now that a retry is possible.
        let said = if self.honour_hints.load(Ordering::Relaxed) {
            self.hint.hint(result)
        } else {
            Hint::None
        };
        let hint = match said {
            Hint::DoNotRetry => return Decision::Stop(StopReason::DoNotRetry),
            // Bounded here too: a reader of the user's may return anything.
            Hint::After(after) => Some(after.min(MAX_HINT)),
            _ => None,
        };
        let schedule = self.backoff();
        // A request's delays follow the backoff in force at its first
        // retry; a reload changes those of requests that retry after it.
        let delays = delays.get_or_insert_with(|| {
            let n = self.sequence.fetch_add(1, Ordering::Relaxed);
            schedule.delays(derive(self.seed, n))
        });
        // The backoff advances on every retry, also when a circuit's
        // `retry_after` replaces its delay. The iterator is endless.
        let backoff = delays.next().unwrap_or_default();
        let mut delay = match wait {
            Wait::Exactly(after) => after,
            _ => backoff,
        };
        if let Some(after) = hint {
            // Without a deadline, the backoff's cap (or, without one, a
            // fixed bound) is as long as the layer waits for anyone.
            let cap = schedule.cap().unwrap_or(UNBOUNDED_HINT);
            if self.deadline().is_none() && after > cap {
                return Decision::Stop(StopReason::HintTooLong);
            }
        }
        // A hint longer than the delay sets it; a shorter one leaves the
        // backoff's delay, and the retry is not a hinted one.
        let hint = hint.filter(|&after| after > delay);
        if let Some(after) = hint {
            delay = after;
        }
        self.schedule(attempts, start, delay, err, hint)
    }

    /// The deadline and budget checks of a retry after `delay`; `hint` is the
    /// peer's wait when it set `delay`.
    fn schedule(
        &self,
        attempts: u32,
        start: Option<u64>,
        delay: Duration,
        err: Option<&BoxError>,
        hint: Option<Duration>,
    ) -> Decision {
        let deadline = self.deadline();
        let needs_clock = deadline.is_some() || !delay.is_zero();
        let now = needs_clock.then(|| self.clock.nanos());
        if let (Some(limit), Some(start), Some(now)) = (deadline, start, now) {
            // Compared as durations, not readings: `start + limit` may not be
            // representable (a deadline from an unvalidated config), and that
            // means "no deadline in practice", not "already passed".
            let fits = Duration::from_nanos(now.saturating_sub(start))
                .checked_add(delay)
                .is_some_and(|at| at <= limit);
            if !fits {
                return Decision::Stop(match hint {
                    Some(_) => StopReason::HintTooLong,
                    None => StopReason::Deadline,
                });
            }
        }
        // The budget reads its own clock (it may be shared with layers on
        // other clocks).
        let token = match &self.budget {
            Some(budget) => match budget.withdraw() {
                Some(epoch) => Some(epoch),
                None => return Decision::Stop(StopReason::BudgetExhausted),
            },
            None => None,
        };
        if hint.is_some() {
            self.counters.hinted.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.metrics.hinted.increment(1);
        }
        tracing::debug!(
            target: TARGET_RETRY,
            name = %self.name,
            attempt = attempts + 1,
            delay_ms = delay.as_millis() as u64,
            hinted = hint.is_some(),
            error = err.map(tracing::field::display),
            "retrying"
        );
        // Saturating: a delay too long for an `Instant` (a peer's
        // `retry_after`, an uncapped backoff) waits "forever", it does not
        // turn into "retry at once".
        // On tokio's clock this is exactly `now + delay`; on another, tokio's
        // now plus the delay (see `RetryBuilder::clock`).
        let at = if delay.is_zero() {
            None
        } else {
            now.map(|now| self.clock.instant_at(now.saturating_add(nanos(delay))))
        };
        Decision::Retry { at, token }
    }

    /// Counts a retry as it is sent to the inner service.
    pub(crate) fn note_retry_sent(&self) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        {
            self.metrics.attempts.increment(1);
            self.metrics.retries.increment(1);
        }
    }

    /// Gives back the budget token of a retry that was decided but never
    /// sent (the response future was dropped while backing off, or the
    /// service failed while the retry waited for it).
    pub(crate) fn refund(&self, token: Option<u32>) {
        if let (Some(budget), Some(epoch)) = (&self.budget, token) {
            budget.refund(epoch);
        }
    }

    /// Records that a request stopped for `reason` and builds its error:
    /// the inner error unchanged if the first attempt was not retryable,
    /// otherwise a [`RetryError`].
    pub(crate) fn stop(&self, attempts: u32, reason: StopReason, err: BoxError) -> BoxError {
        self.note_stop(attempts, reason);
        let said_by_the_error = matches!(reason, StopReason::NotRetryable | StopReason::DoNotRetry);
        if attempts <= 1 && said_by_the_error {
            err
        } else {
            Box::new(RetryError::new(attempts, reason, err))
        }
    }

    /// Records that a request stopped for `reason`.
    pub(crate) fn note_stop(&self, attempts: u32, reason: StopReason) {
        self.counters.gave_up(reason);
        #[cfg(feature = "metrics")]
        self.metrics.gave_up(reason);
        tracing::debug!(
            target: TARGET_RETRY,
            name = %self.name,
            attempts,
            reason = reason.as_str(),
            "stopped retrying"
        );
    }
}

#[cfg(test)]
mod tests {
    use seawall_core::config::MAX_DURATION;
    use seawall_core::{CircuitOpen, ErrorsAsFailures};

    use super::*;
    use crate::clone::ByClone;
    use crate::hint::NoHint;

    fn policy(
        deadline: Option<Duration>,
        backoff: Backoff,
    ) -> Policy<ErrorsAsFailures, ByClone, NoHint> {
        on(Clock::default(), deadline, backoff)
    }

    fn on(
        clock: Clock,
        deadline: Option<Duration>,
        backoff: Backoff,
    ) -> Policy<ErrorsAsFailures, ByClone, NoHint> {
        Policy::new(Parts {
            config: RetryConfig {
                name: "test".into(),
                max_attempts: 3,
                backoff,
                deadline,
                ..RetryConfig::default()
            },
            budget: None,
            classify: ErrorsAsFailures,
            clone: ByClone,
            retry_if: None,
            hint: NoHint,
            clock,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_too_far_for_an_instant_is_no_deadline() {
        // `RetryConfig::validate` bounds the deadline by MAX_DURATION; the
        // policy itself must still not read an unrepresentable end as "past".
        let err: Result<(), BoxError> = Err("down".into());
        for limit in [MAX_DURATION, Duration::from_secs(u64::MAX), Duration::MAX] {
            let p = policy(Some(limit), Backoff::constant(Duration::from_millis(10)));
            let start = p.begin();
            let decision = p.decide(1, true, start, &mut None, &err);
            assert!(
                matches!(decision, Decision::Retry { at: Some(_), .. }),
                "{limit:?}: {decision:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_too_long_for_an_instant_waits_instead_of_retrying_at_once() {
        let open: Result<(), BoxError> = Err(CircuitOpen::new(Some(Duration::MAX)).into());
        let now = Instant::now();
        let p = policy(Some(Duration::MAX), Backoff::constant(Duration::ZERO));
        match p.decide(1, true, p.begin(), &mut None, &open) {
            Decision::Retry { at: Some(at), .. } => {
                assert!(at > now + Duration::from_secs(86_400 * 365));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_deadline_is_measured_on_the_layers_clock() {
        // A manual clock, no runtime: only the time moved by hand counts.
        let (clock, hand) = Clock::manual();
        let ms = Duration::from_millis;
        let p = on(clock, Some(ms(100)), Backoff::constant(Duration::ZERO));
        let err: Result<(), BoxError> = Err("down".into());
        let start = p.begin();
        assert_eq!(start, Some(0));
        hand.advance(ms(100));
        assert_eq!(
            p.decide(1, true, start, &mut None, &err),
            Decision::Retry {
                at: None,
                token: None
            },
            "a retry at once, exactly at the deadline"
        );
        hand.advance(Duration::from_nanos(1));
        assert_eq!(
            p.decide(2, true, start, &mut None, &err),
            Decision::Stop(StopReason::Deadline)
        );
        // A delay that would end past the deadline stops too.
        let p = on(p.clock.clone(), Some(ms(100)), Backoff::constant(ms(60)));
        let start = p.begin();
        assert!(matches!(
            p.decide(1, true, start, &mut None, &err),
            Decision::Retry { at: Some(_), .. }
        ));
        hand.advance(ms(50));
        assert_eq!(
            p.decide(2, true, start, &mut None, &err),
            Decision::Stop(StopReason::Deadline)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn on_another_clock_the_backoff_is_a_tokio_timer_of_the_delay() {
        let (clock, hand) = Clock::manual();
        hand.advance(Duration::from_secs(3600));
        let p = on(clock, None, Backoff::constant(Duration::from_millis(70)));
        let err: Result<(), BoxError> = Err("down".into());
        let now = Instant::now();
        match p.decide(1, true, p.begin(), &mut None, &err) {
            Decision::Retry { at: Some(at), .. } => {
                assert_eq!(at, now + Duration::from_millis(70));
            }
            other => panic!("{other:?}"),
        }
    }

    mod hints {
        use super::*;
        use crate::budget::RetryBudget;
        use crate::hint::{Hint, HintFn, hint_fn};

        type Reader = HintFn<fn(&Result<(), BoxError>) -> Hint>;

        /// A policy on a manual clock whose reader returns what the error's
        /// text says: "stop", "wait <ms>", anything else nothing.
        fn hinted(
            clock: Clock,
            deadline: Option<Duration>,
            backoff: Backoff,
            budget: Option<RetryBudget>,
        ) -> Policy<ErrorsAsFailures, ByClone, Reader> {
            fn read(result: &Result<(), BoxError>) -> Hint {
                let text = result.as_ref().err().map(ToString::to_string);
                match text.as_deref() {
                    Some("stop") => Hint::DoNotRetry,
                    Some(t) => t
                        .strip_prefix("wait ")
                        .and_then(|ms| ms.parse().ok())
                        .map_or(Hint::None, |ms| Hint::after(Duration::from_millis(ms))),
                    None => Hint::None,
                }
            }
            Policy::new(Parts {
                config: RetryConfig {
                    name: "test".into(),
                    max_attempts: 3,
                    backoff,
                    deadline,
                    ..RetryConfig::default()
                },
                budget,
                classify: ErrorsAsFailures,
                clone: ByClone,
                retry_if: None,
                hint: hint_fn(read as fn(&Result<(), BoxError>) -> Hint),
                clock,
            })
        }

        fn failed(text: &str) -> Result<(), BoxError> {
            Err(text.to_owned().into())
        }

        fn ms(n: u64) -> Duration {
            Duration::from_millis(n)
        }

        /// The wait a `Retry` decision sleeps, from tokio's now.
        fn wait(d: Decision) -> Option<Duration> {
            match d {
                Decision::Retry { at, .. } => {
                    Some(at.map_or(Duration::ZERO, |at| at - Instant::now()))
                }
                Decision::Stop(_) => None,
            }
        }

        #[tokio::test(start_paused = true)]
        async fn the_wait_is_the_longer_of_backoff_and_hint() {
            let (clock, _hand) = Clock::manual();
            let p = hinted(clock, None, Backoff::constant(ms(100)), None);
            let d = |text| wait(p.decide(1, true, p.begin(), &mut None, &failed(text)));
            assert_eq!(d("wait 250"), Some(ms(250)));
            assert_eq!(d("wait 40"), Some(ms(100)));
            assert_eq!(d("wait 0"), Some(ms(100)));
            assert_eq!(d("other"), Some(ms(100)));
            assert_eq!(p.stats().hinted, 1, "only the hint longer than the backoff");
        }

        #[test]
        fn do_not_retry_stops_typed_and_counted() {
            let (clock, _hand) = Clock::manual();
            let p = hinted(clock, None, Backoff::constant(Duration::ZERO), None);
            let d = p.decide(1, true, p.begin(), &mut None, &failed("stop"));
            assert_eq!(d, Decision::Stop(StopReason::DoNotRetry));
            // Stopped on the first attempt by what the error said: unchanged.
            let err = p.stop(1, StopReason::DoNotRetry, "stop".into());
            assert!(err.downcast_ref::<RetryError>().is_none());
            // After a retry it is a `RetryError` with the reason.
            let err = p.stop(2, StopReason::DoNotRetry, "stop".into());
            let retry = err.downcast_ref::<RetryError>().unwrap();
            assert_eq!(retry.reason(), StopReason::DoNotRetry);
            assert_eq!(p.stats().gave_up_do_not_retry, 2);
            // Out of attempts, that reason comes first.
            assert_eq!(
                p.decide(3, true, p.begin(), &mut None, &failed("stop")),
                Decision::Stop(StopReason::AttemptsExhausted)
            );
        }

        #[tokio::test(start_paused = true)]
        async fn a_hint_past_the_deadline_gives_up_at_once() {
            let (clock, hand) = Clock::manual();
            let p = hinted(clock, Some(ms(1000)), Backoff::constant(ms(10)), None);
            let start = p.begin();
            hand.advance(ms(400));
            let d = |text| p.decide(1, true, start, &mut None, &failed(text));
            assert_eq!(
                wait(d("wait 600")),
                Some(ms(600)),
                "ends exactly at the deadline"
            );
            assert_eq!(d("wait 601"), Decision::Stop(StopReason::HintTooLong));
            assert_eq!(
                d("wait 86400000000"),
                Decision::Stop(StopReason::HintTooLong),
                "a peer's year"
            );
            // The backoff's own delay past the deadline stays `Deadline`.
            hand.advance(ms(595));
            assert_eq!(d("wait 1"), Decision::Stop(StopReason::Deadline));
            let stats = p.stats();
            assert_eq!((stats.gave_up_hint_too_long, stats.hinted), (0, 1));
        }

        #[tokio::test(start_paused = true)]
        async fn without_a_deadline_the_backoff_cap_bounds_the_hint() {
            let (clock, _hand) = Clock::manual();
            let capped = Backoff::constant(ms(10)).max_delay(ms(2000));
            let p = hinted(clock.clone(), None, capped, None);
            let d = |text| p.decide(1, true, p.begin(), &mut None, &failed(text));
            assert_eq!(wait(d("wait 2000")), Some(ms(2000)));
            assert_eq!(d("wait 2001"), Decision::Stop(StopReason::HintTooLong));
            // No cap and no deadline: a peer still cannot park the request
            // longer than UNBOUNDED_HINT (a day's hint would be waited
            // otherwise).
            let p = hinted(clock, None, Backoff::constant(ms(10)), None);
            let d = |text| p.decide(1, true, p.begin(), &mut None, &failed(text));
            assert_eq!(wait(d("wait 5000")), Some(UNBOUNDED_HINT));
            assert_eq!(d("wait 5001"), Decision::Stop(StopReason::HintTooLong));
            assert_eq!(
                d("wait 999999999999"),
                Decision::Stop(StopReason::HintTooLong),
                "a day's hint"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn the_budget_still_applies() {
            let (clock, _hand) = Clock::manual();
            let budget = RetryBudget::new(0.0, 0, Duration::from_secs(1)).unwrap();
            let p = hinted(clock, None, Backoff::constant(ms(10)), Some(budget));
            assert_eq!(
                p.decide(1, true, p.begin(), &mut None, &failed("wait 50")),
                Decision::Stop(StopReason::BudgetExhausted)
            );
            assert_eq!(p.stats().hinted, 0, "no retry, no hinted retry");
        }

        #[test]
        fn the_reader_is_not_asked_when_no_retry_is_possible() {
            use std::sync::atomic::AtomicU32;
            static ASKED: AtomicU32 = AtomicU32::new(0);
            fn read(_: &Result<(), BoxError>) -> Hint {
                ASKED.fetch_add(1, Ordering::Relaxed);
                Hint::DoNotRetry
            }
            let (clock, _hand) = Clock::manual();
            let p = Policy::new(Parts {
                config: RetryConfig {
                    name: "test".into(),
                    max_attempts: 2,
                    backoff: Backoff::constant(Duration::ZERO),
                    deadline: None,
                    ..RetryConfig::default()
                },
                budget: None,
                classify: ErrorsAsFailures,
                clone: ByClone,
                retry_if: None,
                hint: hint_fn(read),
                clock,
            });
            let shed: Result<(), BoxError> =
                Err(seawall_core::Overloaded::new(seawall_core::OverloadReason::HardLimit).into());
            let down = failed("down");
            assert_eq!(
                p.decide(1, true, None, &mut None, &shed),
                Decision::Stop(StopReason::NotRetryable)
            );
            assert_eq!(
                p.decide(2, true, None, &mut None, &down),
                Decision::Stop(StopReason::AttemptsExhausted)
            );
            assert_eq!(
                p.decide(1, false, None, &mut None, &down),
                Decision::Stop(StopReason::NotRetryable)
            );
            assert_eq!(ASKED.load(Ordering::Relaxed), 0);
            assert_eq!(
                p.decide(1, true, None, &mut None, &down),
                Decision::Stop(StopReason::DoNotRetry)
            );
            assert_eq!(ASKED.load(Ordering::Relaxed), 1);
        }
    }
}

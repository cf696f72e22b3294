//! [`Budget`] and [`KeyedBudget`]: the services the layers make.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::deadline::Deadline;
use seawall_core::event::{Event, EventKind};
use seawall_core::names::TARGET_BUDGET;
use seawall_core::{BoxError, BudgetExhausted, DeadlineExceeded, KeyFn, KeyLabel};
use tokio::time::Sleep;
use tower_service::Service;

use crate::config::BudgetMode;
use crate::future::ResponseFuture;
use crate::gcra::{Gcra, Reservation};
use crate::keyed::{KeyedBudgetStats, KeyedShared, OVERFLOW_KEY};
use crate::loop_budget::{BudgetStats, LoopBudget};

/// A service behind a rate budget; made by [`BudgetLayer`](crate::BudgetLayer).
///
/// - [`BudgetMode::Reject`]: `poll_ready` reports only the inner service's
///   readiness; `call` takes a token and, when none is left, does not call
///   the inner service but returns a future that resolves at once to a boxed
///   [`BudgetExhausted`] whose `retry_after` is the time until the next
///   token. The token is taken in `call`, not reserved in `poll_ready`:
///   taking it is one atomic step that cannot block, so reserving early
///   would only let a service that is polled ready and then dropped (or left
///   idle, as `Buffer` and `Balance` do) hold a token it never uses.
/// - [`BudgetMode::Wait`]: `poll_ready` takes the token first; when none is
///   left it parks on a timer set to the instant the next token is due (one
///   `Sleep`, allocated the first time this service waits and reset for each
///   later wait; no spinning, no allocation per call), then takes it, then
///   polls the inner service. The token is held by the service until `call`
///   uses it. A service (or clone) dropped while holding a token gives
///   back what is still owed of it: the token less the time it was held,
///   never a token the refill has already replaced. So nothing leaks, and a
///   cancellation never lets more than the burst through. A `call` without a reserved token (a caller
///   that skipped `poll_ready`) takes one or is rejected as in `Reject` mode,
///   never a panic.
///
///   Inside a caller's [`Deadline`] scope (see `seawall-deadline`), the wait
///   is no longer than the caller's remaining time: when the next token is
///   due after the caller's deadline, `poll_ready` does not park but reports
///   ready without a token, and `call` refuses at once with
///   [`BudgetExhausted`] (its `retry_after` the time until the token); when
///   the caller's deadline has already passed, with
///   [`DeadlineExceeded`](seawall_core::DeadlineExceeded). The deadline is
///   read where `poll_ready` runs, and only when a wait begins: a
///   `poll_ready` polled outside the caller's scope (by a `Buffer`'s worker,
///   say) waits as it would without one.
///
/// All clones share the layer's budget; a clone starts without a reserved
/// token and with its own timer.
///
/// # Clocks and Wait mode
///
/// The budget reads its [`Clock`](seawall_core::Clock); Wait mode parks on
/// a tokio timer (so it needs a tokio runtime with time enabled, whatever
/// the clock) set with [`Clock::instant_at`](seawall_core::Clock::instant_at)
/// to when the next token is due. On the default tokio clock that is exact,
/// and `tokio::time::pause`/`advance` drive it. On the TSC clock the timer
/// is "tokio's now plus the wait", within the drift between the two clocks
/// of the token's due time; a timer that fires early finds no token and is
/// set again, never a spin. On a manual clock, moving the hand does not
/// wake a parked service: it takes its token at its next poll, and a tokio
/// timer that fires before the hand has moved is set again.
pub struct Budget<S> {
    inner: S,
    budget: LoopBudget,
    mode: BudgetMode,
    // Wait mode: a token is taken and waits for `call`; kept with the time
    // it was taken, so a drop gives back only what is still owed.
    reserved: Option<Reservation>,
    // Wait mode: this service is parked on the timer (counted once per wait).
    waiting: bool,
    // Wait mode: the caller's deadline comes before the next token, so the
    // next `call` refuses at once (nanoseconds to the token, or how long
    // ago the caller's deadline passed).
    refuse: Option<Refuse>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> Budget<S> {
    /// Wraps `inner` in `budget`.
    pub fn new(inner: S, budget: LoopBudget, mode: BudgetMode) -> Budget<S> {
        Budget {
            inner,
            budget,
            mode,
            reserved: None,
            waiting: false,
            refuse: None,
            sleep: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The shared budget.
    pub fn budget(&self) -> &LoopBudget {
        &self.budget
    }

    /// Whether this service holds a token reserved by `poll_ready`.
    pub fn is_reserved(&self) -> bool {
        self.reserved.is_some()
    }

    /// A snapshot of the shared budget's counters.
    pub fn stats(&self) -> BudgetStats {
        self.budget.stats()
    }

    /// Wait mode's half of `poll_ready`: a token held, or one taken now,
    /// or a park on the timer. Out of line, so that Reject mode's
    /// `poll_ready` is one test of `mode`.
    #[inline(never)]
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.reserved.is_some() {
            return Poll::Ready(());
        }
        // A refusal decided by an earlier `poll_ready` is decided again: the
        // request (and its caller) may have changed since.
        self.refuse = None;
        self.poll_token(cx)
    }

    #[inline]
    fn poll_token(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Ok(r) = self.budget.try_reserve_quiet(1, self.budget.read_clock()) {
            self.reserved = Some(r);
            self.waiting = false;
            return Poll::Ready(());
        }
        self.wait_for_token(cx)
    }

    // The budget was spent a moment ago: park on the timer until a token is
    // due (checking again first, as the clock has moved).
    #[inline(never)]
    fn wait_for_token(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let now = self.budget.read_clock();
            match self.budget.try_reserve_quiet(1, now) {
                Ok(r) => {
                    self.reserved = Some(r);
                    self.waiting = false;
                    return Poll::Ready(());
                }
                Err(wait) => {
                    if !self.waiting {
                        self.waiting = true;
                        self.budget.note_exhausted();
                        tracing::trace!(
                            target: TARGET_BUDGET,
                            name = %self.budget.name(),
                            wait = ?Duration::from_nanos(wait),
                            "budget spent; waiting for a token"
                        );
                    }
                    let due = self.budget.instant_at(now.saturating_add(wait));
                    if let Some(caller) = Deadline::current()
                        && caller.instant() < due
                    {
                        // No point waiting: the caller will have given up.
                        self.waiting = false;
                        let at = tokio::time::Instant::now();
                        self.refuse = Some(if caller.instant() <= at {
                            Refuse::Deadline(at.saturating_duration_since(caller.instant()))
                        } else {
                            Refuse::Budget(wait)
                        });
                        return Poll::Ready(());
                    }
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                    sleep.as_mut().reset(due);
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// Why a Wait-mode `call` refuses without waiting.
#[derive(Debug, Clone, Copy)]
enum Refuse {
    /// The next token is due this many nanoseconds from the wait's start,
    /// after the caller's deadline.
    Budget(u64),
    /// The caller's deadline had passed this long ago.
    Deadline(Duration),
}

impl<S> Budget<S> {
    /// The refusal `poll_wait` decided on; out of line.
    #[cold]
    #[inline(never)]
    fn refused<F>(&mut self) -> ResponseFuture<F> {
        match self.refuse.take() {
            Some(Refuse::Deadline(past)) => {
                ResponseFuture::refused(Box::new(DeadlineExceeded::new(past)))
            }
            Some(Refuse::Budget(wait)) => ResponseFuture::rejected(rejection(&self.budget, wait)),
            None => ResponseFuture::refused("budget: no refusal pending".into()),
        }
    }
}

impl<S: Clone> Clone for Budget<S> {
    fn clone(&self) -> Self {
        Budget::new(self.inner.clone(), self.budget.clone(), self.mode)
    }
}

impl<S> Drop for Budget<S> {
    fn drop(&mut self) {
        if let Some(r) = self.reserved.take() {
            self.budget.refund(r);
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Budget<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("inner", &self.inner)
            .field("mode", &self.mode)
            .field("reserved", &self.reserved.is_some())
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for Budget<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Reject mode tests one byte here; the token is taken in `call`.
        if self.mode == BudgetMode::Wait && self.poll_wait(cx).is_pending() {
            return Poll::Pending;
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // Only a Wait-mode service holds a token; read before writing, so
        // the Reject path does not store to `reserved` on every call.
        if self.reserved.is_some() {
            self.reserved = None;
            return ResponseFuture::called(self.inner.call(req));
        }
        if self.refuse.is_some() {
            return self.refused();
        }
        // One clock read, one compare-exchange; the future is built in
        // place around the inner one.
        match self.budget.take_for_call() {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(wait) => ResponseFuture::rejected(rejection(&self.budget, wait)),
        }
    }
}

/// The error of a call refused with `wait` nanoseconds to go; out of line,
/// so that the admitted path stays small.
#[cold]
#[inline(never)]
fn rejection(budget: &LoopBudget, wait: u64) -> BudgetExhausted {
    let retry_after = Duration::from_nanos(wait);
    tracing::trace!(
        target: TARGET_BUDGET,
        name = %budget.name(),
        ?retry_after,
        "budget spent; call rejected"
    );
    BudgetExhausted::new(retry_after)
}

/// A service behind one rate budget per key; made by
/// [`KeyedBudgetLayer`](crate::KeyedBudgetLayer). Always rejects when the
/// key's budget is spent (see the layer's docs).
///
/// `call` takes the key from the request, looks its budget up (no
/// allocation for a known key; a new key allocates its state once) and
/// takes a token; a rejection carries the key's label (formatted then) and
/// the time until its next token. A new key that finds the key map full of
/// keys owing tokens is served by the layer's overflow budget, and its
/// rejections carry the key [`OVERFLOW_KEY`](crate::OVERFLOW_KEY).
pub struct KeyedBudget<S, F, K> {
    inner: S,
    key_fn: F,
    shared: Arc<KeyedShared<K>>,
}

impl<S, F, K> KeyedBudget<S, F, K> {
    pub(crate) fn new(inner: S, key_fn: F, shared: Arc<KeyedShared<K>>) -> Self {
        KeyedBudget {
            inner,
            key_fn,
            shared,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// A snapshot of the layer's counters (shared by all its services).
    pub fn stats(&self) -> KeyedBudgetStats
    where
        K: std::hash::Hash + Eq,
    {
        self.shared.stats()
    }
}

impl<S: Clone, F: Clone, K> Clone for KeyedBudget<S, F, K> {
    fn clone(&self) -> Self {
        KeyedBudget {
            inner: self.inner.clone(),
            key_fn: self.key_fn.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, F, K> fmt::Debug for KeyedBudget<S, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBudget")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, K, Req> Service<Req> for KeyedBudget<S, F, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: KeyFn<Req, Key = K>,
    K: std::hash::Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &*self.shared;
        let key = self.key_fn.key(&req);
        let now = shared.now();
        // The key is moved into the map on insert; it is needed again only
        // to label a rejection, and then it is still there, so look it up
        // by reference first and insert only on a miss.
        let cell = match shared.map.get(&key) {
            Some(cell) => cell,
            None => match shared.map.get_or_insert_with(key.clone(), |_| Gcra::new()) {
                Ok(cell) => cell,
                Err(_) => return self.overflow(req, now),
            },
        };
        let rate = shared.rate.load();
        let taken = cell.try_take(&rate, 1, now);
        #[cfg(feature = "quota")]
        if seawall_core::quota::is_observed()
            && let Some(policy) = &shared.policy
        {
            policy.report(&cell, &rate, now);
        }
        match taken {
            Ok(()) => {
                shared.admitted.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "metrics")]
                shared.metrics.admitted.increment(1);
                ResponseFuture::called(self.inner.call(req))
            }
            Err(wait) => ResponseFuture::rejected(key_rejection(shared, &key, wait)),
        }
    }
}

impl<S, F, K> KeyedBudget<S, F, K> {
    /// Serves a call of a new key that found the map full from the shared
    /// overflow budget.
    #[cold]
    #[inline(never)]
    fn overflow<Req>(&mut self, req: Req, now: u64) -> ResponseFuture<S::Future>
    where
        S: Service<Req>,
    {
        let shared = &*self.shared;
        shared.overflow_calls.fetch_add(1, Ordering::Relaxed);
        let rate = shared.rate.load();
        let taken = shared.overflow.try_take(&rate, 1, now);
        #[cfg(feature = "quota")]
        if seawall_core::quota::is_observed()
            && let Some(policy) = &shared.policy
        {
            policy.report(&shared.overflow, &rate, now);
        }
        match taken {
            Ok(()) => {
                shared.admitted.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "metrics")]
                shared.metrics.admitted.increment(1);
                ResponseFuture::called(self.inner.call(req))
            }
            Err(wait) => {
                shared.overflow_rejected.fetch_add(1, Ordering::Relaxed);
                ResponseFuture::rejected(overflow_rejection(shared, wait))
            }
        }
    }
}

/// The error of a key's call refused with `wait` nanoseconds to go; out of
/// line, so that the admitted path stays small.
#[cold]
#[inline(never)]
fn key_rejection<K: fmt::Display>(shared: &KeyedShared<K>, key: &K, wait: u64) -> BudgetExhausted {
    shared.exhausted.fetch_add(1, Ordering::Relaxed);
    #[cfg(feature = "metrics")]
    shared.metrics.exhausted.increment(1);
    let retry_after = Duration::from_nanos(wait);
    let label = KeyLabel::display(key);
    let name = &shared.name;
    shared
        .events
        .note(|n| Event::new(name.clone(), EventKind::budget_exhausted(n)).with_key(&label));
    tracing::trace!(
        target: TARGET_BUDGET,
        name = %shared.name,
        key = %label,
        ?retry_after,
        "key's budget spent; call rejected"
    );
    BudgetExhausted::new(retry_after).with_key(label)
}

/// The error of an overflow call refused with `wait` nanoseconds to go.
#[cold]
#[inline(never)]
fn overflow_rejection<K>(shared: &KeyedShared<K>, wait: u64) -> BudgetExhausted {
    shared.exhausted.fetch_add(1, Ordering::Relaxed);
    #[cfg(feature = "metrics")]
    shared.metrics.exhausted.increment(1);
    let retry_after = Duration::from_nanos(wait);
    let name = &shared.name;
    shared
        .events
        .note(|n| Event::new(name.clone(), EventKind::budget_exhausted(n)).with_key(OVERFLOW_KEY));
    tracing::trace!(
        target: TARGET_BUDGET,
        name = %shared.name,
        ?retry_after,
        "key map full and overflow budget spent; call rejected"
    );
    BudgetExhausted::new(retry_after).with_key(shared.overflow_key.clone())
}

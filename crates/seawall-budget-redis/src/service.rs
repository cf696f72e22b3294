//! [`RedisBudget`] and [`RedisKeyedBudget`]: the services the layers make.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_budget::BudgetMode;
use seawall_core::names::TARGET_BUDGET;
use seawall_core::time::deadline;
use seawall_core::{BoxError, BudgetExhausted, KeyFn};
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::Keyed;
use crate::lease::{Acquire, Cell, Name};
use crate::shared::Shared;

/// A service behind a shared (Redis) rate budget; made by
/// [`RedisBudgetLayer`](crate::RedisBudgetLayer).
///
/// - **Reject** (the default): `poll_ready` reports only the inner service's
///   readiness; `call` takes a leased token (one compare-exchange), or a
///   token on credit, or the fallback's answer, and never waits for Redis.
///   When none is to be had the response future resolves at once to a boxed
///   [`BudgetExhausted`] whose `retry_after` is the time until the shared
///   budget's next token (as Redis last said), the probe interval under
///   `FailClosed`, or one emission interval while a refill is on its way.
/// - **Wait**: `poll_ready` reserves the token first. When the shared budget
///   is spent it parks on a timer until the next token is due; when a refill
///   is on its way it parks until the refill answers, for at most
///   `redis_timeout`, after which this call gets the fallback policy's
///   answer. Under `FailClosed` it does not wait: `call` rejects. A service
///   dropped while holding a leased token gives it back (a token of the
///   `Local` fallback is not: seawall-budget's `LoopBudget` has no public
///   refund).
///
/// All clones share the layer's budget; a clone starts without a reserved
/// token.
pub struct RedisBudget<S> {
    inner: S,
    shared: Arc<Shared>,
    cell: Arc<Cell>,
    // Wait mode: the token reserved by `poll_ready` (`true`: refundable).
    reserved: Option<bool>,
    // Wait mode, fail-closed: `call` rejects with this retry-after (ns).
    closed: Option<u64>,
    // Wait mode: a refill was awaited past `redis_timeout`; ask the fallback.
    overdue: bool,
    deadline: Option<Instant>,
    armed: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    notified: Option<Pin<Box<OwnedNotified>>>,
}

impl<S> RedisBudget<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, cell: Arc<Cell>) -> Self {
        RedisBudget {
            inner,
            shared,
            cell,
            reserved: None,
            closed: None,
            overdue: false,
            deadline: None,
            armed: false,
            sleep: None,
            notified: None,
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

    /// Whether this service holds a token reserved by `poll_ready`.
    pub fn is_reserved(&self) -> bool {
        self.reserved.is_some()
    }

    fn done_waiting(&mut self) {
        self.overdue = false;
        self.deadline = None;
        self.armed = false;
    }

    /// Parks until `due`; `Ready` when it has passed.
    fn sleep_until(&mut self, due: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        sleep.as_mut().poll(cx)
    }

    fn poll_token(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let decision = if self.overdue {
                self.shared.fallback(&self.cell)
            } else {
                self.shared.acquire(&self.cell)
            };
            match decision {
                Acquire::Admit { refundable } => {
                    self.reserved = Some(refundable);
                    self.done_waiting();
                    return Poll::Ready(());
                }
                Acquire::Closed(ns) => {
                    self.closed = Some(ns);
                    self.done_waiting();
                    return Poll::Ready(());
                }
                Acquire::Reject(ns) => {
                    tracing::trace!(
                        target: TARGET_BUDGET,
                        name = %self.shared.config.name,
                        wait = ?Duration::from_nanos(ns),
                        "shared budget spent; waiting for a token"
                    );
                    // `ns` may come from Redis (a corrupt TAT) or the
                    // fallback: `instant_at` saturates, it can never
                    // overflow the clock. A timer: tokio's, at the reading
                    // the layer's clock gives for the token.
                    let clock = &self.shared.clock;
                    let due = clock.instant_at(clock.nanos().saturating_add(ns));
                    if self.sleep_until(due, cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Acquire::Pending => {
                    if !self.armed {
                        // Register before looking again, so a refill that
                        // lands in between still wakes us.
                        let fresh = self.shared.done.clone().notified_owned();
                        match &mut self.notified {
                            Some(n) => n.set(fresh),
                            None => self.notified = Some(Box::pin(fresh)),
                        }
                        if let Some(n) = &mut self.notified {
                            n.as_mut().enable();
                        }
                        self.armed = true;
                        if self.deadline.is_none() {
                            self.deadline =
                                Some(deadline(Instant::now(), self.shared.config.redis_timeout));
                        }
                        continue;
                    }
                    if let Some(n) = &mut self.notified
                        && n.as_mut().poll(cx).is_ready()
                    {
                        self.armed = false;
                        continue;
                    }
                    let until = self.deadline.unwrap_or_else(Instant::now);
                    if self.sleep_until(until, cx).is_ready() {
                        // No answer within one timeout: this call does not
                        // wait longer; the fallback policy decides it.
                        self.overdue = true;
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: Clone> Clone for RedisBudget<S> {
    fn clone(&self) -> Self {
        RedisBudget::new(self.inner.clone(), self.shared.clone(), self.cell.clone())
    }
}

impl<S> Drop for RedisBudget<S> {
    fn drop(&mut self) {
        if self.reserved == Some(true) {
            self.shared.refund(&self.cell);
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RedisBudget<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudget")
            .field("inner", &self.inner)
            .field("mode", &self.shared.config.mode)
            .field("reserved", &self.reserved.is_some())
            .finish_non_exhaustive()
    }
}

fn rejection(shared: &Shared, decision: Acquire) -> BudgetExhausted {
    let ns = match decision {
        Acquire::Reject(ns) | Acquire::Closed(ns) => ns,
        Acquire::Pending => {
            shared.note_rejected();
            u64::try_from(shared.emission().as_nanos()).unwrap_or(u64::MAX)
        }
        Acquire::Admit { .. } => 0,
    };
    let retry_after = Duration::from_nanos(ns);
    tracing::trace!(
        target: TARGET_BUDGET,
        name = %shared.config.name,
        ?retry_after,
        "shared budget spent; call rejected"
    );
    BudgetExhausted::new(retry_after)
}

impl<S, Req> Service<Req> for RedisBudget<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.shared.config.mode == BudgetMode::Wait
            && self.reserved.is_none()
            && self.closed.is_none()
            && self.poll_token(cx).is_pending()
        {
            return Poll::Pending;
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if self.reserved.take().is_some() {
            return ResponseFuture::called(self.inner.call(req));
        }
        if let Some(ns) = self.closed.take() {
            return ResponseFuture::rejected(rejection(&self.shared, Acquire::Closed(ns)));
        }
        match self.shared.acquire(&self.cell) {
            Acquire::Admit { .. } => ResponseFuture::called(self.inner.call(req)),
            other => ResponseFuture::rejected(rejection(&self.shared, other)),
        }
    }
}

/// A service behind one shared budget per key; made by
/// [`RedisKeyedBudgetLayer`](crate::RedisKeyedBudgetLayer). Always rejects
/// when the key's budget is spent, with the key in the rejection.
///
/// A new key that the map has no room for (every key its insert examined
/// is in use or not fresh: see [`RedisKeyedBudgetLayer`](crate::RedisKeyedBudgetLayer))
/// is served by the layer's one overflow budget, shared by all such keys and
/// as strict as a single key's; its rejections carry no key.
pub struct RedisKeyedBudget<S, F, K> {
    inner: S,
    key_fn: F,
    shared: Arc<Shared>,
    keyed: Arc<Keyed<K>>,
}

impl<S, F, K> RedisKeyedBudget<S, F, K> {
    pub(crate) fn new(inner: S, key_fn: F, shared: Arc<Shared>, keyed: Arc<Keyed<K>>) -> Self {
        RedisKeyedBudget {
            inner,
            key_fn,
            shared,
            keyed,
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
}

impl<S: Clone, F: Clone, K> Clone for RedisKeyedBudget<S, F, K> {
    fn clone(&self) -> Self {
        RedisKeyedBudget::new(
            self.inner.clone(),
            self.key_fn.clone(),
            self.shared.clone(),
            self.keyed.clone(),
        )
    }
}

impl<S: fmt::Debug, F, K> fmt::Debug for RedisKeyedBudget<S, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyedBudget")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, K, Req> Service<Req> for RedisKeyedBudget<S, F, K>
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
        let key = self.key_fn.key(&req);
        let shared = &self.shared;
        let cell = self.keyed.map.get_or_insert_with(key, |k| {
            shared.key_cell(Name::Key(Arc::from(k.to_string())))
        });
        let cell = match &cell {
            Ok(cell) => cell,
            Err(_) => {
                // No room, and nothing the map looked at may be forgotten:
                // the newcomer shares the one overflow budget, as strict as
                // a single key's.
                shared.counters.overflowed.fetch_add(1, Ordering::Relaxed);
                &self.keyed.overflow
            }
        };
        match shared.acquire(cell) {
            Acquire::Admit { .. } => ResponseFuture::called(self.inner.call(req)),
            other => {
                let err = rejection(shared, other);
                match cell.label() {
                    Some(label) => ResponseFuture::rejected(err.with_key(label.clone())),
                    None => ResponseFuture::rejected(err),
                }
            }
        }
    }
}

//! [`Shed`]: the load-shedding service.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::deadline::Deadline;
use seawall_core::rand::SplitMix64;
use seawall_core::time::deadline;
use seawall_core::{BoxError, Classify, DeadlineExceeded, ErrorsAsFailures, OverloadReason};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::priority::{NoPriority, PriorityFn};
use crate::queue::{Joined, Waited};
use crate::state::{Permit, Shared};
use crate::stats::ShedStats;

/// A service that sheds load; made by [`ShedLayer`](crate::ShedLayer).
///
/// - `poll_ready` reports the inner service's readiness the way tower's
///   `LoadShed` does: it never waits for the inner service. If the inner
///   service is not ready, `poll_ready` still returns `Ready(Ok)` and the
///   next call is rejected with `Overloaded` (reason `HardLimit`).
/// - The admission decision is made in `call`; a rejection is returned from
///   the response future, so the service works under `Buffer` and `Balance`.
/// - Queue mode only: `poll_ready` reserves a slot first, waiting up to
///   `max_queue_delay` in the bounded queue (like tower's `ConcurrencyLimit`
///   waiting for a permit, but never longer than that). If the wait runs
///   out or the queue is full, `poll_ready` returns `Ready(Ok)` and the call
///   is rejected (`QueueDelay` / `QueueFull`). Dropping the service gives a
///   reserved slot back, or leaves the queue.
/// - Queue mode, inside a caller's [`Deadline`] scope (see
///   `seawall-deadline`): the wait in the queue ends at the caller's
///   deadline when that comes first, and the call is then refused with
///   [`DeadlineExceeded`] (counted with the `QueueDelay` sheds: it left the
///   queue unserved); a request whose caller has already given up does not
///   join the queue. The deadline is read where `poll_ready` runs, only when
///   a request must queue: an admitted request pays nothing for it.
pub struct Shed<S, P = NoPriority, C = ErrorsAsFailures> {
    inner: S,
    classify: C,
    shared: Arc<Shared>,
    priority: P,
    rng: SplitMix64,
    inner_ready: bool,
    reservation: Reservation,
    // Allocated at the first wait, then reset and reused by this service.
    sleep: Option<Pin<Box<Sleep>>>,
}

#[derive(Debug)]
enum Reservation {
    Idle,
    // `caller`: the caller's deadline, when it comes before the queue's.
    Waiting {
        id: u64,
        since: Instant,
        caller: Option<Instant>,
    },
    Reserved(Permit),
    Refused(OverloadReason),
    // The caller's deadline passed (this long ago) before a slot came.
    Late(Duration),
}

impl<S, P, C> Shed<S, P, C> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, priority: P, classify: C) -> Self {
        Shed {
            inner,
            classify,
            rng: shared.rng(),
            shared,
            priority,
            inner_ready: false,
            reservation: Reservation::Idle,
            sleep: None,
        }
    }

    /// A snapshot of the counters this service shares with its layer.
    pub fn stats(&self) -> ShedStats {
        self.shared.stats()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Queue mode: reserves a slot, waiting in the queue up to the deadline.
    /// Out of line: without a queue, `poll_ready` never calls it.
    #[inline(never)]
    fn poll_reserve(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(queue) = &self.shared.queue else {
            return Poll::Ready(());
        };
        // A `Late` left by a caller who gave up without calling belongs to
        // that caller's deadline, not to the next one's: decide again.
        if let Reservation::Late(_) = self.reservation {
            self.reservation = Reservation::Idle;
        }
        loop {
            match self.reservation {
                Reservation::Reserved(_) | Reservation::Refused(_) | Reservation::Late(_) => {
                    return Poll::Ready(());
                }
                Reservation::Idle => {
                    // Nobody waiting and a slot free: no lock, no clock.
                    if self
                        .shared
                        .waiting
                        .load(std::sync::atomic::Ordering::SeqCst)
                        == 0
                        && self.shared.try_reserve()
                    {
                        self.reservation = Reservation::Reserved(self.shared.reserved_permit());
                        continue;
                    }
                    // Queueing: the caller's deadline bounds the wait (read
                    // only here, off the admitted path).
                    let caller = Deadline::current().map(Deadline::instant);
                    if let Some(c) = caller {
                        let now = Instant::now();
                        if c <= now {
                            self.reservation = Reservation::Late(now.saturating_duration_since(c));
                            continue;
                        }
                    }
                    self.reservation = match queue.join(&self.shared, cx.waker()) {
                        Joined::Granted => Reservation::Reserved(self.shared.reserved_permit()),
                        Joined::Full => Reservation::Refused(OverloadReason::QueueFull),
                        Joined::Waiting(id) => {
                            let since = Instant::now();
                            // Checked: `max_queue_delay` is validated to at
                            // most 365 days, and `deadline` saturates anyway.
                            let own = deadline(since, queue.max_delay());
                            let caller = caller.filter(|&c| c < own);
                            let deadline = caller.unwrap_or(own);
                            match &mut self.sleep {
                                Some(sleep) => sleep.as_mut().reset(deadline),
                                None => {
                                    self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)))
                                }
                            }
                            Reservation::Waiting { id, since, caller }
                        }
                    };
                }
                Reservation::Waiting { id, since, caller } => {
                    match queue.poll(&self.shared, id, cx.waker()) {
                        Waited::Granted => {
                            let permit = self.shared.reserved_permit();
                            // Never admit a request that waited too long, or
                            // whose caller has given up.
                            let now = Instant::now();
                            self.reservation = if since.elapsed() > queue.max_delay() {
                                drop(permit);
                                Reservation::Refused(OverloadReason::QueueDelay)
                            } else if let Some(c) = caller.filter(|&c| c <= now) {
                                drop(permit);
                                Reservation::Late(now.saturating_duration_since(c))
                            } else {
                                Reservation::Reserved(permit)
                            };
                        }
                        Waited::Gone => {
                            self.reservation = Reservation::Refused(OverloadReason::QueueDelay)
                        }
                        Waited::Waiting => {
                            let expired = match &mut self.sleep {
                                Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
                                None => true,
                            };
                            if !expired {
                                return Poll::Pending;
                            }
                            if queue.leave(&self.shared, id) {
                                // Handed a slot as the deadline passed: pass it on.
                                self.shared.release();
                            }
                            self.reservation = match caller {
                                // The timer was the caller's deadline.
                                Some(c) => {
                                    Reservation::Late(Instant::now().saturating_duration_since(c))
                                }
                                None => Reservation::Refused(OverloadReason::QueueDelay),
                            };
                        }
                    }
                }
            }
        }
    }
}

impl<S, P, C> Shed<S, P, C> {
    /// Queue mode: the call uses the slot `poll_ready` reserved.
    #[inline(never)]
    fn admit_queued(
        &mut self,
        inner_ready: bool,
        priority: crate::Priority,
    ) -> Result<Permit, BoxError> {
        let reservation = match self.reservation {
            // `call` without a `poll_ready` that returned `Ready` breaks the
            // contract: answered with a rejection, the waiter keeps its place.
            Reservation::Waiting { .. } => {
                return Err(self.shared.reject_boxed(OverloadReason::HardLimit));
            }
            _ => std::mem::replace(&mut self.reservation, Reservation::Idle),
        };
        match reservation {
            Reservation::Reserved(permit) if inner_ready => self
                .shared
                .admit_reserved(permit, priority, &mut self.rng)
                .map_err(|e| Box::new(e) as BoxError),
            Reservation::Refused(reason) => Err(self.shared.reject_boxed(reason)),
            // Counted with the queue's delays (it left the queue unserved),
            // refused as what it is: nobody waits for the answer.
            Reservation::Late(past) => {
                let _ = self.shared.reject(OverloadReason::QueueDelay);
                Err(Box::new(DeadlineExceeded::new(past)))
            }
            // Not ready (a reserved permit dropped here hands its slot on),
            // or no `poll_ready` at all.
            _ => Err(self.shared.reject_boxed(OverloadReason::HardLimit)),
        }
    }
}

impl<S, P, C> Drop for Shed<S, P, C> {
    fn drop(&mut self) {
        // A reserved permit releases itself; a waiter must leave the queue.
        if let Reservation::Waiting { id, .. } = self.reservation
            && let Some(queue) = &self.shared.queue
            && queue.leave(&self.shared, id)
        {
            self.shared.release();
        }
    }
}

impl<S: Clone, P: Clone, C: Clone> Clone for Shed<S, P, C> {
    /// A clone shares the layer's state but not this service's reservation
    /// or readiness, like tower's `ConcurrencyLimit`.
    fn clone(&self) -> Self {
        Shed::new(
            self.inner.clone(),
            Arc::clone(&self.shared),
            self.priority.clone(),
            self.classify.clone(),
        )
    }
}

impl<S: std::fmt::Debug, P, C> std::fmt::Debug for Shed<S, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shed")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .field("inner_ready", &self.inner_ready)
            .field("reservation", &self.reservation)
            .finish_non_exhaustive()
    }
}

impl<S, P, C, Req> Service<Req> for Shed<S, P, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError> + 'static,
    P: PriorityFn<Req>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.shared.queued && self.poll_reserve(cx).is_pending() {
            return Poll::Pending;
        }
        self.inner_ready = match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            Poll::Pending => false,
        };
        Poll::Ready(Ok(()))
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let priority = self.priority.priority(&req);
        let inner_ready = std::mem::replace(&mut self.inner_ready, false);
        // The common case: no queue, the inner service ready. A rejection is
        // counted (and its error built) out of line. The permit exists
        // before the inner service is called, so that a panicking `call`
        // gives its slot back as it unwinds.
        if !self.shared.queued && inner_ready {
            return match self.shared.take(priority, &mut self.rng) {
                Ok(in_flight) => {
                    let permit = self.shared.permit(in_flight);
                    ResponseFuture::admitted(self.inner.call(req), permit, self.classify.clone())
                }
                Err(reason) => ResponseFuture::rejected(self.shared.reject_boxed(reason)),
            };
        }
        let error = if self.shared.queued {
            match self.admit_queued(inner_ready, priority) {
                Ok(permit) => {
                    return ResponseFuture::admitted(
                        self.inner.call(req),
                        permit,
                        self.classify.clone(),
                    );
                }
                Err(error) => error,
            }
        } else {
            self.shared.reject_boxed(OverloadReason::HardLimit)
        };
        ResponseFuture::rejected(error)
    }
}

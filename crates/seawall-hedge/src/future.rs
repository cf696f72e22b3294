//! [`ResponseFuture`]: the attempts of one hedged call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use seawall_core::BoxError;
use seawall_core::attempt::{self, Attempt};
use seawall_core::classify::Classify;
use seawall_core::clone::CloneRequest;
use seawall_core::names::TARGET_HEDGE;
use seawall_timeout::DeadlineTracker;
use tokio::time::Sleep;
use tower_service::Service;

use crate::config::MAX_HEDGES;
use crate::layer::Shared;

const SLOTS: usize = MAX_HEDGES as usize;

pin_project! {
    /// The response future of [`Hedge`](crate::Hedge): the first attempt,
    /// inline, and up to `max_hedges` hedges (each boxed when sent: a call
    /// that sends no hedge allocates nothing).
    ///
    /// It resolves to the first good answer and drops every other attempt at
    /// that moment; dropping it drops every attempt.
    pub struct ResponseFuture<S, Req, P, C>
    where
        S: Service<Req>,
    {
        #[pin]
        first: Option<S::Future>,
        #[pin]
        timer: Option<Sleep>,
        hedges: [Option<Pin<Box<S::Future>>>; SLOTS],
        // The service for the next hedge, and the request it will send;
        // `None` once no more hedges will be sent.
        svc: Option<S>,
        req: Option<Req>,
        // The timer has fired: a hedge is due, waiting for `svc` to be
        // ready. Its budget token is withdrawn only then, when it is sent.
        armed: bool,
        sent: u32,
        first_peer: Option<usize>,
        delay: Duration,
        // When the first attempt started (a reading of the tracker's
        // clock), if its latency is measured.
        measured: Option<u64>,
        // The first bad answer, returned if no attempt answers well.
        bad: Option<Result<S::Response, S::Error>>,
        shared: Option<Arc<Shared>>,
        // A keyed layer's key: its delay's tracker (else the layer's).
        key: Option<Arc<DeadlineTracker>>,
        policy: Option<P>,
        classify: Option<C>,
    }
}

impl<S, Req, P, C> fmt::Debug for ResponseFuture<S, Req, P, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("first", &self.first.is_some())
            .field("hedges_sent", &self.sent)
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

impl<S, Req, P, C> ResponseFuture<S, Req, P, C>
where
    S: Service<Req>,
{
    /// A call that is not hedged: the first attempt alone.
    pub(crate) fn once(first: S::Future) -> Self {
        ResponseFuture {
            first: Some(first),
            timer: None,
            hedges: [const { None }; SLOTS],
            svc: None,
            req: None,
            armed: false,
            sent: 0,
            first_peer: None,
            delay: Duration::ZERO,
            measured: None,
            bad: None,
            shared: None,
            key: None,
            policy: None,
            classify: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn hedged(
        first: S::Future,
        first_peer: Option<usize>,
        svc: S,
        req: Req,
        delay: Duration,
        measured: Option<u64>,
        shared: Arc<Shared>,
        key: Option<Arc<DeadlineTracker>>,
        policy: P,
        classify: C,
    ) -> Self {
        ResponseFuture {
            first: Some(first),
            timer: Some(tokio::time::sleep(delay)),
            hedges: [const { None }; SLOTS],
            svc: Some(svc),
            req: Some(req),
            armed: false,
            sent: 0,
            first_peer,
            delay,
            measured,
            bad: None,
            shared: Some(shared),
            key,
            policy: Some(policy),
            classify: Some(classify),
        }
    }
}

/// The error of a hedged response future polled again after it completed.
#[derive(Debug)]
struct PolledAfterCompletion;

impl fmt::Display for PolledAfterCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("hedged response future polled after completion")
    }
}

impl std::error::Error for PolledAfterCompletion {}

impl<S, Req, P, C> Future for ResponseFuture<S, Req, P, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: CloneRequest<Req>,
    C: Classify<S::Response, S::Error>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (Some(shared), Some(classify)) = (this.shared.as_deref(), this.classify.as_ref())
        else {
            // Not hedged: the first attempt's answer as it is (once: the
            // finished attempt is never polled again).
            let Some(first) = this.first.as_mut().as_pin_mut() else {
                return Poll::Ready(Err(PolledAfterCompletion.into()));
            };
            let result = std::task::ready!(first.poll(cx));
            this.first.set(None);
            return Poll::Ready(result.map_err(Into::into));
        };

        loop {
            // The first attempt.
            if let Some(first) = this.first.as_mut().as_pin_mut()
                && let Poll::Ready(result) = first.poll(cx)
            {
                this.first.set(None);
                if !classify.classify(&result).is_failure() {
                    if let Some(start) = *this.measured {
                        record(shared, this.key.as_deref(), start);
                    }
                    drop_all(
                        this.timer.as_mut(),
                        this.hedges,
                        this.svc,
                        this.req,
                        this.armed,
                    );
                    return Poll::Ready(result.map_err(Into::into));
                }
                this.bad.get_or_insert(result);
                stop_hedging(this.timer.as_mut(), this.svc, this.req, this.armed);
            }

            // The hedges.
            for slot in this.hedges.iter_mut() {
                let Some(hedge) = slot.as_mut() else { continue };
                let Poll::Ready(result) = hedge.as_mut().poll(cx) else {
                    continue;
                };
                *slot = None;
                if classify.classify(&result).is_failure() {
                    this.bad.get_or_insert(result);
                    stop_hedging(this.timer.as_mut(), this.svc, this.req, this.armed);
                    continue;
                }
                // A hedge won. The first attempt, still running, took at
                // least this long: its latency is recorded as that (as a
                // timeout counts as its deadline), so the window keeps
                // seeing the tail that hedging hides.
                if this.first.is_some()
                    && let Some(start) = *this.measured
                {
                    record(shared, this.key.as_deref(), start);
                }
                shared.won();
                tracing::trace!(target: TARGET_HEDGE, name = &*shared.name, "hedge won");
                this.first.set(None);
                drop_all(
                    this.timer.as_mut(),
                    this.hedges,
                    this.svc,
                    this.req,
                    this.armed,
                );
                return Poll::Ready(result.map_err(Into::into));
            }

            // The next hedge: due when the timer fires, sent when the
            // service is ready and paid for from the budget then (a hedge
            // never sent costs no token).
            let mut launched = false;
            if this.req.is_some() {
                if !*this.armed
                    && let Some(timer) = this.timer.as_mut().as_pin_mut()
                    && timer.poll(cx).is_ready()
                {
                    *this.armed = true;
                }
                if *this.armed
                    && let Some(svc) = this.svc.as_mut()
                {
                    match svc.poll_ready(cx) {
                        Poll::Pending => {}
                        Poll::Ready(Err(e)) => {
                            // The hedge cannot be sent. That is no answer to
                            // the call: the attempts in flight go on, and
                            // their own answers (good or bad) are returned.
                            // (While hedges may still be sent, no attempt
                            // has failed and the first is still running.)
                            let e: BoxError = e.into();
                            tracing::debug!(
                                target: TARGET_HEDGE,
                                name = &*shared.name,
                                error = %e,
                                "hedge not sent: the service failed readiness"
                            );
                            stop_hedging(this.timer.as_mut(), this.svc, this.req, this.armed);
                        }
                        Poll::Ready(Ok(())) if !shared.budget.try_withdraw() => {
                            // Dropping the ready service gives back what
                            // its readiness reserved.
                            shared.budget_exhausted();
                            stop_hedging(this.timer.as_mut(), this.svc, this.req, this.armed);
                        }
                        Poll::Ready(Ok(())) => {
                            *this.sent += 1;
                            let more = *this.sent < shared.max_hedges;
                            // The last hedge sends the copy made at the
                            // first call; an earlier one a copy of it.
                            let next = match (more, this.req.as_ref(), this.policy.as_ref()) {
                                (true, Some(req), Some(policy)) => policy.clone_request(req),
                                _ => None,
                            };
                            let req = match next {
                                Some(copy) => copy,
                                // Checked above: `req` is `Some`.
                                None => match this.req.take() {
                                    Some(req) => req,
                                    None => unreachable_request(),
                                },
                            };
                            let index = *this.sent;
                            let (fut, _) =
                                attempt::scope(Attempt::hedge(index, *this.first_peer), || {
                                    svc.call(req)
                                });
                            if let Some(slot) = this.hedges.iter_mut().find(|s| s.is_none()) {
                                *slot = Some(Box::pin(fut));
                            }
                            *this.armed = false;
                            shared.sent();
                            tracing::trace!(
                                target: TARGET_HEDGE,
                                name = &*shared.name,
                                attempt = index,
                                delay = ?*this.delay,
                                "hedge sent"
                            );
                            let next_at = this
                                .timer
                                .as_ref()
                                .as_pin_ref()
                                .and_then(|t| t.deadline().checked_add(*this.delay));
                            match (this.req.is_some(), next_at) {
                                (true, Some(at)) => {
                                    if let Some(timer) = this.timer.as_mut().as_pin_mut() {
                                        timer.reset(at);
                                    }
                                }
                                _ => stop_hedging(
                                    this.timer.as_mut(),
                                    this.svc,
                                    this.req,
                                    this.armed,
                                ),
                            }
                            launched = true;
                        }
                    }
                }
            }
            if !launched {
                break;
            }
        }

        let live = this.first.is_some() || this.hedges.iter().any(Option::is_some);
        if live || *this.armed {
            return Poll::Pending;
        }
        Poll::Ready(match this.bad.take() {
            Some(result) => result.map_err(Into::into),
            None => Err(PolledAfterCompletion.into()),
        })
    }
}

/// Records the latency of a first attempt that started at `start`, on the
/// key's tracker if any, else on the layer's (whose delay, which the
/// record may have recomputed, is then published).
fn record(shared: &Shared, key: Option<&DeadlineTracker>, start: u64) {
    let tracker = key.unwrap_or(&shared.tracker);
    let now = tracker.clock().nanos();
    tracker.record(Duration::from_nanos(now.saturating_sub(start)));
    if key.is_none() {
        shared.publish_delay();
    }
}

// `req` was checked to be `Some` under the same `&mut`; this cannot run.
#[cold]
fn unreachable_request<R>() -> R {
    unreachable!("a hedge is sent only while its request is held")
}

/// No more hedges for this call: the timer, the service and the request go.
fn stop_hedging<S, Req>(
    mut timer: Pin<&mut Option<Sleep>>,
    svc: &mut Option<S>,
    req: &mut Option<Req>,
    armed: &mut bool,
) {
    timer.set(None);
    *svc = None;
    *req = None;
    *armed = false;
}

/// The call is answered: every other attempt is dropped (cancelled) now,
/// not when the caller drops the future.
fn drop_all<S, Req, F>(
    timer: Pin<&mut Option<Sleep>>,
    hedges: &mut [Option<Pin<Box<F>>>; SLOTS],
    svc: &mut Option<S>,
    req: &mut Option<Req>,
    armed: &mut bool,
) {
    stop_hedging(timer, svc, req, armed);
    for slot in hedges.iter_mut() {
        *slot = None;
    }
}

//! [`ResponseFuture`]: one request's attempts, backoffs and result.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, Classify, DeadlineExceeded, Outcome};
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;

use crate::backoff::Delays;
use crate::clone::CloneRequest;
use crate::hint::RetryHint;
use crate::policy::{Decision, Policy};

pin_project! {
    /// The future of a [`Retry`](crate::Retry) call: a state machine of
    /// calling, backing off (the timer is held inline, nothing is boxed) and
    /// waiting for the service to be ready again.
    ///
    /// Dropping it at any point cancels the request: the in-flight call is
    /// dropped, the timer deregistered. A retry decided but not yet sent
    /// (dropped while backing off or waiting for readiness) gives its budget
    /// token back and is not counted in [`RetryStats`](crate::RetryStats):
    /// only calls made count.
    ///
    /// Inside a caller's [`Deadline`] scope (read once, in `call`), no retry
    /// is scheduled at or after the caller's deadline (the layer stops with
    /// [`StopReason::Deadline`](crate::StopReason::Deadline), as for its own
    /// deadline), and a retry whose wait for readiness outlasts it is not
    /// sent: the future ends at the caller's deadline with
    /// [`DeadlineExceeded`], even if the service never becomes ready.
    #[project = ResponseProj]
    pub struct ResponseFuture<S, Req, C, K, H>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        // A clone of the inner service, for the retries; `None` when no
        // retry is possible.
        service: Option<S>,
        // The copy the next attempt will send.
        request: Option<Req>,
        policy: Arc<Policy<C, K, H>>,
        attempts: u32,
        // A reading of the layer's clock, when a deadline needs it.
        start: Option<u64>,
        delays: Option<Delays>,
        // The budget epoch of the token taken for the retry being prepared,
        // until that retry is sent.
        token: Option<u32>,
        // The caller's deadline, when the request was made inside one.
        caller: Option<Instant>,
    }

    impl<S, Req, C, K, H> PinnedDrop for ResponseFuture<S, Req, C, K, H>
    where
        S: Service<Req>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(token) = this.token.take() {
                this.policy.refund(Some(token));
            }
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        BackingOff { #[pin] sleep: Sleep },
        // Armed for the caller's deadline, if any: a service that never
        // becomes ready does not hold the caller past it.
        Readying { #[pin] caller: Option<Sleep> },
        // Not started: the caller's deadline had passed `past` ago.
        Refused { past: std::time::Duration },
        Done,
    }
}

impl<S, Req, C, K, H> ResponseFuture<S, Req, C, K, H>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        future: S::Future,
        service: Option<S>,
        request: Option<Req>,
        policy: Arc<Policy<C, K, H>>,
        start: Option<u64>,
        caller: Option<Deadline>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            service,
            request,
            policy,
            attempts: 1,
            start,
            delays: None,
            token: None,
            caller: caller.map(Deadline::instant),
        }
    }

    /// A request not sent: the caller's deadline passed `past` ago.
    #[cold]
    pub(crate) fn refused(policy: Arc<Policy<C, K, H>>, past: std::time::Duration) -> Self {
        ResponseFuture {
            state: State::Refused { past },
            service: None,
            request: None,
            policy,
            attempts: 0,
            start: None,
            delays: None,
            token: None,
            caller: None,
        }
    }
}

impl<S, Req, C, K, H> fmt::Debug for ResponseFuture<S, Req, C, K, H>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "calling",
            State::BackingOff { .. } => "backing off",
            State::Readying { .. } => "waiting for readiness",
            State::Refused { .. } => "refused",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, Req, C, K, H> ResponseProj<'_, S, Req, C, K, H>
where
    S: Service<Req>,
{
    /// A retry not sent because the caller's deadline passed while the
    /// service was not ready: its token goes back, the service clone (and
    /// whatever it reserved) and the request copy are dropped now, and the
    /// stop is counted.
    #[cold]
    fn gave_up_waiting(&mut self) -> BoxError {
        self.policy.refund(self.token.take());
        self.state.set(State::Done);
        *self.service = None;
        *self.request = None;
        self.policy
            .note_stop(*self.attempts, crate::StopReason::Deadline);
        let past = self
            .caller
            .map(|c| Instant::now().saturating_duration_since(c))
            .unwrap_or_default();
        Box::new(DeadlineExceeded::new(past))
    }
}

impl<S, Req, C, K, H> Future for ResponseFuture<S, Req, C, K, H>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
    K: CloneRequest<Req>,
    H: RetryHint<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    let policy = &**this.policy;
                    let outcome = policy.classify.classify(&result);
                    // Success (or ignored): return as is. This is the whole
                    // success path: no clock, no shared write.
                    let failed = match (result, outcome) {
                        (Ok(response), Outcome::Failure) => Ok(response),
                        (Err(e), Outcome::Failure) => Err(e.into()),
                        (result, _) => {
                            this.state.set(State::Done);
                            return Poll::Ready(result.map_err(Into::into));
                        }
                    };
                    let can_resend = this.request.is_some() && this.service.is_some();
                    let mut decision = policy.decide(
                        *this.attempts,
                        can_resend,
                        *this.start,
                        this.delays,
                        &failed,
                    );
                    if let (Decision::Retry { at, token }, Some(caller)) = (&decision, *this.caller)
                        && at.unwrap_or_else(Instant::now) >= caller
                    {
                        // The retry would start when the caller has given
                        // up: stop, as for the layer's own deadline.
                        policy.refund(*token);
                        decision = Decision::Stop(crate::StopReason::Deadline);
                    }
                    match decision {
                        Decision::Stop(reason) => {
                            this.state.set(State::Done);
                            return Poll::Ready(match failed {
                                // A response classified as a failure is
                                // returned as the `Ok` it is.
                                Ok(response) => {
                                    policy.note_stop(*this.attempts, reason);
                                    Ok(response)
                                }
                                Err(err) => Err(policy.stop(*this.attempts, reason, err)),
                            });
                        }
                        Decision::Retry { at, token } => {
                            *this.token = token;
                            match at {
                                Some(at) => this.state.set(State::BackingOff {
                                    sleep: sleep_until(at),
                                }),
                                None => this.state.set(State::Readying {
                                    caller: this.caller.map(sleep_until),
                                }),
                            }
                        }
                    }
                }
                StateProj::BackingOff { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying {
                        caller: this.caller.map(sleep_until),
                    });
                }
                StateProj::Readying { caller } => {
                    // Invariant: `decide` only retries when both the service
                    // and the request copy are present (`can_resend`).
                    let (Some(service), Some(request)) =
                        (this.service.as_mut(), this.request.as_ref())
                    else {
                        this.state.set(State::Done);
                        return Poll::Ready(Err("seawall-retry: retry without a request".into()));
                    };
                    let ready = match service.poll_ready(cx) {
                        Poll::Ready(ready) => ready,
                        Poll::Pending => {
                            let Some(sleep) = caller.as_pin_mut() else {
                                return Poll::Pending;
                            };
                            ready!(sleep.poll(cx));
                            // The caller gave up while the service was not
                            // ready: the retry is not sent.
                            return Poll::Ready(Err(this.gave_up_waiting()));
                        }
                    };
                    if let Err(e) = ready {
                        // The service broke while we backed off: stop. The
                        // retry was never sent; its token goes back.
                        this.policy.refund(this.token.take());
                        this.state.set(State::Done);
                        let reason = crate::StopReason::NotRetryable;
                        return Poll::Ready(Err(this.policy.stop(
                            *this.attempts,
                            reason,
                            e.into(),
                        )));
                    }
                    if let Some(caller) = *this.caller
                        && caller <= Instant::now()
                    {
                        // The wait for readiness outlasted the caller.
                        return Poll::Ready(Err(this.gave_up_waiting()));
                    }
                    // Keep a copy only if another retry may follow.
                    let next = if *this.attempts + 1 < this.policy.max_attempts() {
                        this.policy.clone.clone_request(request)
                    } else {
                        None
                    };
                    let request = match next {
                        Some(copy) => this.request.replace(copy),
                        None => this.request.take(),
                    };
                    let Some(request) = request else {
                        this.state.set(State::Done);
                        return Poll::Ready(Err("seawall-retry: retry without a request".into()));
                    };
                    // Counted as it is made: a retry dropped before this
                    // point was never an attempt.
                    *this.attempts += 1;
                    *this.token = None;
                    this.policy.note_retry_sent();
                    let future = service.call(request);
                    this.state.set(State::Calling { future });
                }
                StateProj::Refused { past } => {
                    let past = *past;
                    this.state.set(State::Done);
                    return Poll::Ready(Err(DeadlineExceeded::new(past).into()));
                }
                StateProj::Done => {
                    return Poll::Ready(
                        Err("seawall-retry: future polled after completion".into()),
                    );
                }
            }
        }
    }
}

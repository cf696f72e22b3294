//! Shared harness of seawall's benchmarks: the bare services every layer is
//! measured against, small tower adapters for the peers that have none
//! (failsafe's breaker, governor's limiters), and the drivers: one call by
//! hand, two threads on one service, eight tasks on a two-worker runtime.
//!
//! Every single-thread bench measures `poll_ready` + `call` + polling the
//! response future to completion, by hand, with a no-op waker: no runtime's
//! scheduling in the measurement. The bare [`Echo`] service answers
//! `Ready(Ok)` at once, so what a layer costs on top of it is the layer's own
//! overhead per call. Layers that make timers (timeouts, tower's `RateLimit`,
//! tower-resilience's layers) need a tokio runtime *context*, not a running
//! runtime: the benches enter one (`Runtime::enter`) for every contender alike.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, Ready, poll_fn, ready};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tower_service::Service;

/// The error of the benchmarked services: a real `Error` type, cloneable, as
/// some peers require. Zero-sized, so boxing it allocates nothing: what an
/// allocation count shows is the layer's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail;

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

/// The bare service: answers every request with itself, at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Fail;
    type Future = Ready<Result<u64, Fail>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Fail>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// A service that fails every request at once (for rejection paths: trip a
/// breaker, exhaust a retry).
#[derive(Debug, Clone, Copy, Default)]
pub struct Failing;

impl Service<u64> for Failing {
    type Response = u64;
    type Error = Fail;
    type Future = Ready<Result<u64, Fail>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Fail>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        ready(Err(Fail))
    }
}

/// `Echo` with an infallible error type, for peers that want one.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoInfallible;

impl Service<u64> for EchoInfallible {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// The request [`Stall`] never answers: a call with it holds a concurrency
/// slot for as long as its response future lives.
pub const STALL: u64 = u64::MAX;

/// `Echo`, except that a call with [`STALL`] never completes: the way to hold
/// a concurrency limit's only slot, so that the next call is rejected.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stall;

/// The response future of [`Stall`].
#[derive(Debug)]
pub struct StallFuture(Option<u64>);

impl Future for StallFuture {
    type Output = Result<u64, Fail>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0 {
            Some(req) => Poll::Ready(Ok(req)),
            None => Poll::Pending,
        }
    }
}

impl Service<u64> for Stall {
    type Response = u64;
    type Error = Fail;
    type Future = StallFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Fail>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        StallFuture((req != STALL).then_some(req))
    }
}

/// Calls `svc` once by hand: `poll_ready` until ready, `call`, then polls the
/// response future until it completes. Spins on `Pending` (with a no-op
/// waker), which the benchmarked services only return on paths that are not
/// measured here.
///
/// Must run inside a tokio runtime context (`Runtime::enter`) for layers that
/// create timers.
pub fn call<S, Req>(svc: &mut S, req: Req) -> Result<S::Response, S::Error>
where
    S: Service<Req>,
{
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    let mut fut = pin!(svc.call(req));
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::hint::spin_loop();
    }
}

/// Starts a call whose response future never completes (a [`Stall`] below
/// the layer, called with [`STALL`]) and returns the future: while it lives,
/// it holds whatever the layer reserved for it (a concurrency slot).
///
/// Panics if the layer is not ready at once or answers the call: this is set
/// up before a bench, never measured.
pub fn hold<S, Req>(svc: &mut S, req: Req) -> Pin<Box<S::Future>>
where
    S: Service<Req>,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))),
        "ready at once"
    );
    let mut fut = Box::pin(svc.call(req));
    assert!(fut.as_mut().poll(&mut cx).is_pending(), "the call is held");
    fut
}

/// Polls `fut` once with a no-op waker and returns its output: for set-up
/// steps that are `async` only in name (an uncontended async lock), never
/// measured.
///
/// Panics if `fut` is not ready at once.
pub fn ready_now<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("ready at once"),
    }
}

/// Two threads calling clones of `svc`, `iters` calls each, inside `rt`'s
/// context; `req(thread, i)` makes the request. Returns the elapsed time,
/// which for criterion's `iter_custom` reads as time per call per thread
/// (ns/call·core: at perfect scaling it equals the single-thread figure).
pub fn two_threads<S>(
    rt: &tokio::runtime::Handle,
    svc: &S,
    iters: u64,
    req: impl Fn(u64, u64) -> u64 + Sync,
) -> Duration
where
    S: Service<u64> + Clone + Send,
{
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let mut svc = svc.clone();
            let req = &req;
            s.spawn(move || {
                let _enter = rt.enter();
                for i in 0..iters {
                    let _ = std::hint::black_box(call(&mut svc, req(t, i)));
                }
            });
        }
    });
    start.elapsed()
}

/// Tasks [`tasks`] spawns.
pub const TASKS: u64 = 8;

/// [`TASKS`] tasks on `rt` (built with two workers) calling clones of `svc`,
/// `iters / 4` calls each (`2 * iters` in all, as [`two_threads`]), awaiting
/// readiness and the response as a server's tasks do, yielding every 64
/// calls so that the tasks interleave. Returns the elapsed time: per call
/// per worker, as [`two_threads`].
pub fn tasks<S>(
    rt: &tokio::runtime::Runtime,
    svc: &S,
    iters: u64,
    req: impl Fn(u64, u64) -> u64 + Clone + Send + 'static,
) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
{
    let per_task = iters.div_ceil(TASKS / 2);
    let start = Instant::now();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let mut svc = svc.clone();
            let req = req.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per_task {
                    if poll_fn(|cx| svc.poll_ready(cx)).await.is_ok() {
                        let _ = std::hint::black_box(svc.call(req(t, i)).await);
                    }
                    if i % 64 == 63 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for h in handles {
            // A task that panicked has already printed its panic.
            let _ = h.await;
        }
    });
    start.elapsed()
}

/// One contended case of a criterion group: `svc` called from two threads
/// ([`two_threads`], in `rt`'s context) or, with `by_tasks`, from [`TASKS`]
/// tasks on `rt` ([`tasks`]); `req(thread_or_task, i)` makes the requests.
pub fn contended_case<S, R>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    rt: &tokio::runtime::Runtime,
    by_tasks: bool,
    svc: S,
    req: R,
) where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    R: Fn(u64, u64) -> u64 + Clone + Send + Sync + 'static,
{
    g.bench_function(id, |b| {
        b.iter_custom(|n| {
            if by_tasks {
                tasks(rt, &svc, n, req.clone())
            } else {
                two_threads(rt.handle(), &svc, n, &req)
            }
        })
    });
}

/// A two-worker multi-thread runtime with timers, for [`tasks`] and as the
/// context of [`two_threads`].
pub fn two_workers() -> tokio::runtime::Runtime {
    // Building a runtime fails only when the OS refuses threads: nothing to
    // bench then.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a two-worker runtime")
}

/// The response future of the peer adapters: the inner service's future, or
/// a refusal made at `call`.
#[derive(Debug)]
pub enum Gated<F, E> {
    /// Admitted: the inner future.
    Run(F),
    /// Refused at `call`.
    Refused(Option<E>),
}

impl<F, T, E, E2> Future for Gated<F, E2>
where
    F: Future<Output = Result<T, E>> + Unpin,
    E2: From<E> + Unpin,
{
    type Output = Result<T, E2>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Gated::Run(f) => Pin::new(f).poll(cx).map_err(E2::from),
            Gated::Refused(e) => match e.take() {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

/// The error of the peer adapters: the inner error, or a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerError {
    /// The inner service failed.
    Inner(Fail),
    /// The peer refused the call.
    Refused,
}

impl From<Fail> for PeerError {
    fn from(e: Fail) -> Self {
        PeerError::Inner(e)
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Inner(e) => e.fmt(f),
            PeerError::Refused => f.write_str("refused"),
        }
    }
}

impl std::error::Error for PeerError {}

/// failsafe's default breaker: a success rate over a time window, or five
/// consecutive failures; jittered backoff.
pub type FailsafeBreaker = failsafe::StateMachine<FailsafePolicy, ()>;

/// failsafe's circuit breaker as a tower service, the way its own futures
/// integration uses it: ask `is_call_permitted` at `call`, report
/// `on_success`/`on_error` when the response is ready. failsafe ships no
/// tower layer; this adapter is the least a user would write.
#[derive(Debug)]
pub struct Failsafe<S, P = FailsafePolicy> {
    inner: S,
    breaker: failsafe::StateMachine<P, ()>,
}

impl<S: Clone, P> Clone for Failsafe<S, P> {
    fn clone(&self) -> Self {
        Failsafe {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
        }
    }
}

/// failsafe's default failure policy (see [`FailsafeBreaker`]).
pub type FailsafePolicy = failsafe::failure_policy::OrElse<
    failsafe::failure_policy::SuccessRateOverTimeWindow<failsafe::backoff::EqualJittered>,
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::EqualJittered>,
>;

/// A failsafe breaker that opens on the first failure and stays open for an
/// hour: the rejection path, for as long as a bench runs.
pub type FailsafeStaysOpen =
    failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>;

impl<S, P> Failsafe<S, P> {
    /// `inner` behind `breaker` (clones share the breaker's state).
    pub fn new(inner: S, breaker: failsafe::StateMachine<P, ()>) -> Self {
        Failsafe { inner, breaker }
    }
}

impl Failsafe<Echo> {
    /// failsafe's default breaker: `failsafe::Config::new().build()`.
    pub fn default_breaker() -> FailsafeBreaker {
        failsafe::Config::new().build()
    }

    /// A breaker already open, that stays open for an hour.
    pub fn open_breaker() -> failsafe::StateMachine<FailsafeStaysOpen, ()> {
        let policy = failsafe::failure_policy::consecutive_failures(
            1,
            failsafe::backoff::constant(Duration::from_secs(3600)),
        );
        let breaker = failsafe::Config::new().failure_policy(policy).build();
        breaker.on_error();
        breaker
    }
}

/// The response future of [`Failsafe`]: reports the outcome to the breaker.
#[derive(Debug)]
pub struct FailsafeFuture<F, P> {
    inner: Gated<F, PeerError>,
    breaker: failsafe::StateMachine<P, ()>,
}

impl<F, P> Future for FailsafeFuture<F, P>
where
    F: Future<Output = Result<u64, Fail>> + Unpin,
    P: failsafe::FailurePolicy,
{
    type Output = Result<u64, PeerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        match &out {
            Ok(_) => self.breaker.on_success(),
            Err(PeerError::Inner(_)) => self.breaker.on_error(),
            Err(PeerError::Refused) => {}
        }
        Poll::Ready(out)
    }
}

impl<S, P> Service<u64> for Failsafe<S, P>
where
    S: Service<u64, Response = u64, Error = Fail>,
    S::Future: Unpin,
    P: failsafe::FailurePolicy,
{
    type Response = u64;
    type Error = PeerError;
    type Future = FailsafeFuture<S::Future, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PeerError>> {
        self.inner.poll_ready(cx).map_err(PeerError::Inner)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        let inner = if self.breaker.is_call_permitted() {
            Gated::Run(self.inner.call(req))
        } else {
            Gated::Refused(Some(PeerError::Refused))
        };
        FailsafeFuture {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// A governor quota no bench run can spend: a cell per nanosecond, a burst
/// of `u32::MAX`.
pub fn huge_quota() -> governor::Quota {
    governor::Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap_or(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::MAX)
}

/// A governor quota of one cell an hour: spent by one call, for as long as a
/// bench runs.
pub fn hourly_quota() -> governor::Quota {
    governor::Quota::per_hour(NonZeroU32::MIN)
}

/// governor's direct (one-state) GCRA limiter as a tower service: one
/// `check` per call, refused at once when the quota is spent.
#[derive(Debug, Clone)]
pub struct Governor<S> {
    inner: S,
    limiter: Arc<governor::DefaultDirectRateLimiter>,
}

impl<S> Governor<S> {
    /// `inner` behind a limiter of `quota`.
    pub fn new(inner: S, quota: governor::Quota) -> Self {
        Governor {
            inner,
            limiter: Arc::new(governor::RateLimiter::direct(quota)),
        }
    }
}

impl<S> Service<u64> for Governor<S>
where
    S: Service<u64, Response = u64, Error = Fail>,
    S::Future: Unpin,
{
    type Response = u64;
    type Error = PeerError;
    type Future = Gated<S::Future, PeerError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PeerError>> {
        self.inner.poll_ready(cx).map_err(PeerError::Inner)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        match self.limiter.check() {
            Ok(()) => Gated::Run(self.inner.call(req)),
            Err(_) => Gated::Refused(Some(PeerError::Refused)),
        }
    }
}

/// governor's keyed GCRA limiter (one state per key, in its default
/// hash-map store) as a tower service; the key is `key(&request)`.
#[derive(Clone)]
pub struct KeyedGovernor<S, K: Hash + Eq + Clone> {
    inner: S,
    key: fn(&u64) -> K,
    limiter: Arc<governor::DefaultKeyedRateLimiter<K>>,
}

impl<S: fmt::Debug, K: Hash + Eq + Clone> fmt::Debug for KeyedGovernor<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedGovernor")
            .field("inner", &self.inner)
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl<S, K: Hash + Eq + Clone> KeyedGovernor<S, K> {
    /// `inner` behind a keyed limiter of `quota` per key.
    pub fn new(inner: S, key: fn(&u64) -> K, quota: governor::Quota) -> Self {
        KeyedGovernor {
            inner,
            key,
            limiter: Arc::new(governor::RateLimiter::keyed(quota)),
        }
    }
}

impl<S, K> Service<u64> for KeyedGovernor<S, K>
where
    S: Service<u64, Response = u64, Error = Fail>,
    S::Future: Unpin,
    K: Hash + Eq + Clone,
{
    type Response = u64;
    type Error = PeerError;
    type Future = Gated<S::Future, PeerError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PeerError>> {
        self.inner.poll_ready(cx).map_err(PeerError::Inner)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        match self.limiter.check_key(&(self.key)(&req)) {
            Ok(()) => Gated::Run(self.inner.call(req)),
            Err(_) => Gated::Refused(Some(PeerError::Refused)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_the_bare_services() {
        assert_eq!(call(&mut Echo, 7), Ok(7));
        assert_eq!(call(&mut EchoInfallible, 7), Ok(7));
        assert_eq!(call(&mut Failing, 7), Err(Fail));
        assert_eq!(call(&mut Stall, 7), Ok(7));
        let _held = hold(&mut Stall, STALL);
    }

    #[test]
    fn failsafe_adapter_opens_after_failures() {
        let mut open = Failsafe::new(Echo, Failsafe::open_breaker());
        assert_eq!(call(&mut open, 1), Err(PeerError::Refused));
        let breaker = Failsafe::default_breaker();
        let mut ok = Failsafe::new(Echo, breaker.clone());
        let mut failing = Failsafe::new(Failing, breaker);
        assert_eq!(call(&mut ok, 1), Ok(1));
        for _ in 0..5 {
            assert_eq!(call(&mut failing, 1), Err(PeerError::Inner(Fail)));
        }
        assert_eq!(call(&mut ok, 1), Err(PeerError::Refused));
    }

    #[test]
    fn governor_adapters_refuse_past_the_burst() {
        let mut svc = Governor::new(Echo, hourly_quota());
        assert_eq!(call(&mut svc, 1), Ok(1));
        assert_eq!(call(&mut svc, 1), Err(PeerError::Refused));
        let mut keyed = KeyedGovernor::new(Echo, |r: &u64| *r, hourly_quota());
        assert_eq!(call(&mut keyed, 1), Ok(1));
        assert_eq!(call(&mut keyed, 2), Ok(2));
        assert_eq!(call(&mut keyed, 1), Err(PeerError::Refused));
    }

    #[test]
    fn two_threads_and_tasks_run_every_call() {
        let rt = two_workers();
        assert!(two_threads(rt.handle(), &Echo, 100, |t, i| t + i) > Duration::ZERO);
        assert!(tasks(&rt, &Echo, 100, |t, i| t + i) > Duration::ZERO);
    }
}

/// tower's usual budgeted retry policy, as its docs write it: deposit on
/// success, withdraw per retry, at most `attempts` attempts.
#[derive(Clone)]
pub struct TpsPolicy {
    budget: Arc<tower::retry::budget::TpsBudget>,
    attempts: u32,
}

impl TpsPolicy {
    /// tower's documented defaults (a 10s window, 10 retries a second,
    /// 20%), 3 attempts.
    pub fn new() -> Self {
        Self::with(tower::retry::budget::TpsBudget::new(
            Duration::from_secs(10),
            10,
            0.2,
        ))
    }

    /// A budget that allows no retry, 3 attempts.
    pub fn spent() -> Self {
        Self::with(tower::retry::budget::TpsBudget::new(
            Duration::from_secs(10),
            0,
            0.0,
        ))
    }

    fn with(budget: tower::retry::budget::TpsBudget) -> Self {
        TpsPolicy {
            budget: Arc::new(budget),
            attempts: 3,
        }
    }
}

impl Default for TpsPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl<Res, E> tower::retry::Policy<u64, Res, E> for TpsPolicy {
    type Future = Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<Res, E>) -> Option<Self::Future> {
        use tower::retry::budget::Budget;
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.attempts > 1 && self.budget.withdraw() => {
                self.attempts -= 1;
                Some(ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

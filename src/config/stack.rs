//! The built stacks: [`ClientStack`] and [`ServerStack`], each a
//! `tower::Layer`, [`Part`], the service of a part that may be left out, and
//! [`BudgetPartLayer`], the budget of either backend.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use seawall_core::{BoxError, ErrorsAsFailures};
use tower_layer::Layer;
use tower_service::Service;

use seawall_breaker::{KeyedBreaker, KeyedBreakerLayer};
use seawall_budget::{Budget, BudgetLayer};
use seawall_retry::hint::NoHint;
use seawall_retry::{ByClone, Retry, RetryLayer};
use seawall_shed::{NoPriority, Shed, ShedLayer};
use seawall_timeout::{
    AdaptiveTimeout, AdaptiveTimeoutLayer, KeyedAdaptiveTimeout, KeyedAdaptiveTimeoutLayer,
};

/// One part of a built stack: the part's service around the inner one when
/// the part was configured, or the inner service itself when it was left out.
///
/// Both arms answer with `tower::BoxError`, so a stack's type is the same
/// whichever parts a file turned on. `poll_ready` and `call` go straight to
/// the arm in use.
#[derive(Debug, Clone)]
pub struct Part<A, B> {
    inner: Arm<A, B>,
}

#[derive(Debug, Clone)]
enum Arm<A, B> {
    On(A),
    Off(B),
}

impl<A, B> Part<A, B> {
    /// `layer` around `inner`, or `inner` alone when there is no layer.
    fn new<L>(layer: Option<&L>, inner: B) -> Self
    where
        L: Layer<B, Service = A>,
    {
        let inner = match layer {
            Some(l) => Arm::On(l.layer(inner)),
            None => Arm::Off(inner),
        };
        Part { inner }
    }

    /// `true` when the part is configured (its layer wraps the inner service).
    pub fn is_on(&self) -> bool {
        matches!(self.inner, Arm::On(_))
    }
}

impl<A, B, Req> Service<Req> for Part<A, B>
where
    A: Service<Req>,
    A::Error: Into<BoxError>,
    B: Service<Req, Response = A::Response>,
    B::Error: Into<BoxError>,
{
    type Response = A::Response;
    type Error = BoxError;
    type Future = PartFuture<A::Future, B::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.inner {
            Arm::On(a) => a.poll_ready(cx).map_err(Into::into),
            Arm::Off(b) => b.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let inner = match &mut self.inner {
            Arm::On(a) => ArmFuture::On {
                future: a.call(req),
            },
            Arm::Off(b) => ArmFuture::Off {
                future: b.call(req),
            },
        };
        PartFuture { inner }
    }
}

pin_project! {
    /// The response future of a [`Part`].
    pub struct PartFuture<A, B> {
        #[pin]
        inner: ArmFuture<A, B>,
    }
}

pin_project! {
    #[project = ArmProj]
    enum ArmFuture<A, B> {
        On { #[pin] future: A },
        Off { #[pin] future: B },
    }
}

impl<A, B> fmt::Debug for PartFuture<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartFuture").finish_non_exhaustive()
    }
}

impl<A, B, T, EA, EB> Future for PartFuture<A, B>
where
    A: Future<Output = Result<T, EA>>,
    B: Future<Output = Result<T, EB>>,
    EA: Into<BoxError>,
    EB: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            ArmProj::On { future } => future.poll(cx).map(|r| r.map_err(Into::into)),
            ArmProj::Off { future } => future.poll(cx).map(|r| r.map_err(Into::into)),
        }
    }
}

/// The budget part of a built stack: a local [`BudgetLayer`] or, with the
/// `redis` feature, a budget shared through Redis
/// ([`RedisBudgetLayer`](seawall_budget_redis::RedisBudgetLayer)), as the
/// config's `backend` said. Returned by [`ClientStack::budget`] and
/// [`ServerStack::budget`]; match on it to reach the layer's own stats:
///
/// ```
/// use seawall::config::{BudgetPartLayer, StackConfig};
///
/// let config = StackConfig::from_toml_str("[server.budget]\nrate = 100\n").unwrap();
/// let server = config.server.build().unwrap();
/// match server.budget() {
///     Some(BudgetPartLayer::Local(layer)) => assert_eq!(layer.budget().burst(), 10),
///     _ => unreachable!("a local budget"),
/// }
/// assert!(server.budget().unwrap().as_local().is_some());
/// ```
///
/// As a `tower::Layer` it makes a [`BudgetPartService`]: the backend's own
/// service, with the same behaviour (Reject or Wait mode,
/// [`BudgetExhausted`](seawall_core::BudgetExhausted) from the response
/// future).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BudgetPartLayer {
    /// Tokens in this process.
    Local(BudgetLayer),
    /// Tokens in Redis, shared by replicas. Its background task (all the
    /// Redis traffic) starts on the tokio runtime current at build time, or
    /// else at the first call.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(seawall_budget_redis::RedisBudgetLayer),
}

impl BudgetPartLayer {
    /// Where the tokens live.
    pub fn backend(&self) -> super::BudgetBackend {
        match self {
            BudgetPartLayer::Local(_) => super::BudgetBackend::Local,
            #[cfg(feature = "redis")]
            BudgetPartLayer::Redis(_) => super::BudgetBackend::Redis,
        }
    }

    /// The local budget, if the backend is local.
    pub fn as_local(&self) -> Option<&BudgetLayer> {
        match self {
            BudgetPartLayer::Local(l) => Some(l),
            #[cfg(feature = "redis")]
            BudgetPartLayer::Redis(_) => None,
        }
    }

    /// The shared budget, if the backend is Redis (feature `redis`).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn as_redis(&self) -> Option<&seawall_budget_redis::RedisBudgetLayer> {
        match self {
            BudgetPartLayer::Redis(l) => Some(l),
            BudgetPartLayer::Local(_) => None,
        }
    }
}

impl<S> Layer<S> for BudgetPartLayer {
    type Service = BudgetPartService<S>;

    fn layer(&self, inner: S) -> BudgetPartService<S> {
        let inner = match self {
            BudgetPartLayer::Local(l) => BudgetArm::Local(l.layer(inner)),
            #[cfg(feature = "redis")]
            BudgetPartLayer::Redis(l) => BudgetArm::Redis(l.layer(inner)),
        };
        BudgetPartService { inner }
    }
}

/// The service a [`BudgetPartLayer`] makes: the local or the shared
/// budget's service around `S`; `poll_ready` and `call` go straight to it.
#[derive(Debug, Clone)]
pub struct BudgetPartService<S> {
    inner: BudgetArm<S>,
}

#[derive(Debug, Clone)]
enum BudgetArm<S> {
    Local(Budget<S>),
    #[cfg(feature = "redis")]
    Redis(seawall_budget_redis::RedisBudget<S>),
}

impl<S, Req> Service<Req> for BudgetPartService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BudgetPartFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.inner {
            BudgetArm::Local(s) => s.poll_ready(cx),
            #[cfg(feature = "redis")]
            BudgetArm::Redis(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let inner = match &mut self.inner {
            BudgetArm::Local(s) => BudgetFutureArm::Local {
                future: s.call(req),
            },
            #[cfg(feature = "redis")]
            BudgetArm::Redis(s) => BudgetFutureArm::Redis {
                future: s.call(req),
            },
        };
        BudgetPartFuture { inner }
    }
}

pin_project! {
    /// The response future of a [`BudgetPartService`].
    pub struct BudgetPartFuture<F> {
        #[pin]
        inner: BudgetFutureArm<F>,
    }
}

#[cfg(not(feature = "redis"))]
pin_project! {
    #[project = BudgetFutureProj]
    enum BudgetFutureArm<F> {
        Local { #[pin] future: seawall_budget::ResponseFuture<F> },
    }
}

#[cfg(feature = "redis")]
pin_project! {
    #[project = BudgetFutureProj]
    enum BudgetFutureArm<F> {
        Local { #[pin] future: seawall_budget::ResponseFuture<F> },
        Redis { #[pin] future: seawall_budget_redis::ResponseFuture<F> },
    }
}

impl<F> fmt::Debug for BudgetPartFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetPartFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for BudgetPartFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            BudgetFutureProj::Local { future } => future.poll(cx),
            #[cfg(feature = "redis")]
            BudgetFutureProj::Redis { future } => future.poll(cx),
        }
    }
}

type ClientBudget<S> = Part<BudgetPartService<S>, S>;
type ClientTimeout<S, KF, K> = Part<KeyedAdaptiveTimeout<ClientBudget<S>, KF, K>, ClientBudget<S>>;
type ClientBreaker<S, KF, K, C> =
    Part<KeyedBreaker<ClientTimeout<S, KF, K>, KF, K, C>, ClientTimeout<S, KF, K>>;

/// The service a [`ClientStack`] makes of `S`: retry → keyed breaker →
/// keyed adaptive timeout → budget → `S`, each a [`Part`] that may be off.
pub type ClientService<S, KF, K, C = ErrorsAsFailures, R = ByClone, H = NoHint> =
    Part<Retry<ClientBreaker<S, KF, K, C>, C, R, H>, ClientBreaker<S, KF, K, C>>;

/// The recommended per-peer client stack, built by
/// [`ClientConfig::build`](super::ClientConfig::build): from the outside in,
///
/// 1. **retry** ([`RetryLayer`]): retries failed calls with backoff, within
///    a retry budget, and never a rejection that says "do not" (an
///    `Overloaded` from the peer's shedder);
/// 2. **keyed breaker** ([`KeyedBreakerLayer`]): one circuit breaker per
///    peer, so a failing peer is cut off and its neighbours are not; a retry
///    meets the breaker again, so retries stop as soon as it opens;
/// 3. **keyed adaptive timeout** ([`KeyedAdaptiveTimeoutLayer`]): each
///    attempt gets its peer's own deadline, and a timeout counts as a
///    failure for the breaker above it;
/// 4. **budget** ([`BudgetPartLayer`]): a rate budget for every attempt
///    this client makes, retries included; local, or shared by replicas
///    through Redis.
///
/// A part missing from the config is left out (its [`Part`] passes calls
/// straight through). The stack is a `tower::Layer`; every built part is
/// shared by all the services the stack makes, so its accessors
/// ([`breaker`](Self::breaker) for per-peer stats, …) see all their calls.
///
/// Its services need the inner service to be `Clone` (retry calls it again)
/// and copy each request for a possible retry with `R`: by default
/// ([`ByClone`]) requests must be `Clone` (`http::Request<B>` is when `B`
/// is); [`ClientConfig::build_with`](super::ClientConfig::build_with) takes
/// a copy function instead, for bodies that cannot be copied. `H` reads
/// the retry hints of answers (`Retry-After`…; see
/// [`RetryBuilder::hint`](seawall_retry::RetryBuilder::hint)): none by
/// default, HTTP's for [`build_http`](super::ClientConfig::build_http),
/// gRPC's pushback for [`build_grpc`](super::ClientConfig::build_grpc); the
/// retry table's `honour_hints = false` turns the reader off.
pub struct ClientStack<KF, K, C = ErrorsAsFailures, R = ByClone, H = NoHint> {
    pub(super) retry: Option<RetryLayer<C, R, H>>,
    pub(super) breaker: Option<KeyedBreakerLayer<KF, K, C>>,
    pub(super) timeout: Option<KeyedAdaptiveTimeoutLayer<KF, K>>,
    pub(super) budget: Option<BudgetPartLayer>,
}

impl<KF, K, C, R, H> ClientStack<KF, K, C, R, H> {
    /// The retry layer, if configured: [`RetryLayer::stats`] counts the
    /// attempts of every request.
    pub fn retry(&self) -> Option<&RetryLayer<C, R, H>> {
        self.retry.as_ref()
    }

    /// The keyed breaker, if configured: per-peer state, stats, health, and
    /// `force_open`/`reset` by key.
    pub fn breaker(&self) -> Option<&KeyedBreakerLayer<KF, K, C>> {
        self.breaker.as_ref()
    }

    /// The keyed adaptive timeout, if configured: each peer's deadline.
    pub fn timeout(&self) -> Option<&KeyedAdaptiveTimeoutLayer<KF, K>> {
        self.timeout.as_ref()
    }

    /// The budget, if configured: local, or shared through Redis, as the
    /// config's `backend` said.
    pub fn budget(&self) -> Option<&BudgetPartLayer> {
        self.budget.as_ref()
    }
}

impl<KF, K, C: Clone, R, H> Clone for ClientStack<KF, K, C, R, H> {
    fn clone(&self) -> Self {
        ClientStack {
            retry: self.retry.clone(),
            breaker: self.breaker.clone(),
            timeout: self.timeout.clone(),
            budget: self.budget.clone(),
        }
    }
}

impl<KF, K, C, R, H> fmt::Debug for ClientStack<KF, K, C, R, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStack")
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("timeout", &self.timeout)
            .field("budget", &self.budget)
            .finish()
    }
}

impl<S, KF, K, C: Clone, R, H> Layer<S> for ClientStack<KF, K, C, R, H> {
    type Service = ClientService<S, KF, K, C, R, H>;

    fn layer(&self, inner: S) -> Self::Service {
        let budget = Part::new(self.budget.as_ref(), inner);
        let timeout = Part::new(self.timeout.as_ref(), budget);
        let breaker = Part::new(self.breaker.as_ref(), timeout);
        Part::new(self.retry.as_ref(), breaker)
    }
}

type ServerTimeout<S> = Part<AdaptiveTimeout<S>, S>;
type ServerBudget<S> = Part<BudgetPartService<ServerTimeout<S>>, ServerTimeout<S>>;

/// The service a [`ServerStack`] makes of `S`: shed → budget → timeout →
/// `S`, each a [`Part`] that may be off.
pub type ServerService<S, P = NoPriority, C = ErrorsAsFailures> =
    Part<Shed<ServerBudget<S>, P, C>, ServerBudget<S>>;

/// The recommended server stack, built by
/// [`ServerConfig::build`](super::ServerConfig::build): from the outside in,
///
/// 1. **shed** ([`ShedLayer`]): refuses work beyond what the server can hold
///    in flight, at once, before it costs anything;
/// 2. **budget** ([`BudgetPartLayer`]): a rate budget for admitted
///    requests, local or shared by replicas through Redis;
/// 3. **timeout** ([`AdaptiveTimeoutLayer`]): a deadline for each request,
///    fixed or following live latency, so a stuck handler frees its
///    in-flight slot.
///
/// A part missing from the config is left out. The stack is a
/// `tower::Layer`; every part is shared by all the services it makes.
///
/// `P` gives each request its shedding priority and `C` says which
/// outcomes are failures for an adaptive limit; both are set by
/// [`ServerConfig::build_with`](super::ServerConfig::build_with) (by default
/// every request is `Normal` and an `Err` is a failure).
#[derive(Clone, Debug)]
pub struct ServerStack<P = NoPriority, C = ErrorsAsFailures> {
    pub(super) shed: Option<ShedLayer<P, C>>,
    pub(super) budget: Option<BudgetPartLayer>,
    pub(super) timeout: Option<AdaptiveTimeoutLayer>,
}

impl<P, C> ServerStack<P, C> {
    /// The shedder, if configured: in-flight count, limit, shed counts.
    pub fn shed(&self) -> Option<&ShedLayer<P, C>> {
        self.shed.as_ref()
    }

    /// The budget, if configured: local, or shared through Redis, as the
    /// config's `backend` said.
    pub fn budget(&self) -> Option<&BudgetPartLayer> {
        self.budget.as_ref()
    }

    /// The timeout, if configured: its current deadline and latency stats.
    pub fn timeout(&self) -> Option<&AdaptiveTimeoutLayer> {
        self.timeout.as_ref()
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for ServerStack<P, C> {
    type Service = ServerService<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        let timeout = Part::new(self.timeout.as_ref(), inner);
        let budget = Part::new(self.budget.as_ref(), timeout);
        Part::new(self.shed.as_ref(), budget)
    }
}

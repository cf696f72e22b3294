//! [`SeawallMiddleware`] and its [`MiddlewareBuilder`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use seawall_breaker::{KeyedBreakerConfig, KeyedBreakerLayer};
use seawall_budget::{BudgetBuilder, BudgetConfig, BudgetLayer};
use seawall_core::config::Check;
use seawall_core::key::Host;
use seawall_core::{BoxError, Clock, ConfigError};
use seawall_fallback::{FallbackConfig, FallbackLayer, FallbackOn, FnBackup};
use seawall_retry::{RetryConfig, RetryLayer};
use seawall_timeout::{KeyedAdaptiveTimeoutConfig, KeyedAdaptiveTimeoutLayer};
use tokio::sync::Mutex;

use crate::classify::{ResponseHint, ResponseStatus, TryClone};
use crate::error::into_middleware_error;
use crate::key::ByAuthority;
use crate::service::{Maybe, NextService, Oneshot};

/// What answers a request when the fallback is used: the request (a copy
/// made before the call) and the error the stack ended with.
pub type AnswerFn =
    Box<dyn Fn(Request, BoxError) -> Result<Response, BoxError> + Send + Sync + 'static>;

/// The retry layer the middleware runs: status classification, copies by
/// `try_clone`, hints from the response headers.
pub type ReqwestRetryLayer = RetryLayer<ResponseStatus, TryClone, ResponseHint>;
/// The keyed breaker the middleware runs: one breaker per authority.
pub type ReqwestBreakerLayer = KeyedBreakerLayer<ByAuthority, Host, ResponseStatus>;
/// The keyed adaptive timeout the middleware runs: one deadline per authority.
pub type ReqwestTimeoutLayer = KeyedAdaptiveTimeoutLayer<ByAuthority, Host>;
/// The fallback layer the middleware runs: a closure answers.
pub type ReqwestFallbackLayer = FallbackLayer<FnBackup<AnswerFn>, FallbackOn, TryClone>;

/// A `reqwest_middleware::Middleware` that runs seawall's client stack around
/// the rest of the chain (`Next`). From the outside in, each part optional:
///
/// 1. **fallback**: when the stack below refuses (or, with
///    [`FallbackOn::Failure`], fails), a closure answers instead;
/// 2. **retry**: failed attempts (transport errors, 5xx, 429) are retried
///    with backoff within a retry budget, waiting at least what the peer
///    asked for (`Retry-After`, `RateLimit` reset: [`ResponseHint`]),
///    never a refusal that says "do not" (`Overloaded`, `BudgetExhausted`);
/// 3. **keyed breaker**: one circuit breaker per authority
///    ([`ByAuthority`]), so a failing peer is cut off and the others are
///    not; a retry meets the breaker again;
/// 4. **keyed adaptive timeout**: each attempt gets its peer's deadline,
///    learnt from the peer's latency, clamped;
/// 5. **budget**: a rate budget for every attempt, retries included;
///
/// then `Next`: the middlewares after this one and the client.
///
/// What counts as a failure is [`ResponseStatus`] (5xx and 429 by default).
/// A request whose body cannot be copied (`Request::try_clone` is `None`:
/// a streaming body) is sent once: never retried, never given to the
/// fallback.
///
/// Refusals come back as `reqwest_middleware::Error::Middleware` holding a
/// [`StackError`](crate::StackError):
/// [`Rejection::find`](seawall_core::Rejection::find) on the error finds the
/// typed rejection. The request's own errors come back as `Next` returned
/// them.
///
/// It is `Clone` (an `Arc`); every clone shares the same breakers, deadlines,
/// budget and counters, which its accessors show.
#[derive(Clone)]
pub struct SeawallMiddleware {
    parts: Arc<Parts>,
}

struct Parts {
    fallback: Option<ReqwestFallbackLayer>,
    retry: Option<ReqwestRetryLayer>,
    breaker: Option<ReqwestBreakerLayer>,
    timeout: Option<ReqwestTimeoutLayer>,
    budget: Option<BudgetLayer>,
}

impl Parts {
    /// The stack around `next`, called once with `req`. A plain function
    /// returning a boxed future with its lifetimes named, so that the
    /// future's `Send` is proven here, on concrete types.
    fn call<'a, 'e: 'a>(
        &'a self,
        req: Request,
        extensions: &'a Mutex<&'e mut Extensions>,
        next: Next<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send + 'a>> {
        let inner = NextService { next, extensions };
        let budget = Maybe::new(self.budget.as_ref(), inner);
        let timeout = Maybe::new(self.timeout.as_ref(), budget);
        let breaker = Maybe::new(self.breaker.as_ref(), timeout);
        let retry = Maybe::new(self.retry.as_ref(), breaker);
        let svc = Maybe::new(self.fallback.as_ref(), retry);
        Box::pin(Oneshot::new(svc, req))
    }
}

impl SeawallMiddleware {
    /// A builder, with every part left out.
    pub fn builder() -> MiddlewareBuilder {
        MiddlewareBuilder::default()
    }

    /// The retry layer, if configured: [`RetryLayer::stats`] counts every
    /// request's attempts.
    pub fn retry(&self) -> Option<&ReqwestRetryLayer> {
        self.parts.retry.as_ref()
    }

    /// The keyed breaker, if configured: each authority's state and stats,
    /// `force_open` and `reset` by key.
    pub fn breaker(&self) -> Option<&ReqwestBreakerLayer> {
        self.parts.breaker.as_ref()
    }

    /// The keyed adaptive timeout, if configured: each authority's deadline.
    pub fn timeout(&self) -> Option<&ReqwestTimeoutLayer> {
        self.parts.timeout.as_ref()
    }

    /// The budget, if configured.
    pub fn budget(&self) -> Option<&BudgetLayer> {
        self.parts.budget.as_ref()
    }

    /// The fallback, if configured: how often it answered.
    pub fn fallback(&self) -> Option<&ReqwestFallbackLayer> {
        self.parts.fallback.as_ref()
    }
}

impl fmt::Debug for SeawallMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeawallMiddleware")
            .field("fallback", &self.parts.fallback.is_some())
            .field("retry", &self.parts.retry)
            .field("breaker", &self.parts.breaker)
            .field("timeout", &self.parts.timeout)
            .field("budget", &self.parts.budget)
            .finish()
    }
}

#[async_trait::async_trait]
impl Middleware for SeawallMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let extensions = Mutex::new(extensions);
        let result = self.parts.call(req, &extensions, next).await;
        result.map_err(into_middleware_error)
    }
}

/// Builds a [`SeawallMiddleware`] from the mechanism crates' own configs
/// (the same types `[client.*]` tables of a `StackConfig` hold). Every part
/// is left out until it is set; [`build`](Self::build) validates them all
/// and names every bad field (`breaker.per_key.open_duration: 0s …`).
///
/// ```
/// use std::time::Duration;
/// use seawall_breaker::KeyedBreakerConfig;
/// use seawall_retry::RetryConfig;
/// use seawall_timeout::KeyedAdaptiveTimeoutConfig;
/// use seawall_reqwest::SeawallMiddleware;
///
/// let mut timeout = KeyedAdaptiveTimeoutConfig::default();
/// timeout.per_key.max = Duration::from_secs(2);
/// let middleware = SeawallMiddleware::builder()
///     .retry(RetryConfig::new().max_attempts(3))
///     .breaker(KeyedBreakerConfig::default())
///     .timeout(timeout)
///     .build()?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(middleware.clone())
///     .build();
/// # drop(client);
/// assert!(middleware.breaker().unwrap().is_empty());
/// # Ok::<(), seawall_core::ConfigError>(())
/// ```
#[derive(Default)]
pub struct MiddlewareBuilder {
    retry: Option<RetryConfig>,
    breaker: Option<KeyedBreakerConfig>,
    timeout: Option<KeyedAdaptiveTimeoutConfig>,
    budget: Option<BudgetConfig>,
    fallback: Option<(FallbackConfig, AnswerFn)>,
    classify: ResponseStatus,
    clock: Option<Clock>,
}

impl fmt::Debug for MiddlewareBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiddlewareBuilder")
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("timeout", &self.timeout)
            .field("budget", &self.budget)
            .field("fallback", &self.fallback.as_ref().map(|(c, _)| c))
            .field("classify", &self.classify)
            .finish_non_exhaustive()
    }
}

impl MiddlewareBuilder {
    /// Retries failed attempts (see [`RetryConfig`]); `honour_hints`
    /// (default on) makes a retry wait at least the peer's `Retry-After`.
    pub fn retry(mut self, config: RetryConfig) -> Self {
        self.retry = Some(config);
        self
    }

    /// One circuit breaker per authority (see [`KeyedBreakerConfig`]).
    pub fn breaker(mut self, config: KeyedBreakerConfig) -> Self {
        self.breaker = Some(config);
        self
    }

    /// One adaptive deadline per authority (see [`KeyedAdaptiveTimeoutConfig`]).
    pub fn timeout(mut self, config: KeyedAdaptiveTimeoutConfig) -> Self {
        self.timeout = Some(config);
        self
    }

    /// A rate budget for every attempt (see [`BudgetConfig`]).
    pub fn budget(mut self, config: BudgetConfig) -> Self {
        self.budget = Some(config);
        self
    }

    /// When the stack refuses a request (or, with `on = Failure`, fails it),
    /// `answer` makes the response from a copy of the request and the
    /// error. A request that cannot be copied gets its error instead.
    pub fn fallback<F>(mut self, config: FallbackConfig, answer: F) -> Self
    where
        F: Fn(Request, BoxError) -> Result<Response, BoxError> + Send + Sync + 'static,
    {
        self.fallback = Some((config, Box::new(answer)));
        self
    }

    /// What counts as a failure for the breaker and the retry (default
    /// [`ResponseStatus::new`]: 5xx and 429).
    pub fn classify(mut self, classify: ResponseStatus) -> Self {
        self.classify = classify;
        self
    }

    /// Where every part reads the time (default [`Clock::tokio`], which
    /// follows `tokio::time::pause`).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates every part and builds the middleware; the error names
    /// every bad field, under the part's name (`retry.`, `breaker.`,
    /// `timeout.`, `budget.`, `fallback.`).
    pub fn build(self) -> Result<SeawallMiddleware, ConfigError> {
        let clock = self.clock.unwrap_or_default();
        let classify = self.classify;
        let mut check = Check::new();
        let retry = self.retry.and_then(|c| {
            let built = RetryLayer::builder()
                .name(c.name.clone())
                .max_attempts(c.max_attempts)
                .backoff(c.backoff)
                .budget(c.budget.clone())
                .honour_hints(c.honour_hints)
                .classify(classify)
                .clone_with(Request::try_clone as fn(&Request) -> Option<Request>)
                .hint(ResponseHint)
                .clock(clock.clone());
            let built = match c.deadline {
                Some(d) => built.deadline(d),
                None => built,
            };
            check.nested("retry", built.build())
        });
        let breaker = self.breaker.and_then(|c| {
            let built = KeyedBreakerLayer::new::<Request>(ByAuthority, &c)
                .map(|l| l.clock(clock.clone()).classify(classify));
            check.nested("breaker", built)
        });
        let timeout = self.timeout.and_then(|c| {
            let built =
                KeyedAdaptiveTimeoutLayer::new(ByAuthority, &c).map(|l| l.clock(clock.clone()));
            check.nested("timeout", built)
        });
        let budget = self.budget.and_then(|c| {
            let built = BudgetBuilder::from_config(c).clock(clock.clone()).build();
            check.nested("budget", built)
        });
        let fallback = self.fallback.and_then(|(c, answer)| {
            let built = FallbackLayer::builder()
                .name(c.name.clone())
                .on(c.on)
                .clone_with(Request::try_clone as fn(&Request) -> Option<Request>)
                .answer_with(answer)
                .build();
            check.nested("fallback", built)
        });
        check.finish()?;
        Ok(SeawallMiddleware {
            parts: Arc::new(Parts {
                fallback,
                retry,
                breaker,
                timeout,
                budget,
            }),
        })
    }
}

//! A whole stack from one config file: [`StackConfig`] (feature `serde`,
//! with the five mechanism features).
//!
//! A `StackConfig` describes the two stacks seawall recommends, each part
//! optional:
//!
//! - the **client** stack, per peer: retry → keyed breaker → keyed adaptive
//!   timeout → budget ([`ClientConfig`], built into a [`ClientStack`]);
//! - the **server** stack: shed → budget → timeout ([`ServerConfig`], built
//!   into a [`ServerStack`]).
//!
//! Each part is the mechanism crate's own config type, so every field, its
//! default and its validation are the crate's. In TOML, a part is a table
//! (`[client.breaker]`, `[server.shed]`, …) and **a part whose table is
//! absent is left out** of the stack. Durations are written `"250ms"`,
//! `"30s"`, `"5m"`.
//!
//! A budget table's `backend` picks where its tokens live: `"local"` (the
//! default, this process) or, with the `redis` feature, `"redis"`: one
//! budget shared by every replica, the rest of the table then being a
//! `RedisBudgetConfig` (`url`, `name`, `rate`, …). See [`BudgetPart`] and,
//! for the built part, [`BudgetPartLayer`].
//!
//! ```
//! use seawall::config::StackConfig;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), seawall::BoxError> {
//! let config = StackConfig::from_toml_str(r#"
//!     [client.retry]
//!     max_attempts = 3
//!
//!     [client.breaker.per_key]      # each peer's breaker
//!     open_duration = "10s"
//!     policy = { kind = "consecutive_failures", threshold = 5 }
//!
//!     [client.breaker.keys]         # the map of peers
//!     capacity = 1000
//!     idle_ttl = "10m"
//!
//!     [client.timeout.per_key]
//!     max = "2s"
//!
//!     [server.shed]
//!     limit = { fixed = 256 }
//!
//!     [server.timeout]
//!     fixed = "5s"
//! "#)?;
//!
//! // The client stack is per peer: say how to find a request's peer.
//! let client = config.client.build(|req: &(&'static str, u32)| req.0)?;
//! let svc = client.layer(service_fn(|req: (&'static str, u32)| async move {
//!     Ok::<_, seawall::BoxError>(req.1)
//! }));
//! assert_eq!(svc.oneshot(("10.0.0.7:443", 7)).await?, 7);
//! assert_eq!(client.breaker().unwrap().len(), 1); // one breaker, for that peer
//! assert!(client.budget().is_none()); // no [client.budget]: left out
//!
//! let server = config.server.build()?;
//! assert_eq!(server.shed().unwrap().stats().limit, 256);
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! Loading and [`validate`](StackConfig::validate) report **every** bad field
//! at once, each named by its full path, in one [`ConfigError`]:
//!
//! ```
//! use seawall::config::StackConfig;
//!
//! let err = StackConfig::from_toml_str(r#"
//!     [client.breaker.per_key]
//!     policy = { kind = "failure_rate_count", window = 100, rate = 1.5, min_calls = 10 }
//!     open_duration = "0s"
//!
//!     [server.shed]
//!     max_inflight = 10
//! "#).unwrap_err();
//! let messages: Vec<String> = err.errors().iter().map(|e| e.to_string()).collect();
//! // Fields the file could not be read into, with their line; then bad values.
//! assert!(messages[0].starts_with(
//!     "server.shed.max_inflight: 10 is set on an unknown field (expected one of `name`, `limit`, "
//! ));
//! assert!(messages[0].ends_with(") (line 7)"));
//! assert_eq!(messages[1..], [
//!     "client.breaker.per_key.policy.rate: 1.5 is not in 0..=1",
//!     "client.breaker.per_key.open_duration: 0s must be longer than zero",
//! ]);
//! ```
//!
//! The full list of fields, with defaults, is in `docs/configuration.md`.

mod load;
mod stack;

use std::path::Path;

use seawall_core::config::Check;
use seawall_core::{ConfigError, ErrorsAsFailures, KeyFn};

use seawall_breaker::{KeyedBreakerConfig, KeyedBreakerLayer};
use seawall_budget::{BudgetConfig, BudgetLayer};
use seawall_retry::{CloneFn, RetryBuilder, RetryConfig, RetryLayer};
use seawall_shed::{NoPriority, ShedBuilder, ShedConfig};
use seawall_timeout::{
    AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, KeyedAdaptiveTimeoutConfig,
    KeyedAdaptiveTimeoutLayer,
};

pub use stack::{
    BudgetPartFuture, BudgetPartLayer, BudgetPartService, ClientService, ClientStack, Part,
    PartFuture, ServerService, ServerStack,
};

/// A whole seawall setup: the client stack and the server stack.
///
/// Plain data: load it with [`from_toml_str`](Self::from_toml_str) /
/// [`from_toml_file`](Self::from_toml_file), or write it in code (every
/// part is `None` by default, i.e. left out). See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct StackConfig {
    /// The per-peer client stack (`[client.*]` tables).
    pub client: ClientConfig,
    /// The server stack (`[server.*]` tables).
    pub server: ServerConfig,
}

impl StackConfig {
    /// Parses a TOML document, then [validates](Self::validate) it.
    ///
    /// The error lists every problem found: each unknown or ill-typed field
    /// (at most one per part, as deserialisation stops inside a part at its
    /// first problem), with its path and line, then every invalid value of
    /// the parts that parsed.
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        let (config, unreadable) = load::from_str(toml);
        match (unreadable, config.validate()) {
            (None, Ok(())) => Ok(config),
            (Some(e), Ok(())) | (None, Err(e)) => Err(e),
            (Some(read), Err(invalid)) => Err(read.merge(invalid)),
        }
    }

    /// Reads a TOML file and parses it like [`from_toml_str`](Self::from_toml_str).
    /// A file that cannot be read is reported under its path.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path.display().to_string(),
                "the file",
                format!("cannot be read: {e}"),
            )
        })?;
        Self::from_toml_str(&text)
    }

    /// Checks every part of both stacks; the error names every bad field by
    /// its full path (`client.breaker.per_key.policy.rate: 1.5 is not in 0..=1`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check.nested("", self.client.validate());
        check.nested("", self.server.validate());
        check.finish()
    }
}

/// The client stack's parts; see [`ClientStack`] for what each does and
/// why in this order. `None` leaves a part out.
///
/// The keyed parts (breaker, timeout) have one shape: `[client.<part>.per_key]`
/// holds each peer's config and `[client.<part>.keys]` bounds the map of
/// peers ([`KeyMapConfig`](seawall_core::KeyMapConfig): `capacity`,
/// `idle_ttl`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `[client.retry]`: the outermost part.
    pub retry: Option<RetryConfig>,
    /// `[client.breaker]`: one breaker per peer.
    pub breaker: Option<KeyedBreakerConfig>,
    /// `[client.timeout]`: one adaptive deadline per peer.
    pub timeout: Option<KeyedAdaptiveTimeoutConfig>,
    /// `[client.budget]`: a rate budget for every attempt, local or shared
    /// through Redis.
    pub budget: Option<BudgetPart>,
    /// `[client.chaos]` (feature `chaos`): faults to inject, built apart
    /// from the stack by [`chaos_layer`](Self::chaos_layer).
    #[cfg(feature = "chaos")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
    pub chaos: Option<seawall_chaos::ChaosConfig>,
    /// `[client.hedge]` (feature `hedge`): a second attempt of a slow
    /// request, built apart from the stack by [`hedge_layer`](Self::hedge_layer).
    #[cfg(feature = "hedge")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hedge")))]
    pub hedge: Option<seawall_hedge::HedgeConfig>,
    /// `[client.deadline]` (feature `deadline`): outgoing requests carry
    /// what is left of the caller's deadline; built apart by
    /// [`deadline_layer`](Self::deadline_layer).
    #[cfg(feature = "deadline")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deadline")))]
    pub deadline: Option<seawall_deadline::PropagateDeadlineConfig>,
}

impl ClientConfig {
    /// Checks every part; paths start with `client.`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        if let Some(c) = &self.retry {
            check.nested("client.retry", c.validate());
        }
        if let Some(c) = &self.breaker {
            check.nested("client.breaker", c.validate());
        }
        if let Some(c) = &self.timeout {
            check.nested("client.timeout", c.validate());
        }
        if let Some(c) = &self.budget {
            check.nested("client.budget", c.validate());
        }
        #[cfg(feature = "chaos")]
        if let Some(c) = &self.chaos {
            check.nested("client.chaos", c.validate());
        }
        #[cfg(feature = "hedge")]
        if let Some(c) = &self.hedge {
            check.nested("client.hedge", c.validate());
        }
        #[cfg(feature = "deadline")]
        if let Some(c) = &self.deadline {
            check.nested("client.deadline", c.validate());
        }
        check.finish()
    }

    /// The `[client.hedge]` layer, `None` when the table is absent. It
    /// hedges every `Clone` request: put it above the stack (outside the
    /// retry), where a request is a value the hedge can copy, and only
    /// around calls that are safe to make twice (see the hedging guide).
    #[cfg(feature = "hedge")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hedge")))]
    pub fn hedge_layer(&self) -> Result<Option<seawall_hedge::HedgeLayer>, ConfigError> {
        built_apart(
            "client.hedge",
            self.hedge.as_ref(),
            seawall_hedge::HedgeLayer::new,
        )
    }

    /// The `[client.deadline]` layer, `None` when the table is absent: it
    /// writes what is left of the caller's deadline into each outgoing
    /// `http::Request`. Put it innermost, next to the transport, so the
    /// time the stack above spent is already gone.
    #[cfg(feature = "deadline")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deadline")))]
    pub fn deadline_layer(
        &self,
    ) -> Result<Option<seawall_deadline::PropagateDeadlineLayer>, ConfigError> {
        built_apart(
            "client.deadline",
            self.deadline.as_ref(),
            seawall_deadline::PropagateDeadlineLayer::from_config,
        )
    }

    /// The `[client.chaos]` layer, `None` when the table is absent (with
    /// `enabled = false` it is built, idle, for its handle to switch on).
    /// It injects [`Injected`](seawall_chaos::Injected) errors; for other
    /// errors or outcomes, start from `ChaosLayer::builder().config(..)`.
    /// Put it innermost, just above the service that talks to the peer, so
    /// the stack's other layers see its faults.
    #[cfg(feature = "chaos")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
    pub fn chaos_layer(&self) -> Result<Option<seawall_chaos::ChaosLayer>, ConfigError> {
        built_apart(
            "client.chaos",
            self.chaos.as_ref(),
            seawall_chaos::ChaosLayer::from_config,
        )
    }

    /// Validates every part and builds the client stack, taking each
    /// request's peer with `key_fn` (a closure `|req: &Req| -> K`, or any
    /// [`KeyFn`]); the breaker and the retry part count an `Err` as a
    /// failure. The error names every bad field.
    ///
    /// For HTTP clients, [`build_http`](Self::build_http) keys requests by
    /// their authority and counts 5xx and 429 responses as failures.
    pub fn build<Req, KF>(&self, key_fn: KF) -> Result<ClientStack<KF, KF::Key>, ConfigError>
    where
        KF: KeyFn<Req> + Clone,
    {
        self.build_classified(key_fn, ErrorsAsFailures)
    }

    /// Like [`build`](Self::build), with what counts as a failure for the
    /// breaker and the retry layer (any [`Classify`](seawall_core::Classify),
    /// e.g. [`HttpStatus`](seawall_core::classify::HttpStatus) or
    /// [`GrpcCode`](seawall_core::classify::GrpcCode) with features `http` /
    /// `tonic`).
    pub fn build_classified<Req, KF, C>(
        &self,
        key_fn: KF,
        classify: C,
    ) -> Result<ClientStack<KF, KF::Key, C>, ConfigError>
    where
        KF: KeyFn<Req> + Clone,
        C: Clone,
    {
        self.assemble(key_fn, classify, |retry| retry)
    }

    /// Like [`build_classified`](Self::build_classified), with the function
    /// the retry part copies each request with (see
    /// [`RetryBuilder::clone_with`](seawall_retry::RetryBuilder::clone_with)),
    /// so requests need not be `Clone`. When it returns `None` (a streaming
    /// body, say) the request is sent once and not retried.
    ///
    /// ```
    /// use seawall::config::StackConfig;
    /// use seawall::ErrorsAsFailures;
    ///
    /// struct Req { peer: u8, body: Option<Vec<u8>> } // not Clone
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = StackConfig::from_toml_str("[client.retry]\n").unwrap();
    /// let client = config.client.build_with(
    ///     |r: &Req| r.peer,
    ///     ErrorsAsFailures,
    ///     |r: &Req| Some(Req { peer: r.peer, body: Some(r.body.clone()?) }),
    /// ).unwrap();
    /// assert!(client.retry().is_some());
    /// # }
    /// ```
    pub fn build_with<Req, KF, C, F>(
        &self,
        key_fn: KF,
        classify: C,
        copy: F,
    ) -> Result<ClientStack<KF, KF::Key, C, CloneFn<F>>, ConfigError>
    where
        KF: KeyFn<Req> + Clone,
        C: Clone,
        F: Fn(&Req) -> Option<Req> + Clone,
    {
        self.assemble(key_fn, classify, |retry| retry.clone_with(copy.clone()))
    }

    fn assemble<Req, KF, C, R, H>(
        &self,
        key_fn: KF,
        classify: C,
        copy: impl Fn(RetryBuilder<C>) -> RetryBuilder<C, R, H>,
    ) -> Result<ClientStack<KF, KF::Key, C, R, H>, ConfigError>
    where
        KF: KeyFn<Req> + Clone,
        C: Clone,
    {
        self.validate()?;
        let mut check = Check::new();
        let retry = self.retry.as_ref().and_then(|c| {
            let built = RetryLayer::builder()
                .name(c.name.clone())
                .max_attempts(c.max_attempts)
                .backoff(c.backoff)
                .budget(c.budget.clone())
                .honour_hints(c.honour_hints)
                .classify(classify.clone());
            let built = match c.deadline {
                Some(d) => built.deadline(d),
                None => built,
            };
            check.nested("client.retry", copy(built).build())
        });
        let breaker = self.breaker.as_ref().and_then(|c| {
            let built =
                KeyedBreakerLayer::new(key_fn.clone(), c).map(|l| l.classify(classify.clone()));
            check.nested("client.breaker", built)
        });
        let timeout = self.timeout.as_ref().and_then(|c| {
            check.nested(
                "client.timeout",
                KeyedAdaptiveTimeoutLayer::new(key_fn.clone(), c),
            )
        });
        let budget = self
            .budget
            .as_ref()
            .and_then(|c| check.nested("client.budget", c.build()));
        check.finish()?;
        Ok(ClientStack {
            retry,
            breaker,
            timeout,
            budget,
        })
    }

    /// Builds the client stack for `http::Request`s (feature `http`): keyed
    /// by the request's authority ([`ByAuthority`](seawall_core::key::ByAuthority):
    /// the URI's `host:port`, else the `Host` header) and counting 5xx and
    /// 429 responses as failures ([`HttpStatus`](seawall_core::classify::HttpStatus)),
    /// like transport errors. Its retries wait at least what the peer asked
    /// for ([`HttpHint`](seawall_retry::hint::HttpHint): `Retry-After` in
    /// seconds or as a date, the `RateLimit` field's reset, `RateLimit-Reset`
    /// and `X-RateLimit-Reset` once their quota is spent; at most a day, and
    /// never past the retry's deadline or, without one, its longest backoff
    /// delay: a longer hint ends the retries at once), unless the retry
    /// table says `honour_hints = false`.
    ///
    /// ```
    /// use seawall::config::StackConfig;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = StackConfig::from_toml_str("[client.breaker]\n[client.timeout]\n").unwrap();
    /// let client = config.client.build_http().unwrap();
    /// assert!(client.breaker().unwrap().is_empty());
    /// # }
    /// ```
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn build_http(
        &self,
    ) -> Result<
        ClientStack<
            seawall_core::key::ByAuthority,
            seawall_core::key::Host,
            seawall_core::classify::HttpStatus,
            seawall_retry::ByClone,
            seawall_retry::hint::HttpHint,
        >,
        ConfigError,
    > {
        self.assemble::<http::Request<()>, _, _, _, _>(
            seawall_core::key::ByAuthority,
            seawall_core::classify::HttpStatus::new(),
            |retry| retry.hint(seawall_retry::hint::HttpHint::new()),
        )
    }

    /// Builds the client stack for a tonic client (feature `tonic`), used
    /// **above** the generated client, where a request is a message (so it
    /// is `Clone` and can be sent again) and a call returns
    /// `Result<tonic::Response<T>, tonic::Status>`: `key_fn` names each
    /// request's peer (for one `Channel`, a constant); gRPC codes decide what
    /// is a failure ([`GrpcCode`](seawall_core::classify::GrpcCode):
    /// `Unavailable`, `Internal`, `DeadlineExceeded`… are, `NotFound`,
    /// `InvalidArgument`… are the peer answering); and the retries honour the
    /// peer's `grpc-retry-pushback-ms` ([`GrpcHint`](seawall_retry::hint::GrpcHint)):
    /// the next attempt waits at least the pushback, and a negative or
    /// malformed one stops the retries (gRFC A6), unless the retry table says
    /// `honour_hints = false`.
    ///
    /// The stack returns `BoxError`s; `seawall::tonic::to_status` gives the
    /// gRPC view of any of them.
    ///
    /// ```
    /// use seawall::config::StackConfig;
    /// use tower::{Layer, service_fn};
    ///
    /// # #[derive(Clone)] struct CheckRequest;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = StackConfig::from_toml_str(r#"
    ///     [client.retry]
    ///     deadline = "2s"
    ///     [client.breaker]
    /// "#).unwrap();
    /// let client = config.client.build_grpc(|_: &CheckRequest| "inventory").unwrap();
    /// // Around a tonic client: `move |req| { let mut c = client.clone(); async move { c.check(req).await } }`.
    /// let svc = client.layer(service_fn(|_: CheckRequest| async {
    ///     Ok::<_, tonic::Status>(tonic::Response::new(()))
    /// }));
    /// # drop(svc);
    /// # }
    /// ```
    #[cfg(feature = "tonic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    pub fn build_grpc<Req, KF>(
        &self,
        key_fn: KF,
    ) -> Result<
        ClientStack<
            KF,
            KF::Key,
            seawall_core::classify::GrpcCode,
            seawall_retry::ByClone,
            seawall_retry::hint::GrpcHint,
        >,
        ConfigError,
    >
    where
        KF: KeyFn<Req> + Clone,
    {
        self.assemble(key_fn, seawall_core::classify::GrpcCode::new(), |retry| {
            retry.hint(seawall_retry::hint::GrpcHint::new())
        })
    }
}

/// The server stack's parts; see [`ServerStack`] for what each does and
/// why in this order. `None` leaves a part out.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// `[server.shed]`: the outermost part.
    pub shed: Option<ShedConfig>,
    /// `[server.budget]`: a rate budget for admitted requests, local or
    /// shared through Redis.
    pub budget: Option<BudgetPart>,
    /// `[server.timeout]`: a deadline per request (`fixed = "5s"` for a
    /// fixed one).
    pub timeout: Option<AdaptiveTimeoutConfig>,
    /// `[[server.routes]]`: a rate budget per route (and method), built
    /// apart from the stack by [`route_budgets`](Self::route_budgets)
    /// (feature `axum`), since it needs axum's matched route.
    pub routes: Vec<RouteConfig>,
    /// `[server.chaos]` (feature `chaos`): faults to inject, built apart
    /// from the stack by [`chaos_layer`](Self::chaos_layer).
    #[cfg(feature = "chaos")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
    pub chaos: Option<seawall_chaos::ChaosConfig>,
    /// `[server.deadline]` (feature `deadline`): the caller's deadline read
    /// from each request; built apart by [`deadline_layer`](Self::deadline_layer).
    #[cfg(feature = "deadline")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deadline")))]
    pub deadline: Option<seawall_deadline::CallerDeadlineConfig>,
}

/// A part built apart from the stacks (`[client.hedge]`, `[server.chaos]`,
/// …): `None` when its table is absent, its errors named under `path`.
#[cfg(any(feature = "chaos", feature = "hedge", feature = "deadline"))]
fn built_apart<C, L>(
    path: &str,
    config: Option<&C>,
    build: impl FnOnce(&C) -> Result<L, ConfigError>,
) -> Result<Option<L>, ConfigError> {
    config
        .map(|c| build(c).map_err(|e| e.prefixed(path)))
        .transpose()
}

/// The most `[[server.routes]]` entries.
pub const MAX_ROUTES: usize = 1024;

/// One `[[server.routes]]` entry: a rate budget for one route pattern,
/// for one method or all of them; `path = "*"` is the budget of every
/// route not listed.
///
/// ```toml
/// [[server.routes]]
/// path = "/search"
/// budget = { name = "search", rate = 10, per = "1s" }
///
/// [[server.routes]]
/// path = "/orders"
/// method = "POST"
/// budget = { name = "orders-write", rate = 50, per = "1s" }
///
/// [[server.routes]]
/// path = "*"
/// budget = { name = "api", rate = 1000, per = "1s" }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteConfig {
    /// The route's pattern as given to axum's `Router::route`
    /// (`/users/{id}`), or `*` for every route not listed.
    pub path: String,
    /// One of the nine standard methods, upper case (`GET`, `POST`, …);
    /// absent means every method of the route, together.
    #[serde(default)]
    pub method: Option<String>,
    /// The budget (`mode` must be `reject`).
    pub budget: BudgetConfig,
}

impl RouteConfig {
    /// A budget for `path`, every method.
    pub fn new(path: impl Into<String>, budget: BudgetConfig) -> Self {
        RouteConfig {
            path: path.into(),
            method: None,
            budget,
        }
    }

    /// Only for `method`.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    fn validate(&self, check: &mut Check, at: &str) {
        const METHODS: [&str; 9] = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        if self.path != "*" && !self.path.starts_with('/') {
            check.fail(
                format!("{at}.path"),
                &self.path,
                "must be a route pattern starting with `/`, or `*` for every other route",
            );
        } else if self.path.len() > 512 {
            check.fail(format!("{at}.path"), &self.path, "at most 512 bytes");
        }
        match &self.method {
            Some(m) if self.path == "*" => {
                check.fail(
                    format!("{at}.method"),
                    m,
                    "the `*` route is every other route, whatever the method: no method",
                );
            }
            Some(m) if !METHODS.contains(&m.as_str()) => {
                check.fail(
                    format!("{at}.method"),
                    m,
                    "must be a standard method in upper case (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)",
                );
            }
            _ => {}
        }
        check.nested(&format!("{at}.budget"), self.budget.validate());
        if self.budget.mode != seawall_budget::BudgetMode::Reject {
            check.fail(
                format!("{at}.budget.mode"),
                "wait",
                "must be reject: the route is known only when the request is",
            );
        }
    }
}

impl ServerConfig {
    /// Checks every part; paths start with `server.`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        if let Some(c) = &self.shed {
            check.nested("server.shed", c.validate());
        }
        if let Some(c) = &self.budget {
            check.nested("server.budget", c.validate());
        }
        if let Some(c) = &self.timeout {
            check.nested("server.timeout", c.validate());
        }
        if self.routes.len() > MAX_ROUTES {
            check.fail(
                "server.routes",
                self.routes.len(),
                format!("at most {MAX_ROUTES} routes"),
            );
        }
        for (i, route) in self.routes.iter().enumerate() {
            route.validate(&mut check, &format!("server.routes[{i}]"));
        }
        if self.routes.iter().filter(|r| r.path == "*").count() > 1 {
            check.fail(
                "server.routes",
                "`*`",
                "at most one `*` route (the default)",
            );
        }
        #[cfg(feature = "chaos")]
        if let Some(c) = &self.chaos {
            check.nested("server.chaos", c.validate());
        }
        #[cfg(feature = "deadline")]
        if let Some(c) = &self.deadline {
            check.nested("server.deadline", c.validate());
        }
        check.finish()
    }

    /// The `[server.deadline]` layer, `None` when the table is absent: it
    /// reads the caller's deadline from each `http::Request` and runs the
    /// rest of the stack within it. Put it outermost, above the stack
    /// [`build`](Self::build) makes, so every part sees the deadline.
    #[cfg(feature = "deadline")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deadline")))]
    pub fn deadline_layer(
        &self,
    ) -> Result<Option<seawall_deadline::CallerDeadlineLayer>, ConfigError> {
        built_apart(
            "server.deadline",
            self.deadline.as_ref(),
            seawall_deadline::CallerDeadlineLayer::from_config,
        )
    }

    /// The `[server.chaos]` layer, `None` when the table is absent (see
    /// [`ClientConfig::chaos_layer`]). Put it innermost, just above the
    /// handler, so the stack's shedder, budget and timeout see its faults.
    #[cfg(feature = "chaos")]
    #[cfg_attr(docsrs, doc(cfg(feature = "chaos")))]
    pub fn chaos_layer(&self) -> Result<Option<seawall_chaos::ChaosLayer>, ConfigError> {
        built_apart(
            "server.chaos",
            self.chaos.as_ref(),
            seawall_chaos::ChaosLayer::from_config,
        )
    }

    /// The `[[server.routes]]` budgets as one layer for axum's
    /// `Router::route_layer` (see [`RouteBudgets`](crate::axum::RouteBudgets));
    /// `None` when no route is listed.
    ///
    /// ```
    /// use seawall::config::StackConfig;
    ///
    /// let config = StackConfig::from_toml_str(r#"
    ///     [[server.routes]]
    ///     path = "/search"
    ///     budget = { rate = 10, per = "1s" }
    ///
    ///     [[server.routes]]
    ///     path = "*"
    ///     budget = { rate = 1000, per = "1s" }
    /// "#).unwrap();
    /// let routes = config.server.route_budgets().unwrap().expect("two routes");
    /// assert!(routes.default_budget().is_some());
    /// ```
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn route_budgets(&self) -> Result<Option<crate::axum::RouteBudgetLayer>, ConfigError> {
        self.validate()?;
        if self.routes.is_empty() {
            return Ok(None);
        }
        let mut budgets = crate::axum::RouteBudgets::new();
        for route in &self.routes {
            budgets = match (route.path.as_str(), &route.method) {
                ("*", _) => budgets.default_budget(&route.budget),
                (path, None) => budgets.route(path, &route.budget),
                (path, Some(m)) => {
                    // Validated: one of the nine standard methods.
                    let method = http::Method::from_bytes(m.as_bytes())
                        .map_err(|_| ConfigError::new("method", m, "not a method"))?;
                    budgets.route_method(method, path, &route.budget)
                }
            };
        }
        budgets.build().map(Some).map_err(|e| e.prefixed("server"))
    }

    /// Validates every part and builds the server stack; the error names
    /// every bad field. Every request has the `Normal` priority and an `Err`
    /// is a failure (for an adaptive limit).
    pub fn build(&self) -> Result<ServerStack, ConfigError> {
        self.build_with(NoPriority, ErrorsAsFailures)
    }

    /// Like [`build`](Self::build), with each request's shedding priority
    /// (a closure `|req: &Req| -> Priority`, or any [`PriorityFn`](seawall_shed::PriorityFn)) and what
    /// counts as a failure for an adaptive limit (any [`Classify`](seawall_core::Classify)).
    ///
    /// ```
    /// use seawall::config::StackConfig;
    /// use seawall::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let config = StackConfig::from_toml_str("[server.shed]\nsoft_limit = 50\n").unwrap();
    /// let server = config.server.build_with(
    ///     |path: &&str| if path.starts_with("/health") { Priority::Critical } else { Priority::Normal },
    ///     ErrorsAsFailures,
    /// ).unwrap();
    /// assert_eq!(server.shed().unwrap().stats().limit, 100);
    /// # }
    /// ```
    pub fn build_with<P, C>(
        &self,
        priority: P,
        classify: C,
    ) -> Result<ServerStack<P, C>, ConfigError> {
        self.validate()?;
        let mut check = Check::new();
        let shed = self.shed.as_ref().and_then(|c| {
            let built = ShedBuilder::from_config(c.clone())
                .priority(priority)
                .classify(classify)
                .build();
            check.nested("server.shed", built)
        });
        let budget = self
            .budget
            .as_ref()
            .and_then(|c| check.nested("server.budget", c.build()));
        let timeout = self
            .timeout
            .as_ref()
            .and_then(|c| check.nested("server.timeout", AdaptiveTimeoutLayer::from_config(c)));
        check.finish()?;
        Ok(ServerStack {
            shed,
            budget,
            timeout,
        })
    }
}

/// Where a budget's tokens live, as written `backend = "<name>"` in a budget
/// table (default `"local"`).
///
/// The variants name the backends; their settings are in the
/// [`BudgetPart`]. `Redis` exists in every build, so code matching on it
/// compiles with or without the `redis` feature, but only a build with the
/// feature can load or build one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BudgetBackend {
    /// Tokens held in this process ([`BudgetLayer`]): each replica has the
    /// whole budget.
    #[default]
    Local,
    /// Tokens held in Redis and shared by every replica with the same `url`
    /// and `name` (`seawall_budget_redis::RedisBudgetLayer`, feature
    /// `redis`).
    Redis,
}

impl BudgetBackend {
    /// Every backend's name, as written in a config file.
    pub const NAMES: &'static [&'static str] = &["local", "redis"];

    /// The name written in a config file.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetBackend::Local => "local",
            BudgetBackend::Redis => "redis",
        }
    }

    /// The backend written `name` in a config file.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "local" => Some(BudgetBackend::Local),
            "redis" => Some(BudgetBackend::Redis),
            _ => None,
        }
    }

    /// Whether this build of seawall can load and build this backend
    /// (`Redis` needs the `redis` feature).
    pub fn is_available(self) -> bool {
        match self {
            BudgetBackend::Local => true,
            BudgetBackend::Redis => cfg!(feature = "redis"),
        }
    }
}

/// A budget part of a stack: its backend and that backend's settings.
///
/// In TOML the backend sits beside the budget's own fields. A local budget
/// (the default) takes the fields of a [`BudgetConfig`]:
///
/// ```toml
/// [server.budget]
/// backend = "local"
/// rate = 500
/// per = "1s"
/// burst = 50
/// mode = "reject"
/// ```
///
/// With the `redis` feature, `backend = "redis"` makes it a budget shared by
/// every replica, and the table takes the fields of a
/// `seawall_budget_redis::RedisBudgetConfig` (`url`, `name`, `rate`, `per`,
/// `burst`, `mode`, `fallback`, `redis_timeout`, …, and where Redis is:
/// `deployment` (one server, a Cluster, or Sentinel), `key_slots`,
/// `username`, `password`, `tls`):
///
/// ```toml
/// [server.budget]
/// backend = "redis"
/// url = "redis://127.0.0.1:6379"
/// name = "payments-api"
/// rate = 500
///
/// [client.budget]
/// backend = "redis"
/// name = "per-tenant"
/// key_slots = 64
/// deployment = { cluster = { nodes = ["rediss://10.0.0.1:6379", "rediss://10.0.0.2:6379"] } }
/// tls = { ca_file = "/etc/redis/ca.pem" }
/// ```
///
/// ```
/// use seawall::budget::BudgetConfig;
/// use seawall::config::{BudgetBackend, BudgetPart, StackConfig};
///
/// let config = StackConfig::from_toml_str("[server.budget]\nrate = 500\n").unwrap();
/// let part = config.server.budget.as_ref().unwrap();
/// assert_eq!(part.backend(), BudgetBackend::Local);
/// assert_eq!(part.as_local().unwrap().rate, 500);
/// let mut expected = BudgetConfig::default();
/// expected.rate = 500;
/// assert_eq!(*part, BudgetPart::local(expected));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "cold config data, made once per stack; a boxed variant would change how callers match it"
)]
pub enum BudgetPart {
    /// Tokens in this process: a [`BudgetLayer`].
    Local(BudgetConfig),
    /// Tokens in Redis, shared by replicas: a
    /// [`RedisBudgetLayer`](seawall_budget_redis::RedisBudgetLayer).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis(seawall_budget_redis::RedisBudgetConfig),
}

impl Default for BudgetPart {
    fn default() -> Self {
        BudgetPart::Local(BudgetConfig::default())
    }
}

impl BudgetPart {
    /// A local budget with `config`.
    pub fn local(config: BudgetConfig) -> Self {
        BudgetPart::Local(config)
    }

    /// A budget shared through Redis with `config` (feature `redis`).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(config: seawall_budget_redis::RedisBudgetConfig) -> Self {
        BudgetPart::Redis(config)
    }

    /// Where the tokens live.
    pub fn backend(&self) -> BudgetBackend {
        match self {
            BudgetPart::Local(_) => BudgetBackend::Local,
            #[cfg(feature = "redis")]
            BudgetPart::Redis(_) => BudgetBackend::Redis,
        }
    }

    /// The local budget's config, if the backend is local.
    pub fn as_local(&self) -> Option<&BudgetConfig> {
        match self {
            BudgetPart::Local(c) => Some(c),
            #[cfg(feature = "redis")]
            BudgetPart::Redis(_) => None,
        }
    }

    /// The shared budget's config, if the backend is Redis (feature `redis`).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn as_redis(&self) -> Option<&seawall_budget_redis::RedisBudgetConfig> {
        match self {
            BudgetPart::Redis(c) => Some(c),
            BudgetPart::Local(_) => None,
        }
    }

    /// Checks every field (a Redis URL is parsed; no connection is made).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            BudgetPart::Local(c) => c.validate(),
            #[cfg(feature = "redis")]
            BudgetPart::Redis(c) => c.validate(),
        }
    }

    fn build(&self) -> Result<BudgetPartLayer, ConfigError> {
        match self {
            BudgetPart::Local(c) => BudgetLayer::from_config(c).map(BudgetPartLayer::Local),
            #[cfg(feature = "redis")]
            BudgetPart::Redis(c) => {
                seawall_budget_redis::RedisBudgetLayer::from_config(c).map(BudgetPartLayer::Redis)
            }
        }
    }
}

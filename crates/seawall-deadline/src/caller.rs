//! The server side: [`CallerDeadlineLayer`] reads the caller's deadline from
//! the request and runs the call inside it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::deadline::{Deadline, parse_grpc_timeout, parse_millis};
use seawall_core::{BoxError, ConfigError, DeadlineExceeded};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::CallerDeadlineConfig;
use crate::future::CallerFuture;
use crate::shared::{DeadlineStats, Shared};

/// Reads the caller's deadline from each request (`grpc-timeout`, or the
/// header named in [`CallerDeadlineConfig::header`]) and runs the call inside
/// it: see the [crate docs](crate).
///
/// - A request whose deadline is zero is refused at once with
///   [`DeadlineExceeded`], counted in [`stats`](Self::stats); the inner
///   service is not called.
/// - Otherwise the inner service's `poll_ready`, its `call` and every poll
///   of its future run in a [`Deadline::scope`], so seawall layers and
///   handlers below see it, and a wait below for readiness (a shed queue, a
///   budget in wait mode) is charged to it. When the deadline passes the
///   wait or the inner future is dropped and the call ends with
///   [`DeadlineExceeded`]: nobody waits for its answer any more. (A
///   response already returned is not followed: a streaming body the
///   handler keeps producing after it is not cut.)
///
/// # Readiness
///
/// `CallerDeadline` is always ready. Each `call` clones the inner service
/// and drives the clone's readiness in the response future, inside the
/// deadline (as axum's routers do; hence `S: Clone`). A wait below for
/// capacity starts when the request arrives, not before: the deadline, read
/// in `call`, covers it. Services that share their state through an `Arc`
/// (every seawall layer, axum's `Router`) clone for the cost of a reference
/// count.
/// - A deadline longer than [`CallerDeadlineConfig::max`] is cut to it. A
///   header that does not parse (wrong grammar, too long) is ignored, as if
///   absent; a request without one runs as it would without this layer.
///
/// The deadline is measured from the moment the request reaches this
/// layer's `call`;
/// the caller subtracts the time on the wire (see
/// [`PropagateDeadlineConfig::margin`](crate::PropagateDeadlineConfig::margin)).
/// It is not put in the request's extensions (that would allocate the
/// extension map on every request); code polled outside the scope (a spawned
/// task) takes `Deadline::current()` with it.
#[derive(Clone, Debug)]
pub struct CallerDeadlineLayer {
    shared: Arc<Shared>,
}

impl CallerDeadlineLayer {
    /// The layer with the defaults: `grpc-timeout`, at most 5 minutes.
    pub fn new() -> Self {
        // The defaults are valid: `grpc-timeout` is a header name and 5 min
        // is within the bounds (tested in `defaults_are_valid`).
        Self::from_config(&CallerDeadlineConfig::default())
            .unwrap_or_else(|_| unreachable!("the default config is valid"))
    }

    /// The layer `config` describes, or every bad field at once.
    pub fn from_config(config: &CallerDeadlineConfig) -> Result<Self, ConfigError> {
        let header = config.checked()?;
        Ok(CallerDeadlineLayer {
            shared: Arc::new(Shared::new(config.name.clone(), header, config.max)),
        })
    }

    /// A snapshot of the layer's counters, shared by all its services.
    pub fn stats(&self) -> DeadlineStats {
        self.shared.stats()
    }
}

impl Default for CallerDeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for CallerDeadlineLayer {
    type Service = CallerDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallerDeadline {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`CallerDeadlineLayer`] makes.
#[derive(Clone, Debug)]
pub struct CallerDeadline<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> CallerDeadline<S> {
    /// A snapshot of the layer's counters.
    pub fn stats(&self) -> DeadlineStats {
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

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<http::Request<B>> for CallerDeadline<S>
where
    S: Service<http::Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = CallerFuture<S, http::Request<B>, S::Future>;

    /// Always ready: the inner service's readiness is awaited in the
    /// response future, inside the caller's deadline (see the type's docs).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The arrival: the deadline runs from here.
        let arrived = Instant::now();
        let Some(timeout) = read(&self.shared, &req) else {
            return CallerFuture::new(self.inner.clone(), req, None);
        };
        self.shared.carried();
        if timeout.is_zero() {
            self.shared.refused("server", Duration::ZERO);
            return CallerFuture::refused(DeadlineExceeded::new(Duration::ZERO));
        }
        let deadline = Deadline::at(seawall_core::time::deadline(arrived, timeout));
        CallerFuture::new(self.inner.clone(), req, Some(deadline))
    }
}

/// The request's deadline, capped; `None` when there is none or it does not
/// parse.
fn read<B>(shared: &Shared, req: &http::Request<B>) -> Option<Duration> {
    let value = req.headers().get(&shared.header.name)?;
    let parsed = if shared.header.grpc {
        parse_grpc_timeout(value.as_bytes())
    } else {
        parse_millis(value.as_bytes())
    };
    if parsed.is_none() {
        tracing::trace!(
            target: seawall_core::names::TARGET_DEADLINE,
            name = %shared.name,
            header = %shared.header.name,
            "ignored a deadline header that does not parse"
        );
    }
    parsed.map(|d| d.min(shared.bound))
}

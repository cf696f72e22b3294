//! The client side: [`PropagateDeadlineLayer`] writes what is left of the
//! deadline into outgoing requests.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use seawall_core::deadline::{Deadline, format_grpc_timeout, parse_grpc_timeout, parse_millis};
use seawall_core::{BoxError, ConfigError, DeadlineExceeded};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::PropagateDeadlineConfig;
use crate::future::PropagateFuture;
use crate::shared::{DeadlineStats, Shared};

/// Writes the time left before the deadline, minus a margin, into each
/// outgoing request (`grpc-timeout`, or the header named in
/// [`PropagateDeadlineConfig::header`]): see the [crate docs](crate).
///
/// The deadline is the earlier of the current scope's
/// ([`Deadline::current`]) and a [`Deadline`] in the request's extensions
/// (for a request sent from outside the scope). With neither, the request
/// goes out untouched. A header the request already carries is kept when it
/// asks for less time.
///
/// When nothing is left after the margin (with a millisecond header: less
/// than 1ms, which would be written as `0`), the request is not sent: the
/// call ends at once with [`DeadlineExceeded`] (a refusal: the peer did no
/// work), counted in [`stats`](Self::stats).
///
/// Writing the header allocates its value (`http::HeaderValue` owns its
/// bytes; the header's name is static and clones for free); a request with
/// no deadline costs one thread-local read.
#[derive(Clone, Debug)]
pub struct PropagateDeadlineLayer {
    shared: Arc<Shared>,
}

impl PropagateDeadlineLayer {
    /// The layer with the defaults: `grpc-timeout`, no margin.
    pub fn new() -> Self {
        // The defaults are valid (tested in `defaults_are_valid`).
        Self::from_config(&PropagateDeadlineConfig::default())
            .unwrap_or_else(|_| unreachable!("the default config is valid"))
    }

    /// The layer `config` describes, or every bad field at once.
    pub fn from_config(config: &PropagateDeadlineConfig) -> Result<Self, ConfigError> {
        let header = config.checked()?;
        Ok(PropagateDeadlineLayer {
            shared: Arc::new(Shared::new(config.name.clone(), header, config.margin)),
        })
    }

    /// A snapshot of the layer's counters, shared by all its services.
    pub fn stats(&self) -> DeadlineStats {
        self.shared.stats()
    }
}

impl Default for PropagateDeadlineLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for PropagateDeadlineLayer {
    type Service = PropagateDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateDeadline {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`PropagateDeadlineLayer`] makes.
#[derive(Clone, Debug)]
pub struct PropagateDeadline<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> PropagateDeadline<S> {
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

impl<S, B> Service<http::Request<B>> for PropagateDeadline<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = PropagateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let in_request = req.extensions().get::<Deadline>().copied();
        let deadline = match Deadline::current() {
            Some(d) => d.min_with(in_request),
            None => match in_request {
                Some(d) => d,
                None => return PropagateFuture::called(self.inner.call(req)),
            },
        };
        let now = Instant::now();
        let send = deadline.remaining_at(now).saturating_sub(self.shared.bound);
        // A millisecond header rounds down: under 1ms left would be sent as
        // "0", a deadline already passed. Refuse it here instead.
        let nothing = if self.shared.header.grpc {
            send.is_zero()
        } else {
            send < Duration::from_millis(1)
        };
        if nothing {
            let past = now.saturating_duration_since(deadline.instant());
            self.shared.refused("client", past);
            return PropagateFuture::refused(DeadlineExceeded::new(past));
        }
        self.shared.carried();
        let header = &self.shared.header;
        let existing = req.headers().get(&header.name).and_then(|v| {
            if header.grpc {
                parse_grpc_timeout(v.as_bytes())
            } else {
                parse_millis(v.as_bytes())
            }
        });
        if existing.is_none_or(|e| e > send) {
            req.headers_mut()
                .insert(header.name.clone(), value(header.grpc, send));
        }
        PropagateFuture::called(self.inner.call(req))
    }
}

fn value(grpc: bool, send: Duration) -> HeaderValue {
    if grpc {
        // Digits and a unit letter: always a valid header value.
        HeaderValue::from_bytes(format_grpc_timeout(send).as_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static("0n"))
    } else {
        // Rounded down, like the gRPC form.
        HeaderValue::from(u64::try_from(send.as_millis()).unwrap_or(u64::MAX))
    }
}

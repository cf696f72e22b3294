//! [`CallTimeoutLayer`]: a request's own timeout, from its extensions, for
//! the adaptive timeout below.

use std::task::{Context, Poll};

use seawall_core::deadline::{CallTimeout, Scoped};
use tower_layer::Layer;
use tower_service::Service;

/// Lets a request carry its own timeout: a
/// [`CallTimeout`] in the request's extensions is put in scope around the
/// inner `call` and every poll of its future, where seawall's adaptive
/// timeout takes it in place of its learned (or fixed) deadline, clamped to
/// its `[min, max]`. Place it above the retry layer, if any, so that every
/// attempt gets it. A request without one passes untouched, for the cost of
/// a look in its extensions.
///
/// ```
/// use std::time::Duration;
/// use http::Request;
/// use seawall_deadline::{CallTimeout, CallTimeoutLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(CallTimeoutLayer::new())
///     .service(service_fn(|_req: Request<()>| async {
///         Ok::<_, std::convert::Infallible>(CallTimeout::current())
///     }));
/// let mut req = Request::new(());
/// req.extensions_mut().insert(CallTimeout(Duration::from_secs(3)));
/// assert_eq!(svc.oneshot(req).await.unwrap(), Some(Duration::from_secs(3)));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CallTimeoutLayer {
    _private: (),
}

impl CallTimeoutLayer {
    /// The layer.
    pub fn new() -> Self {
        CallTimeoutLayer { _private: () }
    }
}

impl<S> Layer<S> for CallTimeoutLayer {
    type Service = CallTimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallTimeoutService { inner }
    }
}

/// The service [`CallTimeoutLayer`] makes.
#[derive(Debug, Clone)]
pub struct CallTimeoutService<S> {
    inner: S,
}

impl<S> CallTimeoutService<S> {
    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<http::Request<B>> for CallTimeoutService<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scoped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match req.extensions().get::<CallTimeout>().map(|t| t.0) {
            Some(timeout) => CallTimeout::scope(
                timeout,
                CallTimeout::sync_scope(timeout, || self.inner.call(req)),
            ),
            None => CallTimeout::scope_opt(None, self.inner.call(req)),
        }
    }
}

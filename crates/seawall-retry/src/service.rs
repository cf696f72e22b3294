//! [`Retry`]: the service a [`RetryLayer`](crate::RetryLayer) makes.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, Classify, ErrorsAsFailures};
use tower_service::Service;

use crate::clone::{ByClone, CloneRequest};
use crate::future::ResponseFuture;
use crate::hint::{NoHint, RetryHint};
use crate::policy::Policy;
use crate::stats::RetryStats;

/// Retries failed calls of the inner service; made by
/// [`RetryLayer`](crate::RetryLayer).
///
/// `poll_ready` is the inner service's. `call` copies the request (when a
/// retry is possible) and returns a [`ResponseFuture`] holding a clone of the
/// inner service for the retries: like tower's `Retry`, `S` must be `Clone`
/// (wrap it in `tower::buffer::Buffer` if it is not).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use seawall_core::BoxError;
/// use seawall_retry::{Backoff, RetryLayer};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// // A backend that fails twice, then answers.
/// let calls = Arc::new(AtomicU32::new(0));
/// let backend = {
///     let calls = calls.clone();
///     service_fn(move |x: u32| {
///         let n = calls.fetch_add(1, Ordering::SeqCst);
///         async move {
///             if n < 2 { Err::<u32, BoxError>("connection reset".into()) } else { Ok(x * 2) }
///         }
///     })
/// };
/// let layer = RetryLayer::builder()
///     .backoff(Backoff::constant(Duration::from_millis(1)))
///     .build()
///     .unwrap();
/// let svc = layer.layer(backend);
/// assert_eq!(svc.oneshot(21).await.unwrap(), 42);
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// assert_eq!(layer.stats().retries, 2);
/// # }
/// ```
pub struct Retry<S, C = ErrorsAsFailures, K = ByClone, H = NoHint> {
    inner: S,
    policy: Arc<Policy<C, K, H>>,
}

impl<S: Clone, C, K, H> Clone for Retry<S, C, K, H> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S: fmt::Debug, C, K, H> fmt::Debug for Retry<S, C, K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S, C, K, H> Retry<S, C, K, H> {
    pub(crate) fn new(inner: S, policy: Arc<Policy<C, K, H>>) -> Self {
        Retry { inner, policy }
    }

    /// The layer's counters (shared by every service of the layer).
    pub fn stats(&self) -> RetryStats {
        self.policy.stats()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, C, K, H> Service<Req> for Retry<S, C, K, H>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error>,
    K: CloneRequest<Req>,
    H: RetryHint<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C, K, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let policy = &self.policy;
        let caller = Deadline::current();
        if let Some(caller) = caller {
            let now = tokio::time::Instant::now();
            if caller.instant() <= now {
                // The caller has given up: not even a first attempt.
                let past = now.saturating_duration_since(caller.instant());
                return ResponseFuture::refused(policy.clone(), past);
            }
        }
        let start = policy.begin();
        // The copy is made before the call, which takes `req` by value.
        let spare = if policy.max_attempts() > 1 {
            let spare = policy.clone.clone_request(&req);
            if spare.is_none() {
                policy.note_not_cloneable();
            }
            spare
        } else {
            None
        };
        let future = self.inner.call(req);
        // A service for the retries, only if one may happen.
        let service = spare.as_ref().map(|_| self.inner.clone());
        ResponseFuture::new(future, service, spare, self.policy.clone(), start, caller)
    }
}

//! [`Fallback`]: the tower service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, Classify};
use tower_service::Service;

use crate::backup::Backup;
use crate::clone::CloneRequest;
use crate::future::ResponseFuture;
use crate::layer::Shared;

/// A service whose failures are answered by a backup; made by
/// [`FallbackLayer`](crate::FallbackLayer).
///
/// `poll_ready` reports the inner service's readiness only: the backup is
/// needed only after a failure, and a backup service is driven to readiness
/// inside the response future.
pub struct Fallback<S, B, C, R> {
    inner: S,
    shared: Arc<Shared<B, C, R>>,
}

impl<S: Clone, B, C, R> Clone for Fallback<S, B, C, R> {
    fn clone(&self) -> Self {
        Fallback {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, B, C, R> fmt::Debug for Fallback<S, B, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("inner", &self.inner)
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl<S, B, C, R> Fallback<S, B, C, R> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<B, C, R>>) -> Self {
        Fallback { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S, B, C, R, Req> Service<Req> for Fallback<S, B, C, R>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    B: Backup<Req, Response = S::Response>,
    C: Classify<S::Response, BoxError>,
    R: CloneRequest<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, Req, B, C, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let copy = self.shared.clone.clone_request(&req);
        ResponseFuture::new(self.inner.call(req), copy, self.shared.clone())
    }
}

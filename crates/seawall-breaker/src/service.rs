//! [`Breaker`] and [`KeyedBreaker`]: the tower services.
//!
//! `poll_ready` reports the inner service's readiness and reserves nothing:
//! the admission decision is made in `call`, and a refused call gets its
//! [`CircuitOpen`](seawall_core::CircuitOpen) from the response future, so
//! the services work under `Buffer` and `Balance`. Since nothing is reserved
//! before `call`, a service clone dropped after `poll_ready` holds nothing to
//! give back; a probe slot taken in `call` lives in the response future and
//! is given back when that future is dropped.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use seawall_core::{BoxError, Classify, KeyFn};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::keyed::Keyed;
use crate::state::{BreakerStats, CircuitBreaker};

/// A service guarded by a [`CircuitBreaker`]; made by
/// [`BreakerLayer`](crate::BreakerLayer).
#[derive(Clone)]
pub struct Breaker<S, C> {
    inner: S,
    breaker: CircuitBreaker,
    classify: C,
}

impl<S: fmt::Debug, C> fmt::Debug for Breaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .finish()
    }
}

impl<S, C> Breaker<S, C> {
    pub(crate) fn new(inner: S, breaker: CircuitBreaker, classify: C) -> Self {
        Breaker {
            inner,
            breaker,
            classify,
        }
    }

    /// The breaker (shared with the layer and every clone).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The breaker's stats.
    pub fn stats(&self) -> BreakerStats {
        self.breaker.stats()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C, Req> Service<Req> for Breaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError> + 'static,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(req), permit, self.classify.clone(), None)
            }
            Err(rejected) => ResponseFuture::rejected(rejected),
        }
    }
}

/// A service with one [`CircuitBreaker`] per key; made by
/// [`KeyedBreakerLayer`](crate::KeyedBreakerLayer).
pub struct KeyedBreaker<S, KF, K, C> {
    inner: S,
    shared: Arc<Keyed<KF, K>>,
    classify: C,
}

impl<S: Clone, KF, K, C: Clone> Clone for KeyedBreaker<S, KF, K, C> {
    fn clone(&self) -> Self {
        KeyedBreaker {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, KF, K, C> fmt::Debug for KeyedBreaker<S, KF, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBreaker")
            .field("inner", &self.inner)
            .field("name", &self.shared.settings.name)
            .finish_non_exhaustive()
    }
}

impl<S, KF, K, C> KeyedBreaker<S, KF, K, C> {
    pub(crate) fn new(inner: S, shared: Arc<Keyed<KF, K>>, classify: C) -> Self {
        KeyedBreaker {
            inner,
            shared,
            classify,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, KF, K, C, Req> Service<Req> for KeyedBreaker<S, KF, K, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError> + 'static,
    KF: KeyFn<Req, Key = K>,
    K: std::hash::Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = self.shared.key_fn.key(&req);
        // The key's breaker, or the overflow breaker when the map is full of
        // keys it may not evict; the key is kept only while its breaker is
        // fresh (see `ResponseFuture`).
        let (inner, key) = self.shared.entry(key);
        match CircuitBreaker::acquire_arc(inner) {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(req), permit, self.classify.clone(), key)
            }
            Err(rejected) => ResponseFuture::rejected(rejected),
        }
    }
}

//! The tower services the middleware runs for one request: `Next` as the
//! innermost service, and a part that may be left out.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Extensions;
use pin_project_lite::pin_project;
use reqwest::{Request, Response};
use reqwest_middleware::Next;
use seawall_core::BoxError;
use tokio::sync::Mutex;
use tower_layer::Layer;
use tower_service::Service;

/// The rest of the middleware chain as a tower service: each call is one
/// attempt, `next.run(request, extensions)`.
///
/// Every attempt of a request gets the same `Extensions` (as
/// reqwest-retry does). The retry layer keeps a clone of this service, so
/// the `&mut Extensions` is shared through a mutex local to the request;
/// attempts run one after another, so it is never contended (an attempt
/// cut by the timeout is dropped, and its guard with it, before the next
/// one starts).
pub(crate) struct NextService<'a, 'e> {
    pub(crate) next: Next<'a>,
    pub(crate) extensions: &'a Mutex<&'e mut Extensions>,
}

impl Clone for NextService<'_, '_> {
    fn clone(&self) -> Self {
        NextService {
            next: self.next.clone(),
            extensions: self.extensions,
        }
    }
}

/// One attempt: `Next::run` boxes its future already; this box holds it
/// with the extensions' guard.
pub(crate) type Attempt<'a> = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send + 'a>>;

impl<'a, 'e> Service<Request> for NextService<'a, 'e>
where
    'e: 'a,
{
    type Response = Response;
    type Error = BoxError;
    type Future = Attempt<'a>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Attempt<'a> {
        let next = self.next.clone();
        let extensions = self.extensions;
        Box::pin(async move {
            let mut guard = extensions.lock().await;
            next.run(req, &mut guard)
                .await
                .map_err(|e| Box::new(e) as BoxError)
        })
    }
}

/// A part of the stack: its layer's service around the inner one, or the
/// inner service alone when the part is not configured.
#[derive(Clone)]
pub(crate) enum Maybe<A, B> {
    On(A),
    Off(B),
}

impl<A, B> Maybe<A, B> {
    pub(crate) fn new<L>(layer: Option<&L>, inner: B) -> Self
    where
        L: Layer<B, Service = A>,
    {
        match layer {
            Some(l) => Maybe::On(l.layer(inner)),
            None => Maybe::Off(inner),
        }
    }
}

impl<A, B, Req> Service<Req> for Maybe<A, B>
where
    A: Service<Req, Error = BoxError>,
    B: Service<Req, Response = A::Response, Error = BoxError>,
{
    type Response = A::Response;
    type Error = BoxError;
    type Future = MaybeFuture<A::Future, B::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Maybe::On(a) => a.poll_ready(cx),
            Maybe::Off(b) => b.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self {
            Maybe::On(a) => MaybeFuture::On {
                future: a.call(req),
            },
            Maybe::Off(b) => MaybeFuture::Off {
                future: b.call(req),
            },
        }
    }
}

pin_project! {
    #[project = MaybeProj]
    pub(crate) enum MaybeFuture<A, B> {
        On { #[pin] future: A },
        Off { #[pin] future: B },
    }
}

impl<A, B, T> Future for MaybeFuture<A, B>
where
    A: Future<Output = Result<T, BoxError>>,
    B: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            MaybeProj::On { future } => future.poll(cx),
            MaybeProj::Off { future } => future.poll(cx),
        }
    }
}

pin_project! {
    /// Waits for the service to be ready, then calls it once (tower's
    /// `Oneshot`, without tower's `util`).
    pub(crate) struct Oneshot<S, Req>
    where
        S: Service<Req>,
    {
        service: S,
        request: Option<Req>,
        #[pin]
        future: Option<S::Future>,
    }
}

impl<S: Service<Req>, Req> Oneshot<S, Req> {
    pub(crate) fn new(service: S, request: Req) -> Self {
        Oneshot {
            service,
            request: Some(request),
            future: None,
        }
    }
}

impl<S, Req> Future for Oneshot<S, Req>
where
    S: Service<Req, Error = BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Some(future) = this.future.as_mut().as_pin_mut() {
                return future.poll(cx);
            }
            std::task::ready!(this.service.poll_ready(cx))?;
            match this.request.take() {
                Some(req) => this.future.set(Some(this.service.call(req))),
                // Only after the call was made, which returned above.
                None => return Poll::Ready(Err("polled after completion".into())),
            }
        }
    }
}

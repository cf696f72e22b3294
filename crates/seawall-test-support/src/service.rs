//! An always-ready service, and one call driven by hand on the test's own
//! thread: `poll_ready`, `call`, one poll of the response future, with a
//! no-op waker. Nothing is spawned, so a per-thread allocation count sees the
//! whole call, and a paused clock only moves when the test moves it.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tower_service::Service;

/// Always ready; answers every request with the request itself, at once and
/// without allocating. A service of any request type.
///
/// ```
/// use seawall_test_support::service::{Echo, ready_call_ok};
///
/// assert!(ready_call_ok(&mut Echo, 7u32));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl<T> Service<T> for Echo {
    type Response = T;
    type Error = Infallible;
    type Future = Ready<Result<T, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: T) -> Self::Future {
        ready(Ok(req))
    }
}

/// `poll_ready` (which must be `Ready(Ok)`, or this panics), then `call` with
/// `req` and one poll of its future; returns whether the response was `Ok`.
///
/// # Panics
/// If the service is not ready, or its response future is pending after
/// one poll: an allocation or hostile-input test expects neither.
pub fn ready_call_ok<S: Service<R>, R>(svc: &mut S, req: R) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))),
        "the service is not ready"
    );
    call_ok(svc, req)
}

/// `call` with `req`, after a `poll_ready` the caller made and saw `Ready`,
/// and one poll of its future; returns whether the response was `Ok`.
///
/// # Panics
/// If the response future is pending after one poll.
pub fn call_ok<S: Service<R>, R>(svc: &mut S, req: R) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let fut = pin!(svc.call(req));
    match fut.poll(&mut cx) {
        Poll::Ready(r) => r.is_ok(),
        Poll::Pending => panic!("the response future is pending"),
    }
}

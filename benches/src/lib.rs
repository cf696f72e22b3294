//! Shared harness of seawall's benchmarks: the bare service every layer is
//! measured against, and a driver that calls a service by hand, without a
//! runtime's scheduling in the measurement.
//!
//! Every bench measures `poll_ready` + `call` + polling the response future to
//! completion. The bare [`Echo`] service answers `Ready(Ok)` at once, so what a
//! layer costs on top of it is the layer's own overhead per call.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tower_service::Service;

/// The error of the benchmarked services: a real `Error` type, cloneable, as
/// some peers require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail;

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

/// The bare service: answers every request with itself, at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Fail;
    type Future = Ready<Result<u64, Fail>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Fail>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// A service that fails every request at once (for rejection paths: trip a
/// breaker, exhaust a retry).
#[derive(Debug, Clone, Copy, Default)]
pub struct Failing;

impl Service<u64> for Failing {
    type Response = u64;
    type Error = Fail;
    type Future = Ready<Result<u64, Fail>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Fail>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        ready(Err(Fail))
    }
}

/// `Echo` with an infallible error type, for peers that want one.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoInfallible;

impl Service<u64> for EchoInfallible {
    type Response = u64;
    type Error = Infallible;
    type Future = Ready<Result<u64, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// Calls `svc` once by hand: `poll_ready` until ready, `call`, then polls the
/// response future until it completes. Spins on `Pending` (with a no-op
/// waker), which the benchmarked services only return on paths that are not
/// measured here.
///
/// Must run inside a tokio runtime context (`Runtime::enter`) for layers that
/// create timers.
pub fn call<S, Req>(svc: &mut S, req: Req) -> Result<S::Response, S::Error>
where
    S: Service<Req>,
{
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    let mut fut = pin!(svc.call(req));
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_the_bare_services() {
        assert_eq!(call(&mut Echo, 7), Ok(7));
        assert_eq!(call(&mut EchoInfallible, 7), Ok(7));
        assert_eq!(call(&mut Failing, 7), Err(Fail));
    }
}

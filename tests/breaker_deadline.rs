//! The breaker over an adaptive timeout, when callers carry deadlines.
#![cfg(all(feature = "breaker", feature = "timeout"))]

use std::time::Duration;

use seawall::breaker::{BreakerLayer, State};
use seawall::core::deadline::Deadline;
use seawall::core::{Rejection, RejectionKind};
use seawall::timeout::AdaptiveTimeoutLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// A peer that never answers, called by callers whose deadline (100ms) is
/// shorter than the timeout (500ms): every call is cut by the caller's
/// deadline while it runs. That is a failure of the peer, not a refusal, or
/// a hanging peer would never trip the breaker.
#[tokio::test(start_paused = true)]
async fn a_hanging_peer_trips_the_breaker_under_caller_deadlines() {
    let breaker = BreakerLayer::standard();
    let svc = ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(AdaptiveTimeoutLayer::fixed(500 * MS))
        .service(service_fn(|()| {
            std::future::pending::<Result<(), std::io::Error>>()
        }));
    let mut kinds = Vec::new();
    for _ in 0..10 {
        let err = Deadline::scope(Deadline::after(100 * MS), svc.clone().oneshot(()))
            .await
            .unwrap_err();
        kinds.push(Rejection::find(&*err).map(|r| r.kind()));
    }
    // The first calls reach the peer and are cut short by the caller.
    assert_eq!(kinds[0], Some(RejectionKind::DeadlineExceeded));
    let err = Deadline::scope(Deadline::after(100 * MS), svc.clone().oneshot(()))
        .await
        .unwrap_err();
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::CircuitOpen, "{kinds:?}");
    assert_eq!(breaker.state(), State::Open);
}

/// A call refused before it starts (the caller's deadline had already
/// passed) did not reach the peer: the breaker does not count it.
#[tokio::test(start_paused = true)]
async fn a_call_refused_before_start_is_not_counted() {
    let breaker = BreakerLayer::standard();
    let svc = ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(AdaptiveTimeoutLayer::fixed(500 * MS))
        .service(service_fn(|()| {
            std::future::pending::<Result<(), std::io::Error>>()
        }));
    let gone = Deadline::after(Duration::ZERO);
    tokio::time::advance(MS).await;
    for _ in 0..20 {
        let err = Deadline::scope(gone, svc.clone().oneshot(()))
            .await
            .unwrap_err();
        let found = Rejection::find(&*err).unwrap();
        assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
        assert!(found.is_refusal());
    }
    assert_eq!(breaker.state(), State::Closed);
}

//! A tonic client in the client stack, against the standard gRPC health
//! service (`tonic-health`, so no `protoc` is needed).
//!
//! ```text
//! retry                          → on the typed client, where requests are Clone
//!   HealthClient (tonic)
//!     map_err(to_status)         → rejections become gRPC statuses
//!       breaker (GrpcCode)       → Unavailable, Unknown, … are failures; NotFound is not
//!         adaptive timeout
//!           budget               → at most 20 calls/s to this peer
//!             Channel
//! ```
//!
//! The example starts a health server on 127.0.0.1, checks a few services
//! (a `NotFound` answer is the server working, not failing), sends a burst
//! the budget refuses with `ResourceExhausted` and a retry pushback, then
//! stops the server: calls fail, the breaker opens, and the next call is
//! refused at once with `Unavailable`, without being retried. It exits by
//! itself.
//!
//! Run with `cargo run --example tonic_client --features tonic`.

use std::time::Duration;

use seawall::breaker::{BreakerLayer, TripPolicy};
use seawall::budget::BudgetLayer;
use seawall::core::classify::GrpcCode;
use seawall::retry::{Backoff, RetryLayer};
use seawall::timeout::AdaptiveTimeoutLayer;
use seawall::tonic::RETRY_PUSHBACK_KEY;
use seawall::{BoxError, ServiceBuilderExt};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::{Service, ServiceBuilder, ServiceExt};

/// One line for a call's result.
fn show(result: Result<tonic::Response<HealthCheckResponse>, BoxError>) -> String {
    match result {
        Ok(res) => format!("OK {:?}", res.get_ref().status()),
        Err(err) => {
            // The stack returns `BoxError`s; `to_status` gives the gRPC view
            // of any of them (a `Status` stays as it is).
            let status = seawall::tonic::to_status(err);
            let pushback = status
                .metadata()
                .get(RETRY_PUSHBACK_KEY)
                .and_then(|v| v.to_str().ok())
                .map(|ms| format!(" [{RETRY_PUSHBACK_KEY}: {ms}]"))
                .unwrap_or_default();
            format!("{:?}: {}{pushback}", status.code(), status.message())
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The server: the standard health service, "inventory" serving.
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("inventory", ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );
    println!("health server on {addr}");

    // The client stack below tonic's client: every attempt passes it. The
    // breaker judges the peer by gRPC code; a refusal from our own budget
    // below it never reached the peer, and the breaker ignores it by itself.
    let breaker = BreakerLayer::builder()
        .name("health")
        .policy(TripPolicy::consecutive_failures(3))
        .open_duration(Duration::from_secs(5))
        .classify(GrpcCode::new())
        .build()?;
    let timeout = AdaptiveTimeoutLayer::builder()
        .name("health")
        .base(Duration::from_millis(500))
        .build()?;
    let budget = BudgetLayer::builder()
        .name("health")
        .rate(20)
        .per(Duration::from_secs(1))
        .burst(5)
        .build()?;
    let channel = Channel::from_shared(format!("http://{addr}"))?.connect_lazy();
    let lower = ServiceBuilder::new()
        .map_err(seawall::tonic::to_status)
        .breaker(breaker.clone())
        .adaptive_timeout(timeout.clone())
        .budget(budget.clone())
        .service(channel);
    let client = HealthClient::new(lower);

    // Retry above the typed client, where a request is a Clone message.
    let retry = RetryLayer::builder()
        .name("health")
        .max_attempts(3)
        .backoff(Backoff::exponential(Duration::from_millis(20), 2.0).jitter(0.2))
        .deadline(Duration::from_secs(1))
        .classify(GrpcCode::new())
        .build()?;
    let mut check =
        ServiceBuilder::new()
            .retries(retry.clone())
            .service_fn(move |req: HealthCheckRequest| {
                let mut client = client.clone();
                async move { client.check(req).await }
            });

    let mut call = async |service: &str| {
        let req = HealthCheckRequest {
            service: service.to_owned(),
        };
        match check.ready().await {
            Ok(svc) => svc.call(req).await,
            Err(err) => Err(err),
        }
    };

    println!("-- a healthy peer");
    for service in ["", "inventory", "billing"] {
        println!("check {service:?}: {}", show(call(service).await));
    }

    tokio::time::sleep(Duration::from_millis(300)).await; // the budget refills
    println!("-- 10 calls in a row: the budget allows a burst of 5");
    let (mut ok, mut first_refusal) = (0, None);
    for _ in 0..10 {
        match call("inventory").await {
            Ok(_) => ok += 1,
            Err(err) => {
                first_refusal.get_or_insert(err);
            }
        }
    }
    println!("{ok} OK, {} refused, the first with", 10 - ok);
    if let Some(err) = first_refusal {
        println!("  {}", show(Err(err)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the budget refills

    println!("-- the server stops");
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    for i in 0..3 {
        println!("call {i}: {}", show(call("inventory").await));
    }

    let b = breaker.stats();
    let r = retry.stats();
    let t = timeout.stats();
    let bu = budget.stats();
    println!(
        "breaker: {} (trips {}, failures {}, rejected {})",
        b.state, b.trips, b.failures, b.rejected
    );
    println!(
        "retry:   {} requests, {} attempts, {} retries; gave up: {} not retryable, {} out of attempts, {} deadline",
        r.requests,
        r.attempts,
        r.retries,
        r.gave_up_not_retryable,
        r.gave_up_attempts_exhausted,
        r.gave_up_deadline,
    );
    println!(
        "timeout: deadline {:?} ({:?}), {} timed out",
        t.deadline, t.source, t.timeouts
    );
    println!(
        "budget:  admitted {}, exhausted {}",
        bu.iterations, bu.exhausted
    );
    Ok(())
}

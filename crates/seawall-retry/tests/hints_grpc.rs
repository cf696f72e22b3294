//! `GrpcHint` for real: a tonic server on 127.0.0.1 answers `Unavailable`
//! with `grpc-retry-pushback-ms`, and a tonic client under the retry layer
//! waits the pushback, or does not retry when it is negative or malformed
//! (gRFC A6).
//!
//! Paused tokio time, as in `hints_http.rs`: nothing sleeps while a call is
//! on the wire, so the gaps between arrivals at the server are exactly the
//! waits the layer chose.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::classify::GrpcCode;
use seawall_retry::hint::GrpcHint;
use seawall_retry::{Backoff, RetryError, RetryLayer, StopReason};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::{Layer, Service, ServiceExt};

/// A health service scripted by the checked service's name: a
/// comma-separated list of pushbacks, one per call (an empty one: none);
/// call `n` answers `Unavailable` with the `n`th, and calls past the list
/// answer `Serving`.
#[derive(Clone)]
struct Peer {
    t0: Instant,
    arrivals: Arc<Mutex<Vec<Duration>>>,
}

#[tonic::async_trait]
impl Health for Peer {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let n = {
            let mut at = self.arrivals.lock().unwrap();
            at.push(self.t0.elapsed());
            at.len()
        };
        let script = req.into_inner().service;
        if let Some(value) = script.split(',').nth(n - 1) {
            let mut status = Status::unavailable("busy");
            if !value.is_empty() {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", value.parse().unwrap());
            }
            return Err(status);
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = tonic::codegen::tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _req: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

struct Running {
    addr: SocketAddr,
    peer: Peer,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    fn gaps(&self) -> Vec<Duration> {
        let at = self.peer.arrivals.lock().unwrap();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn calls(&self) -> usize {
        self.peer.arrivals.lock().unwrap().len()
    }
}

async fn start() -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = Peer {
        t0: Instant::now(),
        arrivals: Arc::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(HealthServer::new(peer.clone()))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );
    Running {
        addr,
        peer,
        _stop: stop,
    }
}

/// The tonic client as a `Service<HealthCheckRequest>`: the request message
/// is `Clone`, so the layer can resend it.
#[derive(Clone)]
struct Check(HealthClient<Channel>);

type CheckFuture =
    Pin<Box<dyn Future<Output = Result<Response<HealthCheckResponse>, Status>> + Send>>;

impl Service<HealthCheckRequest> for Check {
    type Response = Response<HealthCheckResponse>;
    type Error = Status;
    type Future = CheckFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: HealthCheckRequest) -> Self::Future {
        let mut client = self.0.clone();
        Box::pin(async move { client.check(req).await })
    }
}

fn layer() -> RetryLayer<GrpcCode, seawall_retry::ByClone, GrpcHint> {
    RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .deadline(Duration::from_secs(10))
        .no_budget()
        .classify(GrpcCode::new())
        .hint(GrpcHint::new())
        .build()
        .unwrap()
}

async fn check(
    server: &Running,
    layer: &RetryLayer<GrpcCode, seawall_retry::ByClone, GrpcHint>,
    pushback: &str,
) -> Result<Response<HealthCheckResponse>, seawall_core::BoxError> {
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let svc = layer.layer(Check(HealthClient::new(channel)));
    svc.oneshot(HealthCheckRequest {
        service: pushback.to_owned(),
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_positive_pushback_is_waited() {
    let server = start().await;
    let layer = layer();
    let res = check(&server, &layer, "250").await.unwrap();
    assert_eq!(res.get_ref().status, ServingStatus::Serving as i32);
    assert_eq!(server.gaps(), [Duration::from_millis(250)]);
    let stats = layer.stats();
    assert_eq!((stats.retries, stats.hinted), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn no_pushback_leaves_the_backoff() {
    let server = start().await;
    let layer = layer();
    check(&server, &layer, "").await.unwrap();
    assert_eq!(server.gaps(), [Duration::from_millis(10)]);
    assert_eq!(layer.stats().hinted, 0);
}

#[tokio::test(start_paused = true)]
async fn a_negative_or_malformed_pushback_is_not_retried() {
    for bad in ["-1", "soon", "1.5"] {
        let server = start().await;
        let layer = layer();
        let err = check(&server, &layer, bad).await.unwrap_err();
        // The first attempt's own answer said "do not": it comes back
        // unchanged, as the `Status` it is.
        let status = err.downcast_ref::<Status>().expect("the status, unchanged");
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(server.calls(), 1, "{bad}");
        let stats = layer.stats();
        assert_eq!((stats.retries, stats.gave_up_do_not_retry), (0, 1), "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_after_retries_is_typed() {
    // Waits 40ms, then the second answer says "do not retry".
    let server = start().await;
    let layer = layer();
    let err = check(&server, &layer, "40,-1").await.unwrap_err();
    let retry = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert_eq!(retry.reason(), StopReason::DoNotRetry);
    assert_eq!(retry.attempts(), 2);
    assert_eq!(server.gaps(), [Duration::from_millis(40)]);
}

#[tokio::test(start_paused = true)]
async fn a_pushback_past_the_deadline_gives_up_at_once() {
    let server = start().await;
    let layer = layer();
    let start = Instant::now();
    let err = check(&server, &layer, "60000").await.unwrap_err();
    let retry = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert_eq!(retry.reason(), StopReason::HintTooLong);
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleep");
    assert_eq!(server.calls(), 1);
    assert_eq!(layer.stats().gave_up_hint_too_long, 1);
}

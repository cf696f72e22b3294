//! The tonic client stack, and a seawall layer in a tonic server, for real on
//! 127.0.0.1: each rejection kind reaches the caller as its gRPC code and
//! fixed message, with its retry pushback in the metadata, and nothing of the
//! error's message or key crosses the wire.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use seawall::breaker::{BreakerLayer, TripPolicy};
use seawall::budget::BudgetLayer;
use seawall::core::classify::GrpcCode;
use seawall::retry::{Backoff, RetryLayer};
use seawall::shed::ShedLayer;
use seawall::timeout::AdaptiveTimeoutLayer;
use seawall::tonic::RETRY_PUSHBACK_KEY;
use seawall::{BoxError, BudgetExhausted, CircuitOpen, Rejection, RejectionKind};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tonic::codegen::http;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::{Service, ServiceBuilder, ServiceExt};

const BOUND: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("the test finishes within its bound")
}

/// A health service that behaves as the checked service's name says:
/// `"fail"` answers `Unavailable`, `"hang"` never answers, `"held"` waits for
/// the gate, anything else is serving.
#[derive(Clone)]
struct Peer {
    entered: mpsc::Sender<()>,
    gate: Arc<Semaphore>,
}

#[tonic::async_trait]
impl Health for Peer {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        match req.get_ref().service.as_str() {
            "fail" => return Err(Status::unavailable("dependency down")),
            "hang" => std::future::pending::<()>().await,
            "held" => {
                let _ = self.entered.send(()).await;
                drop(self.gate.acquire().await);
            }
            _ => {}
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
    entered: mpsc::Receiver<()>,
    gate: Arc<Semaphore>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the health server on a free port, with `layer` around its routes.
async fn start<L>(layer: L) -> Running
where
    L: tower::Layer<tonic::service::Routes> + Clone + Send + Sync + 'static,
    L::Service: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Status,
        > + Clone
        + Send
        + 'static,
    <L::Service as Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (entered_tx, entered) = mpsc::channel(16);
    let gate = Arc::new(Semaphore::new(0));
    let peer = Peer {
        entered: entered_tx,
        gate: gate.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(HealthServer::new(peer))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );
    Running {
        addr,
        entered,
        gate,
        _stop: stop,
    }
}

/// A server with no seawall layer.
async fn start_plain() -> Running {
    start(ServiceBuilder::new().map_err(|e: std::convert::Infallible| match e {})).await
}

/// A server whose every call fails, below `map_err(to_status)`, with the
/// error `make` builds.
async fn start_failing(make: fn() -> BoxError) -> Running {
    start(
        ServiceBuilder::new()
            .map_err(seawall::tonic::to_status)
            .layer(tower::layer::layer_fn(move |_routes| {
                tower::service_fn(move |_req: http::Request<tonic::body::Body>| async move {
                    Err::<http::Response<tonic::body::Body>, BoxError>(make())
                })
            })),
    )
    .await
}

/// Everything of `status` that crossed the wire, as text.
fn on_the_wire(status: &Status) -> String {
    let mut text = format!(
        "{} {}",
        status.message(),
        String::from_utf8_lossy(status.details())
    );
    for kv in status.metadata().iter() {
        if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv {
            text.push_str(&format!(
                " {}={}",
                k.as_str(),
                String::from_utf8_lossy(v.as_encoded_bytes())
            ));
        }
    }
    text
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

fn pushback_ms(status: &Status) -> Option<u64> {
    status
        .metadata()
        .get(RETRY_PUSHBACK_KEY)
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn budget_exhausted_is_resource_exhausted_with_pushback() {
    bounded(async {
        let server = start_plain().await;
        let budget = BudgetLayer::builder()
            .rate(1)
            .per(Duration::from_secs(3600))
            .burst(1)
            .build()
            .unwrap();
        let stack = ServiceBuilder::new()
            .map_err(seawall::tonic::to_status)
            .layer(budget.clone())
            .service(channel(server.addr).await);
        let mut client = HealthClient::new(stack);

        client.check(check("")).await.unwrap();
        let status = client.check(check("")).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "rate budget exhausted");
        let ms = pushback_ms(&status).expect("a pushback");
        assert!(
            (3_000_000..=3_600_000).contains(&ms),
            "the next token is about an hour away, got {ms}ms"
        );
        assert_eq!(budget.stats().exhausted, 1);
    })
    .await;
}

#[tokio::test]
async fn elapsed_is_deadline_exceeded_without_pushback() {
    bounded(async {
        let server = start_plain().await;
        let timeout = AdaptiveTimeoutLayer::fixed(Duration::from_millis(100));
        let stack = ServiceBuilder::new()
            .map_err(seawall::tonic::to_status)
            .layer(timeout.clone())
            .service(channel(server.addr).await);
        let mut client = HealthClient::new(stack);

        let started = std::time::Instant::now();
        let status = client.check(check("hang")).await.unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(status.message(), "timed out");
        assert_eq!(pushback_ms(&status), None);
        assert!(
            started.elapsed() < BOUND / 2,
            "cut at the deadline, not later"
        );
        assert_eq!(timeout.stats().timeouts, 1);
        // The channel is still good.
        client.check(check("")).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn circuit_open_is_unavailable_with_pushback() {
    bounded(async {
        let server = start_plain().await;
        let breaker = BreakerLayer::builder()
            .policy(TripPolicy::consecutive_failures(2))
            .open_duration(Duration::from_secs(30))
            .classify(GrpcCode::new())
            .build()
            .unwrap();
        let stack = ServiceBuilder::new()
            .map_err(seawall::tonic::to_status)
            .layer(breaker.clone())
            .service(channel(server.addr).await);
        let mut client = HealthClient::new(stack);

        client.check(check("")).await.unwrap();
        // The server's own Unavailable passes through, and counts.
        for _ in 0..2 {
            let status = client.check(check("fail")).await.unwrap_err();
            assert_eq!(status.code(), Code::Unavailable);
            assert_eq!(status.message(), "dependency down");
            assert_eq!(pushback_ms(&status), None);
        }
        let status = client.check(check("")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "circuit open");
        let ms = pushback_ms(&status).expect("a pushback");
        assert!((1..=30_000).contains(&ms), "open for 30s, got {ms}ms");
        assert_eq!(breaker.stats().rejected, 1);
    })
    .await;
}

#[tokio::test]
async fn overloaded_server_answers_unavailable_with_pushback() {
    bounded(async {
        // The shedder in the server: its rejection crosses the wire.
        let shed = ShedLayer::builder()
            .max_in_flight(1)
            .retry_after(Duration::from_millis(1500))
            .build()
            .unwrap();
        let mut server = start(
            ServiceBuilder::new()
                .map_err(seawall::tonic::to_status)
                .layer(shed.clone()),
        )
        .await;
        let channel = channel(server.addr).await;

        let mut held_client = HealthClient::new(channel.clone());
        let held = tokio::spawn(async move { held_client.check(check("held")).await });
        server.entered.recv().await.unwrap(); // the only slot is taken

        let mut client = HealthClient::new(channel);
        let status = client.check(check("")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "overloaded");
        assert_eq!(pushback_ms(&status), Some(1500));
        assert_eq!(shed.stats().shed.hard_limit, 1);

        server.gate.add_permits(1);
        held.await.unwrap().unwrap();
        client.check(check("")).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_client_stack_retries_failures_but_not_rejections() {
    bounded(async {
        let server = start_plain().await;
        let breaker = BreakerLayer::builder()
            .policy(TripPolicy::consecutive_failures(3))
            .open_duration(Duration::from_secs(30))
            .classify(GrpcCode::new())
            .build()
            .unwrap();
        let lower = ServiceBuilder::new()
            .map_err(seawall::tonic::to_status)
            .layer(breaker.clone())
            .layer(AdaptiveTimeoutLayer::fixed(Duration::from_secs(2)))
            .service(channel(server.addr).await);
        let client = HealthClient::new(lower);
        let retry = RetryLayer::builder()
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(5)))
            .deadline(Duration::from_secs(1))
            .classify(GrpcCode::new())
            .build()
            .unwrap();
        let mut svc = ServiceBuilder::new().layer(retry.clone()).service_fn(
            move |req: HealthCheckRequest| {
                let mut client = client.clone();
                async move { client.check(req).await }
            },
        );

        // Three attempts at a failing service: all sent, the breaker trips.
        let err: BoxError = svc
            .ready()
            .await
            .unwrap()
            .call(check("fail"))
            .await
            .unwrap_err();
        assert_eq!(retry.stats().attempts, 3);
        assert_eq!(seawall::tonic::to_status(err).code(), Code::Unavailable);

        // Open for 30s: more than the retry deadline, so no second attempt;
        // the rejection is still recognised inside the status.
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(check(""))
            .await
            .unwrap_err();
        assert_eq!(retry.stats().attempts, 4);
        let found = Rejection::find(&*err).expect("the rejection inside the status");
        assert_eq!(found.kind(), RejectionKind::CircuitOpen);
        let status = seawall::tonic::to_status(err);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(pushback_ms(&status).is_some());
    })
    .await;
}

#[tokio::test]
async fn an_error_message_never_crosses_the_wire() {
    bounded(async {
        let server = start_failing(|| "connect to db://svc:pw@10.1.2.3 failed".into()).await;
        let mut client = HealthClient::new(channel(server.addr).await);
        let status = client.check(check("")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "internal error");
        let wire = on_the_wire(&status);
        for secret in ["pw@", "db://", "10.1.2.3", "connect"] {
            assert!(!wire.contains(secret), "{secret} in {wire}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_key_never_crosses_the_wire() {
    bounded(async {
        let server = start_failing(|| {
            CircuitOpen::new(Some(Duration::from_secs(3)))
                .with_key("peer\r\nset-cookie: x=1")
                .into()
        })
        .await;
        let mut client = HealthClient::new(channel(server.addr).await);
        let status = client.check(check("")).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "circuit open");
        assert_eq!(pushback_ms(&status), Some(3000));
        assert!(status.metadata().get("set-cookie").is_none());
        let wire = on_the_wire(&status);
        for text in ["peer", "cookie", "x=1"] {
            assert!(!wire.contains(text), "{text} in {wire}");
        }
    })
    .await;
}

#[tokio::test]
async fn pushback_is_at_least_one_ms_and_at_most_a_day() {
    bounded(async {
        for (make, expected) in [
            (
                (|| BudgetExhausted::new(Duration::from_micros(400)).into()) as fn() -> BoxError,
                1,
            ),
            (|| CircuitOpen::new(Some(Duration::ZERO)).into(), 1),
            (
                || BudgetExhausted::new(Duration::from_secs(u64::MAX)).into(),
                86_400_000,
            ),
        ] {
            let server = start_failing(make).await;
            let mut client = HealthClient::new(channel(server.addr).await);
            let status = client.check(check("")).await.unwrap_err();
            assert_eq!(pushback_ms(&status), Some(expected), "{status:?}");
        }
    })
    .await;
}

/// A keyed budget in a tonic server, keyed by the client's address: tonic
/// puts the connection's `TcpConnectInfo` in each request's extensions, and
/// `ClientIp::peer_from` reads it. Two clients on loopback are one address
/// (one budget); the key is the peer, not anything the client sends.
#[cfg(feature = "http")]
#[tokio::test]
async fn a_tonic_server_keys_its_budget_by_the_peer_address() {
    use seawall::budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
    use seawall::core::key::ClientIp;
    use tonic::transport::server::TcpConnectInfo;

    bounded(async {
        let client_ip = ClientIp::new().peer_from(|c: &TcpConnectInfo| c.remote_addr());
        let config = KeyedBudgetConfig::from(
            BudgetConfig::new()
                .rate(1)
                .per(Duration::from_secs(3600))
                .burst(2),
        );
        let budget =
            KeyedBudgetLayer::new::<http::Request<tonic::body::Body>>(client_ip, &config).unwrap();
        let server = start(
            ServiceBuilder::new()
                .map_err(seawall::tonic::to_status)
                .layer(budget.clone()),
        )
        .await;
        let mut first = HealthClient::new(channel(server.addr).await);
        let mut second = HealthClient::new(channel(server.addr).await);
        first.check(check("")).await.unwrap();
        second.check(check("")).await.unwrap();
        let status = second.check(check("")).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let stats = budget.stats();
        assert_eq!(stats.keys, 1, "both connections come from 127.0.0.1");
        assert_eq!(stats.exhausted, 1);
    })
    .await;
}

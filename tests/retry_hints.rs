//! The client stacks a `StackConfig` builds honour what a real peer on
//! 127.0.0.1 says about retrying:
//!
//! - `build_http` around a hyper client, against an axum server answering
//!   429 and 503 with each header form: `Retry-After` in seconds and as a
//!   date, the IETF `RateLimit` field, `RateLimit-Reset` and
//!   `X-RateLimit-Reset` (seconds, and a Unix time);
//! - `build_grpc` around a tonic client, against a tonic server sending
//!   `grpc-retry-pushback-ms`: positive (waited), negative or malformed (not
//!   retried);
//! - a hint that does not fit the deadline ends the retries at once, without
//!   sleeping; `honour_hints = false` in the retry table turns hints off.
//!
//! Paused tokio time, on one current-thread runtime: no timer is pending
//! while a request crosses the loopback, so the clock does not move then,
//! and the only timer is the retry's sleep. The servers note when each
//! request arrives: the gaps are exactly the waits the stack chose.
#![cfg(all(
    feature = "serde",
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry",
    any(feature = "http", feature = "tonic")
))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::config::StackConfig;
use tokio::time::Instant;

/// When each request reached a server, from the test's start.
#[derive(Clone)]
struct Arrivals {
    t0: Instant,
    at: Arc<Mutex<Vec<Duration>>>,
}

impl Arrivals {
    fn new() -> Self {
        Arrivals {
            t0: Instant::now(),
            at: Arc::default(),
        }
    }

    /// Notes an arrival; returns how many there were, this one included.
    fn note(&self) -> usize {
        let mut at = self.at.lock().unwrap();
        at.push(self.t0.elapsed());
        at.len()
    }

    fn count(&self) -> usize {
        self.at.lock().unwrap().len()
    }

    /// The gaps between consecutive arrivals.
    fn gaps(&self) -> Vec<Duration> {
        let at = self.at.lock().unwrap();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// A retry table: 3 attempts, a 10ms constant backoff without jitter (so any longer gap
/// is a hint), no budget, the given deadline and extra lines.
fn config(deadline: &str, extra: &str) -> StackConfig {
    StackConfig::from_toml_str(&format!(
        r#"
        [client.retry]
        max_attempts = 3
        deadline = "{deadline}"
        backoff = {{ strategy = "constant", base = "10ms", jitter = 0.0 }}
        budget = {{ enabled = false }}
        {extra}

        [client.breaker]
        [client.timeout.per_key]
        max = "1h"
        "#
    ))
    .unwrap()
}

#[cfg(feature = "http")]
mod http_stack {
    use std::task::{Context, Poll};

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use seawall::BoxError;
    use seawall_test_support::serve::axum as serve;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    /// A hyper client as a `Service<http::Request<Empty<Bytes>>>` (such a
    /// request is `Clone`, so the retry can resend it).
    #[derive(Clone)]
    struct Hyper(Client<HttpConnector, Empty<Bytes>>);

    impl Service<http::Request<Empty<Bytes>>> for Hyper {
        type Response = hyper::Response<hyper::body::Incoming>;
        type Error = hyper_util::client::legacy::Error;
        type Future = hyper_util::client::legacy::ResponseFuture;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<Empty<Bytes>>) -> Self::Future {
            self.0.request(req)
        }
    }

    /// A server whose `/` refuses the first request with `status` and
    /// `headers`, then answers 200.
    async fn refusing(
        status: StatusCode,
        headers: Headers,
    ) -> (String, Arrivals, tokio::sync::oneshot::Sender<()>) {
        let arrivals = Arrivals::new();
        let noted = arrivals.clone();
        let app = Router::new().route(
            "/",
            get(move || {
                let n = noted.note();
                let headers = headers.clone();
                async move {
                    if n > 1 {
                        return (StatusCode::OK, "fine").into_response();
                    }
                    let mut h = HeaderMap::new();
                    for (k, v) in headers {
                        h.append(k, HeaderValue::from_str(&v).unwrap());
                    }
                    (status, h, Body::from("come back later")).into_response()
                }
            }),
        );
        let (addr, stop) = serve(app).await;
        (format!("http://{addr}/"), arrivals, stop)
    }

    /// One GET of `uri` through the HTTP stack `config` builds; the final
    /// status and the retry stats.
    async fn get_through(
        config: &StackConfig,
        uri: &str,
    ) -> (Result<StatusCode, BoxError>, seawall::retry::RetryStats) {
        let client = config.client.build_http().unwrap();
        let svc = client.layer(Hyper(Client::builder(TokioExecutor::new()).build_http()));
        let req = http::Request::get(uri).body(Empty::new()).unwrap();
        let result = svc.oneshot(req).await.map(|r| r.status());
        (result, client.retry().unwrap().stats())
    }

    /// A fixed `Date` for the dated forms, so the wait does not depend on
    /// the wall clock: 2026-05-28 20:26:40 UTC.
    const DATE: &str = "Thu, 28 May 2026 20:26:40 GMT";
    const DATE_UNIX: u64 = 1_780_000_000;

    /// Response headers: name, value.
    type Headers = Vec<(&'static str, String)>;

    /// Each header form: its name, the refusal's headers, the wait it asks.
    fn forms() -> Vec<(&'static str, Headers, Duration)> {
        let s = Duration::from_secs;
        let date = |h: &'static str, v: String| vec![("date", DATE.to_owned()), (h, v)];
        vec![
            (
                "Retry-After seconds",
                vec![("retry-after", "3".into())],
                s(3),
            ),
            (
                "Retry-After date",
                date("retry-after", "Thu, 28 May 2026 20:26:44 GMT".into()),
                s(4),
            ),
            (
                "RateLimit",
                vec![(
                    "ratelimit",
                    "\"burst\";r=0;t=5, \"day\";r=900;t=40000".into(),
                )],
                s(5),
            ),
            (
                "RateLimit-Reset",
                vec![
                    ("ratelimit-remaining", "0".into()),
                    ("ratelimit-reset", "6".into()),
                ],
                s(6),
            ),
            (
                "X-RateLimit-Reset as a Unix time",
                vec![
                    ("date", DATE.to_owned()),
                    ("x-ratelimit-remaining", "0".into()),
                    ("x-ratelimit-reset", (DATE_UNIX + 7).to_string()),
                ],
                s(7),
            ),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn each_header_form_on_429_and_503_is_waited() {
        let config = config("30s", "");
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            for (form, headers, wait) in forms() {
                let (uri, arrivals, _stop) = refusing(status, headers).await;
                let (result, stats) = get_through(&config, &uri).await;
                assert_eq!(result.unwrap(), StatusCode::OK, "{status} {form}");
                assert_eq!(arrivals.gaps(), [wait], "{status} {form}");
                assert_eq!((stats.retries, stats.hinted), (1, 1), "{status} {form}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quota_with_requests_left_is_not_a_hint() {
        // A 503 from a service whose quota is not spent: its hourly reset
        // says nothing about this failure; the backoff decides.
        let config = config("30s", "");
        let headers = vec![
            ("x-ratelimit-remaining", "4999".into()),
            ("x-ratelimit-reset", "3600".into()),
            ("ratelimit", "\"hour\";r=4999;t=3600".into()),
        ];
        let (uri, arrivals, _stop) = refusing(StatusCode::SERVICE_UNAVAILABLE, headers).await;
        let (result, stats) = get_through(&config, &uri).await;
        assert_eq!(result.unwrap(), StatusCode::OK);
        assert_eq!(arrivals.gaps(), [Duration::from_millis(10)]);
        assert_eq!(stats.hinted, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_past_the_deadline_gives_up_at_once() {
        let config = config("10s", "");
        for (form, headers) in [
            ("Retry-After", vec![("retry-after", "60".to_owned())]),
            ("RateLimit", vec![("ratelimit", "q;r=0;t=60".to_owned())]),
        ] {
            let (uri, arrivals, _stop) = refusing(StatusCode::TOO_MANY_REQUESTS, headers).await;
            let start = Instant::now();
            let (result, stats) = get_through(&config, &uri).await;
            // The peer's 429 comes back as it is, and the clock did not
            // move: nothing slept, let alone past the deadline.
            assert_eq!(result.unwrap(), StatusCode::TOO_MANY_REQUESTS, "{form}");
            assert_eq!(start.elapsed(), Duration::ZERO, "{form}");
            assert_eq!(arrivals.count(), 1, "{form}");
            assert_eq!(
                (stats.retries, stats.gave_up_hint_too_long),
                (0, 1),
                "{form}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn honour_hints_false_waits_only_the_backoff() {
        let config = config("10s", "honour_hints = false");
        let headers = vec![("retry-after", "60".to_owned())];
        let (uri, arrivals, _stop) = refusing(StatusCode::SERVICE_UNAVAILABLE, headers).await;
        let (result, stats) = get_through(&config, &uri).await;
        assert_eq!(result.unwrap(), StatusCode::OK);
        assert_eq!(arrivals.gaps(), [Duration::from_millis(10)]);
        assert_eq!(
            (stats.retries, stats.hinted, stats.gave_up_hint_too_long),
            (1, 0, 0)
        );
    }
}

#[cfg(feature = "tonic")]
mod grpc_stack {
    use std::net::SocketAddr;

    use seawall::BoxError;
    use seawall::retry::{RetryError, StopReason};
    use tokio::net::TcpListener;
    use tonic::transport::server::TcpIncoming;
    use tonic::transport::{Channel, Server};
    use tonic::{Code, Request, Response, Status};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::health_server::{Health, HealthServer};
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;

    /// A health service scripted by the checked service's name: a
    /// comma-separated list of pushbacks, one per call (an empty one:
    /// none); call `n` answers `Unavailable` with the `n`th, calls past the
    /// list answer `Serving`.
    #[derive(Clone)]
    struct Peer(Arrivals);

    #[tonic::async_trait]
    impl Health for Peer {
        async fn check(
            &self,
            req: Request<HealthCheckRequest>,
        ) -> Result<Response<HealthCheckResponse>, Status> {
            let n = self.0.note();
            if let Some(value) = req.into_inner().service.split(',').nth(n - 1) {
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

    async fn start() -> (SocketAddr, Arrivals, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrivals = Arrivals::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            Server::builder()
                .add_service(HealthServer::new(Peer(arrivals.clone())))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                }),
        );
        (addr, arrivals, stop)
    }

    /// One health check with `script` through the gRPC stack `config`
    /// builds, above the tonic client; the result and the retry stats.
    async fn check_through(
        config: &StackConfig,
        addr: SocketAddr,
        script: &str,
    ) -> (
        Result<Response<HealthCheckResponse>, BoxError>,
        seawall::retry::RetryStats,
    ) {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let client = HealthClient::new(channel);
        let stack = config
            .client
            .build_grpc(|_: &HealthCheckRequest| "health")
            .unwrap();
        let svc = stack.layer(service_fn(move |req: HealthCheckRequest| {
            let mut client = client.clone();
            async move { client.check(req).await }
        }));
        let result = svc
            .oneshot(HealthCheckRequest {
                service: script.to_owned(),
            })
            .await;
        (result, stack.retry().unwrap().stats())
    }

    #[tokio::test(start_paused = true)]
    async fn a_positive_pushback_is_waited() {
        let config = config("10s", "");
        let (addr, arrivals, _stop) = start().await;
        let (result, stats) = check_through(&config, addr, "250,1500").await;
        assert_eq!(
            result.unwrap().get_ref().status,
            ServingStatus::Serving as i32
        );
        let ms = Duration::from_millis;
        assert_eq!(arrivals.gaps(), [ms(250), ms(1500)]);
        assert_eq!((stats.retries, stats.hinted), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn no_pushback_leaves_the_backoff() {
        let config = config("10s", "");
        let (addr, arrivals, _stop) = start().await;
        let (result, stats) = check_through(&config, addr, "").await;
        assert!(result.is_ok());
        assert_eq!(arrivals.gaps(), [Duration::from_millis(10)]);
        assert_eq!(stats.hinted, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_negative_or_malformed_pushback_is_not_retried() {
        let config = config("10s", "");
        for bad in ["-1", "soon", "1.5", " -0"] {
            let (addr, arrivals, _stop) = start().await;
            let (result, stats) = check_through(&config, addr, bad).await;
            // The first answer said "do not": it comes back unchanged.
            let err = result.unwrap_err();
            let status = err.downcast_ref::<Status>().expect("the peer's status");
            assert_eq!(status.code(), Code::Unavailable, "{bad}");
            assert_eq!(arrivals.count(), 1, "{bad}");
            assert_eq!((stats.retries, stats.gave_up_do_not_retry), (0, 1), "{bad}");
        }
        // After a retry, the stop is typed.
        let (addr, arrivals, _stop) = start().await;
        let (result, _) = check_through(&config, addr, "40,-1").await;
        let err = result.unwrap_err();
        let retry = err.downcast_ref::<RetryError>().expect("a RetryError");
        assert_eq!(
            (retry.reason(), retry.attempts()),
            (StopReason::DoNotRetry, 2)
        );
        assert_eq!(arrivals.gaps(), [Duration::from_millis(40)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pushback_past_the_deadline_gives_up_at_once() {
        let config = config("10s", "");
        let (addr, arrivals, _stop) = start().await;
        let start = Instant::now();
        let (result, stats) = check_through(&config, addr, "60000").await;
        let err = result.unwrap_err();
        let retry = err.downcast_ref::<RetryError>().expect("a RetryError");
        assert_eq!(retry.reason(), StopReason::HintTooLong);
        assert_eq!(start.elapsed(), Duration::ZERO, "no sleep");
        assert_eq!(arrivals.count(), 1);
        assert_eq!(stats.gave_up_hint_too_long, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_is_an_answer_not_a_failure() {
        // `GrpcCode` sees the peer's code through the seawall layers below
        // the retry: `NotFound` is the peer answering, not retried, not a
        // failure for the breaker.
        let config = config("10s", "");
        let stack = config
            .client
            .build_grpc(|_: &HealthCheckRequest| "health")
            .unwrap();
        let svc = stack.layer(service_fn(|_: HealthCheckRequest| async {
            Err::<Response<HealthCheckResponse>, _>(Status::not_found("no such service"))
        }));
        let err = svc
            .oneshot(HealthCheckRequest::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.downcast_ref::<Status>().map(Status::code),
            Some(Code::NotFound)
        );
        let stats = stack.retry().unwrap().stats();
        assert_eq!((stats.attempts, stats.retries), (1, 0));
        let breaker = stack.breaker().unwrap().key_stats(&"health").unwrap();
        assert_eq!(breaker.failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn honour_hints_false_retries_past_a_do_not_retry() {
        let config = config("10s", "honour_hints = false");
        let (addr, arrivals, _stop) = start().await;
        let (result, stats) = check_through(&config, addr, "-1,60000").await;
        assert!(result.is_ok());
        let ms = Duration::from_millis(10);
        assert_eq!(arrivals.gaps(), [ms, ms]);
        assert_eq!(
            (stats.retries, stats.hinted, stats.gave_up_do_not_retry),
            (2, 0, 0)
        );
    }
}

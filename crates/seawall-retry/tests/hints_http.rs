//! `HttpHint` for real: an axum server on 127.0.0.1 answers 429 and 503 with
//! `Retry-After` (seconds, HTTP-date) or a `RateLimit` field, and a hyper
//! client under the retry layer waits what it was told.
//!
//! Paused tokio time: the server and the client share one current-thread
//! runtime, no timer is pending while a request crosses the loopback (so
//! time does not move then), and the only timer is the retry's sleep, which
//! the paused clock jumps over. The server notes when each request arrives:
//! the gaps are exactly the waits the layer chose.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use seawall_core::BoxError;
use seawall_core::classify::HttpStatus;
use seawall_retry::hint::{HttpHint, UNBOUNDED_HINT};
use seawall_retry::{Backoff, ByClone, Retry, RetryError, RetryLayer, StopReason};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// When each request reached the server, from the test's start.
#[derive(Clone)]
struct Arrivals {
    t0: Instant,
    at: Arc<Mutex<Vec<Duration>>>,
}

impl Arrivals {
    fn note(&self) -> usize {
        let mut at = self.at.lock().unwrap();
        at.push(self.t0.elapsed());
        at.len()
    }

    /// The gaps between consecutive arrivals.
    fn gaps(&self) -> Vec<Duration> {
        let at = self.at.lock().unwrap();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// A route that refuses its first request with `status` and `headers`, and
/// answers the next ones with 200.
fn refuse_once(
    arrivals: &Arrivals,
    status: StatusCode,
    headers: &'static [(&'static str, &'static str)],
) -> axum::routing::MethodRouter {
    let arrivals = arrivals.clone();
    get(move || {
        let n = arrivals.note();
        async move {
            if n > 1 {
                return (StatusCode::OK, "fine").into_response();
            }
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.append(*k, HeaderValue::from_static(v));
            }
            (status, h, Body::from("come back later")).into_response()
        }
    })
}

use seawall_test_support::serve::axum as serve;

/// A hyper client as a `Service<Uri>` (a `Uri` is cheap to clone for a
/// retry).
#[derive(Clone)]
struct Get(Client<HttpConnector, Empty<Bytes>>);

impl Service<Uri> for Get {
    type Response = hyper::Response<hyper::body::Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = hyper_util::client::legacy::ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        self.0.get(uri)
    }
}

/// The hyper client under `layer`.
fn client(
    layer: RetryLayer<HttpStatus, ByClone, HttpHint>,
) -> Retry<Get, HttpStatus, ByClone, HttpHint> {
    layer.layer(Get(Client::builder(TokioExecutor::new()).build_http()))
}

fn layer(deadline: Option<Duration>) -> RetryLayer<HttpStatus, ByClone, HttpHint> {
    let builder = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .no_budget()
        .classify(HttpStatus::new())
        .hint(HttpHint::new());
    match deadline {
        Some(d) => builder.deadline(d),
        None => builder,
    }
    .build()
    .unwrap()
}

/// Runs one request to `path` through a fresh layer; returns the final
/// status, the layer and the arrivals.
async fn run(
    headers: &'static [(&'static str, &'static str)],
    status: StatusCode,
    deadline: Option<Duration>,
) -> (
    Result<StatusCode, BoxError>,
    RetryLayer<HttpStatus, ByClone, HttpHint>,
    Arrivals,
) {
    let arrivals = Arrivals {
        t0: Instant::now(),
        at: Arc::default(),
    };
    let app = Router::new().route("/", refuse_once(&arrivals, status, headers));
    let (addr, _stop) = serve(app).await;
    let layer = layer(deadline);
    let mut svc = client(layer.clone());
    let uri: Uri = format!("http://{addr}/").parse().unwrap();
    let result = svc.ready().await.unwrap().call(uri).await;
    (result.map(|r| r.status()), layer, arrivals)
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_waited() {
    let (status, layer, arrivals) =
        run(&[("retry-after", "3")], StatusCode::TOO_MANY_REQUESTS, None).await;
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert_eq!(arrivals.gaps(), [Duration::from_secs(3)]);
    let stats = layer.stats();
    assert_eq!((stats.retries, stats.hinted), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn retry_after_date_is_measured_from_the_response_date() {
    // The server's clock says 08:49:37; it asks for 08:49:41: 4 seconds,
    // whatever the client's system clock reads.
    let (status, layer, arrivals) = run(
        &[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("retry-after", "Sun, 06 Nov 1994 08:49:41 GMT"),
        ],
        StatusCode::SERVICE_UNAVAILABLE,
        None,
    )
    .await;
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert_eq!(arrivals.gaps(), [Duration::from_secs(4)]);
    assert_eq!(layer.stats().hinted, 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_a_past_date_leaves_the_backoff() {
    // The server adds its own (current) `Date`; 1994 is long past.
    let (status, layer, arrivals) = run(
        &[("retry-after", "Sunday, 06-Nov-94 08:49:37 GMT")],
        StatusCode::SERVICE_UNAVAILABLE,
        None,
    )
    .await;
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert_eq!(arrivals.gaps(), [Duration::from_millis(10)]);
    assert_eq!(layer.stats().hinted, 0);
}

#[tokio::test(start_paused = true)]
async fn ratelimit_reset_is_waited() {
    let (status, layer, arrivals) = run(
        &[("ratelimit", "\"burst\";r=0;t=2, \"daily\";r=4000;t=80000")],
        StatusCode::TOO_MANY_REQUESTS,
        None,
    )
    .await;
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert_eq!(arrivals.gaps(), [Duration::from_secs(2)]);
    assert_eq!(layer.stats().hinted, 1);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_hint_than_the_backoff_waits_the_backoff() {
    let (status, layer, arrivals) =
        run(&[("retry-after", "0")], StatusCode::TOO_MANY_REQUESTS, None).await;
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert_eq!(arrivals.gaps(), [Duration::from_millis(10)]);
    assert_eq!(layer.stats().hinted, 0);
}

#[tokio::test(start_paused = true)]
async fn a_hint_past_the_deadline_gives_up_at_once() {
    let start = Instant::now();
    let (status, layer, arrivals) = run(
        &[("retry-after", "60")],
        StatusCode::TOO_MANY_REQUESTS,
        Some(Duration::from_secs(30)),
    )
    .await;
    // The 429 comes back as the response it is, without any sleep.
    assert_eq!(status.unwrap(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(arrivals.gaps().is_empty());
    let stats = layer.stats();
    assert_eq!((stats.retries, stats.gave_up_hint_too_long), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_long_hint_fits_a_long_deadline() {
    // Without the deadline this would pass the backoff's 10ms; the deadline
    // allows a minute.
    let (status, _layer, arrivals) = run(
        &[("retry-after", "45")],
        StatusCode::SERVICE_UNAVAILABLE,
        Some(Duration::from_secs(60)),
    )
    .await;
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert_eq!(arrivals.gaps(), [Duration::from_secs(45)]);
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_a_hint_past_the_backoff_cap_gives_up() {
    // `Backoff::constant(10ms)` has no cap and there is no deadline: a
    // peer's year is not waited (that would park the request for a day);
    // UNBOUNDED_HINT bounds it, and the peer's answer comes back at once...
    let (status, _layer, arrivals) = run(
        &[("retry-after", "31536000")],
        StatusCode::SERVICE_UNAVAILABLE,
        None,
    )
    .await;
    assert_eq!(status.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(arrivals.gaps().is_empty());
    // ...and a hint within it is waited.
    let (status, _layer, arrivals) = run(
        &[("retry-after", "5")],
        StatusCode::SERVICE_UNAVAILABLE,
        None,
    )
    .await;
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert_eq!(arrivals.gaps(), [UNBOUNDED_HINT]);

    // ...while the default backoff (capped at 5s) gives up at once.
    let arrivals = Arrivals {
        t0: Instant::now(),
        at: Arc::default(),
    };
    let app = Router::new().route(
        "/",
        refuse_once(
            &arrivals,
            StatusCode::SERVICE_UNAVAILABLE,
            &[("retry-after", "6")],
        ),
    );
    let (addr, _stop) = serve(app).await;
    let layer = RetryLayer::builder()
        .no_budget()
        .classify(HttpStatus::new())
        .hint(HttpHint::new())
        .build()
        .unwrap();
    let mut svc = client(layer.clone());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(format!("http://{addr}/").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(layer.stats().gave_up_hint_too_long, 1);
}

#[tokio::test(start_paused = true)]
async fn a_transport_error_has_no_hint_and_gives_up_typed() {
    // Nobody listens: the error carries no headers, the backoff decides,
    // and the caller gets a `RetryError` after three attempts.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let layer = layer(None);
    let mut svc = client(layer.clone());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(format!("http://{addr}/").parse().unwrap())
        .await
        .unwrap_err();
    let retry = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert_eq!(retry.reason(), StopReason::AttemptsExhausted);
    assert_eq!(layer.stats().hinted, 0);
}

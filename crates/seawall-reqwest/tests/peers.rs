//! The middleware against real axum peers on 127.0.0.1 (ephemeral ports),
//! through a real reqwest client and reqwest-middleware chain:
//!
//! - a failing peer opens its own breaker, and only its own: the healthy
//!   peer next to it is still called; the refusal is a typed `CircuitOpen`
//!   that `Rejection::find` recovers from the `reqwest_middleware::Error`,
//!   with the peer's authority as its key, and a fallback can answer it;
//! - a hanging peer is cut by the timeout (a fixed 100ms deadline):
//!   `Elapsed`, found the same way;
//! - a peer answering 429 with `Retry-After` is retried after the wait it
//!   asked for, in paused tokio time;
//! - a request with a streaming body is sent once, never retried; the same
//!   request with a buffered body is retried;
//! - the extensions reach the chain below on every attempt.
//!
//! No test waits on the wall clock for more than the 100ms deadline, and
//! none asserts a wall-clock duration.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, TripPolicy};
use seawall_core::{Rejection, RejectionKind};
use seawall_fallback::FallbackConfig;
use seawall_reqwest::{SeawallMiddleware, StackError};
use seawall_retry::{Backoff, RetryBudgetConfig, RetryConfig};
use seawall_test_support::serve::axum as serve;
use seawall_timeout::{AdaptiveTimeoutConfig, KeyedAdaptiveTimeoutConfig};
use tokio::sync::oneshot;

/// A peer whose every route answers `status`, counting the requests.
async fn peer(status: StatusCode) -> (String, Arc<AtomicUsize>, oneshot::Sender<()>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let answer = move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { (status, "answer").into_response() }
    };
    let app = Router::new()
        .route("/", get(answer.clone()))
        .route("/upload", post(answer));
    let (addr, stop) = serve(app).await;
    (format!("http://{addr}"), hits, stop)
}

/// A client with `middleware` and no pool timers (so paused time moves only
/// for the stack's own timers).
fn client(middleware: SeawallMiddleware) -> ClientWithMiddleware {
    let inner = reqwest::Client::builder()
        .pool_idle_timeout(None)
        .build()
        .expect("a plain http client");
    ClientBuilder::new(inner).with(middleware).build()
}

/// Retries: `attempts`, a 1ms constant backoff without jitter, no budget.
fn retry(attempts: u32) -> RetryConfig {
    let mut budget = RetryBudgetConfig::default();
    budget.enabled = false;
    RetryConfig::new()
        .max_attempts(attempts)
        .backoff(Backoff::constant(Duration::from_millis(1)).jitter(0.0))
        .budget(budget)
}

fn breaker(threshold: u32) -> KeyedBreakerConfig {
    KeyedBreakerConfig::new().per_key(
        BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(threshold))
            .open_duration(Duration::from_secs(30)),
    )
}

#[tokio::test]
async fn a_failing_peer_opens_its_own_breaker_only() {
    let (bad, bad_hits, _stop_bad) = peer(StatusCode::SERVICE_UNAVAILABLE).await;
    let (good, good_hits, _stop_good) = peer(StatusCode::OK).await;
    let seawall = SeawallMiddleware::builder()
        .breaker(breaker(3))
        .build()
        .unwrap();
    let client = client(seawall.clone());

    // Three 503s: answers, counted as failures; the breaker opens.
    for _ in 0..3 {
        let res = client.get(format!("{bad}/")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let err = client.get(format!("{bad}/")).send().await.unwrap_err();
    assert_eq!(
        bad_hits.load(Ordering::SeqCst),
        3,
        "the open breaker refused the 4th"
    );
    assert!(err.is_middleware());
    let rejection = Rejection::find(&err).expect("a seawall rejection in the error");
    assert_eq!(rejection.kind(), RejectionKind::CircuitOpen);
    let authority = bad.trim_start_matches("http://");
    assert_eq!(rejection.key(), Some(authority));
    assert!(
        rejection
            .retry_after()
            .is_some_and(|d| d <= Duration::from_secs(30))
    );
    match &err {
        reqwest_middleware::Error::Middleware(e) => {
            assert!(e.downcast_ref::<StackError>().is_some())
        }
        other => panic!("not a middleware error: {other:?}"),
    }

    // The healthy peer's breaker is another one, closed.
    for _ in 0..5 {
        let res = client.get(format!("{good}/")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(good_hits.load(Ordering::SeqCst), 5);
    let breakers = seawall.breaker().unwrap();
    assert_eq!(breakers.len(), 2, "one breaker per authority");
}

#[tokio::test]
async fn a_fallback_answers_for_an_open_breaker() {
    let (bad, bad_hits, _stop) = peer(StatusCode::INTERNAL_SERVER_ERROR).await;
    let seawall = SeawallMiddleware::builder()
        .breaker(breaker(1))
        .fallback(FallbackConfig::new(), |_req, err| {
            let kind = Rejection::find(&*err).map(|r| r.kind());
            assert_eq!(kind, Some(RejectionKind::CircuitOpen));
            let res = http::Response::builder()
                .status(200)
                .body("from the cache")
                .map_err(|e| Box::new(e) as seawall_core::BoxError)?;
            Ok(reqwest::Response::from(res))
        })
        .build()
        .unwrap();
    let client = client(seawall.clone());
    let first = client.get(format!("{bad}/")).send().await.unwrap();
    assert_eq!(
        first.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "not a rejection: passed through"
    );
    let second = client.get(format!("{bad}/")).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.text().await.unwrap(), "from the cache");
    assert_eq!(bad_hits.load(Ordering::SeqCst), 1);
    assert_eq!(seawall.fallback().unwrap().stats().fallbacks, 1);
}

#[tokio::test]
async fn a_hanging_peer_is_cut_by_the_timeout() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<&'static str>()
        }),
    );
    let (addr, _stop) = serve(app).await;
    let timeout = KeyedAdaptiveTimeoutConfig::new().per_key(
        AdaptiveTimeoutConfig::builder()
            .fixed(Duration::from_millis(100))
            .into_config(),
    );
    let seawall = SeawallMiddleware::builder()
        .timeout(timeout)
        .breaker(breaker(5))
        .build()
        .unwrap();
    let client = client(seawall.clone());

    let err = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap_err();
    let rejection = Rejection::find(&err).expect("a seawall rejection in the error");
    assert_eq!(rejection.kind(), RejectionKind::Elapsed);
    match rejection {
        Rejection::Elapsed(e) => assert_eq!(e.after(), Duration::from_millis(100)),
        other => panic!("{other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The timeout is a failure of that peer for the breaker above it.
    let stats = seawall.breaker().unwrap().stats();
    assert_eq!(stats.failures, 1, "{stats:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_429_with_retry_after_is_retried_after_the_wait() {
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = arrivals.clone();
    let t0 = tokio::time::Instant::now();
    let app = Router::new().route(
        "/",
        get(move || {
            let mut at = noted.lock().unwrap();
            at.push(t0.elapsed());
            let first = at.len() == 1;
            async move {
                if first {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "2")],
                        "slow down",
                    )
                        .into_response()
                } else {
                    (StatusCode::OK, "fine").into_response()
                }
            }
        }),
    );
    let (addr, _stop) = serve(app).await;
    let seawall = SeawallMiddleware::builder()
        .retry(retry(3).deadline(Duration::from_secs(10)))
        .build()
        .unwrap();
    let client = client(seawall.clone());

    let res = client.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let at = arrivals.lock().unwrap().clone();
    assert_eq!(at.len(), 2);
    // The backoff alone is 1ms: the retry waited the 2s the peer asked for.
    assert!(at[1] - at[0] >= Duration::from_secs(2), "{at:?}");
    assert!(at[1] - at[0] < Duration::from_secs(3), "{at:?}");
    let stats = seawall.retry().unwrap().stats();
    assert_eq!((stats.retries, stats.hinted), (1, 1), "{stats:?}");

    // A hint longer than the retry's deadline ends the retries at once.
    arrivals.lock().unwrap().clear();
    let seawall = SeawallMiddleware::builder()
        .retry(retry(3).deadline(Duration::from_secs(1)))
        .build()
        .unwrap();
    let res = client_for(seawall)
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the last answer, as it came"
    );
    assert_eq!(arrivals.lock().unwrap().len(), 1);
}

fn client_for(middleware: SeawallMiddleware) -> ClientWithMiddleware {
    client(middleware)
}

#[tokio::test]
async fn a_streaming_body_is_sent_once() {
    let (failing, hits, _stop) = peer(StatusCode::SERVICE_UNAVAILABLE).await;
    let seawall = SeawallMiddleware::builder()
        .retry(retry(3))
        .build()
        .unwrap();
    let client = client(seawall.clone());

    // A buffered body can be copied: three attempts.
    let res = client
        .post(format!("{failing}/upload"))
        .body("buffered")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // A streaming body cannot: one attempt, its answer returned as is.
    hits.store(0, Ordering::SeqCst);
    let res = client
        .post(format!("{failing}/upload"))
        .body(reqwest::Body::wrap(String::from("streamed")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "never retried");
    assert_eq!(seawall.retry().unwrap().stats().not_cloneable, 1);
}

#[derive(Clone)]
struct Tag(&'static str);

/// Attempts that reached the middleware below seawall with the `Tag`.
static TAGGED: AtomicUsize = AtomicUsize::new(0);

/// A middleware below seawall: counts the attempts that carry the `Tag`.
fn count_tagged<'a>(
    req: reqwest::Request,
    ext: &'a mut http::Extensions,
    next: reqwest_middleware::Next<'a>,
) -> std::pin::Pin<
    Box<
        dyn std::future::Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 'a,
    >,
> {
    if ext.get::<Tag>().is_some_and(|t| t.0 == "traced") {
        TAGGED.fetch_add(1, Ordering::SeqCst);
    }
    next.run(req, ext)
}

#[tokio::test]
async fn every_attempt_sees_the_extensions() {
    let (failing, hits, _stop) = peer(StatusCode::BAD_GATEWAY).await;
    let seawall = SeawallMiddleware::builder()
        .retry(retry(2))
        .build()
        .unwrap();
    let inner = reqwest::Client::builder()
        .pool_idle_timeout(None)
        .build()
        .unwrap();
    let client = ClientBuilder::new(inner)
        .with_init(reqwest_middleware::Extension(Tag("traced")))
        .with(seawall)
        .with(count_tagged)
        .build();
    let res = client.get(format!("{failing}/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(TAGGED.load(Ordering::SeqCst), 2);
}

#[test]
fn bad_configs_name_every_field() {
    let mut timeout = KeyedAdaptiveTimeoutConfig::new();
    timeout.per_key.max = Duration::ZERO;
    let err = SeawallMiddleware::builder()
        .retry(RetryConfig::new().max_attempts(0))
        .timeout(timeout)
        .build()
        .unwrap_err();
    let fields: Vec<&str> = err.errors().iter().map(|e| e.field()).collect();
    assert!(fields.contains(&"retry.max_attempts"), "{fields:?}");
    assert!(
        fields.iter().any(|f| f.starts_with("timeout.per_key.")),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_spent_budget_refuses_before_the_peer() {
    let (ok, hits, _stop) = peer(StatusCode::OK).await;
    let budget = seawall_budget::BudgetConfig::new()
        .rate(1)
        .per(Duration::from_secs(3600))
        .burst(1);
    let seawall = SeawallMiddleware::builder().budget(budget).build().unwrap();
    let client = client(seawall.clone());
    assert_eq!(
        client.get(format!("{ok}/")).send().await.unwrap().status(),
        200
    );
    let err = client.get(format!("{ok}/")).send().await.unwrap_err();
    let rejection = Rejection::find(&err).expect("a seawall rejection in the error");
    assert_eq!(rejection.kind(), RejectionKind::BudgetExhausted);
    assert!(rejection.retry_after().is_some());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_cancelled_probe_gives_its_slot_back() {
    // One authority, three routes: failing, hanging, fine.
    let arrived = Arc::new(tokio::sync::Notify::new());
    let notify = arrived.clone();
    let app = Router::new()
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route(
            "/hang",
            get(move || {
                notify.notify_one();
                std::future::pending::<&'static str>()
            }),
        )
        .route("/ok", get(|| async { "fine" }));
    let (addr, _stop) = serve(app).await;
    let (clock, hand) = seawall_core::Clock::manual();
    let config = KeyedBreakerConfig::new().per_key(
        BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(1))
            .open_duration(Duration::from_secs(30))
            .half_open_max_calls(1)
            .success_threshold(1)
            .cancelled_is_failure(false),
    );
    let seawall = SeawallMiddleware::builder()
        .breaker(config)
        .clock(clock)
        .build()
        .unwrap();
    let client = client(seawall.clone());
    let base = format!("http://{addr}");

    let res = client.get(format!("{base}/fail")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let err = client.get(format!("{base}/ok")).send().await.unwrap_err();
    assert_eq!(
        Rejection::find(&err).unwrap().kind(),
        RejectionKind::CircuitOpen
    );

    // Half-open: the one probe slot goes to a request that hangs, and the
    // caller gives up on it once the peer has it.
    hand.advance(Duration::from_secs(31));
    let probe = client.get(format!("{base}/hang")).send();
    tokio::select! {
        _ = probe => panic!("the hanging route answered"),
        () = arrived.notified() => {}
    }
    // The dropped probe gave its slot back: the next request is the probe.
    let res = client.get(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = client.get(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(res.status(), 200, "closed again after the probe's success");
}

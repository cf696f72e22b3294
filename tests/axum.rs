//! The axum server stack, for real on 127.0.0.1: each rejection kind reaches
//! the client as its status code, `Retry-After` header and fixed body, and
//! nothing of the error's message or key does.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seawall::breaker::{BreakerLayer, TripPolicy};
use seawall::budget::BudgetLayer;
use seawall::core::classify::HttpStatus;
use seawall::shed::ShedLayer;
use seawall::timeout::AdaptiveTimeoutLayer;
use seawall::{BoxError, BudgetExhausted, CircuitOpen};
use tokio::sync::{Semaphore, mpsc};
use tower::ServiceBuilder;

/// Every test is bounded: a hang fails it instead of stalling the run.
const BOUND: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("the test finishes within its bound")
}

use seawall_test_support::serve::{axum as serve, axum_with_peers as serve_with_peers};

/// What a client saw: status, `Retry-After`, body, and every header.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    retry_after: Option<u64>,
    body: String,
    headers: axum::http::HeaderMap,
}

impl Seen {
    /// Whether `text` shows anywhere in what the client received.
    fn shows(&self, text: &str) -> bool {
        self.body.contains(text)
            || self.headers.iter().any(|(name, value)| {
                name.as_str().contains(&text.to_ascii_lowercase())
                    || String::from_utf8_lossy(value.as_bytes()).contains(text)
            })
    }
}

async fn get_path(addr: SocketAddr, path: &str) -> Seen {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{addr}{path}").parse().unwrap();
    let res = client.get(uri).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let retry_after = res
        .headers()
        .get(axum::http::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Seen {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
        headers,
    }
}

/// An app whose only route fails with the error `make` builds.
fn failing(make: fn() -> BoxError) -> Router {
    Router::new().route_service(
        "/",
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(seawall::axum::handle_error))
            .service_fn(move |_req: axum::extract::Request| async move {
                Err::<axum::response::Response, BoxError>(make())
            }),
    )
}

/// A handler that reports it has started, then waits for the gate.
#[derive(Clone)]
struct Gate {
    entered: mpsc::Sender<()>,
    open: Arc<Semaphore>,
}

impl Gate {
    fn new() -> (Gate, mpsc::Receiver<()>) {
        let (entered, rx) = mpsc::channel(16);
        let gate = Gate {
            entered,
            open: Arc::new(Semaphore::new(0)),
        };
        (gate, rx)
    }

    fn router(&self) -> Router {
        let gate = self.clone();
        Router::new()
            .route(
                "/held",
                get(move || {
                    let gate = gate.clone();
                    async move {
                        gate.entered.send(()).await.unwrap();
                        // Each held request takes one permit and gives it back.
                        drop(gate.open.acquire().await.unwrap());
                        "released"
                    }
                }),
            )
            .route("/fast", get(|| async { "fast" }))
    }
}

#[tokio::test]
async fn shed_overloaded_is_503_with_retry_after() {
    bounded(async {
        let (gate, mut entered) = Gate::new();
        let shed = ShedLayer::builder()
            .max_in_flight(1)
            .retry_after(Duration::from_millis(1500))
            .build()
            .unwrap();
        let app = gate.router().layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                .layer(shed.clone()),
        );
        let (addr, _stop) = serve(app).await;

        let held = tokio::spawn(get_path(addr, "/held"));
        entered.recv().await.unwrap(); // the only slot is taken

        let seen = get_path(addr, "/fast").await;
        assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(seen.retry_after, Some(2), "1.5s rounds up to 2");
        assert_eq!(seen.body, "overloaded");
        assert_eq!(shed.stats().shed.hard_limit, 1);

        gate.open.add_permits(1);
        assert_eq!(held.await.unwrap().status, StatusCode::OK);
        // The slot came back: the next request is served.
        assert_eq!(get_path(addr, "/fast").await.status, StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn budget_exhausted_is_429_with_retry_after() {
    bounded(async {
        // One request per hour, no burst beyond it.
        let budget = BudgetLayer::builder()
            .rate(1)
            .per(Duration::from_secs(3600))
            .burst(1)
            .build()
            .unwrap();
        let app = Router::new().route("/", get(|| async { "ok" })).layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                .layer(budget.clone()),
        );
        let (addr, _stop) = serve(app).await;

        assert_eq!(get_path(addr, "/").await.status, StatusCode::OK);
        let seen = get_path(addr, "/").await;
        assert_eq!(seen.status, StatusCode::TOO_MANY_REQUESTS);
        let after = seen.retry_after.expect("a Retry-After header");
        assert!(
            (3000..=3600).contains(&after),
            "the next token is about an hour away, got {after}s"
        );
        assert_eq!(seen.body, "rate budget exhausted");
        assert_eq!(budget.stats().exhausted, 1);
    })
    .await;
}

#[tokio::test]
async fn elapsed_is_504_without_retry_after() {
    bounded(async {
        let (gate, _entered) = Gate::new();
        let timeout = AdaptiveTimeoutLayer::fixed(Duration::from_millis(100));
        let app = gate.router().layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                .layer(timeout.clone()),
        );
        let (addr, _stop) = serve(app).await;

        // The gate never opens: only the deadline ends the request.
        let started = std::time::Instant::now();
        let seen = get_path(addr, "/held").await;
        assert_eq!(seen.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(seen.retry_after, None);
        assert_eq!(seen.body, "timed out");
        assert!(
            started.elapsed() < BOUND / 2,
            "cut at the deadline, not later"
        );
        assert_eq!(timeout.stats().timeouts, 1);
        assert_eq!(get_path(addr, "/fast").await.status, StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn circuit_open_is_503_with_retry_after() {
    bounded(async {
        // A route whose dependency fails: two 500s in a row open the breaker.
        let breaker = BreakerLayer::builder()
            .policy(TripPolicy::consecutive_failures(2))
            .open_duration(Duration::from_secs(30))
            .classify(HttpStatus::new())
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "dependency down") }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                    .layer(breaker.clone()),
            );
        let (addr, _stop) = serve(app).await;

        for _ in 0..2 {
            let seen = get_path(addr, "/").await;
            assert_eq!(seen.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(seen.retry_after, None);
        }
        let seen = get_path(addr, "/").await;
        assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
        let after = seen.retry_after.expect("a Retry-After header");
        assert!((1..=30).contains(&after), "open for 30s, got {after}s");
        assert_eq!(seen.body, "circuit open");
        assert_eq!(breaker.stats().rejected, 1);
    })
    .await;
}

#[tokio::test]
async fn the_server_stack_sheds_before_it_spends_budget() {
    bounded(async {
        let (gate, mut entered) = Gate::new();
        let shed = ShedLayer::builder().max_in_flight(1).build().unwrap();
        let budget = BudgetLayer::builder()
            .rate(2)
            .per(Duration::from_secs(3600))
            .burst(2)
            .build()
            .unwrap();
        let timeout = AdaptiveTimeoutLayer::fixed(Duration::from_secs(5));
        let app = gate.router().layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                .layer(shed.clone())
                .layer(budget.clone())
                .layer(timeout),
        );
        let (addr, _stop) = serve(app).await;

        let held = tokio::spawn(get_path(addr, "/held")); // token 1
        entered.recv().await.unwrap();
        for _ in 0..3 {
            let seen = get_path(addr, "/fast").await;
            assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(seen.body, "overloaded");
        }
        gate.open.add_permits(1);
        assert_eq!(held.await.unwrap().status, StatusCode::OK);

        // The three shed requests spent no token: one is left.
        assert_eq!(get_path(addr, "/fast").await.status, StatusCode::OK);
        let seen = get_path(addr, "/fast").await;
        assert_eq!(seen.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(seen.body, "rate budget exhausted");
        assert_eq!(shed.stats().shed.hard_limit, 3);
        assert_eq!(budget.stats().exhausted, 1);
    })
    .await;
}

#[tokio::test]
async fn an_error_message_never_reaches_the_client() {
    bounded(async {
        let (addr, _stop) =
            serve(failing(|| "connect to db://svc:pw@10.1.2.3 failed".into())).await;
        let seen = get_path(addr, "/").await;
        assert_eq!(seen.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(seen.body, "internal error");
        for secret in ["pw@", "db://", "10.1.2.3", "connect"] {
            assert!(!seen.shows(secret), "{secret} in {seen:?}");
        }
        assert_eq!(seen.retry_after, None);
    })
    .await;
}

#[tokio::test]
async fn a_key_with_crlf_reaches_no_header_or_body() {
    bounded(async {
        let (addr, _stop) = serve(failing(|| {
            BudgetExhausted::new(Duration::from_millis(1500))
                .with_key("tenant\r\nSet-Cookie: x=1")
                .into()
        }))
        .await;
        let seen = get_path(addr, "/").await;
        assert_eq!(seen.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(seen.body, "rate budget exhausted");
        assert_eq!(seen.retry_after, Some(2));
        assert!(seen.headers.get(axum::http::header::SET_COOKIE).is_none());
        for text in ["tenant", "Set-Cookie", "x=1"] {
            assert!(!seen.shows(text), "{text} in {seen:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn retry_after_is_at_least_one_second_and_at_most_a_day() {
    bounded(async {
        let (addr, _stop) = serve(failing(|| CircuitOpen::new(Some(Duration::ZERO)).into())).await;
        let seen = get_path(addr, "/").await;
        assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(seen.retry_after, Some(1), "never `Retry-After: 0`");

        let (addr, _stop) = serve(failing(|| {
            BudgetExhausted::new(Duration::from_micros(400)).into()
        }))
        .await;
        assert_eq!(get_path(addr, "/").await.retry_after, Some(1));

        let (addr, _stop) = serve(failing(|| {
            CircuitOpen::new(Some(Duration::from_secs(u64::MAX))).into()
        }))
        .await;
        let seen = get_path(addr, "/").await;
        assert_eq!(seen.retry_after, Some(86_400), "capped at one day");
        assert_eq!(seen.body, "circuit open");
    })
    .await;
}

/// A keyed budget keyed by `ClientIp` behind a trusted proxy (here the
/// loopback network the test's client comes from): each client named in
/// `X-Forwarded-For` has its own budget, and what a client prepends to the
/// header (a spoofed address) changes nothing.
#[cfg(feature = "http")]
#[tokio::test]
async fn a_budget_keyed_by_client_ip_behind_a_trusted_proxy() {
    use axum::extract::ConnectInfo;
    use seawall::budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
    use seawall::core::key::ClientIp;

    bounded(async {
        let client_ip = ClientIp::new()
            .trusted_proxies(["127.0.0.0/8".parse().unwrap()])
            .peer_from(|c: &ConnectInfo<SocketAddr>| c.0);
        let config = KeyedBudgetConfig::from(
            BudgetConfig::new()
                .rate(1)
                .per(Duration::from_secs(3600))
                .burst(2),
        );
        let budget = KeyedBudgetLayer::new::<axum::extract::Request>(client_ip, &config).unwrap();
        let app = Router::new().route("/", get(|| async { "ok" })).layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                .layer(budget.clone()),
        );
        let (addr, _stop) = serve_with_peers(app).await;

        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let status = |forwarded: &'static str| {
            let client = client.clone();
            async move {
                let req = axum::http::Request::get(format!("http://{addr}/"))
                    .header("x-forwarded-for", forwarded)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                client.request(req).await.unwrap().status().as_u16()
            }
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        for _ in 0..3 {
            // The proxy appends the client it saw; a client may prepend anything.
            a.push(status("6.6.6.6, 198.51.100.7").await);
            b.push(status("198.51.100.7, 203.0.113.9").await);
        }
        assert_eq!(a, [200, 200, 429], "198.51.100.7: a burst of 2");
        assert_eq!(b, [200, 200, 429], "203.0.113.9: a budget of its own");
        assert_eq!(budget.stats().keys, 2);
    })
    .await;
}

/// Two budgets, one per client and one for the whole API, under
/// `RateLimitHeadersLayer`: every response they decided states both
/// policies, what is left of each, and on a refusal `r=0` with
/// `Retry-After`. The budgets are real; the numbers are the GCRA's own.
#[cfg(feature = "http")]
#[tokio::test]
async fn rate_limit_headers_state_every_budget_on_admitted_and_refused_calls() {
    use axum::extract::ConnectInfo;
    use seawall::axum::{RATELIMIT, RATELIMIT_POLICY, RateLimitHeadersLayer};
    use seawall::budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
    use seawall::core::key::ClientIp;

    bounded(async {
        let client_ip = ClientIp::new().peer_from(|c: &ConnectInfo<SocketAddr>| c.0);
        let per_client = KeyedBudgetConfig::from(
            BudgetConfig::new()
                .name("per-client")
                .rate(2)
                .per(Duration::from_secs(60))
                .burst(2)
                .advertise(true),
        );
        let per_client =
            KeyedBudgetLayer::new::<axum::extract::Request>(client_ip, &per_client).unwrap();
        let api = BudgetLayer::builder()
            .name("api")
            .rate(1000)
            .per(Duration::from_secs(1))
            .burst(100)
            .advertise(true)
            .build()
            .unwrap();
        // The handler calls a peer through a budget of its own, which does
        // not advertise: the server's clients never hear of it.
        let upstream = BudgetLayer::builder()
            .name("internal-upstream")
            .rate(1)
            .per(Duration::from_secs(60))
            .burst(1)
            .build()
            .unwrap();
        let peer = ServiceBuilder::new()
            .layer(upstream)
            .service(tower::service_fn(|()| async {
                Ok::<_, std::convert::Infallible>("ok")
            }));
        let handler = move || {
            let peer = peer.clone();
            let call: std::pin::Pin<Box<dyn Future<Output = &'static str> + Send>> =
                Box::pin(async move {
                    use tower::ServiceExt;
                    let _admitted = peer.oneshot(()).await.is_ok();
                    "ok"
                });
            call
        };
        let app = Router::new()
            .route("/", get(handler))
            .layer(
                ServiceBuilder::new()
                    .layer(RateLimitHeadersLayer::new())
                    .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                    .layer(per_client)
                    .layer(api),
            )
            .route("/free", get(|| async { "free" }));
        let (addr, _stop) = serve_with_peers(app).await;
        let header = |seen: &Seen, name| {
            seen.headers
                .get(name)
                .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_owned())
        };

        let first = get_path(addr, "/").await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(
            header(&first, RATELIMIT_POLICY).as_deref(),
            Some("\"per-client\";q=2;w=60, \"api\";q=1000;w=1")
        );
        // One of two left, whole again in 30s; the API's burst barely used.
        let state = header(&first, RATELIMIT).unwrap();
        assert!(
            state.starts_with("\"per-client\";r=1;t=30, \"api\";r=99;t="),
            "{state}"
        );

        let second = get_path(addr, "/").await;
        assert_eq!(second.status, StatusCode::OK);
        // Whole again in 60s less the time since the first call (well
        // under a second, unless the machine stalls: then 59).
        let state = header(&second, RATELIMIT).unwrap();
        assert!(
            state.starts_with("\"per-client\";r=0;t=60,")
                || state.starts_with("\"per-client\";r=0;t=59,"),
            "{state}"
        );

        // Refused by the per-client budget: the API budget never saw it.
        let refused = get_path(addr, "/").await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        let state = header(&refused, RATELIMIT).unwrap();
        assert!(
            ["\"per-client\";r=0;t=60", "\"per-client\";r=0;t=59"].contains(&state.as_str()),
            "{state}"
        );
        assert_eq!(
            header(&refused, RATELIMIT_POLICY).as_deref(),
            Some("\"per-client\";q=2;w=60")
        );
        let after = refused.retry_after.expect("Retry-After on a refusal");
        assert!((29..=30).contains(&after), "the next token in 30s: {after}");

        // The handler's own budget (refusing from the second call on) was
        // never stated.
        for seen in [&first, &second, &refused] {
            assert!(!seen.shows("internal-upstream"), "{seen:?}");
        }

        // A route no budget guards carries no fields.
        let free = get_path(addr, "/free").await;
        assert_eq!(free.status, StatusCode::OK);
        assert_eq!(header(&free, RATELIMIT), None);
    })
    .await;
}

/// The hostile-keys churn test through a real server: a client at its
/// limit, then a flood of requests from four times the key map's capacity in
/// fresh forwarded addresses. The flood makes no new room for the throttled
/// client (its key is not handed back as fresh), an honest client that has
/// spent half its burst keeps the other half, and the map stays bounded.
/// Also: a client rotating through its IPv6 /64 spends one budget.
#[cfg(feature = "http")]
#[tokio::test]
async fn a_flood_of_fresh_addresses_resets_no_clients_limit() {
    use axum::extract::ConnectInfo;
    use seawall::KeyMapConfig;
    use seawall::budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
    use seawall::core::key::ClientIp;

    bounded(async {
        const CAPACITY: usize = 64;
        let client_ip = ClientIp::new()
            .trusted_proxies(["127.0.0.0/8".parse().unwrap()])
            .peer_from(|c: &ConnectInfo<SocketAddr>| c.0);
        let config = KeyedBudgetConfig::from(
            BudgetConfig::new()
                .rate(1)
                .per(Duration::from_secs(3600))
                .burst(2),
        )
        .keys(KeyMapConfig::new().capacity(CAPACITY));
        let budget = KeyedBudgetLayer::new::<axum::extract::Request>(client_ip, &config).unwrap();
        let app = Router::new().route("/", get(|| async { "ok" })).layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                .layer(budget.clone()),
        );
        let (addr, _stop) = serve_with_peers(app).await;
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let status = move |forwarded: String| {
            let client = client.clone();
            async move {
                let req = axum::http::Request::get(format!("http://{addr}/"))
                    .header("x-forwarded-for", forwarded)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                client.request(req).await.unwrap().status().as_u16()
            }
        };
        let abuser = || status("198.51.100.66".to_owned());
        let honest = || status("198.51.100.7".to_owned());

        assert_eq!(
            [abuser().await, abuser().await, abuser().await],
            [200, 200, 429]
        );
        assert_eq!(honest().await, 200, "one of two spent");

        // A client rotating through its IPv6 /64 is one client.
        let rotated: Vec<u16> = [
            status("2001:db8:cafe:1::1".to_owned()).await,
            status("2001:db8:cafe:1::2".to_owned()).await,
            status("2001:db8:cafe:1:ffff:ffff:ffff:ffff".to_owned()).await,
        ]
        .into();
        assert_eq!(rotated, [200, 200, 429], "one /64, one budget");

        // Four times the map's capacity in fresh addresses, eight at a time.
        let mut flood = tokio::task::JoinSet::new();
        for lane in 0..8u32 {
            let status = status.clone();
            flood.spawn(async move {
                for i in 0..(4 * CAPACITY as u32 / 8) {
                    let n = lane * 1000 + i;
                    status(format!("203.0.{}.{}", n / 250, n % 250)).await;
                }
            });
        }
        while let Some(done) = flood.join_next().await {
            done.unwrap();
        }

        assert_eq!(abuser().await, 429, "the flood reset no limit");
        // A newcomer now finds the map full of keys that owe tokens: it is
        // served by the overflow budget, which the flood has spent.
        assert_eq!(status("192.0.2.200".to_owned()).await, 429);
        assert_eq!(
            honest().await,
            200,
            "the honest client keeps its second call"
        );
        assert_eq!(honest().await, 429);
        let stats = budget.stats();
        assert!(stats.keys <= CAPACITY, "the map stays bounded: {stats:?}");
        assert!(
            stats.overflow > 0,
            "newcomers beyond capacity shared the overflow budget"
        );
    })
    .await;
}

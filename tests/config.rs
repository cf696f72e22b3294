//! `StackConfig`: the shipped example loads and builds, every bad field is
//! reported with its path, unknown fields are rejected, absent parts are left
//! out, and the built stacks serve calls (and reject them) around a real
//! service.
#![cfg(all(
    feature = "serde",
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry"
))]

use std::convert::Infallible;
use std::time::Duration;

use seawall::config::{BudgetBackend, StackConfig};
use seawall::{BoxError, Rejection, RejectionKind};
use tower::{Layer, Service, ServiceExt, service_fn};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seawall.toml");

fn messages(toml: &str) -> Vec<String> {
    let err = StackConfig::from_toml_str(toml).expect_err("the config is bad");
    err.errors().iter().map(|e| e.to_string()).collect()
}

/// A request to a peer: `(peer, payload)`.
type Req = (u16, u32);

fn peer(req: &Req) -> u16 {
    req.0
}

#[tokio::test(start_paused = true)]
async fn the_example_file_loads_and_builds_every_part() {
    let config = StackConfig::from_toml_file(EXAMPLE).expect("examples/seawall.toml is valid");

    let retry = config.client.retry.as_ref().unwrap();
    assert_eq!(retry.max_attempts, 3);
    assert_eq!(retry.deadline, Some(Duration::from_secs(2)));
    let breaker = config.client.breaker.as_ref().unwrap();
    assert_eq!(breaker.keys.capacity, 10_000);
    assert_eq!(breaker.keys.idle_ttl, Duration::from_secs(300));
    assert_eq!(breaker.per_key.open_duration, Duration::from_secs(10));
    assert_eq!(
        breaker
            .per_key
            .open_backoff
            .as_ref()
            .unwrap()
            .max_open_duration,
        Duration::from_secs(120)
    );
    assert_eq!(
        config.client.timeout.as_ref().unwrap().per_key.max,
        Duration::from_secs(2)
    );
    let budget = config.client.budget.as_ref().unwrap();
    assert_eq!(budget.backend(), BudgetBackend::Local);
    assert_eq!(budget.as_local().unwrap().rate, 2000);
    assert_eq!(config.server.shed.as_ref().unwrap().queue_capacity, 128);
    assert_eq!(
        config
            .server
            .budget
            .as_ref()
            .and_then(|b| b.as_local())
            .unwrap()
            .rate,
        5000
    );
    assert_eq!(
        config.server.timeout.as_ref().unwrap().fixed,
        Some(Duration::from_secs(5))
    );

    let client = config.client.build(peer).unwrap();
    assert!(client.retry().is_some());
    assert!(client.breaker().is_some());
    assert!(client.timeout().is_some());
    assert!(client.budget().is_some());
    let server = config.server.build().unwrap();
    assert_eq!(server.shed().unwrap().stats().limit, 512);
    assert_eq!(server.timeout().unwrap().deadline(), Duration::from_secs(5));
    assert_eq!(
        server
            .budget()
            .and_then(|b| b.as_local())
            .unwrap()
            .budget()
            .burst(),
        500
    );
}

#[test]
fn every_bad_field_has_its_own_message_with_its_path() {
    let m = messages(
        r#"
        [client.retry]
        max_attempts = 0
        budget = { ratio = 1.5 }

        [client.breaker.keys]
        capacity = 0

        [client.breaker.per_key]
        policy = { kind = "failure_rate_count", window = 100, rate = 1.5, min_calls = 10 }

        [client.timeout.per_key]
        percentile = 120.0
        min = "3s"
        max = "2s"

        [client.budget]
        rate = 0

        [server.shed]
        limit = { fixed = 0 }
        critical_headroom = 1.0

        [server.timeout]
        fixed = "0s"
        "#,
    );
    assert_eq!(
        m,
        [
            "client.retry.max_attempts: 0 must be greater than zero",
            "client.retry.budget.ratio: 1.5 is not in 0..=1",
            "client.breaker.per_key.policy.rate: 1.5 is not in 0..=1",
            "client.breaker.keys.capacity: 0 must be greater than zero",
            "client.timeout.per_key.percentile: 120 is not in (0, 100]",
            "client.timeout.per_key.min: 3s must be at most max (2s)",
            "client.budget.rate: 0 must be greater than zero",
            &format!(
                "server.shed.limit.fixed: 0 is not in 1..={}",
                seawall::shed::MAX_LIMIT
            ),
            "server.shed.critical_headroom: 1 is not in 0..1",
            "server.timeout.fixed: 0s must be longer than zero",
        ]
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let m = messages(
        r#"
        [client.breaker.per_key]
        open_duraton = "10s"

        [client.timeout.per_key]
        max = "2s"
        maximum = "3s"

        [server.budget]
        backend = "memcached"
        rate = 10

        [server.queue]
        depth = 3

        [servers]
        "#,
    );
    assert_eq!(m.len(), 5, "{m:#?}");
    assert!(
        m[0].starts_with(
            "client.breaker.per_key.open_duraton: \"10s\" is set on an unknown field (expected one of `name`, `policy`, "
        ),
        "{}",
        m[0]
    );
    assert!(
        m[0].ends_with(", `open_backoff`, `cancelled_is_failure`) (line 3)"),
        "{}",
        m[0]
    );
    assert!(
        m[1].starts_with("client.timeout.per_key.maximum: \"3s\" is set on an unknown field (expected one of `name`, `fixed`, "),
        "{}",
        m[1]
    );
    assert!(m[1].ends_with(" (line 7)"), "{}", m[1]);
    assert_eq!(
        m[2],
        "server.budget.backend: \"memcached\" is not a budget backend (expected one of \"local\", \"redis\") (line 10)"
    );
    assert_eq!(
        m[3],
        "server.queue: a table is set on an unknown field (expected one of `shed`, `budget`, `timeout`, `routes`, `chaos`, `deadline`) (line 13)"
    );
    assert_eq!(
        m[4],
        "servers: a table is set on an unknown field (expected one of `client`, `server`) (line 16)"
    );
}

#[test]
fn unknown_fields_and_bad_values_are_reported_together() {
    let m = messages(
        r#"
        [client.retry]
        max_attempt = 3

        [server.shed]
        critical_headroom = 2.0
        "#,
    );
    assert_eq!(m.len(), 2, "{m:#?}");
    assert!(m[0].starts_with("client.retry.max_attempt: 3 is set on an unknown field"));
    assert_eq!(m[1], "server.shed.critical_headroom: 2 is not in 0..1");
}

#[test]
fn an_unreadable_file_is_named() {
    let err = StackConfig::from_toml_file("/nonexistent/seawall.toml").unwrap_err();
    assert_eq!(err.field(), "/nonexistent/seawall.toml");
    assert!(err.reason().starts_with("cannot be read: "), "{err}");
}

#[tokio::test(start_paused = true)]
async fn absent_parts_are_left_out() {
    let config =
        StackConfig::from_toml_str("[client.breaker]\n[server.timeout]\nfixed = \"1s\"\n").unwrap();
    let client = config.client.build(peer).unwrap();
    assert!(client.retry().is_none());
    assert!(client.breaker().is_some());
    assert!(client.timeout().is_none());
    assert!(client.budget().is_none());
    let server = config.server.build().unwrap();
    assert!(server.shed().is_none());
    assert!(server.budget().is_none());
    assert!(server.timeout().is_some());

    // An empty file: both stacks pass calls straight through.
    let empty = StackConfig::from_toml_str("").unwrap();
    assert_eq!(empty, StackConfig::default());
    let svc = empty
        .server
        .build()
        .unwrap()
        .layer(service_fn(
            |n: u32| async move { Ok::<_, Infallible>(n + 1) },
        ));
    assert!(!svc.is_on());
    assert_eq!(svc.oneshot(1).await.unwrap(), 2);
    let client = empty.client.build(peer).unwrap();
    let svc = client.layer(service_fn(|r: Req| async move { Ok::<_, Infallible>(r.1) }));
    assert_eq!(svc.oneshot((1, 7)).await.unwrap(), 7);
}

fn kind(err: &BoxError) -> Option<RejectionKind> {
    Rejection::find(&**err).map(|r| r.kind())
}

#[tokio::test(start_paused = true)]
async fn the_client_stack_serves_retries_and_isolates_a_failing_peer() {
    let config = StackConfig::from_toml_str(
        r#"
        [client.retry]
        max_attempts = 2
        backoff = { strategy = "constant", base = "10ms" }
        budget = { enabled = false }

        [client.breaker.per_key]
        policy = { kind = "consecutive_failures", threshold = 2 }
        open_duration = "30s"

        [client.timeout.per_key]
        fixed = "100ms"

        [client.budget]
        rate = 1000
        burst = 100
        "#,
    )
    .unwrap();
    let client = config.client.build(peer).unwrap();
    // Peer 1 answers, peer 2 always fails, peer 3 never answers.
    let mut svc = client.layer(service_fn(|(peer, n): Req| async move {
        match peer {
            2 => Err::<u32, BoxError>("peer 2 is down".into()),
            3 => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(n)
            }
            _ => Ok(n * 10),
        }
    }));

    assert_eq!(svc.ready().await.unwrap().call((1, 4)).await.unwrap(), 40);

    // One request to peer 2: two attempts, two failures, its breaker opens.
    let err = svc.ready().await.unwrap().call((2, 0)).await.unwrap_err();
    assert!(
        kind(&err).is_none(),
        "the peer's own error comes back: {err}"
    );
    let breakers = client.breaker().unwrap();
    assert_eq!(
        breakers.breaker(&2).unwrap().state(),
        seawall::breaker::State::Open
    );
    let err = svc.ready().await.unwrap().call((2, 0)).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::CircuitOpen), "{err}");

    // Peer 1 is untouched by peer 2's breaker.
    assert_eq!(svc.ready().await.unwrap().call((1, 5)).await.unwrap(), 50);
    assert_eq!(
        breakers.breaker(&1).unwrap().state(),
        seawall::breaker::State::Closed
    );

    // Peer 3 times out at its deadline.
    let err = svc.ready().await.unwrap().call((3, 0)).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::Elapsed), "{err}");
    assert_eq!(client.timeout().unwrap().len(), 3);
    assert!(client.retry().unwrap().stats().retries >= 2);
}

#[tokio::test(start_paused = true)]
async fn the_client_stack_spends_its_budget() {
    let config = StackConfig::from_toml_str("[client.budget]\nrate = 10\nburst = 2\n").unwrap();
    let client = config.client.build(peer).unwrap();
    let mut svc = client.layer(service_fn(|r: Req| async move { Ok::<_, Infallible>(r.1) }));
    for n in 0..2 {
        assert_eq!(svc.ready().await.unwrap().call((1, n)).await.unwrap(), n);
    }
    let err = svc.ready().await.unwrap().call((1, 9)).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::BudgetExhausted), "{err}");
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(svc.ready().await.unwrap().call((1, 9)).await.unwrap(), 9);
}

#[tokio::test(start_paused = true)]
async fn the_server_stack_serves_sheds_and_times_out() {
    let config = StackConfig::from_toml_str(
        r#"
        [server.shed]
        limit = { fixed = 1 }

        [server.budget]
        rate = 100

        [server.timeout]
        fixed = "250ms"
        "#,
    )
    .unwrap();
    let server = config.server.build().unwrap();
    let svc = server.layer(service_fn(|slow: bool| async move {
        if slow {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        Ok::<_, Infallible>("done")
    }));
    assert!(svc.is_on());
    assert_eq!(svc.clone().oneshot(false).await.unwrap(), "done");

    // A slow call holds the only slot: the next one is shed at once.
    let mut first = svc.clone();
    let slow = tokio::spawn(async move { first.ready().await?.call(true).await });
    tokio::task::yield_now().await;
    assert_eq!(server.shed().unwrap().stats().in_flight, 1);
    let err = svc.clone().oneshot(false).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::Overloaded), "{err}");

    // The slow call ends at the server's deadline and frees its slot.
    let err = slow.await.unwrap().unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::Elapsed), "{err}");
    assert_eq!(server.shed().unwrap().stats().in_flight, 0);
    assert_eq!(svc.oneshot(false).await.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn stacks_built_in_code_are_validated_with_paths() {
    use seawall::prelude::*;

    let mut config = StackConfig::default();
    config.server.shed = Some(ShedConfig::new().limit(Limit::Fixed(0)));
    config.client.breaker =
        Some(KeyedBreakerConfig::new().keys(KeyMapConfig::new().idle_ttl(Duration::ZERO)));
    let err = config.validate().unwrap_err();
    let m: Vec<String> = err.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        m,
        [
            "client.breaker.keys.idle_ttl: 0s must be longer than zero",
            &format!(
                "server.shed.limit.fixed: 0 is not in 1..={}",
                seawall::shed::MAX_LIMIT
            ),
        ]
    );
    let err = config.server.build().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "server.shed.limit.fixed: 0 is not in 1..={}",
            seawall::shed::MAX_LIMIT
        )
    );
    assert_eq!(
        config.client.build(peer).unwrap_err().to_string(),
        "client.breaker.keys.idle_ttl: 0s must be longer than zero"
    );
}

/// The HTTP client stack waits what a peer's `Retry-After` asked for, and
/// gives up at once on a hint that does not fit its deadline.
#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn the_http_client_stack_honours_retry_after() {
    use std::sync::{Arc, Mutex};

    use http::{Request, Response, StatusCode};
    use tokio::time::Instant;

    let config = StackConfig::from_toml_str(
        r#"
        [client.retry]
        max_attempts = 3
        deadline = "10s"
        backoff = { strategy = "constant", base = "1ms" }
        budget = { enabled = false }
        "#,
    )
    .unwrap();
    let client = config.client.build_http().unwrap();
    // Each peer answers 503 with its `Retry-After` (the host's first
    // label, in seconds) once, then 200; it notes when each call came.
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let log = seen.clone();
    let mut svc = client.layer(service_fn(move |req: Request<String>| {
        let log = log.clone();
        async move {
            let host = req.uri().host().unwrap_or_default().to_owned();
            let first = {
                let mut log = log.lock().unwrap();
                let first = !log.iter().any(|(h, _)| *h == host);
                log.push((host.clone(), Instant::now()));
                first
            };
            let mut res = Response::new(String::new());
            if first {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let secs = host
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('s');
                res.headers_mut()
                    .insert(http::header::RETRY_AFTER, secs.parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    }));
    let get = |uri: &str| Request::get(uri).body(String::new()).unwrap();

    // `Retry-After: 3`: the retry comes 3 s later, not after the 1 ms backoff.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://s3.internal/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // `Retry-After: 60` does not fit the 10 s deadline: no wait, no retry;
    // the peer's answer is handed back as it is.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://s60.internal/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[http::header::RETRY_AFTER], "60");

    let seen = seen.lock().unwrap();
    let at = |host: &str| -> Vec<Instant> {
        seen.iter()
            .filter(|(h, _)| h == host)
            .map(|(_, t)| *t)
            .collect()
    };
    let s3 = at("s3.internal");
    assert_eq!(s3.len(), 2);
    assert_eq!(s3[1] - s3[0], Duration::from_secs(3));
    assert_eq!(at("s60.internal").len(), 1);
    let stats = client.retry().unwrap().stats();
    assert_eq!(stats.hinted, 1);
    assert_eq!(stats.gave_up_hint_too_long, 1);
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn the_http_client_stack_keys_by_authority_and_counts_5xx_as_failures() {
    use http::{Request, Response, StatusCode};

    let config = StackConfig::from_toml_str(
        r#"
        [client.retry]
        max_attempts = 2
        backoff = { strategy = "constant", base = "1ms" }
        [client.breaker.per_key]
        policy = { kind = "consecutive_failures", threshold = 2 }
        "#,
    )
    .unwrap();
    let client = config.client.build_http().unwrap();
    let mut svc = client.layer(service_fn(|req: Request<String>| async move {
        let status = match req.uri().host() {
            Some("down.internal") => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        };
        let mut res = Response::new(String::new());
        *res.status_mut() = status;
        Ok::<_, Infallible>(res)
    }));
    let get = |uri: &str| Request::get(uri).body(String::new()).unwrap();

    // Two 503s (one request, retried once): the peer's breaker opens and
    // the last 503 is handed back.
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://down.internal/x"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://down.internal/x"))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::CircuitOpen), "{err}");
    // The key is the normalised authority: host and the scheme's port.
    assert_eq!(
        Rejection::find(&*err).unwrap().key(),
        Some("down.internal:80")
    );
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get("http://up.internal:8080/x"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(client.breaker().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_server_stack_sheds_by_priority_and_frees_slots_on_cancel() {
    use seawall::prelude::{ErrorsAsFailures, Priority};

    let config = StackConfig::from_toml_str(
        "[server.shed]\nlimit = { fixed = 2 }\ncritical_headroom = 0.5\n[server.timeout]\nfixed = \"1h\"\n",
    )
    .unwrap();
    let server = config
        .server
        .build_with(
            |path: &&'static str| {
                if path.starts_with("/health") {
                    Priority::Critical
                } else {
                    Priority::Normal
                }
            },
            ErrorsAsFailures,
        )
        .unwrap();
    let svc = server.layer(service_fn(|path: &'static str| async move {
        if path.ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok::<_, Infallible>(path)
    }));

    // One normal request holds the only slot normal requests may use.
    let mut held = svc.clone();
    let slow = held.ready().await.unwrap().call("/api/slow");
    let mut slow = Box::pin(slow);
    assert!(futures_poll_once(&mut slow).await.is_none());
    assert_eq!(server.shed().unwrap().stats().in_flight, 1);
    let err = svc.clone().oneshot("/api").await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::Overloaded), "{err}");
    // The headroom is kept for critical requests.
    assert_eq!(svc.clone().oneshot("/health").await.unwrap(), "/health");

    // Dropping the in-flight call gives its slot back.
    drop(slow);
    assert_eq!(server.shed().unwrap().stats().in_flight, 0);
    assert_eq!(svc.oneshot("/api").await.unwrap(), "/api");
}

/// Polls `fut` once; `None` if it is still pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *fut).poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[cfg(not(feature = "redis"))]
#[test]
fn a_redis_backend_needs_the_redis_feature() {
    let m = messages("[server.budget]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n");
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(
        m[0].starts_with(
            "server.budget.backend: \"redis\" needs seawall's `redis` feature, and this build of seawall was compiled without it"
        ),
        "{}",
        m[0]
    );
    assert!(m[0].ends_with(" (line 2)"), "{}", m[0]);
}

/// `backend = "redis"`: the table is read as a `RedisBudgetConfig`, checked
/// with paths, and built into a budget shared through Redis.
#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;

    use seawall::config::{BudgetPart, BudgetPartLayer};
    use seawall::redis::{Backend, FallbackPolicy, RedisBudgetConfig, RedisBudgetLayer};

    const SHARED: &str = r#"
        [client.budget]
        backend = "redis"
        url = "redis://127.0.0.1:6379"
        name = "payments-api"
        rate = 100
        burst = 20
        fallback = { local = { share = 0.25 } }
        redis_timeout = "20ms"

        [server.budget]
        backend = "redis"
        name = "edge"
        mode = "wait"
    "#;

    #[test]
    fn a_redis_budget_loads_validates_and_builds_without_a_server_or_runtime() {
        let config = StackConfig::from_toml_str(SHARED).unwrap();
        let client = config.client.budget.as_ref().unwrap();
        assert_eq!(client.backend(), BudgetBackend::Redis);
        assert!(client.as_local().is_none());
        assert_eq!(
            client.as_redis(),
            Some(
                &RedisBudgetLayer::builder()
                    .url("redis://127.0.0.1:6379")
                    .name("payments-api")
                    .rate(100)
                    .burst(20)
                    .fallback(FallbackPolicy::Local { share: 0.25 })
                    .redis_timeout(Duration::from_millis(20))
                    .into_config()
            )
        );
        let server = config.server.budget.as_ref().unwrap().as_redis().unwrap();
        assert_eq!(server.mode, seawall::budget::BudgetMode::Wait);
        assert_eq!(server.url, RedisBudgetConfig::default().url);

        // Building connects nothing and needs no runtime: the background
        // task starts at the first call, on the caller's runtime.
        let built = config.client.build(peer).unwrap();
        let layer = built.budget().unwrap().as_redis().unwrap();
        assert_eq!(layer.config().name, "payments-api");
        assert_eq!(layer.backend(), Backend::Redis);
        assert!(built.budget().unwrap().as_local().is_none());
        let built = config.server.build().unwrap();
        assert!(
            matches!(built.budget(), Some(BudgetPartLayer::Redis(l)) if l.config().name == "edge")
        );
    }

    #[test]
    fn every_bad_redis_field_is_reported_with_its_path() {
        let m = messages(
            r#"
            [server.budget]
            backend = "redis"
            url = "localhost:6379"
            name = "a{b}"
            rate = 0
            fallback = { local = { share = 1.5 } }
            lease_share = 0.0

            [client.budget]
            backend = "redis"
            redis_timeout = "0s"
            "#,
        );
        let fields: Vec<&str> = m.iter().map(|m| m.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "client.budget.redis_timeout",
                "server.budget.url",
                "server.budget.name",
                "server.budget.rate",
                "server.budget.fallback.local.share",
                "server.budget.lease_share",
            ],
            "{m:#?}"
        );
        assert!(
            m[1].starts_with("server.budget.url: \"localhost:6379\" "),
            "{}",
            m[1]
        );
    }

    #[test]
    fn unknown_and_ill_typed_redis_fields_are_rejected_with_their_path() {
        let m = messages(
            r#"
            [server.budget]
            backend = "redis"
            urll = "redis://127.0.0.1:6379"

            [client.budget]
            backend = "redis"
            redis_timeout = "soon"
            "#,
        );
        assert_eq!(m.len(), 2, "{m:#?}");
        assert!(
            m[0].starts_with(
                "server.budget.urll: \"redis://127.0.0.1:6379\" is set on an unknown field (expected one of `url`, `name`, "
            ),
            "{}",
            m[0]
        );
        assert!(
            m[0].ends_with(", `keys`, `deployment`, `key_slots`, `username`, `password`, `tls`, `backend`) (line 4)"),
            "{}",
            m[0]
        );
        assert!(
            m[1].starts_with("client.budget.redis_timeout: \"soon\" is rejected: "),
            "{}",
            m[1]
        );
        assert!(m[1].ends_with(" (line 8)"), "{}", m[1]);
    }

    #[test]
    fn a_bad_url_in_code_is_a_config_error_at_its_path() {
        let mut config = StackConfig::default();
        let mut redis = RedisBudgetConfig::default();
        redis.url = "http://127.0.0.1:6379".into();
        config.server.budget = Some(BudgetPart::redis(redis));
        let err = config.server.build().unwrap_err();
        assert_eq!(err.errors().len(), 1, "{err}");
        assert_eq!(err.field(), "server.budget.url");
        assert_eq!(err.value(), "\"http://127.0.0.1:6379\"");
        config.client.budget = config.server.budget.take();
        assert_eq!(
            config.client.build(peer).unwrap_err().field(),
            "client.budget.url"
        );
    }

    /// Real time, bounded: nothing listens at the URL, so the budget falls
    /// back (here: fails closed) within a few Redis timeouts, and the
    /// stack's calls are refused with `BudgetExhausted`. The stack is built
    /// outside any runtime: its background task starts at the first call.
    #[test]
    fn with_redis_unreachable_the_stack_follows_the_fallback_policy() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        }; // closed again: nothing listens there
        let config = StackConfig::from_toml_str(&format!(
            "[server.budget]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n\
             fallback = \"fail_closed\"\nredis_timeout = \"50ms\"\n"
        ))
        .unwrap();
        let server = config.server.build().unwrap();
        let layer = server.budget().unwrap().as_redis().unwrap().clone();
        let svc = server.layer(service_fn(|n: u32| async move { Ok::<_, Infallible>(n) }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while layer.backend() == Backend::Redis {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still on Redis after 5s"
                );
                // Admitted on credit (at most one lease) until Redis fails to answer.
                let _ = svc.clone().oneshot(1).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let err = svc.clone().oneshot(2).await.unwrap_err();
            assert_eq!(kind(&err), Some(RejectionKind::BudgetExhausted), "{err}");
            assert!(layer.stats().last_error.is_some());
        });
    }

    /// Two replicas (two stacks built from the same file, each with its own
    /// connection) spend one budget in a real `redis-server`: together they
    /// admit the burst and at most one lease each on credit, where two local
    /// budgets would admit twice the burst.
    #[tokio::test]
    async fn two_stacks_from_one_file_share_one_budget() {
        let Some(redis) = seawall_test_support::redis::RedisServer::start() else {
            return;
        };
        let toml = format!(
            "[server.budget]\nbackend = \"redis\"\nurl = \"{}\"\nname = \"shared\"\n\
             rate = 1\nper = \"60s\"\nburst = 10\nredis_timeout = \"1s\"\n",
            redis.url()
        );
        let config = StackConfig::from_toml_str(&toml).unwrap();
        let replicas: Vec<_> = (0..2).map(|_| config.server.build().unwrap()).collect();
        for r in &replicas {
            r.budget()
                .unwrap()
                .as_redis()
                .unwrap()
                .ping()
                .await
                .unwrap();
        }
        let mut svcs: Vec<_> = replicas
            .iter()
            .map(|r| r.layer(service_fn(|n: u32| async move { Ok::<_, Infallible>(n) })))
            .collect();
        let mut admitted = 0;
        // 40 rounds of one call per replica, 10ms apart: refills land between.
        for _ in 0..40 {
            for svc in &mut svcs {
                match svc.ready().await.unwrap().call(1).await {
                    Ok(_) => admitted += 1,
                    Err(e) => assert_eq!(kind(&e), Some(RejectionKind::BudgetExhausted), "{e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for r in &replicas {
            assert_eq!(
                r.budget().unwrap().as_redis().unwrap().backend(),
                Backend::Redis
            );
        }
        // max lease = 0.1 × burst = 1 token of credit per replica.
        assert!((10..=12).contains(&admitted), "admitted {admitted}");
    }
}

/// A `[client.timeout.keys]` table that names one field keeps the timeout's
/// own default for the other (1000 keys, not the key map's 10 000: a timeout
/// key holds up to 4 KiB).
#[test]
fn a_partial_timeout_keys_table_keeps_the_timeout_defaults() {
    let config = StackConfig::from_toml_str("[client.timeout.keys]\nidle_ttl = \"1m\"\n").unwrap();
    let keys = config.client.timeout.as_ref().unwrap().keys;
    assert_eq!(keys.capacity, 1000);
    assert_eq!(keys.idle_ttl, Duration::from_secs(60));
    let config = StackConfig::from_toml_str("[client.timeout.keys]\ncapacity = 50\n").unwrap();
    let keys = config.client.timeout.as_ref().unwrap().keys;
    assert_eq!(
        (keys.capacity, keys.idle_ttl),
        (50, Duration::from_secs(300))
    );
    let err = StackConfig::from_toml_str("[client.timeout.keys]\ncapcity = 50\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("client.timeout.keys.capcity: 50 is set on an unknown field"),
        "{err}"
    );
}

/// `honour_hints` in the retry table: a boolean, `true` by default, that
/// reaches the built layer; anything else is named with its path and line.
#[test]
fn the_retry_table_says_whether_hints_are_honoured() {
    let config = StackConfig::from_toml_str("[client.retry]\n").unwrap();
    assert!(config.client.retry.as_ref().unwrap().honour_hints);
    let client = config.client.build(peer).unwrap();
    assert!(client.retry().unwrap().config().honour_hints);

    let config = StackConfig::from_toml_str("[client.retry]\nhonour_hints = false\n").unwrap();
    assert!(!config.client.retry.as_ref().unwrap().honour_hints);
    let client = config.client.build(peer).unwrap();
    assert!(!client.retry().unwrap().config().honour_hints);

    let m = messages(
        r#"
        [client.retry]
        honour_hints = "yes"
        "#,
    );
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(m[0].starts_with("client.retry.honour_hints: "), "{}", m[0]);
    assert!(m[0].contains("expected a boolean"), "{}", m[0]);
    assert!(m[0].ends_with("(line 3)"), "{}", m[0]);

    // The name is exact: a near miss is an unknown field that lists it.
    let m = messages("[client.retry]\nhints = false\n");
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(
        m[0].starts_with("client.retry.hints: false is set on an unknown field"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("`honour_hints`"), "{}", m[0]);
}

/// Both protocol stacks take the setting: `build_http` and `build_grpc`.
#[cfg(all(feature = "http", feature = "tonic"))]
#[test]
fn the_protocol_stacks_take_honour_hints() {
    let config = StackConfig::from_toml_str("[client.retry]\nhonour_hints = false\n").unwrap();
    let http = config.client.build_http().unwrap();
    assert!(!http.retry().unwrap().config().honour_hints);
    let grpc = config.client.build_grpc(|_: &u32| "peer").unwrap();
    assert!(!grpc.retry().unwrap().config().honour_hints);
}

/// `[[server.routes]]`: every bad entry named by its index, and the built
/// layer choosing a budget per route and method through a real router.
#[test]
fn route_entries_are_checked_one_by_one() {
    let mut toml = String::new();
    for (path, method, budget) in [
        ("search", None, "rate = 1"),
        ("/a", Some("get"), "rate = 1"),
        ("*", Some("GET"), "rate = 1"),
        ("*", None, "rate = 1"),
        ("/b", None, "rate = 0"),
        ("/c", None, "rate = 1, mode = \"wait\""),
    ] {
        toml.push_str(&format!("[[server.routes]]\npath = \"{path}\"\n"));
        if let Some(m) = method {
            toml.push_str(&format!("method = \"{m}\"\n"));
        }
        toml.push_str(&format!("budget = {{ {budget} }}\n"));
    }
    let fields: Vec<String> = StackConfig::from_toml_str(&toml)
        .unwrap_err()
        .errors()
        .iter()
        .map(|e| e.field().to_owned())
        .collect();
    assert_eq!(
        fields,
        [
            "server.routes[0].path",
            "server.routes[1].method",
            "server.routes[2].method",
            "server.routes[4].budget.rate",
            "server.routes[5].budget.mode",
            "server.routes",
        ]
    );

    let many = "[[server.routes]]\npath = \"/x\"\nbudget = {}\n".repeat(1025);
    let err = StackConfig::from_toml_str(&many).unwrap_err();
    assert_eq!(err.field(), "server.routes", "{err}");
}

#[cfg(feature = "axum")]
#[tokio::test(start_paused = true)]
async fn route_budgets_from_toml_guard_a_router() {
    use axum::Router;
    use axum::body::Body;
    use axum::error_handling::HandleErrorLayer;
    use axum::http::Request;
    use axum::routing::get;

    let config = StackConfig::from_toml_str(
        r#"
        [[server.routes]]
        path = "/cfg/search/{q}"
        budget = { rate = 1, per = "1m", burst = 1 }

        [[server.routes]]
        path = "/cfg/search/{q}"
        method = "POST"
        budget = { rate = 2, per = "1m", burst = 2 }

        [[server.routes]]
        path = "*"
        budget = { rate = 3, per = "1m", burst = 3 }
        "#,
    )
    .unwrap();
    let routes = config.server.route_budgets().unwrap().unwrap();
    let app = Router::new()
        .route(
            "/cfg/search/{q}",
            get(|| async { "get" }).post(|| async { "post" }),
        )
        .route("/cfg/other", get(|| async { "other" }))
        .route_layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                .layer(routes.clone()),
        );
    let status = |method: &str, path: &str| {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let app = app.clone();
        async move { app.oneshot(req).await.unwrap().status().as_u16() }
    };
    // GET of the search route: one a minute, whatever the query.
    assert_eq!(status("GET", "/cfg/search/a").await, 200);
    assert_eq!(status("GET", "/cfg/search/b").await, 429);
    // POST has its own two.
    assert_eq!(status("POST", "/cfg/search/a").await, 200);
    assert_eq!(status("POST", "/cfg/search/a").await, 200);
    assert_eq!(status("POST", "/cfg/search/a").await, 429);
    // Every other route shares the default's three.
    assert_eq!(status("GET", "/cfg/other").await, 200);
    assert_eq!(status("GET", "/cfg/other").await, 200);
    assert_eq!(status("GET", "/cfg/other").await, 200);
    assert_eq!(status("GET", "/cfg/other").await, 429);
}

/// `[client.chaos]` and `[server.chaos]`: off unless the table is there,
/// every bad field named, and a built layer that injects what it says.
#[cfg(feature = "chaos")]
#[tokio::test(start_paused = true)]
async fn chaos_tables_build_a_layer_only_when_present() {
    let config = StackConfig::from_toml_str("[server.shed]\n").unwrap();
    assert!(config.client.chaos_layer().unwrap().is_none());
    assert!(config.server.chaos_layer().unwrap().is_none());

    let fields: Vec<String> = StackConfig::from_toml_str(
        "[client.chaos]\nerror_rate = 1.5\n[server.chaos]\nlatency_rate = 0.5\nlatency = \"2h\"\n",
    )
    .unwrap_err()
    .errors()
    .iter()
    .map(|e| e.field().to_owned())
    .collect();
    assert_eq!(fields, ["client.chaos.error_rate", "server.chaos.latency"]);

    let config = StackConfig::from_toml_str(
        "[client.chaos]\nname = \"peer-b\"\nseed = 7\nerror_rate = 1.0\n",
    )
    .unwrap();
    let chaos = config.client.chaos_layer().unwrap().expect("configured");
    let svc = chaos.layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
    assert!(svc.clone().oneshot(1).await.is_err(), "every call fails");
    chaos.handle().disable();
    assert_eq!(svc.oneshot(2).await.unwrap(), 2);
    assert_eq!(chaos.stats().errors, 1);
}

/// `[client.hedge]`, `[client.deadline]` and `[server.deadline]`: absent is
/// off, every bad field is named, and the built layers carry the config.
#[cfg(all(feature = "hedge", feature = "deadline"))]
#[test]
fn hedge_and_deadline_tables() {
    let config = StackConfig::from_toml_str("[server.shed]\n").unwrap();
    assert!(config.client.hedge_layer().unwrap().is_none());
    assert!(config.client.deadline_layer().unwrap().is_none());
    assert!(config.server.deadline_layer().unwrap().is_none());

    let config = StackConfig::from_toml_str(
        "[client.hedge]\nname = \"peer\"\ndelay = \"20ms\"\n\
         [client.deadline]\n[server.deadline]\n",
    )
    .unwrap();
    let hedge = config.client.hedge_layer().unwrap().expect("configured");
    assert_eq!(hedge.stats().delay, Duration::from_millis(20));
    assert!(config.client.deadline_layer().unwrap().is_some());
    assert!(config.server.deadline_layer().unwrap().is_some());

    let fields: Vec<String> = StackConfig::from_toml_str(
        "[client.hedge]\nmax_hedges = 9\n[client.deadline]\nmargin = \"2h\"\n\
         [server.deadline]\nmax = \"30d\"\n",
    )
    .unwrap_err()
    .errors()
    .iter()
    .map(|e| e.field().to_owned())
    .collect();
    assert_eq!(
        fields,
        [
            "client.hedge.max_hedges",
            "client.deadline.margin",
            "server.deadline.max"
        ]
    );
}

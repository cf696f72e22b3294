//! Config errors, and a Redis that is not there at all: no server needed.

use std::time::Duration;

use seawall_budget_redis::{
    Backend, BudgetMode, FallbackPolicy, RedisBudgetConfig, RedisBudgetError, RedisBudgetLayer,
    RedisKeyedBudgetLayer,
};
use seawall_core::{Rejection, RejectionKind};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

/// A URL where nothing listens: a port the kernel just handed out and took back.
fn dead_url() -> String {
    format!(
        "redis://127.0.0.1:{}",
        seawall_test_support::redis::free_port().unwrap()
    )
}

#[test]
fn bad_url_and_zero_rate_are_config_errors() {
    let err = RedisBudgetLayer::builder()
        .url("http://127.0.0.1:6379")
        .rate(0)
        .build()
        .unwrap_err();
    let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
    assert_eq!(fields, ["url", "rate"]);
    assert!(err.to_string().contains("is not a Redis URL"), "{err}");

    let err = RedisBudgetLayer::builder()
        .url("not a url")
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "url");

    let mut cfg = RedisBudgetConfig::default();
    cfg.mode = BudgetMode::Wait;
    cfg.rate = 0;
    let err = RedisKeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap_err();
    let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
    assert_eq!(fields, ["rate", "mode"]);
}

#[test]
fn building_needs_no_runtime_and_no_server() {
    let layer = RedisBudgetLayer::builder().url(dead_url()).build().unwrap();
    assert_eq!(layer.backend(), Backend::Redis);
    assert_eq!(layer.stats().round_trips, 0);
}

#[cfg(feature = "serde")]
#[test]
fn the_config_deserialises_from_toml() {
    let cfg: RedisBudgetConfig = toml::from_str(
        r#"
        url = "redis://10.0.0.5:6379"
        name = "payments-api"
        rate = 500
        burst = 25
        mode = "wait"
        fallback = { local = { share = 0.25 } }
        redis_timeout = "20ms"
        probe_interval = "2s"
        lease_interval = "100ms"
        lease_share = 0.2

        [keys]
        capacity = 500
        idle_ttl = "1m"
        "#,
    )
    .unwrap();
    assert_eq!(cfg.name, "payments-api");
    assert_eq!(cfg.keys.capacity, 500);
    assert_eq!(cfg.keys.idle_ttl, Duration::from_secs(60));
    assert_eq!(cfg.mode, BudgetMode::Wait);
    assert_eq!(cfg.fallback, FallbackPolicy::Local { share: 0.25 });
    assert_eq!(cfg.redis_timeout, Duration::from_millis(20));
    assert_eq!(cfg.max_lease(), 5);
    assert!(cfg.validate().is_ok());
    let cfg: RedisBudgetConfig = toml::from_str(r#"fallback = "fail_closed""#).unwrap();
    assert_eq!(cfg.fallback, FallbackPolicy::FailClosed);
    assert!(toml::from_str::<RedisBudgetConfig>("backend = 1").is_err());
    // The map's bounds live in `keys` only; the old flat fields are refused.
    assert!(toml::from_str::<RedisBudgetConfig>("capacity = 10").is_err());
    assert!(toml::from_str::<RedisBudgetConfig>("[keys]\nttl = \"1s\"").is_err());
    let bad: RedisBudgetConfig = toml::from_str("[keys]\ncapacity = 0").unwrap();
    assert_eq!(bad.validate().unwrap_err().field(), "keys.capacity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_a_typed_error_and_fails_closed() {
    let layer = RedisBudgetLayer::builder()
        .url(dead_url())
        .name("closed")
        .fallback(FallbackPolicy::FailClosed)
        .redis_timeout(Duration::from_millis(100))
        .probe_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = layer.ping().await.unwrap_err();
    assert!(
        matches!(
            err,
            RedisBudgetError::Redis(_) | RedisBudgetError::Timeout(_)
        ),
        "{err:?}"
    );
    if let RedisBudgetError::Redis(e) = &err {
        assert!(e.is_io_error() || e.is_connection_refusal(), "{e:?}");
        assert!(std::error::Error::source(&err).is_some());
    }
    let mut svc = layer.layer(service_fn(|x: u32| async move {
        Ok::<_, std::convert::Infallible>(x)
    }));
    // At most one lease's credit goes through before the first refill fails.
    let start = Instant::now();
    let mut admitted = 0;
    let mut closed = None;
    while start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        match svc.ready().await.unwrap().call(1).await {
            Ok(_) => admitted += 1,
            Err(e) if layer.backend() == Backend::Fallback => {
                let r = Rejection::find(&*e).unwrap();
                assert_eq!(r.kind(), RejectionKind::BudgetExhausted);
                closed = r.retry_after();
                break;
            }
            Err(_) => {}
        }
        assert!(t.elapsed() < Duration::from_millis(100), "a call waited");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(closed, Some(Duration::from_millis(300)));
    assert!(
        admitted <= layer.config().max_lease(),
        "admitted {admitted}"
    );
    assert_eq!(layer.stats().fallbacks, 1);
    assert!(layer.stats().last_error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_and_local_fallbacks() {
    let open = RedisBudgetLayer::builder()
        .url(dead_url())
        .rate(10)
        .fallback(FallbackPolicy::FailOpen)
        .build()
        .unwrap();
    let local = RedisBudgetLayer::builder()
        .url(dead_url())
        .rate(100)
        .burst(10)
        .fallback(FallbackPolicy::Local { share: 0.5 })
        .build()
        .unwrap();
    for layer in [&open, &local] {
        let svc = layer.layer(service_fn(|x: u32| async move {
            Ok::<_, std::convert::Infallible>(x)
        }));
        let deadline = Instant::now() + Duration::from_secs(2);
        while layer.backend() == Backend::Redis && Instant::now() < deadline {
            let _ = svc.clone().oneshot(0).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(layer.backend(), Backend::Fallback);
    }
    // Fail open: everything goes through, far above the rate.
    let svc = open.layer(service_fn(|x: u32| async move {
        Ok::<_, std::convert::Infallible>(x)
    }));
    for i in 0..100 {
        assert_eq!(svc.clone().oneshot(i).await.unwrap(), i);
    }
    // Local at half the rate: a burst of 5, then refused with a retry-after.
    let svc = local.layer(service_fn(|x: u32| async move {
        Ok::<_, std::convert::Infallible>(x)
    }));
    let mut ok = 0;
    let mut refused = 0;
    for i in 0..20 {
        match svc.clone().oneshot(i).await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(
                    Rejection::find(&*e).unwrap().retry_after().unwrap()
                        <= Duration::from_millis(20)
                );
                refused += 1;
            }
        }
    }
    assert!((5..=8).contains(&ok), "admitted {ok}");
    assert!(refused >= 12, "refused {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_service_dropped_with_a_reserved_token_gives_it_back() {
    let layer = RedisBudgetLayer::builder()
        .url(dead_url())
        .mode(BudgetMode::Wait)
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|x: u32| async move {
        Ok::<_, std::convert::Infallible>(x)
    }));
    // The first token is taken on credit: refundable.
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    assert!(svc.is_reserved());
    assert_eq!(layer.stats().admitted, 1);
    let held = layer.leased();
    drop(svc);
    assert_eq!(layer.leased(), held + 1);
    assert_eq!(layer.stats().admitted, 0);
}

/// A "Redis" that accepts connections and never answers.
async fn silent_redis() -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_times_out_and_calls_do_not_wait_for_it() {
    let (url, server) = silent_redis().await;
    let timeout = Duration::from_millis(200);
    let built = Instant::now();
    let layer = RedisBudgetLayer::builder()
        .url(url)
        .rate(10)
        .burst(10) // leases of one token
        .redis_timeout(timeout)
        .fallback(FallbackPolicy::FailClosed)
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|x: u32| async move {
        Ok::<_, std::convert::Infallible>(x)
    }));
    // One token on credit, then refused at once while the refill hangs.
    let t = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    let err = svc.ready().await.unwrap().call(2).await.unwrap_err();
    assert!(t.elapsed() < timeout / 2, "took {:?}", t.elapsed());
    let r = Rejection::find(&*err).unwrap();
    assert_eq!(r.retry_after(), Some(Duration::from_millis(100)));
    assert_eq!(layer.backend(), Backend::Redis);
    // The hung command times out: fallback, with a typed error.
    while layer.backend() == Backend::Redis && built.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(layer.backend(), Backend::Fallback);
    assert!(
        built.elapsed() >= timeout / 2,
        "switched after {:?}",
        built.elapsed()
    );
    assert!(
        matches!(layer.stats().last_error, Some(RedisBudgetError::Timeout(t)) if t == timeout),
        "{:?}",
        layer.stats().last_error
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_service_waits_at_most_one_timeout_for_a_silent_redis() {
    let (url, server) = silent_redis().await;
    let timeout = Duration::from_millis(200);
    let layer = RedisBudgetLayer::builder()
        .url(url)
        .rate(10)
        .burst(10)
        .mode(BudgetMode::Wait)
        .redis_timeout(timeout)
        .fallback(FallbackPolicy::FailOpen)
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|x: u32| async move {
        Ok::<_, std::convert::Infallible>(x)
    }));
    let t = Instant::now();
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1); // on credit
    // Waits for the refill, then fails open (bounded, so a hang fails the test).
    let second = tokio::time::timeout(Duration::from_secs(5), svc.clone().oneshot(2)).await;
    assert_eq!(second.expect("no hang").unwrap(), 2);
    let waited = t.elapsed();
    assert!(waited < timeout * 3, "waited {waited:?}");
    // The call's own wait and the background task's Redis command time out
    // together; the switch is recorded by the task, maybe a moment later.
    while layer.backend() == Backend::Redis && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(layer.backend(), Backend::Fallback);
    server.abort();
}

const PASSWORD: &str = "hunter2-s3cret";

/// Every way `err` prints: Display, Debug, and its sources'.
fn printed(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{err} {err:?}");
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(&format!(" | {e} {e:?}"));
        source = e.source();
    }
    out
}

/// A "Redis" (a proxy, an old or foreign server) that answers every command
/// with an error echoing the command and its arguments, as Redis 5 did for
/// unknown commands: the password of `HELLO 3 AUTH user password` included.
async fn echoing_redis() -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                // RESP commands: `*n`, then `$len` and the value, n times.
                while let Ok(Some(head)) = lines.next_line().await {
                    let Some(n) = head.strip_prefix('*').and_then(|n| n.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    let mut args = Vec::new();
                    for _ in 0..n {
                        let _len = lines.next_line().await;
                        if let Ok(Some(v)) = lines.next_line().await {
                            args.push(format!("'{v}'"));
                        }
                    }
                    let reply = format!("-ERR unsupported, with args: {}\r\n", args.join(" "));
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_echoing_the_password_never_gets_it_printed() {
    let (port, server) = echoing_redis().await;
    for url in [
        format!("redis://app:{PASSWORD}@127.0.0.1:{port}/?protocol=resp3"),
        format!("redis://:{PASSWORD}@127.0.0.1:{port}/?protocol=resp3"),
        // Percent-encoded in the URL, sent (and echoed) decoded.
        format!("redis://app:hunter2%2Ds3cret@127.0.0.1:{port}/?protocol=resp3"),
    ] {
        let layer = RedisBudgetLayer::builder()
            .url(url.as_str())
            .name("echo")
            .redis_timeout(Duration::from_millis(500))
            .fallback(FallbackPolicy::FailClosed)
            .build()
            .unwrap();
        let err = layer.ping().await.unwrap_err();
        let text = printed(&err);
        assert!(!text.contains(PASSWORD), "{text}");
        // The echo did arrive, and was scrubbed (not merely absent).
        assert!(text.contains("***"), "{text}");
        assert!(err.redis_error().is_some(), "{text}");
        // The background task's errors too: kept in the stats.
        let svc = layer.layer(service_fn(|x: u32| async move {
            Ok::<_, std::convert::Infallible>(x)
        }));
        let start = Instant::now();
        while layer.backend() == Backend::Redis && start.elapsed() < Duration::from_secs(3) {
            let _ = svc.clone().oneshot(1).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let last = layer.stats().last_error.expect("an error is kept");
        let text = printed(&last);
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!format!("{:?}", layer.stats()).contains(PASSWORD));
        assert!(!format!("{layer:?}").contains(PASSWORD));
    }
    server.abort();
}

#[test]
fn the_password_is_never_printed_by_a_config_a_builder_or_a_layer() {
    let url = format!("redis://app:{PASSWORD}@redis.internal:6380/2");
    let mut cfg = RedisBudgetConfig::default();
    cfg.url = url.clone();
    let shown = format!("{cfg:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(
        shown.contains("redis://app:***@redis.internal:6380/2"),
        "{shown}"
    );
    let builder = RedisBudgetLayer::builder().url(url.as_str());
    assert!(!format!("{builder:?}").contains(PASSWORD));
    let layer = builder.build().unwrap();
    assert!(!format!("{layer:?}").contains(PASSWORD));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let keyed = RedisKeyedBudgetLayer::new(|x: &u32| *x, &cfg).unwrap();
        assert!(!format!("{keyed:?}").contains(PASSWORD));
        let svc = keyed.layer(service_fn(|x: u32| async move {
            Ok::<_, std::convert::Infallible>(x)
        }));
        assert!(!format!("{svc:?}").contains(PASSWORD));
        let svc = layer.layer(service_fn(|x: u32| async move {
            Ok::<_, std::convert::Infallible>(x)
        }));
        assert!(!format!("{svc:?}").contains(PASSWORD));
    });
    // A bad URL with a password: the error names it redacted.
    for bad in [
        format!("http://app:{PASSWORD}@h:6379"),
        format!("redis://app:{PASSWORD}@h:notaport"),
        format!("redis://app:{PASSWORD}@h:6379/notadb"),
        format!("redis+unix:///run/r.sock?db=x&pass={PASSWORD}"),
        format!("app:{PASSWORD}@h:6379"),
        format!("redis://app:{PASSWORD}@{}", "h".repeat(100_000)),
    ] {
        let err = RedisBudgetLayer::builder()
            .url(bad.as_str())
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "url", "{err}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(text.len() < 1000, "{} bytes", text.len());
    }
}

//! A reqwest client with seawall's client stack, against a local peer.
//!
//! The example starts two axum peers on 127.0.0.1: `a` with three routes,
//! `/ok`, `/busy` (429 with `Retry-After: 1` on the first call, then 200)
//! and `/slow` (never answers), and `b`, whose `/down` always answers 503.
//! It calls them through a reqwest-middleware client carrying a
//! `SeawallMiddleware`: retries that honour the peer's hints, a breaker per
//! authority (per `host:port`), an adaptive timeout capped at 200ms, and a
//! rate budget. `b`'s breaker opens, `a`'s does not. It prints what each
//! call got and the stack's counters, and stops by itself in about two
//! seconds.
//!
//! Run with `cargo run -p seawall-reqwest --example reqwest_client`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, TripPolicy};
use seawall_budget::BudgetConfig;
use seawall_core::Rejection;
use seawall_reqwest::SeawallMiddleware;
use seawall_retry::{Backoff, RetryConfig};
use seawall_timeout::{AdaptiveTimeoutConfig, KeyedAdaptiveTimeoutConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // The peers.
    let told = Arc::new(AtomicBool::new(false));
    let a = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/busy",
            get(move || {
                let first = !told.swap(true, Ordering::SeqCst);
                async move {
                    if first {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "1")],
                            "busy",
                        )
                            .into_response()
                    } else {
                        (StatusCode::OK, "fine now").into_response()
                    }
                }
            }),
        )
        .route("/slow", get(std::future::pending::<&'static str>));
    let b = Router::new().route(
        "/down",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
    );
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for app in [a, b] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        bases.push(format!("http://{}", listener.local_addr()?));
        servers.push(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
    }
    let (a, b) = (&bases[0], &bases[1]);

    // The stack: at most 3 attempts within 3s; a peer's breaker opens after
    // 5 failures in a row; each attempt at most 200ms; 50 attempts a second.
    let seawall = SeawallMiddleware::builder()
        .retry(
            RetryConfig::new()
                .max_attempts(3)
                .deadline(Duration::from_secs(3))
                .backoff(Backoff::exponential(Duration::from_millis(20), 2.0)),
        )
        .breaker(
            KeyedBreakerConfig::new().per_key(
                BreakerConfig::new()
                    .policy(TripPolicy::consecutive_failures(5))
                    .open_duration(Duration::from_secs(10)),
            ),
        )
        .timeout(
            KeyedAdaptiveTimeoutConfig::new().per_key(
                AdaptiveTimeoutConfig::builder()
                    .base(Duration::from_millis(200))
                    .max(Duration::from_millis(200))
                    .min(Duration::from_millis(20))
                    .into_config(),
            ),
        )
        .budget(
            BudgetConfig::new()
                .rate(50)
                .per(Duration::from_secs(1))
                .burst(50),
        )
        .build()?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(seawall.clone())
        .build();

    let calls = [
        ("a", format!("{a}/ok")),
        ("a", format!("{a}/busy")),
        ("a", format!("{a}/slow")),
        ("b", format!("{b}/down")),
        ("b", format!("{b}/down")),
        ("b", format!("{b}/down")),
        ("a", format!("{a}/ok")),
    ];
    for (peer, url) in calls {
        let path = url.rsplit('/').next().unwrap_or_default();
        let start = Instant::now();
        let outcome = match client.get(&url).send().await {
            Ok(res) => format!("{}", res.status()),
            Err(err) => match Rejection::find(&err) {
                Some(r) => format!("{}: {err}", r.kind()),
                None => format!("error: {err}"),
            },
        };
        let took = start.elapsed().as_millis();
        println!("{peer}: GET /{path:<5} {took:>5}ms  {outcome}");
    }

    let retry = seawall.retry().map(|r| r.stats());
    if let Some(s) = retry {
        println!(
            "retry: {} requests, {} attempts, {} retries ({} waited a peer's hint)",
            s.requests, s.attempts, s.retries, s.hinted
        );
    }
    if let Some(breakers) = seawall.breaker() {
        let s = breakers.stats();
        println!(
            "breaker: {} peer(s), {} failures, {} refused",
            breakers.len(),
            s.failures,
            s.rejected
        );
    }
    for server in servers {
        server.abort();
    }
    Ok(())
}

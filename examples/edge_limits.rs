//! Rate limits at the edge: an axum API with a budget per IP, per API key
//! (or per IP for anonymous clients) and per route, the IETF `RateLimit`
//! fields on every answer, served and driven by itself.
//!
//! ```text
//! RateLimitHeadersLayer          → RateLimit-Policy / RateLimit on every answer a budget decided
//!   HandleErrorLayer             → a spent budget answers 429 + Retry-After
//!     per-ip     (KeyedBudget)   → 30 a minute per client address (IPv6 by /64)
//!       per-client (KeyedBudget) → 20 a minute per API key, or per address without one
//!         routes (RouteBudgets)  → /search/{q}: 10 a minute for everyone together
//!           handler
//! ```
//!
//! The server trusts the loopback network as its proxy, so it reads each
//! client's address from the `X-Forwarded-For` the driver sets, as it would
//! behind a load balancer: the rightmost address the proxy did not add. A
//! client that prepends addresses of its own gains nothing.
//!
//! Every budget counts per minute and the clients run one after another, so
//! what each client gets does not depend on the machine's speed. Run with
//! `cargo run --example edge_limits --features axum,http`.
//!
//! With `--serve` it only serves, on 127.0.0.1:3000, until Ctrl-C, for
//! another client to drive (`curl -si -H 'X-Forwarded-For: 198.51.100.7'
//! http://127.0.0.1:3000/items`, or a load generator):
//! `cargo run --example edge_limits --features axum,http -- --serve`.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use seawall::axum::{RATELIMIT, RateLimitHeadersLayer, RouteBudgets};
use seawall::budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
use seawall::core::KeyFn;
use seawall::core::key::{ClientIp, ClientKey, HeaderKey, HeaderValueKey};
use seawall::prelude::BoxError;
use tower::ServiceBuilder;

type Request = axum::extract::Request;

/// The key of the per-client budget: the API key, or the address of a
/// client that sent none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    ApiKey(HeaderValueKey),
    Anonymous(ClientKey),
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::ApiKey(key) => write!(f, "{key}"),
            Who::Anonymous(ip) => write!(f, "anonymous {ip}"),
        }
    }
}

/// A budget the clients are told about (`advertise`): its quota goes into
/// the `RateLimit` fields.
fn per_minute(name: &str, n: u32) -> BudgetConfig {
    BudgetConfig::new()
        .name(name)
        .rate(n)
        .per(Duration::from_secs(60))
        .burst(n)
        .advertise(true)
}

fn app() -> Result<Router, BoxError> {
    // The proxy in front of this server is on loopback (here: the driver).
    let client_ip = ClientIp::new()
        .trusted_proxies(["127.0.0.0/8".parse()?])
        .peer_from(|c: &ConnectInfo<SocketAddr>| c.0);
    let per_ip = KeyedBudgetLayer::new::<Request>(
        client_ip.clone(),
        &KeyedBudgetConfig::from(per_minute("per-ip", 30)),
    )?;

    let api_keys = HeaderKey::new("x-api-key");
    let per_client = KeyedBudgetLayer::new::<Request>(
        move |req: &Request| match api_keys.key(req) {
            key if key.is_absent() => Who::Anonymous(client_ip.key(req)),
            key => Who::ApiKey(key),
        },
        &KeyedBudgetConfig::from(per_minute("per-client", 20)),
    )?;

    let routes = RouteBudgets::new()
        .route("/search/{q}", &per_minute("search", 10))
        .build()?;

    Ok(Router::new()
        .route("/items", get(|| async { "items\n" }))
        .route("/search/{q}", get(|| async { "results\n" }))
        .route_layer(
            ServiceBuilder::new()
                .layer(RateLimitHeadersLayer::new())
                .layer(HandleErrorLayer::new(seawall::axum::handle_error))
                .layer(per_ip)
                .layer(per_client)
                .layer(routes),
        ))
}

/// One client of the API, as the proxy forwards it.
struct Caller {
    name: &'static str,
    api_key: Option<&'static str>,
    /// `X-Forwarded-For` of the i-th request: what the client sent, then
    /// the address the proxy saw.
    forwarded: fn(u32) -> String,
    path: fn(u32) -> String,
    requests: u32,
    what: &'static str,
}

async fn drive(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    caller: &Caller,
) -> Result<(), BoxError> {
    let (mut ok, mut limited, mut other) = (0, 0, 0);
    let mut last_state = String::new();
    let mut retry_after = None;
    for i in 0..caller.requests {
        let mut req = http::Request::get(format!("http://{addr}{}", (caller.path)(i)))
            .header("x-forwarded-for", (caller.forwarded)(i));
        if let Some(key) = caller.api_key {
            req = req.header("x-api-key", key);
        }
        let res = client.request(req.body(Empty::new())?).await?;
        match res.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                retry_after = res
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
            }
            _ => other += 1,
        }
        if let Some(state) = res.headers().get(RATELIMIT).and_then(|v| v.to_str().ok()) {
            last_state = state.to_owned();
        }
    }
    println!(
        "{:<8} {:>3} sent: {:>3} ok, {:>3} × 429{}{}  ({})",
        caller.name,
        caller.requests,
        ok,
        limited,
        retry_after.map_or(String::new(), |s| format!(" (Retry-After {s}s)")),
        if other > 0 {
            format!(", {other} other")
        } else {
            String::new()
        },
        caller.what,
    );
    println!("         last RateLimit: {last_state}");
    Ok(())
}

/// Serves on 127.0.0.1:3000 until Ctrl-C, driving nothing.
async fn serve_only() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "serving on http://{} until Ctrl-C (budgets per minute: per-ip 30, per-client 20, /search 10)",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app()?.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        // If the signal cannot be listened for, serve until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::args().skip(1).any(|arg| arg == "--serve") {
        return serve_only().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app()?.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .map_err(BoxError::from)
    });
    println!(
        "serving on http://{addr} (budgets per minute: per-ip 30, per-client 20, /search 10)\n"
    );

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let callers = [
        Caller {
            name: "alice",
            api_key: Some("alice-key"),
            forwarded: |_| "198.51.100.1".into(),
            path: |_| "/items".into(),
            requests: 25,
            what: "her API key's 20",
        },
        Caller {
            name: "dave",
            api_key: Some("dave-key"),
            forwarded: |_| "198.51.100.1".into(),
            path: |_| "/items".into(),
            requests: 15,
            what: "alice's office: a key of his own, but the address's 30 are nearly spent",
        },
        Caller {
            name: "mallory",
            api_key: None,
            // A new made-up address in front of each request.
            forwarded: |i| format!("10.66.{}.{}, 203.0.113.66", i / 250, i % 250),
            path: |_| "/items".into(),
            requests: 25,
            what: "no key, spoofed X-Forwarded-For entries: keyed by the address the proxy saw",
        },
        Caller {
            name: "carol",
            api_key: None,
            // Rotating through her IPv6 /64.
            forwarded: |i| format!("2001:db8:cafe:1::{:x}", i + 1),
            path: |_| "/items".into(),
            requests: 25,
            what: "no key, a new IPv6 address per request, all in one /64",
        },
        Caller {
            name: "bob",
            api_key: Some("bob-key"),
            forwarded: |_| "198.51.100.2".into(),
            path: |i| format!("/search/q{i}"),
            requests: 15,
            what: "/search/{q}: 10 for everyone, whatever the query",
        },
    ];
    for caller in &callers {
        drive(&client, addr, caller).await?;
    }
    server.abort();
    Ok(())
}

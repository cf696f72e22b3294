//! A hyper client to three peers behind one keyed circuit breaker.
//!
//! The example starts three HTTP peers on 127.0.0.1 and calls each of them
//! every 100ms through a `KeyedBreakerLayer` keyed by the request's authority
//! (`host:port`), so every peer has a breaker of its own. A while in, peer `b`
//! starts answering 500: after 3 failures in a row its breaker opens and its
//! calls are refused at once, without touching the network, while `a` and
//! `c` carry on untouched. Then `b` recovers; when its breaker's open time is
//! over, probes find it healthy, the breaker closes, and `b` is used again.
//!
//! Run with `cargo run --example peer_client --features http`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::Empty;
use hyper::Request;
use hyper::http::uri::Authority;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seawall::breaker::{BreakerConfig, KeyedBreakerConfig, KeyedBreakerLayer, State, TripPolicy};
use seawall::core::classify::HttpStatus;
use seawall::core::key::{ByAuthority, Host};
use seawall::{BoxError, Rejection, ServiceBuilderExt};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};

/// Rounds of one call per peer, 100ms apart.
const ROUNDS: u32 = 30;
/// Peer `b` fails from this round until `RECOVERS` (exclusive).
const FAILS: u32 = 4;
const RECOVERS: u32 = 14;

/// Starts a peer that answers 200, or 500 while `failing` is set.
async fn start_peer(
    name: &'static str,
    failing: Arc<AtomicBool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), BoxError> {
    let app = Router::new().route(
        "/",
        get(move || async move {
            if failing.load(Ordering::Relaxed) {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{name}: on fire"),
                )
            } else {
                (StatusCode::OK, format!("{name}: fine"))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}

/// What one peer's calls came to, as the client saw them.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    ok: u32,
    failed: u32,
    refused: u32,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let b_failing = Arc::new(AtomicBool::new(false));
    let mut peers = Vec::new();
    let mut servers = Vec::new();
    for (name, failing) in [
        ("a", Arc::new(AtomicBool::new(false))),
        ("b", b_failing.clone()),
        ("c", Arc::new(AtomicBool::new(false))),
    ] {
        let (addr, task) = start_peer(name, failing).await?;
        println!("peer {name} on {addr}");
        // The key `ByAuthority` takes from a request to this peer.
        let key = Host::from(Authority::try_from(addr.to_string())?);
        peers.push((name, addr, key));
        servers.push(task);
    }

    // One breaker per authority: 3 failures in a row open it for 1s; then one
    // probe at a time, and 2 successful probes close it.
    let config = KeyedBreakerConfig::from(
        BreakerConfig::new()
            .name("peers")
            .policy(TripPolicy::consecutive_failures(3))
            .open_duration(Duration::from_secs(1))
            .half_open_max_calls(1)
            .success_threshold(2),
    );
    let breakers = KeyedBreakerLayer::new::<Request<Empty<Bytes>>>(ByAuthority, &config)?
        // 5xx and 429 responses are failures, not only transport errors.
        .classify(HttpStatus::new());

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut svc = ServiceBuilder::new()
        .breaker(breakers.clone())
        .service(client);

    let mut seen = [Seen::default(); 3];
    let mut last = vec![String::new(); 3];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for round in 0..ROUNDS {
        tick.tick().await;
        if round == FAILS {
            println!(
                "-- t={:.1}s: peer b starts failing",
                f64::from(round) / 10.0
            );
            b_failing.store(true, Ordering::Relaxed);
        }
        if round == RECOVERS {
            println!("-- t={:.1}s: peer b recovers", f64::from(round) / 10.0);
            b_failing.store(false, Ordering::Relaxed);
        }
        for (i, (name, addr, key)) in peers.iter().enumerate() {
            let req = Request::get(format!("http://{addr}/")).body(Empty::new())?;
            let outcome = match svc.ready().await?.call(req).await {
                Ok(res) if res.status().is_success() => {
                    seen[i].ok += 1;
                    res.status().to_string()
                }
                Ok(res) => {
                    seen[i].failed += 1;
                    res.status().to_string()
                }
                Err(err) => match Rejection::find(&*err) {
                    Some(Rejection::CircuitOpen(open)) => {
                        seen[i].refused += 1;
                        format!("refused: {open}")
                    }
                    _ => {
                        seen[i].failed += 1;
                        format!("error: {err}")
                    }
                },
            };
            let state = breakers.key_stats(key).map_or(State::Closed, |s| s.state);
            // Print a peer's line only when what it sees changes.
            let line = format!("{outcome:<48} breaker {state}");
            let kind = format!("{} {state}", outcome.split(':').next().unwrap_or_default());
            if kind != last[i] {
                println!("t={:.1}s {name}: {line}", f64::from(round) / 10.0);
                last[i] = kind;
            }
        }
    }

    println!("after {ROUNDS} rounds:");
    for (i, (name, _, key)) in peers.iter().enumerate() {
        let Some(stats) = breakers.key_stats(key) else {
            continue;
        };
        println!(
            "  {name}: {:>2} ok, {:>2} failed, {:>2} refused by the breaker; breaker {} (trips {}, failures {})",
            seen[i].ok, seen[i].failed, seen[i].refused, stats.state, stats.trips, stats.failures,
        );
    }
    let all = breakers.stats();
    println!(
        "  keys {}, open {}, rejected {}, trips {}",
        all.keys, all.open, all.rejected, all.trips
    );

    for server in servers {
        server.abort();
    }
    Ok(())
}

//! Where a concurrency limit applied with `axum::Router::layer` holds: per
//! connection or per process.
//!
//! The server has three routes, each in front of the same slow handler (it
//! sleeps 50ms), each limited to `N` requests in flight (default 10):
//!
//! | route | limit |
//! |-------|-------|
//! | `/tower` | tower's `ConcurrencyLimitLayer::new(N)`, by `Router::layer` |
//! | `/tower-once` | the same, on a router turned into routes once, by `with_state(())` |
//! | `/seawall` | seawall's `ShedLayer` with `max_in_flight(N)`, by `Router::layer` |
//!
//! Each handler counts how many copies of it run at once and keeps the peak;
//! `GET /peak` shows the peaks, and the example prints them when it stops.
//!
//! `axum::serve` turns the router into routes for every connection it
//! accepts (`Router::with_state(())`), and a handler's route applies the
//! router's layers at that moment. `ConcurrencyLimitLayer::layer` makes a new
//! semaphore each time it is applied, so `/tower` gets one semaphore per
//! connection: 50 connections with one request each in flight run 50
//! handlers at once. `/tower-once` was turned into routes before `serve`,
//! so every connection clones one service, and clones share the semaphore.
//! A seawall layer keeps its state in the layer (an `Arc` made by
//! `build()`), so each service applied from it, and every clone, shares one
//! in-flight count: `/seawall` never runs more than `N` handlers, and
//! refuses the rest at once with 503.
//!
//! Run with `cargo run --release --example concurrency_scope --features axum`
//! (arguments: the listen address, default `127.0.0.1:3000`, and `N`), then
//! drive it over many connections, one route at a time:
//!
//! ```text
//! oha -z 10s -c 50 --no-tui http://127.0.0.1:3000/tower
//! oha -z 10s -c 50 --no-tui http://127.0.0.1:3000/tower-once
//! oha -z 10s -c 50 --no-tui http://127.0.0.1:3000/seawall
//! curl -s http://127.0.0.1:3000/peak
//! ```
//!
//! It serves until Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::routing::get;
use seawall::shed::ShedLayer;
use seawall::{BoxError, ServiceBuilderExt};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;

/// How long the handler works.
const WORK: Duration = Duration::from_millis(50);

/// Handlers of one route running now, and the most that ever ran at once.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Counts one handler as running until dropped (also when the request is
/// cancelled).
struct Running<'a>(&'a Gauge);

impl<'a> Running<'a> {
    fn start(gauge: &'a Gauge) -> Self {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.peak.fetch_max(now, Ordering::SeqCst);
        Running(gauge)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A route whose handler sleeps for [`WORK`] while counted in `gauge`.
fn slow_route(path: &str, gauge: Arc<Gauge>) -> Router {
    Router::new().route(
        path,
        get(move || async move {
            let _running = Running::start(&gauge);
            tokio::time::sleep(WORK).await;
            "done\n"
        }),
    )
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:3000").parse()?;
    let limit: usize = args.next().as_deref().unwrap_or("10").parse()?;

    let tower_gauge = Arc::new(Gauge::default());
    let once_gauge = Arc::new(Gauge::default());
    let seawall_gauge = Arc::new(Gauge::default());

    // The layer is applied whenever the route is made: by `serve`, once per
    // connection.
    let per_connection =
        slow_route("/tower", tower_gauge.clone()).layer(ConcurrencyLimitLayer::new(limit));
    // Made into routes here, once: connections clone the result.
    let once = slow_route("/tower-once", once_gauge.clone())
        .layer(ConcurrencyLimitLayer::new(limit))
        .with_state(());
    // Applied once per connection too, but every `Shed` it makes shares the
    // layer's state.
    let shed = ShedLayer::builder()
        .name("scope")
        .max_in_flight(limit)
        .build()?;
    let shedding = slow_route("/seawall", seawall_gauge.clone()).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(seawall::axum::handle_error))
            .shed(shed.clone()),
    );

    let report = move || {
        let stats = shed.stats();
        format!(
            "limit {limit}; peak handlers in flight:\n\
             /tower       {}\n\
             /tower-once  {}\n\
             /seawall     {} (admitted {}, shed {})\n",
            tower_gauge.peak.load(Ordering::SeqCst),
            once_gauge.peak.load(Ordering::SeqCst),
            seawall_gauge.peak.load(Ordering::SeqCst),
            stats.admitted,
            stats.shed.total(),
        )
    };
    let app = per_connection.merge(once).merge(shedding).route(
        "/peak",
        get({
            let report = report.clone();
            move || async move { report() }
        }),
    );

    let listener = TcpListener::bind(addr).await?;
    println!(
        "serving on http://{} with a limit of {limit} (Ctrl-C to stop)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    print!("{}", report());
    Ok(())
}

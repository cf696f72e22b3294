//! The server stack around an axum router, driven by a burst of its own.
//!
//! ```text
//! HandleErrorLayer(seawall::axum::handle_error)  → rejections become 429 / 503 / 504 responses
//!   shed              → at most 40 requests in flight, shedding by probability above 20
//!     budget          → at most 800 requests/s admitted, bursts of 100
//!       timeout       → a deadline that follows the handler's live p99
//!         handler     → simulated work: sleeps as long as the path says
//! ```
//!
//! The example serves on 127.0.0.1 (a free port), warms up with requests one
//! at a time so the adaptive timeout learns the handler's latency, then
//! offers twice what the budget allows from 50 concurrent clients: some of it
//! is shed, some finds the budget spent, slow requests hit their deadline. It prints what the
//! clients saw and what each layer counted, and exits.
//!
//! Run with `cargo run --example axum_server --features axum`.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Path;
use axum::routing::get;
use http_body_util::Empty;
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use seawall::budget::BudgetLayer;
use seawall::shed::ShedLayer;
use seawall::timeout::AdaptiveTimeoutLayer;
use seawall::{BoxError, ServiceBuilderExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceBuilder;

/// Requests in the burst, how many clients send them at once, and how often
/// each client sends: about 2000 requests/s offered for a second.
const BURST: u32 = 2000;
const CLIENTS: u32 = 50;
const PACE: Duration = Duration::from_millis(25);

/// Simulated work: the handler sleeps for the milliseconds in its path.
async fn job(Path(ms): Path<u64>) -> String {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("worked {ms}ms\n")
}

/// How long request `i` asks the handler to work: mostly 5–24ms, every 40th
/// request 600ms (a slow query the deadline should cut).
fn work_ms(i: u32) -> u32 {
    if i % 40 == 39 { 600 } else { 5 + (i * 7) % 20 }
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    unavailable: u64,
    unavailable_with_retry_after: u64,
    too_many: u64,
    too_many_with_retry_after: u64,
    gateway_timeout: u64,
    other: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.ok += other.ok;
        self.unavailable += other.unavailable;
        self.unavailable_with_retry_after += other.unavailable_with_retry_after;
        self.too_many += other.too_many;
        self.too_many_with_retry_after += other.too_many_with_retry_after;
        self.gateway_timeout += other.gateway_timeout;
        self.other += other.other;
    }
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn get_once(client: &HttpClient, addr: std::net::SocketAddr, ms: u32, tally: &mut Tally) {
    let uri = format!("http://{addr}/job/{ms}");
    let Ok(uri) = uri.parse::<hyper::Uri>() else {
        tally.other += 1;
        return;
    };
    match client.get(uri).await {
        Ok(res) => match res.status() {
            StatusCode::OK => tally.ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                tally.unavailable += 1;
                if res.headers().contains_key(hyper::header::RETRY_AFTER) {
                    tally.unavailable_with_retry_after += 1;
                }
            }
            StatusCode::TOO_MANY_REQUESTS => {
                tally.too_many += 1;
                if res.headers().contains_key(hyper::header::RETRY_AFTER) {
                    tally.too_many_with_retry_after += 1;
                }
            }
            StatusCode::GATEWAY_TIMEOUT => tally.gateway_timeout += 1,
            _ => tally.other += 1,
        },
        Err(_) => tally.other += 1,
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let shed = ShedLayer::builder()
        .name("api")
        .max_in_flight(40)
        .soft_limit(20)
        .retry_after(Duration::from_secs(1))
        .build()?;
    let budget = BudgetLayer::builder()
        .name("api")
        .rate(800)
        .per(Duration::from_secs(1))
        .burst(100)
        .build()?;
    let timeout = AdaptiveTimeoutLayer::builder()
        .name("api")
        .base(Duration::from_millis(250)) // until 50 latencies are known
        .min_samples(50)
        .percentile(99.0)
        .multiplier(2.0)
        .min(Duration::from_millis(50))
        .max(Duration::from_secs(1))
        .build()?;

    // Layers own their state: the clones kept here read the same counters
    // as the copies inside the router.
    let app = Router::new().route("/job/{ms}", get(job)).layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(seawall::axum::handle_error))
            .shed(shed.clone())
            .budget(budget.clone())
            .adaptive_timeout(timeout.clone()),
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("serving on http://{addr}/job/{{ms}}");

    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // Warm-up: one at a time, well within every limit.
    let mut warm = Tally::default();
    for i in 0..60 {
        get_once(&client, addr, 5 + (i * 7) % 20, &mut warm).await;
    }
    let t = timeout.stats();
    println!(
        "warm-up: 60 requests one at a time: {} ok; deadline now {:?} (p99 {:?}, {:?})",
        warm.ok, t.deadline, t.p99, t.source,
    );

    // The burst: CLIENTS tasks share BURST requests.
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        clients.spawn(async move {
            let mut tally = Tally::default();
            let mut pace = tokio::time::interval(PACE);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for i in (c..BURST).step_by(CLIENTS as usize) {
                pace.tick().await;
                get_once(&client, addr, work_ms(i), &mut tally).await;
            }
            tally
        });
    }
    let mut burst = Tally::default();
    while let Some(tally) = clients.join_next().await {
        burst.add(&tally?);
    }
    println!(
        "burst: {BURST} requests from {CLIENTS} clients in {:.2?}",
        started.elapsed()
    );
    println!("  200 OK                  {:>5}", burst.ok);
    println!(
        "  503 Service Unavailable {:>5}  ({} with Retry-After)",
        burst.unavailable, burst.unavailable_with_retry_after
    );
    println!(
        "  429 Too Many Requests   {:>5}  ({} with Retry-After)",
        burst.too_many, burst.too_many_with_retry_after
    );
    println!("  504 Gateway Timeout     {:>5}", burst.gateway_timeout);
    if burst.other > 0 {
        println!("  other / errors          {:>5}", burst.other);
    }

    let s = shed.stats();
    println!(
        "shed:    admitted {}, shed {} (hard limit {}, probabilistic {})",
        s.admitted,
        s.shed.total(),
        s.shed.hard_limit,
        s.shed.probabilistic,
    );
    let b = budget.stats();
    println!(
        "budget:  admitted {}, exhausted {}",
        b.iterations, b.exhausted
    );
    let t = timeout.stats();
    println!(
        "timeout: {} timed out; deadline {:?} (p50 {:?}, p99 {:?}, {:?})",
        t.timeouts, t.deadline, t.p50, t.p99, t.source,
    );

    let _ = stop.send(());
    server.await??;
    Ok(())
}

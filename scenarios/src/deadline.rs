//! Scenario 7, deadlines that travel: a chain A → B → C on loopback where C
//! slows down past A's deadline. A gives up at its deadline either way; the
//! question is how much work B (and C) keep doing for answers nobody reads.
//!
//! - Without propagation: B and C know nothing of A's deadline; a call at B
//!   runs until C answers (or until B notices that A has gone, if it does).
//! - With propagation: A's client writes `grpc-timeout`; B reads it
//!   (`CallerDeadlineLayer`), runs its handler in the deadline's scope and
//!   drops the work when it passes; B's client to C writes what is left
//!   (`PropagateDeadlineLayer`, 2 ms margin); C does the same as B.
//!
//! "Wasted" is a call still running after A's deadline: it is measured at B
//! and at C by a guard in the handler that notes when the handler ended
//! (returned, or was dropped), against A's deadline for that request (sent
//! along in a header that only the measurement reads).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use axum::routing::get;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use seawall_core::BoxError;
use seawall_core::deadline::Deadline;
use seawall_deadline::{CallerDeadlineLayer, PropagateDeadlineConfig, PropagateDeadlineLayer};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use crate::server::Running;

/// The header carrying A's deadline, in microseconds since the run's start,
/// for the measurement only.
const A_DEADLINE: &str = "x-scenario-a-deadline-us";

/// What to run.
#[derive(Debug, Clone)]
pub struct DeadlineConfig {
    /// Requests A sends per second.
    pub rate: f64,
    /// How long A sends for.
    pub duration: Duration,
    /// A's deadline for each request.
    pub deadline: Duration,
    /// C's latency at first.
    pub fast: Duration,
    /// C's latency once it has slowed down.
    pub slow: Duration,
    /// When C slows down, from the start.
    pub slow_from: Duration,
}

impl DeadlineConfig {
    /// The full run: 200 calls/s for 20 s, A's deadline 100 ms; C answers in
    /// 20 ms, then in 400 ms from 5 s on.
    pub fn full() -> Self {
        DeadlineConfig {
            rate: 200.0,
            duration: Duration::from_secs(20),
            deadline: Duration::from_millis(100),
            fast: Duration::from_millis(20),
            slow: Duration::from_millis(400),
            slow_from: Duration::from_secs(5),
        }
    }

    /// A short run: 100 calls/s for 4 s, C slow from 1 s.
    pub fn short() -> Self {
        DeadlineConfig {
            rate: 100.0,
            duration: Duration::from_secs(4),
            slow_from: Duration::from_secs(1),
            ..DeadlineConfig::full()
        }
    }
}

/// What one hop saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hop {
    /// Calls its handler started.
    pub calls: u64,
    /// Calls refused on arrival (no time left): the handler never ran.
    pub refused: u64,
    /// Handler runs that ended after A's deadline.
    pub wasted: u64,
    /// Their time past A's deadline, summed.
    pub wasted_time: Duration,
    /// The longest of those.
    pub worst: Duration,
}

/// One run (with or without propagation).
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// With deadline propagation.
    pub propagate: bool,
    /// Requests A sent.
    pub sent: u64,
    /// A's successful answers.
    pub ok: u64,
    /// A's requests that hit A's deadline (or failed).
    pub failed: u64,
    /// At B.
    pub b: Hop,
    /// At C.
    pub c: Hop,
}

/// The result: the same load without and with propagation.
#[derive(Debug, Clone)]
pub struct DeadlineReport {
    /// What ran.
    pub config: DeadlineConfig,
    /// Without, then with.
    pub runs: Vec<Run>,
}

impl DeadlineReport {
    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "deadlines: A -> B -> C, {:.0} calls/s for {:.0} s, A's deadline {} ms; C {} ms, then {} ms from {:.0} s\n",
            c.rate,
            c.duration.as_secs_f64(),
            c.deadline.as_millis(),
            c.fast.as_millis(),
            c.slow.as_millis(),
            c.slow_from.as_secs_f64(),
        );
        out.push_str(
            "propagation | A sent | A ok | A failed | B calls | B wasted | B wasted s | B worst ms | C calls | C refused | C wasted | C wasted s\n",
        );
        for r in &self.runs {
            out.push_str(&format!(
                "{:<11} | {:>6} | {:>4} | {:>8} | {:>7} | {:>8} | {:>10.2} | {:>10} | {:>7} | {:>9} | {:>8} | {:>10.2}\n",
                if r.propagate { "with" } else { "without" },
                r.sent,
                r.ok,
                r.failed,
                r.b.calls,
                r.b.wasted,
                r.b.wasted_time.as_secs_f64(),
                r.b.worst.as_millis(),
                r.c.calls,
                r.c.refused,
                r.c.wasted,
                r.c.wasted_time.as_secs_f64(),
            ));
        }
        out
    }
}

/// What a hop's handlers record.
#[derive(Debug)]
struct Meter {
    epoch: Instant,
    calls: AtomicU64,
    hop: Mutex<Hop>,
}

impl Meter {
    fn new(epoch: Instant) -> Arc<Meter> {
        Arc::new(Meter {
            epoch,
            calls: AtomicU64::new(0),
            hop: Mutex::new(Hop::default()),
        })
    }

    fn snapshot(&self, refused: u64) -> Hop {
        let mut hop = *self.hop.lock().unwrap_or_else(|e| e.into_inner());
        hop.calls = self.calls.load(Ordering::Relaxed);
        hop.refused = refused;
        hop
    }
}

/// Notes, when dropped (the handler returned or was cancelled), whether A
/// had already given up.
struct Guard {
    meter: Arc<Meter>,
    a_deadline: Option<Instant>,
}

impl Guard {
    fn start(meter: &Arc<Meter>, headers: &HeaderMap) -> Guard {
        meter.calls.fetch_add(1, Ordering::Relaxed);
        let a_deadline = headers
            .get(A_DEADLINE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|us| meter.epoch + Duration::from_micros(us));
        Guard {
            meter: meter.clone(),
            a_deadline,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(a) = self.a_deadline else { return };
        let late = Instant::now().saturating_duration_since(a);
        // Within a millisecond is the timer's resolution, not waste.
        if late > Duration::from_millis(1) {
            let mut hop = self.meter.hop.lock().unwrap_or_else(|e| e.into_inner());
            hop.wasted += 1;
            hop.wasted_time += late;
            hop.worst = hop.worst.max(late);
        }
    }
}

type HttpService = BoxCloneSyncService<Request<String>, StatusCode, BoxError>;

/// A client that reads whole answers, propagating the deadline or not.
fn client(propagate: bool) -> HttpService {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let raw: Client<HttpConnector, String> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build(connector);
    let read = tower::service_fn(move |req: Request<String>| {
        let raw = raw.clone();
        async move {
            let res = raw.request(req).await?;
            let status = res.status();
            res.into_body().collect().await?;
            Ok::<_, BoxError>(status)
        }
    });
    let margin = PropagateDeadlineConfig::new().margin(Duration::from_millis(2));
    let layer = PropagateDeadlineLayer::from_config(&margin).ok();
    match (propagate, layer) {
        (true, Some(layer)) => {
            BoxCloneSyncService::new(ServiceBuilder::new().layer(layer).service(read))
        }
        _ => BoxCloneSyncService::new(read),
    }
}

fn request(uri: &Uri, a_deadline_us: Option<&str>) -> Result<Request<String>, BoxError> {
    let mut builder = Request::get(uri.clone());
    if let Some(us) = a_deadline_us {
        builder = builder.header(A_DEADLINE, us);
    }
    Ok(builder.body(String::new())?)
}

#[derive(Clone)]
struct BState {
    meter: Arc<Meter>,
    client: HttpService,
    c: Uri,
}

async fn b_handler(State(s): State<BState>, headers: HeaderMap) -> StatusCode {
    let _guard = Guard::start(&s.meter, &headers);
    let us = headers.get(A_DEADLINE).and_then(|v| v.to_str().ok());
    let Ok(req) = request(&s.c, us) else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match s.client.oneshot(req).await {
        Ok(status) => status,
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

#[derive(Clone)]
struct CState {
    meter: Arc<Meter>,
    latency_us: Arc<AtomicU64>,
}

async fn c_handler(State(s): State<CState>, headers: HeaderMap) -> StatusCode {
    let _guard = Guard::start(&s.meter, &headers);
    let latency = Duration::from_micros(s.latency_us.load(Ordering::Relaxed));
    tokio::time::sleep(latency).await;
    StatusCode::OK
}

async fn refused(_err: BoxError) -> StatusCode {
    StatusCode::GATEWAY_TIMEOUT
}

/// Wraps `router` in the caller's deadline when `propagate`.
fn serve_deadline(router: Router, propagate: bool) -> (Router, Option<CallerDeadlineLayer>) {
    if !propagate {
        return (router, None);
    }
    let layer = CallerDeadlineLayer::new();
    let router = router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(refused))
            .layer(layer.clone()),
    );
    (router, Some(layer))
}

async fn run_once(config: &DeadlineConfig, propagate: bool) -> io::Result<Run> {
    let epoch = Instant::now();
    let latency_us = Arc::new(AtomicU64::new(config.fast.as_micros() as u64));
    let c_meter = Meter::new(epoch);
    let (c_router, c_layer) = serve_deadline(
        Router::new().route("/", get(c_handler)).with_state(CState {
            meter: c_meter.clone(),
            latency_us: latency_us.clone(),
        }),
        propagate,
    );
    let c = Running::spawn(c_router).await?;
    let b_meter = Meter::new(epoch);
    let c_uri: Uri = format!("http://{}/", c.addr())
        .parse()
        .map_err(io::Error::other)?;
    let (b_router, b_layer) = serve_deadline(
        Router::new().route("/", get(b_handler)).with_state(BState {
            meter: b_meter.clone(),
            client: client(propagate),
            c: c_uri,
        }),
        propagate,
    );
    let b = Running::spawn(b_router).await?;
    let b_uri: Uri = format!("http://{}/", b.addr())
        .parse()
        .map_err(io::Error::other)?;

    let a = client(propagate);
    let count = (config.rate * config.duration.as_secs_f64()).round() as u64;
    let mut calls = JoinSet::new();
    let mut slowed = false;
    for i in 0..count {
        let due = epoch + Duration::from_secs_f64(i as f64 / config.rate);
        tokio::time::sleep_until(due).await;
        if !slowed && due.duration_since(epoch) >= config.slow_from {
            latency_us.store(config.slow.as_micros() as u64, Ordering::Relaxed);
            slowed = true;
        }
        let deadline = Deadline::after(config.deadline);
        let us = deadline
            .instant()
            .duration_since(epoch)
            .as_micros()
            .to_string();
        let Ok(req) = request(&b_uri, Some(&us)) else {
            continue;
        };
        let a = a.clone();
        calls.spawn(async move {
            let call = Deadline::scope(deadline, a.oneshot(req));
            matches!(
                tokio::time::timeout_at(deadline.instant(), call).await,
                Ok(Ok(StatusCode::OK))
            )
        });
    }
    let mut ok = 0;
    let mut failed = 0;
    while let Some(r) = calls.join_next().await {
        if r.unwrap_or(false) {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    // Let B and C finish (or drop) what they still hold.
    tokio::time::sleep(config.slow + Duration::from_millis(200)).await;
    let refused_at = |l: &Option<CallerDeadlineLayer>| l.as_ref().map_or(0, |l| l.stats().refused);
    let run = Run {
        propagate,
        sent: count,
        ok,
        failed,
        b: b_meter.snapshot(refused_at(&b_layer)),
        c: c_meter.snapshot(refused_at(&c_layer)),
    };
    drop((b, c));
    Ok(run)
}

/// Runs the chain without, then with, propagation.
pub async fn run(config: DeadlineConfig) -> io::Result<DeadlineReport> {
    let mut runs = Vec::new();
    for propagate in [false, true] {
        runs.push(run_once(&config, propagate).await?);
    }
    Ok(DeadlineReport { config, runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_runs_account_for_every_request() {
        let config = DeadlineConfig {
            rate: 50.0,
            duration: Duration::from_millis(600),
            slow_from: Duration::from_millis(200),
            ..DeadlineConfig::short()
        };
        let report = run(config).await.unwrap();
        assert_eq!(report.runs.len(), 2);
        for r in &report.runs {
            assert_eq!(r.ok + r.failed, r.sent, "{}", report.table());
            assert!(r.b.calls > 0, "{}", report.table());
        }
        assert!(report.table().contains("without"));
    }
}

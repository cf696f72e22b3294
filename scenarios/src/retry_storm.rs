//! Scenario 4, retry storm: a backend fails every call for a while; a
//! client retrying naively (3 attempts) triples the backend's load exactly
//! when it can least take it, while seawall's retry budget keeps the extra
//! load to its ratio.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::http::Uri;
use seawall_retry::{Backoff, RetryBudgetConfig, RetryLayer};
use tower::{ServiceBuilder, ServiceExt, service_fn};

use crate::load::{HttpClient, OpenLoop, Outcome};
use crate::plot::{Chart, Legend, Series};
use crate::server::Peer;
use crate::stats::Bins;

/// How the client retries.
#[derive(Debug, Clone, PartialEq)]
pub enum Retries {
    /// Up to `max_attempts`, no budget.
    Naive,
    /// Up to `max_attempts`, within this budget.
    Budget(RetryBudgetConfig),
}

impl Retries {
    /// Its name in tables and plots.
    pub fn name(&self) -> String {
        match self {
            Retries::Naive => "naive".into(),
            Retries::Budget(b) => format!("budget {}/req + {}/s", b.ratio, b.min_per_sec),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RetryStormConfig {
    /// Client requests per second.
    pub rate: f64,
    /// The backend fails every call for this long, from the start.
    pub failing: Duration,
    /// Then it answers again for this long.
    pub recovery: Duration,
    /// Attempts per request (the first included).
    pub max_attempts: u32,
    /// The clients compared.
    pub variants: Vec<Retries>,
}

impl RetryStormConfig {
    /// The full run: 300 requests/s, 10 s of failure, 2 s of recovery; naive,
    /// the default budget (0.2/request + 10/s over 10 s) and a 0.1 budget.
    pub fn full() -> Self {
        RetryStormConfig {
            rate: 300.0,
            failing: Duration::from_secs(10),
            recovery: Duration::from_secs(2),
            max_attempts: 3,
            variants: vec![
                Retries::Naive,
                Retries::Budget(RetryBudgetConfig::default()),
                Retries::Budget(RetryBudgetConfig::new().ratio(0.1)),
            ],
        }
    }

    /// A short run for tests: 100 requests/s, 2 s of failure; naive vs a
    /// 0.1 budget with a floor of 1/s (the default floor of 10/s × 10 s
    /// would dominate 200 requests).
    pub fn short() -> Self {
        RetryStormConfig {
            rate: 100.0,
            failing: Duration::from_secs(2),
            recovery: Duration::from_millis(500),
            max_attempts: 3,
            variants: vec![
                Retries::Naive,
                Retries::Budget(RetryBudgetConfig::new().ratio(0.1).min_per_sec(1)),
            ],
        }
    }
}

/// One client's result.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// How it retried.
    pub retries: Retries,
    /// Requests it sent while the backend failed.
    pub requests: usize,
    /// Backend calls those requests made (attempts, counted by the client).
    pub backend_calls: u64,
    /// Calls the backend saw per 250 ms bin, as calls/s: (seconds, rate).
    pub backend_rate: Vec<(f64, f64)>,
    /// Requests that succeeded after the backend recovered.
    pub recovered_ok: usize,
}

impl ClientRun {
    /// Backend calls per client request while the backend failed.
    pub fn amplification(&self) -> f64 {
        self.backend_calls as f64 / self.requests.max(1) as f64
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RetryStormReport {
    /// What ran.
    pub config: RetryStormConfig,
    /// One per variant, in order.
    pub runs: Vec<ClientRun>,
}

impl RetryStormReport {
    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "retry storm: {:.0} requests/s, backend fails 100% for {:.0} s then recovers; {} attempts max, exponential backoff 10 ms x2\n",
            c.rate,
            c.failing.as_secs_f64(),
            c.max_attempts
        );
        out += &format!(
            "{:<24} {:>9} {:>13} {:>13}\n",
            "client", "requests", "backend calls", "amplification"
        );
        for r in &self.runs {
            out += &format!(
                "{:<24} {:>9} {:>13} {:>12.2}x\n",
                r.retries.name(),
                r.requests,
                r.backend_calls,
                r.amplification()
            );
        }
        out
    }

    /// The chart: backend calls/s over time per client.
    pub fn charts(&self) -> Vec<Chart> {
        let mut chart = Chart::new(
            &format!(
                "Retry storm: backend load (fails 100% until {:.0} s)",
                self.config.failing.as_secs_f64()
            ),
            "time (s)",
            "backend calls/s",
        )
        .legend(Legend::MiddleRight);
        for r in &self.runs {
            chart
                .series
                .push(Series::new(r.retries.name(), r.backend_rate.clone()));
        }
        let end = (self.config.failing + self.config.recovery).as_secs_f64();
        chart.series.push(
            Series::new(
                "client requests/s",
                vec![(0.0, self.config.rate), (end, self.config.rate)],
            )
            .dashed(),
        );
        vec![chart]
    }
}

/// Runs every variant, each against a fresh backend.
pub async fn run(config: RetryStormConfig) -> io::Result<RetryStormReport> {
    let mut runs = Vec::new();
    for retries in &config.variants {
        runs.push(run_client(&config, retries.clone()).await?);
    }
    Ok(RetryStormReport { config, runs })
}

#[derive(Clone)]
struct Req {
    seq: u64,
    uri: Uri,
}

async fn run_client(config: &RetryStormConfig, retries: Retries) -> io::Result<ClientRun> {
    let backend = Peer::start(Duration::from_millis(1)).await?;
    backend.set_failing(true);
    let uri: Uri = format!("http://{}/", backend.addr())
        .parse()
        .map_err(io::Error::other)?;
    let total = config.failing + config.recovery;
    let open_loop = OpenLoop {
        rate: config.rate,
        duration: total,
        max_outstanding: 10_000,
        timeout: Duration::from_secs(5),
    };
    let attempts: Arc<Vec<AtomicU32>> =
        Arc::new((0..open_loop.count()).map(|_| AtomicU32::new(0)).collect());

    let builder = RetryLayer::builder()
        .name("storm")
        .max_attempts(config.max_attempts)
        .backoff(Backoff::exponential(Duration::from_millis(10), 2.0).jitter(0.2));
    let layer = match &retries {
        Retries::Naive => builder.no_budget().build(),
        Retries::Budget(b) => builder.budget(b.clone()).build(),
    }
    .map_err(io::Error::other)?;
    let client = HttpClient::new();
    let counts = attempts.clone();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(move |req: Req| {
            let client = client.clone();
            if let Some(n) = counts.get(req.seq as usize) {
                n.fetch_add(1, Ordering::Relaxed);
            }
            async move { client.get_ok(req.uri).await }
        }));

    let start = tokio::time::Instant::now();
    let recover = async {
        tokio::time::sleep(config.failing).await;
        backend.set_failing(false);
    };
    let load = open_loop.run(|seq| {
        let svc = svc.clone();
        let req = Req {
            seq,
            uri: uri.clone(),
        };
        async move {
            match svc.oneshot(req).await {
                Ok(()) => Outcome::Ok,
                Err(_) => Outcome::Failed,
            }
        }
    });
    let ((), samples) = tokio::join!(recover, load);

    let in_storm: Vec<_> = samples.iter().filter(|s| s.due < config.failing).collect();
    let backend_calls = in_storm
        .iter()
        .map(|s| {
            attempts
                .get(s.seq as usize)
                .map_or(0, |n| u64::from(n.load(Ordering::Relaxed)))
        })
        .sum();
    let width = Duration::from_millis(250);
    let mut bins = Bins::new(width, total);
    for at in backend.call_times() {
        bins.push(at.saturating_duration_since(start), ());
    }
    let backend_rate = bins
        .iter()
        .map(|(t, v)| (t, v.len() as f64 / width.as_secs_f64()))
        .collect();
    Ok(ClientRun {
        retries,
        requests: in_storm.len(),
        backend_calls,
        backend_rate,
        recovered_ok: samples
            .iter()
            .filter(|s| s.due >= config.failing && s.outcome == Outcome::Ok)
            .count(),
    })
}

//! Scenario: a slow tail. Every call of two loopback servers takes the
//! median latency, except a random 2% that take 20 times as long. The same
//! closed-loop load runs three times: unprotected, under tower's `Hedge`
//! and under seawall's `HedgeLayer`, both hedging at the live p95; the
//! table gives the latency percentiles each caller saw and the extra load
//! each sent the servers.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use seawall_core::BoxError;
use seawall_hedge::HedgeLayer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use crate::load::HttpClient;
use crate::server::Running;
use crate::stats::{Percentiles, ms};

/// What to run.
#[derive(Debug, Clone)]
pub struct HedgeScenarioConfig {
    /// Calls per run.
    pub calls: u64,
    /// Callers, each making one call at a time.
    pub concurrency: usize,
    /// The servers' usual latency.
    pub median: Duration,
    /// How many times slower a slow call is.
    pub slow_factor: u32,
    /// Which fraction of calls is slow, at random.
    pub slow_fraction: f64,
    /// The percentile both hedges follow.
    pub percentile: f64,
}

impl HedgeScenarioConfig {
    /// The full run: 100 000 calls per run, 32 callers, 10 ms median, 2% at
    /// 200 ms.
    pub fn full() -> Self {
        HedgeScenarioConfig {
            calls: 100_000,
            concurrency: 32,
            median: Duration::from_millis(10),
            slow_factor: 20,
            slow_fraction: 0.02,
            percentile: 95.0,
        }
    }

    /// A short run: 20 000 calls per run.
    pub fn short() -> Self {
        HedgeScenarioConfig {
            calls: 20_000,
            ..HedgeScenarioConfig::full()
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Row {
    /// What stood in front of the servers.
    pub name: String,
    /// Latencies the callers saw.
    pub latency: Percentiles,
    /// Calls the servers received per call made, minus one.
    pub extra_load: f64,
    /// Calls that failed.
    pub errors: u64,
    /// How long the run took.
    pub took: Duration,
    /// What the hedging layer reported, if it says.
    pub note: String,
}

/// The result of a scenario.
#[derive(Debug, Clone)]
pub struct HedgeReport {
    /// What ran.
    pub config: HedgeScenarioConfig,
    /// One row per run.
    pub rows: Vec<Row>,
}

impl HedgeReport {
    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "slow tail: {} calls per run, {} callers, 2 servers; {:.0} ms median, {:.0}% of calls {}x slower; hedges at p{} and 5 below (tower's behind a Buffer, period 1 s)\n",
            c.calls,
            c.concurrency,
            ms(c.median),
            c.slow_fraction * 100.0,
            c.slow_factor,
            c.percentile,
        );
        out += &format!(
            "{:<22} {:>8} {:>8} {:>9} {:>8} {:>9} {:>11} {:>7} {:>7}\n",
            "caller",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "p99/p50",
            "extra load",
            "errors",
            "took s"
        );
        for r in &self.rows {
            let l = &r.latency;
            out += &format!(
                "{:<22} {:>8.1} {:>8.1} {:>9.1} {:>8.1} {:>9.2} {:>10.1}% {:>7} {:>7.1}\n",
                r.name,
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                ms(l.max),
                ms(l.p99) / ms(l.p50).max(1e-9),
                r.extra_load * 100.0,
                r.errors,
                r.took.as_secs_f64(),
            );
        }
        for r in self.rows.iter().filter(|r| !r.note.is_empty()) {
            out += &format!("{}: {}\n", r.name, r.note);
        }
        out
    }
}

/// A server's state: its calls, and which are slow.
#[derive(Debug)]
struct Tail {
    calls: AtomicU64,
    seed: u64,
    median: Duration,
    slow: Duration,
    /// Slow when the call's hash, out of 2^32, is below this.
    threshold: u64,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser: a call number to a uniform 64-bit value.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn tail_call(State(tail): State<Arc<Tail>>) -> &'static str {
    let n = tail.calls.fetch_add(1, Relaxed);
    let slow = (mix(n ^ tail.seed) >> 32) < tail.threshold;
    tokio::time::sleep(if slow { tail.slow } else { tail.median }).await;
    "ok"
}

/// The client side: GETs the servers in turn.
#[derive(Debug, Clone)]
struct Servers {
    client: HttpClient,
    uris: Arc<[Uri]>,
    next: Arc<AtomicUsize>,
}

impl Service<u64> for Servers {
    type Response = ();
    type Error = io::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<(), io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        let i = self.next.fetch_add(1, Relaxed) % self.uris.len();
        let uri = self.uris[i].clone();
        let client = self.client.clone();
        Box::pin(async move { client.get_ok(uri).await })
    }
}

/// tower's hedge policy: every request may be hedged.
#[derive(Debug, Clone, Copy)]
struct Always;

impl tower::hedge::Policy<u64> for Always {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }

    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

/// Drives `svc` with `concurrency` callers until `calls` calls are made;
/// the latencies and the count of errors.
async fn drive<S>(svc: S, calls: u64, concurrency: usize) -> (Vec<Duration>, u64)
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let mut svc = svc.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= calls {
                    break;
                }
                let started = Instant::now();
                let result = match svc.ready().await {
                    Ok(ready) => ready.call(i).await.map_err(Into::into),
                    Err(e) => Err(e.into()),
                };
                match result {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut all = Vec::with_capacity(calls as usize);
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        if let Ok((latencies, e)) = done {
            all.extend(latencies);
            errors += e;
        }
    }
    (all, errors)
}

/// Runs the scenario: three runs on fresh servers.
pub async fn run(config: HedgeScenarioConfig) -> io::Result<HedgeReport> {
    let mut rows = Vec::new();
    // (what runs, the percentile it hedges at): each hedge at the
    // configured percentile and five points lower.
    let p = config.percentile;
    let runs: [(&'static str, u8, f64); 5] = [
        ("no hedging", 0, p),
        ("tower Hedge", 1, p),
        ("seawall HedgeLayer", 2, p),
        ("tower Hedge", 1, p - 5.0),
        ("seawall HedgeLayer", 2, p - 5.0),
    ];
    for (name, run, percentile) in runs {
        let tails: Vec<Arc<Tail>> = (0..2u64)
            .map(|i| {
                Arc::new(Tail {
                    calls: AtomicU64::new(0),
                    // The same draws in every run.
                    seed: 0x5EA_3A11 + i,
                    median: config.median,
                    slow: config.median * config.slow_factor,
                    threshold: (config.slow_fraction.clamp(0.0, 1.0) * 4_294_967_296.0) as u64,
                })
            })
            .collect();
        let mut servers = Vec::new();
        for tail in &tails {
            let router = Router::new()
                .route("/", get(tail_call))
                .with_state(tail.clone());
            servers.push(Running::spawn(router).await?);
        }
        let uris: Vec<Uri> = servers
            .iter()
            .map(|s| {
                format!("http://{}/", s.addr())
                    .parse()
                    .map_err(io::Error::other)
            })
            .collect::<io::Result<_>>()?;
        let backend = Servers {
            client: HttpClient::new(),
            uris: uris.into(),
            next: Arc::default(),
        };
        let started = Instant::now();
        let mut note = String::new();
        let (mut latencies, errors) = match run {
            0 => drive(backend, config.calls, config.concurrency).await,
            1 => {
                let hedge = tower::hedge::Hedge::new(
                    backend,
                    Always,
                    100,
                    (percentile / 100.0) as f32,
                    // Its histogram rotates every period and is read from
                    // the last complete one: a short period, so that it
                    // hedges within a short run too.
                    Duration::from_secs(1),
                );
                // tower's Hedge is not `Clone`: its callers share it (and its
                // histogram) through a Buffer, which hands each caller the
                // Hedge's response future to poll itself.
                let hedge = tower::buffer::Buffer::new(hedge, config.concurrency);
                drive(hedge, config.calls, config.concurrency).await
            }
            _ => {
                let layer = HedgeLayer::builder()
                    .name("scenario")
                    .percentile(percentile)
                    .build()
                    .map_err(io::Error::other)?;
                let out = drive(layer.layer(backend), config.calls, config.concurrency).await;
                let s = layer.stats();
                let window = layer.tracker().stats();
                note = format!(
                    "{} hedges sent, {} won, {} refused by the budget; delay at the end {:.1} ms (its window of first attempts: p50 {:.1} ms, p99 {:.1} ms)",
                    s.hedges_sent,
                    s.hedges_won,
                    s.budget_exhausted,
                    ms(s.delay),
                    ms(window.p50),
                    ms(window.p99),
                );
                out
            }
        };
        let took = started.elapsed();
        let received: u64 = tails.iter().map(|t| t.calls.load(Relaxed)).sum();
        rows.push(Row {
            name: if run == 0 {
                name.to_owned()
            } else {
                format!("{name} p{percentile}")
            },
            latency: Percentiles::of(&mut latencies),
            extra_load: received as f64 / config.calls.max(1) as f64 - 1.0,
            errors,
            took,
            note,
        });
        drop(servers);
    }
    Ok(HedgeReport { config, rows })
}

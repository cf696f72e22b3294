//! Scenario 1, overload: a service with a capacity of `C` concurrent
//! requests offered 1×, 2×, 5× and 10× what it can finish, by an open-loop
//! generator, behind no protection, tower's `LoadShed` + `ConcurrencyLimit`,
//! and seawall's shedder (fixed, probabilistic, adaptive).

use std::io;
use std::time::Duration;

use axum::http::{StatusCode, Uri};

use crate::load::{HttpClient, OpenLoop, Outcome, Sample};
use crate::plot::{Chart, Legend, Series};
use crate::server::{ChildServer, Placement, Protection, Running, WorkSpec, work_app};
use crate::stats::{Bins, Percentiles, ms, quantile};

/// What to run.
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    /// The service's capacity.
    pub spec: WorkSpec,
    /// Offered loads, as multiples of the capacity in requests/s.
    pub loads: Vec<f64>,
    /// The protections compared.
    pub protections: Vec<Protection>,
    /// How long each (protection, load) point offers load.
    pub duration: Duration,
    /// The load of the unloaded baseline (unprotected), as a multiple of capacity.
    pub baseline_load: f64,
    /// The client gives up on a request after this long.
    pub timeout: Duration,
    /// Most requests the client has in flight.
    pub max_outstanding: usize,
    /// Where the server runs.
    pub placement: Placement,
}

impl OverloadConfig {
    /// The full run: `C` = 16, 40 ms of work (400 requests/s), 4 s per point.
    pub fn full(placement: Placement) -> Self {
        OverloadConfig {
            spec: WorkSpec {
                capacity: 16,
                work: Duration::from_millis(40),
            },
            loads: vec![1.0, 2.0, 5.0, 10.0],
            protections: Protection::ALL.to_vec(),
            duration: Duration::from_secs(4),
            baseline_load: 0.1,
            timeout: Duration::from_secs(2),
            max_outstanding: 2000,
            placement,
        }
    }

    /// A short run for tests: 5× only, unprotected vs the fixed shedder, 1.5 s.
    pub fn short(placement: Placement) -> Self {
        OverloadConfig {
            spec: WorkSpec {
                capacity: 8,
                work: Duration::from_millis(40),
            },
            loads: vec![5.0],
            protections: vec![Protection::None, Protection::ShedFixed],
            duration: Duration::from_millis(1500),
            baseline_load: 0.1,
            timeout: Duration::from_secs(3),
            max_outstanding: 1000,
            placement,
        }
    }
}

/// One (protection, load) point.
#[derive(Debug, Clone)]
pub struct Point {
    /// The protection.
    pub protection: Protection,
    /// Offered load as a multiple of capacity.
    pub load: f64,
    /// Offered requests per second.
    pub offered_rps: f64,
    /// Successful requests per second, over the run or, when answers kept
    /// coming after it, until the last one.
    pub goodput_rps: f64,
    /// Latency of admitted requests (answered `200`, failed or timed out;
    /// not refused): a timed-out request counts as the client's timeout.
    pub admitted: Percentiles,
    /// Fraction of requests refused with 503.
    pub rejected: f64,
    /// Fraction of requests that failed otherwise, timed out or were never sent.
    pub failed: f64,
    /// Peak resident memory of the server, KiB (the whole process's when in-process).
    pub peak_memory_kib: Option<u64>,
    /// p99 of admitted requests per 250 ms of the run, by due time: (seconds, ms).
    pub p99_over_time: Vec<(f64, f64)>,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct OverloadReport {
    /// What ran.
    pub config: OverloadConfig,
    /// The unloaded baseline.
    pub baseline: Point,
    /// Every (protection, load) point, in run order.
    pub points: Vec<Point>,
}

impl OverloadReport {
    /// The point for `protection` at `load`.
    pub fn point(&self, protection: Protection, load: f64) -> Option<&Point> {
        self.points
            .iter()
            .find(|p| p.protection == protection && (p.load - load).abs() < 1e-9)
    }

    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let spec = self.config.spec;
        let mut out = format!(
            "overload: capacity {} concurrent x {} ms of work = {:.0} req/s; {:.1} s per point, client timeout {:.1} s\n",
            spec.capacity,
            ms(spec.work),
            spec.capacity_rps(),
            self.config.duration.as_secs_f64(),
            self.config.timeout.as_secs_f64()
        );
        out += &format!(
            "{:<14} {:>5} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>6} {:>6} {:>8}\n",
            "protection",
            "load",
            "offered",
            "goodput",
            "%cap",
            "p50 ms",
            "p99 ms",
            "p999 ms",
            "rej %",
            "fail %",
            "peak MiB"
        );
        for p in std::iter::once(&self.baseline).chain(&self.points) {
            out += &format!(
                "{:<14} {:>4.1}x {:>8.0} {:>8.0} {:>5.0}% {:>8.1} {:>8.1} {:>8.1} {:>5.1}% {:>5.1}% {:>8}\n",
                p.protection.name(),
                p.load,
                p.offered_rps,
                p.goodput_rps,
                100.0 * p.goodput_rps / spec.capacity_rps(),
                ms(p.admitted.p50),
                ms(p.admitted.p99),
                ms(p.admitted.p999),
                100.0 * p.rejected,
                100.0 * p.failed,
                p.peak_memory_kib
                    .map(|k| format!("{:.1}", k as f64 / 1024.0))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        if matches!(self.config.placement, Placement::InProcess) {
            out += "(server in-process: peak memory is the whole process's)\n";
        }
        out
    }

    /// The charts: admitted p99 and goodput against offered load.
    pub fn charts(&self) -> Vec<Chart> {
        let mut p99 = Chart::new(
            "Overload: p99 latency of admitted requests",
            "offered load (x capacity)",
            "p99 (ms, log)",
        )
        .log_y()
        .legend(Legend::MiddleRight);
        let mut goodput = Chart::new(
            "Overload: goodput",
            "offered load (x capacity)",
            "successful req/s",
        )
        .legend(Legend::LowerRight);
        for &protection in &self.config.protections {
            let pts = self.points.iter().filter(|p| p.protection == protection);
            p99.series.push(Series::new(
                protection.name(),
                pts.clone()
                    .map(|p| (p.load, ms(p.admitted.p99).max(0.1)))
                    .collect(),
            ));
            goodput.series.push(Series::new(
                protection.name(),
                pts.map(|p| (p.load, p.goodput_rps)).collect(),
            ));
        }
        let (lo, hi) = self.load_range();
        let bound = 2.0 * ms(self.baseline.admitted.p99);
        p99.series
            .push(Series::new("2x unloaded p99", vec![(lo, bound), (hi, bound)]).dashed());
        let cap = self.config.spec.capacity_rps();
        goodput
            .series
            .push(Series::new("capacity", vec![(lo, cap), (hi, cap)]).dashed());
        let mut charts = vec![p99, goodput];
        // Over time at 2x (or the highest load below): the unprotected
        // queue grows until the client's timeout, the shedders stay flat.
        let at = self
            .config
            .loads
            .iter()
            .copied()
            .filter(|l| *l <= 2.0)
            .fold(0.0, f64::max);
        if at > 0.0 {
            let mut over_time = Chart::new(
                &format!("Overload at {at}x: p99 of admitted requests per 250 ms"),
                "time (s)",
                "p99 (ms, log)",
            )
            .log_y();
            for p in self.points.iter().filter(|p| (p.load - at).abs() < 1e-9) {
                over_time.series.push(Series::new(
                    p.protection.name(),
                    p.p99_over_time
                        .iter()
                        .map(|&(t, v)| (t, v.max(0.1)))
                        .collect(),
                ));
            }
            let end = self.config.duration.as_secs_f64();
            let timeout = ms(self.config.timeout);
            over_time
                .series
                .push(Series::new("client timeout", vec![(0.0, timeout), (end, timeout)]).dashed());
            charts.push(over_time);
        }
        charts
    }

    fn load_range(&self) -> (f64, f64) {
        let lo = self
            .config
            .loads
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let hi = self.config.loads.iter().copied().fold(0.0, f64::max);
        (lo.min(hi), hi)
    }
}

/// Runs every point; each gets a fresh server (a fresh child process when
/// placed in one).
pub async fn run(config: OverloadConfig) -> io::Result<OverloadReport> {
    let baseline = run_point(&config, Protection::None, config.baseline_load).await?;
    let mut points = Vec::new();
    for &protection in &config.protections {
        for &load in &config.loads {
            points.push(run_point(&config, protection, load).await?);
        }
    }
    Ok(OverloadReport {
        config,
        baseline,
        points,
    })
}

async fn run_point(
    config: &OverloadConfig,
    protection: Protection,
    load: f64,
) -> io::Result<Point> {
    let spec = config.spec;
    let open_loop = OpenLoop {
        rate: load * spec.capacity_rps(),
        duration: config.duration,
        max_outstanding: config.max_outstanding,
        timeout: config.timeout,
    };
    let (samples, peak) = match &config.placement {
        Placement::InProcess => {
            let server =
                Running::spawn(work_app(protection, spec).map_err(io::Error::other)?).await?;
            let samples = offer(&open_loop, server.addr()).await?;
            (samples, crate::server::peak_memory_kib(std::process::id()))
        }
        Placement::Child(exe) => {
            let server = ChildServer::spawn(exe, protection, spec).await?;
            let samples = offer(&open_loop, server.addr()).await;
            let peak = server.peak_memory_kib();
            server.stop().await;
            (samples?, peak)
        }
    };
    Ok(summarise(protection, load, &open_loop, &samples, peak))
}

async fn offer(open_loop: &OpenLoop, addr: std::net::SocketAddr) -> io::Result<Vec<Sample>> {
    let uri: Uri = format!("http://{addr}/work")
        .parse()
        .map_err(io::Error::other)?;
    let client = HttpClient::new();
    // Warm up: a few sequential calls open a connection and fault in the
    // server's code before anything is measured.
    for _ in 0..5 {
        let _ = client.get(uri.clone()).await;
    }
    Ok(open_loop
        .run(|_| {
            let client = client.clone();
            let uri = uri.clone();
            async move {
                match client.get(uri).await {
                    Ok(StatusCode::OK) => Outcome::Ok,
                    Ok(StatusCode::SERVICE_UNAVAILABLE) => Outcome::Rejected,
                    _ => Outcome::Failed,
                }
            }
        })
        .await)
}

fn summarise(
    protection: Protection,
    load: f64,
    open_loop: &OpenLoop,
    samples: &[Sample],
    peak_memory_kib: Option<u64>,
) -> Point {
    let total = samples.len().max(1) as f64;
    // Successful answers per second of the span they arrived in: the run,
    // or longer when answers kept coming after the last request was sent.
    let span = samples
        .iter()
        .filter(|s| s.outcome == Outcome::Ok)
        .map(|s| s.due + s.latency)
        .max()
        .unwrap_or_default()
        .max(open_loop.duration);
    let count = |o: Outcome| samples.iter().filter(|s| s.outcome == o).count();
    let mut admitted: Vec<Duration> = samples
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Ok | Outcome::Failed | Outcome::TimedOut))
        .map(|s| s.latency)
        .collect();
    let mut bins = Bins::new(Duration::from_millis(250), open_loop.duration);
    for s in samples {
        if matches!(s.outcome, Outcome::Ok | Outcome::Failed | Outcome::TimedOut) {
            bins.push(s.due, s.latency);
        }
    }
    let p99_over_time = bins
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(t, v)| {
            let mut v = v.clone();
            v.sort_unstable();
            (t, ms(quantile(&v, 0.99)))
        })
        .collect();
    Point {
        p99_over_time,
        protection,
        load,
        offered_rps: open_loop.rate,
        goodput_rps: count(Outcome::Ok) as f64 / span.as_secs_f64(),
        admitted: Percentiles::of(&mut admitted),
        rejected: count(Outcome::Rejected) as f64 / total,
        failed: (count(Outcome::Failed) + count(Outcome::TimedOut) + count(Outcome::Dropped))
            as f64
            / total,
        peak_memory_kib,
    }
}

//! Scenario 3, slow peer: one peer's latency grows 10× over a ramp; the
//! adaptive timeout's deadline follows it, clamped at `max`, and calls
//! slower than `max` are cut there.

use std::io;
use std::time::Duration;

use axum::http::Uri;
use seawall_timeout::AdaptiveTimeoutLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use crate::load::{HttpClient, OpenLoop, Outcome};
use crate::plot::{Chart, Legend, Series};
use crate::server::Peer;
use crate::stats::{Bins, ms, quantile};

/// What to run.
#[derive(Debug, Clone)]
pub struct SlowPeerConfig {
    /// The peer's latency at the start.
    pub start_latency: Duration,
    /// How many times slower it gets.
    pub growth: f64,
    /// Over how long it gets slower (linearly).
    pub ramp: Duration,
    /// How long it then stays at its slowest.
    pub hold: Duration,
    /// Calls per second.
    pub rate: f64,
    /// The deadline's percentile.
    pub percentile: f64,
    /// The deadline's multiplier.
    pub multiplier: f64,
    /// The deadline's floor.
    pub min: Duration,
    /// The deadline's ceiling.
    pub max: Duration,
    /// The adaptive timeout's window.
    pub window: Duration,
}

impl SlowPeerConfig {
    /// The full run: 10 ms to 100 ms over 30 s (a minute compressed
    /// to half), then 5 s at 100 ms; p99 × 1.5 within 10..90 ms.
    pub fn full() -> Self {
        SlowPeerConfig {
            start_latency: Duration::from_millis(10),
            growth: 10.0,
            ramp: Duration::from_secs(30),
            hold: Duration::from_secs(5),
            rate: 100.0,
            percentile: 99.0,
            multiplier: 1.5,
            min: Duration::from_millis(10),
            max: Duration::from_millis(90),
            window: Duration::from_secs(3),
        }
    }

    /// A short run: the same shape over 4 s + 1 s.
    pub fn short() -> Self {
        SlowPeerConfig {
            ramp: Duration::from_secs(4),
            hold: Duration::from_secs(1),
            window: Duration::from_secs(1),
            ..SlowPeerConfig::full()
        }
    }

    fn latency_at(&self, t: Duration) -> Duration {
        let f = (t.as_secs_f64() / self.ramp.as_secs_f64()).min(1.0);
        self.start_latency
            .mul_f64((1.0 + (self.growth - 1.0) * f).clamp(0.0, 1e6))
    }

    fn total(&self) -> Duration {
        self.ramp + self.hold
    }
}

/// One time bin.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Its start, seconds.
    pub at: f64,
    /// The peer's set latency at its middle.
    pub peer_latency: Duration,
    /// p50 of the calls that succeeded in it.
    pub observed_p50: Duration,
    /// p99 of the calls that succeeded in it.
    pub observed_p99: Duration,
    /// The adaptive deadline at its end.
    pub deadline: Duration,
    /// Calls in it.
    pub calls: usize,
    /// Calls cut by the deadline in it.
    pub timeouts: usize,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct SlowPeerReport {
    /// What ran.
    pub config: SlowPeerConfig,
    /// One row per 500 ms.
    pub rows: Vec<Row>,
    /// The deadline sampled every 100 ms: (seconds, deadline).
    pub deadline_trace: Vec<(f64, Duration)>,
}

impl SlowPeerReport {
    /// The table printed by the runner (one line per 2.5 s).
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "slow peer: latency {} ms -> {} ms over {:.0} s, then {:.0} s; {:.0} calls/s; deadline = clamp(p{} x {}, {} ms, {} ms)\n",
            c.start_latency.as_millis(),
            c.start_latency.mul_f64(c.growth).as_millis(),
            c.ramp.as_secs_f64(),
            c.hold.as_secs_f64(),
            c.rate,
            c.percentile,
            c.multiplier,
            c.min.as_millis(),
            c.max.as_millis()
        );
        out += &format!(
            "{:>6} {:>10} {:>10} {:>10} {:>12} {:>7} {:>9}\n",
            "t (s)", "peer ms", "ok p50 ms", "ok p99 ms", "deadline ms", "calls", "timeouts"
        );
        let every = (self.rows.len() / 14).max(1);
        for r in self.rows.iter().step_by(every) {
            out += &format!(
                "{:>6.1} {:>10.1} {:>10.1} {:>10.1} {:>12.1} {:>7} {:>9}\n",
                r.at,
                ms(r.peer_latency),
                ms(r.observed_p50),
                ms(r.observed_p99),
                ms(r.deadline),
                r.calls,
                r.timeouts
            );
        }
        let (calls, timeouts) = self
            .rows
            .iter()
            .fold((0, 0), |(c, t), r| (c + r.calls, t + r.timeouts));
        let top = self
            .deadline_trace
            .iter()
            .map(|d| d.1)
            .max()
            .unwrap_or_default();
        out += &format!(
            "highest deadline {:.1} ms (max {} ms); {timeouts} of {calls} calls cut\n",
            ms(top),
            c.max.as_millis()
        );
        out
    }

    /// The chart: set latency, observed p99 and the deadline over time.
    pub fn charts(&self) -> Vec<Chart> {
        let mut chart = Chart::new(
            "Slow peer: the adaptive deadline follows latency, clamped at max",
            "time (s)",
            "ms",
        )
        .legend(Legend::LowerRight);
        chart.series.push(Series::new(
            "peer latency (set)",
            self.rows
                .iter()
                .map(|r| (r.at, ms(r.peer_latency)))
                .collect(),
        ));
        chart.series.push(Series::new(
            "observed p50 of successful calls",
            self.rows
                .iter()
                .filter(|r| r.calls > r.timeouts)
                .map(|r| (r.at, ms(r.observed_p50)))
                .collect(),
        ));
        chart.series.push(Series::new(
            "observed p99 of successful calls",
            self.rows
                .iter()
                .filter(|r| r.calls > r.timeouts)
                .map(|r| (r.at, ms(r.observed_p99)))
                .collect(),
        ));
        chart.series.push(Series::new(
            "adaptive deadline",
            self.deadline_trace
                .iter()
                .map(|&(t, d)| (t, ms(d)))
                .collect(),
        ));
        let end = self.config.total().as_secs_f64();
        let max = ms(self.config.max);
        chart
            .series
            .push(Series::new("max", vec![(0.0, max), (end, max)]).dashed());
        vec![chart]
    }
}

/// Runs the scenario.
pub async fn run(config: SlowPeerConfig) -> io::Result<SlowPeerReport> {
    let peer = Peer::start(config.start_latency).await?;
    let uri: Uri = format!("http://{}/", peer.addr())
        .parse()
        .map_err(io::Error::other)?;
    let timeout = AdaptiveTimeoutLayer::builder()
        .name("slow-peer")
        .percentile(config.percentile)
        .multiplier(config.multiplier)
        .min(config.min)
        .max(config.max)
        .base(config.max)
        .min_samples(30)
        .window(config.window)
        .build()
        .map_err(io::Error::other)?;
    let client = HttpClient::new();
    let svc = ServiceBuilder::new()
        .layer(timeout.clone())
        .service(service_fn(move |uri: Uri| {
            let client = client.clone();
            async move { client.get_ok(uri).await }
        }));
    let open_loop = OpenLoop {
        rate: config.rate,
        duration: config.total(),
        max_outstanding: 10_000,
        timeout: Duration::from_secs(5),
    };
    let start = tokio::time::Instant::now();
    let total = config.total();
    let mut trace = Vec::new();
    let drive = async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while start.elapsed() < total {
            tick.tick().await;
            let t = start.elapsed();
            peer.set_latency(config.latency_at(t));
            trace.push((t.as_secs_f64(), timeout.deadline()));
        }
    };
    let load = open_loop.run(|_| {
        let svc = svc.clone();
        let uri = uri.clone();
        async move {
            match svc.oneshot(uri).await {
                Ok(()) => Outcome::Ok,
                Err(_) => Outcome::Failed,
            }
        }
    });
    let ((), samples) = tokio::join!(drive, load);

    let width = Duration::from_millis(500);
    let mut bins = Bins::new(width, total);
    for s in &samples {
        bins.push(s.due, *s);
    }
    let rows = bins
        .iter()
        .map(|(t, v)| {
            let mut ok: Vec<Duration> = v
                .iter()
                .filter(|s| s.outcome == Outcome::Ok)
                .map(|s| s.latency)
                .collect();
            ok.sort_unstable();
            let end = t + width.as_secs_f64();
            Row {
                at: t,
                peer_latency: config
                    .latency_at(Duration::from_secs_f64(t + width.as_secs_f64() / 2.0)),
                observed_p50: quantile(&ok, 0.5),
                observed_p99: quantile(&ok, 0.99),
                deadline: trace
                    .iter()
                    .take_while(|(at, _)| *at <= end)
                    .last()
                    .map(|d| d.1)
                    .unwrap_or_default(),
                calls: v.len(),
                timeouts: v.iter().filter(|s| s.outcome != Outcome::Ok).count(),
            }
        })
        .collect();
    Ok(SlowPeerReport {
        config,
        rows,
        deadline_trace: trace,
    })
}

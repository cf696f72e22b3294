//! Scenario 2, dead peer: a client spreads calls over 3 peers; one goes
//! down (connection refused), then hangs (accepts, never answers), then
//! recovers. Without protection the client waits on the hanging peer until
//! its own timeout; with a keyed breaker over a keyed adaptive timeout
//! (seawall's per-peer layers) the bad peer is isolated after a few calls
//! and no call waits longer than the adaptive timeout's `max`.

use std::io;
use std::time::Duration;

use axum::http::Uri;
use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, TripPolicy};
use seawall_core::{BoxError, Rejection};
use seawall_timeout::AdaptiveTimeoutLayer;
use tower::{ServiceBuilder, ServiceExt, service_fn};

use crate::load::{HttpClient, OpenLoop, Outcome, Sample};
use crate::plot::{Chart, Legend, Series};
use crate::server::Peer;
use crate::stats::{Bins, Percentiles, ms, quantile};

/// What to run.
#[derive(Debug, Clone)]
pub struct DeadPeerConfig {
    /// How many peers (the last one goes bad).
    pub peers: usize,
    /// How long a healthy peer takes per call.
    pub latency: Duration,
    /// Calls per second over all peers (round-robin).
    pub rate: f64,
    /// All healthy, from the start.
    pub healthy: Duration,
    /// Then the bad peer refuses connections for this long.
    pub down: Duration,
    /// Then it accepts and never answers for this long.
    pub hang: Duration,
    /// Then it serves again for this long.
    pub recovered: Duration,
    /// The client's own limit per call (the only one without protection).
    pub client_timeout: Duration,
    /// Consecutive failures that trip a peer's breaker.
    pub failure_threshold: u32,
    /// How long a tripped breaker stays open before probing.
    pub open_duration: Duration,
    /// The adaptive timeout's floor.
    pub timeout_min: Duration,
    /// The adaptive timeout's ceiling.
    pub timeout_max: Duration,
    /// Run the unprotected client too.
    pub compare_unprotected: bool,
}

impl DeadPeerConfig {
    /// The full run: 150 calls/s, 4 s healthy, 6 s down, 6 s hanging, 8 s recovered.
    pub fn full() -> Self {
        DeadPeerConfig {
            peers: 3,
            latency: Duration::from_millis(5),
            rate: 150.0,
            healthy: Duration::from_secs(4),
            down: Duration::from_secs(6),
            hang: Duration::from_secs(6),
            recovered: Duration::from_secs(8),
            client_timeout: Duration::from_secs(3),
            failure_threshold: 5,
            open_duration: Duration::from_secs(1),
            timeout_min: Duration::from_millis(50),
            timeout_max: Duration::from_millis(300),
            compare_unprotected: true,
        }
    }

    /// A short run for tests (protected only, generous deadlines): 5.5 s.
    pub fn short() -> Self {
        DeadPeerConfig {
            peers: 3,
            latency: Duration::from_millis(2),
            rate: 60.0,
            healthy: Duration::from_millis(1000),
            down: Duration::from_millis(1500),
            hang: Duration::from_millis(1500),
            recovered: Duration::from_millis(1500),
            client_timeout: Duration::from_secs(10),
            failure_threshold: 5,
            open_duration: Duration::from_millis(300),
            timeout_min: Duration::from_secs(1),
            timeout_max: Duration::from_secs(2),
            compare_unprotected: false,
        }
    }

    fn down_at(&self) -> Duration {
        self.healthy
    }
    fn hang_at(&self) -> Duration {
        self.healthy + self.down
    }
    fn recover_at(&self) -> Duration {
        self.healthy + self.down + self.hang
    }
    fn total(&self) -> Duration {
        self.recover_at() + self.recovered
    }
}

/// The result of one client (protected or not).
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// With the keyed breaker and adaptive timeout.
    pub protected: bool,
    /// Per peer: (calls, failed or refused).
    pub per_peer: Vec<(usize, usize)>,
    /// Latency of every call.
    pub latency: Percentiles,
    /// Calls that reached the bad peer after it went down and before its
    /// breaker first refused one (`None`: never refused).
    pub calls_before_isolation: Option<usize>,
    /// From the bad peer going down to its breaker's first refusal.
    pub time_to_isolate: Option<Duration>,
    /// Longest call to the bad peer while it hung.
    pub longest_hung_call: Duration,
    /// From the bad peer's recovery to its first successful call.
    pub time_to_reuse: Option<Duration>,
    /// p99 latency of all calls per 250 ms bin: (seconds, ms).
    pub p99_over_time: Vec<(f64, f64)>,
    /// The bad peer's failed-or-refused fraction per 250 ms bin.
    pub bad_errors_over_time: Vec<(f64, f64)>,
}

impl ClientRun {
    /// Failed or refused calls of all healthy peers.
    pub fn healthy_errors(&self) -> usize {
        let n = self.per_peer.len();
        self.per_peer[..n.saturating_sub(1)]
            .iter()
            .map(|p| p.1)
            .sum()
    }

    /// Calls to all healthy peers.
    pub fn healthy_calls(&self) -> usize {
        let n = self.per_peer.len();
        self.per_peer[..n.saturating_sub(1)]
            .iter()
            .map(|p| p.0)
            .sum()
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct DeadPeerReport {
    /// What ran.
    pub config: DeadPeerConfig,
    /// One per client: unprotected first when compared.
    pub runs: Vec<ClientRun>,
}

impl DeadPeerReport {
    /// The protected client's run.
    pub fn protected(&self) -> Option<&ClientRun> {
        self.runs.iter().find(|r| r.protected)
    }

    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "dead peer: {} peers, {:.0} calls/s, peer {} down at {:.1}s, hangs at {:.1}s, recovers at {:.1}s, end {:.1}s\n\
             protected = keyed breaker (consecutive {} failures, open {} ms) over keyed adaptive timeout (p99 x 2, {}..{} ms); client timeout {} ms\n",
            c.peers,
            c.rate,
            c.peers.saturating_sub(1),
            c.down_at().as_secs_f64(),
            c.hang_at().as_secs_f64(),
            c.recover_at().as_secs_f64(),
            c.total().as_secs_f64(),
            c.failure_threshold,
            c.open_duration.as_millis(),
            c.timeout_min.as_millis(),
            c.timeout_max.as_millis(),
            c.client_timeout.as_millis(),
        );
        out += &format!(
            "{:<11} {:>16} {:>9} {:>9} {:>9} {:>12} {:>10} {:>11} {:>10}\n",
            "client",
            "errors per peer",
            "p99 ms",
            "p999 ms",
            "max ms",
            "isolated in",
            "calls",
            "hung max ms",
            "reused in"
        );
        for r in &self.runs {
            let per_peer: Vec<String> = r
                .per_peer
                .iter()
                .map(|(n, e)| format!("{:.0}%", 100.0 * *e as f64 / (*n).max(1) as f64))
                .collect();
            out += &format!(
                "{:<11} {:>16} {:>9.1} {:>9.1} {:>9.1} {:>12} {:>10} {:>11.1} {:>10}\n",
                if r.protected { "seawall" } else { "none" },
                per_peer.join("/"),
                ms(r.latency.p99),
                ms(r.latency.p999),
                ms(r.latency.max),
                r.time_to_isolate
                    .map(|d| format!("{:.0} ms", ms(d)))
                    .unwrap_or_else(|| "never".into()),
                r.calls_before_isolation
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                ms(r.longest_hung_call),
                r.time_to_reuse
                    .map(|d| format!("{:.0} ms", ms(d)))
                    .unwrap_or_else(|| "never".into()),
            );
        }
        out
    }

    /// The charts: client p99 over time, and the bad peer's error rate.
    pub fn charts(&self) -> Vec<Chart> {
        let c = &self.config;
        let phases = format!(
            "down {:.0}s, hangs {:.0}s, back {:.0}s",
            c.down_at().as_secs_f64(),
            c.hang_at().as_secs_f64(),
            c.recover_at().as_secs_f64()
        );
        let mut p99 = Chart::new(
            &format!("Dead peer ({phases}): client p99 per 250 ms"),
            "time (s)",
            "p99 (ms, log)",
        )
        .log_y();
        let mut errors = Chart::new(
            &format!("Dead peer ({phases}): bad peer's failed or refused calls"),
            "time (s)",
            "fraction of its calls",
        )
        .legend(Legend::MiddleRight);
        for r in &self.runs {
            let name = if r.protected {
                "keyed breaker + adaptive timeout"
            } else {
                "no protection"
            };
            p99.series.push(Series::new(
                name,
                r.p99_over_time
                    .iter()
                    .map(|&(t, v)| (t, v.max(0.1)))
                    .collect(),
            ));
            errors
                .series
                .push(Series::new(name, r.bad_errors_over_time.clone()));
        }
        let end = c.total().as_secs_f64();
        let max = ms(c.timeout_max);
        p99.series
            .push(Series::new("adaptive timeout max", vec![(0.0, max), (end, max)]).dashed());
        vec![p99, errors]
    }
}

#[derive(Clone)]
struct PeerReq {
    peer: usize,
    uri: Uri,
}

/// Runs the scenario (unprotected first, when compared).
pub async fn run(config: DeadPeerConfig) -> io::Result<DeadPeerReport> {
    if config.peers < 2 {
        return Err(io::Error::other(
            "the dead-peer scenario needs at least 2 peers",
        ));
    }
    let mut runs = Vec::new();
    if config.compare_unprotected {
        runs.push(run_client(&config, false).await?);
    }
    runs.push(run_client(&config, true).await?);
    Ok(DeadPeerReport { config, runs })
}

async fn run_client(config: &DeadPeerConfig, protected: bool) -> io::Result<ClientRun> {
    let mut peers = Vec::new();
    for _ in 0..config.peers {
        peers.push(Peer::start(config.latency).await?);
    }
    let uris: Vec<Uri> = peers
        .iter()
        .map(|p| format!("http://{}/", p.addr()).parse())
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let bad_index = config.peers - 1;
    let Some(mut bad) = peers.pop() else {
        return Err(io::Error::other("no peers"));
    };

    let client = HttpClient::new();
    let inner = service_fn(move |req: PeerReq| {
        let client = client.clone();
        async move { client.get_ok(req.uri).await }
    });
    let breaker = KeyedBreakerLayer::new(
        |r: &PeerReq| r.peer,
        &BreakerConfig::new()
            .name("peers")
            .policy(TripPolicy::consecutive_failures(config.failure_threshold))
            .open_duration(config.open_duration)
            .into(),
    )
    .map_err(io::Error::other)?;
    let timeout = AdaptiveTimeoutLayer::builder()
        .name("peers")
        .percentile(99.0)
        .multiplier(2.0)
        .min(config.timeout_min)
        .max(config.timeout_max)
        .base(config.timeout_max)
        .min_samples(20)
        .window(Duration::from_secs(5))
        .build_keyed(|r: &PeerReq| r.peer)
        .map_err(io::Error::other)?;
    let svc = ServiceBuilder::new()
        .layer(breaker)
        .layer(timeout)
        .service(inner.clone());

    let open_loop = OpenLoop {
        rate: config.rate,
        duration: config.total(),
        max_outstanding: 10_000,
        timeout: config.client_timeout,
    };
    let peer_count = config.peers;
    let faults = async {
        tokio::time::sleep(config.down_at()).await;
        bad.down().await;
        tokio::time::sleep(config.down).await;
        bad.hang().await?;
        tokio::time::sleep(config.hang).await;
        bad.serve().await?;
        Ok::<_, io::Error>(())
    };
    let load = open_loop.run(|seq| {
        let peer = seq as usize % peer_count;
        let req = PeerReq {
            peer,
            uri: uris[peer].clone(),
        };
        let svc = svc.clone();
        let inner = inner.clone();
        async move {
            let result: Result<(), BoxError> = if protected {
                svc.oneshot(req).await
            } else {
                inner.oneshot(req).await.map_err(BoxError::from)
            };
            match result {
                Ok(()) => Outcome::Ok,
                Err(e) if matches!(Rejection::find(&*e), Some(Rejection::CircuitOpen(_))) => {
                    Outcome::Rejected
                }
                Err(_) => Outcome::Failed,
            }
        }
    });
    let (faulted, samples) = tokio::join!(faults, load);
    faulted?;
    drop(peers);
    Ok(summarise(config, protected, bad_index, &samples))
}

fn summarise(
    config: &DeadPeerConfig,
    protected: bool,
    bad: usize,
    samples: &[Sample],
) -> ClientRun {
    let peer_of = |s: &Sample| s.seq as usize % config.peers;
    let is_error = |s: &Sample| s.outcome != Outcome::Ok;
    let mut per_peer = vec![(0, 0); config.peers];
    for s in samples {
        let p = &mut per_peer[peer_of(s)];
        p.0 += 1;
        p.1 += usize::from(is_error(s));
    }
    let mut all: Vec<Duration> = samples.iter().map(|s| s.latency).collect();

    let mut bad_calls: Vec<&Sample> = samples.iter().filter(|s| peer_of(s) == bad).collect();
    bad_calls.sort_by_key(|s| s.due);
    let down_at = config.down_at();
    let after_down: Vec<&&Sample> = bad_calls.iter().filter(|s| s.due >= down_at).collect();
    let first_refusal = after_down
        .iter()
        .position(|s| s.outcome == Outcome::Rejected);
    let calls_before_isolation = first_refusal.map(|i| {
        after_down[..i]
            .iter()
            .filter(|s| s.outcome != Outcome::Rejected)
            .count()
    });
    let time_to_isolate =
        first_refusal.map(|i| (after_down[i].due + after_down[i].latency).saturating_sub(down_at));
    let longest_hung_call = bad_calls
        .iter()
        .filter(|s| s.due >= config.hang_at() && s.due < config.recover_at())
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    let time_to_reuse = bad_calls
        .iter()
        .filter(|s| s.due >= config.recover_at() && s.outcome == Outcome::Ok)
        .map(|s| (s.due + s.latency).saturating_sub(config.recover_at()))
        .min();

    let width = Duration::from_millis(250);
    let mut lat_bins = Bins::new(width, config.total());
    let mut err_bins = Bins::new(width, config.total());
    for s in samples {
        lat_bins.push(s.due, s.latency);
        if peer_of(s) == bad {
            err_bins.push(s.due, is_error(s));
        }
    }
    let p99_over_time = lat_bins
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(t, v)| {
            let mut v = v.clone();
            v.sort_unstable();
            (t, ms(quantile(&v, 0.99)))
        })
        .collect();
    let bad_errors_over_time = err_bins
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(t, v)| (t, v.iter().filter(|e| **e).count() as f64 / v.len() as f64))
        .collect();
    ClientRun {
        protected,
        per_peer,
        latency: Percentiles::of(&mut all),
        calls_before_isolation,
        time_to_isolate,
        longest_hung_call,
        time_to_reuse,
        p99_over_time,
        bad_errors_over_time,
    }
}

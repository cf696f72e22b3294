//! Chaos in a stack: three peers on 127.0.0.1, `seawall_chaos::ChaosLayer`
//! injecting errors into 30% of one peer's calls and 500 ms of latency into
//! every call of another, under the client stack: peer selection with a
//! breaker per peer, a per-peer adaptive timeout, retries within a budget,
//! and a fallback. The same load, the same faults, without the stack, for
//! comparison.
//!
//! From the outside in (the facade's client stack, with peer selection in
//! the breaker's place and a fallback on top):
//!
//! ```text
//! Fallback(on failure: a degraded answer)
//!   Retry(3 attempts, exponential backoff, budget 0.2/request + 10/s)
//!     Buffer
//!       PeerSelect(preferred peer = seq % 3; a breaker per peer, failure rate over 2 s)
//!         per peer: AdaptiveTimeout(p99 x 2, 50..250 ms) -> Chaos -> HTTP client
//! ```
//!
//! Chaos is on from `chaos_from` to `chaos_until` (switched through its
//! handles), so the run shows isolation, then recovery.

use std::io;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Uri;
use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, PeerSelect, State, TripPolicy};
use seawall_chaos::{ChaosHandle, ChaosLayer};
use seawall_core::BoxError;
use seawall_fallback::{FallbackLayer, FallbackOn};
use seawall_retry::{Backoff, RetryBudgetConfig, RetryLayer};
use seawall_timeout::AdaptiveTimeoutLayer;
use tokio::time::Instant;
use tower::buffer::Buffer;
use tower::util::BoxCloneService;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

use crate::load::{HttpClient, OpenLoop, Outcome, Sample};
use crate::plot::{Chart, Legend, Series};
use crate::server::Peer;
use crate::stats::{Bins, Percentiles, ms};

/// The peers: 0 healthy, 1 erroring, 2 slow.
pub const PEERS: usize = 3;
/// The peer whose calls fail at `error_rate` while chaos is on.
pub const ERRORING: usize = 1;
/// The peer whose calls take `latency` more while chaos is on.
pub const SLOW: usize = 2;

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosStackConfig {
    /// Client requests per second.
    pub rate: f64,
    /// How long the load runs.
    pub duration: Duration,
    /// Chaos is switched on at this time…
    pub chaos_from: Duration,
    /// …and off at this one.
    pub chaos_until: Duration,
    /// Share of the erroring peer's calls that fail.
    pub error_rate: f64,
    /// Latency added to every call of the slow peer.
    pub latency: Duration,
    /// The peers' own latency.
    pub peer_latency: Duration,
    /// The retry budget.
    pub budget: RetryBudgetConfig,
    /// Most attempts per request.
    pub max_attempts: u32,
    /// How long a breaker stays open.
    pub open_duration: Duration,
    /// The client gives up on a request after this long.
    pub client_timeout: Duration,
}

impl ChaosStackConfig {
    /// The full run: 150 requests/s for 24 s, chaos from 4 s to 16 s.
    pub fn full() -> Self {
        ChaosStackConfig {
            rate: 150.0,
            duration: Duration::from_secs(24),
            chaos_from: Duration::from_secs(4),
            chaos_until: Duration::from_secs(16),
            error_rate: 0.3,
            latency: Duration::from_millis(500),
            peer_latency: Duration::from_millis(5),
            budget: RetryBudgetConfig::default(),
            max_attempts: 3,
            open_duration: Duration::from_secs(2),
            client_timeout: Duration::from_secs(3),
        }
    }

    /// A short run for tests: 100 requests/s for 6 s, chaos from 1 s to 5 s.
    pub fn short() -> Self {
        ChaosStackConfig {
            rate: 100.0,
            duration: Duration::from_secs(6),
            chaos_from: Duration::from_secs(1),
            chaos_until: Duration::from_secs(5),
            ..ChaosStackConfig::full()
        }
    }

    /// The most attempts per request the budget allows over a whole run of
    /// `requests`: `1 + ratio`, plus the budget's reserve (`min_per_sec`
    /// retries a second, whatever the traffic, each counting for `ttl`)
    /// over the run and one `ttl` more, spread over the requests.
    pub fn amplification_bound(&self, requests: u64) -> f64 {
        let span = self.duration + self.budget.ttl;
        let reserve = f64::from(self.budget.min_per_sec) * span.as_secs_f64();
        1.0 + self.budget.ratio + reserve / requests.max(1) as f64
    }
}

/// Which client ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Each request to its preferred peer, once; only the client's timeout.
    Bare,
    /// The stack of the module docs.
    Stack,
}

impl Client {
    /// Its name in tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            Client::Bare => "no protection",
            Client::Stack => "seawall stack",
        }
    }
}

/// How a request ended, from the caller's side.
const ANSWERED: u8 = 1;
const FALLBACK: u8 = 2;

/// One client's run.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// The client.
    pub client: Client,
    /// Requests sent.
    pub requests: u64,
    /// Answered by a peer.
    pub answered: u64,
    /// Answered by the fallback.
    pub fallbacks: u64,
    /// Errors that reached the caller (failed, timed out, never sent).
    pub errors: u64,
    /// Latency of every request, from its due time.
    pub latency: Percentiles,
    /// Attempts sent to any peer.
    pub attempts: u64,
    /// Attempts per request, over the requests due while chaos was on.
    pub amplification_in_chaos: f64,
    /// Requests due while chaos was on.
    pub requests_in_chaos: u64,
    /// Attempts that reached each peer while chaos was on (by send time).
    pub peer_attempts_in_chaos: [u64; PEERS],
    /// Attempts that reached each peer, per second: (s, count).
    pub peer_attempts: [Vec<(f64, f64)>; PEERS],
    /// Failed attempts of each peer, per second.
    pub peer_failures: [Vec<(f64, f64)>; PEERS],
    /// Attempts per request, per second (by due time).
    pub amplification: Vec<(f64, f64)>,
    /// Fallback answers per second (by due time).
    pub fallbacks_per_s: Vec<(f64, f64)>,
    /// Errors reaching the caller per second (by due time).
    pub errors_per_s: Vec<(f64, f64)>,
    /// Each peer's breaker every 100 ms: 0 closed, 0.5 half-open, 1 open.
    pub breaker_state: [Vec<(f64, f64)>; PEERS],
    /// Each peer's breaker trips.
    pub trips: [u64; PEERS],
    /// Time from chaos on to each peer's first trip.
    pub isolated_in: [Option<Duration>; PEERS],
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct ChaosStackReport {
    /// What ran.
    pub config: ChaosStackConfig,
    /// The bare client, then the stack.
    pub runs: Vec<ClientRun>,
}

impl ChaosStackReport {
    /// The run of `client`.
    pub fn run(&self, client: Client) -> Option<&ClientRun> {
        self.runs.iter().find(|r| r.client == client)
    }

    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "chaos stack: {} peers ({} ms), {:.0} req/s for {:.0} s; chaos {:.0}..{:.0} s: peer {ERRORING} fails {:.0}% of calls, peer {SLOW} +{} ms\n",
            PEERS,
            ms(c.peer_latency),
            c.rate,
            c.duration.as_secs_f64(),
            c.chaos_from.as_secs_f64(),
            c.chaos_until.as_secs_f64(),
            100.0 * c.error_rate,
            ms(c.latency),
        );
        out += &format!(
            "{:<14} {:>7} {:>9} {:>7} {:>8} {:>8} {:>9} {:>13} {:>21} {:>12} {:>17}\n",
            "client",
            "ok %",
            "fallback",
            "err %",
            "p50 ms",
            "p99 ms",
            "max ms",
            "att/req chaos",
            "peer calls in chaos",
            "trips",
            "isolated in (ms)"
        );
        for r in &self.runs {
            let n = r.requests.max(1) as f64;
            let iso = r
                .isolated_in
                .map(|d| d.map_or_else(|| "-".into(), |d| format!("{:.0}", ms(d))));
            out += &format!(
                "{:<14} {:>6.1}% {:>8.1}% {:>6.1}% {:>8.1} {:>8.1} {:>9.1} {:>13.2} {:>21} {:>12} {:>17}\n",
                r.client.name(),
                100.0 * r.answered as f64 / n,
                100.0 * r.fallbacks as f64 / n,
                100.0 * r.errors as f64 / n,
                ms(r.latency.p50),
                ms(r.latency.p99),
                ms(r.latency.max),
                r.amplification_in_chaos,
                format!(
                    "{}/{}/{}",
                    r.peer_attempts_in_chaos[0],
                    r.peer_attempts_in_chaos[1],
                    r.peer_attempts_in_chaos[2]
                ),
                format!("{}/{}/{}", r.trips[0], r.trips[1], r.trips[2]),
                format!("{}/{}/{}", iso[0], iso[1], iso[2]),
            );
        }
        if let Some(s) = self.run(Client::Stack) {
            out += &format!(
                "seawall stack: {:.3} attempts/request over the run; the retry budget's bound {:.2} (1 + ratio {} + reserve {}/s over {} s, over {} requests)\n",
                s.attempts as f64 / s.requests.max(1) as f64,
                c.amplification_bound(s.requests),
                c.budget.ratio,
                c.budget.min_per_sec,
                (c.duration + c.budget.ttl).as_secs(),
                s.requests,
            );
        }
        out
    }

    /// One plot per mechanism, each named: breaker, routing, retry, fallback.
    pub fn plots(&self) -> Vec<(&'static str, Vec<Chart>)> {
        let c = &self.config;
        let (from, until, end) = (
            c.chaos_from.as_secs_f64(),
            c.chaos_until.as_secs_f64(),
            c.duration.as_secs_f64(),
        );
        let names = [
            "peer 0 (healthy)",
            "peer 1 (30% errors)",
            "peer 2 (+500 ms)",
        ];
        let chaos_band = |top: f64| {
            Series::new(
                "chaos on",
                vec![
                    (0.0, 0.0),
                    (from, 0.0),
                    (from, top),
                    (until, top),
                    (until, 0.0),
                    (end, 0.0),
                ],
            )
            .dashed()
        };
        let mut plots = Vec::new();
        let Some(stack) = self.run(Client::Stack) else {
            return plots;
        };
        // Breaker: each peer's state, and its failed attempts per second.
        let mut state = Chart::new(
            "Breaker: each peer's state (0 closed, 0.5 half-open, 1 open)",
            "time (s)",
            "state",
        )
        .legend(Legend::MiddleRight);
        let mut failures = Chart::new(
            "Breaker: failed attempts per peer per second (seawall stack)",
            "time (s)",
            "failed attempts/s",
        );
        for (i, name) in names.iter().enumerate() {
            state
                .series
                .push(Series::new(*name, stack.breaker_state[i].clone()));
            failures
                .series
                .push(Series::new(*name, stack.peer_failures[i].clone()));
        }
        state.series.push(chaos_band(1.0));
        plots.push(("chaos-stack-breaker", vec![state, failures]));
        // Routing: attempts per peer per second, with and without the stack.
        let mut routing = Vec::new();
        for r in &self.runs {
            let mut chart = Chart::new(
                &format!(
                    "Routing: attempts sent to each peer per second ({})",
                    r.client.name()
                ),
                "time (s)",
                "attempts/s",
            )
            .legend(Legend::MiddleRight);
            for (i, name) in names.iter().enumerate() {
                chart
                    .series
                    .push(Series::new(*name, r.peer_attempts[i].clone()));
            }
            chart.series.push(chaos_band(c.rate / PEERS as f64));
            routing.push(chart);
        }
        plots.push(("chaos-stack-routing", routing));
        // Retry: attempts per request per second, and the budget's bound.
        let mut retry = Chart::new(
            "Retry: attempts per request, per second (by due time)",
            "time (s)",
            "attempts/request",
        )
        .legend(Legend::MiddleRight);
        for r in &self.runs {
            retry
                .series
                .push(Series::new(r.client.name(), r.amplification.clone()));
        }
        let ratio = 1.0 + c.budget.ratio;
        let attempts = f64::from(c.max_attempts);
        retry
            .series
            .push(Series::new("1 + budget ratio", vec![(0.0, ratio), (end, ratio)]).dashed());
        retry
            .series
            .push(Series::new("max attempts", vec![(0.0, attempts), (end, attempts)]).dashed());
        plots.push(("chaos-stack-retry", vec![retry]));
        // Fallback: fallback answers and errors reaching the caller.
        let mut fallback = Chart::new(
            "Fallback: answers from the fallback, and errors reaching the caller, per second",
            "time (s)",
            "requests/s",
        )
        .legend(Legend::MiddleRight);
        for r in &self.runs {
            if r.client == Client::Stack {
                fallback.series.push(Series::new(
                    format!("{}: fallback answers", r.client.name()),
                    r.fallbacks_per_s.clone(),
                ));
            }
            fallback.series.push(Series::new(
                format!("{}: errors", r.client.name()),
                r.errors_per_s.clone(),
            ));
        }
        fallback.series.push(chaos_band(c.rate * 0.15));
        plots.push(("chaos-stack-fallback", vec![fallback]));
        plots
    }
}

/// A client request: its number and its preferred peer.
#[derive(Debug, Clone, Copy)]
struct Call {
    seq: u64,
    prefer: usize,
}

/// What the client answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Peer,
    Fallback,
}

/// Attempts sent to a peer and their outcomes: (send time, failed).
type Log = Arc<Mutex<Vec<(Instant, bool)>>>;

/// One attempt sent to a peer, logged when dropped: a failure unless it
/// answered (an attempt cancelled by the timeout above is one).
struct Attempt {
    log: Log,
    sent: Instant,
    failed: bool,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Ok(mut log) = self.log.lock() {
            log.push((self.sent, self.failed));
        }
    }
}

/// Runs the bare client, then the stack, each against fresh peers.
pub async fn run(config: ChaosStackConfig) -> io::Result<ChaosStackReport> {
    let mut runs = Vec::new();
    for client in [Client::Bare, Client::Stack] {
        runs.push(run_client(&config, client).await?);
    }
    Ok(ChaosStackReport { config, runs })
}

async fn run_client(config: &ChaosStackConfig, client: Client) -> io::Result<ClientRun> {
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        peers.push(Peer::start(config.peer_latency).await?);
    }
    let uris: Vec<Uri> = peers
        .iter()
        .map(|p| format!("http://{}/", p.addr()).parse())
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let open_loop = OpenLoop {
        rate: config.rate,
        duration: config.duration,
        max_outstanding: 10_000,
        timeout: config.client_timeout,
    };
    let count = open_loop.count() as usize;
    let attempts: Arc<Vec<AtomicU32>> = Arc::new((0..count).map(|_| AtomicU32::new(0)).collect());
    let answers: Arc<Vec<AtomicU8>> = Arc::new((0..count).map(|_| AtomicU8::new(0)).collect());
    let logs: Vec<Log> = (0..PEERS).map(|_| Log::default()).collect();

    // Per peer: chaos (off until the run switches it on) over the HTTP client,
    // counted above chaos, so an injected fault counts as an attempt sent.
    let http = HttpClient::new();
    let mut handles: Vec<ChaosHandle> = Vec::new();
    let mut peer_services = Vec::new();
    for (i, uri) in uris.iter().enumerate() {
        let chaos = match i {
            ERRORING => ChaosLayer::builder()
                .name("erroring")
                .seed(1)
                .error_rate(config.error_rate),
            SLOW => ChaosLayer::builder()
                .name("slow")
                .seed(2)
                .latency_rate(1.0)
                .latency(config.latency),
            _ => ChaosLayer::builder().name("healthy").seed(3),
        }
        .enabled(false)
        .build()
        .map_err(io::Error::other)?;
        handles.push(chaos.handle());
        let http = http.clone();
        let uri = uri.clone();
        let inner = chaos.layer(service_fn(move |_: Call| {
            let http = http.clone();
            let uri = uri.clone();
            async move { http.get_ok(uri).await.map(|()| Answer::Peer) }
        }));
        let log = logs[i].clone();
        let attempts = attempts.clone();
        peer_services.push(service_fn(move |call: Call| {
            let inner = inner.clone();
            let log = log.clone();
            if let Some(n) = attempts.get(call.seq as usize) {
                n.fetch_add(1, Ordering::Relaxed);
            }
            async move {
                // Logged when dropped: a timeout above cancels this future.
                let mut attempt = Attempt {
                    log,
                    sent: Instant::now(),
                    failed: true,
                };
                let result = inner.oneshot(call).await;
                attempt.failed = result.is_err();
                result
            }
        }));
    }

    let breakers = KeyedBreakerLayer::new(
        |c: &Call| c.prefer,
        &BreakerConfig::new()
            .name("peers")
            .policy(TripPolicy::failure_rate_time(
                Duration::from_secs(2),
                0.2,
                10,
            ))
            .open_duration(config.open_duration)
            .into(),
    )
    .map_err(io::Error::other)?;

    let start = Instant::now();
    let chaos = {
        let handles = handles.clone();
        let (from, until) = (config.chaos_from, config.chaos_until);
        tokio::spawn(async move {
            tokio::time::sleep_until(start + from).await;
            handles.iter().for_each(ChaosHandle::enable);
            tokio::time::sleep_until(start + until).await;
            handles.iter().for_each(ChaosHandle::disable);
        })
    };
    let sampler = {
        let breakers = breakers.clone();
        let end = config.duration;
        tokio::spawn(async move {
            let mut states: [Vec<(f64, f64)>; PEERS] = Default::default();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let t = start.elapsed();
                if t > end {
                    return states;
                }
                for (i, s) in states.iter_mut().enumerate() {
                    let v = match breakers.key_stats(&i).map(|s| s.state) {
                        Some(State::Open | State::ForcedOpen) => 1.0,
                        Some(State::HalfOpen) => 0.5,
                        _ => 0.0,
                    };
                    s.push((t.as_secs_f64(), v));
                }
            }
        })
    };

    let samples = match client {
        Client::Bare => {
            let services = peer_services.clone();
            open_loop
                .run(|seq| {
                    let call = Call {
                        seq,
                        prefer: seq as usize % PEERS,
                    };
                    let svc = services[call.prefer].clone();
                    let answers = answers.clone();
                    async move { finish(&answers, seq, svc.oneshot(call).await) }
                })
                .await
        }
        Client::Stack => {
            let mut timed = Vec::new();
            for (i, svc) in peer_services.into_iter().enumerate() {
                let timeout = AdaptiveTimeoutLayer::builder()
                    .name(["peer0", "peer1", "peer2"][i])
                    .percentile(99.0)
                    .multiplier(2.0)
                    .min(Duration::from_millis(50))
                    .max(Duration::from_millis(250))
                    .base(Duration::from_millis(250))
                    .min_samples(20)
                    .window(Duration::from_secs(5))
                    .build()
                    .map_err(io::Error::other)?;
                timed.push((i, timeout.layer(svc)));
            }
            let select = PeerSelect::builder(&breakers, |c: &Call| Some(c.prefer))
                .peers(timed)
                .build()
                .map_err(io::Error::other)?;
            let retry = RetryLayer::builder()
                .name("peers")
                .max_attempts(config.max_attempts)
                .backoff(Backoff::exponential(Duration::from_millis(10), 2.0).jitter(0.2))
                .budget(config.budget.clone())
                .build()
                .map_err(io::Error::other)?;
            let fallback = FallbackLayer::builder()
                .name("degraded")
                .on(FallbackOn::Failure)
                .answer_with(degraded)
                .build()
                .map_err(io::Error::other)?;
            // Boxed: erasing the future's type here, where every type is
            // concrete, spares the compiler a higher-ranked `Send` proof in
            // the generator's generic code.
            let svc: BoxCloneService<Call, Answer, BoxError> = BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(fallback)
                    .layer(retry)
                    .service(Buffer::new(select, 1024)),
            );
            open_loop
                .run(|seq| {
                    let call = Call {
                        seq,
                        prefer: seq as usize % PEERS,
                    };
                    let svc = svc.clone();
                    let answers = answers.clone();
                    async move { finish(&answers, seq, svc.oneshot(call).await) }
                })
                .await
        }
    };
    chaos.abort();
    let breaker_state = sampler.await.unwrap_or_default();
    drop(peers);

    Ok(summarise(
        config,
        client,
        &samples,
        &attempts,
        &answers,
        &logs,
        start,
        breaker_state,
        &breakers,
    ))
}

/// The fallback's answer: a degraded one, whatever went wrong.
fn degraded(_: Call, _: BoxError) -> Result<Answer, BoxError> {
    Ok(Answer::Fallback)
}

fn finish<E>(answers: &[AtomicU8], seq: u64, result: Result<Answer, E>) -> Outcome {
    let (mark, outcome) = match result {
        Ok(Answer::Peer) => (ANSWERED, Outcome::Ok),
        Ok(Answer::Fallback) => (FALLBACK, Outcome::Ok),
        Err(_) => (0, Outcome::Failed),
    };
    if let Some(a) = answers.get(seq as usize) {
        a.store(mark, Ordering::Relaxed);
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    config: &ChaosStackConfig,
    client: Client,
    samples: &[Sample],
    attempts: &[AtomicU32],
    answers: &[AtomicU8],
    logs: &[Log],
    start: Instant,
    breaker_state: [Vec<(f64, f64)>; PEERS],
    breakers: &KeyedBreakerLayer<impl Sized, usize>,
) -> ClientRun {
    let second = Duration::from_secs(1);
    let end = config.duration;
    let in_chaos = |at: Duration| at >= config.chaos_from && at < config.chaos_until;
    let answer = |seq: u64| {
        answers
            .get(seq as usize)
            .map_or(0, |a| a.load(Ordering::Relaxed))
    };
    let tries = |seq: u64| {
        attempts
            .get(seq as usize)
            .map_or(0, |a| u64::from(a.load(Ordering::Relaxed)))
    };
    let mut requests = Bins::new(second, end);
    let mut sent = Bins::new(second, end);
    let mut fallbacks = Bins::new(second, end);
    let mut errors = Bins::new(second, end);
    let (mut answered, mut fell_back, mut failed) = (0, 0, 0);
    let (mut chaos_requests, mut chaos_attempts) = (0u64, 0u64);
    for s in samples {
        requests.push(s.due, ());
        sent.push(s.due, tries(s.seq));
        if in_chaos(s.due) {
            chaos_requests += 1;
            chaos_attempts += tries(s.seq);
        }
        match (s.outcome, answer(s.seq)) {
            (Outcome::Ok, FALLBACK) => {
                fell_back += 1;
                fallbacks.push(s.due, ());
            }
            (Outcome::Ok, _) => answered += 1,
            _ => {
                failed += 1;
                errors.push(s.due, ());
            }
        }
    }
    let per_s = |b: &Bins<()>| b.iter().map(|(t, v)| (t, v.len() as f64)).collect();
    let amplification = requests
        .iter()
        .zip(sent.iter())
        .filter(|((_, r), _)| !r.is_empty())
        .map(|((t, r), (_, a))| (t, a.iter().sum::<u64>() as f64 / r.len() as f64))
        .collect();
    let mut peer_attempts: [Vec<(f64, f64)>; PEERS] = Default::default();
    let mut peer_failures: [Vec<(f64, f64)>; PEERS] = Default::default();
    let mut peer_attempts_in_chaos = [0; PEERS];
    for (i, log) in logs.iter().enumerate() {
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        let mut all = Bins::new(second, end);
        let mut bad = Bins::new(second, end);
        for (at, failed) in log {
            let at = at.saturating_duration_since(start);
            all.push(at, ());
            if failed {
                bad.push(at, ());
            }
            if in_chaos(at) {
                peer_attempts_in_chaos[i] += 1;
            }
        }
        peer_attempts[i] = per_s(&all);
        peer_failures[i] = per_s(&bad);
    }
    let mut trips = [0; PEERS];
    let mut isolated_in = [None; PEERS];
    for i in 0..PEERS {
        if client == Client::Stack {
            trips[i] = breakers.key_stats(&i).map_or(0, |s| s.trips);
            isolated_in[i] = breaker_state[i]
                .iter()
                .find(|(t, v)| *v >= 1.0 && *t >= config.chaos_from.as_secs_f64())
                .map(|(t, _)| Duration::from_secs_f64(t - config.chaos_from.as_secs_f64()));
        }
    }
    let mut latency: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    ClientRun {
        client,
        requests: samples.len() as u64,
        answered,
        fallbacks: fell_back,
        errors: failed,
        latency: Percentiles::of(&mut latency),
        attempts: (0..samples.len() as u64).map(tries).sum(),
        amplification_in_chaos: chaos_attempts as f64 / chaos_requests.max(1) as f64,
        requests_in_chaos: chaos_requests,
        peer_attempts_in_chaos,
        peer_attempts,
        peer_failures,
        amplification,
        fallbacks_per_s: per_s(&fallbacks),
        errors_per_s: per_s(&errors),
        breaker_state: if client == Client::Stack {
            breaker_state
        } else {
            Default::default()
        },
        trips,
        isolated_in,
    }
}

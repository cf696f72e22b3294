//! Scenario 6, key churn: a keyed budget (one rate limit per client) with
//! honest clients at their limit, an abuser over its limit, and an attacker
//! that sends ten times the map's capacity in keys nobody has seen, hoping
//! to push the abuser's throttled key out of the map so that it comes back
//! with a full burst, to slow every lookup down, or to grow the process.
//!
//! The budget runs on paused tokio time, advanced by hand in steps, so the
//! admitted counts are exact and the same on every machine; the time a
//! lookup takes is measured on the wall clock around each honest call, and
//! the memory is the process's resident set before and after.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::{Duration, Instant as WallClock};

use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
use seawall_core::KeyMapConfig;
use tower::{Layer, Service, ServiceExt};

use crate::stats::Percentiles;

/// What to run.
#[derive(Debug, Clone)]
pub struct ChurnConfig {
    /// The keyed budget's capacity (keys held at once).
    pub capacity: usize,
    /// Honest clients, each calling at exactly its limit.
    pub honest: u64,
    /// Each key's limit: `rate` calls per `per`.
    pub rate: u32,
    /// See `rate`.
    pub per: Duration,
    /// Each key's burst.
    pub burst: u32,
    /// Calls the abuser's own key sends per step (far over its limit).
    pub abuser_per_step: u32,
    /// Fresh keys the attacker sends over the whole run, as a multiple of
    /// `capacity`.
    pub churn: usize,
    /// Virtual time the run covers.
    pub duration: Duration,
    /// Virtual time between steps.
    pub step: Duration,
}

impl ChurnConfig {
    /// The full run: 10 000 keys, 100 honest clients at 10/s, a minute of
    /// virtual time, 100 000 fresh keys.
    pub fn full() -> Self {
        ChurnConfig {
            capacity: 10_000,
            honest: 100,
            rate: 10,
            per: Duration::from_secs(1),
            burst: 10,
            abuser_per_step: 100,
            churn: 10,
            duration: Duration::from_secs(60),
            step: Duration::from_millis(100),
        }
    }

    /// A short run: 1 000 keys, 20 honest clients, 10 s of virtual time.
    pub fn short() -> Self {
        ChurnConfig {
            capacity: 1_000,
            honest: 20,
            duration: Duration::from_secs(10),
            ..ChurnConfig::full()
        }
    }

    /// The bypass as first measured: one call per hour per key, burst 1,
    /// 100 keys, an abuser calling every 36 s with 100 fresh keys mixed into
    /// each of its rounds, for an hour.
    pub fn bypass() -> Self {
        ChurnConfig {
            capacity: 100,
            honest: 10,
            rate: 1,
            per: Duration::from_secs(3600),
            burst: 1,
            abuser_per_step: 1,
            churn: 100,
            duration: Duration::from_secs(3600),
            step: Duration::from_secs(36),
        }
    }

    fn steps(&self) -> u64 {
        (self.duration.as_nanos() / self.step.as_nanos().max(1)) as u64
    }

    /// What one key may be admitted over the run: its burst, then its rate.
    pub fn allowance(&self) -> u64 {
        let periods = self.duration.as_secs_f64() / self.per.as_secs_f64();
        u64::from(self.burst) + (periods * f64::from(self.rate)) as u64
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct ChurnReport {
    /// The config it ran with.
    pub config: ChurnConfig,
    /// Calls the honest clients sent, and how many were admitted.
    pub honest_sent: u64,
    /// See `honest_sent`.
    pub honest_admitted: u64,
    /// Calls the abuser's own key sent, and how many were admitted.
    pub abuser_sent: u64,
    /// See `abuser_sent`.
    pub abuser_admitted: u64,
    /// Fresh keys sent, and how many of their calls were admitted.
    pub junk_sent: u64,
    /// See `junk_sent`.
    pub junk_admitted: u64,
    /// Wall time of an honest call (lookup, budget, inner call), median and
    /// 99th percentile, in nanoseconds.
    pub honest_p50_ns: u64,
    /// See `honest_p50_ns`.
    pub honest_p99_ns: u64,
    /// Resident memory the run added, in bytes (`None` where unmeasurable).
    pub rss_growth: Option<u64>,
    /// Keys held at the end.
    pub keys: usize,
}

impl ChurnReport {
    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "key churn: capacity {}, {} honest clients at {} per {:?} (burst {}), abuser {}/step, {} fresh keys over {:?}",
            c.capacity,
            c.honest,
            c.rate,
            c.per,
            c.burst,
            c.abuser_per_step,
            c.churn * c.capacity,
            c.duration
        );
        let _ = writeln!(
            out,
            "| who | sent | admitted | allowed |\n|-----|------|----------|---------|"
        );
        let _ = writeln!(
            out,
            "| honest clients | {} | {} | {} |",
            self.honest_sent, self.honest_admitted, self.honest_sent
        );
        let _ = writeln!(
            out,
            "| abuser's key | {} | {} | {} |",
            self.abuser_sent,
            self.abuser_admitted,
            c.allowance()
        );
        let _ = writeln!(
            out,
            "| fresh keys | {} | {} | one each while they fit |",
            self.junk_sent, self.junk_admitted
        );
        let rss = self.rss_growth.map_or("n/a".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / 1048576.0)
        });
        let _ = writeln!(
            out,
            "honest call: p50 {} ns, p99 {} ns; keys held at the end {}; resident memory +{rss}",
            self.honest_p50_ns, self.honest_p99_ns, self.keys
        );
        out
    }
}

/// A service that answers at once.
#[derive(Clone, Copy)]
struct Echo;

impl Service<u64> for Echo {
    type Response = ();
    type Error = Infallible;
    type Future = Ready<Result<(), Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        ready(Ok(()))
    }
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Runs the scenario on a current-thread runtime with paused time.
pub fn run(config: ChurnConfig) -> Result<ChurnReport, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(drive(config))
}

async fn drive(config: ChurnConfig) -> Result<ChurnReport, String> {
    // The default idle TTL (5 minutes).
    let budget = KeyedBudgetConfig::from(
        BudgetConfig::new()
            .name("churn")
            .rate(config.rate)
            .per(config.per)
            .burst(config.burst),
    )
    .keys(KeyMapConfig::new().capacity(config.capacity));
    let layer =
        KeyedBudgetLayer::new(|client: &u64| *client, &budget).map_err(|e| e.to_string())?;
    let mut svc = layer.layer(Echo);
    let rss_before = resident_bytes();

    let abuser = config.honest;
    let mut next_junk = 1u64 << 40;
    let junk_total = (config.churn * config.capacity) as u64;
    let steps = config.steps();
    // Honest clients call at exactly their rate: one call every per/rate.
    let honest_every = config.per / config.rate.max(1);
    let mut report = ChurnReport {
        config: config.clone(),
        honest_sent: 0,
        honest_admitted: 0,
        abuser_sent: 0,
        abuser_admitted: 0,
        junk_sent: 0,
        junk_admitted: 0,
        honest_p50_ns: 0,
        honest_p99_ns: 0,
        rss_growth: None,
        keys: 0,
    };
    let mut honest_times = Vec::new();
    let mut since_honest = honest_every;
    for step in 0..steps {
        if since_honest >= honest_every {
            since_honest = Duration::ZERO;
            for client in 0..config.honest {
                let started = WallClock::now();
                let ok = call(&mut svc, client).await;
                honest_times.push(started.elapsed());
                report.honest_sent += 1;
                report.honest_admitted += u64::from(ok);
            }
        }
        for _ in 0..config.abuser_per_step {
            report.abuser_sent += 1;
            report.abuser_admitted += u64::from(call(&mut svc, abuser).await);
        }
        // The attacker spreads its fresh keys evenly over the run.
        let due = junk_total * (step + 1) / steps;
        while report.junk_sent < due {
            report.junk_sent += 1;
            report.junk_admitted += u64::from(call(&mut svc, next_junk).await);
            next_junk += 1;
        }
        tokio::time::advance(config.step).await;
        since_honest += config.step;
    }
    let times = Percentiles::of(&mut honest_times);
    report.honest_p50_ns = times.p50.as_nanos() as u64;
    report.honest_p99_ns = times.p99.as_nanos() as u64;
    report.rss_growth = rss_before
        .zip(resident_bytes())
        .map(|(before, after)| after.saturating_sub(before));
    report.keys = layer.stats().keys;
    Ok(report)
}

async fn call<S>(svc: &mut S, client: u64) -> bool
where
    S: Service<u64, Response = ()>,
{
    match svc.ready().await {
        Ok(svc) => svc.call(client).await.is_ok(),
        Err(_) => false,
    }
}

//! Scenarios where the in-flight limit cannot be known in advance: the
//! service's capacity falls to a quarter for a while ([`run`]), or was
//! never known and the fixed limit was guessed 4× too high
//! ([`run_unknown`]).
//!
//! # The service
//!
//! `N` execution slots (a semaphore, like a pool of workers or a share of
//! CPUs); a request takes one for `work`. Capacity is `N / work`
//! requests/s. A capacity drop takes three quarters of the slots away
//! ([`Slowdown::Slots`]: a noisy neighbour takes the CPUs, a dependency's
//! pool shrinks): a request still needs `work`, but with `N` in flight each
//! waits for one of the `N / 4` slots left, so at full concurrency every
//! request takes 4× as long and the service finishes a quarter as many.
//! [`Slowdown::Work`] is the other reading of "4× slower": every request's
//! own work takes `4 × work` at any concurrency; no limit can then bring
//! latency under `4 × work`, and the best a limit can do is not cut below
//! `N` (see `docs/results.md`).
//!
//! # The guards
//!
//! [`Guard`]: none; tower's `LoadShed` over `ConcurrencyLimit`; seawall's
//! `ShedLayer` with a fixed limit; `ShedLayer` with AIMD, Gradient2 or
//! Vegas, each started from a given limit, within `1..=max`, sampled in
//! 100 ms windows. The open-loop load is steady; the drop is timed from the
//! start of the load.

use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use seawall_core::ConfigError;
use seawall_shed::{Aimd, Gradient2, Limit, ShedLayer, Vegas};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tower::ServiceBuilder;

use crate::load::{HttpClient, OpenLoop, Outcome, Sample};
use crate::plot::{Chart, Legend, Series};
use crate::server::{Running, refuse};
use crate::stats::{Bins, Percentiles, ms, quantile};

/// How a capacity drop slows the service down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slowdown {
    /// Three quarters of the slots go away; each request still takes
    /// `work` once it has one (so at full concurrency, 4× as long).
    Slots,
    /// Every request's work takes 4× as long, at any concurrency.
    Work,
}

/// Which algorithm guards the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardKind {
    /// Nothing: requests queue for a slot.
    None,
    /// tower's `LoadShed` over `ConcurrencyLimit(limit)`.
    Tower,
    /// `ShedLayer` with `Limit::Fixed(limit)`.
    Fixed,
    /// `ShedLayer` with AIMD from `limit`.
    Aimd,
    /// `ShedLayer` with Gradient2 from `limit`.
    Gradient2,
    /// `ShedLayer` with Vegas from `limit`.
    Vegas,
}

/// A guard: its algorithm and its (initial) limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// The algorithm.
    pub kind: GuardKind,
    /// The fixed limit, or the adaptive limit's starting point.
    pub limit: usize,
    /// The adaptive limit's highest value (unused by the others).
    pub max: usize,
}

impl Guard {
    /// A guard of `kind` at (or from) `limit`, adaptive ones within `1..=max`.
    pub fn new(kind: GuardKind, limit: usize, max: usize) -> Self {
        Guard { kind, limit, max }
    }

    /// Its name in tables and plots, e.g. `fixed 32`, `vegas`.
    pub fn name(&self) -> String {
        match self.kind {
            GuardKind::None => "none".into(),
            GuardKind::Tower => format!("tower {}", self.limit),
            GuardKind::Fixed => format!("fixed {}", self.limit),
            GuardKind::Aimd => format!("aimd from {}", self.limit),
            GuardKind::Gradient2 => format!("gradient2 from {}", self.limit),
            GuardKind::Vegas => format!("vegas from {}", self.limit),
        }
    }

    /// The shedder's limit, for the `ShedLayer` guards.
    fn shed_limit(&self, work: Duration) -> Option<Limit> {
        let (l, max) = (self.limit, self.max.max(self.limit));
        Some(match self.kind {
            GuardKind::None | GuardKind::Tower => return None,
            GuardKind::Fixed => Limit::Fixed(l),
            // AIMD backs off on slow windows: its `timeout` is the latency
            // objective, 2× the work (the default 5 s would never fire here).
            GuardKind::Aimd => Limit::Aimd(
                Aimd::new()
                    .initial(l)
                    .min(1)
                    .max(max)
                    .timeout(work.saturating_mul(2)),
            ),
            GuardKind::Gradient2 => Limit::Gradient2(Gradient2::new().initial(l).min(1).max(max)),
            GuardKind::Vegas => Limit::Vegas(Vegas::new().initial(l).min(1).max(max)),
        })
    }
}

/// The sampling window of the adaptive guards.
pub const WINDOW: Duration = Duration::from_millis(100);

/// The capacity-drop run.
#[derive(Debug, Clone)]
pub struct DropConfig {
    /// Execution slots before and after the drop.
    pub slots: usize,
    /// Each request's work.
    pub work: Duration,
    /// Offered load, as a multiple of the original capacity.
    pub load: f64,
    /// Load before the drop.
    pub before: Duration,
    /// How long capacity stays at a quarter.
    pub during: Duration,
    /// Load after capacity recovers.
    pub after: Duration,
    /// How the drop slows the service.
    pub slowdown: Slowdown,
    /// The guards compared, one fresh server each.
    pub guards: Vec<Guard>,
    /// The client gives up on a request after this long.
    pub timeout: Duration,
    /// Most requests the client has in flight.
    pub max_outstanding: usize,
}

/// Capacity falls to `1 / DROP_FACTOR` during the drop.
pub const DROP_FACTOR: usize = 4;

impl DropConfig {
    /// The full run: 32 slots × 40 ms (800 requests/s) offered 640/s; 5 s,
    /// then 10 s at a quarter of the capacity, then 10 s recovered; every
    /// guard at (or from) 32, adaptive ones up to 128.
    pub fn full() -> Self {
        let n = 32;
        DropConfig {
            slots: n,
            work: Duration::from_millis(40),
            load: 0.8,
            before: Duration::from_secs(5),
            during: Duration::from_secs(10),
            after: Duration::from_secs(10),
            slowdown: Slowdown::Slots,
            guards: [
                GuardKind::None,
                GuardKind::Tower,
                GuardKind::Fixed,
                GuardKind::Aimd,
                GuardKind::Gradient2,
                GuardKind::Vegas,
            ]
            .into_iter()
            .map(|k| Guard::new(k, n, 4 * n))
            .collect(),
            timeout: Duration::from_secs(2),
            max_outstanding: 4000,
        }
    }

    /// [`full`](Self::full) with the other reading of the drop:
    /// [`Slowdown::Work`], every request 4× slower at any concurrency.
    pub fn full_work() -> Self {
        DropConfig {
            slowdown: Slowdown::Work,
            ..DropConfig::full()
        }
    }

    /// A short run for tests: 32 slots × 40 ms, 1 s + 3 s dropped + 1 s,
    /// the fixed shedder against `adaptive`.
    pub fn short(adaptive: GuardKind) -> Self {
        let n = 32;
        DropConfig {
            slots: n,
            work: Duration::from_millis(40),
            before: Duration::from_secs(1),
            during: Duration::from_secs(3),
            after: Duration::from_secs(1),
            guards: vec![
                Guard::new(GuardKind::Fixed, n, 4 * n),
                Guard::new(adaptive, n, 4 * n),
            ],
            timeout: Duration::from_secs(3),
            max_outstanding: 2000,
            ..DropConfig::full()
        }
    }

    /// Requests per second the service finishes with all its slots.
    pub fn capacity_rps(&self) -> f64 {
        self.slots as f64 / self.work.as_secs_f64()
    }

    fn total(&self) -> Duration {
        self.before + self.during + self.after
    }
}

/// A summary of one phase of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    /// Successful answers per second that arrived in the phase.
    pub goodput_rps: f64,
    /// Latency of the admitted requests due in the phase (answered, failed
    /// or timed out; not refused): a timed-out one counts as the timeout.
    pub admitted: Percentiles,
    /// Fraction of the requests due in the phase that were refused.
    pub shed: f64,
    /// Fraction of the requests due in the phase that failed, timed out or
    /// were never sent.
    pub failed: f64,
}

/// One guard's run.
#[derive(Debug, Clone)]
pub struct GuardRun {
    /// The guard.
    pub guard: Guard,
    /// Before, during and after the drop (one phase, the whole run, for
    /// [`run_unknown`]).
    pub phases: Vec<Phase>,
    /// The whole run.
    pub overall: Phase,
    /// Successful answers per second, per second of the run: (start s, rps).
    pub goodput_per_s: Vec<(f64, f64)>,
    /// Admitted p99 per second of the run, by due time: (start s, ms).
    pub p99_per_s: Vec<(f64, f64)>,
    /// The shedder's limit every 100 ms: (s, limit); empty without a shedder.
    pub limit: Vec<(f64, f64)>,
}

impl GuardRun {
    /// The median of the limit over `from..to` seconds of the run.
    pub fn limit_between(&self, from: f64, to: f64) -> Option<f64> {
        let mut v: Vec<f64> = self
            .limit
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, l)| *l)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }

    /// Admitted latency of the requests due in `from..to` seconds of the run.
    fn window(samples: &[Sample], from: f64, to: f64) -> Percentiles {
        let mut v: Vec<Duration> = samples
            .iter()
            .filter(|s| admitted(s.outcome))
            .filter(|s| (from..to).contains(&s.due.as_secs_f64()))
            .map(|s| s.latency)
            .collect();
        Percentiles::of(&mut v)
    }
}

fn admitted(o: Outcome) -> bool {
    matches!(o, Outcome::Ok | Outcome::Failed | Outcome::TimedOut)
}

/// One line per adaptive guard: its limit at each whole second of the run.
fn limit_lines(runs: &[&GuardRun], end: f64) -> String {
    let mut out = String::new();
    for r in runs
        .iter()
        .filter(|r| r.guard.kind != GuardKind::Fixed && !r.limit.is_empty())
    {
        out += &format!("{:<18} limit per s:", r.guard.name());
        let mut t = 0.0;
        while t < end {
            // The sample taken nearest after the second began.
            if let Some((_, l)) = r.limit.iter().find(|(at, _)| *at >= t) {
                out += &format!(" {l:.0}");
            }
            t += 1.0;
        }
        out.push('\n');
    }
    out
}

/// The result of a capacity-drop run.
#[derive(Debug, Clone)]
pub struct DropReport {
    /// What ran.
    pub config: DropConfig,
    /// Admitted latency of an unloaded service (0.1× capacity, no guard).
    pub unloaded: Percentiles,
    /// One run per guard, in config order.
    pub runs: Vec<GuardRun>,
    /// Admitted latency of the second half of the drop, per guard (once
    /// the limits had time to move).
    pub settled: Vec<Percentiles>,
}

impl DropReport {
    /// The run of the first guard of `kind`.
    pub fn run(&self, kind: GuardKind) -> Option<(&GuardRun, &Percentiles)> {
        let i = self.runs.iter().position(|r| r.guard.kind == kind)?;
        Some((&self.runs[i], &self.settled[i]))
    }

    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "capacity drop: {} slots x {} ms = {:.0} req/s, offered {:.0} req/s ({:.1}x); capacity / {} ({:?}) from {:.0} s to {:.0} s, end {:.0} s; unloaded p99 {:.1} ms\n",
            c.slots,
            ms(c.work),
            c.capacity_rps(),
            c.load * c.capacity_rps(),
            c.load,
            DROP_FACTOR,
            c.slowdown,
            c.before.as_secs_f64(),
            (c.before + c.during).as_secs_f64(),
            c.total().as_secs_f64(),
            ms(self.unloaded.p99),
        );
        out += &format!(
            "{:<18} {:>22} {:>25} {:>11} {:>7} {:>7} {:>13}\n",
            "guard",
            "goodput before/drop/after",
            "p99 ms before/drop/after",
            "drop 2nd p99",
            "shed %",
            "fail %",
            "limit in drop"
        );
        for (r, settled) in self.runs.iter().zip(&self.settled) {
            let [b, d, a] = [0, 1, 2].map(|i| r.phases.get(i).copied().unwrap_or_default());
            let from = c.before.as_secs_f64();
            let limit = r
                .limit_between(
                    from + c.during.as_secs_f64() / 2.0,
                    from + c.during.as_secs_f64(),
                )
                .map_or_else(|| "-".into(), |l| format!("{l:.0}"));
            out += &format!(
                "{:<18} {:>6.0} /{:>6.0} /{:>6.0}  {:>7.1} /{:>7.1} /{:>7.1} {:>11.1} {:>6.1}% {:>6.1}% {:>13}\n",
                r.guard.name(),
                b.goodput_rps,
                d.goodput_rps,
                a.goodput_rps,
                ms(b.admitted.p99),
                ms(d.admitted.p99),
                ms(a.admitted.p99),
                ms(settled.p99),
                100.0 * r.overall.shed,
                100.0 * r.overall.failed,
                limit,
            );
        }
        out += &limit_lines(
            &self.runs.iter().collect::<Vec<_>>(),
            c.total().as_secs_f64(),
        );
        out
    }

    /// The charts: admitted p99, goodput and the limit, per second.
    pub fn charts(&self) -> Vec<Chart> {
        let c = &self.config;
        let end = c.total().as_secs_f64();
        let (d0, d1) = (c.before.as_secs_f64(), (c.before + c.during).as_secs_f64());
        let what = match c.slowdown {
            Slowdown::Slots => "Capacity drop (3/4 of the slots gone)",
            Slowdown::Work => "Capacity drop (every request's work 4x)",
        };
        let mut p99 = Chart::new(
            &format!("{what}: p99 of admitted requests per second"),
            "time (s)",
            "p99 (ms, log)",
        )
        .log_y()
        .legend(Legend::UpperLeft);
        let mut goodput = Chart::new(
            &format!("{what}: goodput per second"),
            "time (s)",
            "successful req/s",
        )
        .legend(Legend::LowerRight);
        let mut limit = Chart::new(
            &format!("{what}: the shedder's limit (every 100 ms)"),
            "time (s)",
            "in-flight limit",
        );
        for r in &self.runs {
            p99.series.push(Series::new(
                r.guard.name(),
                r.p99_per_s.iter().map(|&(t, v)| (t, v.max(0.1))).collect(),
            ));
            goodput
                .series
                .push(Series::new(r.guard.name(), r.goodput_per_s.clone()));
            if !r.limit.is_empty() {
                limit
                    .series
                    .push(Series::new(r.guard.name(), r.limit.clone()));
            }
        }
        let unloaded = ms(self.unloaded.p99);
        p99.series
            .push(Series::new("unloaded p99", vec![(0.0, unloaded), (end, unloaded)]).dashed());
        let cap = c.capacity_rps();
        let low = cap / DROP_FACTOR as f64;
        goodput.series.push(
            Series::new(
                "capacity",
                vec![
                    (0.0, cap),
                    (d0, cap),
                    (d0, low),
                    (d1, low),
                    (d1, cap),
                    (end, cap),
                ],
            )
            .dashed(),
        );
        let (n, q) = (c.slots as f64, (c.slots / DROP_FACTOR) as f64);
        limit.series.push(
            Series::new(
                "slots",
                vec![(0.0, n), (d0, n), (d0, q), (d1, q), (d1, n), (end, n)],
            )
            .dashed(),
        );
        vec![p99, goodput, limit]
    }
}

/// Runs the unloaded baseline, then each guard on a fresh server.
pub async fn run(config: DropConfig) -> io::Result<DropReport> {
    let unloaded = baseline(config.slots, config.work).await?;
    let mut runs = Vec::new();
    let mut settled = Vec::new();
    let (d0, d1) = (
        config.before.as_secs_f64(),
        (config.before + config.during).as_secs_f64(),
    );
    for &guard in &config.guards {
        let shape = Shape {
            slots: config.slots,
            work: config.work,
            slowdown: config.slowdown,
            drop: Some((config.before, config.during)),
        };
        let open_loop = OpenLoop {
            rate: config.load * config.capacity_rps(),
            duration: config.total(),
            max_outstanding: config.max_outstanding,
            timeout: config.timeout,
        };
        let (samples, limit) = run_guard(guard, shape, &open_loop).await?;
        let bounds = [(0.0, d0), (d0, d1), (d1, config.total().as_secs_f64())];
        settled.push(GuardRun::window(&samples, (d0 + d1) / 2.0, d1));
        runs.push(summarise(guard, &samples, limit, &bounds, &open_loop));
    }
    Ok(DropReport {
        config,
        unloaded,
        runs,
        settled,
    })
}

/// The unknown-capacity run: the same service, no drop, offered more than
/// its capacity, with the fixed limit guessed 4× too high and the adaptive
/// limits started from that same guess.
#[derive(Debug, Clone)]
pub struct UnknownConfig {
    /// Execution slots (the capacity nobody told the guards).
    pub slots: usize,
    /// Each request's work.
    pub work: Duration,
    /// Offered loads, as multiples of capacity.
    pub loads: Vec<f64>,
    /// How long each (guard, load) point runs.
    pub duration: Duration,
    /// The guards compared.
    pub guards: Vec<Guard>,
    /// The client gives up on a request after this long.
    pub timeout: Duration,
    /// Most requests the client has in flight.
    pub max_outstanding: usize,
}

impl UnknownConfig {
    /// The full run: 32 slots × 40 ms, at 1.2× and 2×, 10 s per point; the
    /// fixed limit at 128 (4× too high) and at 32 (had it been known), the
    /// adaptive ones from 128 within `1..=128`.
    pub fn full() -> Self {
        let n = 32;
        let guess = 4 * n;
        UnknownConfig {
            slots: n,
            work: Duration::from_millis(40),
            loads: vec![1.2, 2.0],
            duration: Duration::from_secs(10),
            guards: vec![
                Guard::new(GuardKind::Fixed, guess, guess),
                Guard::new(GuardKind::Aimd, guess, guess),
                Guard::new(GuardKind::Gradient2, guess, guess),
                Guard::new(GuardKind::Vegas, guess, guess),
                Guard::new(GuardKind::Fixed, n, n),
            ],
            timeout: Duration::from_secs(2),
            max_outstanding: 4000,
        }
    }

    /// A short run for tests: 16 slots × 40 ms at 1.5× for 4 s, the fixed
    /// limit at 64 against `adaptive` from 64.
    pub fn short(adaptive: GuardKind) -> Self {
        let n = 16;
        UnknownConfig {
            slots: n,
            work: Duration::from_millis(40),
            loads: vec![1.5],
            duration: Duration::from_secs(4),
            guards: vec![
                Guard::new(GuardKind::Fixed, 4 * n, 4 * n),
                Guard::new(adaptive, 4 * n, 4 * n),
            ],
            timeout: Duration::from_secs(3),
            max_outstanding: 2000,
        }
    }

    /// Requests per second the service finishes.
    pub fn capacity_rps(&self) -> f64 {
        self.slots as f64 / self.work.as_secs_f64()
    }
}

/// One (guard, load) point of the unknown-capacity run.
#[derive(Debug, Clone)]
pub struct UnknownPoint {
    /// Offered load, as a multiple of capacity.
    pub load: f64,
    /// The run (one phase: the whole of it).
    pub run: GuardRun,
    /// Admitted latency of the second half of the run (once the limits
    /// had time to move).
    pub settled: Percentiles,
}

/// The result of an unknown-capacity run.
#[derive(Debug, Clone)]
pub struct UnknownReport {
    /// What ran.
    pub config: UnknownConfig,
    /// Admitted latency of an unloaded service.
    pub unloaded: Percentiles,
    /// Every point, guard by guard, load by load.
    pub points: Vec<UnknownPoint>,
}

impl UnknownReport {
    /// The point of the first guard of `kind` at `load`.
    pub fn point(&self, kind: GuardKind, load: f64) -> Option<&UnknownPoint> {
        self.points
            .iter()
            .find(|p| p.run.guard.kind == kind && (p.load - load).abs() < 1e-9)
    }

    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "unknown capacity: {} slots x {} ms = {:.0} req/s; {:.0} s per point; unloaded p99 {:.1} ms\n",
            c.slots,
            ms(c.work),
            c.capacity_rps(),
            c.duration.as_secs_f64(),
            ms(self.unloaded.p99),
        );
        out += &format!(
            "{:<18} {:>5} {:>8} {:>6} {:>8} {:>8} {:>13} {:>7} {:>7} {:>11}\n",
            "guard",
            "load",
            "goodput",
            "%cap",
            "p50 ms",
            "p99 ms",
            "2nd half p99",
            "shed %",
            "fail %",
            "final limit"
        );
        let end = c.duration.as_secs_f64();
        for p in &self.points {
            let o = &p.run.overall;
            out += &format!(
                "{:<18} {:>4.1}x {:>8.0} {:>5.0}% {:>8.1} {:>8.1} {:>13.1} {:>6.1}% {:>6.1}% {:>11}\n",
                p.run.guard.name(),
                p.load,
                o.goodput_rps,
                100.0 * o.goodput_rps / c.capacity_rps(),
                ms(o.admitted.p50),
                ms(o.admitted.p99),
                ms(p.settled.p99),
                100.0 * o.shed,
                100.0 * o.failed,
                p.run
                    .limit_between(end / 2.0, end)
                    .map_or_else(|| "-".into(), |l| format!("{l:.0}")),
            );
        }
        let at = c.loads.iter().copied().fold(0.0, f64::max);
        let runs: Vec<&GuardRun> = self
            .points
            .iter()
            .filter(|p| (p.load - at).abs() < 1e-9)
            .map(|p| &p.run)
            .collect();
        if !runs.is_empty() {
            out += &format!("at {at}x:\n");
            out += &limit_lines(&runs, end);
        }
        out
    }

    /// The charts at the highest load: admitted p99 and the limit over time.
    pub fn charts(&self) -> Vec<Chart> {
        let at = self.config.loads.iter().copied().fold(0.0, f64::max);
        let mut p99 = Chart::new(
            &format!("Unknown capacity at {at}x: p99 of admitted requests per second"),
            "time (s)",
            "p99 (ms, log)",
        )
        .log_y();
        let mut limit = Chart::new(
            &format!("Unknown capacity at {at}x: the shedder's limit (every 100 ms)"),
            "time (s)",
            "in-flight limit",
        )
        .legend(Legend::MiddleRight);
        for p in self.points.iter().filter(|p| (p.load - at).abs() < 1e-9) {
            p99.series.push(Series::new(
                p.run.guard.name(),
                p.run
                    .p99_per_s
                    .iter()
                    .map(|&(t, v)| (t, v.max(0.1)))
                    .collect(),
            ));
            limit
                .series
                .push(Series::new(p.run.guard.name(), p.run.limit.clone()));
        }
        let end = self.config.duration.as_secs_f64();
        let unloaded = ms(self.unloaded.p99);
        p99.series
            .push(Series::new("unloaded p99", vec![(0.0, unloaded), (end, unloaded)]).dashed());
        let n = self.config.slots as f64;
        limit
            .series
            .push(Series::new("slots", vec![(0.0, n), (end, n)]).dashed());
        vec![p99, limit]
    }
}

/// Runs the unloaded baseline, then every (guard, load) point on a fresh server.
pub async fn run_unknown(config: UnknownConfig) -> io::Result<UnknownReport> {
    let unloaded = baseline(config.slots, config.work).await?;
    let mut points = Vec::new();
    for &guard in &config.guards {
        for &load in &config.loads {
            let shape = Shape {
                slots: config.slots,
                work: config.work,
                slowdown: Slowdown::Slots,
                drop: None,
            };
            let open_loop = OpenLoop {
                rate: load * config.capacity_rps(),
                duration: config.duration,
                max_outstanding: config.max_outstanding,
                timeout: config.timeout,
            };
            let (samples, limit) = run_guard(guard, shape, &open_loop).await?;
            let end = config.duration.as_secs_f64();
            let settled = GuardRun::window(&samples, end / 2.0, end);
            points.push(UnknownPoint {
                load,
                run: summarise(guard, &samples, limit, &[(0.0, end)], &open_loop),
                settled,
            });
        }
    }
    Ok(UnknownReport {
        config,
        unloaded,
        points,
    })
}

/// The service's shape for one run.
#[derive(Debug, Clone, Copy)]
struct Shape {
    slots: usize,
    work: Duration,
    slowdown: Slowdown,
    /// When the drop starts (from the start of the load) and how long it lasts.
    drop: Option<(Duration, Duration)>,
}

/// Admitted latency at 0.1× capacity for 2 s, no guard.
async fn baseline(slots: usize, work: Duration) -> io::Result<Percentiles> {
    let shape = Shape {
        slots,
        work,
        slowdown: Slowdown::Slots,
        drop: None,
    };
    let open_loop = OpenLoop {
        rate: 0.1 * slots as f64 / work.as_secs_f64(),
        duration: Duration::from_secs(2),
        max_outstanding: 1000,
        timeout: Duration::from_secs(2),
    };
    let (samples, _) =
        run_guard(Guard::new(GuardKind::None, slots, slots), shape, &open_loop).await?;
    let mut v: Vec<Duration> = samples
        .iter()
        .filter(|s| admitted(s.outcome))
        .map(|s| s.latency)
        .collect();
    Ok(Percentiles::of(&mut v))
}

/// Serves a fresh service behind `guard`, offers `open_loop` to it while a
/// task applies the drop and samples the limit; the samples and the limit
/// series.
async fn run_guard(
    guard: Guard,
    shape: Shape,
    open_loop: &OpenLoop,
) -> io::Result<(Vec<Sample>, Vec<(f64, f64)>)> {
    let service = Arc::new(Service::new(shape.slots, shape.work));
    let (router, shed) = app(guard, service.clone()).map_err(io::Error::other)?;
    let server = Running::spawn(router).await?;
    let uri: Uri = format!("http://{}/work", server.addr())
        .parse()
        .map_err(io::Error::other)?;
    let client = HttpClient::new();
    // Warm up: a few sequential calls open a connection and fault in the
    // server's code before anything is measured.
    for _ in 0..5 {
        let _ = client.get(uri.clone()).await;
    }
    let start = Instant::now();
    let driver = tokio::spawn({
        let service = service.clone();
        async move {
            let Some((at, length)) = shape.drop else {
                return;
            };
            tokio::time::sleep_until(start + at).await;
            service.degrade(shape.slowdown, true);
            tokio::time::sleep_until(start + at + length).await;
            service.degrade(shape.slowdown, false);
        }
    });
    let sampler = tokio::spawn({
        let end = open_loop.duration;
        async move {
            let mut limit = Vec::new();
            let Some(shed) = shed else { return limit };
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let t = start.elapsed();
                if t > end {
                    return limit;
                }
                limit.push((t.as_secs_f64(), shed.stats().limit as f64));
            }
        }
    });
    let samples = open_loop
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
        .await;
    driver.abort();
    let limit = sampler.await.unwrap_or_default();
    drop(server);
    Ok((samples, limit))
}

fn summarise(
    guard: Guard,
    samples: &[Sample],
    limit: Vec<(f64, f64)>,
    bounds: &[(f64, f64)],
    open_loop: &OpenLoop,
) -> GuardRun {
    let phase = |from: f64, to: f64| {
        let due: Vec<&Sample> = samples
            .iter()
            .filter(|s| (from..to).contains(&s.due.as_secs_f64()))
            .collect();
        let total = due.len().max(1) as f64;
        let ok = samples
            .iter()
            .filter(|s| s.outcome == Outcome::Ok)
            .filter(|s| (from..to).contains(&(s.due + s.latency).as_secs_f64()))
            .count();
        let shed = due
            .iter()
            .filter(|s| s.outcome == Outcome::Rejected)
            .count();
        let failed = due
            .iter()
            .filter(|s| {
                matches!(
                    s.outcome,
                    Outcome::Failed | Outcome::TimedOut | Outcome::Dropped
                )
            })
            .count();
        Phase {
            goodput_rps: ok as f64 / (to - from).max(1e-3),
            admitted: GuardRun::window(samples, from, to),
            shed: shed as f64 / total,
            failed: failed as f64 / total,
        }
    };
    let end = open_loop.duration.as_secs_f64();
    let mut p99s = Bins::new(Duration::from_secs(1), open_loop.duration);
    let mut oks = Bins::new(Duration::from_secs(1), open_loop.duration);
    for s in samples {
        if admitted(s.outcome) {
            p99s.push(s.due, s.latency);
        }
        // Answers that came after the end of the load go in the last bin;
        // count only those within the run.
        if s.outcome == Outcome::Ok && (s.due + s.latency) < open_loop.duration {
            oks.push(s.due + s.latency, ());
        }
    }
    let p99_per_s = p99s
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(t, v)| {
            let mut v = v.clone();
            v.sort_unstable();
            (t, ms(quantile(&v, 0.99)))
        })
        .collect();
    let goodput_per_s = oks.iter().map(|(t, v)| (t, v.len() as f64)).collect();
    GuardRun {
        guard,
        phases: bounds.iter().map(|&(a, b)| phase(a, b)).collect(),
        overall: phase(0.0, end),
        goodput_per_s,
        p99_per_s,
        limit,
    }
}

/// The service: `slots` execution slots, `work` per request, and the drop.
#[derive(Debug)]
struct Service {
    slots: Semaphore,
    /// Permits to forget as they come back, once a drop has taken away
    /// more than were free at the time.
    debt: AtomicUsize,
    size: Mutex<usize>,
    full: usize,
    work_us: AtomicU64,
    base_work: Duration,
}

impl Service {
    fn new(slots: usize, work: Duration) -> Self {
        Service {
            slots: Semaphore::new(slots),
            debt: AtomicUsize::new(0),
            size: Mutex::new(slots),
            full: slots,
            work_us: AtomicU64::new(work.as_micros() as u64),
            base_work: work,
        }
    }

    /// Starts (`true`) or ends the drop.
    fn degrade(&self, slowdown: Slowdown, on: bool) {
        match slowdown {
            Slowdown::Slots => self.resize(if on {
                (self.full / DROP_FACTOR).max(1)
            } else {
                self.full
            }),
            Slowdown::Work => {
                let factor = if on { DROP_FACTOR as u32 } else { 1 };
                self.work_us.store(
                    (self.base_work * factor).as_micros() as u64,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Sets the number of slots to `to`: free permits are taken away at
    /// once, busy ones as they come back.
    fn resize(&self, to: usize) {
        let mut size = self.size.lock().unwrap_or_else(|e| e.into_inner());
        if to < *size {
            let cut = *size - to;
            let taken = self.slots.forget_permits(cut);
            self.debt.fetch_add(cut - taken, Ordering::SeqCst);
        } else {
            let mut add = to - *size;
            let paid = self
                .debt
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| Some(d - d.min(add)))
                .map_or(0, |d| d.min(add));
            add -= paid;
            self.slots.add_permits(add);
        }
        *size = to;
    }

    /// Gives a slot back, or forgets it while a drop is owed one.
    fn release(&self, permit: SemaphorePermit<'_>) {
        if self
            .debt
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| d.checked_sub(1))
            .is_ok()
        {
            permit.forget();
        }
    }
}

async fn work(State(service): State<Arc<Service>>) -> &'static str {
    // The semaphore is never closed, so acquiring only waits.
    if let Ok(slot) = service.slots.acquire().await {
        let work = Duration::from_micros(service.work_us.load(Ordering::Relaxed));
        tokio::time::sleep(work).await;
        service.release(slot);
    }
    "ok"
}

/// The app (`GET /work`) behind `guard`, and its shedder (to read its limit).
fn app(guard: Guard, service: Arc<Service>) -> Result<(Router, Option<ShedLayer>), ConfigError> {
    let work_time = service.base_work;
    let router = Router::new().route("/work", get(work)).with_state(service);
    let errors = HandleErrorLayer::new(refuse);
    if let Some(limit) = guard.shed_limit(work_time) {
        let shed = ShedLayer::builder().limit(limit).window(WINDOW).build()?;
        let router = router.layer(ServiceBuilder::new().layer(errors).layer(shed.clone()));
        return Ok((router, Some(shed)));
    }
    Ok(match guard.kind {
        GuardKind::Tower => (
            router.layer(
                ServiceBuilder::new()
                    .layer(errors)
                    .load_shed()
                    .concurrency_limit(guard.limit),
            ),
            None,
        ),
        _ => (router, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_drop_takes_busy_slots_as_they_come_back_and_recovery_repays_them() {
        let s = Service::new(8, Duration::from_millis(1));
        let busy: Vec<_> = (0..6)
            .map(|_| s.slots.try_acquire().expect("free"))
            .collect();
        // 2 free, 6 busy: the drop to 2 takes the 2 free ones and owes 4.
        s.degrade(Slowdown::Slots, true);
        assert_eq!(s.slots.available_permits(), 0);
        assert_eq!(s.debt.load(Ordering::SeqCst), 4);
        let mut busy = busy.into_iter();
        for _ in 0..4 {
            s.release(busy.next().expect("busy"));
        }
        assert_eq!(s.slots.available_permits(), 0, "forgotten, not returned");
        s.release(busy.next().expect("busy"));
        assert_eq!(s.slots.available_permits(), 1);
        // Recovery gives back all 8.
        s.degrade(Slowdown::Slots, false);
        s.release(busy.next().expect("busy"));
        assert_eq!(s.slots.available_permits(), 8);
        // A recovery before the debt is paid cancels it instead.
        let held: Vec<_> = (0..8)
            .map(|_| s.slots.try_acquire().expect("free"))
            .collect();
        s.degrade(Slowdown::Slots, true);
        s.degrade(Slowdown::Slots, false);
        assert_eq!(s.debt.load(Ordering::SeqCst), 0);
        for p in held {
            s.release(p);
        }
        assert_eq!(s.slots.available_permits(), 8);
    }
}

//! Scenario 5, runaway loop: a loop that polls a dependency that keeps
//! failing, run flat out and under a [`LoopBudget`]: iterations per second
//! and the share of a CPU core it burns.
//!
//! Each loop runs on its own thread (a current-thread tokio runtime), so the
//! CPU time measured (`/proc/thread-self/schedstat`, Linux) is the loop's own.

use std::hint::black_box;
use std::io;
use std::time::Duration;

use seawall_budget::LoopBudget;
use tokio::time::Instant;

use crate::plot::{Chart, Legend, Series};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunawayConfig {
    /// How long each loop runs.
    pub duration: Duration,
    /// The budget's iterations per second.
    pub budget_per_sec: u32,
}

impl RunawayConfig {
    /// The full run: 5 s each, budget 1000/s (`LoopBudget::for_network`'s rate).
    pub fn full() -> Self {
        RunawayConfig {
            duration: Duration::from_secs(5),
            budget_per_sec: 1000,
        }
    }

    /// A short run: 1 s each.
    pub fn short() -> Self {
        RunawayConfig {
            duration: Duration::from_secs(1),
            ..RunawayConfig::full()
        }
    }
}

/// One loop's result.
#[derive(Debug, Clone)]
pub struct LoopRun {
    /// Whether it ran under the budget.
    pub budgeted: bool,
    /// Iterations done.
    pub iterations: u64,
    /// Iterations per second.
    pub per_sec: f64,
    /// CPU time over wall time of its thread (`None` where unmeasurable).
    pub cpu_share: Option<f64>,
    /// Time running or runnable (waiting for a CPU) over wall time: how
    /// much CPU it asked for, which on a busy machine exceeds what it got.
    pub cpu_demand: Option<f64>,
    /// Iterations/s per 100 ms: (seconds, rate).
    pub rate_over_time: Vec<(f64, f64)>,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunawayReport {
    /// What ran.
    pub config: RunawayConfig,
    /// Unbudgeted, then budgeted.
    pub runs: Vec<LoopRun>,
}

impl RunawayReport {
    /// The table printed by the runner.
    pub fn table(&self) -> String {
        let mut out = format!(
            "runaway loop: polls a failing dependency for {:.0} s; budget {}/s\n",
            self.config.duration.as_secs_f64(),
            self.config.budget_per_sec
        );
        out += &format!(
            "{:<12} {:>12} {:>14} {:>10} {:>11}\n",
            "loop", "iterations", "iterations/s", "CPU share", "CPU demand"
        );
        let pct = |c: Option<f64>| {
            c.map(|c| format!("{:.1}%", 100.0 * c))
                .unwrap_or_else(|| "-".into())
        };
        for r in &self.runs {
            out += &format!(
                "{:<12} {:>12} {:>14.0} {:>10} {:>11}\n",
                if r.budgeted {
                    "LoopBudget"
                } else {
                    "unbounded"
                },
                r.iterations,
                r.per_sec,
                pct(r.cpu_share),
                pct(r.cpu_demand),
            );
        }
        out
    }

    /// The chart: iterations/s over time (log).
    pub fn charts(&self) -> Vec<Chart> {
        let mut chart = Chart::new(
            "Runaway loop: iterations/s",
            "time (s)",
            "iterations/s (log)",
        )
        .log_y()
        .legend(Legend::MiddleRight);
        for r in &self.runs {
            chart.series.push(Series::new(
                if r.budgeted {
                    "LoopBudget"
                } else {
                    "unbounded"
                },
                r.rate_over_time
                    .iter()
                    .map(|&(t, v)| (t, v.max(1.0)))
                    .collect(),
            ));
        }
        vec![chart]
    }
}

/// This thread's time on a CPU and time spent runnable but waiting for
/// one, so far (Linux `schedstat`).
fn thread_cpu_time() -> Option<(Duration, Duration)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = s.split_whitespace().map(|f| f.parse::<u64>().ok());
    let run = fields.next()??;
    let wait = fields.next()??;
    Some((Duration::from_nanos(run), Duration::from_nanos(wait)))
}

/// One poll of the failing dependency: a little work that ends in an error.
fn poll_dependency(i: u64) -> Result<u64, &'static str> {
    let mut h = black_box(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..16 {
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
    if black_box(h) != 0 {
        Err("unavailable")
    } else {
        Ok(h)
    }
}

async fn spin(duration: Duration, budget: Option<LoopBudget>) -> (u64, Vec<u64>) {
    let start = Instant::now();
    let slots = (duration.as_millis() / 100).max(1) as usize;
    let mut bins = vec![0u64; slots];
    let mut iterations = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        if let Some(budget) = &budget {
            if !budget.can_proceed() {
                budget.backoff().await;
                continue;
            }
            budget.consume(1);
        }
        let _ = black_box(poll_dependency(iterations));
        iterations += 1;
        let slot = (elapsed.as_millis() / 100) as usize;
        bins[slot.min(slots - 1)] += 1;
        // Even the runaway loop yields to its runtime: the budget is about
        // rate, not cooperative scheduling.
        tokio::task::yield_now().await;
    }
    (iterations, bins)
}

fn run_loop(config: &RunawayConfig, budgeted: bool) -> io::Result<LoopRun> {
    let duration = config.duration;
    let rate = config.budget_per_sec;
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()?;
            let cpu0 = thread_cpu_time();
            let wall = std::time::Instant::now();
            let (iterations, bins) = rt.block_on(async {
                let budget = budgeted.then(|| LoopBudget::new(rate));
                spin(duration, budget).await
            });
            let wall = wall.elapsed();
            let (cpu_share, cpu_demand) = match (cpu0, thread_cpu_time()) {
                (Some(a), Some(b)) => {
                    let run = (b.0 - a.0).as_secs_f64();
                    let wait = (b.1 - a.1).as_secs_f64();
                    let wall = wall.as_secs_f64();
                    (Some(run / wall), Some((run + wait) / wall))
                }
                _ => (None, None),
            };
            Ok(LoopRun {
                budgeted,
                iterations,
                per_sec: iterations as f64 / wall.as_secs_f64(),
                cpu_share,
                cpu_demand,
                rate_over_time: bins
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i as f64 * 0.1, *n as f64 * 10.0))
                    .collect(),
            })
        })
        .join()
        .map_err(|_| io::Error::other("loop thread panicked"))?
    })
}

/// Runs both loops, one after the other.
pub fn run(config: RunawayConfig) -> io::Result<RunawayReport> {
    let runs = vec![run_loop(&config, false)?, run_loop(&config, true)?];
    Ok(RunawayReport { config, runs })
}

//! The scenario runner: runs seawall's layers against real servers on
//! 127.0.0.1, prints a table per scenario and draws its plots (PNG or SVG).
//!
//! ```text
//! cargo run --release -p seawall-scenarios -- NAME [--short] [--out DIR] [--font PATH]
//! NAME: overload | dead-peer | slow-peer | retry-storm | runaway-loop | churn | hedge | deadline
//!       | capacity-drop | capacity-drop-work | unknown-capacity | chaos-stack | all
//! ```
//!
//! Plots go to `target/scenarios/` unless `--out` says otherwise: PNG for
//! the first scenarios, SVG for capacity-drop, unknown-capacity and
//! chaos-stack. The
//! overload scenario runs its server in a child process (this executable,
//! `serve ...`), so that the server's peak memory is measured alone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use seawall_scenarios::plot::{self, Chart};
use seawall_scenarios::server::{self, Placement, Protection, WorkSpec};
use seawall_scenarios::{
    capacity_drop, chaos_stack, churn, dead_peer, deadline, hedge, overload, retry_storm,
    runaway_loop, slow_peer,
};

const NAMES: [&str; 12] = [
    "overload",
    "dead-peer",
    "slow-peer",
    "retry-storm",
    "runaway-loop",
    "churn",
    "hedge",
    "deadline",
    "capacity-drop",
    "capacity-drop-work",
    "unknown-capacity",
    "chaos-stack",
];

/// The scenarios whose plots are SVG.
const SVG: [&str; 7] = [
    "capacity-drop",
    "capacity-drop-work",
    "unknown-capacity",
    "chaos-stack-breaker",
    "chaos-stack-routing",
    "chaos-stack-retry",
    "chaos-stack-fallback",
];

const USAGE: &str = "usage: seawall-scenarios NAME [--short] [--out DIR] [--font PATH]
  NAME: overload | dead-peer | slow-peer | retry-storm | runaway-loop | churn | hedge | deadline
        | capacity-drop | capacity-drop-work | unknown-capacity | chaos-stack | all
  --short     the short versions (seconds each)
  --out DIR   where plots go (default target/scenarios)
  --font PATH a TrueType font for plot text (default: DejaVu Sans where installed)";

struct Args {
    names: Vec<&'static str>,
    short: bool,
    out: PathBuf,
    font: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut names = Vec::new();
    let mut short = false;
    let mut out = PathBuf::from("target/scenarios");
    let mut font = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--short" => short = true,
            "--out" => out = it.next().ok_or("--out needs a directory")?.into(),
            "--font" => font = Some(it.next().ok_or("--font needs a path")?.into()),
            "all" => names.extend(NAMES),
            name => match NAMES.iter().find(|n| **n == name) {
                Some(n) => names.push(*n),
                None => return Err(format!("unknown argument {name:?}")),
            },
        }
    }
    if names.is_empty() {
        return Err("name a scenario".into());
    }
    Ok(Args {
        names,
        short,
        out,
        font,
    })
}

/// `serve PROTECTION CAPACITY WORK_US`: the overload scenario's server, run
/// as a child of the runner.
fn serve(args: &[String]) -> Result<(), String> {
    let [protection, capacity, work_us] = args else {
        return Err("serve PROTECTION CAPACITY WORK_US".into());
    };
    let protection = Protection::parse(protection).ok_or("unknown protection")?;
    let spec = WorkSpec {
        capacity: capacity.parse().map_err(|_| "bad capacity")?,
        work: Duration::from_micros(work_us.parse().map_err(|_| "bad work")?),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // Ends when the runner closes stdin; ten minutes at most, whatever happens.
    rt.block_on(server::serve_until_stdin_closes(
        protection,
        spec,
        Duration::from_secs(600),
    ))
    .map_err(|e| e.to_string())
}

fn save(out: &Path, name: &str, charts: &[Chart], font: bool) {
    if !font || charts.is_empty() {
        return;
    }
    let svg = SVG.contains(&name);
    let path = out.join(format!("{name}.{}", if svg { "svg" } else { "png" }));
    let drawn = if svg {
        plot::draw_svg(&path, charts)
    } else {
        plot::draw(&path, charts)
    };
    match drawn {
        Ok(()) => println!("plot: {}", path.display()),
        Err(e) => eprintln!("plot {}: {e}", path.display()),
    }
}

async fn run(args: &Args, font: bool) -> Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    for name in &args.names {
        let started = std::time::Instant::now();
        println!("== {name}{}", if args.short { " (short)" } else { "" });
        let (table, charts) = match *name {
            "overload" => {
                let placement = Placement::Child(exe.clone());
                let config = if args.short {
                    overload::OverloadConfig::short(placement)
                } else {
                    overload::OverloadConfig::full(placement)
                };
                let r = overload::run(config).await?;
                (r.table(), r.charts())
            }
            "dead-peer" => {
                let config = if args.short {
                    dead_peer::DeadPeerConfig {
                        compare_unprotected: true,
                        ..dead_peer::DeadPeerConfig::short()
                    }
                } else {
                    dead_peer::DeadPeerConfig::full()
                };
                let r = dead_peer::run(config).await?;
                (r.table(), r.charts())
            }
            "slow-peer" => {
                let config = if args.short {
                    slow_peer::SlowPeerConfig::short()
                } else {
                    slow_peer::SlowPeerConfig::full()
                };
                let r = slow_peer::run(config).await?;
                (r.table(), r.charts())
            }
            "retry-storm" => {
                let config = if args.short {
                    retry_storm::RetryStormConfig::short()
                } else {
                    retry_storm::RetryStormConfig::full()
                };
                let r = retry_storm::run(config).await?;
                (r.table(), r.charts())
            }
            "hedge" => {
                let config = if args.short {
                    hedge::HedgeScenarioConfig::short()
                } else {
                    hedge::HedgeScenarioConfig::full()
                };
                (hedge::run(config).await?.table(), Vec::new())
            }
            "deadline" => {
                let config = if args.short {
                    deadline::DeadlineConfig::short()
                } else {
                    deadline::DeadlineConfig::full()
                };
                let r = deadline::run(config).await?;
                (r.table(), Vec::new())
            }
            "capacity-drop" | "capacity-drop-work" => {
                let config = match (args.short, *name == "capacity-drop-work") {
                    (true, work) => capacity_drop::DropConfig {
                        slowdown: if work {
                            capacity_drop::Slowdown::Work
                        } else {
                            capacity_drop::Slowdown::Slots
                        },
                        ..capacity_drop::DropConfig::short(capacity_drop::GuardKind::Gradient2)
                    },
                    (false, false) => capacity_drop::DropConfig::full(),
                    (false, true) => capacity_drop::DropConfig::full_work(),
                };
                let r = capacity_drop::run(config).await?;
                (r.table(), r.charts())
            }
            "unknown-capacity" => {
                let config = if args.short {
                    capacity_drop::UnknownConfig::short(capacity_drop::GuardKind::Gradient2)
                } else {
                    capacity_drop::UnknownConfig::full()
                };
                let r = capacity_drop::run_unknown(config).await?;
                (r.table(), r.charts())
            }
            "chaos-stack" => {
                let config = if args.short {
                    chaos_stack::ChaosStackConfig::short()
                } else {
                    chaos_stack::ChaosStackConfig::full()
                };
                let r = chaos_stack::run(config).await?;
                // One plot per mechanism.
                for (plot, charts) in r.plots() {
                    save(&args.out, plot, &charts, font);
                }
                (r.table(), Vec::new())
            }
            "churn" => {
                let flood = if args.short {
                    churn::ChurnConfig::short()
                } else {
                    churn::ChurnConfig::full()
                };
                let mut table = String::new();
                for config in [flood, churn::ChurnConfig::bypass()] {
                    let r = tokio::task::spawn_blocking(move || churn::run(config)).await??;
                    table.push_str(&r.table());
                }
                (table, Vec::new())
            }
            _ => {
                let config = if args.short {
                    runaway_loop::RunawayConfig::short()
                } else {
                    runaway_loop::RunawayConfig::full()
                };
                let r = tokio::task::spawn_blocking(move || runaway_loop::run(config)).await??;
                (r.table(), r.charts())
            }
        };
        print!("{table}");
        save(&args.out, name, &charts, font);
        println!("({name}: {:.1} s)\n", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The CPU count and model, for the record.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("serve") {
        return match serve(&argv[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serve: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let font = match plot::load_font(args.font.as_deref()) {
        Some(path) => {
            if let Err(e) = std::fs::create_dir_all(&args.out) {
                eprintln!("cannot create {}: {e}; plots skipped", args.out.display());
                false
            } else {
                println!("font: {}", path.display());
                true
            }
        }
        None => {
            eprintln!("no TrueType font found (pass --font PATH): plots skipped, tables only");
            false
        }
    };
    println!("machine: {}", machine());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&args, font)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! Hostile values in every leaf of `examples/seawall.toml`, and in the builders
//! whose bounds once reserved memory: each case must end in a `ConfigError` or
//! in a stack that serves a request — never a panic, never an abort.
//!
//! An abort (a failed allocation of a huge queue, say) cannot be caught, so the
//! cases run in a child process: this test binary, started again with
//! `SEAWALL_HOSTILE_FROM` set, under an address-space limit (`ulimit -v`) so a
//! huge allocation fails at once instead of swapping. The child prints
//! `start N` before case N and `done N` (or `fail N reason`) after it; when it
//! dies mid-case the parent records that case as an abort and starts a new
//! child at the next one. Panics anywhere in a case, spawned tasks included
//! (a sampler task dying silently), are caught by a panic hook and reported.
//!
//! Every value is written into a TOML document, parsed, validated, built,
//! and then one request goes through the server stack and one through the
//! client stack, on a current-thread runtime with paused time.
#![cfg(all(
    feature = "serde",
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry"
))]

use std::io::{BufRead, BufReader, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use seawall::config::StackConfig;
use seawall::{BoxError, Rejection};
use toml::{Table, Value};
use tower::{Layer, ServiceExt, service_fn};

const EXAMPLE: &str = include_str!("../examples/seawall.toml");
const CHILD_ENV: &str = "SEAWALL_HOSTILE_FROM";
/// Wall time a case may take before it counts as a hang: every case runs on
/// paused time, so only a task that never yields gets near it.
const CASE_WALL_LIMIT: Duration = Duration::from_secs(20);
/// Marks the child's progress lines among whatever else it prints.
const MARK: &str = "@hostile@ ";
/// Address space a child may map, in KiB: far more than any case needs, far
/// less than the terabytes a bad capacity once asked for.
const CHILD_MEMORY_KIB: u64 = 4 * 1024 * 1024;

/// The values every leaf gets, whatever its type: a type mismatch must be a
/// `ConfigError` too.
fn hostile_values() -> Vec<(&'static str, Value)> {
    let long = "a".repeat(100_000);
    vec![
        ("0", Value::Integer(0)),
        ("-1", Value::Integer(-1)),
        ("2^32-1", Value::Integer(4_294_967_295)),
        ("2^32", Value::Integer(4_294_967_296)),
        ("2^32+1", Value::Integer(4_294_967_297)),
        ("i64::MAX", Value::Integer(i64::MAX)),
        ("i64::MIN", Value::Integer(i64::MIN)),
        ("NaN", Value::Float(f64::NAN)),
        ("inf", Value::Float(f64::INFINITY)),
        ("-inf", Value::Float(f64::NEG_INFINITY)),
        ("-0.0", Value::Float(-0.0)),
        ("1e308", Value::Float(1e308)),
        ("u64::MAX as float", Value::Float(u64::MAX as f64)),
        ("\"\"", Value::String(String::new())),
        ("\"0s\"", Value::String("0s".into())),
        ("\"1ns\"", Value::String("1ns".into())),
        ("u64::MAX s", Value::String("18446744073709551615s".into())),
        ("365d+1ns", Value::String("365days 1ns".into())),
        ("huge unit", Value::String("9999999999999999999y".into())),
        ("100 kB", Value::String(long)),
        ("CRLF", Value::String("a\r\nSet-Cookie: x".into())),
        (
            "secret url",
            Value::String("redis://user:hunter2@127.0.0.1:1/0".into()),
        ),
        ("true", Value::Boolean(true)),
        ("[]", Value::Array(vec![])),
        ("{}", Value::Table(Table::new())),
    ]
}

/// Documents to mutate: the example as shipped, and each alternative its
/// comments offer, so that every kind of every part is reached.
fn documents() -> Vec<(String, Table)> {
    let base: Table = EXAMPLE.parse().expect("examples/seawall.toml parses");
    let mut docs = vec![("example".to_string(), base.clone())];
    let variant = |name: &str, path: &[&str], toml: &str| {
        let mut doc = base.clone();
        let value: Table = format!("v = {toml}").parse().expect("a variant parses");
        set(&mut doc, path, value["v"].clone());
        (name.to_string(), doc)
    };
    docs.push(variant(
        "breaker consecutive_failures",
        &["client", "breaker", "policy"],
        r#"{ kind = "consecutive_failures", threshold = 5 }"#,
    ));
    docs.push(variant(
        "breaker failure_rate_time",
        &["client", "breaker", "policy"],
        r#"{ kind = "failure_rate_time", window = "30s", buckets = 10, rate = 0.5, min_calls = 20 }"#,
    ));
    docs.push(variant(
        "breaker slow_call_rate",
        &["client", "breaker", "policy"],
        r#"{ kind = "slow_call_rate", threshold = "1s", rate = 0.5, window = "30s", buckets = 10, min_calls = 20 }"#,
    ));
    docs.push(variant(
        "shed aimd",
        &["server", "shed", "limit"],
        r#"{ aimd = { initial = 20, min = 20, max = 200, backoff_ratio = 0.9, timeout = "5s" } }"#,
    ));
    docs.push(variant(
        "shed gradient2",
        &["server", "shed", "limit"],
        r#"{ gradient2 = { initial = 20, min = 20, max = 200, smoothing = 0.2, queue_size = 4, tolerance = 1.5, long_window = 600 } }"#,
    ));
    docs.push(variant(
        "shed vegas",
        &["server", "shed", "limit"],
        r#"{ vegas = { initial = 20, min = 1, max = 1000, smoothing = 1.0, alpha = 3.0, beta = 6.0, probe_multiplier = 30 } }"#,
    ));
    docs.push(variant(
        "shed memory pressure",
        &["server", "shed", "memory_pressure"],
        r#"{ interval = "1s", shed_sheddable_at = 0.7, shed_normal_at = 0.9, hysteresis = 0.05, rss_budget = 536870912 }"#,
    ));
    docs.push(variant(
        "server adaptive timeout",
        &["server", "timeout"],
        r#"{ name = "api", percentile = 99.0, multiplier = 1.5, min = "20ms", max = "2s", base = "500ms", min_samples = 100, window = "60s", refresh_every = 1000, sample_every = 32, key_capacity = 1000, key_idle_ttl = "5m" }"#,
    ));
    docs.push(variant(
        "budget wait",
        &["server", "budget", "mode"],
        r#""wait""#,
    ));
    if cfg!(feature = "redis") {
        // Nothing listens on port 1: the budget falls back, as a replica
        // whose Redis is down does.
        let redis = r#"{ backend = "redis", url = "redis://127.0.0.1:1", name = "payments-api", rate = 5000, per = "1s", burst = 500, mode = "reject", fallback = { local = { share = 0.25 } }, redis_timeout = "50ms", probe_interval = "1s", lease_interval = "50ms", lease_share = 0.1 }"#;
        docs.push(variant("redis budget", &["server", "budget"], redis));
        let mut wait = variant("redis budget, wait", &["server", "budget"], redis);
        set(
            &mut wait.1,
            &["server", "budget", "mode"],
            Value::String("wait".into()),
        );
        docs.push(wait);
    }
    docs
}

fn set(doc: &mut Table, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    let mut table = doc;
    for p in parents {
        table = table
            .entry(p.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("a table on the path");
    }
    table.insert(last.to_string(), value);
}

/// Every leaf's path (arrays' elements are leaves, inline tables are walked).
fn leaves(table: &Table, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for (k, v) in table {
        prefix.push(k.clone());
        match v {
            Value::Table(t) => leaves(t, prefix, out),
            _ => out.push(prefix.clone()),
        }
        prefix.pop();
    }
}

enum Case {
    /// A document with one leaf replaced.
    Leaf {
        doc: String,
        path: Vec<String>,
        value: &'static str,
        toml: String,
    },
    /// A builder called with a hostile argument.
    Builder(&'static str, fn()),
}

impl Case {
    fn name(&self) -> String {
        match self {
            Case::Leaf {
                doc, path, value, ..
            } => format!("{doc}: {} = {value}", path.join(".")),
            Case::Builder(name, _) => format!("builder: {name}"),
        }
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let docs = documents();
    let base = &docs[0].1;
    let mut base_leaves = Vec::new();
    leaves(base, &mut Vec::new(), &mut base_leaves);
    for (name, doc) in &docs {
        let mut paths = Vec::new();
        leaves(doc, &mut Vec::new(), &mut paths);
        // A variant's leaves that the example already has were covered there.
        if name != "example" {
            paths.retain(|p| !base_leaves.contains(p) || get(base, p) != get(doc, p));
        }
        for path in paths {
            for (label, value) in hostile_values() {
                let mut doc = doc.clone();
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                set(&mut doc, &refs, value);
                cases.push(Case::Leaf {
                    doc: name.clone(),
                    path: path.clone(),
                    value: label,
                    toml: toml::to_string(&doc).expect("a table serialises"),
                });
            }
        }
    }
    cases.extend(builder_cases());
    cases
}

fn get<'a>(doc: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut table = doc;
    for p in parents {
        table = table.get(p)?.as_table()?;
    }
    table.get(last)
}

fn builder_cases() -> Vec<Case> {
    use seawall::budget::bounded::{self, OverflowPolicy};
    vec![Case::Builder("bounded::channel(u32::MAX)", || {
        if let Ok((tx, mut rx)) = bounded::channel::<u8>(4_294_967_295, OverflowPolicy::Reject) {
            let _ = tx.try_send(1);
            let _ = rx.try_recv();
        }
    })]
}

/// Runs one case; `Err` says why it failed (a panic is caught by the caller).
fn run(case: &Case) -> Result<(), String> {
    match case {
        Case::Builder(_, f) => {
            f();
            Ok(())
        }
        Case::Leaf { toml, .. } => {
            let config = match StackConfig::from_toml_str(toml) {
                Ok(config) => config,
                Err(e) => {
                    if e.errors().is_empty() || e.field().is_empty() {
                        return Err(format!("a ConfigError without a field: {e}"));
                    }
                    if e.to_string().contains("hunter2") || format!("{e:?}").contains("hunter2") {
                        return Err(format!("the error shows a password: {e}"));
                    }
                    return Ok(());
                }
            };
            if toml.contains("url = \"redis://user:hunter2")
                && format!("{config:?}").contains("hunter2")
            {
                return Err("the config's Debug shows the URL's password".into());
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(serve(&config))
        }
    }
}

/// One request through each stack; the answer may be a seawall refusal, but
/// it must come, within an hour of paused time.
async fn serve(config: &StackConfig) -> Result<(), String> {
    let ok = |r: Result<u32, BoxError>| match r {
        Ok(_) => Ok(()),
        Err(e) if Rejection::find(&*e).is_some() => Ok(()),
        Err(e) => Err(format!("neither an answer nor a seawall refusal: {e}")),
    };
    let limit = Duration::from_secs(3600);

    let server = config
        .server
        .build()
        .map_err(|e| format!("validated, then build failed: {e}"))?;
    let svc = server.layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
    let answer = tokio::time::timeout(limit, svc.oneshot(1))
        .await
        .map_err(|_| "the server stack did not answer within an hour".to_string())?;
    ok(answer)?;

    let client = config
        .client
        .build(|req: &(u16, u32)| req.0)
        .map_err(|e| format!("validated, then build failed: {e}"))?;
    let svc = client.layer(service_fn(|req: (u16, u32)| async move {
        Ok::<_, BoxError>(req.1)
    }));
    let answer = tokio::time::timeout(limit, svc.oneshot((7, 1)))
        .await
        .map_err(|_| "the client stack did not answer within an hour".to_string())?;
    ok(answer)?;

    // Let background tasks (a pressure sampler, token leasing) run a while.
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(server);
    drop(client);
    Ok(())
}

static PANICKED: Mutex<Option<String>> = Mutex::new(None);

/// The child: runs cases from `first` on, reporting each on stdout.
fn child(first: usize) {
    std::panic::set_hook(Box::new(|info| {
        let mut slot = PANICKED.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| info.to_string());
    }));
    let cases = cases();
    let mut out = std::io::stdout().lock();
    for (i, case) in cases.iter().enumerate().skip(first) {
        writeln!(out, "{MARK}start {i}")
            .and_then(|()| out.flush())
            .expect("stdout");
        let result = catch_unwind(AssertUnwindSafe(|| run(case)));
        let panicked = PANICKED.lock().unwrap_or_else(|e| e.into_inner()).take();
        let verdict = match (result, panicked) {
            (_, Some(p)) => Err(format!("panicked: {p}")),
            (Ok(r), None) => r,
            (Err(_), None) => Err("panicked".into()),
        };
        match verdict {
            Ok(()) => writeln!(out, "{MARK}done {i}"),
            Err(why) => writeln!(out, "{MARK}fail {i} {}", why.replace('\n', " ")),
        }
        .and_then(|()| out.flush())
        .expect("stdout");
    }
}

#[test]
fn no_hostile_value_panics_or_aborts() {
    if let Ok(first) = std::env::var(CHILD_ENV) {
        child(first.parse().expect("a case number"));
        return;
    }
    let cases = cases();
    let names: Vec<String> = cases.iter().map(Case::name).collect();
    let exe = std::env::current_exe().expect("the test binary");
    let mut failures = Vec::new();
    let mut next = 0;
    let mut children = 0;
    while next < names.len() {
        children += 1;
        assert!(children <= 50, "more than 50 children died; stopping");
        let mut proc = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {CHILD_MEMORY_KIB}; exec \"$0\" \"$@\""))
            .arg(&exe)
            .args([
                "--exact",
                "no_hostile_value_panics_or_aborts",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a child");
        // Lines come through a channel, so a case that hangs (a task that
        // spins without ever yielding to the paused clock) is seen and killed.
        let (lines, progress) = mpsc::channel();
        let stdout = proc.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut started = None;
        let mut hung = false;
        loop {
            let line = match progress.recv_timeout(CASE_WALL_LIMIT) {
                Ok(line) => line,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    hung = started.is_some();
                    let _ = proc.kill();
                    break;
                }
            };
            // The test harness writes its own text before the first line.
            let Some(at) = line.find(MARK) else { continue };
            let mut words = line[at + MARK.len()..].splitn(3, ' ');
            let (verb, n) = (
                words.next(),
                words.next().and_then(|n| n.parse::<usize>().ok()),
            );
            match (verb, n) {
                (Some("start"), Some(n)) => started = Some(n),
                (Some("done"), Some(n)) => {
                    started = None;
                    next = n + 1;
                }
                (Some("fail"), Some(n)) => {
                    started = None;
                    next = n + 1;
                    failures.push(format!("{}: {}", names[n], words.next().unwrap_or("")));
                }
                _ => {}
            }
        }
        let status = proc.wait().expect("the child ends");
        match started {
            Some(n) if hung => {
                failures.push(format!(
                    "{}: still running after {CASE_WALL_LIMIT:?}",
                    names[n]
                ));
                next = n + 1;
            }
            Some(n) => {
                failures.push(format!("{}: the process died ({status})", names[n]));
                next = n + 1;
            }
            None if !status.success() && next < names.len() => {
                panic!("the child failed between cases, before case {next} ({status})")
            }
            None => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

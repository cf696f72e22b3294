//! Hostile configuration: every field of the builder (and, with `serde`, of
//! the TOML config) gets values at and past its bounds (0, 1, 2^32 ± 1,
//! `u64::MAX`, `usize::MAX`, durations up to `u64::MAX` seconds, NaN, the
//! infinities, -0.0). Each result must be a `ConfigError` (a parse error for
//! TOML that cannot hold the value) or a layer that serves calls without
//! panicking: one call, then, with the in-flight limit filled, a call that
//! queues (and times out on paused time) or is shed, then a queued call that
//! gets the slot a finishing call frees.

use seawall_core::rand::SplitMix64;
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use seawall_core::config::{MAX_CAPACITY, MAX_DURATION};
use seawall_core::{BoxError, Rejection};
use seawall_shed::{
    Aimd, Gradient2, Limit, MAX_LIMIT, MemoryPressureConfig, Priority, ShedLayer, Vegas,
};
use seawall_test_support::runtime;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, service_fn};

const I64_MAX: u64 = i64::MAX as u64;

fn counts() -> Vec<u64> {
    vec![
        0,
        1,
        2,
        3,
        10,
        100,
        MAX_LIMIT as u64,
        MAX_LIMIT as u64 + 1,
        MAX_CAPACITY as u64,
        MAX_CAPACITY as u64 + 1,
        (1 << 32) - 1,
        1 << 32,
        (1 << 32) + 1,
        I64_MAX - 1,
        I64_MAX,
        I64_MAX + 1,
        u64::MAX,
    ]
}

fn usizes() -> impl Strategy<Value = usize> {
    prop::sample::select(counts()).prop_map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn durations() -> impl Strategy<Value = Duration> {
    prop::sample::select(vec![
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
        Duration::from_millis(1),
        Duration::from_millis(9),
        Duration::from_millis(10),
        Duration::from_millis(20),
        Duration::from_secs(1),
        Duration::from_secs(3600),
        Duration::from_secs(3600) + Duration::from_nanos(1),
        MAX_DURATION,
        MAX_DURATION + Duration::from_nanos(1),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ])
}

fn floats() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        1e-300,
        0.05,
        0.2,
        0.5,
        0.7,
        0.9,
        1.0,
        1.5,
        3.0,
        6.0,
        1e308,
        -1.0,
    ])
}

/// A field left at its default most of the time, so that many generated
/// configs are valid and the serving path runs.
fn maybe<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    prop::option::weighted(0.35, s)
}

fn aimd() -> impl Strategy<Value = Aimd> {
    (
        maybe(usizes()),
        maybe(usizes()),
        maybe(usizes()),
        maybe(floats()),
        maybe(durations()),
    )
        .prop_map(|(initial, min, max, ratio, timeout)| {
            let d = Aimd::default();
            Aimd::new()
                .initial(initial.unwrap_or(d.initial))
                .min(min.unwrap_or(d.min))
                .max(max.unwrap_or(d.max))
                .backoff_ratio(ratio.unwrap_or(d.backoff_ratio))
                .timeout(timeout.unwrap_or(d.timeout))
        })
}

fn gradient2() -> impl Strategy<Value = Gradient2> {
    (
        maybe(usizes()),
        maybe(usizes()),
        maybe(usizes()),
        maybe(floats()),
        maybe(usizes()),
        maybe(floats()),
        maybe(usizes()),
    )
        .prop_map(
            |(initial, min, max, smoothing, queue_size, tolerance, long)| {
                let d = Gradient2::default();
                Gradient2::new()
                    .initial(initial.unwrap_or(d.initial))
                    .min(min.unwrap_or(d.min))
                    .max(max.unwrap_or(d.max))
                    .smoothing(smoothing.unwrap_or(d.smoothing))
                    .queue_size(queue_size.unwrap_or(d.queue_size))
                    .tolerance(tolerance.unwrap_or(d.tolerance))
                    .long_window(long.unwrap_or(d.long_window))
            },
        )
}

fn vegas() -> impl Strategy<Value = Vegas> {
    (
        maybe(usizes()),
        maybe(usizes()),
        maybe(usizes()),
        maybe(floats()),
        maybe(floats()),
        maybe(floats()),
        maybe(usizes()),
    )
        .prop_map(|(initial, min, max, smoothing, alpha, beta, probe)| {
            let d = Vegas::default();
            Vegas::new()
                .initial(initial.unwrap_or(d.initial))
                .min(min.unwrap_or(d.min))
                .max(max.unwrap_or(d.max))
                .smoothing(smoothing.unwrap_or(d.smoothing))
                .alpha(alpha.unwrap_or(d.alpha))
                .beta(beta.unwrap_or(d.beta))
                .probe_multiplier(probe.unwrap_or(d.probe_multiplier))
        })
}

fn limits() -> impl Strategy<Value = Limit> {
    prop_oneof![
        usizes().prop_map(Limit::Fixed),
        prop::sample::select(vec![1usize, 2, 3, 10]).prop_map(Limit::Fixed),
        aimd().prop_map(Limit::Aimd),
        gradient2().prop_map(Limit::Gradient2),
        vegas().prop_map(Limit::Vegas),
    ]
}

fn memory_pressure() -> impl Strategy<Value = MemoryPressureConfig> {
    (
        maybe(durations()),
        maybe(floats()),
        maybe(floats()),
        maybe(floats()),
        maybe(prop::sample::select(counts())),
    )
        .prop_map(|(interval, sheddable, normal, hysteresis, budget)| {
            let d = MemoryPressureConfig::default();
            let mut c = MemoryPressureConfig::new()
                .interval(interval.unwrap_or(d.interval))
                .shed_sheddable_at(sheddable.unwrap_or(d.shed_sheddable_at))
                .shed_normal_at(normal.unwrap_or(d.shed_normal_at))
                .hysteresis(hysteresis.unwrap_or(d.hysteresis));
            // A budget keeps the RSS ratio (and so the level) off the
            // machine's total memory.
            c.rss_budget = budget.or(d.rss_budget);
            c
        })
}

/// One builder call per field; `None` leaves the default.
#[derive(Debug, Clone)]
struct Fields {
    limit: Option<Limit>,
    soft_limit: Option<usize>,
    critical_headroom: Option<f64>,
    retry_after: Option<Duration>,
    window: Option<Duration>,
    window_min_samples: Option<usize>,
    max_queue_delay: Option<Duration>,
    queue_capacity: Option<usize>,
    seed: Option<u64>,
    memory_pressure: Option<MemoryPressureConfig>,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        maybe(limits()),
        maybe(usizes()),
        maybe(floats()),
        maybe(durations()),
        maybe(durations()),
        maybe(usizes()),
        // The queue mode half the time, so the queueing path runs often.
        prop::option::weighted(0.5, durations()),
        maybe(usizes()),
        maybe(prop::sample::select(counts())),
        prop::option::weighted(0.15, memory_pressure()),
    )
        .prop_map(
            |(
                limit,
                soft_limit,
                critical_headroom,
                retry_after,
                window,
                window_min_samples,
                max_queue_delay,
                queue_capacity,
                seed,
                memory_pressure,
            )| Fields {
                limit,
                soft_limit,
                critical_headroom,
                retry_after,
                window,
                window_min_samples,
                max_queue_delay,
                queue_capacity,
                seed,
                memory_pressure,
            },
        )
}

/// The builder with every `Some` field set through its method.
fn builder(f: &Fields) -> seawall_shed::ShedBuilder {
    let mut b = ShedLayer::builder().name("hostile");
    b = match &f.limit {
        Some(Limit::Fixed(n)) => b.max_in_flight(*n),
        Some(l) => b.limit(l.clone()),
        None => b,
    };
    if let Some(n) = f.soft_limit {
        b = b.soft_limit(n);
    }
    if let Some(x) = f.critical_headroom {
        b = b.critical_headroom(x);
    }
    if let Some(d) = f.retry_after {
        b = b.retry_after(d);
    }
    if let Some(d) = f.window {
        b = b.window(d);
    }
    if let Some(n) = f.window_min_samples {
        b = b.window_min_samples(n);
    }
    if let Some(d) = f.max_queue_delay {
        b = b.max_queue_delay(d);
    }
    if let Some(n) = f.queue_capacity {
        b = b.queue_capacity(n);
    }
    if let Some(s) = f.seed {
        b = b.seed(s);
    }
    if let Some(m) = &f.memory_pressure {
        b = b.memory_pressure(m.clone());
    }
    b
}

/// What one config did.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// `build()` refused it.
    Refused,
    /// Served calls without queueing.
    Served,
    /// Served calls, one of which waited in the queue.
    Queued,
}

/// A layer's rejection: an `Overloaded` with a positive `retry_after`.
fn check_refusal(e: &BoxError) {
    match Rejection::find(&**e) {
        Some(Rejection::Overloaded(o)) => {
            let after = o.retry_after().expect("a retry hint");
            assert!(after > Duration::ZERO, "retry_after {after:?}");
        }
        _ => panic!("not an Overloaded: {e}"),
    }
}

/// The largest limit the test fills by hand (one permit per slot).
const FILLABLE: usize = 4096;

/// Builds `config` (through `build`) on a paused current-thread runtime and,
/// if it is accepted, serves calls through it.
fn run(
    queue: Option<Duration>,
    build: impl FnOnce() -> Result<ShedLayer, seawall_core::ConfigError>,
) -> Fate {
    let rt = runtime::paused();
    rt.block_on(async move {
        let Ok(layer) = build() else {
            return Fate::Refused;
        };
        serve(&layer, queue).await
    })
}

/// Serves calls through `layer`, built with `max_queue_delay = queue`.
async fn serve(layer: &ShedLayer, queue: Option<Duration>) -> Fate {
    let inner = service_fn(|x: u32| async move { Ok::<_, Infallible>(x) });
    let mut svc = layer.layer(inner);

    // One call with every slot free.
    {
        let mut ready = task::spawn(std::future::poll_fn(|cx| svc.poll_ready(cx)));
        assert_ready!(ready.poll()).unwrap();
    }
    match svc.call(1).await {
        Ok(x) => assert_eq!(x, 1),
        Err(e) => check_refusal(&e),
    }

    let limit = layer.stats().limit;
    if limit > FILLABLE {
        return Fate::Served;
    }
    // Fill the in-flight limit: `Critical` is refused only at the limit.
    let shedder = layer.shedder();
    let mut rng = SplitMix64::new(7);
    let mut held: Vec<_> = (0..limit)
        .map(|_| shedder.try_acquire(Priority::Critical, &mut rng).unwrap())
        .collect();
    assert_eq!(layer.stats().in_flight, limit);

    let Some(delay) = queue else {
        let mut ready = task::spawn(std::future::poll_fn(|cx| svc.poll_ready(cx)));
        assert_ready!(ready.poll()).unwrap();
        drop(ready);
        check_refusal(&svc.call(2).await.unwrap_err());
        return Fate::Served;
    };

    // The next call queues; its deadline (whatever `max_queue_delay` is)
    // passes on paused time and it is refused.
    {
        let mut ready = task::spawn(std::future::poll_fn(|cx| svc.poll_ready(cx)));
        assert_pending!(ready.poll());
        assert_eq!(layer.stats().queued, 1);
        tokio::time::advance(delay + Duration::from_millis(1)).await;
        assert!(ready.is_woken(), "woken at the deadline");
        assert_ready!(ready.poll()).unwrap();
    }
    check_refusal(&svc.call(3).await.unwrap_err());

    // Queued again; a finishing call hands its slot over.
    {
        let mut ready = task::spawn(std::future::poll_fn(|cx| svc.poll_ready(cx)));
        assert_pending!(ready.poll());
        held.pop();
        assert!(ready.is_woken(), "woken by the hand-over");
        assert_ready!(ready.poll()).unwrap();
    }
    match svc.call(4).await {
        Ok(x) => assert_eq!(x, 4),
        Err(e) => check_refusal(&e),
    }
    drop(held);
    assert_eq!(layer.stats().in_flight, 0);
    Fate::Queued
}

/// Runs `build` with the panic caught: a panic is the failure this test
/// looks for, reported with the config that caused it.
fn fate(
    what: &str,
    queue: Option<Duration>,
    build: impl FnOnce() -> Result<ShedLayer, seawall_core::ConfigError>,
) -> Result<Fate, TestCaseError> {
    catch_unwind(AssertUnwindSafe(|| run(queue, build))).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("?");
        TestCaseError::fail(format!("{what} panicked: {msg}"))
    })
}

#[test]
fn every_hostile_builder_value_is_refused_or_served() {
    let served = AtomicUsize::new(0);
    let queued = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&fields(), |f| {
            let b = builder(&f);
            let config = b.config().clone();
            let fate_b = fate("builder", config.max_queue_delay, || b.build())?;
            // The same config as data must meet the same fate.
            let fate_c = fate("from_config", config.max_queue_delay, || {
                ShedLayer::from_config(&config)
            })?;
            prop_assert_eq!(&fate_b, &fate_c);
            let counter = match fate_b {
                Fate::Refused => &refused,
                Fate::Served => &served,
                Fate::Queued => &queued,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let (r, s, q) = (
        refused.into_inner(),
        served.into_inner(),
        queued.into_inner(),
    );
    // The generator reaches every outcome, so the serving paths really ran.
    assert!(
        r > 100 && s > 20 && q > 20,
        "refused {r}, served {s}, queued {q}"
    );
}

/// The same values through TOML, as a config file would give them.
#[cfg(feature = "serde")]
mod toml_config {
    use super::*;
    use seawall_shed::ShedConfig;

    /// Formats `config` as the TOML a user would write.
    fn to_toml(config: &ShedConfig) -> String {
        fn float(x: f64) -> String {
            if x.is_nan() {
                "nan".into()
            } else if x.is_infinite() {
                if x > 0.0 { "inf" } else { "-inf" }.into()
            } else {
                format!("{x:?}")
            }
        }
        fn duration(d: Duration) -> String {
            match d.subsec_nanos() {
                0 => format!("\"{}s\"", d.as_secs()),
                n if d.as_secs() == 0 => format!("\"{n}ns\""),
                n => format!("\"{}s {n}ns\"", d.as_secs()),
            }
        }
        let mut t = String::from("name = \"hostile\"\n");
        let limit = match &config.limit {
            Limit::Fixed(n) => format!("{{ fixed = {n} }}"),
            Limit::Aimd(a) => format!(
                "{{ aimd = {{ initial = {}, min = {}, max = {}, backoff_ratio = {}, timeout = {} }} }}",
                a.initial,
                a.min,
                a.max,
                float(a.backoff_ratio),
                duration(a.timeout)
            ),
            Limit::Gradient2(g) => format!(
                "{{ gradient2 = {{ initial = {}, min = {}, max = {}, smoothing = {}, queue_size = {}, \
                 tolerance = {}, long_window = {} }} }}",
                g.initial,
                g.min,
                g.max,
                float(g.smoothing),
                g.queue_size,
                float(g.tolerance),
                g.long_window
            ),
            Limit::Vegas(v) => format!(
                "{{ vegas = {{ initial = {}, min = {}, max = {}, smoothing = {}, alpha = {}, \
                 beta = {}, probe_multiplier = {} }} }}",
                v.initial,
                v.min,
                v.max,
                float(v.smoothing),
                float(v.alpha),
                float(v.beta),
                v.probe_multiplier
            ),
        };
        t += &format!("limit = {limit}\n");
        if let Some(s) = config.soft_limit {
            t += &format!("soft_limit = {s}\n");
        }
        t += &format!("critical_headroom = {}\n", float(config.critical_headroom));
        t += &format!("retry_after = {}\n", duration(config.retry_after));
        t += &format!("window = {}\n", duration(config.window));
        t += &format!("window_min_samples = {}\n", config.window_min_samples);
        if let Some(d) = config.max_queue_delay {
            t += &format!("max_queue_delay = {}\n", duration(d));
        }
        t += &format!("queue_capacity = {}\n", config.queue_capacity);
        if let Some(s) = config.seed {
            t += &format!("seed = {s}\n");
        }
        if let Some(m) = &config.memory_pressure {
            t += "[memory_pressure]\n";
            t += &format!("interval = {}\n", duration(m.interval));
            t += &format!("shed_sheddable_at = {}\n", float(m.shed_sheddable_at));
            t += &format!("shed_normal_at = {}\n", float(m.shed_normal_at));
            t += &format!("hysteresis = {}\n", float(m.hysteresis));
            if let Some(b) = m.rss_budget {
                t += &format!("rss_budget = {b}\n");
            }
        }
        t
    }

    #[test]
    fn every_hostile_toml_value_is_refused_or_served() {
        let parsed = AtomicUsize::new(0);
        let served = AtomicUsize::new(0);
        let mut runner = TestRunner::new(Config {
            cases: 400,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&fields(), |f| {
                let config = builder(&f).config().clone();
                let text = to_toml(&config);
                // TOML integers stop at i64::MAX, and a duration may not parse:
                // a parse error is a refusal too.
                let Ok(loaded) = toml::from_str::<ShedConfig>(&text) else {
                    return Ok(());
                };
                parsed.fetch_add(1, Ordering::Relaxed);
                let fate = fate(&text, loaded.max_queue_delay, || {
                    ShedLayer::from_config(&loaded)
                })?;
                if fate != Fate::Refused {
                    served.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
            .unwrap();
        let (p, s) = (parsed.into_inner(), served.into_inner());
        assert!(p > 100 && s > 20, "parsed {p}, served {s}");
    }
}

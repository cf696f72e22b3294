//! Memory pressure: a fake memory source sampled on paused time drives the
//! level through its thresholds and hysteresis; the shedder sheds by
//! priority; the sampler ends when the signal is gone.

use seawall_core::rand::SplitMix64;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use seawall_core::{OverloadReason, Rejection};
use seawall_shed::{
    ManualPressure, MemoryPressure, MemoryPressureConfig, MemorySample, MemorySource,
    PressureLevel, PressureSignal, Priority, ShedConfig, ShedLayer, Shedder,
};
use seawall_test_support::runtime;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Memory used out of 1000, set by the test; fails while `fail` is set.
#[derive(Clone, Default)]
struct Fake {
    used: Arc<AtomicU64>,
    fail: Arc<AtomicBool>,
}

impl Fake {
    fn set(&self, used: u64) {
        self.used.store(used, Ordering::Relaxed);
    }
}

impl MemorySource for Fake {
    fn sample(&mut self) -> io::Result<MemorySample> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(io::Error::other("unreadable"));
        }
        Ok(MemorySample {
            used: self.used.load(Ordering::Relaxed),
            limit: 1000,
        })
    }
}

const INTERVAL: Duration = Duration::from_secs(1);

fn config() -> MemoryPressureConfig {
    MemoryPressureConfig::new().interval(INTERVAL)
}

/// Lets exactly one more sample happen (time is paused and auto-advances).
async fn next_sample() {
    tokio::time::sleep(INTERVAL + Duration::from_millis(1)).await;
}

fn priority(req: &&'static str) -> Priority {
    match *req {
        "batch" => Priority::Sheddable,
        "health" => Priority::Critical,
        _ => Priority::Normal,
    }
}

/// Sends one request of each priority; which were admitted.
async fn admitted<S>(svc: &mut S) -> [bool; 3]
where
    S: Service<&'static str, Response = usize, Error = seawall_core::BoxError>,
{
    let mut out = [false; 3];
    for (i, req) in ["batch", "query", "health"].into_iter().enumerate() {
        match svc.ready().await.unwrap().call(req).await {
            Ok(_) => out[i] = true,
            Err(e) => {
                let Some(Rejection::Overloaded(o)) = Rejection::find(&*e) else {
                    panic!("not a rejection: {e}")
                };
                assert_eq!(o.reason(), OverloadReason::MemoryPressure);
                assert_eq!(o.retry_after(), Some(Duration::from_millis(100)));
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn levels_priorities_and_hysteresis() {
    let fake = Fake::default();
    fake.set(500);
    let memory = MemoryPressure::with_source(&config(), fake.clone()).unwrap();
    // The first sample is taken at once.
    assert_eq!(memory.stats().samples, 1);
    assert_eq!(memory.stats().ratio, 0.5);
    let layer = ShedLayer::builder()
        .pressure_signal(memory.clone())
        .priority(priority)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|req: &'static str| async move {
            Ok::<_, io::Error>(req.len())
        }));
    assert_eq!(admitted(&mut svc).await, [true, true, true]);

    // The level moves only when the sampler runs, not per call.
    fake.set(750);
    assert_eq!(memory.level(), PressureLevel::Normal);
    next_sample().await;
    assert_eq!(memory.level(), PressureLevel::Elevated);
    assert_eq!(layer.stats().pressure, PressureLevel::Elevated);
    assert_eq!(admitted(&mut svc).await, [false, true, true]);

    fake.set(950);
    next_sample().await;
    assert_eq!(layer.stats().pressure, PressureLevel::Severe);
    assert_eq!(admitted(&mut svc).await, [false, false, true]);

    // Within the hysteresis margin below 0.9: stays Severe.
    fake.set(870);
    next_sample().await;
    assert_eq!(memory.level(), PressureLevel::Severe);
    assert_eq!(admitted(&mut svc).await, [false, false, true]);
    // Below 0.85: down one level.
    fake.set(840);
    next_sample().await;
    assert_eq!(memory.level(), PressureLevel::Elevated);
    // 0.66 is within the margin below 0.7: still Elevated.
    fake.set(660);
    next_sample().await;
    assert_eq!(memory.level(), PressureLevel::Elevated);
    assert_eq!(admitted(&mut svc).await, [false, true, true]);
    fake.set(600);
    next_sample().await;
    assert_eq!(memory.level(), PressureLevel::Normal);
    assert_eq!(admitted(&mut svc).await, [true, true, true]);

    let stats = layer.stats();
    assert_eq!(stats.shed.memory_pressure, 6);
    assert_eq!(stats.shed.total(), 6);
    assert_eq!(stats.admitted, 12);
    let m = memory.stats();
    assert_eq!((m.samples, m.errors, m.changes), (7, 0, 4));
    assert_eq!((m.used, m.limit, m.ratio), (600, 1000, 0.6));
    assert_eq!(m.source, "custom");
}

#[tokio::test(start_paused = true)]
async fn a_failed_sample_keeps_the_level() {
    let fake = Fake::default();
    fake.set(950);
    let memory = MemoryPressure::with_source(&config(), fake.clone()).unwrap();
    assert_eq!(memory.level(), PressureLevel::Severe);
    fake.fail.store(true, Ordering::Relaxed);
    fake.set(0);
    next_sample().await;
    next_sample().await;
    assert_eq!(memory.level(), PressureLevel::Severe);
    assert_eq!((memory.stats().samples, memory.stats().errors), (1, 2));
    fake.fail.store(false, Ordering::Relaxed);
    next_sample().await;
    assert_eq!(memory.level(), PressureLevel::Normal);
}

#[tokio::test(start_paused = true)]
async fn the_sampler_ends_when_the_signal_is_dropped() {
    let fake = Fake::default();
    let memory = MemoryPressure::with_source(&config(), fake.clone()).unwrap();
    let layer = ShedLayer::builder()
        .pressure_signal(memory.clone())
        .build()
        .unwrap();
    // The task owns a clone of the source.
    assert_eq!(Arc::strong_count(&fake.used), 2);
    drop(memory);
    next_sample().await;
    // The layer still holds the signal: the task goes on sampling.
    assert_eq!(Arc::strong_count(&fake.used), 2);
    fake.set(800);
    next_sample().await;
    assert_eq!(layer.stats().pressure, PressureLevel::Elevated);
    drop(layer);
    next_sample().await;
    // Ended at its next tick, and dropped its source with it.
    assert_eq!(Arc::strong_count(&fake.used), 1);
}

#[tokio::test(start_paused = true)]
async fn the_tower_free_shedder_sheds_by_pressure_without_allocating_an_error() {
    let signal = ManualPressure::new();
    let shedder = Shedder::with_pressure(&ShedConfig::default(), signal.clone()).unwrap();
    let mut rng = SplitMix64::new(1);
    signal.set(PressureLevel::Severe);
    let err = shedder.try_acquire(Priority::Normal, &mut rng).unwrap_err();
    assert_eq!(err.reason(), OverloadReason::MemoryPressure);
    assert!(err.to_string().contains("memory pressure"), "{err}");
    let p = shedder.try_acquire(Priority::Critical, &mut rng).unwrap();
    assert_eq!(shedder.stats().in_flight, 1);
    drop(p);
    signal.set(PressureLevel::Normal);
    assert!(shedder.try_acquire(Priority::Sheddable, &mut rng).is_ok());
    assert_eq!(shedder.stats().shed.memory_pressure, 1);
    assert_eq!(shedder.stats().in_flight, 0);
}

#[tokio::test]
async fn the_hard_limit_comes_before_pressure() {
    let signal = ManualPressure::new();
    signal.set(PressureLevel::Severe);
    let shedder = Shedder::with_pressure(
        &ShedConfig::new().limit(seawall_shed::Limit::Fixed(1)),
        signal,
    )
    .unwrap();
    let mut rng = SplitMix64::new(1);
    let _held = shedder.try_acquire(Priority::Critical, &mut rng).unwrap();
    let err = shedder.try_acquire(Priority::Normal, &mut rng).unwrap_err();
    assert_eq!(err.reason(), OverloadReason::HardLimit);
}

#[tokio::test]
async fn built_from_config_on_this_machine() {
    let layer = ShedLayer::builder()
        .name("api")
        .memory_pressure(MemoryPressureConfig::default())
        .build()
        .unwrap();
    // A real sample was taken when the layer was built.
    let direct = MemoryPressure::start(&MemoryPressureConfig::default()).unwrap();
    let s = direct.stats();
    assert_eq!(s.samples, 1, "{s:?}");
    assert!(s.used > 1 << 20 && s.limit >= s.used, "{s:?}");
    assert!(["cgroup", "rss"].contains(&s.source));
    // Both read the same memory a moment apart: the same level, unless a
    // threshold lies exactly between the two samples.
    let _ = layer.stats().pressure;
    // The same through the config a file would give.
    let config = ShedConfig::new().memory_pressure(MemoryPressureConfig::default());
    assert!(ShedLayer::from_config(&config).is_ok());
    assert!(Shedder::new(&config).is_ok());
}

#[test]
fn outside_a_runtime_it_is_a_config_error_not_a_panic() {
    let e = ShedLayer::builder()
        .memory_pressure(MemoryPressureConfig::default())
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "memory_pressure");
    assert!(e.reason().contains("tokio runtime"), "{e}");
    // A hand-made signal needs no runtime.
    assert!(
        ShedLayer::builder()
            .pressure_signal(ManualPressure::new())
            .build()
            .is_ok()
    );
}

#[test]
fn bad_thresholds_are_named_by_their_path() {
    let e = ShedLayer::builder()
        .memory_pressure(
            MemoryPressureConfig::new()
                .shed_sheddable_at(0.95)
                .shed_normal_at(0.9)
                .hysteresis(1.0)
                .interval(Duration::ZERO),
        )
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "memory_pressure.interval: 0ns is not in 10ms..=3600s; \
         memory_pressure.shed_sheddable_at: 0.95 must be at most shed_normal_at (0.9); \
         memory_pressure.hysteresis: 1 is not in 0..shed_sheddable_at (0.95)"
    );
}

#[test]
fn the_last_setter_wins() {
    let b = ShedLayer::builder()
        .pressure_signal(ManualPressure::new())
        .memory_pressure(MemoryPressureConfig::default());
    assert!(b.config().memory_pressure.is_some());
    let b = b.pressure_signal(ManualPressure::new());
    assert!(b.config().memory_pressure.is_none());
    // No runtime needed: the signal replaced the config.
    assert!(b.build().is_ok());
}

#[test]
fn the_interval_is_bounded() {
    let with = |interval| MemoryPressureConfig::new().interval(interval).validate();
    let ms = Duration::from_millis;
    assert_eq!(MemoryPressureConfig::MIN_INTERVAL, ms(10));
    assert_eq!(
        MemoryPressureConfig::MAX_INTERVAL,
        Duration::from_secs(3600)
    );
    for ok in [ms(10), ms(250), Duration::from_secs(3600)] {
        assert!(with(ok).is_ok(), "{ok:?}");
    }
    for bad in [
        Duration::ZERO,
        Duration::from_nanos(1),
        ms(9),
        Duration::from_secs(3600) + Duration::from_nanos(1),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ] {
        let e = with(bad).unwrap_err();
        assert_eq!(e.field(), "interval");
        assert_eq!(e.reason(), "is not in 10ms..=3600s", "{bad:?}");
    }
    // Through the layer, with its path; before any sampler starts.
    let e = ShedLayer::builder()
        .memory_pressure(MemoryPressureConfig::new().interval(Duration::from_secs(u64::MAX)))
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "memory_pressure.interval: 18446744073709551615s is not in 10ms..=3600s"
    );
}

/// Counts its samples.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl MemorySource for Counting {
    fn sample(&mut self) -> io::Result<MemorySample> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(MemorySample { used: 1, limit: 10 })
    }
}

#[tokio::test(start_paused = true)]
async fn the_shortest_and_longest_intervals_sample_on_time() {
    for (interval, over, expect) in [
        // 10ms over one second: 100 samples, no more (no busy loop).
        (
            MemoryPressureConfig::MIN_INTERVAL,
            Duration::from_secs(1),
            100,
        ),
        // One hour over three hours: 3 (the deadline did not overflow).
        (
            MemoryPressureConfig::MAX_INTERVAL,
            Duration::from_secs(3 * 3600),
            3,
        ),
    ] {
        let source = Counting::default();
        let memory = MemoryPressure::with_source(
            &MemoryPressureConfig::new().interval(interval),
            source.clone(),
        )
        .unwrap();
        assert_eq!(source.0.load(Ordering::Relaxed), 1, "the first sample");
        tokio::time::sleep(over + Duration::from_millis(1)).await;
        assert_eq!(source.0.load(Ordering::Relaxed), 1 + expect, "{interval:?}");
        assert!(memory.stats().sampling);
    }
}

/// Panics while `panic` is set, otherwise reads like `Fake`.
#[derive(Clone, Default)]
struct Panicky {
    fake: Fake,
    panic: Arc<AtomicBool>,
}

impl MemorySource for Panicky {
    fn sample(&mut self) -> io::Result<MemorySample> {
        if self.panic.load(Ordering::Relaxed) {
            panic!("a bug in the source");
        }
        self.fake.sample()
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_is_a_failed_sample_and_the_sampler_goes_on() {
    let source = Panicky::default();
    source.fake.set(950);
    let memory = MemoryPressure::with_source(&config(), source.clone()).unwrap();
    assert_eq!(memory.level(), PressureLevel::Severe);
    source.panic.store(true, Ordering::Relaxed);
    next_sample().await;
    next_sample().await;
    let s = memory.stats();
    assert_eq!(
        (s.level, s.samples, s.errors),
        (PressureLevel::Severe, 1, 2)
    );
    assert!(s.sampling);
    // Still sampling: the level follows the source again.
    source.panic.store(false, Ordering::Relaxed);
    source.fake.set(100);
    next_sample().await;
    assert_eq!(memory.level(), PressureLevel::Normal);
    assert_eq!(memory.stats().samples, 2);

    // A panic in the very first sample fails nothing either.
    source.panic.store(true, Ordering::Relaxed);
    let other = MemoryPressure::with_source(&config(), source.clone()).unwrap();
    assert_eq!((other.stats().samples, other.stats().errors), (0, 1));
    assert_eq!(other.level(), PressureLevel::Normal);
}

#[test]
fn a_sampler_that_stops_does_not_leave_the_level_frozen() {
    let rt = runtime::paused();
    let fake = Fake::default();
    fake.set(950);
    let memory = rt.block_on(async {
        let memory = MemoryPressure::with_source(&config(), fake.clone()).unwrap();
        next_sample().await;
        memory
    });
    assert_eq!(memory.level(), PressureLevel::Severe);
    assert!(memory.stats().sampling);
    // The runtime goes away, and the sampler with it, while the signal is
    // still in use: the level it can no longer measure is not kept.
    drop(rt);
    let s = memory.stats();
    assert!(!s.sampling);
    assert_eq!(s.level, PressureLevel::Normal);
    assert_eq!(memory.level(), PressureLevel::Normal);
}

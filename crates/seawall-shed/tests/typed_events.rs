//! The shedder's typed events (`seawall_core::event`): an adaptive limit's
//! changes, at most one event a second and never missing the net change;
//! a memory-pressure signal's level changes.
//!
//! The hub is per process and these tests run in parallel: each keeps only
//! the events of its own layer name (the memory-pressure signal made from a
//! source is always named `default`, so its test is the only one of this
//! binary with such a signal).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seawall_core::event::{self, EventKind, PressureLevel, Subscriber};
use seawall_core::rand::SplitMix64;
use seawall_core::{Clock, Outcome};
use seawall_shed::{
    Aimd, Limit, MemoryPressure, MemoryPressureConfig, MemorySample, MemorySource, Priority,
    ShedConfig, Shedder,
};

fn limits(name: &str, events: &mut Subscriber) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    while let Some(e) = events.try_recv() {
        if &*e.layer == name
            && let EventKind::ShedLimitChanged { old, new, .. } = e.kind
        {
            out.push((old, new));
        }
    }
    out
}

#[test]
fn limit_changes_are_reported_at_most_once_a_second() {
    let (clock, hand) = Clock::manual();
    // A 10ms window closed by every call: the limit may move on every call.
    let config = ShedConfig::new()
        .name("ev-shed-limit")
        .limit(Limit::Aimd(Aimd::new().initial(2).min(1).max(100)))
        .window(Duration::from_millis(10))
        .window_min_samples(1);
    let shedder = Shedder::with_clock(&config, clock).unwrap();
    let mut rng = SplitMix64::new(1);
    let mut events = event::subscribe(1024);
    // A round: as many calls as the limit, all in flight at once (full use
    // grows AIMD by one), ending `ms` later.
    let mut round = |ms: u64| {
        let permits: Vec<_> = (0..shedder.limit())
            .map(|_| shedder.try_acquire(Priority::Normal, &mut rng).unwrap())
            .collect();
        hand.advance(Duration::from_millis(ms));
        for p in permits {
            p.finish(Outcome::Success);
        }
    };
    round(10); // 2 -> 3: reported at once
    assert_eq!(shedder.limit(), 3);
    assert_eq!(limits("ev-shed-limit", &mut events), [(2, 3)]);
    for _ in 0..5 {
        round(10); // grows every window, folded
    }
    assert_eq!(shedder.limit(), 8);
    assert_eq!(limits("ev-shed-limit", &mut events), []);
    // The second since the report is over: the next completion reports
    // the net change, from what was last reported.
    round(1000);
    let now = shedder.limit();
    assert!(now > 8);
    assert_eq!(limits("ev-shed-limit", &mut events), [(3, now)]);
}

#[test]
fn a_reload_of_a_fixed_limit_is_reported() {
    let config = ShedConfig::new()
        .name("ev-shed-fixed")
        .limit(Limit::Fixed(10));
    let shedder = Shedder::new(&config).unwrap();
    let mut events = event::subscribe(16);
    shedder
        .reload(&config.clone().limit(Limit::Fixed(40)))
        .unwrap();
    shedder
        .reload(&config.clone().limit(Limit::Fixed(40)))
        .unwrap(); // no change
    shedder
        .reload(&config.clone().limit(Limit::Fixed(5)))
        .unwrap();
    assert_eq!(limits("ev-shed-fixed", &mut events), [(10, 40), (40, 5)]);
}

struct Fake(Arc<AtomicU64>);

impl MemorySource for Fake {
    fn sample(&mut self) -> io::Result<MemorySample> {
        Ok(MemorySample {
            used: self.0.load(Ordering::Relaxed),
            limit: 1000,
        })
    }
}

#[tokio::test(start_paused = true)]
async fn pressure_level_changes_are_events() {
    const INTERVAL: Duration = Duration::from_secs(1);
    let used = Arc::new(AtomicU64::new(100));
    let mut events = event::subscribe(1024);
    let memory = MemoryPressure::with_source(
        &MemoryPressureConfig::new().interval(INTERVAL),
        Fake(Arc::clone(&used)),
    )
    .unwrap();
    for u in [950, 950, 600] {
        used.store(u, Ordering::Relaxed);
        tokio::time::sleep(INTERVAL + Duration::from_millis(1)).await;
    }
    let mut levels = Vec::new();
    while let Some(e) = events.try_recv() {
        if &*e.layer == "default"
            && let EventKind::PressureChanged { old, new, .. } = e.kind
        {
            levels.push((old, new));
        }
    }
    assert_eq!(
        levels,
        [
            (PressureLevel::Normal, PressureLevel::Severe),
            (PressureLevel::Severe, PressureLevel::Normal),
        ]
    );
    drop(memory);
}

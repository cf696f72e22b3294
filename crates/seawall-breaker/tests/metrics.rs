//! With feature `metrics`: the state gauge, transition and rejection
//! counters, under seawall-core's names and labels.
#![cfg(feature = "metrics")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use seawall_breaker::{CircuitBreaker, TripPolicy};

#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    fn absolute(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, v: f64) {
        self.0.store(v as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Rec(Mutex<Vec<(String, Arc<Cell>)>>);

impl Rec {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut all = self.0.lock().unwrap();
        if let Some((_, c)) = all.iter().find(|(n, _)| *n == name) {
            return c.clone();
        }
        let c = Arc::new(Cell::default());
        all.push((name, c.clone()));
        c
    }

    fn value(&self, name: &str) -> Option<u64> {
        let all = self.0.lock().unwrap();
        all.iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.0.load(Ordering::Relaxed))
    }
}

impl Recorder for &'static Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn transitions_and_rejections_are_reported() {
    let rec: &'static Rec = Box::leak(Box::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _g = rt.enter();
    metrics::with_local_recorder(&rec, || {
        let b = CircuitBreaker::builder()
            .name("db")
            .policy(TripPolicy::consecutive_failures(1))
            .build_breaker()
            .unwrap();
        b.try_acquire().unwrap().failure();
        assert!(b.try_acquire().is_err());
        assert!(b.try_acquire().is_err());
    });
    assert_eq!(rec.value("seawall_breaker_state{name=db}"), Some(1));
    assert_eq!(
        rec.value("seawall_breaker_transitions_total{name=db,state=open}"),
        Some(1)
    );
    assert_eq!(
        rec.value("seawall_breaker_rejected_total{name=db}"),
        Some(2)
    );
}

impl Rec {
    // Distinct series of `name` labelled with a key.
    fn keyed_series(&self, name: &str) -> usize {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(n, _)| n.starts_with(&format!("{name}{{")) && n.contains("key="))
            .count()
    }
}

// `keys` keys, each tripped then reset (two transitions each), through a
// map of 100: per-key series must stay bounded by the map, not the keys seen.
fn churn(keys: u32, key_metrics: bool) -> &'static Rec {
    use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, KeyedBreakerLayer};
    let rec: &'static Rec = Box::leak(Box::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&rec, || {
        rt.block_on(async {
            let layer = KeyedBreakerLayer::new(
                |k: &u32| *k,
                KeyedBreakerConfig {
                    breaker: BreakerConfig {
                        name: "peers".into(),
                        policy: TripPolicy::consecutive_failures(1),
                        ..BreakerConfig::default()
                    },
                    capacity: 100,
                    key_metrics,
                    ..KeyedBreakerConfig::default()
                },
            )
            .unwrap();
            for key in 0..keys {
                // Every key held is fresh here, so there is always room.
                let b = layer.breaker_or_insert(key).expect("room for a new key");
                b.try_acquire().unwrap().failure();
                assert_eq!(b.state(), seawall_breaker::State::Open);
                b.reset();
            }
            assert!(layer.len() <= 100);
            // The overflow breaker: a full map's newcomers trip it.
            for key in 0..100u32 {
                layer.force_open(100_000 + key);
            }
            layer.overflow_breaker().trip();
        })
    });
    rec
}

#[test]
fn per_key_series_are_bounded_by_the_map_not_the_keys_seen() {
    let rec = churn(20_000, false);
    let series = rec.keyed_series("seawall_breaker_state");
    assert!(series <= 200, "{series} per-key series");
    assert_eq!(series, 1, "only the overflow breaker's");
    assert_eq!(
        rec.value("seawall_breaker_state{key=(overflow),name=peers}"),
        Some(1)
    );
    assert_eq!(
        rec.value("seawall_breaker_transitions_total{name=peers,state=open}"),
        Some(20_001)
    );
}

#[test]
fn key_metrics_label_every_key_that_changed_state() {
    let rec = churn(1_000, true);
    assert_eq!(
        rec.value("seawall_breaker_state{key=7,name=peers}"),
        Some(0)
    );
    assert_eq!(
        rec.value("seawall_breaker_state{key=100007,name=peers}"),
        Some(3)
    );
}

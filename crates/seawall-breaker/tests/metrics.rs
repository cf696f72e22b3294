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

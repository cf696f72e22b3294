//! With feature `metrics`: per-key series live only while their key does.
#![cfg(feature = "metrics")]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use seawall_timeout::AdaptiveTimeoutLayer;
use tower::{Layer, Service, service_fn};

/// A gauge's last value, as `f64` bits.
#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, _: u64) {}
    fn absolute(&self, _: u64) {}
}

impl GaugeFn for Cell {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

/// Every series registered: (name, has a `key` label, value).
#[derive(Default)]
struct Rec(Mutex<Vec<(String, bool, Arc<Cell>)>>);

impl Rec {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let keyed = key.labels().any(|l| l.key() == "key");
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut all = self.0.lock().unwrap();
        if let Some((_, _, c)) = all.iter().find(|(n, _, _)| *n == name) {
            return c.clone();
        }
        let c = Arc::new(Cell::default());
        all.push((name, keyed, c.clone()));
        c
    }

    /// Per-key series registered, and those whose value is not NaN (what an
    /// exporter still shows as a live deadline).
    fn keyed(&self) -> (usize, usize) {
        let all = self.0.lock().unwrap();
        let keyed: Vec<_> = all.iter().filter(|(_, k, _)| *k).collect();
        let live = keyed
            .iter()
            .filter(|(_, _, c)| !f64::from_bits(c.0.load(Ordering::Relaxed)).is_nan())
            .count();
        (keyed.len(), live)
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

/// Sends `calls` calls for each of `keys` through a keyed layer of 100 keys
/// whose keys learn a deadline after 2 samples; returns (per-key series
/// registered, per-key series live).
fn churn(keys: u64, calls: u32) -> (usize, usize) {
    let rec: &'static Rec = Box::leak(Box::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _g = rt.enter();
    metrics::with_local_recorder(&rec, || {
        let mut cx = Context::from_waker(Waker::noop());
        let layer = AdaptiveTimeoutLayer::builder()
            .name("peers")
            .key_capacity(100)
            .min_samples(2)
            .refresh_every(1)
            .build_keyed(|k: &u64| *k)
            .unwrap();
        let mut svc = layer.layer(service_fn(|k: u64| {
            std::future::ready(Ok::<_, std::io::Error>(k))
        }));
        for k in 0..keys {
            for _ in 0..calls {
                assert!(svc.poll_ready(&mut cx).is_ready());
                let mut fut = pin!(svc.call(k));
                assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
            }
            // Each key's window drains before the next arrives, so that it
            // may be evicted (a learned deadline is kept while it is fresh).
            rt.block_on(tokio::time::advance(std::time::Duration::from_secs(71)));
        }
        assert!(layer.len() <= 100);
    });
    rec.keyed()
}

#[test]
fn a_key_that_never_learns_a_deadline_registers_no_series() {
    let (registered, live) = churn(20_000, 1);
    assert_eq!((registered, live), (0, 0));
}

#[test]
fn per_key_series_live_only_while_their_key_does() {
    let (registered, live) = churn(20_000, 2);
    assert_eq!(registered, 20_000, "each key learned a deadline");
    assert!(live <= 100, "{live} live per-key series");
}

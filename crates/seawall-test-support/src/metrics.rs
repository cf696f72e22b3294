//! A `metrics::Recorder` that keeps every counter and gauge registered
//! through it, so a test can read back what a layer reported (feature
//! `metrics`).
//!
//! Install it for a span of code with `metrics::with_local_recorder`; the
//! handles it gives out stay live after that span, so values set later (from
//! a layer's own clone, or when a key is evicted) are still recorded.
//!
//! ```
//! use seawall_test_support::metrics::Recording;
//!
//! let rec = Recording::default();
//! metrics::with_local_recorder(&rec, || {
//!     metrics::counter!("calls_total", "name" => "db").increment(2);
//!     metrics::gauge!("state", "name" => "db", "key" => "7").set(1.0);
//! });
//! assert_eq!(rec.counter("calls_total{name=db}"), Some(2));
//! assert_eq!(rec.gauge("state{key=7,name=db}"), Some(1.0));
//! assert_eq!(rec.series().iter().filter(|s| s.label("key").is_some()).count(), 1);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};

/// A counter's total.
#[derive(Debug, Default)]
struct CounterCell(AtomicU64);

impl CounterFn for CounterCell {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }

    fn absolute(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// A gauge's value, as `f64` bits.
#[derive(Debug, Default)]
struct GaugeCell(AtomicU64);

impl GaugeCell {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, v: f64) {
        self.update(|x| x + v);
    }

    fn decrement(&self, v: f64) {
        self.update(|x| x - v);
    }

    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

#[derive(Debug)]
enum Cell {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
}

#[derive(Debug)]
struct Entry {
    id: String,
    name: String,
    labels: Vec<(String, String)>,
    cell: Cell,
}

/// A series' value when it was read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A gauge's last value (0 until first set).
    Gauge(f64),
}

/// One series registered, as read by [`Recording::series`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The metric's name and its labels sorted by label name:
    /// `name{a=1,b=2}`, or `name{}` without labels.
    pub id: String,
    /// The metric's name.
    pub name: String,
    /// The labels, sorted by label name.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: Value,
}

impl Series {
    /// The value of the label `key`, if the series has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Records every counter and gauge registered, one series per distinct name
/// and label set, in order of first registration. Histograms and
/// descriptions are not kept.
#[derive(Debug, Default)]
pub struct Recording {
    series: Mutex<Vec<Entry>>,
}

impl Recording {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // A test that panicked while registering leaves whole entries: the
        // list is still good to read.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The series of `key`, made by `make` on first registration; `pick`
    /// takes the handle of the kind asked for out of it.
    fn entry<T>(
        &self,
        key: &Key,
        make: impl FnOnce() -> Cell,
        pick: impl Fn(&Cell) -> Option<T>,
    ) -> T {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let rendered: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let id = format!("{}{{{}}}", key.name(), rendered.join(","));
        let mut all = self.lock();
        if let Some(e) = all.iter().find(|e| e.id == id) {
            return pick(&e.cell)
                .unwrap_or_else(|| panic!("{id} registered as both a counter and a gauge"));
        }
        let cell = make();
        let out = pick(&cell).expect("the cell just made");
        all.push(Entry {
            id,
            name: key.name().to_owned(),
            labels,
            cell,
        });
        out
    }

    /// Every series registered so far, with its value now.
    pub fn series(&self) -> Vec<Series> {
        self.lock()
            .iter()
            .map(|e| Series {
                id: e.id.clone(),
                name: e.name.clone(),
                labels: e.labels.clone(),
                value: match &e.cell {
                    Cell::Counter(c) => Value::Counter(c.0.load(Ordering::Relaxed)),
                    Cell::Gauge(g) => Value::Gauge(g.get()),
                },
            })
            .collect()
    }

    /// The total of the counter `id` (`name{label=value,…}`, labels sorted),
    /// or `None` if no such counter was registered.
    pub fn counter(&self, id: &str) -> Option<u64> {
        self.lock()
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| match &e.cell {
                Cell::Counter(c) => Some(c.0.load(Ordering::Relaxed)),
                Cell::Gauge(_) => None,
            })
    }

    /// The value of the gauge `id` (`name{label=value,…}`, labels sorted),
    /// or `None` if no such gauge was registered.
    pub fn gauge(&self, id: &str) -> Option<f64> {
        self.lock()
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| match &e.cell {
                Cell::Gauge(g) => Some(g.get()),
                Cell::Counter(_) => None,
            })
    }
}

impl Recorder for Recording {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let cell = self.entry(
            key,
            || Cell::Counter(Arc::default()),
            |c| match c {
                Cell::Counter(c) => Some(c.clone()),
                Cell::Gauge(_) => None,
            },
        );
        Counter::from_arc(cell)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let cell = self.entry(
            key,
            || Cell::Gauge(Arc::default()),
            |c| match c {
                Cell::Gauge(g) => Some(g.clone()),
                Cell::Counter(_) => None,
            },
        );
        Gauge::from_arc(cell)
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

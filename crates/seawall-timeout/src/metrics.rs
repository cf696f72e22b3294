//! `metrics` reporting (feature `metrics`): handles registered once, when
//! the tracker is built, so reporting never allocates on the call path.
//! Install the recorder before building the layer.

use metrics::{Counter, Gauge};
use seawall_core::names::{LABEL_KEY, LABEL_NAME, TIMEOUT_DEADLINE_SECONDS, TIMEOUT_ELAPSED_TOTAL};

pub(crate) struct Handles {
    deadline: Gauge,
    elapsed: Counter,
}

impl Handles {
    /// The deadline gauge of a keyed layer carries the key; the counter never
    /// does (per-call series stay bounded by the name alone).
    pub(crate) fn new(name: &str, key: Option<&str>) -> Self {
        let name = name.to_owned();
        let deadline = match key {
            Some(k) => metrics::gauge!(
                TIMEOUT_DEADLINE_SECONDS,
                LABEL_NAME => name.clone(),
                LABEL_KEY => k.to_owned()
            ),
            None => metrics::gauge!(TIMEOUT_DEADLINE_SECONDS, LABEL_NAME => name.clone()),
        };
        Handles {
            deadline,
            elapsed: metrics::counter!(TIMEOUT_ELAPSED_TOTAL, LABEL_NAME => name),
        }
    }

    pub(crate) fn deadline(&self, ns: u64) {
        self.deadline.set(ns as f64 / 1e9);
    }

    pub(crate) fn elapsed(&self) {
        self.elapsed.increment(1);
    }
}

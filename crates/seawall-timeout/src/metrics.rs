//! `metrics` reporting (feature `metrics`). Install the recorder before
//! building the layer.
//!
//! A layer's handles are registered once, when its tracker is built, so
//! reporting never allocates on the call path. Keys of a keyed layer report
//! nothing of their own unless `key_metrics` is on; then a key gets its own
//! series (`seawall_timeout_deadline_seconds{name, key}`) only once its
//! deadline is learned (adaptive): a key that only ever had the base
//! deadline, e.g. one of a flood of one-shot keys, registers nothing. When
//! the key leaves the map its series is set to NaN and never written again,
//! so that an exporter's idle timeout drops it; the live per-key series are
//! then at most the keys the map holds.

use std::sync::OnceLock;

use metrics::{Counter, Gauge};
use seawall_core::names::{LABEL_KEY, LABEL_NAME, TIMEOUT_DEADLINE_SECONDS, TIMEOUT_ELAPSED_TOTAL};

pub(crate) struct Handles {
    /// Registered at once for a layer's own tracker, on the key's first
    /// learned deadline for a key.
    deadline: OnceLock<Gauge>,
    elapsed: Counter,
    /// A key's deadline is reported (`key_metrics`).
    per_key: bool,
}

impl Handles {
    /// The elapsed counter never carries the key (per-call series stay
    /// bounded by the name alone).
    pub(crate) fn new(name: &str, key: Option<&str>, per_key: bool) -> Self {
        let deadline = OnceLock::new();
        if key.is_none() {
            let _ = deadline.set(metrics::gauge!(
                TIMEOUT_DEADLINE_SECONDS,
                LABEL_NAME => name.to_owned()
            ));
        }
        Handles {
            deadline,
            elapsed: metrics::counter!(TIMEOUT_ELAPSED_TOTAL, LABEL_NAME => name.to_owned()),
            per_key,
        }
    }

    /// Reports the deadline. A key's series is registered the first time its
    /// deadline is `adaptive` (once in the key's life: it allocates the
    /// label); before that, nothing is reported for the key.
    pub(crate) fn deadline(&self, name: &str, key: Option<&str>, ns: u64, adaptive: bool) {
        let gauge = match (self.deadline.get(), key) {
            (Some(g), _) => g,
            (None, Some(k)) if adaptive && self.per_key => self.deadline.get_or_init(|| {
                metrics::gauge!(
                    TIMEOUT_DEADLINE_SECONDS,
                    LABEL_NAME => name.to_owned(),
                    LABEL_KEY => k.to_owned()
                )
            }),
            _ => return,
        };
        gauge.set(ns as f64 / 1e9);
    }

    /// The key left its map: its series reads NaN from now on. The caller
    /// makes sure nothing writes it again.
    pub(crate) fn retire(&self) {
        if let Some(g) = self.deadline.get() {
            g.set(f64::NAN);
        }
    }

    pub(crate) fn elapsed(&self) {
        self.elapsed.increment(1);
    }
}

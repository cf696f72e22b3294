//! `metrics` facade handles, registered once per layer (feature `metrics`).
//!
//! Handles are taken when the layer is built, so install the recorder first.
//! Per call: one counter increment. The limit gauge moves when the limit
//! does; the in-flight gauge when `stats()` is called.

use metrics::{Counter, Gauge, counter, gauge};
use seawall_core::OverloadReason;
use seawall_core::names::{
    LABEL_NAME, LABEL_REASON, SHED_ADMITTED_TOTAL, SHED_IN_FLIGHT, SHED_LIMIT, SHED_REJECTED_TOTAL,
};

#[derive(Debug)]
pub(crate) struct Metrics {
    admitted: Counter,
    rejected: [Counter; 6],
    limit: Gauge,
    in_flight: Gauge,
}

impl Metrics {
    pub(crate) fn new(name: &str) -> Self {
        let rejected = |r: OverloadReason| counter!(SHED_REJECTED_TOTAL, LABEL_NAME => name.to_owned(), LABEL_REASON => r.as_str());
        Metrics {
            admitted: counter!(SHED_ADMITTED_TOTAL, LABEL_NAME => name.to_owned()),
            rejected: [
                rejected(OverloadReason::HardLimit),
                rejected(OverloadReason::Probabilistic),
                rejected(OverloadReason::Priority),
                rejected(OverloadReason::QueueDelay),
                rejected(OverloadReason::QueueFull),
                rejected(OverloadReason::MemoryPressure),
            ],
            limit: gauge!(SHED_LIMIT, LABEL_NAME => name.to_owned()),
            in_flight: gauge!(SHED_IN_FLIGHT, LABEL_NAME => name.to_owned()),
        }
    }

    pub(crate) fn admitted(&self) {
        self.admitted.increment(1);
    }

    pub(crate) fn rejected(&self, reason: OverloadReason) {
        let i = match reason {
            OverloadReason::HardLimit => 0,
            OverloadReason::Probabilistic => 1,
            OverloadReason::Priority => 2,
            OverloadReason::QueueDelay => 3,
            OverloadReason::MemoryPressure => 5,
            _ => 4,
        };
        self.rejected[i].increment(1);
    }

    pub(crate) fn limit(&self, limit: usize) {
        self.limit.set(limit as f64);
    }

    pub(crate) fn in_flight(&self, n: usize) {
        self.in_flight.set(n as f64);
    }
}

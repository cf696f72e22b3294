//! The layer's series in the `metrics` facade (feature `metrics`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Counter, Gauge};
use seawall_core::names::{
    HEDGE_BUDGET_EXHAUSTED_TOTAL, HEDGE_DELAY_SECONDS, HEDGE_NOT_CLONEABLE_TOTAL, HEDGE_SENT_TOTAL,
    HEDGE_WON_TOTAL, LABEL_NAME,
};

/// Handles registered once, when the layer is built: a call increments a
/// handle, it never looks a series up.
#[derive(Debug)]
pub(crate) struct Handles {
    pub(crate) sent: Counter,
    pub(crate) won: Counter,
    pub(crate) budget_exhausted: Counter,
    pub(crate) not_cloneable: Counter,
    delay: Gauge,
    /// The delay last written to `delay`, in nanoseconds (`u64::MAX`:
    /// none yet).
    published: AtomicU64,
}

impl Handles {
    pub(crate) fn new(name: &str) -> Self {
        let name = name.to_owned();
        Handles {
            sent: metrics::counter!(HEDGE_SENT_TOTAL, LABEL_NAME => name.clone()),
            won: metrics::counter!(HEDGE_WON_TOTAL, LABEL_NAME => name.clone()),
            budget_exhausted: metrics::counter!(HEDGE_BUDGET_EXHAUSTED_TOTAL, LABEL_NAME => name.clone()),
            not_cloneable: metrics::counter!(HEDGE_NOT_CLONEABLE_TOTAL, LABEL_NAME => name.clone()),
            delay: metrics::gauge!(HEDGE_DELAY_SECONDS, LABEL_NAME => name),
            published: AtomicU64::new(u64::MAX),
        }
    }

    /// Writes `delay` to the gauge unless it is the value last written:
    /// a read, and writes only when the delay moved. (Two threads racing
    /// on a change may leave the older value in the gauge until the delay
    /// moves again; the gauge is a view, the delay itself is unaffected.)
    pub(crate) fn delay(&self, delay: Duration) {
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX - 1);
        if self.published.load(Relaxed) != ns && self.published.swap(ns, Relaxed) != ns {
            self.delay.set(delay.as_secs_f64());
        }
    }
}

//! The layer's series in the `metrics` facade (feature `metrics`).

use metrics::Counter;
use seawall_core::names::{
    HEDGE_BUDGET_EXHAUSTED_TOTAL, HEDGE_NOT_CLONEABLE_TOTAL, HEDGE_SENT_TOTAL, HEDGE_WON_TOTAL,
    LABEL_NAME,
};

/// Handles registered once, when the layer is built: a call increments a
/// handle, it never looks a series up.
#[derive(Debug)]
pub(crate) struct Handles {
    pub(crate) sent: Counter,
    pub(crate) won: Counter,
    pub(crate) budget_exhausted: Counter,
    pub(crate) not_cloneable: Counter,
}

impl Handles {
    pub(crate) fn new(name: &str) -> Self {
        let name = name.to_owned();
        Handles {
            sent: metrics::counter!(HEDGE_SENT_TOTAL, LABEL_NAME => name.clone()),
            won: metrics::counter!(HEDGE_WON_TOTAL, LABEL_NAME => name.clone()),
            budget_exhausted: metrics::counter!(HEDGE_BUDGET_EXHAUSTED_TOTAL, LABEL_NAME => name.clone()),
            not_cloneable: metrics::counter!(HEDGE_NOT_CLONEABLE_TOTAL, LABEL_NAME => name),
        }
    }
}

//! [`HedgeStats`] and the counters behind it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A snapshot of a hedging layer, from [`HedgeLayer::stats`](crate::HedgeLayer::stats)
/// or [`Hedge::stats`](crate::Hedge::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeStats {
    /// Calls made through the layer (first attempts).
    pub calls: u64,
    /// Hedges sent.
    pub hedges_sent: u64,
    /// Calls answered by a hedge rather than their first attempt.
    pub hedges_won: u64,
    /// Hedges not sent because the budget was spent.
    pub budget_exhausted: u64,
    /// Calls not hedged because their request could not be copied.
    pub not_cloneable: u64,
    /// The delay after which the next call is hedged.
    pub delay: Duration,
    /// Hedges the budget holds now.
    pub budget_balance: u64,
}

impl HedgeStats {
    /// Extra load from hedging: hedges sent per call (0.1 is 10% more calls
    /// to the backend than requests). Zero before the first call.
    pub fn extra_load(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.hedges_sent as f64 / self.calls as f64
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) won: AtomicU64,
    pub(crate) budget_exhausted: AtomicU64,
    pub(crate) not_cloneable: AtomicU64,
}

impl Counters {
    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

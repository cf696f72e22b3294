//! The state behind a keyed budget: one GCRA cell per key in a bounded map,
//! and one shared overflow cell for the keys the map has no room for.
//!
//! What it guarantees, whatever keys the callers choose:
//!
//! - **A throttled key stays throttled.** The map may forget a key only
//!   while its cell equals a fresh one (its whole burst is available again:
//!   it owes nothing), so forgetting it never hands tokens back. Junk keys
//!   cannot push an abuser's spent budget out of the map.
//! - **A full map is no free pass.** A newcomer that finds the map full of
//!   keys that owe tokens is served by the overflow cell, with the same rate
//!   and burst as one key, shared by every such newcomer.
//! - **The protection ends.** A key that stops calling refills within
//!   `burst × per / rate` and may then be forgotten, so the map cannot stay
//!   pinned and newcomers get keys of their own again.
//! - **Small.** A key holds one 16-byte cell behind the map's `Arc`; its
//!   label is formatted only when it is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use seawall_core::event::Throttle;
use seawall_core::{Clock, KeyMap};

use crate::config::KeyedBudgetConfig;
use crate::gcra::{Gcra, Rate};
#[cfg(feature = "quota")]
use crate::quota::Policy;

/// The key that rejections served by the overflow budget carry; see
/// [`KeyedBudgetLayer`](crate::KeyedBudgetLayer).
pub const OVERFLOW_KEY: &str = "<overflow>";

pub(crate) struct KeyedShared<K> {
    pub(crate) map: KeyMap<K, Gcra>,
    pub(crate) rate: Rate,
    pub(crate) clock: Clock,
    // Shared by every newcomer that finds the map full.
    pub(crate) overflow: Gcra,
    // Made once, so an overflow rejection allocates only its box.
    pub(crate) overflow_key: Arc<str>,
    pub(crate) admitted: AtomicU64,
    pub(crate) exhausted: AtomicU64,
    // Folds every key's refusals into at most one event a second.
    pub(crate) events: Throttle,
    pub(crate) overflow_calls: AtomicU64,
    pub(crate) overflow_rejected: AtomicU64,
    // Made only when `per_key.advertise`.
    #[cfg(feature = "quota")]
    pub(crate) policy: Option<Policy>,
    pub(crate) config: KeyedBudgetConfig,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: KeyedMetrics,
}

#[cfg(feature = "metrics")]
pub(crate) struct KeyedMetrics {
    pub(crate) admitted: metrics::Counter,
    pub(crate) exhausted: metrics::Counter,
}

impl<K: std::hash::Hash + Eq> KeyedShared<K> {
    /// Shared state for a validated `config`, reading `clock`; the map
    /// reads the same clock, so the readings its eviction check gets are
    /// comparable with the cells' arrival times.
    pub(crate) fn new(config: &KeyedBudgetConfig, clock: Clock) -> Self {
        let per_key = &config.per_key;
        let rate = Rate::new(per_key.rate, per_key.per, per_key.effective_burst());
        let map = KeyMap::new(config.keys)
            .clock(clock.clone())
            .evictable_when(move |cell: &Gcra, now| is_fresh(cell, &rate, now));
        #[cfg(feature = "metrics")]
        let metrics = {
            use seawall_core::names::{BUDGET_ADMITTED_TOTAL, BUDGET_EXHAUSTED_TOTAL, LABEL_NAME};
            KeyedMetrics {
                admitted: metrics::counter!(BUDGET_ADMITTED_TOTAL, LABEL_NAME => per_key.name.clone()),
                exhausted: metrics::counter!(BUDGET_EXHAUSTED_TOTAL, LABEL_NAME => per_key.name.clone()),
            }
        };
        KeyedShared {
            map,
            rate,
            events: Throttle::new(clock.clone()),
            clock,
            overflow: Gcra::new(),
            overflow_key: Arc::from(OVERFLOW_KEY),
            admitted: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            overflow_calls: AtomicU64::new(0),
            overflow_rejected: AtomicU64::new(0),
            #[cfg(feature = "quota")]
            policy: per_key
                .advertise
                .then(|| Policy::new(&per_key.name, per_key.rate, per_key.per)),
            config: config.clone(),
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    pub(crate) fn stats(&self) -> KeyedBudgetStats {
        KeyedBudgetStats {
            keys: self.map.len(),
            admitted: self.admitted.load(Ordering::Relaxed),
            exhausted: self.exhausted.load(Ordering::Relaxed),
            overflow: self.overflow_calls.load(Ordering::Relaxed),
            overflow_rejected: self.overflow_rejected.load(Ordering::Relaxed),
        }
    }
}

impl<K> KeyedShared<K> {
    /// A reading of the layer's clock.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.nanos()
    }
}

/// A snapshot of a [`KeyedBudgetLayer`](crate::KeyedBudgetLayer)'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyedBudgetStats {
    /// Keys held now.
    pub keys: usize,
    /// Calls admitted, all keys and the overflow budget together.
    pub admitted: u64,
    /// Calls rejected because their key's budget, or the overflow budget,
    /// was spent.
    pub exhausted: u64,
    /// Calls of new keys that found the map full of keys owing tokens, and
    /// were served by the shared overflow budget.
    pub overflow: u64,
    /// Of the `overflow` calls, those rejected (also counted in `exhausted`).
    pub overflow_rejected: u64,
}

/// `true` when `cell` equals a fresh one at `now`: its whole burst is
/// available, so nothing is lost by forgetting it. A fresh cell's TAT is at
/// or before `now`, and so is that of a cell that has refilled: taking the
/// burst from either reaches exactly `now + burst × emission`.
#[inline]
pub(crate) fn is_fresh(cell: &Gcra, rate: &Rate, now: u64) -> bool {
    cell.check(rate, rate.burst(), now).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_cell_is_fresh_exactly_when_it_owes_nothing() {
        let r = Rate::new(10, Duration::from_secs(1), 3);
        let g = Gcra::new();
        assert!(is_fresh(&g, &r, 0));
        g.try_take(&r, 1, 0).unwrap();
        assert!(!is_fresh(&g, &r, 0));
        // Two of three tokens left is still a debt of one.
        assert!(!is_fresh(&g, &r, 99 * MS));
        assert!(is_fresh(&g, &r, 100 * MS));
        // Long after: fresh, however old the last take.
        assert!(is_fresh(&g, &r, 10_000 * MS));
        // In debt past the burst (unconditional takes): fresh only when paid off.
        g.take(&r, 10, 100 * MS);
        assert!(!is_fresh(&g, &r, 1_099 * MS));
        assert!(is_fresh(&g, &r, 1_100 * MS));
    }
}

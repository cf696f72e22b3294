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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use seawall_core::event::Throttle;
use seawall_core::names::TARGET_BUDGET;
use seawall_core::{Clock, KeyMap, ReloadError};

use crate::config::KeyedBudgetConfig;
use crate::gcra::{Gcra, Rate, RateCell};
#[cfg(feature = "quota")]
use crate::quota::Policy;

/// The key that rejections served by the overflow budget carry; see
/// [`KeyedBudgetLayer`](crate::KeyedBudgetLayer).
pub const OVERFLOW_KEY: &str = "<overflow>";

pub(crate) struct KeyedShared<K> {
    pub(crate) map: KeyMap<K, Gcra>,
    // Shared with the map's eviction check; replaced by a reload.
    pub(crate) rate: Arc<RateCell>,
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
    // `per_key.name`, which cannot change.
    pub(crate) name: Arc<str>,
    // The config in force; held by a reload while it rescales.
    config: Mutex<KeyedBudgetConfig>,
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
        let rate = Arc::new(RateCell::new(Rate::new(
            per_key.rate,
            per_key.per,
            per_key.effective_burst(),
        )));
        let current = rate.clone();
        let map = KeyMap::new(config.keys)
            .clock(clock.clone())
            .evictable_when(move |cell: &Gcra, now| is_fresh(cell, &current.load(), now));
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
            name: Arc::from(per_key.name.as_str()),
            config: Mutex::new(config.clone()),
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    /// The config in force.
    pub(crate) fn config(&self) -> MutexGuard<'_, KeyedBudgetConfig> {
        // Poisoned only by a panic under the lock; the config stays whole.
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `next` to every key held, the overflow budget and the keys
    /// to come; see [`KeyedBudgetLayer::reload`](crate::KeyedBudgetLayer::reload).
    pub(crate) fn reload(&self, next: &KeyedBudgetConfig) -> Result<(), ReloadError> {
        next.validate()?;
        let mut config = self.config();
        let (old, new) = (&config.per_key, &next.per_key);
        if old.name != new.name {
            return Err(ReloadError::not_in_place(
                "per_key.name",
                "the name labels the budget's events and metric series",
            ));
        }
        if old.advertise != new.advertise {
            return Err(ReloadError::not_in_place(
                "per_key.advertise",
                "whether the budget states its quota is fixed when it is built",
            ));
        }
        if config.keys != next.keys {
            return Err(ReloadError::not_in_place(
                "keys",
                "the key map's capacity and idle_ttl are fixed when it is built",
            ));
        }
        let mut changed = Vec::new();
        if old.rate != new.rate {
            changed.push("per_key.rate");
        }
        if old.per != new.per {
            changed.push("per_key.per");
        }
        if old.effective_burst() != new.effective_burst() {
            changed.push("per_key.burst");
        }
        let rate = Rate::new(new.rate, new.per, new.effective_burst());
        self.rate.replace(rate, |old, new| {
            if old != new {
                // One reading for every key: as if all were rescaled at once.
                let now = self.now();
                self.overflow.rescale(old, new, now);
                self.map.for_each(|_, cell| cell.rescale(old, new, now));
            }
        });
        #[cfg(feature = "quota")]
        if let Some(policy) = &self.policy {
            policy.update(new.rate, new.per);
        }
        *config = next.clone();
        drop(config);
        tracing::info!(
            target: TARGET_BUDGET,
            layer = "keyed_budget",
            name = %next.per_key.name,
            changed = %changed.join(", "),
            rate = next.per_key.rate,
            per = ?next.per_key.per,
            burst = next.per_key.effective_burst(),
            keys = self.map.len(),
            "budget reloaded"
        );
        Ok(())
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

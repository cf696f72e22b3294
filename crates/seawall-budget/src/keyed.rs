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

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use seawall_core::KeyMap;
use tokio::time::Instant;

use crate::config::KeyedBudgetConfig;
use crate::gcra::{Gcra, Rate};

/// The key that rejections served by the overflow budget carry; see
/// [`KeyedBudgetLayer`](crate::KeyedBudgetLayer).
pub const OVERFLOW_KEY: &str = "<overflow>";

pub(crate) struct KeyedShared<K> {
    pub(crate) map: KeyMap<K, Gcra>,
    pub(crate) rate: Rate,
    pub(crate) epoch: Instant,
    // Shared by every newcomer that finds the map full.
    pub(crate) overflow: Gcra,
    // Made once, so an overflow rejection allocates only its box.
    pub(crate) overflow_key: Arc<str>,
    pub(crate) admitted: AtomicU64,
    pub(crate) exhausted: AtomicU64,
    pub(crate) overflow_calls: AtomicU64,
    pub(crate) overflow_rejected: AtomicU64,
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
    /// Shared state for a validated `config`. Must be called within a tokio
    /// runtime (the map and the epoch read tokio's clock).
    pub(crate) fn new(config: &KeyedBudgetConfig) -> Self {
        let rate = Rate::new(config.rate, config.per, config.effective_burst());
        let epoch = Instant::now();
        let map = KeyMap::new(config.key_map()).evictable_when(move |cell: &Gcra, now| {
            is_fresh(cell, &rate, nanos_between(epoch, now))
        });
        #[cfg(feature = "metrics")]
        let metrics = {
            use seawall_core::names::{BUDGET_ADMITTED_TOTAL, BUDGET_EXHAUSTED_TOTAL, LABEL_NAME};
            KeyedMetrics {
                admitted: metrics::counter!(BUDGET_ADMITTED_TOTAL, LABEL_NAME => config.name.clone()),
                exhausted: metrics::counter!(BUDGET_EXHAUSTED_TOTAL, LABEL_NAME => config.name.clone()),
            }
        };
        KeyedShared {
            map,
            rate,
            epoch,
            overflow: Gcra::new(),
            overflow_key: Arc::from(OVERFLOW_KEY),
            admitted: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            overflow_calls: AtomicU64::new(0),
            overflow_rejected: AtomicU64::new(0),
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
    /// Nanoseconds since the epoch, now.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        crate::gcra::nanos_since(self.epoch)
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

/// `to - from` in u64 nanoseconds, 0 if `to` is earlier; saturates after
/// 584 years. The same scale as [`gcra::nanos_since`](crate::gcra::nanos_since).
#[inline]
fn nanos_between(from: Instant, to: Instant) -> u64 {
    let d = to.saturating_duration_since(from);
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// The label of a refused key, formatted with one allocation (the `Arc`)
/// when the key's `Display` fits in 64 bytes, two otherwise.
///
/// Formatted per refusal rather than kept with every key: a label kept per
/// key costs 16 bytes in the key's state and a 16-byte header besides the
/// text, a quarter of a key's whole budget of 100 bytes, for the keys that
/// are never refused too.
#[cold]
pub(crate) fn label(key: &impl fmt::Display) -> Arc<str> {
    let mut buf = StackStr::default();
    if write!(buf, "{key}").is_ok() {
        return Arc::from(buf.as_str());
    }
    Arc::from(key.to_string())
}

/// A 64-byte string on the stack; a write that does not fit fails.
struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        StackStr {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl StackStr {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the prefix is UTF-8; the
        // empty string is unreachable but keeps this free of `unwrap`.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
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

    #[test]
    fn nanos_between_saturates_at_zero() {
        let t = Instant::now();
        let later = t + Duration::from_millis(5);
        assert_eq!(nanos_between(t, later), 5 * MS);
        assert_eq!(nanos_between(later, t), 0);
    }

    #[test]
    fn labels_are_the_keys_display() {
        assert_eq!(&*label(&42u64), "42");
        assert_eq!(&*label(&"peer-7"), "peer-7");
        let long = "x".repeat(200);
        assert_eq!(&*label(&long), long.as_str());
        let exactly = "y".repeat(64);
        assert_eq!(&*label(&exactly), exactly.as_str());
    }

    #[test]
    fn a_long_key_is_not_cut_at_a_char_boundary() {
        // 63 ASCII bytes then a 2-byte char: does not fit, falls back whole.
        let key = format!("{}é", "a".repeat(63));
        assert_eq!(&*label(&key), key.as_str());
    }
}

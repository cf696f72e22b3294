//! The local side of a shared budget: a pool of leased tokens per budget (or
//! per key), knowing nothing of Redis or tower.
//!
//! A [`Cell`] holds one signed count: tokens leased from Redis and not spent
//! yet (positive), or tokens admitted *on credit* before a lease came back
//! (negative). A call takes one token with a single compare-exchange when
//! the count is positive; that is the whole per-call path while leases keep
//! up. When the count falls to the low-water mark (half a lease) the cell
//! asks the background task for a refill, which settles the credit and
//! leases up to `k` tokens in one round trip.
//!
//! `k` follows the local rate: `rate × lease_interval`, measured between
//! refills, between 1 and `max_lease`. A replica is therefore never more than
//! `k` tokens ahead of Redis (tokens leased, not spent) nor `k` behind it
//! (tokens admitted on credit, not yet charged): that is the accuracy cost of
//! leasing, and `max_lease` bounds it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use seawall_budget::LoopBudget;

use crate::script::{Ask, Grant};

/// Counters shared by every cell of one layer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) admitted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) round_trips: AtomicU64,
    pub(crate) leased: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) key_errors: AtomicU64,
}

/// How one call may proceed, as the cell (or the fallback) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// Admitted; `refundable` when the token can be given back unused.
    Admit { refundable: bool },
    /// The budget is spent; a token is due in this many nanoseconds.
    Reject(u64),
    /// Fail-closed fallback: refused; Redis is tried again within this many ns.
    Closed(u64),
    /// No token here and the credit is spent; a refill is on its way.
    Pending,
}

/// What the background task remembers between two refills of a cell.
#[derive(Debug, Default)]
struct Plan {
    /// The last refill's start (ns) and the count then, plus what it added.
    last: Option<(u64, i64)>,
    /// Tokens per nanosecond, smoothed.
    rate: Option<f64>,
}

/// One budget's local pool: the unkeyed layer has one, the keyed layer one
/// per key.
pub(crate) struct Cell {
    tokens: AtomicI64,
    /// The lease size now, also the credit limit.
    k: AtomicU32,
    /// Ask for a refill when the count falls to this.
    low: AtomicI64,
    /// The shared budget was found spent until this instant (ns since the
    /// layer's epoch); 0 when not known to be spent.
    exhausted_until: AtomicU64,
    /// A refill is queued or in flight.
    pending: AtomicBool,
    /// Redis answered this key with an error (it holds something else): the
    /// key follows the fallback policy until a refill succeeds.
    failed: AtomicBool,
    /// While `failed`, when (ns since the layer's epoch) to ask Redis again.
    retry_at: AtomicU64,
    /// Calls the `Local` fallback admitted that Redis has not been charged
    /// for yet; the next refill charges them, unconditionally, like credit.
    debt: AtomicU64,
    plan: Mutex<Plan>,
    /// The Redis key.
    pub(crate) key: String,
    /// The key shown in rejections (keyed layer only).
    pub(crate) label: Option<Arc<str>>,
    /// The local budget of `FallbackPolicy::Local`.
    pub(crate) local: Option<LoopBudget>,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell")
            .field("key", &self.key)
            .field("tokens", &self.tokens.load(Ordering::Relaxed))
            .field("k", &self.k.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Cell {
    /// An empty pool; the first lease asks for `max_lease` tokens.
    pub(crate) fn new(
        key: String,
        label: Option<Arc<str>>,
        local: Option<LoopBudget>,
        max_lease: u32,
    ) -> Cell {
        Cell {
            tokens: AtomicI64::new(0),
            k: AtomicU32::new(max_lease.max(1)),
            low: AtomicI64::new(i64::from(max_lease.max(1) / 2)),
            exhausted_until: AtomicU64::new(0),
            pending: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
            debt: AtomicU64::new(0),
            plan: Mutex::new(Plan::default()),
            key,
            label,
            local,
        }
    }

    /// Takes a leased token if there is one; returns whether the pool is now
    /// at or under its low-water mark (time to refill).
    #[inline]
    pub(crate) fn take_leased(&self) -> Option<bool> {
        let mut cur = self.tokens.load(Ordering::Relaxed);
        while cur > 0 {
            match self.tokens.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(cur - 1 <= self.low.load(Ordering::Relaxed)),
                Err(actual) => cur = actual,
            }
        }
        None
    }

    /// Takes a token on credit, at most `k` below zero.
    pub(crate) fn take_credit(&self) -> bool {
        let floor = -i64::from(self.k.load(Ordering::Relaxed));
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t > floor).then_some(t - 1)
            })
            .is_ok()
    }

    /// Gives back a token taken and not used.
    pub(crate) fn refund(&self) {
        self.tokens.fetch_add(1, Ordering::Relaxed);
    }

    /// The instant (ns) until which the shared budget is known to be spent.
    pub(crate) fn exhausted_until(&self) -> u64 {
        self.exhausted_until.load(Ordering::Relaxed)
    }

    /// Marks a refill as wanted; `true` when the caller must queue it.
    pub(crate) fn claim_refill(&self) -> bool {
        !self.pending.load(Ordering::Relaxed) && !self.pending.swap(true, Ordering::AcqRel)
    }

    /// The refill is done (or dropped).
    pub(crate) fn release_refill(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// Whether the pool is at or under its low-water mark.
    pub(crate) fn is_low(&self) -> bool {
        self.tokens.load(Ordering::Relaxed) <= self.low.load(Ordering::Relaxed)
    }

    /// Whether this key is following the fallback after an error of its
    /// own, and whether (at `now`) it is time to ask Redis again.
    pub(crate) fn failed(&self, now: u64) -> Option<bool> {
        self.failed
            .load(Ordering::Relaxed)
            .then(|| now >= self.retry_at.load(Ordering::Relaxed))
    }

    /// Redis answered this key with an error; it follows the fallback and
    /// is tried again at `retry_at`. Returns whether it was fine before.
    pub(crate) fn fail(&self, retry_at: u64) -> bool {
        self.retry_at.store(retry_at, Ordering::Relaxed);
        !self.failed.swap(true, Ordering::AcqRel)
    }

    /// Redis answered this key again; returns whether it had failed.
    pub(crate) fn recover(&self) -> bool {
        self.failed.load(Ordering::Relaxed) && self.failed.swap(false, Ordering::AcqRel)
    }

    /// One call admitted by the `Local` fallback, to be charged to Redis; at
    /// most `cap` are kept (see `Shared::fallback`).
    pub(crate) fn add_debt(&self, cap: u64) {
        let _ = self
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                (d < cap).then_some(d + 1)
            });
    }

    /// Gives back debt a failed refill took and could not charge, keeping
    /// the total within `cap`.
    pub(crate) fn restore_debt(&self, debt: u64, cap: u64) {
        let _ = self
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_add(debt).min(cap))
            });
    }

    /// Calls admitted by the fallback and not yet charged.
    #[cfg(test)]
    pub(crate) fn debt(&self) -> u64 {
        self.debt.load(Ordering::Relaxed)
    }

    /// Tokens held (negative: owed).
    pub(crate) fn tokens(&self) -> i64 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// The lease size now.
    pub(crate) fn lease_size(&self) -> u32 {
        self.k.load(Ordering::Relaxed)
    }

    /// Plans a refill at `now`: measures the local rate since the last one,
    /// sizes the lease, and says what to ask Redis for.
    pub(crate) fn plan(&self, now: u64, max_lease: u32, lease_interval_ns: u64) -> Ask<'_> {
        let tokens = self.tokens.load(Ordering::Relaxed);
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        match plan.last {
            // Measure over at least a quarter of the lease interval: a refill
            // asked again right after the last one has seen too little.
            Some((at, level)) if now.saturating_sub(at) >= lease_interval_ns / 4 => {
                let consumed = level.saturating_sub(tokens).max(0) as f64;
                let r = consumed / (now - at) as f64;
                plan.rate = Some(match plan.rate {
                    Some(old) => 0.5 * old + 0.5 * r,
                    None => r,
                });
                plan.last = Some((now, tokens));
            }
            Some(_) => {}
            None => plan.last = Some((now, tokens)),
        }
        let max = max_lease.max(1);
        let k = match plan.rate {
            // In 1..=max, so the cast cannot truncate.
            Some(r) => (r * lease_interval_ns as f64)
                .ceil()
                .clamp(1.0, f64::from(max)) as u32,
            None => max,
        };
        drop(plan);
        self.k.store(k, Ordering::Relaxed);
        self.low.store(i64::from(k / 2), Ordering::Relaxed);
        let held = u64::try_from(tokens.max(0)).unwrap_or(0);
        Ask {
            key: &self.key,
            owed: tokens.min(0).unsigned_abs(),
            // Taken now; a refill that fails gives it back (`restore_debt`).
            debt: self.debt.swap(0, Ordering::Relaxed),
            wanted: u64::from(k).saturating_sub(held).max(1),
        }
    }

    /// Applies Redis's answer, received at `now`: the credit is settled and
    /// the granted tokens join the pool (the debt, charged, is gone).
    pub(crate) fn apply(&self, ask: &Ask<'_>, grant: Grant, now: u64) {
        let added = i64::try_from(ask.owed.saturating_add(grant.granted)).unwrap_or(i64::MAX);
        self.tokens.fetch_add(added, Ordering::Relaxed);
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, level)) = &mut plan.last {
            *level = level.saturating_add(added);
        }
        drop(plan);
        let wait = u64::try_from(grant.wait.as_nanos()).unwrap_or(u64::MAX);
        self.exhausted_until
            .store(now.saturating_add(wait), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: u64 = 1_000_000;

    fn grant(granted: u64, wait_ms: u64) -> Grant {
        Grant {
            granted,
            wait: Duration::from_millis(wait_ms),
        }
    }

    #[test]
    fn leased_tokens_are_spent_then_credit_up_to_the_lease() {
        let cell = Cell::new("k".into(), None, None, 4);
        assert_eq!(cell.take_leased(), None);
        // Credit: at most k = 4 below zero.
        for _ in 0..4 {
            assert!(cell.take_credit());
        }
        assert!(!cell.take_credit());
        assert_eq!(cell.tokens(), -4);
        // The refill settles the 4 owed and leases 4.
        let ask = cell.plan(0, 4, 50 * MS);
        assert_eq!((ask.owed, ask.wanted), (4, 4));
        let (owed, wanted) = (ask.owed, ask.wanted);
        let ask = Ask {
            key: "k",
            owed,
            debt: 0,
            wanted,
        };
        cell.apply(&ask, grant(4, 0), MS);
        assert_eq!(cell.tokens(), 4);
        assert_eq!(cell.take_leased(), Some(false)); // 3 left, low water 2
        assert_eq!(cell.take_leased(), Some(true)); // 2 left: refill
        cell.refund();
        assert_eq!(cell.tokens(), 3);
    }

    #[test]
    fn the_lease_follows_the_local_rate() {
        let cell = Cell::new("k".into(), None, None, 100);
        let first = cell.plan(0, 100, 10 * MS);
        assert_eq!(first.wanted, 100);
        let a = Ask {
            key: "k",
            owed: 0,
            debt: 0,
            wanted: 100,
        };
        cell.apply(&a, grant(100, 0), 0);
        // 20 tokens spent in 100ms: 200/s, so 2 per 10ms lease interval.
        for _ in 0..20 {
            cell.take_leased().unwrap();
        }
        let ask = cell.plan(100 * MS, 100, 10 * MS);
        assert_eq!(cell.lease_size(), 2);
        // 80 are held, more than a lease: ask for the minimum.
        assert_eq!((ask.owed, ask.wanted), (0, 1));
        // Never above the bound however fast the rate.
        let a = Ask {
            key: "k",
            owed: 0,
            debt: 0,
            wanted: 1,
        };
        cell.apply(&a, grant(0, 0), 100 * MS);
        for _ in 0..80 {
            cell.take_leased().unwrap();
        }
        // Too soon to measure: the estimate stands.
        cell.plan(100 * MS + 1, 100, 10 * MS);
        assert_eq!(cell.lease_size(), 2);
        // 80 more in 10ms: 8000/s; smoothed with the 200/s before, 4100/s.
        cell.plan(110 * MS, 100, 10 * MS);
        assert_eq!(cell.lease_size(), 41);
        // Never above the bound, however fast.
        cell.apply(&a, grant(1000, 0), 110 * MS);
        for _ in 0..1000 {
            cell.take_leased().unwrap();
        }
        cell.plan(120 * MS, 100, 10 * MS);
        assert_eq!(cell.lease_size(), 100);
    }

    #[test]
    fn a_spent_budget_is_remembered_until_its_next_token() {
        let cell = Cell::new("k".into(), None, None, 2);
        let a = Ask {
            key: "k",
            owed: 0,
            debt: 0,
            wanted: 2,
        };
        cell.apply(&a, grant(0, 30), 5 * MS);
        assert_eq!(cell.exhausted_until(), 35 * MS);
        assert!(cell.claim_refill());
        assert!(!cell.claim_refill());
        cell.release_refill();
        assert!(cell.claim_refill());
        assert!(cell.is_low());
    }

    #[test]
    fn a_failed_key_is_retried_at_its_time_and_recovers() {
        let cell = Cell::new("k".into(), None, None, 2);
        assert_eq!(cell.failed(0), None);
        assert!(cell.fail(10));
        assert!(!cell.fail(20), "already failed");
        assert_eq!(cell.failed(19), Some(false));
        assert_eq!(cell.failed(20), Some(true));
        assert!(cell.recover());
        assert!(!cell.recover());
        assert_eq!(cell.failed(30), None);
    }

    #[test]
    fn fallback_debt_is_charged_by_the_next_refill_or_given_back() {
        let cell = Cell::new("k".into(), None, None, 4);
        for _ in 0..5 {
            cell.add_debt(3);
        }
        let ask = cell.plan(0, 4, 50 * MS);
        assert_eq!((ask.owed, ask.debt), (0, 3));
        assert_eq!(cell.debt(), 0);
        cell.add_debt(3);
        cell.restore_debt(ask.debt, 3);
        assert_eq!(cell.debt(), 3, "never above the cap");
        cell.debt.store(0, Ordering::Relaxed);
        cell.restore_debt(ask.debt, 3);
        assert_eq!(cell.debt(), 3);
        let ask = cell.plan(MS, 4, 50 * MS);
        let (owed, debt, wanted) = (ask.owed, ask.debt, ask.wanted);
        let ask = Ask {
            key: "k",
            owed,
            debt,
            wanted,
        };
        cell.apply(&ask, grant(4, 0), MS);
        // The debt is charged, not added to the pool.
        assert_eq!(cell.tokens(), 4);
        assert_eq!(cell.debt(), 0);
    }
}

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

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

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
    /// Calls of new keys served by the keyed layer's overflow cell.
    pub(crate) overflowed: AtomicU64,
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

/// The Redis key of the keyed layer's overflow cell is the budget's key
/// followed by this. Every user key is the budget's key, a `:`, then the
/// key's text, so no key a caller can send maps onto it.
pub(crate) const OVERFLOW_SUFFIX: &str = "#overflow";

/// FNV-1a, 64 bits: a hash every replica computes alike (std's hasher is
/// seeded per process), to place a key in its hash-tag bucket.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// "Not measured yet" in the plan's words (no instant or rate is this).
const NONE: u64 = u64::MAX;

/// Which Redis key a cell spends from.
#[derive(Debug, Clone)]
pub(crate) enum Name {
    /// The whole budget's key (the unkeyed layer).
    Budget,
    /// One key of a keyed layer, as the rejections show it.
    Key(Arc<str>),
    /// The keyed layer's one overflow cell.
    Overflow,
}

/// One budget's local pool: the unkeyed layer has one, the keyed layer one
/// per key (and one overflow cell).
///
/// Kept small, since a keyed layer holds one per key: the Redis key is
/// built from the name on the background task, when a refill needs it; the
/// rate estimate is three words only that task writes; the `Local` fallback's
/// budget is made the first time the cell falls back.
pub(crate) struct Cell {
    tokens: AtomicI64,
    /// Not `failed`: the shared budget was found spent until this instant
    /// (ns since the layer's epoch; 0 when not known to be spent).
    /// `failed`: when to ask Redis again.
    until: AtomicU64,
    /// The last refill's start (ns), or `NONE`.
    last_at: AtomicU64,
    /// The count then, plus what refills added since.
    last_level: AtomicI64,
    /// Tokens per nanosecond, smoothed (`f64` bits), or `NONE`.
    rate: AtomicU64,
    /// The lease size now, also the credit limit.
    k: AtomicU32,
    /// Calls the `Local` fallback admitted that Redis has not been charged
    /// for yet; the next refill charges them, unconditionally, like credit.
    debt: AtomicU32,
    /// A refill is queued, in flight, or held until Redis answers again.
    pending: AtomicBool,
    /// Redis answered this key with an error (it holds something else): the
    /// key follows the fallback policy until a refill succeeds.
    failed: AtomicBool,
    pub(crate) name: Name,
    /// The local budget of `FallbackPolicy::Local`, made on first use.
    local: OnceLock<LoopBudget>,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell")
            .field("name", &self.name)
            .field("tokens", &self.tokens.load(Ordering::Relaxed))
            .field("k", &self.k.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Cell {
    /// An empty pool that may admit `credit` calls before its first refill
    /// answers; that refill asks for `max_lease` tokens.
    pub(crate) fn new(name: Name, credit: u32) -> Cell {
        Cell {
            tokens: AtomicI64::new(0),
            until: AtomicU64::new(0),
            last_at: AtomicU64::new(NONE),
            last_level: AtomicI64::new(0),
            rate: AtomicU64::new(NONE),
            k: AtomicU32::new(credit.max(1)),
            debt: AtomicU32::new(0),
            pending: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            name,
            local: OnceLock::new(),
        }
    }

    /// The key shown in rejections (keyed layer only).
    pub(crate) fn label(&self) -> Option<&Arc<str>> {
        match &self.name {
            Name::Key(label) => Some(label),
            _ => None,
        }
    }

    /// The Redis key, from the budget's key `prefix` (`seawall:{name}`). A
    /// keyed layer with `slots > 1` puts a key under the hash tag
    /// `{name#b}`, `b` a stable hash of the key modulo `slots`, so keys
    /// spread over Cluster slots; every replica computes the same `b`.
    pub(crate) fn redis_key(&self, prefix: &str, name: &str, slots: u16) -> String {
        match &self.name {
            Name::Budget => prefix.to_owned(),
            Name::Key(label) if slots > 1 => {
                let b = fnv1a(label.as_bytes()) % u64::from(slots);
                format!("seawall:{{{name}#{b}}}:{label}")
            }
            Name::Key(label) => format!("{prefix}:{label}"),
            Name::Overflow => format!("{prefix}{OVERFLOW_SUFFIX}"),
        }
    }

    /// The `Local` fallback's budget, made by `make` the first time.
    pub(crate) fn local(&self, make: impl FnOnce() -> LoopBudget) -> &LoopBudget {
        self.local.get_or_init(make)
    }

    /// Whether forgetting this cell (and making a new one for its key
    /// later) gives nothing away, at `now` (ns since the layer's epoch):
    ///
    /// - no credit outstanding (`tokens >= 0`): credit not yet charged to
    ///   Redis would never be. Leased tokens (`tokens > 0`) may go: Redis
    ///   has charged them already, so dropping them can only refuse calls;
    /// - no fallback debt waiting to be charged;
    /// - no refill queued, in flight or held for later;
    /// - not failed: a key Redis refuses follows the fallback, which a new
    ///   cell would not know to do;
    /// - not throttled: the last refill did not say "spent until T" with T
    ///   still ahead. A new cell knows nothing of T and would take a call on
    ///   credit at once;
    /// - its `Local` fallback budget, if it has one, is full.
    ///
    /// Then a new cell admits what this one would: at most one call on
    /// credit before Redis answers (see `Shared::cell`), which Redis, having
    /// at least one token due, would also have granted.
    pub(crate) fn is_fresh(&self, now: u64) -> bool {
        self.tokens.load(Ordering::Relaxed) >= 0
            && self.debt.load(Ordering::Relaxed) == 0
            && !self.pending.load(Ordering::Relaxed)
            && !self.failed.load(Ordering::Relaxed)
            && self.until.load(Ordering::Relaxed) <= now
            && self.local.get().is_none_or(|b| b.available() >= b.burst())
    }

    /// Whether Redis is owed something: credit or fallback debt.
    pub(crate) fn owes(&self) -> bool {
        self.tokens.load(Ordering::Relaxed) < 0 || self.debt.load(Ordering::Relaxed) > 0
    }

    /// Takes a leased token if there is one; returns whether the pool is now
    /// at or under its low-water mark (half a lease: time to refill).
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
                Ok(_) => return Some(cur - 1 <= self.low()),
                Err(actual) => cur = actual,
            }
        }
        None
    }

    #[inline]
    fn low(&self) -> i64 {
        i64::from(self.k.load(Ordering::Relaxed) / 2)
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
        self.until.load(Ordering::Relaxed)
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
        self.tokens.load(Ordering::Relaxed) <= self.low()
    }

    /// Whether this key is following the fallback after an error of its
    /// own, and whether (at `now`) it is time to ask Redis again.
    pub(crate) fn failed(&self, now: u64) -> Option<bool> {
        self.failed
            .load(Ordering::Relaxed)
            .then(|| now >= self.until.load(Ordering::Relaxed))
    }

    /// Redis answered this key with an error; it follows the fallback and
    /// is tried again at `retry_at`. Returns whether it was fine before.
    pub(crate) fn fail(&self, retry_at: u64) -> bool {
        self.until.store(retry_at, Ordering::Relaxed);
        !self.failed.swap(true, Ordering::AcqRel)
    }

    /// Redis answered this key again; returns whether it had failed.
    pub(crate) fn recover(&self) -> bool {
        self.failed.load(Ordering::Relaxed) && self.failed.swap(false, Ordering::AcqRel)
    }

    /// One call admitted by the `Local` fallback, to be charged to Redis; at
    /// most `cap` are kept (see `Shared::fallback`).
    pub(crate) fn add_debt(&self, cap: u32) {
        let _ = self
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                (d < cap).then_some(d + 1)
            });
    }

    /// Gives back debt a failed refill took and could not charge, keeping
    /// the total within `cap`.
    pub(crate) fn restore_debt(&self, debt: u64, cap: u32) {
        let debt = u32::try_from(debt).unwrap_or(u32::MAX);
        let _ = self
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_add(debt).min(cap))
            });
    }

    /// Calls admitted by the fallback and not yet charged.
    #[cfg(test)]
    pub(crate) fn debt(&self) -> u64 {
        u64::from(self.debt.load(Ordering::Relaxed))
    }

    /// Tokens held (negative: owed).
    pub(crate) fn tokens(&self) -> i64 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// The lease size now.
    pub(crate) fn lease_size(&self) -> u32 {
        self.k.load(Ordering::Relaxed)
    }

    /// Plans a refill of Redis key `key` at `now`: measures the local rate
    /// since the last one, sizes the lease, and says what to ask Redis for.
    ///
    /// Only the background task plans and applies refills, one cell at a
    /// time, so the plan's words need no lock.
    pub(crate) fn plan<'a>(
        &self,
        key: &'a str,
        now: u64,
        max_lease: u32,
        lease_interval_ns: u64,
    ) -> Ask<'a> {
        let tokens = self.tokens.load(Ordering::Relaxed);
        let at = self.last_at.load(Ordering::Relaxed);
        if at == NONE {
            self.last_at.store(now, Ordering::Relaxed);
            self.last_level.store(tokens, Ordering::Relaxed);
        } else if now.saturating_sub(at) >= lease_interval_ns / 4 {
            // Measure over at least a quarter of the lease interval: a refill
            // asked again right after the last one has seen too little.
            let level = self.last_level.load(Ordering::Relaxed);
            let consumed = level.saturating_sub(tokens).max(0) as f64;
            let r = consumed / (now - at) as f64;
            let old = self.rate.load(Ordering::Relaxed);
            let r = if old == NONE {
                r
            } else {
                0.5 * f64::from_bits(old) + 0.5 * r
            };
            self.rate.store(r.to_bits(), Ordering::Relaxed);
            self.last_at.store(now, Ordering::Relaxed);
            self.last_level.store(tokens, Ordering::Relaxed);
        }
        let max = max_lease.max(1);
        let k = match self.rate.load(Ordering::Relaxed) {
            NONE => max,
            // In 1..=max, so the cast cannot truncate.
            r => (f64::from_bits(r) * lease_interval_ns as f64)
                .ceil()
                .clamp(1.0, f64::from(max)) as u32,
        };
        self.k.store(k, Ordering::Relaxed);
        let held = u64::try_from(tokens.max(0)).unwrap_or(0);
        Ask {
            key,
            owed: tokens.min(0).unsigned_abs(),
            // Taken now; a refill that fails gives it back (`restore_debt`).
            debt: u64::from(self.debt.swap(0, Ordering::Relaxed)),
            wanted: u64::from(k).saturating_sub(held).max(1),
        }
    }

    /// Applies Redis's answer, received at `now`: the credit is settled and
    /// the granted tokens join the pool (the debt, charged, is gone).
    pub(crate) fn apply(&self, ask: &Ask<'_>, grant: Grant, now: u64) {
        let added = i64::try_from(ask.owed.saturating_add(grant.granted)).unwrap_or(i64::MAX);
        self.tokens.fetch_add(added, Ordering::Relaxed);
        if self.last_at.load(Ordering::Relaxed) != NONE {
            let level = self.last_level.load(Ordering::Relaxed);
            self.last_level
                .store(level.saturating_add(added), Ordering::Relaxed);
        }
        let wait = u64::try_from(grant.wait.as_nanos()).unwrap_or(u64::MAX);
        self.until
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
        let cell = Cell::new(Name::Budget, 4);
        assert_eq!(cell.take_leased(), None);
        // Credit: at most k = 4 below zero.
        for _ in 0..4 {
            assert!(cell.take_credit());
        }
        assert!(!cell.take_credit());
        assert_eq!(cell.tokens(), -4);
        // The refill settles the 4 owed and leases 4.
        let ask = cell.plan("k", 0, 4, 50 * MS);
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
        let cell = Cell::new(Name::Budget, 100);
        let first = cell.plan("k", 0, 100, 10 * MS);
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
        let ask = cell.plan("k", 100 * MS, 100, 10 * MS);
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
        cell.plan("k", 100 * MS + 1, 100, 10 * MS);
        assert_eq!(cell.lease_size(), 2);
        // 80 more in 10ms: 8000/s; smoothed with the 200/s before, 4100/s.
        cell.plan("k", 110 * MS, 100, 10 * MS);
        assert_eq!(cell.lease_size(), 41);
        // Never above the bound, however fast.
        cell.apply(&a, grant(1000, 0), 110 * MS);
        for _ in 0..1000 {
            cell.take_leased().unwrap();
        }
        cell.plan("k", 120 * MS, 100, 10 * MS);
        assert_eq!(cell.lease_size(), 100);
    }

    #[test]
    fn a_spent_budget_is_remembered_until_its_next_token() {
        let cell = Cell::new(Name::Budget, 2);
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
        let cell = Cell::new(Name::Budget, 2);
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
        let cell = Cell::new(Name::Budget, 4);
        for _ in 0..5 {
            cell.add_debt(3);
        }
        let ask = cell.plan("k", 0, 4, 50 * MS);
        assert_eq!((ask.owed, ask.debt), (0, 3));
        assert_eq!(cell.debt(), 0);
        cell.add_debt(3);
        cell.restore_debt(ask.debt, 3);
        assert_eq!(cell.debt(), 3, "never above the cap");
        cell.debt.store(0, Ordering::Relaxed);
        cell.restore_debt(ask.debt, 3);
        assert_eq!(cell.debt(), 3);
        let ask = cell.plan("k", MS, 4, 50 * MS);
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

    #[test]
    fn a_cell_is_fresh_only_while_forgetting_it_gives_nothing_away() {
        let fresh = || Cell::new(Name::Key(Arc::from("k")), 1);
        let ask = |owed, debt| Ask {
            key: "k",
            owed,
            debt,
            wanted: 1,
        };
        assert!(fresh().is_fresh(0));
        // Credit outstanding: Redis has not been charged for it.
        let cell = fresh();
        assert!(cell.take_credit());
        assert!(!cell.take_credit(), "a new key has one call of credit");
        assert!(!cell.is_fresh(0));
        // Charged, and Redis says "spent for 30ms": throttled until then.
        cell.apply(&ask(1, 0), grant(0, 30), 5 * MS);
        assert!(!cell.is_fresh(5 * MS));
        assert!(!cell.is_fresh(35 * MS - 1));
        assert!(cell.is_fresh(35 * MS));
        // Leased tokens may go: Redis charged them, dropping them refuses.
        cell.apply(&ask(0, 0), grant(3, 0), 40 * MS);
        assert_eq!(cell.tokens(), 3);
        assert!(cell.is_fresh(40 * MS));
        // A refill queued or in flight.
        assert!(cell.claim_refill());
        assert!(!cell.is_fresh(40 * MS));
        cell.release_refill();
        assert!(cell.is_fresh(40 * MS));
        // Fallback debt not yet charged.
        cell.add_debt(10);
        assert!(cell.owes());
        assert!(!cell.is_fresh(40 * MS));
        let a = cell.plan("k", 40 * MS, 1, 50 * MS);
        cell.apply(&a, grant(0, 0), 41 * MS);
        assert!(!cell.owes());
        assert!(cell.is_fresh(41 * MS));
        // A key Redis refuses follows the fallback until it answers.
        cell.fail(100 * MS);
        assert!(!cell.is_fresh(200 * MS));
        cell.recover();
        assert!(cell.is_fresh(200 * MS));
    }

    #[test]
    fn a_cell_with_a_spent_local_budget_is_not_fresh() {
        let cell = Cell::new(Name::Key(Arc::from("k")), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let local = cell.local(|| LoopBudget::new(10));
            assert!(cell.is_fresh(0), "a full local budget is a new one");
            local.try_consume(1).unwrap();
            assert!(!cell.is_fresh(0));
            tokio::time::advance(std::time::Duration::from_millis(100)).await;
            assert!(cell.is_fresh(0), "refilled");
        });
    }

    #[test]
    fn redis_keys_of_users_never_reach_the_overflow_key() {
        let p = "seawall:{b}";
        assert_eq!(
            Cell::new(Name::Budget, 1).redis_key(p, "b", 1),
            "seawall:{b}"
        );
        assert_eq!(
            Cell::new(Name::Overflow, 1).redis_key(p, "b", 1),
            "seawall:{b}#overflow"
        );
        for hostile in ["#overflow", "", ":#overflow", "}#overflow", "\n"] {
            for slots in [1, 7] {
                let key = Cell::new(Name::Key(Arc::from(hostile)), 1).redis_key(p, "b", slots);
                assert!(key.starts_with("seawall:{b"), "{key}");
                assert_ne!(key, "seawall:{b}#overflow");
            }
        }
    }

    #[test]
    fn spread_keys_land_in_stable_buckets_of_their_own_tag() {
        let key = |k: &str, slots| {
            Cell::new(Name::Key(Arc::from(k)), 1).redis_key("seawall:{b}", "b", slots)
        };
        assert_eq!(key("acme", 1), "seawall:{b}:acme");
        // The same bucket on every replica and every run (no seeded hash).
        assert_eq!(key("acme", 16), key("acme", 16));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut buckets = std::collections::HashSet::new();
        for i in 0..1000 {
            let k = key(&format!("tenant-{i}"), 16);
            assert!(k.starts_with("seawall:{b#"), "{k}");
            buckets.insert(k[..k.find('}').unwrap()].to_owned());
        }
        assert_eq!(buckets.len(), 16, "1000 keys fill every bucket");
    }

    #[test]
    fn a_cell_stays_small() {
        // A keyed layer holds one per key, behind an `Arc` (16 bytes more),
        // with the key's text (an `Arc<str>`) and a map entry besides.
        assert!(
            std::mem::size_of::<Cell>() <= 96,
            "{}",
            std::mem::size_of::<Cell>()
        );
    }
}

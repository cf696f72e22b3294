//! The hedge budget: hedges as a fraction of calls, plus a floor per
//! second, with a cap on what may be saved up.
//!
//! See [`HedgeBudget`].

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use seawall_core::Clock;

/// Fixed-point units per hedge, so a ratio like 0.05 is exact to 0.001.
const UNIT: i128 = 1000;
const NANOS_PER_SEC: i128 = 1_000_000_000;

/// The largest `min_per_sec` and `burst` a budget accepts: a million hedges.
pub const MAX_BUDGET_HEDGES: u32 = 1_000_000;

/// A token bucket of hedges, usable without tower: deposit once per
/// request, withdraw before each extra attempt.
///
/// `ratio` of a hedge, every hedge *withdraws* one, and a floor of
/// `min_per_sec` hedges a second trickles in whatever the traffic, so a
/// quiet client can hedge at all. The bucket holds at most `burst` hedges,
/// so a long quiet spell cannot pay for a storm later. Over any interval of
/// `t` seconds, a layer therefore sends at most
///
/// ```text
/// hedges ≤ ratio × calls + min_per_sec × t + burst
/// ```
///
/// With the defaults (`ratio` 0.1, `min_per_sec` 10, `burst` 100) a backend
/// that turns slow for everybody sees at most about 10% more calls than
/// first attempts, not twice as many: hedging cannot double an overload.
///
/// A deposit is one relaxed `fetch_add` on the call counter and does not
/// read the clock; only a withdrawal (a hedge about to be sent) reads it, to
/// add the floor earned since the last withdrawal, and settles the balance
/// with a compare-and-swap. Two withdrawals racing for the last token cannot
/// both win. The bucket starts with one second's floor (capped by `burst`).
///
/// ```
/// use seawall_core::Clock;
/// use seawall_hedge::HedgeBudget;
///
/// let (clock, _hand) = Clock::manual();
/// // No floor: ten calls pay for one hedge.
/// let budget = HedgeBudget::new(0.1, 0, 100, clock);
/// assert!(!budget.try_withdraw());
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw());
/// ```
pub struct HedgeBudget {
    /// Units each call deposits (`ratio × UNIT`).
    per_call: i128,
    /// Units the floor adds per second (`min_per_sec × UNIT`).
    per_sec: i128,
    /// Most units the bucket holds (`burst × UNIT`).
    cap: i128,
    /// Units the bucket started with.
    initial: i128,
    /// Calls deposited.
    calls: AtomicU64,
    /// Units withdrawn or forfeited above the cap, minus the floor's credit.
    debit: AtomicI64,
    /// When the floor was last credited (a reading of `clock`).
    credited_at: AtomicU64,
    clock: Clock,
}

impl fmt::Debug for HedgeBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeBudget")
            .field("calls", &self.calls())
            .field("balance", &self.balance())
            .finish_non_exhaustive()
    }
}

impl HedgeBudget {
    /// A budget of `ratio` hedges per call (clamped to `0..=1`, NaN as 0),
    /// plus `min_per_sec` hedges a second, holding at most `burst` hedges
    /// (both clamped to [`MAX_BUDGET_HEDGES`], `burst` to at least 1), on
    /// `clock`.
    pub fn new(ratio: f64, min_per_sec: u32, burst: u32, clock: Clock) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        // In 0..=1000: the cast is exact.
        let per_call = (ratio * UNIT as f64).round() as i128;
        let per_sec = i128::from(min_per_sec.min(MAX_BUDGET_HEDGES)) * UNIT;
        let cap = i128::from(burst.clamp(1, MAX_BUDGET_HEDGES)) * UNIT;
        let now = clock.nanos();
        HedgeBudget {
            per_call,
            per_sec,
            cap,
            initial: per_sec.min(cap),
            calls: AtomicU64::new(0),
            debit: AtomicI64::new(0),
            credited_at: AtomicU64::new(now),
            clock,
        }
    }

    /// Counts one call: adds `ratio` of a hedge. One relaxed atomic add.
    #[inline]
    pub fn deposit(&self) {
        self.calls.fetch_add(1, Relaxed);
    }

    /// Calls deposited so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    /// Takes one hedge from the bucket if it holds one; `false` (and nothing
    /// taken) when the budget is spent.
    pub fn try_withdraw(&self) -> bool {
        self.credit_floor();
        loop {
            let debit = self.debit.load(Relaxed);
            let balance = self.raw_balance(debit);
            let excess = (balance - self.cap).max(0);
            if balance - excess < UNIT {
                return false;
            }
            let next = saturate(i128::from(debit) + excess + UNIT);
            if self
                .debit
                .compare_exchange_weak(debit, next, Relaxed, Relaxed)
                .is_ok()
            {
                return true;
            }
        }
    }

    /// Hedges the bucket holds now (rounded down), at most `burst`.
    pub fn balance(&self) -> u64 {
        self.credit_floor();
        let balance = self.raw_balance(self.debit.load(Relaxed));
        u64::try_from(balance.clamp(0, self.cap) / UNIT).unwrap_or(0)
    }

    fn raw_balance(&self, debit: i64) -> i128 {
        i128::from(self.calls.load(Relaxed)) * self.per_call + self.initial - i128::from(debit)
    }

    /// Adds the floor earned since the last credit. Whoever moves
    /// `credited_at` forward credits the interval, so no interval counts
    /// twice.
    fn credit_floor(&self) {
        if self.per_sec == 0 {
            return;
        }
        let now = self.clock.nanos();
        let last = self.credited_at.load(Relaxed);
        if now <= last {
            return;
        }
        let earned = i128::from(now - last) * self.per_sec / NANOS_PER_SEC;
        // Less than a thousandth of a hedge: leave the interval to grow.
        if earned == 0 {
            return;
        }
        if self
            .credited_at
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
        {
            // Never credit more than fills the bucket from empty: a long
            // quiet spell is worth `burst`, not more (the cap applies too,
            // this only keeps the counter small).
            let earned = earned.min(self.cap);
            let _ = self
                .debit
                .fetch_update(Relaxed, Relaxed, |d| Some(saturate(i128::from(d) - earned)));
        }
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ratio_pays_for_hedges() {
        let (clock, _hand) = Clock::manual();
        let b = HedgeBudget::new(0.1, 0, 100, clock);
        for _ in 0..100 {
            b.deposit();
        }
        let sent = (0..50).filter(|_| b.try_withdraw()).count();
        assert_eq!(sent, 10, "10% of 100 calls");
        assert_eq!(b.calls(), 100);
    }

    #[test]
    fn burst_caps_what_is_saved() {
        let (clock, _hand) = Clock::manual();
        let b = HedgeBudget::new(1.0, 0, 5, clock);
        for _ in 0..1000 {
            b.deposit();
        }
        assert_eq!(b.balance(), 5);
        let sent = (0..50).filter(|_| b.try_withdraw()).count();
        assert_eq!(sent, 5, "a quiet spell is worth `burst`, not 1000");
        // And the forfeited excess is gone for good.
        b.deposit();
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
    }

    #[test]
    fn floor_trickles_in_without_traffic() {
        let (clock, hand) = Clock::manual();
        let b = HedgeBudget::new(0.0, 10, 100, clock);
        // One second's floor to start with.
        assert_eq!((0..50).filter(|_| b.try_withdraw()).count(), 10);
        hand.advance(Duration::from_millis(500));
        assert_eq!((0..50).filter(|_| b.try_withdraw()).count(), 5);
        // An hour of quiet is worth `burst`.
        hand.advance(Duration::from_secs(3600));
        assert_eq!(b.balance(), 100);
    }

    #[test]
    fn hostile_settings_are_clamped() {
        let (clock, _hand) = Clock::manual();
        let b = HedgeBudget::new(f64::NAN, u32::MAX, 0, clock.clone());
        assert_eq!(b.balance(), 1, "burst at least 1");
        let b = HedgeBudget::new(f64::INFINITY, 0, 1, clock);
        b.deposit();
        assert!(b.try_withdraw(), "ratio clamped to 1");
        assert!(!b.try_withdraw());
    }

    #[test]
    fn racing_withdrawals_never_overspend() {
        let (clock, _hand) = Clock::manual();
        let b = std::sync::Arc::new(HedgeBudget::new(0.5, 0, 1000, clock));
        for _ in 0..200 {
            b.deposit();
        }
        let won: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || (0..100).filter(|_| b.try_withdraw()).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(won, 100);
    }
}

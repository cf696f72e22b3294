//! The retry budget: retries as a fraction of recent requests, plus a floor.
//!
//! Finagle's `RetryBudget` and tower's `TpsBudget` idea: every request
//! *deposits* `ratio` of a retry, every retry *withdraws* one, and deposits
//! and withdrawals count for `ttl` only. A constant reserve of
//! `min_per_sec × ttl` retries lets a quiet client retry at all. So over any
//! `ttl` window a backend that fails every call sees at most
//!
//! ```text
//! calls ≤ (1 + ratio) × requests + min_per_sec × ttl
//! ```
//!
//! instead of `max_attempts × requests`: retries cannot multiply an outage.
//!
//! The window is 10 buckets of `ttl / 10`; each bucket is one `AtomicU64`
//! holding its epoch and its balance, updated by compare-and-swap. No lock,
//! no background task; a stale bucket is reset by the first write of a later
//! epoch. Two threads withdrawing the last token at the same instant may both
//! succeed (as with tower's budget): the bound can be overshot by the number
//! of concurrent withdrawals, never more.
//!
//! A deposit does not read the clock (a clock read costs more than the rest
//! of a retry layer's success path): deposits are counted in one atomic and
//! moved into a bucket every 64th deposit, on every withdrawal and on
//! [`balance`](RetryBudget::balance), each time under the epoch of the
//! *previous* move. A deposit is thus never counted as younger than it is,
//! only up to 64 requests older: the budget errs on the side of fewer
//! retries, and only by a little when traffic is high enough for deposits to
//! matter.
//!
//! Defaults (Finagle's and tower's): `ratio` 0.2, `min_per_sec` 10, `ttl` 10s.
//! A 20% ratio bounds the extra load of a fully failing backend at 1.2× its
//! normal traffic (well inside the headroom a service is usually sized
//! with), and 10 retries a second keep retries useful for a client that
//! sends one request a minute.
//!
//! ```
//! use seawall_retry::RetryBudget;
//!
//! // No floor, 50% ratio: two requests pay for one retry.
//! let budget = RetryBudget::new(0.5, 0, std::time::Duration::from_secs(10)).unwrap();
//! assert!(!budget.try_withdraw());
//! budget.deposit();
//! budget.deposit();
//! assert!(budget.try_withdraw());
//! assert!(!budget.try_withdraw());
//! ```

use std::fmt;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use seawall_core::config::Check;
use seawall_core::names::TARGET_RETRY;
use seawall_core::time::nanos;
use seawall_core::{Clock, ConfigError, ReloadError};

const BUCKETS: usize = 10;
/// Fixed-point units per retry, so a ratio like 0.3 is exact to 0.001.
const UNIT: i64 = 1000;
/// Pending deposits are moved into a bucket at least this often.
const MOVE_EVERY: u64 = 64;

/// The largest `min_per_sec` a budget accepts: a million retries a second.
pub const MAX_MIN_PER_SEC: u32 = 1_000_000;

/// The budget's settings; see the [module docs](self).
///
/// With feature `serde`: `{ enabled = true, ratio = 0.2, min_per_sec = 10, ttl = "10s" }`;
/// in code: `RetryBudgetConfig::new().ratio(0.1).min_per_sec(5)`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct RetryBudgetConfig {
    /// Whether the retry layer uses a budget at all (default `true`).
    pub enabled: bool,
    /// Retries allowed per request, in `0..=1` (default 0.2).
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic, at most
    /// [`MAX_MIN_PER_SEC`] (default 10).
    pub min_per_sec: u32,
    /// How long a deposit or withdrawal counts, `1s..=60s` (default 10s).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub ttl: Duration,
}

seawall_core::config_setters!(RetryBudgetConfig {
    enabled: bool,
    ratio: f64,
    min_per_sec: u32,
    ttl: Duration,
});

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            enabled: true,
            ratio: 0.2,
            min_per_sec: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

impl RetryBudgetConfig {
    /// Checks every field; the error names each bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check.ratio("ratio", self.ratio);
        // A floor beyond this is no budget at all: disable the budget instead.
        check.in_range("min_per_sec", self.min_per_sec, 0, MAX_MIN_PER_SEC);
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&self.ttl) {
            check.fail("ttl", format_args!("{:?}", self.ttl), "is not in 1s..=60s");
        }
        check.finish()
    }
}

/// A retry budget shared by every clone; see the [module docs](self).
///
/// Cloning is cheap (an `Arc`); clones share one balance, so one budget can
/// be given to several layers that call the same backend.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    /// Per bucket: epoch in the high 32 bits, balance (i32) in the low 32.
    buckets: [AtomicU64; BUCKETS],
    /// Where the epochs are read; shared by every clone of the budget.
    clock: Clock,
    /// `ceil(2^64 / bucket width in ns)`: the epoch is a multiply and a
    /// shift, not a (slow, 128-bit) division. Changed by a reload of `ttl`.
    per_bucket: AtomicU64,
    /// What a request deposits, in `UNIT`s (`ratio`); changed by a reload.
    deposit: AtomicI32,
    /// Deposits not yet moved into a bucket.
    pending: AtomicU64,
    /// The epoch of the last move of pending deposits.
    moved_at: AtomicU32,
    /// `min_per_sec × ttl`, in `UNIT`s; changed by a reload.
    reserve: AtomicI64,
    /// The settings in force; held by a reload.
    config: Mutex<RetryBudgetConfig>,
}

/// The numbers a config runs on, clamped into range (a config is validated
/// first; this only keeps an unvalidated one from misbehaving).
struct Numbers {
    per_bucket: u64,
    width: u64,
    deposit: i32,
    reserve: i64,
}

impl Numbers {
    fn of(config: &RetryBudgetConfig) -> Numbers {
        let ttl = config
            .ttl
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if config.ratio.is_finite() {
            config.ratio.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let width = nanos(ttl) / BUCKETS as u64;
        Numbers {
            per_bucket: reciprocal(width),
            width,
            deposit: (ratio * UNIT as f64).round() as i32,
            reserve: (f64::from(config.min_per_sec) * ttl.as_secs_f64() * UNIT as f64) as i64,
        }
    }
}

fn reciprocal(width_nanos: u64) -> u64 {
    // The width is 100ms..=6s, so the result fits in a u64.
    let width = u128::from(width_nanos.max(1));
    u64::try_from((1u128 << 64).div_ceil(width)).unwrap_or(u64::MAX)
}

fn pack(epoch: u32, value: i32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(value as u32)
}

fn unpack(word: u64) -> (u32, i32) {
    ((word >> 32) as u32, word as u32 as i32)
}

impl Default for RetryBudget {
    fn default() -> Self {
        // Proven valid: the default config passes `validate` (tested).
        Self::build(&RetryBudgetConfig::default(), Clock::default())
    }
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request plus `min_per_sec`
    /// retries a second, each counting for `ttl`.
    pub fn new(ratio: f64, min_per_sec: u32, ttl: Duration) -> Result<Self, ConfigError> {
        Self::from_config(&RetryBudgetConfig {
            enabled: true,
            ratio,
            min_per_sec,
            ttl,
        })
    }

    /// A budget with this one's settings that reads `clock` (default
    /// [`Clock::tokio`]): deposits and withdrawals expire after `ttl` of
    /// that clock's time. It is a new budget, with a fresh balance, not
    /// shared with clones of `self`: set the clock right after making it.
    /// Nothing in a budget sleeps, so any clock works; a
    /// [`Clock::manual`] one needs no runtime at all.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_core::Clock;
    /// use seawall_retry::RetryBudget;
    ///
    /// let (clock, hand) = Clock::manual();
    /// let budget = RetryBudget::new(0.0, 1, Duration::from_secs(1))?.clock(clock);
    /// assert!(budget.try_withdraw());
    /// assert!(!budget.try_withdraw(), "a floor of one retry per second");
    /// hand.advance(Duration::from_millis(1100));
    /// assert!(budget.try_withdraw(), "the withdrawal expired");
    /// # Ok::<(), seawall_core::ConfigError>(())
    /// ```
    pub fn clock(self, clock: Clock) -> Self {
        Self::build(&self.config(), clock)
    }

    /// A budget from its config (`enabled` is ignored here).
    pub fn from_config(config: &RetryBudgetConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(config, Clock::default()))
    }

    pub(crate) fn build(config: &RetryBudgetConfig, clock: Clock) -> Self {
        let n = Numbers::of(config);
        // The clock may be older than the budget: pending deposits are
        // first moved under the epoch of now, not of the clock's origin.
        let epoch = epoch_of(clock.nanos(), n.per_bucket);
        RetryBudget {
            inner: Arc::new(Inner {
                buckets: Default::default(),
                clock,
                per_bucket: AtomicU64::new(n.per_bucket),
                deposit: AtomicI32::new(n.deposit),
                pending: AtomicU64::new(0),
                moved_at: AtomicU32::new(epoch),
                reserve: AtomicI64::new(n.reserve),
                config: Mutex::new(config.clone()),
            }),
        }
    }

    /// The settings in force: those the budget was built with, or the last
    /// [`reload`](Self::reload)'s.
    pub fn config(&self) -> RetryBudgetConfig {
        self.inner.config().clone()
    }

    /// Applies `config` to this budget and every clone of it (every layer
    /// sharing it), keeping its balance. All of it or, on an error
    /// ([`ReloadError::Invalid`]), none of it; `enabled` is ignored here.
    ///
    /// - **From the next request**: `ratio` (what a request deposits;
    ///   deposits already made keep their value) and `min_per_sec` (the
    ///   reserve, `min_per_sec × ttl`, is the new one at once, so the
    ///   balance moves by the change of the reserve).
    /// - **Kept**: every deposit and withdrawal still counting, so retries
    ///   already spent stay spent. A new `ttl` re-files them by age (to
    ///   within one bucket, `ttl / 10`): each counts until it is the new
    ///   `ttl` old, so a shorter `ttl` drops at once those older than it,
    ///   which caps the balance at what the new window holds.
    /// - A deposit or withdrawal racing a `ttl` change may be counted in
    ///   either window, or lost (as two withdrawals racing for the last
    ///   token may both succeed; see the [module docs](self)).
    ///
    /// A reload emits one `info` event (target `seawall_retry`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_retry::{RetryBudget, RetryBudgetConfig};
    ///
    /// let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10)).unwrap();
    /// for _ in 0..4 {
    ///     budget.deposit();
    /// }
    /// assert!(budget.try_withdraw()); // 2 - 1 = 1 retry left
    /// // A floor of 1/s over 10s adds a reserve of 10; the balance is kept.
    /// budget.reload(&RetryBudgetConfig::new().ratio(0.5).min_per_sec(1)).unwrap();
    /// assert_eq!(budget.balance(), 11.0);
    /// ```
    pub fn reload(&self, config: &RetryBudgetConfig) -> Result<(), ReloadError> {
        config.validate()?;
        let mut current = self.inner.config();
        let inner = &*self.inner;
        let old = Numbers::of(&current);
        let new = Numbers::of(config);
        let now = inner.clock.nanos();
        // Deposits not yet counted were made at the old ratio.
        let epoch = epoch_of(now, old.per_bucket);
        inner.move_pending(epoch);
        if new.per_bucket != old.per_bucket {
            inner.refile(epoch, &old, &new, now);
        }
        inner.deposit.store(new.deposit, Ordering::Relaxed);
        inner.reserve.store(new.reserve, Ordering::Relaxed);
        let mut changed = Vec::new();
        if config.ratio != current.ratio {
            changed.push("ratio");
        }
        if config.min_per_sec != current.min_per_sec {
            changed.push("min_per_sec");
        }
        if config.ttl != current.ttl {
            changed.push("ttl");
        }
        let enabled = current.enabled;
        *current = config.clone().enabled(enabled);
        drop(current);
        tracing::info!(
            target: TARGET_RETRY,
            layer = "retry_budget",
            changed = %changed.join(", "),
            ratio = config.ratio,
            min_per_sec = config.min_per_sec,
            ttl = ?config.ttl,
            "retry budget reloaded"
        );
        Ok(())
    }

    /// Records a request (call once per request, retries excluded). One
    /// atomic add; every 64th also reads the clock.
    pub fn deposit(&self) {
        if self.inner.deposit.load(Ordering::Relaxed) == 0 {
            return;
        }
        let pending = self.inner.pending.fetch_add(1, Ordering::Relaxed) + 1;
        if pending >= MOVE_EVERY {
            self.inner.move_pending_now();
        }
    }

    /// Takes one retry from the budget; `false` if none is left.
    pub fn try_withdraw(&self) -> bool {
        self.withdraw().is_some()
    }

    /// [`try_withdraw`](Self::try_withdraw) that says which epoch the
    /// token came from, for [`refund`](Self::refund).
    pub(crate) fn withdraw(&self) -> Option<u32> {
        let epoch = self.inner.now();
        self.inner.move_pending(epoch);
        if self.inner.sum(epoch) >= UNIT {
            self.inner.add(epoch, -(UNIT as i32));
            Some(epoch)
        } else {
            None
        }
    }

    /// Gives back a token withdrawn in `epoch` and not used. Into the bucket
    /// it was taken from, so it expires when the withdrawal would have; if
    /// that bucket has moved on, the withdrawal has expired already and
    /// there is nothing to give back.
    pub(crate) fn refund(&self, epoch: u32) {
        let bucket = &self.inner.buckets[epoch as usize % BUCKETS];
        let _ = bucket.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |word| {
            let (e, v) = unpack(word);
            (e == epoch).then(|| pack(e, v.saturating_add(UNIT as i32)))
        });
    }

    /// How many retries the budget would allow now (fractional).
    pub fn balance(&self) -> f64 {
        let epoch = self.inner.now();
        self.inner.move_pending(epoch);
        self.inner.sum(epoch) as f64 / UNIT as f64
    }
}

/// The bucket epoch of a clock reading: a multiply and a shift, with
/// `per_bucket` from [`reciprocal`]. Exact, or one bucket late within a
/// nanosecond of a boundary: harmless for a window of ten buckets. Wraps
/// after 2^32 buckets (13 years at the smallest ttl); `sum` compares epochs
/// with wrapping arithmetic, so wrapping is harmless too.
fn epoch_of(now: u64, per_bucket: u64) -> u32 {
    ((u128::from(now) * u128::from(per_bucket)) >> 64) as u32
}

impl Inner {
    fn config(&self) -> MutexGuard<'_, RetryBudgetConfig> {
        // Poisoned only by a panic under the lock; the config stays whole.
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves every live bucket (at `epoch`, on the `old` numbers) to the
    /// bucket of the same age on the `new` ones; drops those older than the
    /// new window.
    fn refile(&self, epoch: u32, old: &Numbers, new: &Numbers, now: u64) {
        let mut live = [(0u64, 0i32); BUCKETS];
        for (slot, bucket) in live.iter_mut().zip(&self.buckets) {
            let (e, v) = unpack(bucket.swap(0, Ordering::AcqRel));
            let age = epoch.wrapping_sub(e);
            if v != 0 && age < BUCKETS as u32 {
                *slot = (u64::from(age).saturating_mul(old.width), v);
            }
        }
        self.per_bucket.store(new.per_bucket, Ordering::Relaxed);
        let now_epoch = epoch_of(now, new.per_bucket);
        self.moved_at.store(now_epoch, Ordering::Relaxed);
        for (age_ns, v) in live {
            let age = age_ns / new.width.max(1);
            if v != 0 && age < BUCKETS as u64 {
                // `age < BUCKETS`, a u32.
                self.add(now_epoch.wrapping_sub(age as u32), v);
            }
        }
    }

    /// Moves the pending deposits now. Out of line: a deposit's common path
    /// (no move) then saves no register for the clock read.
    #[inline(never)]
    fn move_pending_now(&self) {
        self.move_pending(self.now());
    }

    /// The epoch now, on the budget's clock.
    fn now(&self) -> u32 {
        epoch_of(self.clock.nanos(), self.per_bucket.load(Ordering::Relaxed))
    }

    /// Moves pending deposits into the bucket of the previous move's epoch
    /// (never younger than they are), and notes `now` as this move's epoch.
    fn move_pending(&self, now: u32) {
        let previous = self.moved_at.swap(now, Ordering::AcqRel);
        let n = self.pending.swap(0, Ordering::AcqRel);
        // Deposits from a whole window ago have expired already.
        if n > 0 && now.wrapping_sub(previous) < BUCKETS as u32 {
            let deposit = self.deposit.load(Ordering::Relaxed);
            let amount = i64::from(deposit).saturating_mul(n as i64);
            self.add(previous, i32::try_from(amount).unwrap_or(i32::MAX));
        }
    }

    fn add(&self, epoch: u32, delta: i32) {
        let bucket = &self.buckets[epoch as usize % BUCKETS];
        let mut current = bucket.load(Ordering::Relaxed);
        loop {
            let (e, v) = unpack(current);
            let next = if e == epoch {
                pack(e, v.saturating_add(delta))
            } else if epoch.wrapping_sub(e) < u32::MAX / 2 {
                // The bucket holds an older epoch: it has expired, start afresh.
                pack(epoch, delta)
            } else {
                // Another thread already moved the bucket on (we read the
                // clock a moment before it did): count with its epoch.
                pack(e, v.saturating_add(delta))
            };
            match bucket.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    fn sum(&self, epoch: u32) -> i64 {
        let live: i64 = self
            .buckets
            .iter()
            .map(|b| unpack(b.load(Ordering::Acquire)))
            .filter(|(e, _)| epoch.wrapping_sub(*e) < BUCKETS as u32 || e.wrapping_sub(epoch) < 2)
            .map(|(_, v)| i64::from(v))
            .sum();
        self.reserve.load(Ordering::Relaxed).saturating_add(live)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("config", &self.config())
            .field("balance", &self.balance())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use seawall_core::ManualClock;

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn default_is_valid() {
        assert!(RetryBudgetConfig::default().validate().is_ok());
        let b = RetryBudget::default();
        assert_eq!(b.config().ratio, 0.2);
    }

    /// A budget on a manual clock (no runtime), and its hand.
    fn manual(ratio: f64, min_per_sec: u32, ttl: Duration) -> (RetryBudget, ManualClock) {
        let (clock, hand) = Clock::manual();
        (
            RetryBudget::new(ratio, min_per_sec, ttl)
                .unwrap()
                .clock(clock),
            hand,
        )
    }

    #[test]
    fn epochs_follow_the_clock() {
        let per_bucket = reciprocal(nanos(secs(10)) / BUCKETS as u64);
        for (after, want) in [(0, 0), (999, 0), (1000, 1), (1001, 1), (25_500, 25)] {
            let at = nanos(Duration::from_millis(after));
            assert_eq!(epoch_of(at, per_bucket), want, "{after}ms");
        }
        let _ = epoch_of(u64::MAX, per_bucket); // wraps, no panic
        let (b, hand) = manual(0.2, 10, secs(10));
        hand.advance(Duration::from_millis(2500));
        assert_eq!(b.inner.now(), 2);
    }

    #[test]
    fn deposits_never_count_as_younger_than_they_are() {
        let (b, hand) = manual(1.0, 0, secs(10));
        for _ in 0..10 {
            b.deposit(); // pending: no clock read yet
        }
        hand.advance(secs(5));
        // Moved now, under the epoch of the previous move (t = 0).
        assert_eq!(b.balance(), 10.0);
        hand.advance(Duration::from_millis(5100));
        assert_eq!(
            b.balance(),
            0.0,
            "expired 10s after t = 0, not after t = 5s"
        );
    }

    #[test]
    fn every_64th_deposit_moves_the_pending_ones() {
        let (b, hand) = manual(1.0, 0, secs(1));
        hand.advance(Duration::from_millis(450));
        for _ in 0..64 {
            b.deposit();
        }
        assert_eq!(b.inner.pending.load(Ordering::Relaxed), 0, "moved");
        assert_eq!(b.inner.moved_at.load(Ordering::Relaxed), 4);
        b.deposit();
        assert_eq!(b.inner.pending.load(Ordering::Relaxed), 1);
        // An hour later the pending deposit is too old to count.
        hand.advance(secs(3600));
        assert_eq!(b.balance(), 0.0);
    }

    #[test]
    fn a_clock_older_than_the_budget_keeps_its_first_deposits() {
        let (clock, hand) = Clock::manual();
        hand.advance(secs(3600));
        let b = RetryBudget::new(1.0, 0, secs(1)).unwrap().clock(clock);
        b.deposit();
        hand.advance(Duration::from_millis(500));
        assert_eq!(b.balance(), 1.0, "counted from now, not the clock's origin");
        hand.advance(Duration::from_millis(700));
        assert_eq!(b.balance(), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_clock_follows_paused_tokio_time() {
        let b = RetryBudget::new(0.0, 1, secs(1)).unwrap();
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(b.try_withdraw());
    }

    #[test]
    fn packing_round_trips() {
        for (e, v) in [(0, 0), (7, -1000), (u32::MAX, i32::MIN), (3, i32::MAX)] {
            assert_eq!(unpack(pack(e, v)), (e, v));
        }
    }

    #[test]
    fn floor_refills_after_ttl() {
        let (b, hand) = manual(0.0, 2, secs(1));
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw(), "floor of 2 per 1s spent");
        hand.advance(Duration::from_millis(1100));
        assert!(b.try_withdraw(), "withdrawals expire after ttl");
    }

    #[test]
    fn deposits_expire_after_ttl() {
        let (b, hand) = manual(1.0, 0, secs(1));
        b.deposit();
        hand.advance(Duration::from_millis(850));
        assert_eq!(b.balance(), 1.0, "still counted within ttl");
        hand.advance(Duration::from_millis(300));
        assert_eq!(b.balance(), 0.0, "expired after ttl");
        assert!(!b.try_withdraw());
    }

    #[test]
    fn ratio_limits_withdrawals() {
        let (b, hand) = manual(0.2, 0, secs(10));
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 20);
        // Long idle: everything expired, balance back to the (zero) reserve.
        hand.advance(secs(3600));
        assert_eq!(b.balance(), 0.0);
    }

    #[test]
    fn clones_share_one_balance() {
        let b = RetryBudget::new(1.0, 0, secs(1)).unwrap();
        let c = b.clone();
        b.deposit();
        assert!(c.try_withdraw());
        assert!(!b.try_withdraw());
    }

    #[test]
    fn bad_config_names_the_fields() {
        let err = RetryBudget::new(1.5, 10, Duration::from_millis(500)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ratio: 1.5 is not in 0..=1; ttl: 500ms is not in 1s..=60s"
        );
    }

    #[test]
    fn concurrent_use_keeps_the_books() {
        let b = RetryBudget::new(0.5, 0, secs(60)).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let b = b.clone();
                s.spawn(move || {
                    for _ in 0..10_000 {
                        b.deposit();
                    }
                });
            }
        });
        assert_eq!(b.balance(), 20_000.0);
    }
}

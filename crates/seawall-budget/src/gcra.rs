//! The generic cell rate algorithm on one atomic: the tower-free heart of
//! every budget in this crate.
//!
//! State is a single *theoretical arrival time* (TAT), a reading of the
//! budget's [`Clock`](seawall_core::Clock) in nanoseconds. Taking `n` tokens at `now` moves it to
//! `max(tat, now) + n × emission`; the take is admitted when that is at most
//! `now + burst × emission`. So the budget refills smoothly, one token every
//! `emission` nanoseconds, and never holds more than `burst` tokens: there
//! are no window edges that let two bursts through back to back. Every
//! operation is a load and a compare-exchange loop (the way `governor` does
//! it), so many tasks may share one budget without a lock.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::sync::{AtomicU32, AtomicU64, fence};

/// A validated rate: one token every `emission` ns, at most `burst` held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    emission: u64,
    burst: u32,
    // `burst × emission`: the most TAT may run ahead of `now`.
    limit: u64,
}

impl Rate {
    /// `rate` tokens every `per`, bursts of `burst`. Zero values are clamped
    /// to one (the config's validation reports them first); the emission
    /// interval is rounded down to whole nanoseconds (at most 1 ns of drift
    /// per token, far below one token over any span).
    pub(crate) fn new(rate: u32, per: Duration, burst: u32) -> Rate {
        let per_ns = seawall_core::time::nanos(per);
        let emission = (per_ns / u64::from(rate.max(1))).max(1);
        let burst = burst.max(1);
        Rate {
            emission,
            burst,
            limit: emission.saturating_mul(u64::from(burst)),
        }
    }

    /// Nanoseconds between two tokens.
    pub(crate) fn emission(&self) -> u64 {
        self.emission
    }

    /// Most tokens held at once.
    pub(crate) fn burst(&self) -> u32 {
        self.burst
    }

    #[inline]
    fn cost(&self, n: u32) -> u64 {
        self.emission.saturating_mul(u64::from(n))
    }
}

/// A [`Rate`] that a reload may replace while calls read it: every reader
/// gets the old rate or the new one whole, never the emission of one with
/// the burst of the other, and never waits.
///
/// Two copies and a sequence number (a "latch", as Linux's
/// `seqcount_latch`): an even sequence sends readers to copy 0, an odd one
/// to copy 1. A writer makes the sequence odd, rewrites copy 0 (which no
/// new reader then reads), makes it even, and rewrites copy 1. A reader
/// loads the sequence, its copy, and the sequence again; it retries only if
/// a writer moved the sequence meanwhile (a writer stalled half-way leaves
/// the other copy intact, so readers never spin on it). A read costs two
/// loads of the sequence more than reading a plain `Rate`, and no write.
pub(crate) struct RateCell {
    seq: AtomicU64,
    copies: [RateCopy; 2],
    // Writers one at a time (reloads are rare; readers never take it).
    write: std::sync::Mutex<()>,
}

struct RateCopy {
    emission: AtomicU64,
    limit: AtomicU64,
    burst: AtomicU32,
}

impl RateCopy {
    fn new(rate: Rate) -> RateCopy {
        RateCopy {
            emission: AtomicU64::new(rate.emission),
            limit: AtomicU64::new(rate.limit),
            burst: AtomicU32::new(rate.burst),
        }
    }

    fn store(&self, rate: Rate) {
        self.emission.store(rate.emission, Ordering::Relaxed);
        self.limit.store(rate.limit, Ordering::Relaxed);
        self.burst.store(rate.burst, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for RateCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.load().fmt(f)
    }
}

impl RateCell {
    /// A cell holding `rate`.
    pub(crate) fn new(rate: Rate) -> RateCell {
        RateCell {
            seq: AtomicU64::new(0),
            copies: [RateCopy::new(rate), RateCopy::new(rate)],
            write: std::sync::Mutex::new(()),
        }
    }

    /// The rate in force: the old or the new one whole, whatever a writer
    /// is doing.
    #[inline]
    pub(crate) fn load(&self) -> Rate {
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            let copy = &self.copies[(seq & 1) as usize];
            let rate = Rate {
                emission: copy.emission.load(Ordering::Relaxed),
                limit: copy.limit.load(Ordering::Relaxed),
                burst: copy.burst.load(Ordering::Relaxed),
            };
            // Orders the loads above before the check below: had any of
            // them seen a store of a writer that moved the sequence on, the
            // check sees the move.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == seq {
                return rate;
            }
        }
    }

    /// Replaces the rate, then runs `then(old, new)` while still holding the
    /// writers' lock (a reload rescales the cells that run on this rate
    /// there, so two reloads cannot interleave their rescales). Returns the
    /// old rate.
    pub(crate) fn replace(&self, rate: Rate, then: impl FnOnce(&Rate, &Rate)) -> Rate {
        // Poisoned only by a panic in `then`, which leaves the copies whole.
        let _writer = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.load();
        for copy in &self.copies {
            // Readers move to the other copy (and the increment publishes
            // the copy written last); the fence orders the increment before
            // this copy's stores, for a reader's check.
            self.seq.fetch_add(1, Ordering::Release);
            fence(Ordering::Release);
            copy.store(rate);
        }
        then(&old, &rate);
        old
    }
}

/// Tokens taken by [`Gcra::try_reserve`] that may yet be given back unused
/// with [`Gcra::refund`]: when they were taken, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    at: u64,
    n: u32,
}

impl Reservation {
    /// Tokens reserved.
    pub(crate) fn n(&self) -> u32 {
        self.n
    }
}

/// One GCRA cell: the theoretical arrival time.
#[derive(Debug, Default)]
pub(crate) struct Gcra {
    tat: AtomicU64,
    // A time the clock has already shown (a lower bound of `now`, since the
    // clock is monotonic), next to `tat` on the same cache line. Lets
    // `check_seen` answer "yes" without reading the clock when there is room
    // even at that earlier time.
    seen: AtomicU64,
}

// Relaxed everywhere: the TAT publishes no other data, and a compare-exchange
// on one location is totally ordered on its own.
impl Gcra {
    /// A full budget.
    pub(crate) fn new() -> Gcra {
        Gcra::default()
    }

    /// Takes `n` tokens at `now` if they are all available; otherwise takes
    /// nothing and returns the nanoseconds until they will be. A request for
    /// more than `burst` tokens is never admitted.
    #[inline]
    pub(crate) fn try_take(&self, rate: &Rate, n: u32, now: u64) -> Result<(), u64> {
        let cost = rate.cost(n);
        let allow_until = now.saturating_add(rate.limit);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(cost);
            if next > allow_until {
                return Err(next - allow_until);
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Records a clock reading for [`check_seen`](Self::check_seen). Racing
    /// stores may leave an older reading: still a lower bound of `now`.
    #[inline]
    pub(crate) fn note_now(&self, now: u64) {
        self.seen.store(now, Ordering::Relaxed);
    }

    /// `true` when `n` tokens are certainly available now, judged without a
    /// clock read: they were available at an instant already seen, and
    /// tokens only accrue as time passes. `false` means "read the clock".
    #[inline]
    pub(crate) fn check_seen(&self, rate: &Rate, n: u32) -> bool {
        let seen = self.seen.load(Ordering::Relaxed);
        self.check(rate, n, seen).is_ok()
    }

    /// Whether `n` tokens are available at `now`, without taking them.
    #[inline]
    pub(crate) fn check(&self, rate: &Rate, n: u32, now: u64) -> Result<(), u64> {
        let next = self
            .tat
            .load(Ordering::Relaxed)
            .max(now)
            .saturating_add(rate.cost(n));
        let allow_until = now.saturating_add(rate.limit);
        if next > allow_until {
            Err(next - allow_until)
        } else {
            Ok(())
        }
    }

    /// Takes `n` tokens unconditionally: work already done is accounted for,
    /// even if it puts the budget into debt.
    #[inline]
    pub(crate) fn take(&self, rate: &Rate, n: u32, now: u64) {
        let cost = rate.cost(n);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(cost);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Takes `n` tokens at `now` like [`try_take`](Self::try_take), and
    /// returns a [`Reservation`] that [`refund`](Self::refund) can give back
    /// if they go unused. The same single compare-exchange: the reservation
    /// is only the arguments, kept.
    #[inline]
    pub(crate) fn try_reserve(&self, rate: &Rate, n: u32, now: u64) -> Result<Reservation, u64> {
        self.try_take(rate, n, now)?;
        Ok(Reservation { at: now, n })
    }

    /// Gives back, at `now`, what is still owed of a reservation that went
    /// unused: its cost less the time it was held,
    /// `max(0, cost - (now - reserved_at))`. Never more than the budget
    /// would hold had the reservation never been made, whatever was taken
    /// or given back in between; see the comment in the body for why this
    /// is the amount.
    pub(crate) fn refund(&self, rate: &Rate, reservation: Reservation, now: u64) {
        // The maths. Write `e` for the emission interval, `c = n × e` for
        // the reservation's cost, `t0` for when it was made, `t1 = now`.
        // A take at `s` of cost `d` maps the TAT `x` to `max(x, s) + d`.
        //
        // The reservation took the slot `[a, a + c)` with `a = max(TAT, t0)
        // >= t0`. Let `F` be the TAT the takes not given back would produce
        // replayed on their own, and `F'` the same without this reservation.
        // The takes made after it compose to `x -> max(x + C, M)`, with `C`
        // their total cost and `M = max_j(s_j + the costs from j on) <= t1
        // + C`, since each `s_j <= t1`. So `F = max(a + c + C, M)` and `F' =
        // max(a + C, M)`: undoing the reservation moves the TAT back by `c`
        // when the takes after it stacked on it, and by nothing once one of
        // them found the bucket refilled past it (`M` wins). The first case
        // is the refund the takes after it are owed (their slots move down
        // into the freed one); the second is the bug a plain "TAT -= c"
        // has: the refill already replaced the token, and handing it back
        // again admits more than the burst.
        //
        // Give back `g = min(c, max(0, t0 + c - t1))`. Then `a + C <= F - c
        // <= F - g`, and `M <= t1 + C <= t0 + c + C - g <= F - g` (as `F >=
        // a + c + C >= t0 + c + C`), so `F' <= F - g`. Takes are monotone
        // in `x`, so the TAT never falls below `F`; by induction over every
        // take and refund it stays `>= F` after this one too: a refund never
        // gives a token twice, in any interleaving with other takes and
        // refunds.
        //
        // It is exact (`F' = F - g`) when the reservation is dropped the
        // instant it was made (`t1 = t0`, so `M <= a + C`), and when it was
        // not queued behind debt (`a = t0`) and nothing else was taken
        // while it was held but at `t1` (`C = 0` or `M = t1 + C`).
        // Otherwise it keeps back at most `min(c, t1 - t0)` more than owed
        // (`F - F' <= c`), which the refill pays back in that much time.
        //
        // Why not undo by the slot's end (`TAT == a + c`, compare-exchange
        // to `a`)? A refund of an earlier reservation moves every slot above
        // it down, this one's included, so `a` goes stale and the TAT can
        // equal `a + c` again by coincidence: A and B reserve at 0 (slots
        // `[0, e)`, `[e, 2e)`), A is dropped at 0, X takes at `e/2` (TAT
        // `2e`), B is dropped at `e/2`: undoing to `e` hands back half of
        // X's token (`F' = 1.5e`). `t0` never goes stale.
        let held = now.saturating_sub(reservation.at);
        let owed = rate.cost(reservation.n).saturating_sub(held);
        if owed == 0 {
            return;
        }
        // Never below `now`: a full bucket cannot be fuller (the bound above
        // already keeps it there; this only guards against a reservation
        // from another budget).
        let _ = self
            .tat
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(owed).max(t.min(now)))
            });
    }

    /// Re-expresses the cell, at `now`, from `old` to `new` rate (a
    /// reload): the tokens available now stay available, capped at the new
    /// burst, and those owed stay owed. So spent tokens stay spent, a higher
    /// rate refills what is owed sooner from this instant on, a smaller
    /// burst cuts the bank down to it, and a larger one fills up to it at
    /// the new rate (it hands out nothing at once). A take racing the
    /// rescale is counted before it (and rescaled) or after it, charged at
    /// the rate it read: a take that read the other rate than the one its
    /// side of the rescale is in is off by at most one token's difference.
    pub(crate) fn rescale(&self, old: &Rate, new: &Rate, now: u64) {
        let _ = self
            .tat
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(rescaled(tat, old, new, now))
            });
    }

    /// How far the arrival time runs ahead of `now`: the time until the
    /// budget is whole again.
    #[cfg(feature = "quota")]
    pub(crate) fn debt(&self, now: u64) -> u64 {
        self.tat.load(Ordering::Relaxed).saturating_sub(now)
    }

    /// Whole tokens available at `now`.
    pub(crate) fn available(&self, rate: &Rate, now: u64) -> u32 {
        let debt = self.tat.load(Ordering::Relaxed).saturating_sub(now);
        let free = rate.limit.saturating_sub(debt) / rate.emission;
        // `free <= limit / emission == burst`, a u32.
        u32::try_from(free).unwrap_or(rate.burst)
    }

    /// The share of the burst in use at `now`, in `0.0..=1.0`.
    pub(crate) fn utilisation(&self, rate: &Rate, now: u64) -> f64 {
        let debt = self.tat.load(Ordering::Relaxed).saturating_sub(now);
        (debt as f64 / rate.limit as f64).min(1.0)
    }
}

/// The TAT that leaves, at `now` and at the `new` rate, the tokens `tat`
/// leaves at the `old` one (a negative number in debt), capped at the new
/// burst: `available' = min(available, burst')`, in fractions of a token.
fn rescaled(tat: u64, old: &Rate, new: &Rate, now: u64) -> u64 {
    let debt = i128::from(tat.saturating_sub(now));
    // Tokens available at the old rate, counted in the new emission's
    // nanoseconds: (old.limit - debt) / old.emission × new.emission. Every
    // factor is below 2^64, so nothing overflows an i128.
    let available =
        (i128::from(old.limit) - debt) * i128::from(new.emission) / i128::from(old.emission.max(1));
    let available = available.min(i128::from(new.limit));
    let debt = (i128::from(new.limit) - available).max(0);
    now.saturating_add(u64::try_from(debt).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn rate(per_second: u32, burst: u32) -> Rate {
        Rate::new(per_second, Duration::from_secs(1), burst)
    }

    #[test]
    fn a_full_budget_admits_exactly_its_burst() {
        let r = rate(10, 3);
        let g = Gcra::new();
        for _ in 0..3 {
            assert_eq!(g.try_take(&r, 1, 0), Ok(()));
        }
        // The next token is due 100ms after the first.
        assert_eq!(g.try_take(&r, 1, 0), Err(100 * MS));
        assert_eq!(g.try_take(&r, 1, 40 * MS), Err(60 * MS));
        assert_eq!(g.try_take(&r, 1, 100 * MS), Ok(()));
        assert_eq!(g.available(&r, 100 * MS), 0);
    }

    #[test]
    fn retry_after_is_when_n_tokens_are_due() {
        let r = rate(10, 5);
        let g = Gcra::new();
        assert_eq!(g.try_take(&r, 5, 0), Ok(()));
        assert_eq!(g.try_take(&r, 3, 0), Err(300 * MS));
        assert_eq!(g.check(&r, 3, 0), Err(300 * MS));
        assert_eq!(g.check(&r, 3, 300 * MS), Ok(()));
        // More than the burst is never admitted, even when full.
        let fresh = Gcra::new();
        assert_eq!(fresh.try_take(&r, 6, 0), Err(100 * MS));
    }

    #[test]
    fn a_refund_at_once_restores_exactly_what_was_taken() {
        let r = rate(10, 2);
        let g = Gcra::new();
        let first = g.try_reserve(&r, 1, 0).unwrap();
        let second = g.try_reserve(&r, 1, 0).unwrap();
        assert_eq!(g.available(&r, 0), 0);
        g.refund(&r, second, 0);
        assert_eq!(g.available(&r, 0), 1);
        g.refund(&r, first, 0);
        assert_eq!(g.available(&r, 0), 2);
        assert_eq!(g.tat.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_refund_after_the_refill_gives_nothing_back() {
        // The bug: reserved at 0, refilled, both tokens taken at 10s, then
        // the reservation dropped. Its token was replaced by the refill.
        let r = rate(10, 2);
        let g = Gcra::new();
        let held = g.try_reserve(&r, 1, 0).unwrap();
        let t = 10_000 * MS;
        g.try_take(&r, 1, t).unwrap();
        g.try_take(&r, 1, t).unwrap();
        g.refund(&r, held, t);
        assert_eq!(g.available(&r, t), 0);
        assert_eq!(g.try_take(&r, 1, t), Err(100 * MS));
    }

    #[test]
    fn a_refund_moves_the_takes_stacked_on_it_down_into_its_slot() {
        // Others took after the reservation, at the same instant: their
        // tokens move into the freed slot, and the reservation's is given
        // back whole: exactly as if it had never been made.
        let r = rate(10, 3);
        let g = Gcra::new();
        let held = g.try_reserve(&r, 1, 0).unwrap();
        g.try_take(&r, 2, 0).unwrap();
        g.refund(&r, held, 0);
        assert_eq!(g.tat.load(Ordering::Relaxed), 200 * MS);
        assert_eq!(g.available(&r, 0), 1);
        // Others took later, stacked on it (no refill in between): the
        // part of the slot still ahead is given back, and the TAT is what
        // the later take alone would have left.
        let g = Gcra::new();
        let held = g.try_reserve(&r, 1, 0).unwrap();
        g.try_take(&r, 1, 30 * MS).unwrap();
        g.refund(&r, held, 30 * MS);
        assert_eq!(g.tat.load(Ordering::Relaxed), 130 * MS);
    }

    #[test]
    fn a_refund_gives_back_its_cost_less_the_time_held() {
        let r = rate(10, 2);
        let g = Gcra::new();
        let held = g.try_reserve(&r, 1, 0).unwrap();
        // Held 40ms of its 100ms slot on a full bucket: the bucket is as
        // full as if it had never been taken.
        g.refund(&r, held, 40 * MS);
        assert_eq!(g.tat.load(Ordering::Relaxed), 40 * MS);
        assert_eq!(g.available(&r, 40 * MS), 2);
        // Held longer than its slot: nothing owed, nothing moves.
        let held = g.try_reserve(&r, 1, 40 * MS).unwrap();
        g.try_take(&r, 1, 40 * MS).unwrap();
        g.refund(&r, held, 500 * MS);
        assert_eq!(g.tat.load(Ordering::Relaxed), 240 * MS);
    }

    #[test]
    fn a_refund_under_another_reservation_does_not_make_it_stale() {
        // A and B reserve at 0; A is dropped at once, which moves B's slot
        // down to [0, 100ms); X takes at 50ms; B is dropped at 50ms. Without
        // A and B the TAT would be X's alone: 150ms. (Undoing B by its
        // original slot's end, which the TAT equals again, would leave 100ms:
        // half of X's token handed back twice.)
        let r = rate(10, 2);
        let g = Gcra::new();
        let a = g.try_reserve(&r, 1, 0).unwrap();
        let b = g.try_reserve(&r, 1, 0).unwrap();
        g.refund(&r, a, 0);
        g.try_take(&r, 1, 50 * MS).unwrap();
        assert_eq!(g.tat.load(Ordering::Relaxed), 200 * MS);
        g.refund(&r, b, 50 * MS);
        assert_eq!(g.tat.load(Ordering::Relaxed), 150 * MS);
        assert_eq!(g.try_take(&r, 1, 100 * MS), Ok(()));
        assert_eq!(g.try_take(&r, 1, 100 * MS), Err(50 * MS));
    }

    #[test]
    fn a_refund_never_moves_the_tat_below_now() {
        let r = rate(10, 2);
        let g = Gcra::new();
        g.try_take(&r, 1, 0).unwrap();
        // A reservation from another budget, made later than anything here.
        let foreign = Gcra::new().try_reserve(&r, 1, 50 * MS).unwrap();
        g.refund(&r, foreign, 50 * MS);
        assert_eq!(g.tat.load(Ordering::Relaxed), 50 * MS);
        assert_eq!(g.available(&r, 50 * MS), 2);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Advance(u64),
        TryTake(u32),
        Take(u32),
        Reserve(u32),
        Refund(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u64..250).prop_map(|ms| Op::Advance(ms * MS)),
            (1u32..=3).prop_map(Op::TryTake),
            (1u32..=2).prop_map(Op::Take),
            (1u32..=3).prop_map(Op::Reserve),
            any::<usize>().prop_map(Op::Refund),
        ]
    }

    proptest::proptest! {
        /// Any sequence of takes, reservations and refunds on a clock that
        /// moves forward: the TAT is never below what the takes not given
        /// back would leave replayed on their own (no token is handed out
        /// twice), and never above it by more than the time the refunded
        /// reservations were held (each capped at its cost).
        #[test]
        fn refunds_never_give_a_token_twice(ops in proptest::collection::vec(op(), 1..80)) {
            let r = rate(10, 3);
            let g = Gcra::new();
            let mut now = 0u64;
            // Takes not given back, in order: (at, cost).
            let mut takes: Vec<Option<(u64, u64)>> = Vec::new();
            // Reservations outstanding, with their index in `takes`.
            let mut held: Vec<(Reservation, usize)> = Vec::new();
            let mut kept_back = 0u64;
            for op in ops {
                match op {
                    Op::Advance(d) => now += d,
                    Op::TryTake(n) => {
                        if g.try_take(&r, n, now).is_ok() {
                            takes.push(Some((now, r.cost(n))));
                        }
                    }
                    Op::Take(n) => {
                        g.take(&r, n, now);
                        takes.push(Some((now, r.cost(n))));
                    }
                    Op::Reserve(n) => {
                        if let Ok(res) = g.try_reserve(&r, n, now) {
                            held.push((res, takes.len()));
                            takes.push(Some((now, r.cost(n))));
                        }
                    }
                    Op::Refund(i) if !held.is_empty() => {
                        let (res, at) = held.swap_remove(i % held.len());
                        g.refund(&r, res, now);
                        takes[at] = None;
                        kept_back += r.cost(res.n).min(now - res.at);
                    }
                    Op::Refund(_) => {}
                }
                let replayed = takes
                    .iter()
                    .flatten()
                    .fold(0u64, |tat, &(at, cost)| tat.max(at) + cost)
                    .max(now);
                let tat = g.tat.load(Ordering::Relaxed).max(now);
                proptest::prop_assert!(tat >= replayed, "{tat} < {replayed}: a token given twice");
                proptest::prop_assert!(
                    tat - replayed <= kept_back,
                    "{tat} - {replayed} > {kept_back}: kept back more than the time held"
                );
            }
        }
    }

    #[test]
    fn unconditional_takes_go_into_debt() {
        let r = rate(10, 2);
        let g = Gcra::new();
        g.take(&r, 5, 0);
        assert_eq!(g.utilisation(&r, 0), 1.0);
        g.note_now(0);
        assert!(!g.check_seen(&r, 1));
        g.note_now(400 * MS);
        assert!(g.check_seen(&r, 1));
        // 500ms owed, 200ms of which fit in the burst: the next token is due at 400ms.
        assert_eq!(g.try_take(&r, 1, 0), Err(400 * MS));
        assert_eq!(g.try_take(&r, 1, 400 * MS), Ok(()));
    }

    #[test]
    fn zero_inputs_are_clamped() {
        let r = Rate::new(0, Duration::ZERO, 0);
        assert_eq!(r.emission(), 1);
        assert_eq!(r.burst(), 1);
    }
}

/// Model checks of the compare-and-swap loops under loom (`--cfg
/// seawall_loom`, see the crate docs): every interleaving of the threads
/// (up to `LOOM_MAX_PREEMPTIONS` preemptions), with loom's weaker-than-SeqCst
/// view of the `Relaxed` operations.
#[cfg(all(test, seawall_loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    const BURST: u32 = 2;

    fn rate() -> Rate {
        Rate::new(10, Duration::from_secs(1), BURST)
    }

    /// Three admits at one instant on a full budget of burst 2: exactly two
    /// get in, whatever the interleaving of their compare-and-swaps.
    #[test]
    fn concurrent_admits_take_at_most_the_burst() {
        loom::model(|| {
            let g = Arc::new(Gcra::new());
            let admits: Vec<_> = (0..3)
                .map(|_| {
                    let g = g.clone();
                    thread::spawn(move || g.try_take(&rate(), 1, 0).is_ok())
                })
                .collect();
            let admitted = admits
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|&ok| ok)
                .count();
            assert_eq!(admitted, BURST as usize);
            assert_eq!(g.available(&rate(), 0), 0);
        });
    }

    /// A reservation dropped unused at the instant it was made (take, then
    /// refund) racing two admits: at no point are more than the burst held,
    /// and the refund gives back exactly its token.
    #[test]
    fn a_refund_at_once_racing_admits_is_exact() {
        loom::model(|| {
            let g = Arc::new(Gcra::new());
            let held = Arc::new(loom::sync::atomic::AtomicU32::new(0));
            let hold = |g: &Gcra, held: &loom::sync::atomic::AtomicU32| {
                let ok = g.try_take(&rate(), 1, 0).is_ok();
                if ok {
                    let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= BURST, "{now} tokens held, burst {BURST}");
                }
                ok
            };
            let reserver = {
                let (g, held) = (g.clone(), held.clone());
                thread::spawn(move || {
                    if let Ok(r) = g.try_reserve(&rate(), 1, 0) {
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= BURST, "{now} tokens held, burst {BURST}");
                        // Given back before the refund: the refund is what
                        // lets another admit in.
                        held.fetch_sub(1, Ordering::SeqCst);
                        g.refund(&rate(), r, 0);
                    }
                })
            };
            let admits: Vec<_> = (0..2)
                .map(|_| {
                    let (g, held) = (g.clone(), held.clone());
                    thread::spawn(move || hold(&g, &held))
                })
                .collect();
            reserver.join().unwrap();
            let admitted = admits
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|&ok| ok)
                .count() as u32;
            // Only the reservation, held for a moment, can have kept one
            // of them out; whatever happened, the budget now holds exactly
            // what the admits left.
            assert!(admitted >= 1);
            assert_eq!(g.available(&rate(), 0), BURST - admitted);
        });
    }

    /// The refill bug: a reservation made at 0 and dropped at 10s, racing
    /// two admits at 10s. The refill replaced its token long ago, so in
    /// every interleaving both admits get in and the refund gives back
    /// nothing: the budget ends spent, never with a third token.
    #[test]
    fn a_late_refund_racing_admits_gives_nothing_twice() {
        const LATER: u64 = 10_000_000_000;
        loom::model(|| {
            let g = Arc::new(Gcra::new());
            let r = g.try_reserve(&rate(), 1, 0).unwrap();
            let refund = {
                let g = g.clone();
                thread::spawn(move || g.refund(&rate(), r, LATER))
            };
            let admits: Vec<_> = (0..2)
                .map(|_| {
                    let g = g.clone();
                    thread::spawn(move || g.try_take(&rate(), 1, LATER).is_ok())
                })
                .collect();
            refund.join().unwrap();
            for t in admits {
                assert!(t.join().unwrap(), "a full bucket refused an admit");
            }
            assert_eq!(g.available(&rate(), LATER), 0);
            assert!(g.try_take(&rate(), 1, LATER).is_err());
        });
    }

    /// Two reservations stacked at 0 are dropped, the lower at once and the
    /// upper at 50ms, just after an admit at 50ms (which finds room only
    /// when the lower refund came first). Whatever the order, the budget
    /// ends as the admit alone would leave it: 1 token at 50ms if it got
    /// in, 2 if not. Undoing the upper one by its slot's end, which the
    /// lower refund moved, would leave 2 after an admit.
    #[test]
    fn stacked_refunds_racing_an_admit_give_nothing_twice() {
        const MS: u64 = 1_000_000;
        loom::model(|| {
            let g = Arc::new(Gcra::new());
            let lower = g.try_reserve(&rate(), 1, 0).unwrap();
            let upper = g.try_reserve(&rate(), 1, 0).unwrap();
            // Both in threads of their own, so that either may go first.
            let first = {
                let g = g.clone();
                thread::spawn(move || g.refund(&rate(), lower, 0))
            };
            let later = {
                let g = g.clone();
                thread::spawn(move || {
                    let admitted = g.try_take(&rate(), 1, 50 * MS).is_ok();
                    g.refund(&rate(), upper, 50 * MS);
                    admitted
                })
            };
            first.join().unwrap();
            let admitted = later.join().unwrap();
            let left = if admitted { 1 } else { 2 };
            assert_eq!(g.available(&rate(), 50 * MS), left);
            if admitted {
                // Exactly the admit's slot, [50ms, 150ms).
                assert_eq!(g.tat.load(Ordering::Relaxed), 150 * MS);
            }
        });
    }

    /// A reload racing an admit: the admit reads one rate whole, and the
    /// TAT ends as one of the orders allows: the admit before the rescale
    /// (its token rescaled with the rest), or after it; in the two racing
    /// orders (the old rate read, the take after the rescale; the new rate
    /// read, the take before it) the call is charged its token at the rate
    /// it read, in the other rate's units: the documented race, off by at
    /// most one token's difference. Never a lost update.
    #[test]
    fn a_reload_racing_an_admit_loses_no_update() {
        const MS: u64 = 1_000_000;
        loom::model(|| {
            let old = rate(); // 10/s: 100ms a token, burst 2
            let new = Rate::new(20, Duration::from_secs(1), BURST); // 50ms
            let cell = Arc::new(RateCell::new(old));
            let g = Arc::new(Gcra::new());
            let admit = {
                let (cell, g) = (cell.clone(), g.clone());
                thread::spawn(move || {
                    let r = cell.load();
                    assert!(r == old || r == new, "a torn rate: {r:?}");
                    assert!(g.try_take(&r, 1, 0).is_ok());
                    r
                })
            };
            cell.replace(new, |o, n| g.rescale(o, n, 0));
            let read = admit.join().unwrap();
            let tat = g.tat.load(Ordering::Relaxed);
            if read == new {
                // After the rescale: one new token, 50ms. Before it: 50ms
                // of the old scale (half an old token) rescaled to 25ms.
                assert!(tat == 50 * MS || tat == 25 * MS, "{tat}");
            } else {
                // Before the rescale: 1 of 2 left, rescaled to 50ms owed;
                // after it: the old rate's 100ms on a full bucket.
                assert!(tat == 50 * MS || tat == 100 * MS, "{tat}");
            }
            assert_eq!(cell.load(), new);
        });
    }

    /// A read racing a reload sees the old rate or the new one whole,
    /// never the emission of one with the burst of the other, whichever
    /// copy it lands on and wherever the writer is.
    #[test]
    fn a_rate_read_racing_a_reload_is_never_torn() {
        loom::model(|| {
            let old = Rate::new(10, Duration::from_secs(1), 2);
            let new = Rate::new(40, Duration::from_secs(1), 9);
            let cell = Arc::new(RateCell::new(old));
            let reader = {
                let cell = cell.clone();
                thread::spawn(move || {
                    let r = cell.load();
                    assert!(r == old || r == new, "a torn rate: {r:?}");
                })
            };
            cell.replace(new, |_, _| {});
            reader.join().unwrap();
            assert_eq!(cell.load(), new);
        });
    }

    /// An unconditional take (work already done) racing an admit: neither
    /// update is lost.
    #[test]
    fn a_debt_racing_an_admit_loses_no_update() {
        loom::model(|| {
            let g = Arc::new(Gcra::new());
            let debtor = {
                let g = g.clone();
                thread::spawn(move || g.take(&rate(), 3, 0))
            };
            let admitted = g.try_take(&rate(), 1, 0).is_ok();
            debtor.join().unwrap();
            let e = rate().emission();
            // Admitted first (then the debt on top), or refused after the
            // debt: the TAT holds every token taken.
            let taken = if admitted { 4 } else { 3 };
            assert_eq!(g.tat.load(Ordering::Relaxed), taken * e);
        });
    }
}

//! The rotating latency window: a ring of interval histograms.
//!
//! Guarantees: a sample is counted in the window for at least
//! `(SLOTS - 1)` intervals and at most `SLOTS` intervals after the interval it
//! was flushed in; nothing here allocates after [`Ring::new`] (every
//! histogram is preallocated with the same bounds, and values outside the
//! bounds are clamped, never an error); nothing here panics.

use hdrhistogram::Histogram;

/// Intervals in a window: the window ages out in steps of `window / SLOTS`.
pub(crate) const SLOTS: usize = 6;

/// Significant digits of every histogram: values are reported within 1%.
pub(crate) const SIGFIG: u8 = 2;

/// A histogram of latencies in microseconds, `0..=high_us`, two significant
/// digits. Values above `high_us` are clamped to it.
pub(crate) fn histogram(high_us: u64) -> Histogram<u32> {
    // `new_with_bounds(1, high, 2)` fails only when `high < 2`; `high` is at
    // least 2 here, so the fallback (the smallest valid histogram) is never
    // taken, and it cannot fail either.
    Histogram::new_with_bounds(1, high_us.max(2), SIGFIG)
        .or_else(|_| Histogram::new_with_bounds(1, 2, SIGFIG))
        .unwrap_or_else(|_| unreachable!("1..=2 with 2 significant digits is valid"))
}

/// Adds `src` to `dst`. Both come from [`histogram`] with the same bounds, so
/// the addition cannot run out of range; were it to, the sample is dropped
/// rather than panicking.
pub(crate) fn add(dst: &mut Histogram<u32>, src: &Histogram<u32>) {
    let _ = dst.add(src);
}

/// The ring: `SLOTS` interval histograms and their running sum.
pub(crate) struct Ring {
    slots: Vec<Histogram<u32>>,
    /// The sum of every slot: what percentiles are read from.
    window: Histogram<u32>,
    current: usize,
    /// Start of the current interval, in nanoseconds since the tracker's epoch.
    current_start: u64,
    interval: u64,
}

impl Ring {
    pub(crate) fn new(high_us: u64, interval_ns: u64) -> Self {
        Ring {
            slots: (0..SLOTS).map(|_| histogram(high_us)).collect(),
            window: histogram(high_us),
            current: 0,
            current_start: 0,
            interval: interval_ns.max(1),
        }
    }

    /// Adds a batch of samples to the current interval.
    pub(crate) fn absorb(&mut self, batch: &Histogram<u32>) {
        if batch.is_empty() {
            return;
        }
        add(&mut self.slots[self.current], batch);
        add(&mut self.window, batch);
    }

    /// Intervals that have ended by `now_ns` (0 when the current one still runs).
    pub(crate) fn due(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.current_start) / self.interval
    }

    /// Starts the interval that contains `now_ns`, clearing the ones that
    /// aged out. Returns `true` if anything rotated.
    pub(crate) fn rotate(&mut self, now_ns: u64) -> bool {
        let steps = self.due(now_ns);
        if steps == 0 {
            return false;
        }
        // The window is the sum of the slots: take each aged-out slot out of
        // it rather than summing the others again, and leave empty slots
        // alone, so an idle key's rotation touches no histogram at all.
        let mut consistent = true;
        for _ in 0..steps.min(SLOTS as u64) {
            self.current = (self.current + 1) % SLOTS;
            let slot = &mut self.slots[self.current];
            if !slot.is_empty() {
                consistent &= self.window.subtract(&*slot).is_ok();
                slot.reset();
            }
        }
        self.current_start = self
            .current_start
            .saturating_add(steps.saturating_mul(self.interval));
        if !consistent {
            // Cannot happen while the window is the sum of the slots; if it
            // ever is not, rebuild it from them.
            self.window.reset();
            for slot in &self.slots {
                add(&mut self.window, slot);
            }
        }
        true
    }

    /// When the interval containing `now_ns` ends (what [`Ring::next_rotation`]
    /// returns after `rotate(now_ns)`).
    pub(crate) fn next_rotation_after(&self, now_ns: u64) -> u64 {
        self.current_start
            .saturating_add(self.due(now_ns).saturating_mul(self.interval))
            .saturating_add(self.interval)
    }

    /// When the current interval ends, in nanoseconds since the epoch.
    pub(crate) fn next_rotation(&self) -> u64 {
        self.current_start.saturating_add(self.interval)
    }

    pub(crate) fn window(&self) -> &Histogram<u32> {
        &self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(values: &[u64]) -> Histogram<u32> {
        let mut h = histogram(1_000_000);
        for &v in values {
            h.saturating_record(v);
        }
        h
    }

    #[test]
    fn samples_age_out_after_the_window() {
        let mut ring = Ring::new(1_000_000, 10);
        ring.absorb(&batch(&[100, 200]));
        assert_eq!(ring.window().len(), 2);
        for t in 1..SLOTS as u64 {
            assert!(ring.rotate(t * 10));
            assert_eq!(ring.window().len(), 2, "still in the window at {t}");
        }
        assert!(ring.rotate(SLOTS as u64 * 10));
        assert_eq!(ring.window().len(), 0, "aged out after SLOTS intervals");
    }

    #[test]
    fn a_long_gap_clears_everything_at_once() {
        let mut ring = Ring::new(1_000_000, 10);
        ring.absorb(&batch(&[5; 10]));
        assert!(!ring.rotate(9), "the interval has not ended");
        assert_eq!(ring.next_rotation_after(10_005), 10_010);
        assert!(ring.rotate(10_005));
        assert!(ring.window().is_empty());
        assert_eq!(ring.next_rotation(), 10_010);
    }

    #[test]
    fn the_window_stays_the_sum_of_its_slots() {
        let mut ring = Ring::new(1_000_000, 10);
        for t in 0..40u64 {
            if t % 3 != 0 {
                ring.absorb(&batch(&[t * 100 + 1, 7]));
            }
            ring.rotate(t * 10 + (t % 4) * 7);
            let mut sum = histogram(1_000_000);
            for slot in &ring.slots {
                add(&mut sum, slot);
            }
            assert_eq!(ring.window().len(), sum.len(), "count at step {t}");
            assert_eq!(ring.window().max(), sum.max(), "max at step {t}");
            assert_eq!(
                ring.window().value_at_quantile(0.99),
                sum.value_at_quantile(0.99),
                "p99 at step {t}"
            );
        }
    }

    #[test]
    fn values_out_of_range_are_clamped() {
        let mut h = histogram(1_000);
        h.saturating_record(u64::MAX);
        h.saturating_record(0);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= 1_000);
        assert_eq!(h.min(), 0);
    }
}

//! The rotating latency window: a ring of interval histograms.
//!
//! Guarantees: a sample is counted in the window for at least
//! `(SLOTS - 1)` intervals and at most `SLOTS` intervals after the interval it
//! was flushed in; nothing here allocates after [`Ring::new`] (every
//! histogram is preallocated with the same layout, and values outside it
//! are clamped, never an error); nothing here panics. The window's
//! percentiles are read across the slots in one pass, rather than from a
//! running sum kept beside them: one histogram less per tracker (an eighth
//! of a key's memory), for a few hundred additions at each refresh.

use crate::histogram::{Histogram, Layout, add_counts, quantiles};

/// Intervals in a window: the window ages out in steps of `window / SLOTS`.
pub(crate) const SLOTS: usize = 6;

/// The ring: `SLOTS` interval histograms of one layout, their counts in one
/// allocation.
pub(crate) struct Ring {
    layout: Layout,
    /// Slot `i`'s counts are `counts[i * layout.len()..][..layout.len()]`.
    counts: Box<[u32]>,
    totals: [u64; SLOTS],
    current: usize,
    /// Start of the current interval, a reading of the tracker's clock.
    current_start: u64,
    interval: u64,
}

impl Ring {
    /// A ring whose first interval starts at `start_ns`, a reading of the
    /// tracker's clock.
    pub(crate) fn new(layout: Layout, interval_ns: u64, start_ns: u64) -> Self {
        Ring {
            layout,
            counts: vec![0; SLOTS * layout.len()].into_boxed_slice(),
            totals: [0; SLOTS],
            current: 0,
            current_start: start_ns,
            interval: interval_ns.max(1),
        }
    }

    fn slot_mut(&mut self, i: usize) -> &mut [u32] {
        let n = self.layout.len();
        self.counts.get_mut(i * n..(i + 1) * n).unwrap_or_default()
    }

    /// Adds a batch of samples (of the ring's layout) to the current interval.
    pub(crate) fn absorb(&mut self, batch: &Histogram) {
        if batch.is_empty() {
            return;
        }
        let current = self.current;
        add_counts(self.slot_mut(current), batch.counts());
        self.totals[current] = self.totals[current].saturating_add(batch.len());
    }

    /// Intervals that have ended by `now_ns` (0 when the current one still runs).
    pub(crate) fn due(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.current_start) / self.interval
    }

    /// Starts the interval that contains `now_ns`, clearing the ones that
    /// aged out (an empty slot is left alone, so an idle key's rotation
    /// touches no histogram). Returns `true` if anything rotated.
    pub(crate) fn rotate(&mut self, now_ns: u64) -> bool {
        let steps = self.due(now_ns);
        if steps == 0 {
            return false;
        }
        for _ in 0..steps.min(SLOTS as u64) {
            self.current = (self.current + 1) % SLOTS;
            let current = self.current;
            if self.totals[current] != 0 {
                self.totals[current] = 0;
                self.slot_mut(current).fill(0);
            }
        }
        self.current_start = self
            .current_start
            .saturating_add(steps.saturating_mul(self.interval));
        true
    }

    /// When the interval containing `now_ns` ends (what [`Ring::next_rotation`]
    /// returns after `rotate(now_ns)`).
    pub(crate) fn next_rotation_after(&self, now_ns: u64) -> u64 {
        self.current_start
            .saturating_add(self.due(now_ns).saturating_mul(self.interval))
            .saturating_add(self.interval)
    }

    /// When the current interval ends, a reading of the clock.
    pub(crate) fn next_rotation(&self) -> u64 {
        self.current_start.saturating_add(self.interval)
    }

    /// When every sample now in the window will have aged out, a reading
    /// of the clock: the end of the window that starts with
    /// the current interval.
    pub(crate) fn drained_at(&self) -> u64 {
        self.current_start
            .saturating_add(self.interval.saturating_mul(SLOTS as u64))
    }

    /// Samples in the window.
    pub(crate) fn len(&self) -> u64 {
        self.totals.iter().sum()
    }

    /// The latencies (µs) at quantiles `qs` (ascending) of the window; zero
    /// when it is empty.
    pub(crate) fn quantiles<const N: usize>(&self, qs: [f64; N]) -> [u64; N] {
        let n = self.layout.len();
        let slots = self.counts.chunks_exact(n.max(1)).zip(self.totals);
        quantiles(self.layout, slots, qs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::quantiles_of;

    fn layout() -> Layout {
        Layout::precise(1_000_000)
    }

    fn batch(values: &[u64]) -> Histogram {
        let mut h = Histogram::new(layout());
        for &v in values {
            h.record(v);
        }
        h
    }

    #[test]
    fn samples_age_out_after_the_window() {
        let mut ring = Ring::new(layout(), 10, 0);
        ring.absorb(&batch(&[100, 200]));
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.drained_at(), SLOTS as u64 * 10);
        for t in 1..SLOTS as u64 {
            assert!(ring.rotate(t * 10));
            assert_eq!(ring.len(), 2, "still in the window at {t}");
        }
        assert!(ring.rotate(SLOTS as u64 * 10));
        assert_eq!(ring.len(), 0, "aged out after SLOTS intervals");
    }

    #[test]
    fn a_long_gap_clears_everything_at_once() {
        let mut ring = Ring::new(layout(), 10, 0);
        ring.absorb(&batch(&[5; 10]));
        assert!(!ring.rotate(9), "the interval has not ended");
        assert_eq!(ring.next_rotation_after(10_005), 10_010);
        assert!(ring.rotate(10_005));
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.quantiles([0.5]), [0]);
        assert_eq!(ring.next_rotation(), 10_010);
    }

    #[test]
    fn the_window_is_the_sum_of_its_slots() {
        let mut ring = Ring::new(layout(), 10, 0);
        let mut all: Vec<(u64, u64)> = Vec::new(); // (interval start, value)
        for t in 0..40u64 {
            // Moves on by 4 to 16: sometimes within an interval, sometimes past it.
            let now = t * 10 + (t % 4) * 2;
            ring.rotate(now);
            if t % 3 != 0 {
                ring.absorb(&batch(&[t * 100 + 1, 7]));
                let start = now / 10 * 10;
                all.extend([(start, t * 100 + 1), (start, 7)]);
            }
            let oldest = (now / 10 * 10).saturating_sub((SLOTS as u64 - 1) * 10);
            let mut sum = Histogram::new(layout());
            for &(_, v) in all.iter().filter(|(s, _)| *s >= oldest) {
                sum.record(v);
            }
            assert_eq!(ring.len(), sum.len(), "count at step {t}");
            let qs = [0.5, 0.99, 1.0];
            assert_eq!(
                ring.quantiles(qs),
                quantiles_of(&sum, qs),
                "percentiles at step {t}"
            );
        }
    }
}

//! Latency histograms: `u32` counts in log-linear buckets, in two
//! precisions.
//!
//! A value `v` (microseconds) is counted in units of `2^shift` µs:
//! `x = v >> shift`. Below `2^(sub_bits + 1)` units every unit has its own
//! bucket; above, each power of two is split into `2^sub_bits` buckets of
//! equal width (the layout of an HDR histogram). A bucket reports its
//! highest value, so a percentile is never below the true one and above it
//! by less than one bucket's width:
//!
//! | precision | buckets per power of two | reported above the true value by | unit | buckets (`max` = 10s) |
//! |-----------|---:|---|---|---:|
//! | [`Layout::precise`] (a layer's own deadline) | 128 | under 1/128 (0.8%) | 1µs | 2 329 (9.1 KiB) |
//! | [`Layout::compact`] (one key of a keyed layer) | 8 | under 1/8 (12.5%) from 8 units up; under one unit below | `2 × max / 2^16` rounded up to a power of two: 512µs with `max` = 10s | at most [`COMPACT_BUCKETS`] (448 bytes) |
//!
//! A compact histogram has at most [`COMPACT_BUCKETS`] buckets whatever
//! `max` is: a wider range makes the unit coarser, never the histogram
//! larger. Values above the range are counted in the top bucket; nothing
//! here allocates after [`Histogram::new`] and nothing panics.

/// The most buckets of a [`Layout::compact`] histogram: 8 per power of two
/// over 2^16 units (14 powers of two above the 16 exact units).
pub(crate) const COMPACT_BUCKETS: usize = 112;

/// How values map to buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Values are counted in units of `2^shift` µs.
    shift: u32,
    /// `2^sub_bits` buckets per power of two above the exact range.
    sub_bits: u32,
    /// How many buckets.
    len: usize,
}

impl Layout {
    /// 128 buckets per power of two, unit 1µs, covering `0..=high_us`: a
    /// percentile within 0.8% (as an HDR histogram with two significant
    /// digits).
    pub(crate) fn precise(high_us: u64) -> Layout {
        Layout::fitting(high_us, 7, usize::MAX)
    }

    /// 8 buckets per power of two, at most [`COMPACT_BUCKETS`] buckets
    /// covering `0..=high_us`: a percentile within 12.5% (of at least 8
    /// units; within one unit below).
    pub(crate) fn compact(high_us: u64) -> Layout {
        Layout::fitting(high_us, 3, COMPACT_BUCKETS)
    }

    /// The finest unit (smallest `shift`) whose buckets up to `high_us` are
    /// at most `max_len`.
    fn fitting(high_us: u64, sub_bits: u32, max_len: usize) -> Layout {
        let high = high_us.max(1);
        let mut shift = 0;
        loop {
            let l = Layout {
                shift,
                sub_bits,
                len: usize::MAX,
            };
            let top = l.raw_index(high);
            // At shift 63 every value is 0 or 1 unit: two buckets, which
            // fits any `max_len` used here, so the loop ends.
            if top < max_len || shift >= 63 {
                return Layout { len: top + 1, ..l };
            }
            shift += 1;
        }
    }

    /// How many buckets.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The unit values are counted in, in microseconds.
    #[cfg(test)]
    pub(crate) fn unit_us(&self) -> u64 {
        1 << self.shift
    }

    #[inline]
    fn raw_index(&self, us: u64) -> usize {
        let x = us >> self.shift;
        if x < (2 << self.sub_bits) {
            return x as usize;
        }
        // `x` has at least `sub_bits + 2` significant bits; keep the top
        // `sub_bits + 1` of them, and count the powers of two above.
        let e = (64 - x.leading_zeros()) - self.sub_bits - 1;
        ((e as usize) << self.sub_bits) + (x >> e) as usize
    }

    /// The bucket of `us`; values above the range go to the top bucket.
    #[inline]
    pub(crate) fn index(&self, us: u64) -> usize {
        self.raw_index(us).min(self.len - 1)
    }

    /// The highest value (µs) counted in bucket `i` (saturating).
    pub(crate) fn highest(&self, i: usize) -> u64 {
        let i = i as u64;
        let exact = 2u64 << self.sub_bits;
        // The highest unit count `x` of the bucket.
        let x = if i < exact {
            i
        } else {
            let e = (i >> self.sub_bits) - 1;
            let m = i - (e << self.sub_bits);
            ((u128::from(m) + 1) << e)
                .saturating_sub(1)
                .min(u128::from(u64::MAX)) as u64
        };
        let v = ((u128::from(x) + 1) << self.shift).saturating_sub(1);
        u64::try_from(v).unwrap_or(u64::MAX)
    }
}

/// Counts of latencies in the buckets of a [`Layout`].
pub(crate) struct Histogram {
    layout: Layout,
    counts: Box<[u32]>,
    total: u64,
}

impl Histogram {
    /// An empty histogram: the only allocation it ever makes.
    pub(crate) fn new(layout: Layout) -> Self {
        Histogram {
            layout,
            counts: vec![0; layout.len].into_boxed_slice(),
            total: 0,
        }
    }

    /// Counts `us` (a bucket's count saturates at `u32::MAX`).
    #[inline]
    pub(crate) fn record(&mut self, us: u64) {
        let i = self.layout.index(us);
        if let Some(c) = self.counts.get_mut(i) {
            *c = c.saturating_add(1);
        }
        self.total = self.total.saturating_add(1);
    }

    /// Adds `other`'s counts. Histograms of one tracker share a layout; were
    /// `other`'s longer, its extra buckets would be dropped, not panic.
    #[cfg(test)]
    pub(crate) fn add(&mut self, other: &Histogram) {
        add_counts(&mut self.counts, &other.counts);
        self.total = self.total.saturating_add(other.total);
    }

    /// Forgets every count; free when already empty.
    pub(crate) fn reset(&mut self) {
        if self.total != 0 {
            self.counts.fill(0);
            self.total = 0;
        }
    }

    /// The bucket counts.
    pub(crate) fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// Values counted.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// `true` when nothing is counted.
    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// Adds `src` to `dst`, bucket by bucket (saturating).
pub(crate) fn add_counts(dst: &mut [u32], src: &[u32]) {
    for (c, o) in dst.iter_mut().zip(src) {
        *c = c.saturating_add(*o);
    }
}

/// The values at quantiles `qs` (ascending, in `[0, 1]`) of the sum of
/// `parts` (the bucket counts of histograms of `layout`, with their totals),
/// in one pass over the buckets and without building the sum: the value at
/// quantile `q` is the highest value of the bucket where the running count
/// first reaches `ceil(q × total)` (at least 1), as an HDR histogram reports
/// it. All zero when the parts are empty.
pub(crate) fn quantiles<'a, const N: usize>(
    layout: Layout,
    parts: impl Iterator<Item = (&'a [u32], u64)> + Clone,
    qs: [f64; N],
) -> [u64; N] {
    let mut out = [0u64; N];
    let total: u64 = parts.clone().map(|(_, n)| n).sum();
    if total == 0 {
        return out;
    }
    let targets = qs.map(|q| ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1));
    let mut next = 0;
    let mut seen = 0u64;
    for i in 0..layout.len {
        if next == N {
            return out;
        }
        let c: u64 = parts
            .clone()
            .filter(|&(_, n)| n != 0)
            .map(|(counts, _)| u64::from(counts.get(i).copied().unwrap_or(0)))
            .sum();
        if c == 0 {
            continue;
        }
        seen += c;
        while next < N && seen >= targets[next] {
            out[next] = layout.highest(i);
            next += 1;
        }
    }
    // Saturated buckets can leave `seen` short of `total`: the rest are at
    // the top of the range.
    for v in &mut out[next..] {
        *v = layout.highest(layout.len - 1);
    }
    out
}

/// [`quantiles`] of one histogram.
#[cfg(test)]
pub(crate) fn quantiles_of<const N: usize>(h: &Histogram, qs: [f64; N]) -> [u64; N] {
    quantiles(h.layout, std::iter::once((&h.counts[..], h.total)), qs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(layout: Layout, values: &[u64]) -> Histogram {
        let mut h = Histogram::new(layout);
        for &v in values {
            h.record(v);
        }
        h
    }

    #[test]
    fn buckets_are_contiguous_and_report_their_highest_value() {
        for layout in [Layout::precise(20_000_000), Layout::compact(20_000_000)] {
            let mut last = 0;
            for v in 0..300_000u64 {
                let i = layout.index(v);
                assert!(i == last || i == last + 1, "{v}: {i} after {last}");
                if i == last + 1 {
                    assert_eq!(layout.highest(last), v - 1, "bucket {last} ends at {v}");
                }
                assert!(layout.highest(i) >= v);
                last = i;
            }
        }
    }

    #[test]
    fn the_precise_layout_is_an_hdr_histogram_with_two_digits() {
        let layout = Layout::precise(20_000_000);
        assert_eq!(layout.unit_us(), 1);
        assert_eq!(layout.len(), 2_329);
        let mut hdr = hdrhistogram::Histogram::<u32>::new_with_bounds(1, 20_000_000, 2).unwrap();
        let mut ours = Histogram::new(layout);
        for v in (0..20_000_000u64).step_by(997) {
            hdr.record(v).unwrap();
            ours.record(v);
        }
        for q in [0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let [v] = quantiles_of(&ours, [q]);
            assert_eq!(v, hdr.value_at_quantile(q), "q = {q}");
        }
    }

    #[test]
    fn compact_histograms_stay_small_whatever_the_range() {
        let default = Layout::compact(20_000_000);
        assert_eq!(default.unit_us(), 512);
        assert!(default.len() <= COMPACT_BUCKETS);
        let widest = Layout::compact(2 * 365 * 86_400 * 1_000_000);
        assert!((100..=COMPACT_BUCKETS).contains(&widest.len()));
        let narrow = Layout::compact(1_000);
        assert_eq!(narrow.unit_us(), 1, "exact to the microsecond");
        assert!(narrow.len() < COMPACT_BUCKETS);
    }

    #[test]
    fn compact_error_is_under_one_eighth_from_8_units() {
        let layout = Layout::compact(20_000_000);
        let unit = layout.unit_us();
        for v in (0..25_000_000u64).step_by(37) {
            let hi = layout.highest(layout.index(v));
            if v >= 20_000_000 {
                continue; // clamped to the top bucket
            }
            assert!(hi >= v);
            if v >= 8 * unit {
                assert!(((hi - v) as f64) < v as f64 / 8.0, "{v} reported as {hi}");
            } else {
                assert!(hi - v < unit, "{v} reported as {hi}");
            }
        }
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        for layout in [
            Layout::precise(1_000),
            Layout::compact(1_000),
            Layout::compact(u64::MAX),
        ] {
            let h = one(layout, &[0, u64::MAX]);
            assert_eq!(h.len(), 2);
            let [lo, hi] = quantiles_of(&h, [0.5, 1.0]);
            assert!(lo < 1 << 60);
            assert!(hi >= 1_000);
        }
    }

    #[test]
    fn quantiles_of_parts_are_those_of_their_sum() {
        let layout = Layout::compact(20_000_000);
        let a = one(layout, &[5, 1_000, 70_000, 3_000_000]);
        let b = one(layout, &[]);
        let c = one(layout, &[900, 900, 12_000_000]);
        let mut sum = Histogram::new(layout);
        for p in [&a, &b, &c] {
            sum.add(p);
        }
        let qs = [0.1, 0.5, 0.9, 0.99, 1.0];
        let parts = [&a, &b, &c].map(|h| (&h.counts[..], h.total));
        assert_eq!(
            quantiles(layout, parts.into_iter(), qs),
            quantiles_of(&sum, qs)
        );
        assert_eq!(quantiles(layout, std::iter::empty(), [0.5]), [0]);
        sum.reset();
        assert!(sum.is_empty());
        assert_eq!(quantiles_of(&sum, [0.5]), [0]);
    }
}

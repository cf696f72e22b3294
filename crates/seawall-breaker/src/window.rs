//! Sliding windows of outcomes for the rate policies, in fixed memory.
//!
//! [`CountWindow`] keeps the last N outcomes in a ring of one byte each;
//! [`TimeWindow`] keeps the last T of time in `buckets` counters, so old
//! outcomes leave it one bucket (`T / buckets`) at a time.

/// What one call left in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) failure: bool,
    pub(crate) slow: bool,
}

/// Calls, failures and slow calls currently in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) calls: u32,
    pub(crate) failures: u32,
    pub(crate) slow: u32,
}

const FAILURE: u8 = 1;
const SLOW: u8 = 2;

/// The last `capacity` outcomes.
#[derive(Debug)]
pub(crate) struct CountWindow {
    ring: Box<[u8]>,
    next: usize,
    counts: Counts,
}

impl CountWindow {
    pub(crate) fn new(capacity: u32) -> Self {
        CountWindow {
            ring: vec![0; capacity.max(1) as usize].into_boxed_slice(),
            next: 0,
            counts: Counts::default(),
        }
    }

    pub(crate) fn record(&mut self, mark: Mark) {
        let bits = u8::from(mark.failure) * FAILURE + u8::from(mark.slow) * SLOW;
        if self.counts.calls as usize == self.ring.len() {
            let old = self.ring[self.next];
            self.counts.failures -= u32::from(old & FAILURE != 0);
            self.counts.slow -= u32::from(old & SLOW != 0);
        } else {
            self.counts.calls += 1;
        }
        self.ring[self.next] = bits;
        self.counts.failures += u32::from(mark.failure);
        self.counts.slow += u32::from(mark.slow);
        self.next = (self.next + 1) % self.ring.len();
    }

    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    pub(crate) fn clear(&mut self) {
        self.next = 0;
        self.counts = Counts::default();
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    // Index of the time slice this bucket holds (now / width).
    slice: u64,
    counts: Counts,
}

/// The outcomes of the last `buckets × width` of time.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    width_nanos: u64,
}

impl TimeWindow {
    pub(crate) fn new(window_nanos: u64, buckets: u32) -> Self {
        let n = buckets.max(1);
        TimeWindow {
            // Slice u64::MAX never matches a real slice: every bucket starts empty.
            buckets: vec![
                Bucket {
                    slice: u64::MAX,
                    counts: Counts::default()
                };
                n as usize
            ]
            .into_boxed_slice(),
            width_nanos: (window_nanos / u64::from(n)).max(1),
        }
    }

    pub(crate) fn record(&mut self, now_nanos: u64, mark: Mark) {
        let slice = now_nanos / self.width_nanos;
        let len = self.buckets.len() as u64;
        let b = &mut self.buckets[(slice % len) as usize];
        if b.slice != slice {
            *b = Bucket {
                slice,
                counts: Counts::default(),
            };
        }
        // Saturating: a long window (up to 365 days) in few buckets can see
        // more than 2^32 calls in one bucket under heavy traffic.
        b.counts.calls = b.counts.calls.saturating_add(1);
        b.counts.failures = b.counts.failures.saturating_add(u32::from(mark.failure));
        b.counts.slow = b.counts.slow.saturating_add(u32::from(mark.slow));
    }

    /// The counts of the buckets still inside the window at `now_nanos`.
    pub(crate) fn counts(&self, now_nanos: u64) -> Counts {
        let slice = now_nanos / self.width_nanos;
        let len = self.buckets.len() as u64;
        let mut sum = Counts::default();
        for b in self.buckets.iter() {
            if b.slice <= slice && slice - b.slice < len {
                sum.calls = sum.calls.saturating_add(b.counts.calls);
                sum.failures = sum.failures.saturating_add(b.counts.failures);
                sum.slow = sum.slow.saturating_add(b.counts.slow);
            }
        }
        sum
    }

    pub(crate) fn clear(&mut self) {
        for b in self.buckets.iter_mut() {
            b.slice = u64::MAX;
            b.counts = Counts::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Mark = Mark {
        failure: true,
        slow: false,
    };
    const S: Mark = Mark {
        failure: false,
        slow: false,
    };

    #[test]
    fn count_window_keeps_the_last_n() {
        let mut w = CountWindow::new(3);
        w.record(F);
        w.record(F);
        w.record(S);
        assert_eq!(w.counts().calls, 3);
        assert_eq!(w.counts().failures, 2);
        w.record(S); // pushes out the first failure
        assert_eq!(w.counts().failures, 1);
        w.record(S);
        assert_eq!(w.counts().failures, 0);
        assert_eq!(w.counts().calls, 3);
        w.clear();
        assert_eq!(w.counts(), Counts::default());
    }

    #[test]
    fn time_window_forgets_one_bucket_at_a_time() {
        // 10 buckets of 100ns.
        let mut w = TimeWindow::new(1_000, 10);
        w.record(0, F);
        w.record(150, F);
        w.record(950, S);
        assert_eq!(w.counts(950).calls, 3);
        assert_eq!(w.counts(999).failures, 2);
        // At 1000 the bucket of slice 0 has left the window.
        assert_eq!(w.counts(1_000).failures, 1);
        assert_eq!(w.counts(1_100).failures, 0);
        assert_eq!(w.counts(1_100).calls, 1);
        assert_eq!(w.counts(5_000).calls, 0);
        // A bucket reused for a later slice starts empty.
        w.record(1_050, S);
        assert_eq!(w.counts(1_050).calls, 3); // slices 1..=10: 150, 950, 1050
        w.clear();
        assert_eq!(w.counts(1_050).calls, 0);
    }
}

//! Latency summaries and time series, from plain sample lists.

use std::time::Duration;

/// Percentiles of a set of latencies (nearest-rank).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Percentiles {
    /// Summarises `samples` (sorted here; the order is not kept).
    pub fn of(samples: &mut [Duration]) -> Percentiles {
        samples.sort_unstable();
        Percentiles {
            count: samples.len(),
            p50: quantile(samples, 0.5),
            p99: quantile(samples, 0.99),
            p999: quantile(samples, 0.999),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// The `q` quantile of sorted `samples` by nearest rank; zero when empty.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds as `f64`, for tables and plots.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Values grouped into fixed-width time bins, from 0 to `span`.
#[derive(Debug, Clone)]
pub struct Bins<T> {
    width: Duration,
    bins: Vec<Vec<T>>,
}

impl<T> Bins<T> {
    /// Bins of `width` covering `span` (at least one bin).
    pub fn new(width: Duration, span: Duration) -> Self {
        let n = (span.as_secs_f64() / width.as_secs_f64()).ceil().max(1.0) as usize;
        Bins {
            width,
            bins: (0..n).map(|_| Vec::new()).collect(),
        }
    }

    /// Puts `value` in the bin of time `at` (values past the span go in the last bin).
    pub fn push(&mut self, at: Duration, value: T) {
        let i = (at.as_secs_f64() / self.width.as_secs_f64()) as usize;
        let last = self.bins.len() - 1;
        self.bins[i.min(last)].push(value);
    }

    /// Each bin's start time in seconds, with its values.
    pub fn iter(&self) -> impl Iterator<Item = (f64, &Vec<T>)> {
        let w = self.width.as_secs_f64();
        self.bins
            .iter()
            .enumerate()
            .map(move |(i, b)| (i as f64 * w, b))
    }

    /// The bin width.
    pub fn width(&self) -> Duration {
        self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.p999, Duration::from_millis(100));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(Percentiles::of(&mut []).p99, Duration::ZERO);
    }

    #[test]
    fn bins_clamp_to_the_last() {
        let mut b = Bins::new(Duration::from_millis(100), Duration::from_millis(250));
        b.push(Duration::from_millis(50), 1);
        b.push(Duration::from_millis(120), 2);
        b.push(Duration::from_secs(9), 3);
        let v: Vec<_> = b.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(v, vec![vec![1], vec![2], vec![3]]);
    }
}

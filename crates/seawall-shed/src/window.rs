//! The sampling window of the adaptive limits: per-call RTTs go into a few
//! atomics; once per window, one caller takes a short `try_lock` and feeds
//! the window's aggregate to the algorithm. No call ever waits on the lock:
//! if it is taken, the caller moves on and the next completion closes the
//! window.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::limit::{Algorithm, Limit, Sample};

const NONE: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Window {
    origin: Instant,
    length_ns: u64,
    min_samples: u64,
    end_ns: AtomicU64,
    sum_ns: AtomicU64,
    count: AtomicU64,
    max_in_flight: AtomicUsize,
    dropped: AtomicBool,
    min_rtt_ns: AtomicU64,
    recent_rtt_ns: AtomicU64,
    algorithm: Mutex<Algorithm>,
}

/// What closing a window produced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closed {
    pub(crate) limit: usize,
    pub(crate) rtt: Duration,
}

impl Window {
    pub(crate) fn new(limit: &Limit, length: Duration, min_samples: usize) -> Self {
        let length_ns = u64::try_from(length.as_nanos()).unwrap_or(u64::MAX);
        Window {
            origin: Instant::now(),
            length_ns,
            min_samples: min_samples as u64,
            end_ns: AtomicU64::new(length_ns),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
            max_in_flight: AtomicUsize::new(0),
            dropped: AtomicBool::new(false),
            min_rtt_ns: AtomicU64::new(NONE),
            recent_rtt_ns: AtomicU64::new(NONE),
            algorithm: Mutex::new(Algorithm::new(limit)),
        }
    }

    /// Records one call; closes the window when it is due and returns the
    /// new limit.
    pub(crate) fn record(
        &self,
        rtt: Duration,
        in_flight: usize,
        dropped: bool,
        now: Instant,
    ) -> Option<Closed> {
        let rtt_ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(rtt_ns, Ordering::Relaxed);
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if self.max_in_flight.load(Ordering::Relaxed) < in_flight {
            self.max_in_flight.fetch_max(in_flight, Ordering::Relaxed);
        }
        if dropped {
            self.dropped.store(true, Ordering::Relaxed);
        }
        let now_ns = self.nanos(now);
        if count < self.min_samples || now_ns < self.end_ns.load(Ordering::Relaxed) {
            return None;
        }
        // A poisoned lock only means another closer panicked mid-update; the
        // algorithm's numbers are still usable.
        let mut algorithm = match self.algorithm.try_lock() {
            Ok(a) => a,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        if now_ns < self.end_ns.load(Ordering::Relaxed) {
            return None; // another caller closed it first
        }
        let count = self.count.swap(0, Ordering::Relaxed);
        let sum = self.sum_ns.swap(0, Ordering::Relaxed);
        let in_flight = self.max_in_flight.swap(0, Ordering::Relaxed);
        let dropped = self.dropped.swap(false, Ordering::Relaxed);
        self.end_ns
            .store(now_ns.saturating_add(self.length_ns), Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        let avg = sum / count;
        self.recent_rtt_ns.store(avg, Ordering::Relaxed);
        self.min_rtt_ns.fetch_min(avg, Ordering::Relaxed);
        let rtt = Duration::from_nanos(avg);
        let limit = algorithm.update(Sample {
            rtt,
            in_flight,
            dropped,
        });
        Some(Closed { limit, rtt })
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Lowest window-average RTT seen.
    pub(crate) fn min_rtt(&self) -> Option<Duration> {
        get(&self.min_rtt_ns)
    }

    /// The last closed window's average RTT.
    pub(crate) fn recent_rtt(&self) -> Option<Duration> {
        get(&self.recent_rtt_ns)
    }

    /// Gradient2's long-term RTT.
    pub(crate) fn long_rtt(&self) -> Option<Duration> {
        match self.algorithm.lock() {
            Ok(a) => a.long_rtt(),
            Err(p) => p.into_inner().long_rtt(),
        }
    }
}

fn get(a: &AtomicU64) -> Option<Duration> {
    match a.load(Ordering::Relaxed) {
        NONE => None,
        ns => Some(Duration::from_nanos(ns)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::Aimd;

    #[tokio::test(start_paused = true)]
    async fn closes_once_per_window_with_enough_samples() {
        let limit = Limit::Aimd(Aimd {
            initial: 10,
            min: 1,
            max: 100,
            ..Aimd::default()
        });
        let w = Window::new(&limit, Duration::from_millis(100), 3);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert!(w.record(ms(4), 9, false, t0).is_none());
        // Window over but only 2 samples.
        assert!(w.record(ms(6), 9, false, t0 + ms(150)).is_none());
        let c = w.record(ms(8), 9, false, t0 + ms(150)).expect("closes");
        assert_eq!(c.limit, 11);
        assert_eq!(c.rtt, ms(6));
        assert_eq!(w.recent_rtt(), Some(ms(6)));
        assert_eq!(w.min_rtt(), Some(ms(6)));
        // Next window ends at 250ms.
        for _ in 0..5 {
            assert!(w.record(ms(1), 9, true, t0 + ms(200)).is_none());
        }
        let c = w.record(ms(1), 9, false, t0 + ms(250)).expect("closes");
        assert_eq!(
            c.limit, 9,
            "a drop in the window backs off: floor(11 × 0.9)"
        );
        assert_eq!(w.min_rtt(), Some(ms(1)));
    }
}

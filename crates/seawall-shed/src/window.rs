//! The sampling window of the adaptive limits: per-call RTTs go into a few
//! atomics; once per window, one caller takes a short `try_lock` and feeds
//! the window's aggregate to the algorithm. No call ever waits on the lock:
//! if it is taken, the caller moves on and the next completion closes the
//! window. Times are readings of the shedder's [`Clock`] in nanoseconds.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::Clock;
use seawall_core::time::nanos;

use crate::limit::{Algorithm, Limit, Sample};

const NONE: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Window {
    // Both may change in a live reload (`reconfigure`): relaxed atomics,
    // read with one plain load.
    length_ns: AtomicU64,
    min_samples: AtomicU64,
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
    /// The limit it replaced.
    pub(crate) previous: usize,
    pub(crate) rtt: Duration,
}

impl Window {
    /// A window of `length` whose first one ends `length` after `clock`'s
    /// reading now.
    pub(crate) fn new(limit: &Limit, length: Duration, min_samples: usize, clock: &Clock) -> Self {
        let length_ns = nanos(length);
        Window {
            length_ns: AtomicU64::new(length_ns),
            min_samples: AtomicU64::new(min_samples as u64),
            end_ns: AtomicU64::new(clock.nanos().saturating_add(length_ns)),
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
            max_in_flight: AtomicUsize::new(0),
            dropped: AtomicBool::new(false),
            min_rtt_ns: AtomicU64::new(NONE),
            recent_rtt_ns: AtomicU64::new(NONE),
            algorithm: Mutex::new(Algorithm::new(limit)),
        }
    }

    /// Records one call of `rtt_ns` ending at `now_ns` (clock readings);
    /// closes the window when it is due, stores the new limit in `limit`
    /// (under the algorithm's lock, so a reload's clamped limit is never
    /// overwritten by a window closed under the old parameters) and
    /// returns it.
    pub(crate) fn record(
        &self,
        rtt_ns: u64,
        in_flight: usize,
        dropped: bool,
        now_ns: u64,
        limit: &crate::sync::AtomicUsize,
    ) -> Option<Closed> {
        self.sum_ns.fetch_add(rtt_ns, Ordering::Relaxed);
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if self.max_in_flight.load(Ordering::Relaxed) < in_flight {
            self.max_in_flight.fetch_max(in_flight, Ordering::Relaxed);
        }
        if dropped {
            self.dropped.store(true, Ordering::Relaxed);
        }
        if count < self.min_samples.load(Ordering::Relaxed)
            || now_ns < self.end_ns.load(Ordering::Relaxed)
        {
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
        self.end_ns.store(
            now_ns.saturating_add(self.length_ns.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if count == 0 {
            return None;
        }
        let avg = sum / count;
        self.recent_rtt_ns.store(avg, Ordering::Relaxed);
        self.min_rtt_ns.fetch_min(avg, Ordering::Relaxed);
        let rtt = Duration::from_nanos(avg);
        let new = algorithm.update(Sample {
            rtt,
            in_flight,
            dropped,
        });
        let previous = limit.swap(new, Ordering::Relaxed);
        Some(Closed {
            limit: new,
            previous,
            rtt,
        })
    }

    /// Takes a reloaded config's limit parameters, window length and
    /// minimum samples, keeping the estimate (clamped into the new bounds),
    /// the samples of the window in progress and the RTTs measured; stores
    /// the limit now in force in `limit`. Returns `(previous, new)`, or
    /// `None`, changing nothing, for another kind of limit.
    pub(crate) fn reconfigure(
        &self,
        new_limit: &Limit,
        length: Duration,
        min_samples: usize,
        limit: &crate::sync::AtomicUsize,
    ) -> Option<(usize, usize)> {
        // Blocking is fine here (a reload is rare); the per-call path only
        // ever `try_lock`s and moves on.
        let mut algorithm = self.algorithm.lock().unwrap_or_else(|p| p.into_inner());
        let new = algorithm.reconfigure(new_limit)?;
        self.length_ns.store(nanos(length), Ordering::Relaxed);
        self.min_samples
            .store(min_samples as u64, Ordering::Relaxed);
        let previous = limit.swap(new, Ordering::Relaxed);
        Some((previous, new))
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

    #[test]
    fn closes_once_per_window_with_enough_samples() {
        // A manual clock: no runtime, time moves only by hand.
        let (clock, hand) = Clock::manual();
        hand.advance(Duration::from_secs(7)); // a clock made before the window
        let limit = Limit::Aimd(Aimd::new().initial(10).min(1).max(100));
        let w = Window::new(&limit, Duration::from_millis(100), 3, &clock);
        let l = crate::sync::AtomicUsize::new(10);
        let ms = |n: u64| n * 1_000_000;
        let t0 = clock.nanos();
        assert!(w.record(ms(4), 9, false, t0, &l).is_none());
        // Window over but only 2 samples.
        assert!(w.record(ms(6), 9, false, t0 + ms(150), &l).is_none());
        let c = w.record(ms(8), 9, false, t0 + ms(150), &l).expect("closes");
        assert_eq!(c.limit, 11);
        assert_eq!(c.rtt, Duration::from_millis(6));
        assert_eq!(w.recent_rtt(), Some(Duration::from_millis(6)));
        assert_eq!(w.min_rtt(), Some(Duration::from_millis(6)));
        // Next window ends at 250ms.
        for _ in 0..5 {
            assert!(w.record(ms(1), 9, true, t0 + ms(200), &l).is_none());
        }
        let c = w.record(ms(1), 9, false, t0 + ms(250), &l).expect("closes");
        assert_eq!(
            c.limit, 9,
            "a drop in the window backs off: floor(11 × 0.9)"
        );
        assert_eq!(w.min_rtt(), Some(Duration::from_millis(1)));
    }

    #[test]
    fn the_first_window_ends_one_length_after_the_clock_reads_now() {
        let (clock, hand) = Clock::manual();
        hand.advance(Duration::from_secs(3600));
        let limit = Limit::Aimd(Aimd::new().initial(10).min(1).max(100));
        let w = Window::new(&limit, Duration::from_secs(1), 1, &clock);
        let l = crate::sync::AtomicUsize::new(10);
        let now = clock.nanos();
        assert!(w.record(1, 1, false, now + 999_999_999, &l).is_none());
        assert!(w.record(1, 1, false, now + 1_000_000_000, &l).is_some());
        // A reading near the end of the clock saturates, no panic.
        let w = Window::new(&limit, Duration::MAX, 1, &clock);
        assert!(w.record(u64::MAX, 1, false, u64::MAX, &l).is_some());
    }
}

//! The in-flight limit: fixed, or adapted from measured latency.
//!
//! The adaptive algorithms are those of Netflix's
//! [concurrency-limits](https://github.com/Netflix/concurrency-limits),
//! applied once per *sampling window* (see [`ShedConfig::window`]) to the
//! window's aggregate: its average RTT, the most requests in flight seen when
//! one of its calls was admitted, and whether any of its calls failed (an
//! `Err` from the inner service counts as a *drop*). Every result is clamped
//! to `[min, max]`, so the limit never leaves its bounds.
//!
//! **AIMD** (loss-based):
//!
//! ```text
//! if drop || rtt > timeout:     limit = max(min, min(limit - 1, floor(limit × backoff_ratio)))
//! else if in_flight × 2 >= limit: limit = min(max, limit + 1)
//! else:                         unchanged (the service is not using its limit)
//! ```
//!
//! **Gradient2** (latency-based):
//!
//! ```text
//! short = rtt of this window
//! if short > tolerance × long:  queueing; long unchanged (for at most
//!                               `long_window` windows in a row, then long = short)
//! else:  long = exponential moving average of `short` over `long_window` windows
//!               (a plain average for the first 10 windows)
//! if long / short > 2:          long = long × 0.9   (recover fast after an overload)
//! if in_flight < limit / 2:     unchanged            (app-limited: do not grow)
//! gradient  = clamp(tolerance × long / short, 0.5, 1.0)
//! new       = limit × gradient + queue_size
//! limit     = clamp(limit × (1 - smoothing) + new × smoothing, min, max)
//! ```
//!
//! **Vegas** (delay-based, from TCP Vegas; `log` is `max(1, floor(log10(limit)))`):
//!
//! ```text
//! if no_load_rtt unset or rtt < no_load_rtt:  no_load_rtt = rtt; unchanged
//! every probe_multiplier × limit windows:     no_load_rtt = rtt; unchanged   (re-probe the baseline)
//! if drop:                      new = limit - log
//! else if in_flight × 2 < limit: unchanged (app-limited)
//! else:
//!   queue = ceil(limit × (1 - no_load_rtt / rtt))      (requests queued at the backend)
//!   if queue <= log:             new = limit + beta × log
//!   else if queue < alpha × log: new = limit + log
//!   else if queue > beta × log:  new = limit - max(log, (queue - beta × log) / 2)
//!   else:                        unchanged
//! limit = clamp(limit × (1 - smoothing) + new × smoothing, min, max)
//! ```
//!
//! Gradient2 compares the window's RTT with a *moving* long-term average, so
//! it reacts to latency *rising*. Netflix's implementation feeds every
//! window into that average, queueing included, so under an overload the
//! baseline follows the raised latency and the limit creeps back up; and an
//! overload present from the start (a limit set too high) is learnt as the
//! baseline, so the limit never comes down at all. Here a window slower
//! than `tolerance × long` is queueing, which the limit is there to remove,
//! and is kept out of the average: the baseline stays what the service
//! showed without a queue. A service that has become slower for good (every
//! request, at any concurrency) looks the same; after `long_window` such
//! windows in a row the baseline is reset to the current RTT, so the limit
//! follows a new normal after that long, and an overload that lasts longer
//! than that creeps up again, one `long_window` at a time. AIMD with a
//! `timeout` and Vegas anchor on an absolute latency (the timeout, the
//! no-load RTT) and hold near capacity under a sustained overload; see
//! `docs/shed.md` for choosing.
//!
//! [`ShedConfig::window`]: crate::ShedConfig::window

use std::time::Duration;

/// Which in-flight limit a shedder enforces.
///
/// ```
/// use seawall_shed::{Aimd, Gradient2, Limit};
///
/// let fixed = Limit::Fixed(64);
/// let aimd = Limit::Aimd(Aimd::new().min(5).max(500));
/// let gradient = Limit::Gradient2(Gradient2::default());
/// assert_eq!(fixed.initial(), 64);
/// assert_eq!(aimd.initial(), 20);
/// assert_eq!(gradient.bounds(), (20, 200));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Limit {
    /// A fixed limit: at most this many requests in flight. The fixed mode
    /// reads no clock.
    Fixed(usize),
    /// Additive increase, multiplicative decrease on drops or slow calls.
    Aimd(Aimd),
    /// Follows the ratio of long-term to current latency (Netflix Gradient2).
    Gradient2(Gradient2),
    /// Estimates the backend's queue from the no-load RTT (Netflix Vegas).
    Vegas(Vegas),
}

impl Default for Limit {
    /// `Limit::Fixed(100)`.
    fn default() -> Self {
        Limit::Fixed(100)
    }
}

impl Limit {
    /// The limit in force before any measurement.
    pub fn initial(&self) -> usize {
        match self {
            Limit::Fixed(n) => *n,
            Limit::Aimd(a) => a.initial,
            Limit::Gradient2(g) => g.initial,
            Limit::Vegas(v) => v.initial,
        }
    }

    /// `(min, max)`: the bounds the limit stays in.
    pub fn bounds(&self) -> (usize, usize) {
        match self {
            Limit::Fixed(n) => (*n, *n),
            Limit::Aimd(a) => (a.min, a.max),
            Limit::Gradient2(g) => (g.min, g.max),
            Limit::Vegas(v) => (v.min, v.max),
        }
    }

    /// `true` for the adaptive limits, which measure every call's RTT.
    pub fn is_adaptive(&self) -> bool {
        !matches!(self, Limit::Fixed(_))
    }
}

/// Parameters of the AIMD limit; defaults are Netflix's `AIMDLimit`'s.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Aimd {
    /// Starting limit, in `min..=max`. Default 20.
    pub initial: usize,
    /// Lowest limit, at least 1. Default 20.
    pub min: usize,
    /// Highest limit, at most [`MAX_LIMIT`](crate::MAX_LIMIT) (2^24 - 1). Default 200.
    pub max: usize,
    /// Factor applied on a drop, in `0.5..1`. Default 0.9.
    pub backoff_ratio: f64,
    /// A window whose average RTT exceeds this counts as a drop. Longer
    /// than zero, at most 365 days. Default 5s.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub timeout: Duration,
}

seawall_core::config_setters!(Aimd {
    initial: usize,
    min: usize,
    max: usize,
    backoff_ratio: f64,
    timeout: Duration
});

impl Default for Aimd {
    fn default() -> Self {
        Aimd {
            initial: 20,
            min: 20,
            max: 200,
            backoff_ratio: 0.9,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Parameters of the Gradient2 limit; defaults are Netflix's `Gradient2Limit`'s.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Gradient2 {
    /// Starting limit, in `min..=max`. Default 20.
    pub initial: usize,
    /// Lowest limit, at least 1. Default 20.
    pub min: usize,
    /// Highest limit, at most [`MAX_LIMIT`](crate::MAX_LIMIT) (2^24 - 1). Default 200.
    pub max: usize,
    /// How much of each new estimate is taken, in `(0, 1]`. Default 0.2.
    pub smoothing: f64,
    /// How far the limit may grow past `limit × gradient` each window, in
    /// `0..=MAX_LIMIT`. Default 4.
    pub queue_size: usize,
    /// How much slower than the long-term RTT a window may be before the
    /// limit shrinks (`>= 1`). Default 1.5.
    pub tolerance: f64,
    /// Windows averaged into the long-term RTT, in `1..=2^24`; also how many
    /// queueing windows in a row (slower than `tolerance ×` the long-term
    /// RTT) it takes for the long-term RTT to be reset to the current one.
    /// Default 600.
    pub long_window: usize,
}

seawall_core::config_setters!(Gradient2 {
    initial: usize,
    min: usize,
    max: usize,
    smoothing: f64,
    queue_size: usize,
    tolerance: f64,
    long_window: usize
});

impl Default for Gradient2 {
    fn default() -> Self {
        Gradient2 {
            initial: 20,
            min: 20,
            max: 200,
            smoothing: 0.2,
            queue_size: 4,
            tolerance: 1.5,
            long_window: 600,
        }
    }
}

/// Parameters of the Vegas limit; defaults are Netflix's `VegasLimit`'s
/// (except `min`, which Netflix does not have).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Vegas {
    /// Starting limit, in `min..=max`. Default 20.
    pub initial: usize,
    /// Lowest limit, at least 1. Default 1.
    pub min: usize,
    /// Highest limit, at most [`MAX_LIMIT`](crate::MAX_LIMIT) (2^24 - 1). Default 1000.
    pub max: usize,
    /// How much of each new estimate is taken, in `(0, 1]`. Default 1.
    pub smoothing: f64,
    /// Grow by one `log` step while the estimated queue is below
    /// `alpha × log`. Default 3.
    pub alpha: f64,
    /// Shrink once the estimated queue exceeds `beta × log`. Default 6.
    pub beta: f64,
    /// Re-probe the no-load RTT every `probe_multiplier × limit` windows,
    /// in `1..=2^24`. Default 30.
    pub probe_multiplier: usize,
}

seawall_core::config_setters!(Vegas {
    initial: usize,
    min: usize,
    max: usize,
    smoothing: f64,
    alpha: f64,
    beta: f64,
    probe_multiplier: usize
});

impl Default for Vegas {
    fn default() -> Self {
        Vegas {
            initial: 20,
            min: 1,
            max: 1000,
            smoothing: 1.0,
            alpha: 3.0,
            beta: 6.0,
            probe_multiplier: 30,
        }
    }
}

/// One window's aggregate, fed to an algorithm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) rtt: Duration,
    pub(crate) in_flight: usize,
    pub(crate) dropped: bool,
}

/// The running state of a limit algorithm. Tower-free and clock-free.
#[derive(Debug)]
pub(crate) enum Algorithm {
    Fixed(usize),
    Aimd {
        p: Aimd,
        limit: usize,
    },
    Gradient2 {
        p: Gradient2,
        estimate: f64,
        long: ExpAvg,
        /// Queueing windows in a row, kept out of `long`.
        queueing: usize,
    },
    Vegas {
        p: Vegas,
        estimate: f64,
        no_load: f64,
        probes: usize,
    },
}

impl Algorithm {
    pub(crate) fn new(limit: &Limit) -> Self {
        match limit {
            Limit::Fixed(n) => Algorithm::Fixed(*n),
            Limit::Aimd(p) => Algorithm::Aimd {
                p: p.clone(),
                limit: p.initial.clamp(p.min, p.max),
            },
            Limit::Gradient2(p) => Algorithm::Gradient2 {
                p: p.clone(),
                estimate: p.initial.clamp(p.min, p.max) as f64,
                long: ExpAvg::new(p.long_window, 10),
                queueing: 0,
            },
            Limit::Vegas(p) => Algorithm::Vegas {
                p: p.clone(),
                estimate: p.initial.clamp(p.min, p.max) as f64,
                no_load: 0.0,
                probes: 0,
            },
        }
    }

    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        match self {
            Algorithm::Fixed(n) => *n,
            Algorithm::Aimd { limit, .. } => *limit,
            Algorithm::Gradient2 { estimate, .. } | Algorithm::Vegas { estimate, .. } => {
                *estimate as usize
            }
        }
    }

    /// The long-term RTT (Gradient2 only).
    pub(crate) fn long_rtt(&self) -> Option<Duration> {
        match self {
            // `try_`: an average of finite RTTs is finite, but a stats
            // read must not be able to panic whatever the arithmetic met.
            Algorithm::Gradient2 { long, .. } if long.count > 0 => {
                Duration::try_from_secs_f64(long.value.max(0.0)).ok()
            }
            _ => None,
        }
    }

    /// Applies one window's sample; returns the new limit.
    pub(crate) fn update(&mut self, s: Sample) -> usize {
        match self {
            Algorithm::Fixed(n) => *n,
            Algorithm::Aimd { p, limit } => {
                if s.dropped || s.rtt > p.timeout {
                    let cut = (*limit as f64 * p.backoff_ratio) as usize;
                    *limit = cut.min(limit.saturating_sub(1)).max(1);
                } else if s.in_flight.saturating_mul(2) >= *limit {
                    *limit += 1;
                }
                *limit = (*limit).clamp(p.min, p.max);
                *limit
            }
            Algorithm::Gradient2 {
                p,
                estimate,
                long,
                queueing,
            } => {
                let short = s.rtt.as_secs_f64().max(1e-9);
                // A window past the tolerance is queueing: learning it would
                // make the queue the baseline. Until it has lasted
                // `long_window` windows, then the service is slower for good.
                let mut long_rtt = if long.count > 0 && short > p.tolerance * long.value {
                    *queueing += 1;
                    if *queueing >= p.long_window {
                        *queueing = 0;
                        long.value = short;
                    }
                    long.value
                } else {
                    *queueing = 0;
                    long.add(short)
                };
                if long_rtt / short > 2.0 {
                    long.value *= 0.9;
                    long_rtt = long.value;
                }
                if (s.in_flight as f64) < *estimate / 2.0 {
                    return *estimate as usize;
                }
                let gradient = (p.tolerance * long_rtt / short).clamp(0.5, 1.0);
                let new = *estimate * gradient + p.queue_size as f64;
                let new = *estimate * (1.0 - p.smoothing) + new * p.smoothing;
                *estimate = bounded(new, *estimate, p.min, p.max);
                *estimate as usize
            }
            Algorithm::Vegas {
                p,
                estimate,
                no_load,
                probes,
            } => {
                let rtt = s.rtt.as_secs_f64().max(1e-9);
                *probes += 1;
                if *no_load == 0.0 || rtt < *no_load {
                    *no_load = rtt;
                    return *estimate as usize;
                }
                if *probes as f64 >= p.probe_multiplier as f64 * *estimate {
                    *probes = 0;
                    *no_load = rtt;
                    return *estimate as usize;
                }
                let limit = *estimate;
                let log = limit.log10().floor().max(1.0);
                let new = if s.dropped {
                    limit - log
                } else if (s.in_flight as f64) * 2.0 < limit {
                    return *estimate as usize;
                } else {
                    let queue = (limit * (1.0 - *no_load / rtt)).ceil();
                    if queue <= log {
                        limit + p.beta * log
                    } else if queue < p.alpha * log {
                        limit + log
                    } else if queue > p.beta * log {
                        // Half the queue beyond `beta × log` at once: one
                        // `log` a window took seconds to shed the queue of
                        // a sudden drop in capacity.
                        limit - ((queue - p.beta * log) / 2.0).max(log)
                    } else {
                        return *estimate as usize;
                    }
                };
                let new = limit * (1.0 - p.smoothing) + new * p.smoothing;
                *estimate = bounded(new, *estimate, p.min, p.max);
                *estimate as usize
            }
        }
    }
}

impl Algorithm {
    /// Takes `limit`'s parameters in place (a live reload), keeping the
    /// running estimate clamped into the new `[min, max]` (`initial` is not
    /// used: the estimate is what was measured). Returns the limit now in
    /// force, or `None`, changing nothing, when `limit` is another kind.
    pub(crate) fn reconfigure(&mut self, limit: &Limit) -> Option<usize> {
        match (self, limit) {
            (Algorithm::Fixed(n), Limit::Fixed(new)) => {
                *n = *new;
                Some(*n)
            }
            (Algorithm::Aimd { p, limit }, Limit::Aimd(new)) => {
                *limit = (*limit).clamp(new.min, new.max);
                *p = new.clone();
                Some(*limit)
            }
            (
                Algorithm::Gradient2 {
                    p, estimate, long, ..
                },
                Limit::Gradient2(new),
            ) => {
                if new.long_window != p.long_window {
                    long.set_window(new.long_window);
                }
                *estimate = bounded(*estimate, *estimate, new.min, new.max);
                *p = new.clone();
                Some(*estimate as usize)
            }
            (Algorithm::Vegas { p, estimate, .. }, Limit::Vegas(new)) => {
                *estimate = bounded(*estimate, *estimate, new.min, new.max);
                *p = new.clone();
                Some(*estimate as usize)
            }
            _ => None,
        }
    }
}

/// `new` clamped to `[min, max]` (an infinite estimate, from a huge `beta`
/// or `tolerance`, becomes a bound). A NaN keeps `current`: `f64::clamp`
/// passes NaN through and `as usize` would make it a limit of 0, shedding
/// everything. Validated parameters produce none; this keeps it that way
/// whatever the arithmetic meets.
fn bounded(new: f64, current: f64, min: usize, max: usize) -> f64 {
    if new.is_nan() {
        current
    } else {
        new.clamp(min as f64, max as f64)
    }
}

/// Netflix's `ExpAvgMeasurement`: a plain average for the first `warmup`
/// samples, then an exponential moving average with factor `2 / (window + 1)`.
#[derive(Debug)]
pub(crate) struct ExpAvg {
    value: f64,
    count: usize,
    warmup: usize,
    factor: f64,
}

impl ExpAvg {
    /// A new averaging window for the samples to come; the average so far
    /// is kept.
    fn set_window(&mut self, window: usize) {
        self.factor = 2.0 / (window as f64 + 1.0);
    }

    fn new(window: usize, warmup: usize) -> Self {
        ExpAvg {
            value: 0.0,
            count: 0,
            warmup,
            factor: 2.0 / (window as f64 + 1.0),
        }
    }

    fn add(&mut self, x: f64) -> f64 {
        if self.count < self.warmup {
            self.count += 1;
            self.value += (x - self.value) / self.count as f64;
        } else {
            self.value = self.value * (1.0 - self.factor) + x * self.factor;
        }
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn sample(rtt: Duration, in_flight: usize, dropped: bool) -> Sample {
        Sample {
            rtt,
            in_flight,
            dropped,
        }
    }

    #[test]
    fn aimd_grows_by_one_and_backs_off() {
        let mut a = Algorithm::new(&Limit::Aimd(Aimd {
            initial: 10,
            min: 2,
            max: 12,
            ..Aimd::default()
        }));
        assert_eq!(a.update(sample(ms(1), 5, false)), 11);
        // App-limited: unchanged.
        assert_eq!(a.update(sample(ms(1), 1, false)), 11);
        assert_eq!(a.update(sample(ms(1), 11, false)), 12);
        // Capped at max.
        assert_eq!(a.update(sample(ms(1), 12, false)), 12);
        // floor(12 * 0.9) = 10.
        assert_eq!(a.update(sample(ms(1), 12, true)), 10);
        // A slow window counts as a drop: floor(10 * 0.9) = 9.
        assert_eq!(a.update(sample(Duration::from_secs(6), 10, false)), 9);
        for _ in 0..50 {
            a.update(sample(ms(1), 12, true));
        }
        assert_eq!(a.limit(), 2, "floored at min");
    }

    #[test]
    fn aimd_small_limits_still_shrink() {
        let mut a = Algorithm::new(&Limit::Aimd(Aimd {
            initial: 3,
            min: 1,
            max: 10,
            ..Aimd::default()
        }));
        // floor(3 * 0.9) = 2 = limit - 1.
        assert_eq!(a.update(sample(ms(1), 3, true)), 2);
        assert_eq!(a.update(sample(ms(1), 3, true)), 1);
        assert_eq!(a.update(sample(ms(1), 3, true)), 1);
    }

    #[test]
    fn gradient2_shrinks_when_latency_rises_and_grows_when_it_falls() {
        let p = Gradient2 {
            initial: 100,
            min: 10,
            max: 400,
            ..Gradient2::default()
        };
        let mut g = Algorithm::new(&Limit::Gradient2(p));
        // Steady latency, fully used: grows by smoothing × queue_size per window.
        let before = g.limit();
        for _ in 0..10 {
            g.update(sample(ms(10), 200, false));
        }
        assert!(g.limit() > before, "{}", g.limit());
        // Latency jumps 4×: gradient 0.5 (clamped) until the long RTT catches up.
        let high = g.limit();
        g.update(sample(ms(40), 400, false));
        assert!(g.limit() < high, "{} < {high}", g.limit());
        // App-limited: unchanged.
        let l = g.limit();
        assert_eq!(g.update(sample(ms(40), 1, false)), l);
    }

    #[test]
    fn gradient2_follows_the_formula() {
        let p = Gradient2 {
            initial: 50,
            min: 1,
            max: 1000,
            smoothing: 0.5,
            queue_size: 4,
            tolerance: 1.0,
            long_window: 600,
        };
        let mut g = Algorithm::new(&Limit::Gradient2(p));
        // First sample: long = short = 10ms, gradient 1: new = 50 + 4; 50*0.5 + 54*0.5 = 52.
        assert_eq!(g.update(sample(ms(10), 50, false)), 52);
        // Within tolerance (1.0 × 10ms): learnt. long = avg(10, 10) = 10, gradient 1:
        // new = 52 + 4 = 56; 52*0.5 + 56*0.5 = 54.
        assert_eq!(g.update(sample(ms(10), 50, false)), 54);
        // 20ms > 1.0 × 10ms: queueing, not learnt. long = 10, short = 20, gradient 0.5:
        // new = 54*0.5 + 4 = 31; 54*0.5 + 31*0.5 = 42.5.
        assert_eq!(g.update(sample(ms(20), 50, false)), 42);
        assert_eq!(g.long_rtt(), Some(ms(10)));
    }

    /// A service with `slots` slots of 10ms: with `in_flight` requests, a
    /// window's RTT is 10ms, or longer by the queue (Little's law).
    fn queued(in_flight: usize, slots: usize) -> Duration {
        Duration::from_micros(10_000 * in_flight.max(slots) as u64 / slots as u64)
    }

    #[test]
    fn gradient2_does_not_learn_an_overload_present_from_the_start() {
        // The limit starts at 100 over a service of 10 slots, every window
        // full: only the first window (the queue still building) is near the
        // no-load RTT. Netflix's Gradient2 averages the queued windows into
        // its baseline and never comes down (it rose to the max of 200).
        let mut g = Algorithm::new(&Limit::Gradient2(Gradient2 {
            initial: 100,
            min: 1,
            max: 200,
            ..Gradient2::default()
        }));
        g.update(sample(ms(12), 100, false));
        for _ in 0..300 {
            let l = g.limit();
            g.update(sample(queued(l, 10), l, false));
        }
        assert!(g.limit() < 40, "limit {}", g.limit());
        assert_eq!(
            g.long_rtt(),
            Some(ms(12)),
            "the baseline is the unqueued window's"
        );
    }

    #[test]
    fn gradient2_does_not_drift_up_under_a_sustained_overload() {
        // Learns 10ms below capacity, then 500 windows of overload (fewer than
        // `long_window`): the limit stays near where it first settled. Learning
        // the queued windows made it climb from ~25 to ~60 by then.
        let mut g = Algorithm::new(&Limit::Gradient2(Gradient2 {
            initial: 20,
            min: 1,
            max: 200,
            ..Gradient2::default()
        }));
        for _ in 0..20 {
            let l = g.limit();
            g.update(sample(queued(l / 2 + 1, 10), l / 2 + 1, false));
        }
        for _ in 0..50 {
            let l = g.limit();
            g.update(sample(queued(l, 10), l, false));
        }
        let settled = g.limit();
        for _ in 0..450 {
            let l = g.limit();
            g.update(sample(queued(l, 10), l, false));
        }
        assert!(g.limit() <= settled + 2, "{} after {settled}", g.limit());
        assert!(g.limit() < 30, "{}", g.limit());
    }

    #[test]
    fn gradient2_follows_a_service_slower_for_good_after_long_window() {
        // Every request becomes 4× slower at any concurrency: the limit
        // falls, then after `long_window` queueing windows in a row the
        // baseline is the new RTT and the limit grows again.
        let mut g = Algorithm::new(&Limit::Gradient2(Gradient2 {
            initial: 20,
            min: 1,
            max: 200,
            long_window: 50,
            ..Gradient2::default()
        }));
        for _ in 0..20 {
            let l = g.limit();
            g.update(sample(ms(10), l, false));
        }
        for _ in 0..49 {
            let l = g.limit();
            g.update(sample(ms(40), l, false));
        }
        let low = g.limit();
        assert!(low <= 10, "{low}");
        assert_eq!(g.long_rtt(), Some(ms(10)));
        for _ in 0..40 {
            let l = g.limit();
            g.update(sample(ms(40), l, false));
        }
        assert_eq!(g.long_rtt().map(|d| d >= ms(39)), Some(true));
        assert!(g.limit() > 2 * low, "{} after {low}", g.limit());
    }

    #[test]
    fn vegas_follows_the_estimated_queue() {
        let mut v = Algorithm::new(&Limit::Vegas(Vegas {
            initial: 20,
            min: 1,
            max: 100,
            ..Vegas::default()
        }));
        // First window sets the no-load RTT.
        assert_eq!(v.update(sample(ms(10), 20, false)), 20);
        // No queue: + beta × log = + 6.
        assert_eq!(v.update(sample(ms(10), 20, false)), 26);
        // queue = ceil(26 × (1 - 10/12)) = 5: between alpha (3) and beta (6): unchanged.
        assert_eq!(v.update(sample(ms(12), 26, false)), 26);
        // queue = ceil(26 × (1 - 10/20)) = 13 > 6: - max(1, (13 - 6) / 2) = - 3.5.
        assert_eq!(v.update(sample(ms(20), 26, false)), 22);
        // queue = ceil(22.5 × (1 - 10/13)) = 6: between alpha and beta: unchanged.
        assert_eq!(v.update(sample(ms(13), 22, false)), 22);
        // queue = ceil(22.5 × (1 - 10/14)) = 7 > 6: - max(1, 0.5) = - 1.
        assert_eq!(v.update(sample(ms(14), 22, false)), 21);
        // queue = ceil(21.5 × (1 - 10/10.5)) = 2: < alpha: + 1.
        assert_eq!(
            v.update(sample(Duration::from_micros(10_500), 21, false)),
            22
        );
        // A drop: - log.
        assert_eq!(v.update(sample(ms(10), 22, true)), 21);
        // App-limited: unchanged.
        assert_eq!(v.update(sample(ms(30), 2, false)), 21);
    }

    #[test]
    fn vegas_sheds_the_queue_of_a_sudden_drop_in_a_few_windows() {
        // 80 in flight on a service whose 10 slots answer in 10ms: 70 queued.
        // One `log` (1) a window took 60 windows to get back near 10 slots.
        let mut v = Algorithm::new(&Limit::Vegas(Vegas {
            initial: 80,
            min: 1,
            max: 100,
            ..Vegas::default()
        }));
        v.update(sample(ms(10), 10, false));
        for _ in 0..10 {
            let l = v.limit();
            v.update(sample(queued(l, 10), l, false));
        }
        assert!(v.limit() <= 20, "limit {}", v.limit());
        // And it settles a few requests above the slots, as before.
        for _ in 0..50 {
            let l = v.limit();
            v.update(sample(queued(l, 10), l, false));
        }
        assert!((12..=18).contains(&v.limit()), "limit {}", v.limit());
    }

    #[test]
    fn extreme_parameters_keep_the_limit_in_bounds() {
        // beta × log overflows to infinity: the estimate becomes `max`.
        let mut v = Algorithm::new(&Limit::Vegas(Vegas {
            initial: 20,
            min: 1,
            max: 100,
            beta: 1e308,
            ..Vegas::default()
        }));
        v.update(sample(ms(10), 20, false));
        assert_eq!(v.update(sample(ms(10), 20, false)), 100);
        // A tolerance of 1e308 makes every gradient 1: steady growth.
        let mut g = Algorithm::new(&Limit::Gradient2(Gradient2 {
            initial: 20,
            min: 1,
            max: 30,
            tolerance: 1e308,
            queue_size: crate::MAX_LIMIT,
            long_window: 1 << 24,
            ..Gradient2::default()
        }));
        assert_eq!(g.update(sample(ms(10), 20, false)), 30);
        assert_eq!(bounded(f64::NAN, 7.0, 1, 10), 7.0);
        assert_eq!(bounded(f64::INFINITY, 7.0, 1, 10), 10.0);
        assert_eq!(bounded(f64::NEG_INFINITY, 7.0, 1, 10), 1.0);
    }

    #[test]
    fn exp_avg_warms_up_then_decays() {
        let mut e = ExpAvg::new(3, 2);
        assert_eq!(e.add(2.0), 2.0);
        assert_eq!(e.add(4.0), 3.0);
        // factor 2 / 4 = 0.5.
        assert_eq!(e.add(5.0), 4.0);
    }
}

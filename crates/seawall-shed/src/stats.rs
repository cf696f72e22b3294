//! The `stats()` snapshot.

use std::time::Duration;

use crate::pressure::PressureLevel;

/// Requests shed, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShedCounts {
    /// At the in-flight limit (or the inner service was not ready).
    pub hard_limit: u64,
    /// At random in the probabilistic band.
    pub probabilistic: u64,
    /// To keep room for higher priorities.
    pub priority: u64,
    /// Waited in the queue longer than `max_queue_delay`.
    pub queue_delay: u64,
    /// The wait queue was full.
    pub queue_full: u64,
    /// Shed by priority under memory (or other) pressure.
    pub memory_pressure: u64,
}

impl ShedCounts {
    /// All requests shed.
    pub fn total(&self) -> u64 {
        self.hard_limit
            + self.probabilistic
            + self.priority
            + self.queue_delay
            + self.queue_full
            + self.memory_pressure
    }
}

/// A snapshot of a shedder: cheap (a few atomic loads; one short lock for
/// Gradient2's long-term RTT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShedStats {
    /// Requests in flight now (admitted, not yet finished or dropped; queue
    /// mode: also slots reserved by `poll_ready`).
    pub in_flight: usize,
    /// The limit in force now.
    pub limit: usize,
    /// The lowest the limit may go (the fixed limit for `Limit::Fixed`).
    pub min_limit: usize,
    /// The highest the limit may go (the fixed limit for `Limit::Fixed`).
    pub max_limit: usize,
    /// Requests waiting in the queue (queue mode).
    pub queued: usize,
    /// Requests admitted since the layer was built (modulo 2^40: it shares
    /// an atomic word with the in-flight count).
    pub admitted: u64,
    /// Requests shed since the layer was built, by reason.
    pub shed: ShedCounts,
    /// Adaptive limits: the lowest window-average RTT seen.
    pub rtt_min: Option<Duration>,
    /// Adaptive limits: the last window's average RTT.
    pub rtt_recent: Option<Duration>,
    /// Gradient2: the long-term (smoothed) RTT.
    pub rtt_long: Option<Duration>,
    /// The pressure signal's level now (`Normal` without a signal).
    pub pressure: PressureLevel,
}

//! [`RedisBudgetStats`] and [`Backend`].

use crate::error::RedisBudgetError;

/// Which budget is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The shared budget in Redis.
    Redis,
    /// The [`FallbackPolicy`](crate::FallbackPolicy): Redis did not answer.
    Fallback,
}

/// A snapshot of a Redis budget layer's counters (all its services together).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisBudgetStats {
    /// Calls admitted (from leased tokens, on credit, or by the fallback).
    pub admitted: u64,
    /// Calls refused: the shared budget was spent, or the fallback refused.
    pub rejected: u64,
    /// Redis commands sent (a pipeline of refills counts once).
    pub round_trips: u64,
    /// Tokens this replica took from the shared budget in Redis: leased
    /// ahead, or charged for calls admitted on credit.
    pub leased: u64,
    /// Times the budget switched from Redis to its fallback.
    pub fallbacks: u64,
    /// Leases Redis refused for one key alone (the key holds another type or
    /// a value that is not the budget's): that key followed the fallback
    /// policy while the others stayed on Redis.
    pub key_errors: u64,
    /// Calls of new keys that the keyed layer's map had no room for (every
    /// key it examined was in use, or not fresh), served by the layer's one
    /// overflow budget; always 0 for the unkeyed layer.
    pub overflowed: u64,
    /// The budget in force now.
    pub backend: Backend,
    /// The last Redis error seen, if any (a key's own error included). Its
    /// text never holds the URL's password.
    pub last_error: Option<RedisBudgetError>,
    /// Keys held (keyed layer; 1 for the unkeyed layer).
    pub keys: usize,
}

impl RedisBudgetStats {
    /// Redis round trips per admitted call (0 when none was admitted).
    pub fn round_trips_per_call(&self) -> f64 {
        if self.admitted == 0 {
            0.0
        } else {
            self.round_trips as f64 / self.admitted as f64
        }
    }
}

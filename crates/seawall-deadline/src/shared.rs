//! What a layer's services share: the header, the bounds, the counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::Header;

/// A snapshot of a deadline layer's counters; from `stats()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DeadlineStats {
    /// Requests refused because the caller's deadline had passed (server
    /// side: on arrival; client side: nothing left after the margin).
    pub refused: u64,
}

pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) header: Header,
    /// Server: the cap on a caller's deadline. Client: the margin.
    pub(crate) bound: Duration,
    refused: AtomicU64,
    #[cfg(feature = "metrics")]
    metrics: Handles,
}

impl Shared {
    pub(crate) fn new(name: String, header: Header, bound: Duration) -> Self {
        Shared {
            #[cfg(feature = "metrics")]
            metrics: Handles::new(&name),
            name,
            header,
            bound,
            refused: AtomicU64::new(0),
        }
    }

    /// A request carried a deadline (in or out).
    #[inline]
    pub(crate) fn carried(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.carried.increment(1);
    }

    /// A request was refused: counted in `stats()`, a `DEBUG` event.
    pub(crate) fn refused(&self, side: &'static str, past: Duration) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.exceeded.increment(1);
        tracing::debug!(
            target: seawall_core::names::TARGET_DEADLINE,
            name = %self.name,
            side,
            past = ?past,
            "refused: the caller's deadline had passed"
        );
    }

    pub(crate) fn stats(&self) -> DeadlineStats {
        DeadlineStats {
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("header", &self.header.name)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "metrics")]
struct Handles {
    carried: metrics::Counter,
    exceeded: metrics::Counter,
}

#[cfg(feature = "metrics")]
impl Handles {
    fn new(name: &str) -> Self {
        use seawall_core::names::{DEADLINE_CARRIED_TOTAL, DEADLINE_EXCEEDED_TOTAL, LABEL_NAME};
        Handles {
            carried: metrics::counter!(DEADLINE_CARRIED_TOTAL, LABEL_NAME => name.to_owned()),
            exceeded: metrics::counter!(DEADLINE_EXCEEDED_TOTAL, LABEL_NAME => name.to_owned()),
        }
    }
}

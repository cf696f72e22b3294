//! [`Clock`]: the one place every seawall layer reads the time from.
//!
//! A layer reads the time on every call (a budget's refill, a breaker's open
//! period, a latency sample) and sets timers now and then (a budget waiting
//! for a token, a timeout's deadline). Readings go through a [`Clock`];
//! timers are always tokio's.
//!
//! A clock is a concrete value with one of three sources inside:
//!
//! | source | made by | reads | use it for |
//! |--------|---------|-------|------------|
//! | tokio (the default) | [`Clock::tokio`], [`Clock::default`] | [`tokio::time::Instant::now`] | everything; `tokio::time::pause` and `advance` move it, so paused-time tests keep working |
//! | manual | [`Clock::manual`] | a counter moved by [`ManualClock::advance`] | tests of time-driven behaviour with no runtime at all |
//! | TSC | [`Clock::tsc`] (feature `quanta`) | the CPU's time-stamp counter through [`quanta`](https://docs.rs/quanta) | the hottest paths: a reading costs a few nanoseconds instead of a `clock_gettime` |
//!
//! Every reading is a count of nanoseconds since the clock was made (its
//! origin); clones share the origin, so readings taken through clones compare.
//! A layer keeps its clock and the readings it stores (a budget's theoretical
//! arrival time, a breaker's open-until) are on that clock.
//!
//! # Timers and non-tokio clocks
//!
//! A layer that sleeps turns a reading into a tokio [`Instant`] with
//! [`Clock::instant_at`]. On the tokio source that is exact. On the other
//! sources it is "now on tokio's clock plus what is left on this one": a
//! manual clock does not move tokio's timers (advance both, or use the tokio
//! source, in a test that waits), and a TSC clock drifts from tokio's by no
//! more than the two sources drift from each other. Each layer's docs say what
//! a non-tokio clock means for it.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use seawall_core::Clock;
//!
//! let (clock, hand) = Clock::manual();
//! assert_eq!(clock.nanos(), 0);
//! hand.advance(Duration::from_millis(250));
//! assert_eq!(clock.elapsed(), Duration::from_millis(250));
//! // A clone shares the reading.
//! assert_eq!(clock.clone().nanos(), 250_000_000);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::time::{deadline, nanos};

/// Where a seawall layer reads the time: tokio's clock (the default), a
/// manual clock, or the CPU's time-stamp counter. See the [module
/// docs](crate::clock).
///
/// A clock is not configuration: it is set on a builder with `.clock(..)`,
/// never loaded from a file.
#[derive(Clone)]
pub struct Clock {
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// Tokio's clock, read against this origin.
    Tokio(Instant),
    /// Nanoseconds moved by hand.
    Manual(Arc<AtomicU64>),
    /// The TSC: quanta's clock and its raw reading at the origin, with the
    /// tokio instant of the origin for [`Clock::instant_at`].
    #[cfg(feature = "quanta")]
    Tsc(Tsc),
}

#[cfg(feature = "quanta")]
#[derive(Clone)]
struct Tsc {
    clock: quanta::Clock,
    origin: u64,
}

impl Clock {
    /// A clock that reads tokio's time: [`tokio::time::Instant::now`], which
    /// `tokio::time::pause` and `advance` control in tests. Usable outside a
    /// runtime too (it then reads the system's monotonic clock).
    pub fn tokio() -> Clock {
        Clock {
            source: Source::Tokio(Instant::now()),
        }
    }

    /// A clock that reads 0 until moved with the returned [`ManualClock`].
    /// It needs no runtime: a model test can drive a layer's time-dependent
    /// behaviour with plain function calls.
    pub fn manual() -> (Clock, ManualClock) {
        let at = Arc::new(AtomicU64::new(0));
        (
            Clock {
                source: Source::Manual(at.clone()),
            },
            ManualClock { at },
        )
    }

    /// A clock that reads the CPU's time-stamp counter through
    /// [`quanta::Clock`], scaled to nanoseconds: a few nanoseconds a reading
    /// where tokio's clock costs a system call's worth. Where the CPU has no
    /// usable TSC, quanta falls back to the OS's monotonic clock.
    ///
    /// It does not follow `tokio::time::pause`; keep the default in tests
    /// that pause time.
    #[cfg(feature = "quanta")]
    #[cfg_attr(docsrs, doc(cfg(feature = "quanta")))]
    pub fn tsc() -> Clock {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        Clock {
            source: Source::Tsc(Tsc { clock, origin }),
        }
    }

    /// Nanoseconds since this clock was made, saturating at `u64::MAX`
    /// (about 584 years).
    #[inline]
    pub fn nanos(&self) -> u64 {
        match &self.source {
            Source::Tokio(origin) => nanos(Instant::now().saturating_duration_since(*origin)),
            Source::Manual(at) => at.load(Ordering::Acquire),
            #[cfg(feature = "quanta")]
            Source::Tsc(tsc) => tsc.clock.delta_as_nanos(tsc.origin, tsc.clock.raw()),
        }
    }

    /// [`nanos`](Clock::nanos) as a `Duration`.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos())
    }

    /// The reading of this clock at a tokio instant: exact on the tokio
    /// source; on the others, the reading now less the time from `at` to now
    /// on tokio's clock (0 at the least).
    pub fn nanos_at(&self, at: Instant) -> u64 {
        match &self.source {
            Source::Tokio(origin) => nanos(at.saturating_duration_since(*origin)),
            _ => {
                let ago = nanos(Instant::now().saturating_duration_since(at));
                self.nanos().saturating_sub(ago)
            }
        }
    }

    /// The tokio instant at which this clock reads `nanos`, for a timer:
    /// exact on the tokio source; on the others, tokio's now plus what is
    /// left until `nanos` on this clock (now, if `nanos` has passed). Never
    /// panics: a reading too far away for an `Instant` becomes a point about
    /// 30 years out ([`FAR_FUTURE`](crate::time::FAR_FUTURE)).
    pub fn instant_at(&self, nanos: u64) -> Instant {
        match &self.source {
            Source::Tokio(origin) => deadline(*origin, Duration::from_nanos(nanos)),
            _ => deadline(
                Instant::now(),
                Duration::from_nanos(nanos.saturating_sub(self.nanos())),
            ),
        }
    }

    /// Whether this clock reads tokio's time, so that a reading and a tokio
    /// timer agree exactly (and `tokio::time::pause` moves both).
    pub fn follows_tokio(&self) -> bool {
        matches!(self.source, Source::Tokio(_))
    }
}

impl Default for Clock {
    /// [`Clock::tokio`].
    fn default() -> Clock {
        Clock::tokio()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Tokio(_) => "tokio",
            Source::Manual(_) => "manual",
            #[cfg(feature = "quanta")]
            Source::Tsc(_) => "tsc",
        };
        f.debug_struct("Clock")
            .field("source", &source)
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

/// The largest reading a [`ManualClock`] can be moved to: 2^63 − 1
/// nanoseconds, about 292 years. A reading plus any duration a layer adds
/// to it (at most [`FAR_FUTURE`](crate::time::FAR_FUTURE)) stays below
/// `u64::MAX`.
pub const MAX_READING: u64 = u64::MAX / 2;

/// The hand of a [`Clock::manual`] clock: moves every clone of that clock.
#[derive(Clone)]
pub struct ManualClock {
    at: Arc<AtomicU64>,
}

impl ManualClock {
    /// Moves the clock forward by `by`; a manual clock never goes back. It
    /// stops at [`MAX_READING`] (about 292 years), where the real sources
    /// take centuries to go: a layer adds configured durations to readings,
    /// and a reading near `u64::MAX` would saturate those sums and turn its
    /// limits off.
    pub fn advance(&self, by: Duration) {
        let by = nanos(by);
        let _ = self
            .at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |at| {
                Some(at.saturating_add(by).min(MAX_READING))
            });
    }

    /// How far the clock has been moved since it was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.at.load(Ordering::Acquire))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_by_hand_and_saturates() {
        let (clock, hand) = Clock::manual();
        assert_eq!(clock.nanos(), 0);
        assert!(!clock.follows_tokio());
        hand.advance(Duration::from_nanos(5));
        assert_eq!(clock.nanos(), 5);
        hand.advance(Duration::MAX);
        assert_eq!(clock.nanos(), MAX_READING);
        hand.advance(Duration::from_secs(1));
        assert_eq!(clock.nanos(), MAX_READING);
        assert_eq!(hand.elapsed(), Duration::from_nanos(MAX_READING));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time_and_maps_back_exactly() {
        let clock = Clock::default();
        assert!(clock.follows_tokio());
        let origin = Instant::now();
        assert_eq!(clock.nanos(), 0);
        tokio::time::advance(Duration::from_millis(3)).await;
        assert_eq!(clock.nanos(), 3_000_000);
        assert_eq!(clock.clone().elapsed(), Duration::from_millis(3));
        assert_eq!(
            clock.instant_at(7_000_000),
            origin + Duration::from_millis(7)
        );
        assert_eq!(clock.nanos_at(origin + Duration::from_millis(2)), 2_000_000);
        // Before the origin and past any representable instant: no panic.
        assert_eq!(clock.nanos_at(origin - Duration::from_millis(1)), 0);
        let far = clock.instant_at(u64::MAX);
        assert!(far > Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn other_sources_map_to_timers_from_tokio_now() {
        let (clock, hand) = Clock::manual();
        hand.advance(Duration::from_secs(10));
        let now = Instant::now();
        // 2 s ahead on the manual clock is 2 s ahead on tokio's.
        assert_eq!(
            clock.instant_at(12_000_000_000),
            now + Duration::from_secs(2)
        );
        // A reading already passed fires now.
        assert_eq!(clock.instant_at(1), now);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(clock.nanos_at(now), 9_000_000_000);
        assert_eq!(clock.nanos_at(now - Duration::from_secs(60)), 0);
    }

    #[test]
    fn debug_names_the_source() {
        let (clock, hand) = Clock::manual();
        hand.advance(Duration::from_millis(1));
        assert_eq!(
            format!("{clock:?}"),
            "Clock { source: \"manual\", elapsed: 1ms }"
        );
        assert!(format!("{hand:?}").contains("1ms"));
        assert!(format!("{:?}", Clock::tokio()).contains("tokio"));
    }

    #[cfg(feature = "quanta")]
    #[test]
    fn tsc_clock_moves_forward() {
        let clock = Clock::tsc();
        assert!(!clock.follows_tokio());
        let a = clock.nanos();
        std::thread::yield_now();
        let b = clock.clone().nanos();
        assert!(b >= a);
        assert!(format!("{clock:?}").contains("tsc"));
    }
}

//! The small seedable generator every seawall layer jitters with
//! (splitmix64), so no crate needs `rand` and a test replays an exact
//! sequence from its seed. Not for anything secret.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64 (Steele, Lea, Flood 2014): one add and three
/// xor-shift-multiply rounds per value; it passes BigCrush, plenty for
/// spreading delays and shedding decisions. Not cryptographic.
///
/// ```
/// use seawall_core::rand::SplitMix64;
///
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!((0.0..1.0).contains(&a.next_f64()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator that gives the same sequence for the same seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A generator seeded by [`random_seed`].
    pub fn from_entropy() -> Self {
        SplitMix64(random_seed())
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// A uniform number in `[0, 1)`, with 53 random bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The splitmix64 finaliser: scrambles `z` so that nearby inputs give
/// unrelated outputs.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `n`th seed derived from `seed`: distinct `n` give independent
/// streams (one per service clone, per request, per thread).
#[inline]
pub fn derive(seed: u64, n: u64) -> u64 {
    mix(seed ^ mix(n.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// A seed that differs between calls and between processes: std's
/// `RandomState` is keyed from the OS once per thread, and a counter makes
/// two calls on one thread differ.
pub fn random_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sequence_and_range() {
        // Reference values of splitmix64 seeded with 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut r = SplitMix64::new(42);
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn seeds_and_derived_streams_differ() {
        assert_ne!(random_seed(), random_seed());
        assert_ne!(derive(1, 0), derive(1, 1));
        assert_ne!(derive(1, 0), derive(2, 0));
        assert_ne!(
            SplitMix64::from_entropy().next_u64(),
            SplitMix64::from_entropy().next_u64()
        );
    }
}

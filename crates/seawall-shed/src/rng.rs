//! A tiny seedable generator for the probabilistic band.
//!
//! SplitMix64: one add, three xor-shift-multiplies per draw, no shared state.
//! Every [`Shed`](crate::Shed) service keeps its own, so drawing never writes
//! a cache line another thread reads. Not cryptographic, and need not be:
//! it decides which requests are shed, not anything a client could exploit
//! beyond sending more requests.

use std::hash::{BuildHasher, Hasher};

/// A fast, seedable, non-cryptographic random number generator (SplitMix64).
///
/// ```
/// use seawall_shed::ShedRng;
///
/// let mut a = ShedRng::new(7);
/// let mut b = ShedRng::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.next_f64();
/// assert!((0.0..1.0).contains(&x));
/// ```
#[derive(Debug, Clone)]
pub struct ShedRng {
    state: u64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl ShedRng {
    /// A generator that produces the same sequence for the same seed.
    pub fn new(seed: u64) -> Self {
        ShedRng { state: seed }
    }

    /// A generator seeded from the process's random hasher keys.
    pub fn from_entropy() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(GOLDEN);
        ShedRng::new(h.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A uniform number in `0.0..1.0` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The SplitMix64 finaliser: also used to derive independent seeds.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `n`th independent seed derived from `seed`.
pub(crate) fn derive(seed: u64, n: u64) -> u64 {
    mix(seed ^ mix(n.wrapping_add(1).wrapping_mul(GOLDEN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_enough() {
        let mut r = ShedRng::new(1);
        let n = 100_000;
        let mut below_quarter = 0;
        for _ in 0..n {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            if x < 0.25 {
                below_quarter += 1;
            }
        }
        let frac = below_quarter as f64 / n as f64;
        assert!((frac - 0.25).abs() < 0.01, "{frac}");
    }

    #[test]
    fn derived_seeds_differ() {
        assert_ne!(derive(5, 0), derive(5, 1));
        assert_ne!(derive(5, 0), derive(6, 0));
    }
}

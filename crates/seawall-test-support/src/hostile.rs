//! Hostile config values for property tests (feature `proptest`).
//!
//! Each strategy mostly yields the ordinary value it is given, so that most
//! configs carry one or two hostile fields and many are valid and get
//! exercised; otherwise it yields a value at or past a bound.
//!
//! ```
//! use std::time::Duration;
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//! use seawall_test_support::hostile;
//!
//! let mut runner = TestRunner::deterministic();
//! let d = hostile::durations(Duration::from_secs(1)).new_tree(&mut runner).unwrap().current();
//! let _ = d; // the ordinary value or a hostile one
//! ```

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use seawall_core::config::MAX_DURATION;

const NS: Duration = Duration::from_nanos(1);

/// `ordinary`, or one of 0, 1ns, the longest valid duration, 1ns past it,
/// `u64::MAX` seconds and `Duration::MAX`.
pub fn durations(ordinary: Duration) -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => Just(ordinary),
        2 => select(vec![
            Duration::ZERO,
            NS,
            MAX_DURATION,
            MAX_DURATION + NS,
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ]),
    ]
}

/// `ordinary`, or one of NaN, ±infinity, -0, -1, 1, 100 and 1e308.
pub fn floats(ordinary: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => Just(ordinary),
        2 => select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            -1.0,
            1.0,
            100.0,
            1e308,
        ]),
    ]
}

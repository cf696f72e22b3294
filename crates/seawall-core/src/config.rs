//! Configuration errors: every builder in seawall returns [`ConfigError`].
//!
//! A `ConfigError` names the field, the bad value and why it is bad, in the
//! form `field: value reason` (`failure_rate: 1.5 is not in 0..=1`). It holds
//! *every* bad field a builder found, not just the first, so a whole stack
//! loaded from a file reports all its mistakes at once; [`ConfigError::prefixed`]
//! puts a component's path in front (`client.breaker.failure_rate`).
//!
//! Builders collect their problems with [`Check`]:
//!
//! ```
//! use std::time::Duration;
//! use seawall_core::config::{Check, ConfigError};
//!
//! fn validate(threshold: u32, rate: f64, open_for: Duration) -> Result<(), ConfigError> {
//!     let mut check = Check::new();
//!     check.nonzero("failure_threshold", threshold);
//!     check.ratio("failure_rate", rate);
//!     check.nonzero_duration("open_duration", open_for);
//!     check.finish()
//! }
//!
//! let err = validate(0, 1.5, Duration::from_secs(30)).unwrap_err().prefixed("client.breaker");
//! assert_eq!(
//!     err.to_string(),
//!     "client.breaker.failure_threshold: 0 must be greater than zero; \
//!      client.breaker.failure_rate: 1.5 is not in 0..=1"
//! );
//! assert_eq!(err.field(), "client.breaker.failure_threshold");
//! assert_eq!(err.errors().len(), 2);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The longest duration any seawall setting accepts: 365 days.
///
/// Every configured duration is checked against it, so a deadline built from
/// one (`now + duration`) cannot overflow an `Instant`, whatever a config file
/// says: `"18446744073709551615s"` is a [`ConfigError`], not a panic on the
/// first request. Code that adds a duration to an instant still uses checked
/// arithmetic ([`crate::time::deadline`]).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The largest capacity any seawall setting accepts (of a queue, a key map, a
/// window): 2^24 = 16 777 216.
///
/// Queues and maps grow as they fill and never reserve their bound up front,
/// so a large capacity costs nothing until it is used; the bound keeps every
/// size computation from overflowing and keeps a typo from meaning "unbounded".
pub const MAX_CAPACITY: usize = 1 << 24;

/// One bad field: its path, its value as written, and why it is bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: String,
    value: String,
    reason: Cow<'static, str>,
}

impl FieldError {
    /// The field's path, e.g. `client.breaker.failure_rate`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The bad value, formatted.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value is bad, e.g. `is not in 0..=1`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.field, self.value, self.reason)
    }
}

/// A configuration was rejected; names every bad field, its value and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    // Never empty.
    errors: Vec<FieldError>,
}

impl ConfigError {
    /// A single bad field.
    ///
    /// ```
    /// use seawall_core::ConfigError;
    ///
    /// let err = ConfigError::new("capacity", 0, "must be greater than zero");
    /// assert_eq!(err.to_string(), "capacity: 0 must be greater than zero");
    /// ```
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        ConfigError {
            errors: vec![FieldError {
                field: field.into(),
                value: value.to_string(),
                reason: reason.into(),
            }],
        }
    }

    /// The path of the first bad field.
    pub fn field(&self) -> &str {
        self.errors[0].field()
    }

    /// The first bad value, formatted.
    pub fn value(&self) -> &str {
        self.errors[0].value()
    }

    /// Why the first bad value is bad.
    pub fn reason(&self) -> &str {
        self.errors[0].reason()
    }

    /// Every bad field, in the order they were found.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// Puts `prefix.` in front of every field's path.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            for e in &mut self.errors {
                e.field = format!("{prefix}.{}", e.field);
            }
        }
        self
    }

    /// Adds the problems of `other` after this one's.
    pub fn merge(mut self, other: ConfigError) -> Self {
        self.errors.extend(other.errors);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects every problem of a configuration; see the [module docs](self).
#[derive(Debug, Default)]
pub struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    /// An empty check.
    pub fn new() -> Self {
        Check::default()
    }

    /// Records a problem with `field`.
    pub fn fail(
        &mut self,
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<Cow<'static, str>>,
    ) -> &mut Self {
        self.errors
            .extend(ConfigError::new(field, value, reason).errors);
        self
    }

    /// Adds the problems of a nested component's result, under `prefix`.
    pub fn nested<T>(&mut self, prefix: &str, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(t) => Some(t),
            Err(e) => {
                self.errors.extend(e.prefixed(prefix).errors);
                None
            }
        }
    }

    /// `value` must not be zero.
    pub fn nonzero<T>(&mut self, field: &str, value: T) -> &mut Self
    where
        T: PartialEq + Default + fmt::Display,
    {
        if value == T::default() {
            self.fail(field, value, "must be greater than zero");
        }
        self
    }

    /// `value` must be a duration longer than zero and at most [`MAX_DURATION`].
    pub fn nonzero_duration(&mut self, field: &str, value: Duration) -> &mut Self {
        if value.is_zero() {
            self.fail(field, "0s", "must be longer than zero");
        }
        self.duration(field, value)
    }

    /// `value` must be a duration of at most [`MAX_DURATION`] (zero allowed).
    pub fn duration(&mut self, field: &str, value: Duration) -> &mut Self {
        if value > MAX_DURATION {
            self.fail(
                field,
                format_args!("{value:?}"),
                "must be at most 365 days (31536000s)",
            );
        }
        self
    }

    /// `value` must be a duration in `lo..=hi`.
    pub fn duration_in(
        &mut self,
        field: &str,
        value: Duration,
        lo: Duration,
        hi: Duration,
    ) -> &mut Self {
        if !(lo <= value && value <= hi) {
            let reason = format!("is not in {lo:?}..={hi:?}");
            self.fail(field, format_args!("{value:?}"), reason);
        }
        self
    }

    /// `value` must be a capacity in `1..=`[`MAX_CAPACITY`].
    pub fn capacity(&mut self, field: &str, value: usize) -> &mut Self {
        if value == 0 {
            self.fail(field, value, "must be greater than zero");
        } else if value > MAX_CAPACITY {
            self.fail(field, value, "must be at most 16777216 (2^24)");
        }
        self
    }

    /// `value` must be a finite number in `0..=1`.
    pub fn ratio(&mut self, field: &str, value: f64) -> &mut Self {
        if !(0.0..=1.0).contains(&value) {
            self.fail(field, value, "is not in 0..=1");
        }
        self
    }

    /// `value` must be a finite number greater than zero.
    pub fn positive(&mut self, field: &str, value: f64) -> &mut Self {
        if !(value.is_finite() && value > 0.0) {
            self.fail(field, value, "must be a finite number greater than zero");
        }
        self
    }

    /// `value` must lie in `lo..=hi`.
    pub fn in_range<T>(&mut self, field: &str, value: T, lo: T, hi: T) -> &mut Self
    where
        T: PartialOrd + fmt::Display,
    {
        if !(lo <= value && value <= hi) {
            let reason = format!("is not in {lo}..={hi}");
            self.fail(field, value, reason);
        }
        self
    }

    /// `low` (named `low_field`) must be at most `high` (named `high_field`).
    pub fn at_most<T>(&mut self, low_field: &str, low: T, high_field: &str, high: T) -> &mut Self
    where
        T: PartialOrd + fmt::Debug,
    {
        if low > high {
            let reason = format!("must be at most {high_field} ({high:?})");
            self.fail(low_field, format_args!("{low:?}"), reason);
        }
        self
    }

    /// `true` when no problem has been recorded.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` when nothing was wrong, otherwise every problem found.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                errors: self.errors,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(f: impl FnOnce(&mut Check)) -> String {
        let mut c = Check::new();
        f(&mut c);
        c.finish().unwrap_err().to_string()
    }

    #[test]
    fn every_message() {
        assert_eq!(
            one(|c| {
                c.nonzero("capacity", 0usize);
            }),
            "capacity: 0 must be greater than zero"
        );
        assert_eq!(
            one(|c| {
                c.nonzero_duration("window", Duration::ZERO);
            }),
            "window: 0s must be longer than zero"
        );
        assert_eq!(
            one(|c| {
                c.ratio("failure_rate", 1.5);
            }),
            "failure_rate: 1.5 is not in 0..=1"
        );
        assert_eq!(
            one(|c| {
                c.ratio("failure_rate", f64::NAN);
            }),
            "failure_rate: NaN is not in 0..=1"
        );
        assert_eq!(
            one(|c| {
                c.positive("multiplier", -1.0);
            }),
            "multiplier: -1 must be a finite number greater than zero"
        );
        assert_eq!(
            one(|c| {
                c.positive("multiplier", f64::INFINITY);
            }),
            "multiplier: inf must be a finite number greater than zero"
        );
        assert_eq!(
            one(|c| {
                c.in_range("percentile", 100.5, 0.0, 100.0);
            }),
            "percentile: 100.5 is not in 0..=100"
        );
        assert_eq!(
            one(|c| {
                c.at_most("min", Duration::from_secs(2), "max", Duration::from_secs(1));
            }),
            "min: 2s must be at most max (1s)"
        );
        assert_eq!(
            one(|c| {
                c.fail("url", "redis//x", "is not a URL");
            }),
            "url: redis//x is not a URL"
        );
    }

    #[test]
    fn bounds() {
        assert_eq!(
            one(|c| {
                c.nonzero_duration("open_duration", Duration::from_secs(u64::MAX));
            }),
            "open_duration: 18446744073709551615s must be at most 365 days (31536000s)"
        );
        assert_eq!(
            one(|c| {
                c.duration("delay", MAX_DURATION + Duration::from_nanos(1));
            }),
            "delay: 31536000.000000001s must be at most 365 days (31536000s)"
        );
        assert_eq!(
            one(|c| {
                c.capacity("queue_capacity", 4_294_967_295);
            }),
            "queue_capacity: 4294967295 must be at most 16777216 (2^24)"
        );
        assert_eq!(
            one(|c| {
                c.capacity("queue_capacity", 0);
            }),
            "queue_capacity: 0 must be greater than zero"
        );
        assert_eq!(
            one(|c| {
                c.duration_in(
                    "interval",
                    Duration::from_nanos(1),
                    Duration::from_millis(10),
                    Duration::from_secs(60),
                );
            }),
            "interval: 1ns is not in 10ms..=60s"
        );
        let mut c = Check::new();
        c.nonzero_duration("d", MAX_DURATION)
            .duration("z", Duration::ZERO)
            .capacity("c", MAX_CAPACITY)
            .capacity("c", 1);
        assert!(c.is_ok());
    }

    #[test]
    fn good_values_pass() {
        let mut c = Check::new();
        c.nonzero("n", 1u32)
            .nonzero_duration("d", Duration::from_nanos(1))
            .ratio("r", 0.0)
            .ratio("r", 1.0)
            .positive("p", 0.1)
            .in_range("x", 5, 5, 5)
            .at_most("a", 1, "b", 1);
        assert!(c.is_ok());
        assert!(c.finish().is_ok());
    }

    #[test]
    fn collects_every_problem_with_paths() {
        let inner = {
            let mut c = Check::new();
            c.nonzero("failure_threshold", 0u32)
                .ratio("failure_rate", 2.0);
            c.finish()
        };
        let mut outer = Check::new();
        assert!(outer.nested::<()>("client.breaker", inner).is_none());
        assert_eq!(outer.nested("client.retry", Ok(3)), Some(3));
        outer.nonzero("server.shed.max_in_flight", 0usize);
        let err = outer.finish().unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
        assert_eq!(
            fields,
            [
                "client.breaker.failure_threshold",
                "client.breaker.failure_rate",
                "server.shed.max_in_flight"
            ]
        );
        assert_eq!(err.value(), "0");
        assert_eq!(err.reason(), "must be greater than zero");
    }

    #[test]
    fn merge_and_empty_prefix() {
        let a = ConfigError::new("a", 1, "is bad");
        let b = ConfigError::new("b", 2, "is worse");
        let m = a.merge(b).prefixed("");
        assert_eq!(m.to_string(), "a: 1 is bad; b: 2 is worse");
    }
}

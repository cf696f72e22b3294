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

/// The most characters of a value (or of a reason) a [`ConfigError`] keeps:
/// a 100 kB string in a config file is reported by its start and its length,
/// not copied into every log line that prints the error.
pub const MAX_ERROR_TEXT: usize = 256;

/// `text` with the secrets a config value may carry replaced by `***`: the
/// password of every URL's userinfo (`redis://user:***@host`; a userinfo
/// without a password, which may be a token, becomes `***@host`) and the
/// value of `password`/`pass`/`passwd`/`token` query parameters.
///
/// [`ConfigError`] applies it to every value and reason it holds, so a URL
/// that ends up in the wrong field, or a serde message quoting one, never
/// prints its password.
///
/// ```
/// use seawall_core::config::redact_secrets;
///
/// assert_eq!(redact_secrets("redis://app:hunter2@db:6379/0"), "redis://app:***@db:6379/0");
/// assert_eq!(redact_secrets("https://tok3n@api.example"), "https://***@api.example");
/// assert_eq!(redact_secrets("redis://h:6379/?password=hunter2&db=1"), "redis://h:6379/?password=***&db=1");
/// assert_eq!(redact_secrets("no secret here"), "no secret here");
/// ```
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    if !text.contains("://") && !text.contains('=') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the first path, query or fragment mark, or
        // at anything that cannot be in a URL (a quote around it, a space).
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                let userinfo = &authority[..userinfo_end];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[userinfo_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_query_secrets(&mut out);
    Cow::Owned(out)
}

fn redact_query_secrets(text: &mut String) {
    const NAMES: [&str; 4] = ["password=", "pass=", "passwd=", "token="];
    let mut from = 0;
    while from < text.len() {
        let lower = text[from..].to_ascii_lowercase();
        let Some((at, name)) = NAMES
            .iter()
            .filter_map(|n| lower.find(n).map(|i| (i, *n)))
            .filter(|&(i, _)| {
                // A whole parameter name: at the start, or after `?`, `&`, `;`
                // or a space ("xpass=" is not "pass=").
                let n_at = from + i;
                n_at == 0 || matches!(text.as_bytes()[n_at - 1], b'?' | b'&' | b';' | b' ' | b'"')
            })
            .min_by_key(|&(i, _)| i)
        else {
            return;
        };
        let start = from + at + name.len();
        let end = text[start..]
            .find(|c: char| matches!(c, '&' | '#' | ';' | '"' | '\'' | '`') || c.is_whitespace())
            .map_or(text.len(), |e| start + e);
        if end > start {
            text.replace_range(start..end, "***");
        }
        from = start + 3.min(text.len() - start);
    }
}

fn printable(text: String) -> String {
    match printable_ref(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(text) => text,
    }
}

/// Secrets redacted, long text cut to [`MAX_ERROR_TEXT`] characters.
fn printable_ref(text: &str) -> Cow<'_, str> {
    let text = redact_secrets(text);
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        None => text,
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes in all)", &text[..cut], text.len())),
    }
}

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
        let reason = reason.into();
        ConfigError {
            errors: vec![FieldError {
                field: printable(field.into()),
                value: printable(value.to_string()),
                reason: match printable_ref(&reason) {
                    Cow::Borrowed(_) => reason,
                    Cow::Owned(text) => Cow::Owned(text),
                },
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

/// Why a running layer did not take a new config: the answer of every
/// layer's `reload`.
///
/// A reload is all or nothing: on either error the layer keeps running
/// with its old config, and its state (breaker state, windows, histograms,
/// budget tokens, in-flight counts) is untouched.
///
/// ```
/// use seawall_core::{ConfigError, ReloadError};
///
/// let invalid = ReloadError::from(ConfigError::new("rate", 0, "must be greater than zero"));
/// assert_eq!(invalid.to_string(), "invalid config: rate: 0 must be greater than zero");
///
/// let kind = ReloadError::not_in_place("trip", "the trip policy's kind cannot change");
/// assert_eq!(
///     kind.to_string(),
///     "trip cannot change on a running layer: the trip policy's kind cannot change",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadError {
    /// The new config is not valid (the same check a build runs).
    Invalid(ConfigError),
    /// The new config changes something a running layer cannot change in
    /// place; build a new layer to apply it.
    NotInPlace {
        /// The field that differs, e.g. `trip`.
        field: Cow<'static, str>,
        /// Why it cannot change in place.
        reason: Cow<'static, str>,
    },
}

impl ReloadError {
    /// A [`ReloadError::NotInPlace`] for `field`.
    pub fn not_in_place(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        ReloadError::NotInPlace {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field that could not change in place, if that is the error.
    pub fn not_in_place_field(&self) -> Option<&str> {
        match self {
            ReloadError::NotInPlace { field, .. } => Some(field),
            ReloadError::Invalid(_) => None,
        }
    }
}

impl From<ConfigError> for ReloadError {
    fn from(err: ConfigError) -> Self {
        ReloadError::Invalid(err)
    }
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Invalid(err) => write!(f, "invalid config: {err}"),
            ReloadError::NotInPlace { field, reason } => {
                write!(f, "{field} cannot change on a running layer: {reason}")
            }
        }
    }
}

impl std::error::Error for ReloadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReloadError::Invalid(err) => Some(err),
            ReloadError::NotInPlace { .. } => None,
        }
    }
}

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

/// `new()` (the defaults) and one setter per field for a
/// `#[non_exhaustive]` config struct, so users build it without a literal.
/// A setter of an `Option` field takes the value inside. For seawall's own
/// crates: not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! config_setters {
    ($ty:ident { $($field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            /// The defaults (as [`Default`]); change fields with the setters.
            pub fn new() -> Self {
                Self::default()
            }
            $(
                #[doc = concat!("Sets `", stringify!($field), "` (the field documents its default and bounds).")]
                #[must_use]
                pub fn $field(mut self, value: $t) -> Self {
                    self.$field = value.into();
                    self
                }
            )*
        }
    };
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
    fn secrets_and_long_values_stay_out_of_errors() {
        let err = ConfigError::new(
            "url",
            "redis://app:hunter2@10.0.0.1:6379/0",
            "cannot connect to redis://app:hunter2@10.0.0.1:6379/0",
        );
        assert_eq!(
            err.to_string(),
            "url: redis://app:***@10.0.0.1:6379/0 cannot connect to redis://app:***@10.0.0.1:6379/0"
        );
        assert!(!format!("{err:?}").contains("hunter2"));
        let err = ConfigError::new("name", "a".repeat(100_000), "is too long");
        assert!(err.value().len() < 400, "{}", err.value().len());
        assert!(err.value().ends_with("… (100000 bytes in all)"));
        // Quoted by serde, next to other text.
        assert_eq!(
            redact_secrets(r#"invalid type: string "redis://u:p@h:1/0", expected u32"#),
            r#"invalid type: string "redis://u:***@h:1/0", expected u32"#
        );
        assert_eq!(redact_secrets("a://@h"), "a://***@h");
        assert_eq!(
            redact_secrets("x://u:p@h x://v:q@i"),
            "x://u:***@h x://v:***@i"
        );
        assert_eq!(redact_secrets("rediss://:pw@h"), "rediss://:***@h");
        assert_eq!(
            redact_secrets("unix:///tmp/r.sock?pass=pw"),
            "unix:///tmp/r.sock?pass=***"
        );
        assert_eq!(
            redact_secrets("?Password=pw&token=t"),
            "?Password=***&token=***"
        );
        assert_eq!(redact_secrets("bypass=1"), "bypass=1");
        assert_eq!(redact_secrets("pass="), "pass=");
        // Multi-byte text is cut on a character boundary.
        let err = ConfigError::new("name", "é".repeat(1000), "is bad");
        assert!(err.value().starts_with("éé"));
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

//! The two layers' configurations: plain data, with setters and (feature
//! `serde`) `Deserialize`.

use std::time::Duration;

use http::HeaderName;
use seawall_core::ConfigError;
use seawall_core::config::Check;
use seawall_core::names::DEFAULT_NAME;

/// The header gRPC carries a deadline in; the default of both layers.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The most a caller's deadline may be set to: 1 day. [`CallerDeadlineConfig::max`]
/// caps what a caller asks for, and may not be set above this.
pub const MAX_CALLER_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);

/// The largest [`PropagateDeadlineConfig::margin`]: 60 seconds.
pub const MAX_MARGIN: Duration = Duration::from_secs(60);

/// How a deadline is written in a header: gRPC's `grpc-timeout` grammar, or
/// a whole number of milliseconds in a header the user names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) name: HeaderName,
    pub(crate) grpc: bool,
}

fn header(check: &mut Check, name: &str) -> Option<Header> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(parsed) => {
            let grpc = parsed == GRPC_TIMEOUT;
            // A name built from a `&'static str` clones without touching a
            // reference count: the client side clones it into every request
            // it writes the header to.
            let name = if grpc {
                HeaderName::from_static(GRPC_TIMEOUT)
            } else {
                // `as_str` of a parsed name is its valid, lowercase form,
                // which `from_static` accepts.
                HeaderName::from_static(interned(parsed.as_str()))
            };
            Some(Header { name, grpc })
        }
        Err(_) => {
            check.fail("header", name, "is not a valid HTTP header name");
            None
        }
    }
}

/// `name` as a `&'static str`: each distinct header name is leaked once for
/// the life of the process, however many layers are built with it (so
/// rebuilding layers from a reloaded config leaks nothing more). Header
/// names come from configuration, not from requests.
fn interned(name: &str) -> &'static str {
    use std::sync::{Mutex, OnceLock, PoisonError};
    static NAMES: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}

/// The server side's configuration ([`CallerDeadlineLayer`](crate::CallerDeadlineLayer)).
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | `name` field of tracing events, `name` label of metrics |
/// | `header` | `"grpc-timeout"` | the header the caller's deadline is read from: `grpc-timeout` in gRPC's grammar (`250m`, `3S`), any other name as whole milliseconds (`250`) |
/// | `max` | 5 minutes | the longest deadline a caller may ask for; a longer one is cut to this; at most [`MAX_CALLER_DEADLINE`] (1 day), longer than zero |
///
/// ```toml
/// header = "x-deadline-ms"
/// max = "30s"
/// ```
///
/// ```
/// use std::time::Duration;
/// use seawall_deadline::CallerDeadlineConfig;
///
/// let config = CallerDeadlineConfig::new().header("x-deadline-ms").max(Duration::from_secs(30));
/// assert!(config.validate().is_ok());
/// assert!(CallerDeadlineConfig::new().header("bad header").validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct CallerDeadlineConfig {
    /// The layer's name in events and metrics.
    pub name: String,
    /// The header the deadline is read from.
    pub header: String,
    /// The longest deadline a caller may ask for.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max: Duration,
}

impl Default for CallerDeadlineConfig {
    fn default() -> Self {
        CallerDeadlineConfig {
            name: DEFAULT_NAME.to_owned(),
            header: GRPC_TIMEOUT.to_owned(),
            max: Duration::from_secs(5 * 60),
        }
    }
}

seawall_core::config_setters!(CallerDeadlineConfig {
    name: impl Into<String>,
    header: impl Into<String>,
    max: Duration,
});

impl CallerDeadlineConfig {
    /// Checks every field; the error names each bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.checked().map(|_| ())
    }

    pub(crate) fn checked(&self) -> Result<Header, ConfigError> {
        let mut check = Check::new();
        let header = header(&mut check, &self.header);
        check.duration_in(
            "max",
            self.max,
            Duration::from_nanos(1),
            MAX_CALLER_DEADLINE,
        );
        check.finish()?;
        // `header` is `None` only after a failed check, which returned above.
        header.ok_or_else(|| {
            ConfigError::new("header", &self.header, "is not a valid HTTP header name")
        })
    }
}

/// The client side's configuration ([`PropagateDeadlineLayer`](crate::PropagateDeadlineLayer)).
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | `name` field of tracing events, `name` label of metrics |
/// | `header` | `"grpc-timeout"` | the header the remaining deadline is written to: `grpc-timeout` in gRPC's grammar, any other name as whole milliseconds (rounded down) |
/// | `margin` | 0 | subtracted from the remaining time, for the trip to the peer and back; at most [`MAX_MARGIN`] (60s) |
///
/// ```
/// use std::time::Duration;
/// use seawall_deadline::PropagateDeadlineConfig;
///
/// let config = PropagateDeadlineConfig::new().margin(Duration::from_millis(5));
/// assert!(config.validate().is_ok());
/// assert!(config.margin(Duration::from_secs(61)).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct PropagateDeadlineConfig {
    /// The layer's name in events and metrics.
    pub name: String,
    /// The header the remaining deadline is written to.
    pub header: String,
    /// Time kept back for the trip to the peer and back.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub margin: Duration,
}

impl Default for PropagateDeadlineConfig {
    fn default() -> Self {
        PropagateDeadlineConfig {
            name: DEFAULT_NAME.to_owned(),
            header: GRPC_TIMEOUT.to_owned(),
            margin: Duration::ZERO,
        }
    }
}

seawall_core::config_setters!(PropagateDeadlineConfig {
    name: impl Into<String>,
    header: impl Into<String>,
    margin: Duration,
});

impl PropagateDeadlineConfig {
    /// Checks every field; the error names each bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.checked().map(|_| ())
    }

    pub(crate) fn checked(&self) -> Result<Header, ConfigError> {
        let mut check = Check::new();
        let header = header(&mut check, &self.header);
        check.duration_in("margin", self.margin, Duration::ZERO, MAX_MARGIN);
        check.finish()?;
        header.ok_or_else(|| {
            ConfigError::new("header", &self.header, "is not a valid HTTP header name")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named() {
        let err = CallerDeadlineConfig::new()
            .header("a b")
            .max(Duration::ZERO)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("header") && err.contains("max"), "{err}");
        let err = PropagateDeadlineConfig::new()
            .header("")
            .margin(Duration::from_secs(3600))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("header") && err.contains("margin"), "{err}");
        let h = CallerDeadlineConfig::new().checked().unwrap();
        assert!(h.grpc);
        let h = CallerDeadlineConfig::new()
            .header("X-Deadline-Ms")
            .checked()
            .unwrap();
        assert!(!h.grpc);
        assert_eq!(h.name, "x-deadline-ms");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn loads_from_toml() {
        let c: CallerDeadlineConfig =
            toml::from_str("header = \"x-deadline-ms\"\nmax = \"30s\"").unwrap();
        assert_eq!(
            c,
            CallerDeadlineConfig::new()
                .header("x-deadline-ms")
                .max(Duration::from_secs(30))
        );
        let p: PropagateDeadlineConfig = toml::from_str("margin = \"5ms\"").unwrap();
        assert_eq!(p.margin, Duration::from_millis(5));
        assert!(toml::from_str::<PropagateDeadlineConfig>("nope = 1").is_err());
    }
}

//! The fallback layer's configuration: [`FallbackConfig`] (plain data,
//! serde), [`FallbackOn`] (when to fall back) and [`FallbackBuilder`].

use std::sync::Arc;

use seawall_core::config::Check;
use seawall_core::names::DEFAULT_NAME;
use seawall_core::{BoxError, Classify, ConfigError, Outcome, Rejection};

use crate::backup::{FnBackup, ServiceBackup};
use crate::clone::{ByClone, CloneFn};
use crate::layer::{FallbackLayer, Shared};

/// When a [`FallbackLayer`] falls back; a [`Classify`] over the inner
/// service's result (error already boxed).
///
/// | value | falls back on |
/// |-------|---------------|
/// | `Rejection` (default) | an `Err` holding a seawall rejection anywhere in its `source()` chain ([`Rejection::find`]): `CircuitOpen`, `Overloaded`, `BudgetExhausted`, `Elapsed` |
/// | `Failure` | any `Err` |
///
/// For anything else (an HTTP 503 in an `Ok`), give the builder your own
/// [`Classify`] with [`FallbackBuilder::classify`].
///
/// ```
/// use seawall_core::{BoxError, CircuitOpen, Classify, Outcome};
/// use seawall_fallback::FallbackOn;
///
/// let refused: Result<(), BoxError> = Err(CircuitOpen::new(None).into());
/// let broken: Result<(), BoxError> = Err("connection reset".into());
/// assert_eq!(FallbackOn::Rejection.classify(&refused), Outcome::Failure);
/// assert_eq!(FallbackOn::Rejection.classify(&broken), Outcome::Success);
/// assert_eq!(FallbackOn::Failure.classify(&broken), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum FallbackOn {
    /// Only when a seawall layer refused the call.
    #[default]
    Rejection,
    /// On any error.
    Failure,
}

impl<Res> Classify<Res, BoxError> for FallbackOn {
    #[inline]
    fn classify(&self, result: &Result<Res, BoxError>) -> Outcome {
        match (self, result) {
            (_, Ok(_)) => Outcome::Success,
            (FallbackOn::Failure, Err(_)) => Outcome::Failure,
            (FallbackOn::Rejection, Err(e)) => {
                if Rejection::find(&**e).is_some() {
                    Outcome::Failure
                } else {
                    Outcome::Success
                }
            }
        }
    }
}

/// Everything about a fallback layer that is data.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | `name` field of tracing events, `name` label of metrics |
/// | `on` | `rejection` | when to fall back; see [`FallbackOn`] |
///
/// `#[non_exhaustive]`: make one with [`FallbackConfig::new`] and its
/// setters (or `Default` and field assignment):
///
/// ```
/// use seawall_fallback::{FallbackConfig, FallbackOn};
///
/// let config = FallbackConfig::new().name("users-api").on(FallbackOn::Failure);
/// assert!(config.validate().is_ok());
/// assert!(FallbackConfig::new().name("").validate().is_err());
/// ```
///
/// With feature `serde` (every field optional):
///
/// ```toml
/// name = "users-api"
/// on = "failure"
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct FallbackConfig {
    /// The layer's name in events.
    pub name: String,
    /// When to fall back.
    pub on: FallbackOn,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            name: DEFAULT_NAME.to_owned(),
            on: FallbackOn::Rejection,
        }
    }
}

impl FallbackConfig {
    /// The defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the layer's name in events and metrics (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets when to fall back (default [`FallbackOn::Rejection`]).
    pub fn on(mut self, on: FallbackOn) -> Self {
        self.on = on;
        self
    }

    /// Checks every field; the error names each bad one (`name`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        if self.name.is_empty() {
            check.fail("name", "\"\"", "must not be empty");
        }
        check.finish()
    }
}

/// The backup of a [`FallbackBuilder`] before one is chosen; a builder with
/// it has no `build`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBackup;

/// Builds a [`FallbackLayer`]; from [`FallbackLayer::builder`].
///
/// Choose what answers with [`service`](Self::service) or
/// [`answer_with`](Self::answer_with) (only then is there a `build`); when,
/// with [`on`](Self::on) or [`classify`](Self::classify); how requests are
/// copied, with [`clone_with`](Self::clone_with).
///
/// ```
/// use seawall_fallback::{FallbackLayer, FallbackOn};
///
/// let err = FallbackLayer::builder()
///     .name("")
///     .answer_with(|_req: u32, _err: seawall_core::BoxError| Ok::<_, std::convert::Infallible>(0u32))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "name: \"\" must not be empty");
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct FallbackBuilder<B = NoBackup, C = FallbackOn, R = ByClone> {
    config: FallbackConfig,
    backup: B,
    classify: C,
    clone: R,
}

impl<B, C, R> std::fmt::Debug for FallbackBuilder<B, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FallbackBuilder {
    pub(crate) fn new(config: FallbackConfig) -> Self {
        FallbackBuilder {
            classify: config.on,
            config,
            backup: NoBackup,
            clone: ByClone,
        }
    }
}

impl<B, R> FallbackBuilder<B, FallbackOn, R> {
    /// When to fall back (default [`FallbackOn::Rejection`]).
    pub fn on(mut self, on: FallbackOn) -> Self {
        self.config.on = on;
        self.classify = on;
        self
    }
}

impl<B, C, R> FallbackBuilder<B, C, R> {
    /// Names the layer in events (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Falls back when `classify` calls the inner result (error boxed) a
    /// failure, instead of [`FallbackOn`]. An `Ok` classified as a failure
    /// is dropped and the backup gets a [`FailedResponse`](crate::FailedResponse) error.
    pub fn classify<C2>(self, classify: C2) -> FallbackBuilder<B, C2, R> {
        FallbackBuilder {
            config: self.config,
            backup: self.backup,
            classify,
            clone: self.clone,
        }
    }

    /// Copies requests with `f` instead of `Clone`; `None` means "cannot be
    /// copied": such a request's failure is returned unchanged.
    pub fn clone_with<Req, F>(self, f: F) -> FallbackBuilder<B, C, CloneFn<F>>
    where
        F: Fn(&Req) -> Option<Req>,
    {
        FallbackBuilder {
            config: self.config,
            backup: self.backup,
            classify: self.classify,
            clone: CloneFn::new(f),
        }
    }

    /// Answers with another service (cloned for each fallback, driven to
    /// readiness in the response future). It gets the copied request; the
    /// error is dropped.
    pub fn service<S>(self, service: S) -> FallbackBuilder<ServiceBackup<S>, C, R> {
        FallbackBuilder {
            config: self.config,
            backup: ServiceBackup::new(service),
            classify: self.classify,
            clone: self.clone,
        }
    }

    /// Answers with `f(request, error)`.
    pub fn answer_with<F>(self, f: F) -> FallbackBuilder<FnBackup<F>, C, R> {
        FallbackBuilder {
            config: self.config,
            backup: FnBackup::new(f),
            classify: self.classify,
            clone: self.clone,
        }
    }

    fn finish(self) -> Result<FallbackLayer<B, C, R>, ConfigError> {
        self.config.validate()?;
        Ok(FallbackLayer::from_shared(Arc::new(Shared::new(
            self.config,
            self.backup,
            self.classify,
            self.clone,
        ))))
    }
}

impl<S, C, R> FallbackBuilder<ServiceBackup<S>, C, R> {
    /// The layer; every bad field is reported.
    pub fn build(self) -> Result<FallbackLayer<ServiceBackup<S>, C, R>, ConfigError> {
        self.finish()
    }
}

impl<F, C, R> FallbackBuilder<FnBackup<F>, C, R> {
    /// The layer; every bad field is reported.
    pub fn build(self) -> Result<FallbackLayer<FnBackup<F>, C, R>, ConfigError> {
        self.finish()
    }
}

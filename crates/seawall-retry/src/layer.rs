//! [`RetryLayer`]: wraps services in [`Retry`], all sharing one state.

use std::fmt;
use std::sync::Arc;

use seawall_core::{ConfigError, ErrorsAsFailures, ReloadError};
use tower_layer::Layer;

use crate::budget::RetryBudget;
use crate::clone::ByClone;
use crate::config::{RetryBuilder, RetryConfig};
use crate::hint::NoHint;
use crate::policy::Policy;
use crate::service::Retry;
use crate::stats::RetryStats;

/// Retries failed calls with backoff, within a budget; see the
/// [crate docs](crate).
///
/// The layer owns the shared state (counters, retry budget), created once by
/// [`build`](RetryBuilder::build): every service it makes, and all their
/// clones, share it, so [`stats`](Self::stats) sees them all and the budget
/// bounds them together. Build separate layers for separate state.
///
/// ```
/// use std::time::Duration;
/// use seawall_retry::{Backoff, RetryLayer};
///
/// let layer = RetryLayer::builder()
///     .name("users-api")
///     .max_attempts(4)
///     .backoff(Backoff::exponential(Duration::from_millis(50), 2.0).jitter(0.2))
///     .deadline(Duration::from_secs(2))
///     .build()
///     .expect("valid config");
/// assert_eq!(layer.stats().requests, 0);
/// ```
pub struct RetryLayer<C = ErrorsAsFailures, K = ByClone, H = NoHint> {
    policy: Arc<Policy<C, K, H>>,
}

impl<C, K, H> Clone for RetryLayer<C, K, H> {
    fn clone(&self) -> Self {
        RetryLayer {
            policy: self.policy.clone(),
        }
    }
}

impl<C, K, H> fmt::Debug for RetryLayer<C, K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl RetryLayer {
    /// A builder with the documented defaults (see [`RetryConfig`]).
    pub fn builder() -> RetryBuilder {
        RetryBuilder::new(RetryConfig::default())
    }

    /// A layer from plain data, validated like [`RetryBuilder::build`].
    ///
    /// ```
    /// use seawall_retry::{RetryConfig, RetryLayer};
    ///
    /// let config = RetryConfig::new().max_attempts(5);
    /// let layer = RetryLayer::from_config(&config).unwrap();
    /// assert_eq!(layer.config().max_attempts, 5);
    /// ```
    pub fn from_config(config: &RetryConfig) -> Result<Self, ConfigError> {
        RetryBuilder::new(config.clone()).build()
    }
}

impl<C, K, H> RetryLayer<C, K, H> {
    pub(crate) fn from_parts(policy: Arc<Policy<C, K, H>>) -> Self {
        RetryLayer { policy }
    }

    /// A snapshot of the counters of every service this layer made.
    pub fn stats(&self) -> RetryStats {
        self.policy.stats()
    }

    /// The retry budget, if any (clone it to share it with another layer).
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.policy.budget.as_ref()
    }

    /// The configuration in force: the one the layer was built with, or
    /// the last [`reload`](Self::reload)'s.
    pub fn config(&self) -> RetryConfig {
        self.policy.config()
    }

    /// Applies `config` to the running layer: every service it has made and
    /// will make, and every clone, share its state, so all see the change.
    /// All of it or, on an error, none of it.
    ///
    /// - **From the next decision**: `max_attempts`, `honour_hints`, and the
    ///   retry budget's `ratio`, `min_per_sec` and `ttl` (see
    ///   [`RetryBudget::reload`]: its balance is kept). A request in
    ///   progress follows the new `max_attempts` at its next retry
    ///   decision: lowered, it stops a request that has made that many
    ///   attempts; raised, it lets a request retry more, if it kept a copy
    ///   of its request (one that started while `max_attempts` was 1 kept
    ///   none).
    /// - **From the next request**: `deadline` (a request measures it from
    ///   its first call) and `backoff` (a request's delays follow the
    ///   backoff in force at its first retry, so a request already backing
    ///   off keeps its schedule).
    /// - **Kept**: the counters ([`stats`](Self::stats)), the retry budget
    ///   and its balance, requests in flight and their tokens.
    /// - **Not in place** ([`ReloadError::NotInPlace`]): `name` (it labels
    ///   events and metric series) and `budget.enabled` (whether the layer
    ///   has a budget at all). The classifier, clone function, retry rule
    ///   and hint reader are code, not config: they stay.
    ///
    /// A layer built with [`shared_budget`](crate::RetryBuilder::shared_budget)
    /// reloads that budget, for every layer sharing it, when `budget`
    /// differs from the budget's settings. A config
    /// [`validate`](RetryConfig::validate) refuses is
    /// [`ReloadError::Invalid`]. A reload emits one `info` event (target
    /// `seawall_retry`) naming the layer and the fields that changed.
    ///
    /// ```
    /// use seawall_retry::{RetryConfig, RetryLayer};
    /// use seawall_core::ReloadError;
    ///
    /// let config = RetryConfig::new().name("users-api").max_attempts(3);
    /// let layer = RetryLayer::from_config(&config).unwrap();
    /// layer.reload(&config.clone().max_attempts(5)).unwrap();
    /// assert_eq!(layer.config().max_attempts, 5);
    ///
    /// let err = layer.reload(&config.clone().max_attempts(0)).unwrap_err();
    /// assert!(matches!(err, ReloadError::Invalid(_)));
    /// let err = layer.reload(&config.clone().name("other")).unwrap_err();
    /// assert_eq!(err.not_in_place_field(), Some("name"));
    /// assert_eq!(layer.config().max_attempts, 5);
    /// ```
    pub fn reload(&self, config: &RetryConfig) -> Result<(), ReloadError> {
        self.policy.reload(config)
    }
}

impl<S, C, K, H> Layer<S> for RetryLayer<C, K, H> {
    type Service = Retry<S, C, K, H>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.policy.clone())
    }
}

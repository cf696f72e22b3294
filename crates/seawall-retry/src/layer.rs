//! [`RetryLayer`]: wraps services in [`Retry`], all sharing one state.

use std::fmt;
use std::sync::Arc;

use seawall_core::{ConfigError, ErrorsAsFailures};
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
    config: Arc<RetryConfig>,
}

impl<C, K, H> Clone for RetryLayer<C, K, H> {
    fn clone(&self) -> Self {
        RetryLayer {
            policy: self.policy.clone(),
            config: self.config.clone(),
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
    pub(crate) fn from_parts(policy: Arc<Policy<C, K, H>>, config: RetryConfig) -> Self {
        RetryLayer {
            policy,
            config: Arc::new(config),
        }
    }

    /// A snapshot of the counters of every service this layer made.
    pub fn stats(&self) -> RetryStats {
        self.policy.stats()
    }

    /// The retry budget, if any (clone it to share it with another layer).
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.policy.budget.as_ref()
    }

    /// The configuration this layer was built with.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }
}

impl<S, C, K, H> Layer<S> for RetryLayer<C, K, H> {
    type Service = Retry<S, C, K, H>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.policy.clone())
    }
}

//! The retry layer's configuration: [`RetryConfig`] (plain data, serde) and
//! [`RetryBuilder`] (the same fields as methods, plus the parts that are
//! code: classifier, clone function, retry rule, a shared budget).

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use seawall_core::config::Check;
use seawall_core::names::DEFAULT_NAME;
use seawall_core::{Clock, ConfigError, ErrorsAsFailures};

use crate::backoff::Backoff;
use crate::budget::{RetryBudget, RetryBudgetConfig};
use crate::clone::{ByClone, CloneFn};
use crate::hint::NoHint;
use crate::layer::RetryLayer;
use crate::policy::{Parts, Policy, RetryIf};

/// The most calls per request ([`RetryConfig::max_attempts`]) a layer
/// accepts: 1000. More is a loop, not a retry policy (and without a budget
/// or deadline, `u32::MAX` attempts would hammer a dead backend for ever).
pub const MAX_ATTEMPTS: u32 = 1000;

/// Everything about a retry layer that is data.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `name` | `"default"` | `name` field of tracing events, `name` label of metrics |
/// | `max_attempts` | 3 | calls per request, the first included (1 disables retries), at most [`MAX_ATTEMPTS`] |
/// | `backoff` | exponential 100ms ×2, jitter 0.2, max 5s | see [`Backoff`] |
/// | `deadline` | none | overall time for all attempts; no retry whose delay would pass it; at most [`MAX_DURATION`](seawall_core::config::MAX_DURATION) (365 days) |
/// | `budget` | on, ratio 0.2, 10/s, ttl 10s | see [`RetryBudget`](crate::RetryBudget) |
/// | `honour_hints` | `true` | read what a failed attempt's peer said (`Retry-After`, `RateLimit`, a gRPC pushback) with the builder's [`hint`](RetryBuilder::hint) reader; `false` ignores it (seawall's own rejections' `retry_after` is still honoured) |
///
/// With feature `serde` (every field optional):
///
/// ```toml
/// name = "users-api"
/// max_attempts = 4
/// deadline = "2s"
/// backoff = { strategy = "fibonacci", base = "50ms", jitter = 0.1, max_delay = "1s" }
/// budget = { ratio = 0.1, min_per_sec = 5, ttl = "10s" }
/// honour_hints = true
/// ```
///
/// In code, with the setters (the struct is `#[non_exhaustive]`):
///
/// ```
/// use std::time::Duration;
/// use seawall_retry::{RetryBudgetConfig, RetryConfig};
///
/// let config = RetryConfig::new()
///     .name("users-api")
///     .max_attempts(4)
///     .deadline(Duration::from_secs(2))
///     .budget(RetryBudgetConfig::new().ratio(0.1).min_per_sec(5));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct RetryConfig {
    /// The layer's name in events and metrics.
    pub name: String,
    /// Calls per request, the first included.
    pub max_attempts: u32,
    /// The delays between attempts.
    pub backoff: Backoff,
    /// Overall time for all attempts, from the first call.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub deadline: Option<Duration>,
    /// The retry budget.
    pub budget: RetryBudgetConfig,
    /// Whether the layer reads peers' retry hints with its reader (see
    /// [`crate::hint`]). `false` waits only the backoff (and a
    /// `CircuitOpen`'s `retry_after`), and a peer cannot stop the retries
    /// with a "do not retry" hint.
    pub honour_hints: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            name: DEFAULT_NAME.to_owned(),
            max_attempts: 3,
            backoff: Backoff::default(),
            deadline: None,
            budget: RetryBudgetConfig::default(),
            honour_hints: true,
        }
    }
}

seawall_core::config_setters!(RetryConfig {
    max_attempts: u32,
    backoff: Backoff,
    deadline: Duration,
    budget: RetryBudgetConfig,
    honour_hints: bool,
});

impl RetryConfig {
    /// Sets `name` (default `"default"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Checks every field; the error names each bad one (`max_attempts`,
    /// `deadline`, `backoff.base`, `budget.ratio`, …).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        check.nonzero("max_attempts", self.max_attempts);
        if self.max_attempts > MAX_ATTEMPTS {
            check.fail("max_attempts", self.max_attempts, "must be at most 1000");
        }
        if let Some(deadline) = self.deadline {
            check.nonzero_duration("deadline", deadline);
        }
        check.nested("backoff", self.backoff.validate());
        if self.budget.enabled {
            check.nested("budget", self.budget.validate());
        }
        check.finish()
    }
}

/// Builds a [`RetryLayer`]; from [`RetryLayer::builder`].
///
/// Methods named after [`RetryConfig`]'s fields set them; [`classify`](Self::classify),
/// [`clone_with`](Self::clone_with), [`retry_if`](Self::retry_if) and
/// [`shared_budget`](Self::shared_budget) add what is code. [`build`](Self::build)
/// reports every bad field at once.
///
/// ```
/// use std::time::Duration;
/// use seawall_retry::{Backoff, RetryLayer};
///
/// let err = RetryLayer::builder()
///     .max_attempts(0)
///     .backoff(Backoff::exponential(Duration::from_millis(10), 0.5))
///     .deadline(Duration::ZERO)
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "max_attempts: 0 must be greater than zero; deadline: 0s must be longer than zero; \
///      backoff.multiplier: 0.5 is not in 1..=100"
/// );
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct RetryBuilder<C = ErrorsAsFailures, K = ByClone, H = NoHint> {
    config: RetryConfig,
    shared_budget: Option<RetryBudget>,
    classify: C,
    clone: K,
    retry_if: Option<RetryIf>,
    hint: H,
    clock: Clock,
}

impl<C, K, H> std::fmt::Debug for RetryBuilder<C, K, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("config", &self.config)
            .field("shared_budget", &self.shared_budget)
            .field("retry_if", &self.retry_if.is_some())
            .finish_non_exhaustive()
    }
}

impl RetryBuilder {
    pub(crate) fn new(config: RetryConfig) -> Self {
        RetryBuilder {
            config,
            shared_budget: None,
            classify: ErrorsAsFailures,
            clone: ByClone,
            retry_if: None,
            hint: NoHint,
            clock: Clock::default(),
        }
    }
}

impl<C, K, H> RetryBuilder<C, K, H> {
    /// Names the layer in events and metrics (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Calls per request, the first included (default 3; must be ≥ 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// The delays between attempts (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// Overall time for all attempts from the first call (default none): no
    /// retry is made whose delay would end past it. The attempts themselves
    /// are not cut short: put a timeout inside the retry layer for that.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config.deadline = Some(deadline);
        self
    }

    /// The retry budget's settings (default on: ratio 0.2, 10/s, ttl 10s).
    pub fn budget(mut self, budget: RetryBudgetConfig) -> Self {
        self.config.budget = budget;
        self
    }

    /// No retry budget: only `max_attempts` and `deadline` limit retries.
    pub fn no_budget(mut self) -> Self {
        self.config.budget.enabled = false;
        self
    }

    /// Uses `budget`, shared with whoever else holds a clone of it (other
    /// layers calling the same backend), instead of building one.
    pub fn shared_budget(mut self, budget: RetryBudget) -> Self {
        self.shared_budget = Some(budget);
        self
    }

    /// What counts as a failed attempt (default [`ErrorsAsFailures`]). A
    /// response classified [`Failure`](seawall_core::Outcome::Failure) (an
    /// HTTP 503, say) is retried like an error; if retrying stops, that last
    /// response is returned as `Ok`. An error classified as a success or
    /// ignored is returned at once, unchanged.
    pub fn classify<C2>(self, classify: C2) -> RetryBuilder<C2, K, H> {
        RetryBuilder {
            config: self.config,
            shared_budget: self.shared_budget,
            classify,
            clone: self.clone,
            retry_if: self.retry_if,
            hint: self.hint,
            clock: self.clock,
        }
    }

    /// Copies requests with `f` instead of `Clone`, so requests need not be
    /// `Clone`. When `f` returns `None` the request is sent once and not
    /// retried. See [`crate::clone`].
    pub fn clone_with<Req, F>(self, f: F) -> RetryBuilder<C, CloneFn<F>, H>
    where
        F: Fn(&Req) -> Option<Req>,
    {
        RetryBuilder {
            config: self.config,
            shared_budget: self.shared_budget,
            classify: self.classify,
            clone: CloneFn::new(f),
            retry_if: self.retry_if,
            hint: self.hint,
            clock: self.clock,
        }
    }

    /// Replaces the default rule for which failed errors are retried
    /// ([`is_retryable`](crate::is_retryable)). The rule sees the error
    /// (walk it with [`Rejection::find`](seawall_core::Rejection::find)).
    /// A `CircuitOpen` your rule accepts is still retried only after its
    /// `retry_after`, and only if that fits.
    ///
    /// ```
    /// use seawall_retry::{is_retryable, RetryLayer};
    ///
    /// // The default rule, but never retry a "permission denied".
    /// let layer = RetryLayer::builder()
    ///     .retry_if(|e| {
    ///         is_retryable(e)
    ///             && !e.downcast_ref::<std::io::Error>()
    ///                 .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// ```
    pub fn retry_if<F>(mut self, rule: F) -> Self
    where
        F: Fn(&(dyn Error + 'static)) -> bool + Send + Sync + 'static,
    {
        self.retry_if = Some(Arc::new(rule));
        self
    }

    /// Reads retry hints from failed attempts with `reader` (default
    /// [`NoHint`]): [`HttpHint`](crate::hint::HttpHint) (feature `http`),
    /// [`GrpcHint`](crate::hint::GrpcHint) (feature `tonic`), a closure
    /// through [`hint_fn`](crate::hint::hint_fn), or your own
    /// [`RetryHint`](crate::hint::RetryHint). The next attempt waits at
    /// least the hint; a hint that does not fit the deadline (without one,
    /// the backoff's `max_delay`) gives up at once. See [`crate::hint`].
    /// Seawall's own rejections are honoured whatever the reader.
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// use std::time::Duration;
    /// use seawall_core::classify::HttpStatus;
    /// use seawall_retry::hint::HttpHint;
    /// use seawall_retry::RetryLayer;
    ///
    /// // Retry 429 and 5xx responses, waiting what `Retry-After` asks,
    /// // within 30 seconds in all.
    /// let layer = RetryLayer::builder()
    ///     .classify(HttpStatus::new())
    ///     .hint(HttpHint::new())
    ///     .deadline(Duration::from_secs(30))
    ///     .build()
    ///     .unwrap();
    /// # drop(layer);
    /// # }
    /// ```
    pub fn hint<H2>(self, reader: H2) -> RetryBuilder<C, K, H2> {
        RetryBuilder {
            config: self.config,
            shared_budget: self.shared_budget,
            classify: self.classify,
            clone: self.clone,
            retry_if: self.retry_if,
            hint: reader,
            clock: self.clock,
        }
    }

    /// Whether the layer reads hints with its [`hint`](Self::hint) reader
    /// (default `true`; the config's `honour_hints`). `false` leaves the
    /// reader unread: the backoff alone decides (a `CircuitOpen`'s
    /// `retry_after` is still honoured).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use seawall_core::BoxError;
    /// use seawall_retry::hint::{hint_fn, Hint};
    /// use seawall_retry::{Backoff, RetryLayer};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// let layer = RetryLayer::builder()
    ///     .max_attempts(2)
    ///     .backoff(Backoff::constant(Duration::from_millis(10)))
    ///     .hint(hint_fn(|_: &Result<(), BoxError>| Hint::DoNotRetry))
    ///     .honour_hints(false)
    ///     .build()
    ///     .unwrap();
    /// let svc = layer.layer(service_fn(|()| async { Err::<(), BoxError>("busy".into()) }));
    /// assert!(svc.oneshot(()).await.is_err());
    /// assert_eq!(layer.stats().retries, 1, "the hint was not read");
    /// # }
    /// ```
    pub fn honour_hints(mut self, honour: bool) -> Self {
        self.config.honour_hints = honour;
        self
    }

    /// Where the layer reads the time: the overall
    /// [`deadline`](Self::deadline) is measured on it, and the retry budget
    /// the builder makes reads it (a [`shared_budget`](Self::shared_budget)
    /// keeps its own, see [`RetryBudget::clock`]). Default [`Clock::tokio`],
    /// which follows `tokio::time::pause`.
    ///
    /// The backoff's sleep is always a tokio timer. On tokio's clock it
    /// ends exactly `delay` after the reading that decided it. On another
    /// clock it is a tokio sleep of `delay` from then: a TSC clock
    /// ([`Clock::tsc`](seawall_core::Clock), feature `quanta` of
    /// `seawall-core`) agrees with it to within the two sources' drift; a
    /// [`Clock::manual`] one does not see the sleep pass, so the deadline
    /// and the budget count only the time a test moves the clock by hand
    /// (advance tokio's paused time as well to wake the sleep). With no
    /// deadline and a zero delay, no clock is read but the budget's.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall_core::Clock;
    /// use seawall_retry::RetryLayer;
    ///
    /// let (clock, hand) = Clock::manual();
    /// let layer = RetryLayer::builder().clock(clock).build()?;
    /// let budget = layer.budget().expect("on by default");
    /// // The default budget reads the layer's clock: 10 retries a second
    /// // over a 10s window, whatever the traffic.
    /// assert_eq!(budget.balance(), 100.0);
    /// (0..100).for_each(|_| assert!(budget.try_withdraw()));
    /// assert!(!budget.try_withdraw());
    /// hand.advance(Duration::from_secs(11));
    /// assert_eq!(budget.balance(), 100.0, "the withdrawals expired");
    /// # Ok::<(), seawall_core::ConfigError>(())
    /// ```
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// Validates the configuration and builds the layer, with its shared
    /// state (counters, budget).
    pub fn build(self) -> Result<RetryLayer<C, K, H>, ConfigError> {
        let mut config = self.config;
        if self.shared_budget.is_some() {
            config.budget.enabled = true;
        }
        let shared = self.shared_budget.is_some();
        let mut checked = config.clone();
        // A shared budget was validated when it was made.
        checked.budget.enabled = config.budget.enabled && !shared;
        checked.validate()?;
        let budget = match self.shared_budget {
            Some(b) => Some(b),
            None if config.budget.enabled => {
                Some(RetryBudget::from_config(&config.budget)?.clock(self.clock.clone()))
            }
            None => None,
        };
        if let Some(b) = &budget {
            config.budget = b.config().enabled(true);
        }
        let policy = Policy::new(Parts {
            config,
            budget,
            classify: self.classify,
            clone: self.clone,
            retry_if: self.retry_if,
            hint: self.hint,
            clock: self.clock,
        });
        Ok(RetryLayer::from_parts(Arc::new(policy)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use seawall_core::BoxError;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::hint::{Hint, hint_fn};

    /// A layer whose reader says `hint` for every failure, over a service
    /// that always fails; returns (retries, hinted, do_not_retry) after one
    /// request, and the time it took.
    async fn run(hint: Hint, honour: Option<bool>) -> (u64, u64, u64, Duration) {
        let builder = RetryLayer::builder()
            .max_attempts(2)
            .backoff(Backoff::constant(Duration::from_millis(10)))
            .deadline(Duration::from_secs(5))
            .hint(hint_fn(move |_: &Result<(), BoxError>| hint));
        let builder = match honour {
            Some(h) => builder.honour_hints(h),
            None => builder,
        };
        let layer = builder.build().unwrap();
        let start = tokio::time::Instant::now();
        let svc = layer.layer(service_fn(|()| async {
            Err::<(), BoxError>("busy".into())
        }));
        assert!(svc.oneshot(()).await.is_err());
        let stats = layer.stats();
        (
            stats.retries,
            stats.hinted,
            stats.gave_up_do_not_retry,
            start.elapsed(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn hints_are_honoured_by_default_and_can_be_turned_off() {
        let ms = Duration::from_millis;
        let wait = Hint::After(ms(300));
        assert!(RetryConfig::default().honour_hints);
        assert_eq!(run(wait, None).await, (1, 1, 0, ms(300)));
        assert_eq!(run(wait, Some(true)).await, (1, 1, 0, ms(300)));
        assert_eq!(run(wait, Some(false)).await, (1, 0, 0, ms(10)));
        assert_eq!(run(Hint::DoNotRetry, None).await, (0, 0, 1, ms(0)));
        assert_eq!(run(Hint::DoNotRetry, Some(false)).await, (1, 0, 0, ms(10)));
        // The built layer reports the setting it was built with.
        let layer = RetryLayer::builder().honour_hints(false).build().unwrap();
        assert!(!layer.config().honour_hints);
        let config = RetryConfig::new().honour_hints(false);
        assert!(
            !RetryLayer::from_config(&config)
                .unwrap()
                .config()
                .honour_hints
        );
    }
}

//! [`BreakerLayer`]: one shared [`CircuitBreaker`] around every service it makes.

use seawall_core::{ConfigError, ErrorsAsFailures, ReloadError};
use tower_layer::Layer;

use crate::config::{BreakerBuilder, BreakerConfig};
use crate::service::Breaker;
use crate::state::{BreakerStats, CircuitBreaker, State};

/// Wraps services in a [`Breaker`]. Built once, by
/// [`BreakerLayer::builder`] or [`BreakerLayer::from_config`]; the layer owns
/// one [`CircuitBreaker`] and every service it makes, and all their clones,
/// share it: `layer.stats()` sees every call and `layer.force_open()` stops
/// them all. For separate breakers, build separate layers.
///
/// ```
/// use seawall_breaker::BreakerLayer;
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = BreakerLayer::builder().build().unwrap();
/// let mut svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }));
/// assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 2);
///
/// layer.force_open();
/// let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
/// assert!(seawall_core::Rejection::find(&*err).is_some());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BreakerLayer<C = ErrorsAsFailures> {
    breaker: CircuitBreaker,
    classify: C,
}

impl BreakerLayer {
    /// A builder with the documented defaults (see [`BreakerConfig`]).
    pub fn builder() -> BreakerBuilder {
        BreakerBuilder::default()
    }

    /// A layer from a plain-data config.
    pub fn from_config(config: &BreakerConfig) -> Result<Self, ConfigError> {
        BreakerBuilder::from_config(config.clone()).build()
    }

    /// The defaults: trip on 5 consecutive failures, open 30s, 3 probes, 2
    /// successes to close.
    pub fn standard() -> Self {
        BreakerLayer {
            breaker: CircuitBreaker::builder()
                .build_breaker()
                .unwrap_or_else(|_| unreachable!("the defaults are valid (tested)")),
            classify: ErrorsAsFailures,
        }
    }
}

impl<C> BreakerLayer<C> {
    pub(crate) fn from_parts(breaker: CircuitBreaker, classify: C) -> Self {
        BreakerLayer { breaker, classify }
    }

    /// Sets what counts as a failure (default [`ErrorsAsFailures`]); the
    /// breaker is kept.
    pub fn classify<C2>(self, classify: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The shared breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The config the layer runs with: the one it was built from, or the
    /// last one [`reload`](Self::reload) applied.
    pub fn config(&self) -> BreakerConfig {
        self.breaker.config()
    }

    /// Applies a new config to the shared breaker, keeping its state: every
    /// service this layer made (and their clones) sees it from its next
    /// call. All or nothing; what changes in place, what is kept and what
    /// cannot change (`name`, the policy's kind, its window's shape) are
    /// listed on [`CircuitBreaker::reload`].
    ///
    /// ```
    /// use seawall_breaker::{BreakerLayer, TripPolicy};
    /// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = BreakerLayer::builder().build().unwrap();
    /// let mut svc = ServiceBuilder::new()
    ///     .layer(layer.clone())
    ///     .service(service_fn(|_: ()| async { Err::<(), _>("down") }));
    /// // Trip on the first failure from now on, in the service built before.
    /// let config = layer.config().policy(TripPolicy::consecutive_failures(1));
    /// layer.reload(&config).unwrap();
    /// let _ = svc.ready().await.unwrap().call(()).await;
    /// assert_eq!(layer.stats().trips, 1);
    /// # }
    /// ```
    pub fn reload(&self, config: &BreakerConfig) -> Result<(), ReloadError> {
        self.breaker.reload(config)
    }

    /// The shared breaker's state.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// The shared breaker's stats.
    pub fn stats(&self) -> BreakerStats {
        self.breaker.stats()
    }

    /// Forces every service of this layer open; see [`CircuitBreaker::force_open`].
    pub fn force_open(&self) {
        self.breaker.force_open();
    }

    /// Forces every service of this layer closed; see [`CircuitBreaker::force_closed`].
    pub fn force_closed(&self) {
        self.breaker.force_closed();
    }

    /// Resets the shared breaker to a fresh `Closed`.
    pub fn reset(&self) {
        self.breaker.reset();
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = Breaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Breaker::new(inner, self.breaker.clone(), self.classify.clone())
    }
}

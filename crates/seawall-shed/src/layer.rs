//! [`ShedLayer`]: builds [`Shed`] services that share one state.

use std::sync::Arc;

use seawall_core::{Clock, ConfigError, ErrorsAsFailures, ReloadError};
use tower_layer::Layer;

use crate::config::{ShedBuilder, ShedConfig};
use crate::pressure::PressureSignal;
use crate::priority::NoPriority;
use crate::service::Shed;
use crate::state::{Shared, Shedder};
use crate::stats::ShedStats;

/// A tower layer that sheds load; see the [crate docs](crate).
///
/// The layer owns the shedder's state, created once by `build()`: every
/// service it makes, and all their clones, share one in-flight count, one
/// limit and one set of counters, so [`stats`](ShedLayer::stats) sees them
/// all. To get separate limits, build separate layers.
///
/// ```
/// use seawall_shed::ShedLayer;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), seawall_core::BoxError> {
/// let layer = ShedLayer::builder().max_in_flight(32).build()?;
/// let svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x + 1) }));
/// assert_eq!(svc.oneshot(1).await?, 2);
/// assert_eq!(layer.stats().admitted, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ShedLayer<P = NoPriority, C = ErrorsAsFailures> {
    shared: Arc<Shared>,
    priority: P,
    classify: C,
}

impl ShedLayer {
    /// A builder with every default (a fixed limit of 100, no band, no
    /// priorities, no queue).
    pub fn builder() -> ShedBuilder {
        ShedBuilder::new()
    }

    /// A layer from a config (for example one loaded from a file). With
    /// `memory_pressure` set, call it inside a tokio runtime (the sampler
    /// is a task).
    pub fn from_config(config: &ShedConfig) -> Result<Self, ConfigError> {
        ShedLayer::with_parts(config, NoPriority, ErrorsAsFailures, None, Clock::default())
    }

    /// A fixed limit of `max_in_flight`, rejecting at once beyond it: what
    /// tower's `LoadShed<ConcurrencyLimit>` does, in one layer.
    pub fn fixed(max_in_flight: usize) -> Result<Self, ConfigError> {
        ShedLayer::builder().max_in_flight(max_in_flight).build()
    }
}

impl<P, C> ShedLayer<P, C> {
    pub(crate) fn with_parts(
        config: &ShedConfig,
        priority: P,
        classify: C,
        signal: Option<Arc<dyn PressureSignal>>,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let (pressure, memory) = crate::config::pressure_from(config, signal)?;
        Ok(ShedLayer {
            shared: Arc::new(Shared::new(config, pressure, clock).with_memory(memory)),
            priority,
            classify,
        })
    }

    /// The config the layer runs with: the one it was built from, or the
    /// last one [`reload`](Self::reload) applied.
    pub fn config(&self) -> ShedConfig {
        self.shared.config()
    }

    /// Applies a new config to the shared shedder, keeping its state: every
    /// service this layer made (and their clones) sees it from its next
    /// call; calls in flight are never cancelled. All or nothing; what
    /// changes in place, what is kept and what cannot change are listed on
    /// [`Shedder::reload`].
    ///
    /// ```
    /// use seawall_shed::{Limit, ShedLayer};
    /// use tower::{service_fn, Layer, Service, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let layer = ShedLayer::fixed(100).unwrap();
    /// let mut svc = layer.layer(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
    /// layer.reload(&layer.config().limit(Limit::Fixed(500)).soft_limit(400)).unwrap();
    /// assert_eq!(layer.stats().limit, 500);
    /// assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), 7);
    /// # }
    /// ```
    pub fn reload(&self, config: &ShedConfig) -> Result<(), ReloadError> {
        self.shared.reload(config)
    }

    /// A snapshot of the shared counters.
    pub fn stats(&self) -> ShedStats {
        self.shared.stats()
    }

    /// The tower-free shedder this layer's services use.
    pub fn shedder(&self) -> Shedder {
        Shedder {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S, P: Clone, C: Clone> Layer<S> for ShedLayer<P, C> {
    type Service = Shed<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed::new(
            inner,
            Arc::clone(&self.shared),
            self.priority.clone(),
            self.classify.clone(),
        )
    }
}

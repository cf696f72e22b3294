//! [`FallbackLayer`]: wraps services in [`Fallback`], all sharing one state.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use seawall_core::event::{Event, EventKind, Throttle};
use seawall_core::{Clock, ConfigError};
use tower_layer::Layer;

use crate::clone::ByClone;
use crate::config::{FallbackBuilder, FallbackConfig, FallbackOn};
use crate::service::Fallback;

/// What a layer and all its services share: the backup, the rule, the
/// counters (and, with feature `metrics`, their metric handles, made once).
pub(crate) struct Shared<B, C, R> {
    pub(crate) config: FallbackConfig,
    pub(crate) backup: B,
    pub(crate) classify: C,
    pub(crate) clone: R,
    fallbacks: AtomicU64,
    not_cloneable: AtomicU64,
    backup_failures: AtomicU64,
    // Folds fallbacks into at most one event a second.
    events: Throttle,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

#[cfg(feature = "metrics")]
struct Metrics {
    used: metrics::Counter,
    failed: metrics::Counter,
    not_copied: metrics::Counter,
}

impl<B, C, R> Shared<B, C, R> {
    pub(crate) fn new(config: FallbackConfig, backup: B, classify: C, clone: R) -> Self {
        #[cfg(feature = "metrics")]
        let metrics = {
            use seawall_core::names::{
                FALLBACK_FAILED_TOTAL, FALLBACK_NOT_COPIED_TOTAL, FALLBACK_USED_TOTAL, LABEL_NAME,
            };
            let name = config.name.clone();
            Metrics {
                used: metrics::counter!(FALLBACK_USED_TOTAL, LABEL_NAME => name.clone()),
                failed: metrics::counter!(FALLBACK_FAILED_TOTAL, LABEL_NAME => name.clone()),
                not_copied: metrics::counter!(FALLBACK_NOT_COPIED_TOTAL, LABEL_NAME => name),
            }
        };
        Shared {
            config,
            backup,
            classify,
            clone,
            fallbacks: AtomicU64::new(0),
            not_cloneable: AtomicU64::new(0),
            backup_failures: AtomicU64::new(0),
            events: Throttle::new(Clock::tokio()),
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    /// A failed call goes to the backup.
    pub(crate) fn note_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.used.increment(1);
        let name = self.config.name.as_str();
        self.events
            .note(|n| Event::new(name, EventKind::fallback_used(n)));
    }

    /// A failed call could not fall back: its request was not copied.
    pub(crate) fn note_not_copied(&self) {
        self.not_cloneable.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.not_copied.increment(1);
    }

    /// The backup failed too.
    pub(crate) fn note_backup_failed(&self) {
        self.backup_failures.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.failed.increment(1);
    }
}

/// A snapshot of a fallback layer's counters since it was built; see
/// [`FallbackLayer::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackStats {
    /// Calls answered by the backup (whatever the backup answered).
    pub fallbacks: u64,
    /// Failed calls that would have fallen back but whose request could not
    /// be copied: their original error was returned.
    pub not_cloneable: u64,
    /// Fallbacks whose backup failed too (its error was returned).
    pub backup_failures: u64,
}

/// Answers from a backup — another service or a closure — when the inner
/// service fails; see the [crate docs](crate).
///
/// The layer owns the backup, the rule and the counters: every service it
/// makes, and all their clones, share them (build separate layers for
/// separate counters).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use seawall_core::{BoxError, CircuitOpen};
/// use seawall_fallback::FallbackLayer;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let layer = FallbackLayer::builder()
///     .answer_with(|req: String, err: BoxError| {
///         Ok::<_, BoxError>(format!("cached answer for {req} ({err})"))
///     })
///     .build()
///     .unwrap();
/// let svc = ServiceBuilder::new().layer(layer.clone()).service(service_fn(|_: String| async {
///     Err::<String, BoxError>(CircuitOpen::new(None).with_key("db-1").into())
/// }));
/// let answer = svc.oneshot("user 7".to_owned()).await.unwrap();
/// assert!(answer.starts_with("cached answer for user 7"));
/// assert_eq!(layer.stats().fallbacks, 1);
/// # }
/// ```
pub struct FallbackLayer<B, C = FallbackOn, R = ByClone> {
    shared: Arc<Shared<B, C, R>>,
}

impl<B, C, R> Clone for FallbackLayer<B, C, R> {
    fn clone(&self) -> Self {
        FallbackLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<B, C, R> fmt::Debug for FallbackLayer<B, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl FallbackLayer<crate::config::NoBackup> {
    /// A builder with the documented defaults (see [`FallbackConfig`]).
    pub fn builder() -> FallbackBuilder {
        FallbackBuilder::new(FallbackConfig::default())
    }
}

impl<B> FallbackLayer<B> {
    /// A layer from plain data and a backup (any [`Backup`](crate::Backup)),
    /// validated like the builder.
    ///
    /// ```
    /// use seawall_fallback::{FallbackConfig, FallbackLayer, FallbackOn, FnBackup};
    ///
    /// let config = FallbackConfig::new().on(FallbackOn::Failure);
    /// let backup = FnBackup::new(|_req: u32, _err: seawall_core::BoxError| Ok::<_, std::convert::Infallible>(0u32));
    /// let layer = FallbackLayer::from_config(&config, backup).unwrap();
    /// assert_eq!(layer.config().on, FallbackOn::Failure);
    /// ```
    pub fn from_config(config: &FallbackConfig, backup: B) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(FallbackLayer::from_shared(Arc::new(Shared::new(
            config.clone(),
            backup,
            config.on,
            ByClone,
        ))))
    }
}

impl<B, C, R> FallbackLayer<B, C, R> {
    pub(crate) fn from_shared(shared: Arc<Shared<B, C, R>>) -> Self {
        FallbackLayer { shared }
    }

    /// A snapshot of the counters of every service this layer made.
    pub fn stats(&self) -> FallbackStats {
        FallbackStats {
            fallbacks: self.shared.fallbacks.load(Ordering::Relaxed),
            not_cloneable: self.shared.not_cloneable.load(Ordering::Relaxed),
            backup_failures: self.shared.backup_failures.load(Ordering::Relaxed),
        }
    }

    /// The configuration this layer was built with.
    pub fn config(&self) -> &FallbackConfig {
        &self.shared.config
    }

    /// The backup.
    pub fn backup(&self) -> &B {
        &self.shared.backup
    }
}

impl<S, B, C, R> Layer<S> for FallbackLayer<B, C, R> {
    type Service = Fallback<S, B, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback::new(inner, self.shared.clone())
    }
}

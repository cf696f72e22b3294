//! [`ServiceBuilderExt`]: seawall's layers as `ServiceBuilder` methods.
//!
//! ```
//! use std::time::Duration;
//! use seawall::prelude::*;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BoxError> {
//! let svc = ServiceBuilder::new()
//!     .retries(RetryLayer::builder().max_attempts(2).build()?)
//!     .breaker(BreakerLayer::builder().name("db").build()?)
//!     .adaptive_timeout(AdaptiveTimeoutLayer::builder().max(Duration::from_secs(2)).build()?)
//!     .budget(BudgetLayer::builder().rate(500).build()?)
//!     .concurrency_limit(64) // tower's own layers mix in as usual
//!     .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n * 2) }));
//! assert_eq!(svc.oneshot(21).await?, 42);
//! # Ok(()) }
//! ```

use tower::ServiceBuilder;
#[cfg(any(
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry"
))]
use tower_layer::Stack;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// Adds seawall's layers to [`tower::ServiceBuilder`] as named methods, so a
/// stack reads like tower's own `.timeout(..)` and `.concurrency_limit(..)`.
///
/// Each method takes a layer you have built (every seawall layer is built by
/// `XLayer::builder()…build()` or `XLayer::from_config(..)`, which validate
/// the settings) and adds it like [`ServiceBuilder::layer`]: the first layer
/// added is the outermost, the one a request meets first.
///
/// | method | takes | needs feature |
/// |--------|-------|---------------|
/// | [`budget`](Self::budget) | [`BudgetLayer`](crate::budget::BudgetLayer), [`KeyedBudgetLayer`](crate::budget::KeyedBudgetLayer) | `budget` |
/// | [`breaker`](Self::breaker) | [`BreakerLayer`](crate::breaker::BreakerLayer), [`KeyedBreakerLayer`](crate::breaker::KeyedBreakerLayer) | `breaker` |
/// | [`shed`](Self::shed) | [`ShedLayer`](crate::shed::ShedLayer) | `shed` |
/// | [`adaptive_timeout`](Self::adaptive_timeout) | [`AdaptiveTimeoutLayer`](crate::timeout::AdaptiveTimeoutLayer), [`KeyedAdaptiveTimeoutLayer`](crate::timeout::KeyedAdaptiveTimeoutLayer) | `timeout` |
/// | [`retries`](Self::retries) | [`RetryLayer`](crate::retry::RetryLayer) | `retry` |
///
/// # Why `retries`, not `retry`
///
/// `ServiceBuilder` has *inherent* methods `retry(policy)`, `timeout(duration)`,
/// `load_shed()`, `rate_limit(..)` and `concurrency_limit(..)`, each compiled
/// in when the tower feature of that name is on. Cargo unifies features across
/// the whole dependency graph, so any crate in a program can switch them on,
/// and Rust always picks an inherent method over a trait method of the same
/// name: a trait method called `retry` would stop compiling (it would resolve
/// to tower's `retry(policy)`) the day some dependency enables tower's
/// `retry` feature. So the seawall methods take names tower does not use:
/// [`retries`](Self::retries) for seawall's retry layer, `adaptive_timeout`
/// beside tower's `timeout`, `shed` beside tower's `load_shed`.
///
/// This trait is sealed: it is implemented for `ServiceBuilder` only.
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Adds a rate budget: [`BudgetLayer`](crate::budget::BudgetLayer)
    /// or [`KeyedBudgetLayer`](crate::budget::KeyedBudgetLayer).
    ///
    /// ```
    /// use seawall::prelude::*;
    /// use tower::{ServiceBuilder, service_fn};
    ///
    /// let layer = BudgetLayer::builder().rate(100).build().unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .budget(layer.clone())
    ///     .service(service_fn(|()| async { Ok::<_, BoxError>(()) }));
    /// # drop(svc);
    /// assert_eq!(layer.stats().iterations, 0);
    /// ```
    #[cfg(feature = "budget")]
    #[cfg_attr(docsrs, doc(cfg(feature = "budget")))]
    fn budget<T: IsBudget>(self, layer: T) -> ServiceBuilder<Stack<T, L>>;

    /// Adds a circuit breaker: [`BreakerLayer`](crate::breaker::BreakerLayer)
    /// or the per-peer [`KeyedBreakerLayer`](crate::breaker::KeyedBreakerLayer).
    ///
    /// ```
    /// use seawall::prelude::*;
    /// use tower::{ServiceBuilder, service_fn};
    ///
    /// let breakers = KeyedBreakerLayer::new(|peer: &u16| *peer, &Default::default()).unwrap();
    /// let svc = ServiceBuilder::new()
    ///     .breaker(breakers.clone())
    ///     .service(service_fn(|peer: u16| async move { Ok::<_, BoxError>(peer) }));
    /// # drop(svc);
    /// assert!(breakers.is_empty());
    /// ```
    #[cfg(feature = "breaker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
    fn breaker<T: IsBreaker>(self, layer: T) -> ServiceBuilder<Stack<T, L>>;

    /// Adds a load shedder: [`ShedLayer`](crate::shed::ShedLayer).
    ///
    /// ```
    /// use seawall::prelude::*;
    /// use tower::{ServiceBuilder, service_fn};
    ///
    /// let svc = ServiceBuilder::new()
    ///     .shed(ShedLayer::fixed(100).unwrap())
    ///     .service(service_fn(|()| async { Ok::<_, BoxError>(()) }));
    /// # drop(svc);
    /// ```
    #[cfg(feature = "shed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "shed")))]
    fn shed<T: IsShed>(self, layer: T) -> ServiceBuilder<Stack<T, L>>;

    /// Adds an adaptive timeout:
    /// [`AdaptiveTimeoutLayer`](crate::timeout::AdaptiveTimeoutLayer) or the
    /// per-peer [`KeyedAdaptiveTimeoutLayer`](crate::timeout::KeyedAdaptiveTimeoutLayer).
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall::prelude::*;
    /// use tower::{ServiceBuilder, service_fn};
    ///
    /// let svc = ServiceBuilder::new()
    ///     .adaptive_timeout(AdaptiveTimeoutLayer::fixed(Duration::from_millis(250)))
    ///     .service(service_fn(|()| async { Ok::<_, BoxError>(()) }));
    /// # drop(svc);
    /// ```
    #[cfg(feature = "timeout")]
    #[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
    fn adaptive_timeout<T: IsAdaptiveTimeout>(self, layer: T) -> ServiceBuilder<Stack<T, L>>;

    /// Adds seawall's retry layer: [`RetryLayer`](crate::retry::RetryLayer).
    /// Named `retries` so that it never collides with tower's inherent
    /// `ServiceBuilder::retry(policy)` (see the [trait docs](Self)).
    ///
    /// ```
    /// use seawall::prelude::*;
    /// use tower::{ServiceBuilder, service_fn};
    ///
    /// let svc = ServiceBuilder::new()
    ///     .retries(RetryLayer::builder().max_attempts(3).build().unwrap())
    ///     .service(service_fn(|()| async { Ok::<_, BoxError>(()) }));
    /// # drop(svc);
    /// ```
    #[cfg(feature = "retry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    fn retries<T: IsRetry>(self, layer: T) -> ServiceBuilder<Stack<T, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "budget")]
    fn budget<T: IsBudget>(self, layer: T) -> ServiceBuilder<Stack<T, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "breaker")]
    fn breaker<T: IsBreaker>(self, layer: T) -> ServiceBuilder<Stack<T, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "shed")]
    fn shed<T: IsShed>(self, layer: T) -> ServiceBuilder<Stack<T, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "timeout")]
    fn adaptive_timeout<T: IsAdaptiveTimeout>(self, layer: T) -> ServiceBuilder<Stack<T, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "retry")]
    fn retries<T: IsRetry>(self, layer: T) -> ServiceBuilder<Stack<T, L>> {
        self.layer(layer)
    }
}

#[cfg(any(
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry"
))]
mod kinds {
    pub trait Sealed {}
}

/// The budget layers, accepted by [`ServiceBuilderExt::budget`]. Sealed.
#[cfg(feature = "budget")]
#[cfg_attr(docsrs, doc(cfg(feature = "budget")))]
pub trait IsBudget: kinds::Sealed {}
#[cfg(feature = "budget")]
impl kinds::Sealed for seawall_budget::BudgetLayer {}
#[cfg(feature = "budget")]
impl IsBudget for seawall_budget::BudgetLayer {}
#[cfg(feature = "budget")]
impl<F, K> kinds::Sealed for seawall_budget::KeyedBudgetLayer<F, K> {}
#[cfg(feature = "budget")]
impl<F, K> IsBudget for seawall_budget::KeyedBudgetLayer<F, K> {}

/// The breaker layers, accepted by [`ServiceBuilderExt::breaker`]. Sealed.
#[cfg(feature = "breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
pub trait IsBreaker: kinds::Sealed {}
#[cfg(feature = "breaker")]
impl<C> kinds::Sealed for seawall_breaker::BreakerLayer<C> {}
#[cfg(feature = "breaker")]
impl<C> IsBreaker for seawall_breaker::BreakerLayer<C> {}
#[cfg(feature = "breaker")]
impl<KF, K, C> kinds::Sealed for seawall_breaker::KeyedBreakerLayer<KF, K, C> {}
#[cfg(feature = "breaker")]
impl<KF, K, C> IsBreaker for seawall_breaker::KeyedBreakerLayer<KF, K, C> {}

/// The shedding layers, accepted by [`ServiceBuilderExt::shed`]. Sealed.
#[cfg(feature = "shed")]
#[cfg_attr(docsrs, doc(cfg(feature = "shed")))]
pub trait IsShed: kinds::Sealed {}
#[cfg(feature = "shed")]
impl<P, C> kinds::Sealed for seawall_shed::ShedLayer<P, C> {}
#[cfg(feature = "shed")]
impl<P, C> IsShed for seawall_shed::ShedLayer<P, C> {}

/// The adaptive timeout layers, accepted by
/// [`ServiceBuilderExt::adaptive_timeout`]. Sealed.
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub trait IsAdaptiveTimeout: kinds::Sealed {}
#[cfg(feature = "timeout")]
impl kinds::Sealed for seawall_timeout::AdaptiveTimeoutLayer {}
#[cfg(feature = "timeout")]
impl IsAdaptiveTimeout for seawall_timeout::AdaptiveTimeoutLayer {}
#[cfg(feature = "timeout")]
impl<F, K> kinds::Sealed for seawall_timeout::KeyedAdaptiveTimeoutLayer<F, K> {}
#[cfg(feature = "timeout")]
impl<F, K> IsAdaptiveTimeout for seawall_timeout::KeyedAdaptiveTimeoutLayer<F, K> {}

/// The retry layers, accepted by [`ServiceBuilderExt::retries`]. Sealed.
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub trait IsRetry: kinds::Sealed {}
#[cfg(feature = "retry")]
impl<C, K> kinds::Sealed for seawall_retry::RetryLayer<C, K> {}
#[cfg(feature = "retry")]
impl<C, K> IsRetry for seawall_retry::RetryLayer<C, K> {}

#[cfg(all(
    test,
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry"
))]
mod tests {
    use std::future::{Ready, ready};
    use std::time::Duration;

    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::ServiceBuilderExt;
    use crate::BoxError;
    use crate::budget::BudgetLayer;
    use crate::retry::RetryLayer;

    /// A tower retry policy, to show tower's inherent `ServiceBuilder::retry`
    /// is compiled in (the facade's dev-dependencies turn on tower's `retry`
    /// feature) and that the extension's methods still resolve beside it.
    #[derive(Clone)]
    struct Never;

    impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for Never {
        type Future = Ready<()>;

        fn retry(&mut self, _: &mut Req, _: &mut Result<Res, E>) -> Option<Self::Future> {
            None
        }

        fn clone_request(&mut self, req: &Req) -> Option<Req> {
            Some(req.clone())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ext_methods_live_beside_towers_inherent_ones() {
        let retry = RetryLayer::builder()
            .max_attempts(3)
            .backoff(crate::retry::Backoff::constant(Duration::from_millis(1)))
            .no_budget()
            .build()
            .unwrap();
        let budget = BudgetLayer::builder().rate(100).burst(10).build().unwrap();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = calls.clone();
        let svc = ServiceBuilder::new()
            .retry(Never) // tower's inherent method, feature `retry`
            .retries(retry.clone()) // seawall's
            .timeout(Duration::from_secs(1)) // tower's
            .adaptive_timeout(crate::timeout::AdaptiveTimeoutLayer::fixed(
                Duration::from_secs(1),
            ))
            .breaker(crate::breaker::BreakerLayer::builder().build().unwrap())
            .shed(crate::shed::ShedLayer::fixed(8).unwrap())
            .concurrency_limit(8) // tower's
            .budget(budget.clone())
            .service(service_fn(move |n: u32| {
                let k = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // The first attempt fails, the retry succeeds.
                ready(if k == 0 {
                    Err::<u32, BoxError>("flaky".into())
                } else {
                    Ok(n)
                })
            }));
        assert_eq!(svc.oneshot(7).await.unwrap(), 7);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(retry.stats().retries, 1);
        assert_eq!(budget.stats().iterations, 2);
    }
}

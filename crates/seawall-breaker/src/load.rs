//! A breaker's health as `tower::load::Load`, so tower's `Balance` (power of
//! two choices) prefers healthy peers without new balancing code.

use tower::load::Load;

use crate::service::Breaker;

/// The load of a guarded service is its breaker's ill health,
/// `1 - health` in `0..=1` (see [`CircuitBreaker::health`](crate::CircuitBreaker::health)):
/// 0 for a closed breaker with no recent failure, up to 0.5 as it nears its
/// trip threshold, 0.75 half-open, 1 open. Lower is better, so tower's
/// `Balance`, comparing two random ready peers, sends the call to the
/// healthier one; an open peer is only chosen when both picks are open, and
/// its breaker then refuses the call at once.
///
/// Guard each peer with [`KeyedBreakerLayer::guard`](crate::KeyedBreakerLayer::guard)
/// so all share one map (and its stats):
///
/// ```
/// use seawall_breaker::{BreakerConfig, KeyedBreakerLayer};
/// use tower::balance::p2c::Balance;
/// use tower::discover::ServiceList;
/// use tower::load::Load;
/// use tower::{service_fn, Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = KeyedBreakerLayer::new(|p: &u32| *p, &BreakerConfig::default().into()).unwrap();
/// let peers: Vec<_> = (0..3u32)
///     .map(|id| layer.guard(id, service_fn(move |_: u32| async move { Ok::<_, &str>(id) })))
///     .collect();
/// assert_eq!(peers[0].load(), 0.0);
/// layer.force_open(0); // peer 0 is never the healthier of two
/// assert_eq!(peers[0].load(), 1.0);
/// let mut balance = Balance::new(ServiceList::new(peers));
/// for _ in 0..20 {
///     assert_ne!(balance.ready().await.unwrap().call(0).await.unwrap(), 0);
/// }
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "balance")))]
impl<S, C> Load for Breaker<S, C> {
    type Metric = f64;

    fn load(&self) -> f64 {
        1.0 - self.breaker().health()
    }
}

// PENDING-MERGE: stand-ins for the layers' reload methods; deleted at merge.
#![allow(dead_code, missing_docs)]
use seawall_core::ReloadError;
pub(crate) trait PendingReload<T> {
    fn reload(&self, c: &T) -> Result<(), ReloadError> {
        let _ = c;
        Err(ReloadError::not_in_place("x", "pending"))
    }
}
impl<C> PendingReload<seawall_breaker::BreakerConfig> for seawall_breaker::BreakerLayer<C> {}
impl<A, B, C> PendingReload<seawall_breaker::KeyedBreakerConfig>
    for seawall_breaker::KeyedBreakerLayer<A, B, C>
{
}
impl<A, B> PendingReload<seawall_shed::ShedConfig> for seawall_shed::ShedLayer<A, B> {}
impl PendingReload<seawall_budget::BudgetConfig> for seawall_budget::BudgetLayer {}
impl<A, B> PendingReload<seawall_budget::KeyedBudgetConfig>
    for seawall_budget::KeyedBudgetLayer<A, B>
{
}
impl PendingReload<seawall_timeout::AdaptiveTimeoutConfig>
    for seawall_timeout::AdaptiveTimeoutLayer
{
}
impl<A, B> PendingReload<seawall_timeout::KeyedAdaptiveTimeoutConfig>
    for seawall_timeout::KeyedAdaptiveTimeoutLayer<A, B>
{
}
impl<A, B, C> PendingReload<seawall_retry::RetryConfig> for seawall_retry::RetryLayer<A, B, C> {}

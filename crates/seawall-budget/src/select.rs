//! [`SelectBudgetLayer`]: several budgets, one chosen per request by its key.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::config::Check;
use seawall_core::key::KeyHasher;
use seawall_core::names::TARGET_BUDGET;
use seawall_core::{BoxError, BudgetExhausted, Clock, ConfigError, KeyFn, KeyLabel};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{BudgetConfig, BudgetMode};
use crate::future::ResponseFuture;
use crate::loop_budget::{BudgetStats, LoopBudget};

/// The most budgets one [`SelectBudgetLayer`] holds.
pub const MAX_SELECT_BUDGETS: usize = 1024;

/// Several rate budgets, one chosen for each request by its key: a quota
/// per route (`/search` 10/s, `/orders` 100/s), per method, per plan.
///
/// Unlike [`KeyedBudgetLayer`](crate::KeyedBudgetLayer), which gives every
/// key that comes along a budget of its own (all alike), the budgets here
/// are the ones you list, each with its own config; a key that is not
/// listed spends the [`default`](SelectBudgetBuilder::default_budget)
/// budget, or passes unbudgeted when there is none. So the requests choose
/// nothing: the set of budgets is fixed when the layer is built, and a
/// made-up key lands in the default.
///
/// - Several keys may share one budget ([`budget_for`](SelectBudgetBuilder::budget_for)):
///   "`GET` and `HEAD` of `/search`, together".
/// - Each budget refuses as a [`BudgetLayer`](crate::BudgetLayer) in
///   `Reject` mode does: a [`BudgetExhausted`] whose key is the request's,
///   the inner service not called. `Wait` mode is refused at build time
///   (`poll_ready` does not see the request, so cannot know which budget to
///   wait on).
/// - Per call: the key, one hash lookup in a table that never changes (no
///   lock), one compare-exchange; no allocation.
///
/// ```
/// use std::time::Duration;
///
/// use seawall_budget::{BudgetConfig, SelectBudgetLayer};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let per_minute = |n| BudgetConfig::new().rate(n).per(Duration::from_secs(60)).burst(n);
/// let layer = SelectBudgetLayer::builder(|path: &&'static str| *path)
///     .budget("/search", &per_minute(1))
///     .budget("/orders", &per_minute(100))
///     .default_budget(&per_minute(1000))
///     .build()
///     .expect("valid config");
/// let svc = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|path: &'static str| async move { Ok::<_, std::convert::Infallible>(path) }));
///
/// assert!(svc.clone().oneshot("/search").await.is_ok());
/// assert!(svc.clone().oneshot("/search").await.is_err(), "one a minute");
/// assert!(svc.clone().oneshot("/orders").await.is_ok(), "a budget of its own");
/// assert!(svc.clone().oneshot("/anything").await.is_ok(), "the default");
/// assert_eq!(layer.budget(&"/search").unwrap().stats().exhausted, 1);
/// # }
/// ```
pub struct SelectBudgetLayer<F, K> {
    key_fn: F,
    table: Arc<Table<K>>,
}

struct Table<K> {
    budgets: HashMap<K, LoopBudget, KeyHasher>,
    default: Option<LoopBudget>,
}

impl<F: Clone, K> Clone for SelectBudgetLayer<F, K> {
    fn clone(&self) -> Self {
        SelectBudgetLayer {
            key_fn: self.key_fn.clone(),
            table: Arc::clone(&self.table),
        }
    }
}

impl<F, K: fmt::Display> fmt::Debug for SelectBudgetLayer<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectBudgetLayer")
            .field("budgets", &self.table.budgets.len())
            .field("default", &self.table.default.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, K> SelectBudgetLayer<F, K>
where
    K: Hash + Eq,
{
    /// A builder choosing budgets by the key `key_fn` takes from each
    /// request.
    pub fn builder(key_fn: F) -> SelectBudgetBuilder<F, K> {
        SelectBudgetBuilder {
            key_fn,
            entries: Vec::new(),
            default: None,
            clock: None,
        }
    }

    /// The budget `key` spends (the default one when `key` is not listed).
    ///
    /// The layer keeps no config of its own: to change a budget's rate or
    /// burst on the running layer, [`reload`](LoopBudget::reload) it here
    /// (its tokens are kept, as that method says); the set of keys and
    /// budgets is fixed when the layer is built.
    ///
    /// ```
    /// use seawall_budget::{BudgetConfig, SelectBudgetLayer};
    ///
    /// let layer = SelectBudgetLayer::builder(|tier: &&'static str| *tier)
    ///     .budget("free", &BudgetConfig::new().rate(10))
    ///     .build()
    ///     .unwrap();
    /// let free = layer.budget(&"free").unwrap();
    /// free.reload(&free.config().rate(20)).unwrap();
    /// assert_eq!(layer.budget(&"free").unwrap().config().rate, 20);
    /// ```
    pub fn budget(&self, key: &K) -> Option<&LoopBudget> {
        self.table.budgets.get(key).or(self.table.default.as_ref())
    }

    /// The default budget, if any.
    pub fn default_budget(&self) -> Option<&LoopBudget> {
        self.table.default.as_ref()
    }

    /// Each listed key with its budget's counters (keys that share a
    /// budget show the same counters), in no particular order.
    pub fn stats(&self) -> Vec<(&K, BudgetStats)> {
        self.table
            .budgets
            .iter()
            .map(|(k, b)| (k, b.stats()))
            .collect()
    }
}

impl<S, F: Clone, K> Layer<S> for SelectBudgetLayer<F, K> {
    type Service = SelectBudget<S, F, K>;

    fn layer(&self, inner: S) -> Self::Service {
        SelectBudget {
            inner,
            key_fn: self.key_fn.clone(),
            table: Arc::clone(&self.table),
        }
    }
}

/// Builds a [`SelectBudgetLayer`].
pub struct SelectBudgetBuilder<F, K> {
    key_fn: F,
    entries: Vec<(Vec<K>, BudgetConfig)>,
    default: Option<BudgetConfig>,
    clock: Option<Clock>,
}

impl<F, K: fmt::Display> fmt::Debug for SelectBudgetBuilder<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectBudgetBuilder")
            .field("budgets", &self.entries.len())
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl<F, K> SelectBudgetBuilder<F, K>
where
    K: Hash + Eq,
{
    /// A budget of its own for `key`. A key listed twice keeps the later
    /// budget.
    pub fn budget(self, key: K, config: &BudgetConfig) -> Self {
        self.budget_for([key], config)
    }

    /// One budget that every key of `keys` spends from.
    pub fn budget_for(mut self, keys: impl IntoIterator<Item = K>, config: &BudgetConfig) -> Self {
        self.entries
            .push((keys.into_iter().collect(), config.clone()));
        self
    }

    /// The budget of every key that is not listed. Without one, such
    /// requests pass unbudgeted.
    pub fn default_budget(mut self, config: &BudgetConfig) -> Self {
        self.default = Some(config.clone());
        self
    }

    /// The clock every budget reads (default: tokio's).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates every budget and builds the layer. Errors name the budget
    /// by position (`budgets[2].rate`, `default.per`); there may be at most
    /// [`MAX_SELECT_BUDGETS`] budgets, and none may be in `Wait` mode.
    pub fn build(self) -> Result<SelectBudgetLayer<F, K>, ConfigError> {
        let mut check = Check::new();
        if self.entries.len() > MAX_SELECT_BUDGETS {
            check.fail(
                "budgets",
                self.entries.len(),
                format!("at most {MAX_SELECT_BUDGETS} budgets"),
            );
        }
        let clock = self.clock.unwrap_or_default();
        let made = |path: &str, config: &BudgetConfig, check: &mut Check| {
            let valid = check.nested(path, config.validate()).is_some();
            if config.mode != BudgetMode::Reject {
                check.fail(
                    format!("{path}.mode"),
                    "wait",
                    "must be reject: poll_ready does not see the request, so cannot wait on its budget",
                );
            }
            valid.then(|| {
                LoopBudget::from_valid_advertised(
                    config.loop_config(),
                    clock.clone(),
                    config.advertise,
                )
            })
        };
        let mut budgets = HashMap::with_hasher(KeyHasher::default());
        for (i, (keys, config)) in self.entries.into_iter().enumerate() {
            if let Some(budget) = made(&format!("budgets[{i}]"), &config, &mut check) {
                for key in keys {
                    budgets.insert(key, budget.clone());
                }
            }
        }
        let default = match &self.default {
            Some(config) => made("default", config, &mut check),
            None => None,
        };
        check.finish()?;
        Ok(SelectBudgetLayer {
            key_fn: self.key_fn,
            table: Arc::new(Table { budgets, default }),
        })
    }
}

/// The service a [`SelectBudgetLayer`] makes.
pub struct SelectBudget<S, F, K> {
    inner: S,
    key_fn: F,
    table: Arc<Table<K>>,
}

impl<S: Clone, F: Clone, K> Clone for SelectBudget<S, F, K> {
    fn clone(&self) -> Self {
        SelectBudget {
            inner: self.inner.clone(),
            key_fn: self.key_fn.clone(),
            table: Arc::clone(&self.table),
        }
    }
}

impl<S: fmt::Debug, F, K> fmt::Debug for SelectBudget<S, F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectBudget")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, K, Req> Service<Req> for SelectBudget<S, F, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: KeyFn<Req, Key = K>,
    K: Hash + Eq + fmt::Display,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = self.key_fn.key(&req);
        let table = &*self.table;
        let Some(budget) = table.budgets.get(&key).or(table.default.as_ref()) else {
            return ResponseFuture::called(self.inner.call(req));
        };
        match budget.take_for_call() {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(wait) => ResponseFuture::rejected(rejection(budget, &key, wait)),
        }
    }
}

#[cold]
#[inline(never)]
fn rejection<K: fmt::Display>(budget: &LoopBudget, key: &K, wait: u64) -> BudgetExhausted {
    let retry_after = Duration::from_nanos(wait);
    let label = KeyLabel::display(key);
    tracing::trace!(
        target: TARGET_BUDGET,
        name = %budget.name(),
        key = %label,
        ?retry_after,
        "selected budget spent; call rejected"
    );
    BudgetExhausted::new(retry_after).with_key(label)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use seawall_core::{Rejection, RejectionKind};
    use tower::{ServiceExt, service_fn};

    use super::*;

    fn per_minute(n: u32) -> BudgetConfig {
        BudgetConfig::new()
            .rate(n)
            .per(Duration::from_secs(60))
            .burst(n)
    }

    fn echo()
    -> impl Service<&'static str, Response = &'static str, Error = Infallible, Future: Send> + Clone
    {
        service_fn(|s: &'static str| async move { Ok::<_, Infallible>(s) })
    }

    #[tokio::test(start_paused = true)]
    async fn shared_keys_spend_one_budget_and_unlisted_keys_pass_without_a_default() {
        let layer = SelectBudgetLayer::builder(|s: &&'static str| *s)
            .budget_for(["GET /a", "HEAD /a"], &per_minute(2))
            .build()
            .unwrap();
        let svc = layer.layer(echo());
        assert!(svc.clone().oneshot("GET /a").await.is_ok());
        assert!(svc.clone().oneshot("HEAD /a").await.is_ok());
        let err = svc.clone().oneshot("GET /a").await.unwrap_err();
        let rejection = Rejection::find(&*err).unwrap();
        assert_eq!(rejection.kind(), RejectionKind::BudgetExhausted);
        assert_eq!(rejection.key(), Some("GET /a"));
        assert_eq!(rejection.retry_after(), Some(Duration::from_secs(30)));
        for _ in 0..100 {
            assert!(svc.clone().oneshot("POST /b").await.is_ok(), "no default");
        }
        let stats = layer.stats();
        assert_eq!(stats.len(), 2);
        assert!(stats.iter().all(|(_, s)| s.exhausted == 1));
        assert!(layer.default_budget().is_none());
        assert!(layer.budget(&"POST /b").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn made_up_keys_all_spend_the_default() {
        let layer = SelectBudgetLayer::builder(|s: &String| s.clone())
            .budget("/listed".to_owned(), &per_minute(100))
            .default_budget(&per_minute(3))
            .build()
            .unwrap();
        let svc = layer.layer(service_fn(
            |s: String| async move { Ok::<_, Infallible>(s) },
        ));
        let mut admitted = 0;
        for i in 0..10 {
            if svc.clone().oneshot(format!("/fresh/{i}")).await.is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(
            admitted, 3,
            "fresh keys share the default, not a budget each"
        );
        assert!(svc.clone().oneshot("/listed".to_owned()).await.is_ok());
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(svc.clone().oneshot("/fresh/again".to_owned()).await.is_ok());
    }

    #[test]
    fn bad_configs_name_the_budget() {
        let err = SelectBudgetLayer::builder(|s: &&'static str| *s)
            .budget("a", &per_minute(1))
            .budget("b", &BudgetConfig::new().rate(0))
            .default_budget(&per_minute(1).mode(BudgetMode::Wait))
            .build()
            .unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field().to_owned()).collect();
        assert_eq!(fields, ["budgets[1].rate", "default.mode"], "{err}");

        let mut builder = SelectBudgetLayer::builder(|s: &u32| *s);
        for i in 0..=MAX_SELECT_BUDGETS as u32 {
            builder = builder.budget(i, &per_minute(1));
        }
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), "budgets");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_does_not_call_the_inner_service_and_dropping_leaks_nothing() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = {
            let calls = calls.clone();
            service_fn(move |s: &'static str| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move { Ok::<_, Infallible>(s) }
            })
        };
        let layer = SelectBudgetLayer::builder(|s: &&'static str| *s)
            .default_budget(&per_minute(1))
            .build()
            .unwrap();
        let mut svc = layer.layer(counted);
        // Called and dropped before it is polled: the token is spent (the
        // call reached the service), as with `BudgetLayer`.
        drop(svc.ready().await.unwrap().call("x"));
        assert!(svc.ready().await.unwrap().call("y").await.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}

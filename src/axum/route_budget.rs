//! A quota per route (and method): several budgets, one layer.

use http::{Method, Request};

use super::route::{ByRoute, MAX_ROUTE_LEN, RouteKey, route};
use crate::budget::{BudgetConfig, SelectBudgetBuilder, SelectBudgetLayer};
use crate::core::key::{ByMethod, MethodKey, Pair};
use crate::core::{Clock, ConfigError, KeyFn};

/// Every method, for a budget that covers a route whatever the method.
const METHODS: [MethodKey; 10] = [
    MethodKey::Get,
    MethodKey::Head,
    MethodKey::Post,
    MethodKey::Put,
    MethodKey::Delete,
    MethodKey::Connect,
    MethodKey::Options,
    MethodKey::Trace,
    MethodKey::Patch,
    MethodKey::Other,
];

/// The key a [`RouteBudgetLayer`] chooses a budget by: the request's method
/// and matched route (`GET /users/{id}`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ByMethodAndRoute;

impl<B> KeyFn<Request<B>> for ByMethodAndRoute {
    type Key = Pair<MethodKey, RouteKey>;

    fn key(&self, req: &Request<B>) -> Self::Key {
        Pair(ByMethod.key(req), ByRoute.key(req))
    }
}

/// A budget per route: the layer [`RouteBudgets`] builds. See
/// [`SelectBudgetLayer`] for what it does per call, and `stats()`.
pub type RouteBudgetLayer = SelectBudgetLayer<ByMethodAndRoute, Pair<MethodKey, RouteKey>>;

/// Builds a [`RouteBudgetLayer`]: one rate budget per route you list (all
/// of a route's methods together, or one method), and a default budget for
/// every route you do not list.
///
/// Its budgets face the server's clients, so they advertise their quota
/// (`BudgetConfig::advertise`) to a [`RateLimitHeadersLayer`](super::RateLimitHeadersLayer)
/// above them, whatever their config says.
///
/// The route is axum's matched pattern (see [`ByRoute`]): add the layer
/// with `Router::route_layer` (or `Router::layer`), where axum has already
/// matched it; a request that matched no route spends the default budget.
/// A route's budget is shared by every client: for a budget per client per
/// route, key a [`KeyedBudgetLayer`](crate::budget::KeyedBudgetLayer) by
/// `Pair(ClientIp::new(), ByRoute)`; the two compose.
///
/// ```
/// use std::time::Duration;
///
/// use axum::{Router, error_handling::HandleErrorLayer, http::Method, routing::{get, post}};
/// use seawall::axum::RouteBudgets;
/// use seawall::budget::BudgetConfig;
/// use tower::ServiceBuilder;
///
/// let per_second = |n| BudgetConfig::new().rate(n).per(Duration::from_secs(1));
/// let budgets = RouteBudgets::new()
///     .route("/search", &per_second(10).name("search"))
///     .route_method(Method::POST, "/orders", &per_second(50).name("orders-write"))
///     .default_budget(&per_second(1000).name("api"))
///     .build()
///     .expect("valid config");
/// let app: Router = Router::new()
///     .route("/search", get(|| async { "results" }))
///     .route("/orders", post(|| async { "ordered" }).get(|| async { "orders" }))
///     .route_layer(
///         ServiceBuilder::new()
///             .layer(HandleErrorLayer::new(seawall::axum::handle_error))
///             .layer(budgets),
///     );
/// ```
#[derive(Debug)]
pub struct RouteBudgets {
    routes: Vec<(String, Option<Method>, BudgetConfig)>,
    default: Option<BudgetConfig>,
    clock: Option<Clock>,
}

impl Default for RouteBudgets {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteBudgets {
    /// No budgets yet.
    pub fn new() -> Self {
        RouteBudgets {
            routes: Vec::new(),
            default: None,
            clock: None,
        }
    }

    /// A budget for `path` (the route's pattern, as given to
    /// `Router::route`: `/users/{id}`), whatever the method.
    pub fn route(mut self, path: impl Into<String>, config: &BudgetConfig) -> Self {
        self.routes.push((path.into(), None, config.clone()));
        self
    }

    /// A budget for `method` on `path`. It takes precedence over a budget
    /// for the whole route, whatever the order they are given in. A method
    /// that is not one of the nine standard ones stands for every extension
    /// method (they share one key).
    pub fn route_method(
        mut self,
        method: Method,
        path: impl Into<String>,
        config: &BudgetConfig,
    ) -> Self {
        self.routes
            .push((path.into(), Some(method), config.clone()));
        self
    }

    /// The budget of every route not listed (and of requests that matched
    /// no route). Without one, they pass unbudgeted.
    pub fn default_budget(mut self, config: &BudgetConfig) -> Self {
        self.default = Some(config.clone());
        self
    }

    /// The clock every budget reads (default: tokio's).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates every budget and route and builds the layer. Errors name
    /// the route by position: `routes[1].path`, `routes[0].budget.rate`,
    /// `default.per`.
    pub fn build(self) -> Result<RouteBudgetLayer, ConfigError> {
        let mut errors: Option<ConfigError> = None;
        let mut fail = |e: ConfigError| {
            errors = Some(match errors.take() {
                Some(all) => all.merge(e),
                None => e,
            });
        };
        let mut builder: SelectBudgetBuilder<ByMethodAndRoute, _> =
            SelectBudgetLayer::builder(ByMethodAndRoute);
        // Whole routes first, so that a method's own budget, inserted
        // later, replaces the whole route's for that method.
        let mut ordered: Vec<_> = self.routes.iter().enumerate().collect();
        ordered.sort_by_key(|(_, (_, method, _))| method.is_some());
        let mut positions = Vec::new();
        for (i, (path, method, config)) in ordered {
            let Some(route) = route_key(path)
                .map_err(|e| fail(e.prefixed(&format!("routes[{i}]"))))
                .ok()
            else {
                continue;
            };
            // Route budgets face the server's clients: they advertise.
            let config = &config.clone().advertise(true);
            builder = match method {
                None => builder.budget_for(METHODS.map(|m| Pair(m, route)), config),
                Some(method) => builder.budget(Pair(MethodKey::from(method), route), config),
            };
            positions.push(i);
        }
        if let Some(default) = &self.default {
            builder = builder.default_budget(&default.clone().advertise(true));
        }
        if let Some(clock) = self.clock {
            builder = builder.clock(clock);
        }
        match builder.build() {
            Ok(layer) => match errors {
                None => Ok(layer),
                Some(e) => Err(e),
            },
            Err(e) => {
                // `budgets[n]` is the n-th route in the order built: name it
                // as the caller wrote it.
                let renamed = e.errors().iter().fold(None::<ConfigError>, |all, err| {
                    let field = rename(err.field(), &positions);
                    let one = ConfigError::new(field, err.value(), err.reason().to_owned());
                    Some(match all {
                        Some(all) => all.merge(one),
                        None => one,
                    })
                });
                let renamed = renamed.unwrap_or(e);
                Err(match errors {
                    Some(errors) => errors.merge(renamed),
                    None => renamed,
                })
            }
        }
    }
}

/// `budgets[n].x` → `routes[positions[n]].budget.x`.
fn rename(field: &str, positions: &[usize]) -> String {
    let Some(rest) = field.strip_prefix("budgets[") else {
        return field.to_owned();
    };
    let Some((n, tail)) = rest.split_once(']') else {
        return field.to_owned();
    };
    match n.parse::<usize>().ok().and_then(|n| positions.get(n)) {
        Some(i) => format!("routes[{i}].budget{tail}"),
        None => field.to_owned(),
    }
}

/// The key of a route pattern given in code or config.
fn route_key(path: &str) -> Result<RouteKey, ConfigError> {
    if !path.starts_with('/') {
        return Err(ConfigError::new(
            "path",
            path,
            "must be a route pattern as given to Router::route, starting with `/`",
        ));
    }
    if path.len() > MAX_ROUTE_LEN {
        return Err(ConfigError::new(
            "path",
            path,
            format!("at most {MAX_ROUTE_LEN} bytes"),
        ));
    }
    match route(path) {
        RouteKey::Route(_) => Ok(route(path)),
        _ => Err(ConfigError::new(
            "path",
            path,
            "too many distinct routes in this process (see seawall::axum::MAX_ROUTES)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn per_second(n: u32) -> BudgetConfig {
        BudgetConfig::new().rate(n).per(Duration::from_secs(1))
    }

    #[test]
    fn errors_name_the_route_as_written() {
        let err = RouteBudgets::new()
            .route("/ok", &per_second(1))
            .route("no-slash", &per_second(1))
            .route_method(Method::POST, "/bad", &per_second(0))
            .default_budget(&per_second(1).per(Duration::ZERO))
            .build()
            .unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field().to_owned()).collect();
        assert_eq!(
            fields,
            ["routes[1].path", "routes[2].budget.rate", "default.per"],
            "{err}"
        );
    }

    #[test]
    fn a_method_budget_wins_over_its_route_in_any_order() {
        let layer = RouteBudgets::new()
            .route_method(
                Method::POST,
                "/test/rb/orders",
                &per_second(5).name("write"),
            )
            .route("/test/rb/orders", &per_second(100).name("read"))
            .build()
            .unwrap();
        let route = route("/test/rb/orders");
        let name = |m| {
            layer
                .budget(&Pair(m, route))
                .map(|b| b.config().name.clone())
        };
        assert_eq!(name(MethodKey::Post).as_deref(), Some("write"));
        assert_eq!(name(MethodKey::Get).as_deref(), Some("read"));
        assert_eq!(name(MethodKey::Other).as_deref(), Some("read"));
        assert!(
            layer
                .budget(&Pair(MethodKey::Get, RouteKey::Unmatched))
                .is_none()
        );
        let get = layer.budget(&Pair(MethodKey::Get, route)).unwrap();
        let head = layer.budget(&Pair(MethodKey::Head, route)).unwrap();
        assert!(get.same_budget(head), "one budget for the route's methods");
    }

    #[test]
    fn renames_only_what_it_understands() {
        assert_eq!(rename("budgets[1].rate", &[3, 0]), "routes[0].budget.rate");
        assert_eq!(rename("budgets[9].rate", &[3]), "budgets[9].rate");
        assert_eq!(rename("default.per", &[3]), "default.per");
        assert_eq!(rename("budgets[x", &[3]), "budgets[x");
    }
}

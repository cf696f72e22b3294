//! The route a request matched, as a key.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::sync::{LazyLock, Mutex, PoisonError};

use ::axum::extract::MatchedPath;
use http::Request;

use crate::core::KeyFn;

/// The most distinct routes [`ByRoute`] names in one process; the rest share
/// [`RouteKey::Other`].
pub const MAX_ROUTES: usize = 1024;

/// The longest route [`ByRoute`] names; a longer one is [`RouteKey::Other`].
pub const MAX_ROUTE_LEN: usize = 512;

/// Keys requests by the route axum matched, the pattern (`/users/{id}`), not
/// the path the client sent (`/users/7`): so a client cannot make a new key
/// by making up a path.
///
/// axum records the matched route (`MatchedPath`) when it routes a request,
/// so `ByRoute` sees it in layers added with `Router::layer` or
/// `Router::route_layer`, and in a router nested in another. A layer
/// wrapped around the whole router runs before routing: there every request
/// is [`RouteKey::Unmatched`] (as are requests that matched no route and
/// reached the fallback).
///
/// **Free per call**: a route's name is kept once per process, with the
/// names of every other route the application has (at most [`MAX_ROUTES`],
/// each at most [`MAX_ROUTE_LEN`] bytes; beyond that, routes share
/// [`RouteKey::Other`]). A key is a copy of a reference to that name: no
/// allocation, no reference count, and a lookup in a per-thread table after
/// a thread's first request to a route.
///
/// Per client per route, with [`Pair`](crate::core::key::Pair):
///
/// ```
/// use std::time::Duration;
///
/// use axum::{Router, error_handling::HandleErrorLayer, routing::get};
/// use seawall::axum::ByRoute;
/// use seawall::budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
/// use seawall::core::key::{ClientIp, Pair};
/// use tower::ServiceBuilder;
///
/// let per_client_per_route = Pair(ClientIp::new(), ByRoute);
/// let config = KeyedBudgetConfig::from(BudgetConfig::new().rate(10).per(Duration::from_secs(1)));
/// let budget = KeyedBudgetLayer::new::<axum::extract::Request>(per_client_per_route, &config)
///     .expect("valid config");
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "user" }))
///     .route_layer(
///         ServiceBuilder::new()
///             .layer(HandleErrorLayer::new(seawall::axum::handle_error))
///             .layer(budget),
///     );
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByRoute;

impl<B> KeyFn<Request<B>> for ByRoute {
    type Key = RouteKey;

    fn key(&self, req: &Request<B>) -> RouteKey {
        match req.extensions().get::<MatchedPath>() {
            Some(path) => route(path.as_str()),
            None => RouteKey::Unmatched,
        }
    }
}

/// The key [`ByRoute`] gives: `Display` is the route, `unmatched` or
/// `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKey {
    /// The route's pattern, as the router has it.
    Route(&'static str),
    /// No route was matched (or the layer runs before routing).
    Unmatched,
    /// A route beyond [`MAX_ROUTES`], or longer than [`MAX_ROUTE_LEN`].
    Other,
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteKey::Route(route) => f.write_str(route),
            RouteKey::Unmatched => f.write_str("unmatched"),
            RouteKey::Other => f.write_str("other"),
        }
    }
}

/// Every route named so far. Routes come from the application's router,
/// not from requests, and are at most `MAX_ROUTES`: their names are kept
/// for the life of the process.
static ROUTES: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);

thread_local! {
    /// The routes this thread has seen: a subset of `ROUTES`, read without
    /// touching anything another thread writes.
    static SEEN: RefCell<HashSet<&'static str>> = RefCell::new(HashSet::new());
}

pub(super) fn route(path: &str) -> RouteKey {
    if path.len() > MAX_ROUTE_LEN {
        return RouteKey::Other;
    }
    if let Some(known) = SEEN.with(|seen| seen.borrow().get(path).copied()) {
        return RouteKey::Route(known);
    }
    let name = {
        let mut routes = ROUTES.lock().unwrap_or_else(PoisonError::into_inner);
        match routes.get(path) {
            Some(name) => *name,
            None if routes.len() >= MAX_ROUTES => return RouteKey::Other,
            None => {
                let name: &'static str = Box::leak(path.into());
                routes.insert(name);
                name
            }
        }
    };
    SEEN.with(|seen| seen.borrow_mut().insert(name));
    RouteKey::Route(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_named_once() {
        let a = route("/test/a_route_is_named_once/{id}");
        let b = std::thread::spawn(|| route("/test/a_route_is_named_once/{id}"))
            .join()
            .unwrap();
        assert_eq!(a, b);
        let (RouteKey::Route(a), RouteKey::Route(b)) = (a, b) else {
            panic!("named: {a:?} {b:?}");
        };
        assert!(std::ptr::eq(a, b), "one name for both threads");
        assert_eq!(a, "/test/a_route_is_named_once/{id}");
    }

    #[test]
    fn a_long_route_is_other() {
        let long = format!("/{}", "x".repeat(MAX_ROUTE_LEN));
        assert_eq!(route(&long), RouteKey::Other);
        assert_eq!(RouteKey::Other.to_string(), "other");
        assert_eq!(RouteKey::Unmatched.to_string(), "unmatched");
    }

    #[test]
    fn without_a_matched_path_a_request_is_unmatched() {
        let req = Request::get("/users/7").body(()).unwrap();
        assert_eq!(ByRoute.key(&req), RouteKey::Unmatched);
    }
}

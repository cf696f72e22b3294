//! `ByRoute` through a real router: keys are route patterns, and a process
//! names at most `MAX_ROUTES` of them. Its own test binary, since the names
//! are kept per process.
#![cfg(feature = "axum")]

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::get;
use http_body_util::BodyExt;
use seawall::axum::{ByRoute, MAX_ROUTES};
use seawall::core::KeyFn;
use tower::ServiceExt;

async fn key_of(app: &Router, path: &str) -> String {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn routes_are_patterns_and_beyond_the_cap_share_one_key() {
    let handler = || get(|req: Request| async move { ByRoute.key(&req).to_string() });
    let mut app = Router::new().route("/users/{id}", handler());
    for i in 0..MAX_ROUTES + 10 {
        app = app.route(&format!("/r{i}"), handler());
    }
    let app = app.fallback(|req: Request| async move { ByRoute.key(&req).to_string() });

    // The pattern, whatever id the client sends.
    assert_eq!(key_of(&app, "/users/7").await, "/users/{id}");
    assert_eq!(key_of(&app, "/users/../../etc").await, "unmatched");
    assert_eq!(key_of(&app, "/nowhere").await, "unmatched");
    let mut named = 1;
    let mut other = 0;
    for i in 0..MAX_ROUTES + 10 {
        match key_of(&app, &format!("/r{i}")).await.as_str() {
            "other" => other += 1,
            key => {
                assert_eq!(key, format!("/r{i}"));
                named += 1;
            }
        }
    }
    assert_eq!(named, MAX_ROUTES, "every route up to the cap is named");
    assert_eq!(other, 11, "the rest share one key");
    // A route named before the cap keeps its name.
    assert_eq!(key_of(&app, "/users/8").await, "/users/{id}");
}

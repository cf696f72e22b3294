//! The admin endpoint over a registry: authentication, reads that change
//! nothing, operator actions, live reload, hostile input.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::{Layer, ServiceExt, service_fn};

use seawall::axum::{Access, AdminAuth, MAX_ADMIN_BODY, admin};
use seawall::breaker::{BreakerConfig, BreakerLayer, KeyedBreakerConfig, KeyedBreakerLayer, State};
use seawall::config::StackConfig;
use seawall::registry::Registry;
use seawall::shed::ShedLayer;
use seawall_test_support::metrics::Recording;

const TOKEN: &str = "0123456789abcdef-test-token";

fn router(registry: &Registry) -> Router {
    admin(registry.clone(), AdminAuth::bearer(TOKEN).unwrap())
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    send(app, Method::GET, uri, Some(&bearer()), "").await
}

async fn post(app: &Router, uri: &str, body: &str) -> (StatusCode, Value) {
    send(app, Method::POST, uri, Some(&bearer()), body).await
}

fn breaker_registry() -> (Registry, BreakerLayer) {
    let registry = Registry::new();
    let breaker = BreakerLayer::standard();
    registry.register("db.breaker", &breaker).unwrap();
    (registry, breaker)
}

#[tokio::test]
async fn no_credentials_is_401_wrong_ones_403() {
    let (registry, _) = breaker_registry();
    let app = router(&registry);

    let res = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"seawall-admin\""
    );

    for wrong in [
        "Bearer 0123456789abcdef-test-tokeN",
        "Bearer 0123456789abcdef-test-token-longer",
        "Bearer x",
    ] {
        let (status, body) = send(&app, Method::GET, "/", Some(wrong), "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{wrong}");
        assert!(body["error"].is_string());
    }
    // Another scheme is no bearer credential at all.
    let (status, _) = send(&app, Method::GET, "/", Some("Basic YWRtaW46YWRtaW4="), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A refused POST changes nothing.
    let (status, _) = send(
        &app,
        Method::POST,
        "/layers/db.breaker/force-open",
        Some("Bearer nope-nope-nope-nope"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(registry.layer("db.breaker").is_some());
    let (_, body) = get(&app, "/layers/db.breaker").await;
    assert_eq!(body["stats"]["state"], "closed");

    // The scheme is case-insensitive, as HTTP says.
    let (status, _) = send(&app, Method::GET, "/", Some(&format!("bearer {TOKEN}")), "").await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_short_token_is_refused_and_never_shown() {
    let err = AdminAuth::bearer("short-secret").unwrap_err();
    assert!(!err.to_string().contains("short-secret"), "{err}");
    let err = AdminAuth::bearer("a token with hunter2 inside it").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let auth = AdminAuth::bearer(TOKEN).unwrap();
    assert!(!format!("{auth:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_check_of_your_own_names_who_calls() {
    let (registry, breaker) = breaker_registry();
    let auth = AdminAuth::check(|head| match head.headers.get("x-ops-user") {
        None => Access::Unauthenticated,
        Some(v) if v == "alice" => Access::Allow {
            who: "alice".into(),
        },
        Some(_) => Access::Forbidden,
    });
    let app = admin(registry, auth);
    let call = |user: Option<&'static str>| {
        let mut req = Request::post("/layers/db.breaker/force-open");
        if let Some(user) = user {
            req = req.header("x-ops-user", user);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    assert_eq!(call(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(Some("mallory")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(call(Some("alice")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(breaker.state(), State::ForcedOpen);
}

#[tokio::test]
async fn get_lists_every_layer_and_changes_nothing() {
    let (registry, breaker) = breaker_registry();
    let shed = ShedLayer::fixed(8).unwrap();
    registry.register("api.shed", &shed).unwrap();
    let app = router(&registry);

    let (status, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    let layers = body["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["id"], "api.shed");
    assert_eq!(layers[0]["kind"], "shed");
    assert_eq!(layers[0]["stats"]["limit"], 8);
    assert_eq!(layers[1]["id"], "db.breaker");
    assert_eq!(layers[1]["kind"], "breaker");

    // The actions are POST only: a GET of them is 405 and does nothing.
    for action in ["force-open", "force-closed", "reset", "config"] {
        let (status, _) = get(&app, &format!("/layers/db.breaker/{action}")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{action}");
    }
    let (status, _) = get(&app, "/config").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(breaker.state(), State::Closed);

    let (status, body) = get(&app, "/layers/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn unknown_paths_need_credentials_too() {
    let (registry, _) = breaker_registry();
    let app = router(&registry);
    let (status, _) = send(&app, Method::GET, "/no/such/route", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(&app, "/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn other_sites_pages_cannot_act() {
    let (registry, breaker) = breaker_registry();
    let app = router(&registry);
    for site in ["cross-site", "same-site"] {
        let req = Request::post("/layers/db.breaker/force-open")
            .header(header::AUTHORIZATION, bearer())
            .header("sec-fetch-site", site)
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{site}");
    }
    assert_eq!(breaker.state(), State::Closed);
    // The operator's own page, and tools that send no such header, may.
    let req = Request::post("/layers/db.breaker/force-open")
        .header(header::AUTHORIZATION, bearer())
        .header("sec-fetch-site", "same-origin")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(breaker.state(), State::ForcedOpen);
    // Reads are not actions: a cross-site GET is answered (and changes nothing).
    let req = Request::get("/")
        .header(header::AUTHORIZATION, bearer())
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
}

/// Polls `fut` with `recording` as the thread's metrics recorder: the
/// router runs its handlers inside the poll, on this thread.
async fn recorded<F: Future>(recording: &Recording, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| metrics::with_local_recorder(recording, || fut.as_mut().poll(cx)))
        .await
}

#[tokio::test]
async fn a_forced_breaker_shows_in_the_next_get_and_in_metrics() {
    let recording = Recording::default();
    let breaker = metrics::with_local_recorder(&recording, || {
        BreakerLayer::from_config(&BreakerConfig::new().name("db")).unwrap()
    });
    let registry = Registry::new();
    registry.register("db.breaker", &breaker).unwrap();
    let app = router(&registry);
    let gauge = || recording.gauge("seawall_breaker_state{name=db}");

    let (status, body) =
        recorded(&recording, post(&app, "/layers/db.breaker/force-open", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["stats"]["state"], "forced_open");
    let (_, body) = get(&app, "/layers/db.breaker").await;
    assert_eq!(body["stats"]["state"], "forced_open");
    assert_eq!(gauge(), Some(State::ForcedOpen.gauge_value()));

    // The layer's services are refused at once.
    let mut svc = breaker.layer(service_fn(|()| async { Ok::<_, seawall::BoxError>(()) }));
    let err = (&mut svc).oneshot(()).await.unwrap_err();
    assert!(seawall::Rejection::find(&*err).is_some(), "{err}");

    let (_, body) = recorded(
        &recording,
        post(&app, "/layers/db.breaker/force-closed", ""),
    )
    .await;
    assert_eq!(body["stats"]["state"], "forced_closed");
    assert_eq!(gauge(), Some(State::ForcedClosed.gauge_value()));
    let (_, body) = recorded(&recording, post(&app, "/layers/db.breaker/reset", "")).await;
    assert_eq!(body["stats"]["state"], "closed");
    assert_eq!(gauge(), Some(State::Closed.gauge_value()));
}

#[tokio::test]
async fn keyed_breakers_are_steered_key_by_key_and_paged() {
    let layer =
        KeyedBreakerLayer::new(|req: &String| req.clone(), &KeyedBreakerConfig::new()).unwrap();
    let registry = Registry::new();
    registry.register("peers", &layer).unwrap();
    let app = router(&registry);

    let svc = layer.layer(service_fn(|_req: String| async {
        Ok::<_, seawall::BoxError>(())
    }));
    for peer in ["10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443"] {
        svc.clone().oneshot(peer.to_owned()).await.unwrap();
    }

    let (status, body) = post(&app, "/layers/peers/force-open?key=10.0.0.2:443", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stats"]["forced_open"], 1);
    assert_eq!(
        layer.key_stats(&"10.0.0.2:443".to_owned()).unwrap().state,
        State::ForcedOpen
    );
    assert_eq!(
        layer.key_stats(&"10.0.0.1:443".to_owned()).unwrap().state,
        State::Closed
    );

    // Unknown keys are 404 and create nothing; the whole map cannot be forced.
    let (status, _) = post(&app, "/layers/peers/force-open?key=10.9.9.9:443", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(layer.len(), 3);
    let (status, _) = post(&app, "/layers/peers/force-open", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = get(&app, "/layers/peers/keys?offset=1&limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 3);
    assert_eq!(body["keys"][0]["key"], "10.0.0.2:443");
    assert_eq!(body["keys"][0]["stats"]["state"], "forced_open");
    let (status, _) = get(&app, "/layers/peers/keys?limit=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = get(&app, "/layers/peers/keys?limit=1000000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["keys"].as_array().unwrap().len(), 3);
    let (status, body) = post(&app, "/layers/peers/reset?key=a&key=b", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string(), "errors are JSON");

    // A page holds at most 1000 keys, however many are asked for.
    for i in 0..1001 {
        svc.clone()
            .oneshot(format!("10.1.{}.{}:443", i / 256, i % 256))
            .await
            .unwrap();
    }
    let (_, body) = get(&app, "/layers/peers/keys?limit=5000").await;
    assert_eq!(body["total"], 1004);
    assert_eq!(body["keys"].as_array().unwrap().len(), 1000);

    // A key on an unkeyed layer, keys of an unkeyed layer: 400.
    let (registry2, _) = breaker_registry();
    let app2 = router(&registry2);
    let (status, _) = post(&app2, "/layers/db.breaker/force-open?key=x", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&app2, "/layers/db.breaker/keys").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_shedder_cannot_be_forced() {
    let registry = Registry::new();
    registry
        .register("api.shed", &ShedLayer::fixed(8).unwrap())
        .unwrap();
    let app = router(&registry);
    let (status, body) = post(&app, "/layers/api.shed/force-open", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("cannot"), "{body}");
}

#[tokio::test]
async fn hostile_bodies_are_refused() {
    let (registry, breaker) = breaker_registry();
    let app = router(&registry);
    let big = "#".repeat(MAX_ADMIN_BODY + 1);
    let (status, _) = post(&app, "/layers/db.breaker/config", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = post(&app, "/config", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, body) = post(&app, "/layers/db.breaker/config", "open_duration = [").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("bad config"),
        "{body}"
    );
    let (status, _) = post(&app, "/layers/db.breaker/config", "no_such_field = 1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut req = Request::post("/layers/db.breaker/config")
        .header(header::AUTHORIZATION, bearer())
        .body(Body::from(vec![0xff, 0xfe, 0x00]))
        .unwrap();
    req.headers_mut()
        .insert(header::CONTENT_TYPE, "application/toml".parse().unwrap());
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(breaker.state(), State::Closed);

    // Hostile ids in paths: long, or holding escapes, answer 404 with a short message.
    let long = "x".repeat(10_000);
    let (status, body) = get(&app, &format!("/layers/{long}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().len() < 400);
    let (status, body) = post(&app, "/layers/db%0Abreaker/force-open", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("\\n"), "{body}");
}

#[tokio::test]
async fn reload_through_the_endpoint_keeps_state() {
    let (registry, breaker) = breaker_registry();
    let app = router(&registry);
    breaker.force_open();

    let (status, body) = post(
        &app,
        "/layers/db.breaker/config",
        "open_duration = \"45s\"\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(breaker.config().open_duration, Duration::from_secs(45));
    assert_eq!(
        breaker.state(),
        State::ForcedOpen,
        "a reload keeps the state"
    );

    // An invalid value is 400 and changes nothing.
    let (status, body) = post(
        &app,
        "/layers/db.breaker/config",
        "open_duration = \"0s\"\n",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(breaker.config().open_duration, Duration::from_secs(45));

    // The body is the whole table: a named breaker's body names it.
    let named = BreakerLayer::from_config(&BreakerConfig::new().name("pay")).unwrap();
    registry.register("pay.breaker", &named).unwrap();
    let (status, _) = post(
        &app,
        "/layers/pay.breaker/config",
        "open_duration = \"9s\"\n",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a body without the name renames: refused"
    );
    let (status, body) = post(
        &app,
        "/layers/pay.breaker/config",
        "name = \"pay\"\nopen_duration = \"9s\"\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(named.config().open_duration, Duration::from_secs(9));

    // A change the breaker cannot make in place is 409.
    let (status, body) = post(
        &app,
        "/layers/db.breaker/config",
        "policy = { kind = \"failure_rate_count\", window = 100, rate = 0.5, min_calls = 10 }\n",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn a_whole_config_applies_to_the_registered_stacks() {
    let config = StackConfig::from_toml_str(
        r#"
        [server.shed]
        limit = { fixed = 16 }
        [server.timeout]
        fixed = "2s"
        "#,
    )
    .unwrap();
    let server = config.server.build().unwrap();
    let registry = Registry::new();
    registry.register_server("server", &server).unwrap();
    assert_eq!(registry.ids(), ["server.shed", "server.timeout"]);
    let app = router(&registry);

    let (status, body) = post(
        &app,
        "/config",
        "[server.shed]\nlimit = { fixed = 64 }\n[server.timeout]\nfixed = \"3s\"\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["complete"], true);
    assert_eq!(server.shed().unwrap().stats().limit, 64);
    assert_eq!(server.timeout().unwrap().deadline(), Duration::from_secs(3));

    // Dropping a part cannot happen in place: 409, the rest still applies.
    let (status, body) = post(&app, "/config", "[server.shed]\nlimit = { fixed = 32 }\n").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["reloaded"][0], "server.shed");
    assert_eq!(body["refused"][0]["id"], "server.timeout");
    assert_eq!(server.shed().unwrap().stats().limit, 32);
    assert_eq!(server.timeout().unwrap().deadline(), Duration::from_secs(3));

    // Parts with no stack to go to are skipped, and said so.
    let (status, body) = post(
        &app,
        "/config",
        "[server.shed]\nlimit = { fixed = 32 }\n[client.retry]\nmax_attempts = 2\n",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["skipped"][0]["id"], "client.retry");

    // A bad file changes nothing.
    let (status, _) = post(&app, "/config", "[server.shed]\nlimit = { fixed = 0 }\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(server.shed().unwrap().stats().limit, 32);
}

//! An operator's HTTP endpoint over a [`Registry`]: [`admin`].

mod json;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use seawall_core::{ConfigError, ReloadError};

use crate::config::StackConfig;
use crate::registry::{Control, LayerConfig, LayerKind, Registry, RegistryError, cut};

/// The largest request body the endpoint reads (a config document).
pub const MAX_ADMIN_BODY: usize = 64 * 1024;

/// The shortest bearer token [`AdminAuth::bearer`] accepts, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// What an [`AdminAuth`] check decides for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Let it in; `who` names the caller in the `tracing` event of every
    /// action.
    Allow {
        /// Who is calling (a user, a service account, `bearer`…).
        who: String,
    },
    /// No credentials: `401 Unauthorized`.
    Unauthenticated,
    /// Credentials that do not let in: `403 Forbidden`.
    Forbidden,
}

type Check = dyn Fn(&Parts) -> Access + Send + Sync;

/// How the admin endpoint authenticates a caller. Required to build it:
/// there is no open admin endpoint.
#[derive(Clone)]
pub struct AdminAuth {
    check: Arc<Check>,
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token.
        f.write_str("AdminAuth { .. }")
    }
}

// Compares `given` with `secret` without stopping at the first difference
// or at a length mismatch: the time taken depends on the secret's length
// only, so it tells neither how much of a guess was right nor how long the
// secret is beyond what any wrong guess shows.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != secret.len());
    for (i, s) in secret.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!*s);
        diff |= std::hint::black_box(g ^ s);
    }
    diff == 0
}

impl AdminAuth {
    /// `Authorization: Bearer <token>`. No header (or another scheme) is
    /// `401`, a wrong token `403`; the caller is named `bearer` in events.
    ///
    /// # Errors
    ///
    /// A token shorter than [`MIN_TOKEN_LEN`] bytes or holding characters a
    /// header cannot carry (the error never shows the token).
    pub fn bearer(token: impl Into<String>) -> Result<Self, ConfigError> {
        let token = token.into();
        if token.len() < MIN_TOKEN_LEN {
            return Err(ConfigError::new(
                "admin.token",
                format_args!("<{} bytes>", token.len()),
                format!("must be at least {MIN_TOKEN_LEN} bytes"),
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::new(
                "admin.token",
                "<redacted>",
                "must be visible ASCII (no spaces or control characters)",
            ));
        }
        let token = token.into_bytes();
        Ok(Self::check(move |parts| {
            let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
                return Access::Unauthenticated;
            };
            let value = value.as_bytes();
            let scheme = b"bearer ";
            if value.len() < scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
                return Access::Unauthenticated;
            }
            if same_secret(value[scheme.len()..].trim_ascii(), &token) {
                Access::Allow {
                    who: "bearer".to_owned(),
                }
            } else {
                Access::Forbidden
            }
        }))
    }

    /// A check of your own over the request's head: its headers (a header
    /// your authenticating proxy sets and strips from clients), or its
    /// extensions (a peer certificate or address your server put there).
    /// A header a client could send itself is no credential unless every
    /// hop in front of the service strips it.
    ///
    /// ```
    /// use seawall::axum::{Access, AdminAuth};
    ///
    /// let auth = AdminAuth::check(|head| match head.headers.get("x-ops-user") {
    ///     None => Access::Unauthenticated,
    ///     Some(user) if user == "alice" => Access::Allow { who: "alice".into() },
    ///     Some(_) => Access::Forbidden,
    /// });
    /// # let _ = auth;
    /// ```
    pub fn check<F>(check: F) -> Self
    where
        F: Fn(&Parts) -> Access + Send + Sync + 'static,
    {
        AdminAuth {
            check: Arc::new(check),
        }
    }
}

#[derive(Clone)]
struct Admin {
    registry: Registry,
}

/// Who is calling, put in the request by the auth middleware.
#[derive(Clone)]
struct Who(Arc<str>);

/// A router for operators, over `registry`, to mount under any path
/// (`Router::nest("/admin", admin(registry, auth))`). Every route, and
/// every unknown path, needs `auth`. **Add no route to the returned router**:
/// `auth` is a layer over the routes it has, so a route added afterwards
/// would be open. Nest or merge it as it is.
///
/// | method | path (under the mount point) | what |
/// |---|---|---|
/// | GET | `` (the mount point itself, e.g. `/admin`) | every layer: id, kind, stats (JSON) |
/// | GET | `/layers/{id}` | one layer |
/// | GET | `/layers/{id}/keys?offset=0&limit=100` | a keyed layer's keys, paged (at most 1000) |
/// | POST | `/layers/{id}/force-open[?key=k]` | force a breaker (or one key of a keyed breaker) open |
/// | POST | `/layers/{id}/force-closed[?key=k]` | force it closed |
/// | POST | `/layers/{id}/reset[?key=k]` | reset it to Closed |
/// | POST | `/layers/{id}/config` | reload one layer: the body is its **whole** config table in TOML, as in the config file (fields left out take their defaults, `name` included) |
/// | POST | `/config` | apply a whole `StackConfig` (TOML) to the stacks registered as `client` and `server` |
///
/// Answers are JSON; errors are `{"error": "…"}` with `400` (bad input or
/// an unsupported action), `401`/`403` (auth), `404` (no such route, layer
/// or key), `409` (a change a layer cannot make in place, or a `/config`
/// that left parts unapplied: the body lists them) or `413` (a body over
/// [`MAX_ADMIN_BODY`]).
///
/// - **GET changes no setting.** (Reading a breaker whose open period is
///   over reports it HalfOpen, as any read or call of it would.)
/// - **Every action a handler sees is an `info` event** (target
///   `seawall::admin`) naming who, what, which layer and key (cut short
///   and escaped) and the outcome; every refused credential is a `warn`
///   event, without the credential.
/// - **Other sites' pages cannot act:** a POST a browser marks
///   `Sec-Fetch-Site: cross-site` or `same-site` is refused (`403`), so a
///   cookie-based [`AdminAuth::check`] is not open to cross-site forms.
///
/// ```
/// use axum::Router;
/// use seawall::axum::{AdminAuth, admin};
/// use seawall::registry::Registry;
///
/// # fn main() -> Result<(), seawall_core::ConfigError> {
/// let registry = Registry::new();
/// // register the layers your service builds here…
/// let app: Router = Router::new()
///     .nest("/admin", admin(registry, AdminAuth::bearer("a-long-random-token-from-a-secret")?));
/// # let _ = app;
/// # Ok(()) }
/// ```
pub fn admin(registry: Registry, auth: AdminAuth) -> Router {
    let state = Admin { registry };
    Router::new()
        .route("/", get(list))
        .route("/layers/{id}", get(one))
        .route("/layers/{id}/keys", get(keys))
        .route("/layers/{id}/force-open", post(force_open))
        .route("/layers/{id}/force-closed", post(force_closed))
        .route("/layers/{id}/reset", post(reset))
        .route("/layers/{id}/config", post(reload))
        .route("/config", post(apply))
        // Unknown paths answer after authentication too, so an outsider
        // cannot tell which routes exist.
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY))
        .layer(middleware::from_fn(move |req, next| {
            authenticate(auth.clone(), req, next)
        }))
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such admin route")
}

// A browser sends `Sec-Fetch-Site` with every request; a form or script of
// another site posting here (with the operator's cookie) says `cross-site`
// or `same-site`.
fn from_another_site(head: &Parts) -> bool {
    head.method != Method::GET
        && head
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v != "same-origin" && v != "none")
}

async fn authenticate(auth: AdminAuth, req: Request, next: Next) -> Response {
    let (head, body) = req.into_parts();
    let path = cut(head.uri.path());
    if from_another_site(&head) {
        tracing::warn!(target: "seawall::admin", method = %head.method, path = ?path, "admin action from another site refused");
        return error(
            StatusCode::FORBIDDEN,
            "admin actions are not taken from other sites' pages",
        );
    }
    match (auth.check)(&head) {
        Access::Allow { who } => {
            let mut req = Request::from_parts(head, body);
            req.extensions_mut().insert(Who(who.into()));
            next.run(req).await
        }
        Access::Unauthenticated => {
            tracing::warn!(target: "seawall::admin", method = %head.method, path = ?path, "admin request without credentials");
            let mut res = error(StatusCode::UNAUTHORIZED, "credentials required");
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"seawall-admin\""),
            );
            res
        }
        Access::Forbidden => {
            tracing::warn!(target: "seawall::admin", method = %head.method, path = ?path, "admin request with refused credentials");
            error(
                StatusCode::FORBIDDEN,
                "these credentials may not use the admin endpoint",
            )
        }
    }
}

fn error(status: StatusCode, message: impl fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

fn ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn registry_error(err: &RegistryError) -> Response {
    let status = match err {
        RegistryError::UnknownLayer(_) | RegistryError::UnknownKey { .. } => StatusCode::NOT_FOUND,
        RegistryError::Reload {
            error: ReloadError::NotInPlace { .. },
            ..
        } => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, err)
}

async fn list(State(admin): State<Admin>) -> Response {
    let layers: Vec<Value> = admin.registry.layers().iter().map(json::snapshot).collect();
    ok(json!({ "layers": layers }))
}

async fn one(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    match admin.registry.layer(&id) {
        Some(layer) => ok(json::snapshot(&layer)),
        None => registry_error(&RegistryError::UnknownLayer(id)),
    }
}

#[derive(serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn keys(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    page: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(page)) = page else {
        return error(
            StatusCode::BAD_REQUEST,
            "offset and limit must be non-negative integers",
        );
    };
    match admin.registry.keys(&id, page.offset, page.limit) {
        Ok(page) => ok(json::page(&page)),
        Err(err) => registry_error(&err),
    }
}

#[derive(serde::Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

type KeyParam = Result<Query<KeyQuery>, axum::extract::rejection::QueryRejection>;

/// One `info` event per action, whatever its outcome; ids and keys come
/// from the request, so they are cut short and escaped.
fn audit(who: &Who, action: &str, id: &str, key: Option<&str>, outcome: &dyn fmt::Display) {
    tracing::info!(
        target: "seawall::admin",
        who = &*who.0,
        action,
        layer = ?cut(id),
        key = key.map(|k| tracing::field::debug(cut(k))),
        outcome = %outcome,
        "admin action"
    );
}

async fn control(admin: Admin, who: Who, id: String, key: KeyParam, control: Control) -> Response {
    let Ok(Query(KeyQuery { key })) = key else {
        audit(&who, control.as_str(), &id, None, &"bad query");
        return error(StatusCode::BAD_REQUEST, "the query takes one `key`");
    };
    let result = admin.registry.control(&id, key.as_deref(), control);
    match result {
        Ok(()) => {
            audit(&who, control.as_str(), &id, key.as_deref(), &"done");
            match admin.registry.layer(&id) {
                Some(layer) => ok(json::snapshot(&layer)),
                None => ok(json!({})),
            }
        }
        Err(err) => {
            audit(&who, control.as_str(), &id, key.as_deref(), &err);
            registry_error(&err)
        }
    }
}

async fn force_open(
    State(admin): State<Admin>,
    axum::Extension(who): axum::Extension<Who>,
    Path(id): Path<String>,
    key: KeyParam,
) -> Response {
    control(admin, who, id, key, Control::ForceOpen).await
}

async fn force_closed(
    State(admin): State<Admin>,
    axum::Extension(who): axum::Extension<Who>,
    Path(id): Path<String>,
    key: KeyParam,
) -> Response {
    control(admin, who, id, key, Control::ForceClosed).await
}

async fn reset(
    State(admin): State<Admin>,
    axum::Extension(who): axum::Extension<Who>,
    Path(id): Path<String>,
    key: KeyParam,
) -> Response {
    control(admin, who, id, key, Control::Reset).await
}

/// A refused request, small enough to pass around before it becomes a
/// [`Response`].
struct Fail(StatusCode, String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn text(body: &Bytes) -> Result<&str, Fail> {
    std::str::from_utf8(body).map_err(|_| {
        Fail(
            StatusCode::BAD_REQUEST,
            "the body must be UTF-8 TOML".into(),
        )
    })
}

// One layer's config table, read as the config type of the layer's kind.
fn layer_config(kind: LayerKind, toml_text: &str) -> Result<LayerConfig, Fail> {
    fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Fail> {
        toml::from_str(text).map_err(|e| {
            let field = ConfigError::new("body", "<toml>", e.message().to_owned());
            Fail(StatusCode::BAD_REQUEST, format!("bad config: {field}"))
        })
    }
    Ok(match kind {
        LayerKind::Breaker => LayerConfig::Breaker(parse(toml_text)?),
        LayerKind::KeyedBreaker => LayerConfig::KeyedBreaker(parse(toml_text)?),
        LayerKind::Shed => LayerConfig::Shed(parse(toml_text)?),
        LayerKind::Budget => LayerConfig::Budget(parse(toml_text)?),
        LayerKind::KeyedBudget => LayerConfig::KeyedBudget(parse(toml_text)?),
        LayerKind::Timeout => LayerConfig::Timeout(parse(toml_text)?),
        LayerKind::KeyedTimeout => LayerConfig::KeyedTimeout(parse(toml_text)?),
        LayerKind::Retry => LayerConfig::Retry(parse(toml_text)?),
        #[cfg(feature = "chaos")]
        LayerKind::Chaos => LayerConfig::Chaos(parse(toml_text)?),
        other => {
            return Err(Fail(
                StatusCode::BAD_REQUEST,
                format!("a {other} layer is not reloaded through the endpoint"),
            ));
        }
    })
}

async fn reload(
    State(admin): State<Admin>,
    axum::Extension(who): axum::Extension<Who>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(layer) = admin.registry.layer(&id) else {
        let err = RegistryError::UnknownLayer(id.clone());
        audit(&who, "reload", &id, None, &err);
        return registry_error(&err);
    };
    let config = match text(&body).and_then(|t| layer_config(layer.kind, t)) {
        Ok(config) => config,
        Err(fail) => {
            audit(&who, "reload", &id, None, &fail.1);
            return fail.into_response();
        }
    };
    match admin.registry.reload(&id, &config) {
        Ok(()) => {
            audit(&who, "reload", &id, None, &"done");
            match admin.registry.layer(&id) {
                Some(layer) => ok(json::snapshot(&layer)),
                None => ok(json!({})),
            }
        }
        Err(err) => {
            audit(&who, "reload", &id, None, &err);
            registry_error(&err)
        }
    }
}

async fn apply(
    State(admin): State<Admin>,
    axum::Extension(who): axum::Extension<Who>,
    body: Bytes,
) -> Response {
    let config = match text(&body).map(StackConfig::from_toml_str) {
        Ok(Ok(config)) => config,
        Ok(Err(err)) => {
            audit(&who, "apply", "", None, &err);
            return error(StatusCode::BAD_REQUEST, format_args!("bad config: {err}"));
        }
        Err(fail) => {
            audit(&who, "apply", "", None, &fail.1);
            return fail.into_response();
        }
    };
    match admin.registry.apply(&config) {
        Ok(report) => {
            audit(&who, "apply", "", None, &report);
            let status = if report.is_complete() {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            };
            (status, axum::Json(json::report(&report))).into_response()
        }
        Err(err) => {
            audit(&who, "apply", "", None, &err);
            error(StatusCode::BAD_REQUEST, format_args!("bad config: {err}"))
        }
    }
}

//! The IETF rate-limit header fields on every response a budget decided.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::core::quota::{self, Quota, Quotas};

/// `RateLimit-Policy`: the quota policies of the budgets that decided.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// `RateLimit`: what is left of each policy's quota.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Adds the `RateLimit-Policy` and `RateLimit` header fields of
/// [draft-ietf-httpapi-ratelimit-headers-10] to each response that a
/// seawall budget below it decided, admitted or refused:
///
/// ```text
/// RateLimit-Policy: "api";q=100;w=60
/// RateLimit: "api";r=42;t=35
/// ```
///
/// - `q` and `w`: the budget's rate, `q` calls every `w` seconds (a budget
///   of 10 every 100ms states `q=100;w=1`); the policy's name is the
///   budget's name.
/// - `r`: the calls the client may still make now (the budget's tokens
///   left, at most its burst); 0 on a refusal.
/// - `t`: whole seconds, rounded up, until the budget is whole again (its
///   whole burst available). A refusal also carries `Retry-After` (from
///   [`handle_error`](super::handle_error)): when the next call can pass.
///
/// **Only budgets that advertise are stated**: `BudgetConfig::advertise`
/// (`.advertise(true)` on a builder or config; [`RouteBudgets`](super::RouteBudgets)
/// always do). A handler's own client budgets, which guard its calls to
/// other services and also run inside this layer's polls, stay silent
/// unless told otherwise, so the server's clients never see its quotas
/// with its peers. Two advertising budgets with the same name are two
/// entries: give them distinct names.
///
/// Nothing is looked up twice: a budget reports its quota as it decides,
/// when a `RateLimitHeaders` above it listens, and pays one thread-local
/// load per call otherwise (about 10 instructions a call, measured; the
/// `axum` feature turns this on in `seawall-budget` through its `quota`
/// feature, and a budget built without it reports nothing). Every budget in the stack reports (a per-client
/// and a per-route budget give two policies, in the order they decided; at
/// most four); the rate budget of [`BudgetLayer`](crate::budget::BudgetLayer)
/// and [`KeyedBudgetLayer`](crate::budget::KeyedBudgetLayer) in `Reject`
/// mode report; a `Wait`-mode budget and the Redis budget do not (yet). A
/// keyed budget does not name the key: the client knows who it is.
///
/// Put it above `HandleErrorLayer`, so that refusals, which that layer turns
/// into responses, get the fields too:
///
/// ```
/// use std::time::Duration;
///
/// use axum::{Router, error_handling::HandleErrorLayer, routing::get};
/// use seawall::axum::RateLimitHeadersLayer;
/// use seawall::budget::BudgetLayer;
/// use tower::ServiceBuilder;
///
/// let budget = BudgetLayer::builder()
///     .name("api")
///     .rate(100)
///     .per(Duration::from_secs(60))
///     .advertise(true)
///     .build()
///     .expect("valid config");
/// let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(
///     ServiceBuilder::new()
///         .layer(RateLimitHeadersLayer::new())
///         .layer(HandleErrorLayer::new(seawall::axum::handle_error))
///         .layer(budget),
/// );
/// ```
///
/// [draft-ietf-httpapi-ratelimit-headers-10]: https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/10/
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimitHeadersLayer {
    _priv: (),
}

impl RateLimitHeadersLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for RateLimitHeadersLayer {
    type Service = RateLimitHeaders<S>;

    fn layer(&self, inner: S) -> RateLimitHeaders<S> {
        RateLimitHeaders { inner }
    }
}

/// The service [`RateLimitHeadersLayer`] makes.
#[derive(Debug, Clone)]
pub struct RateLimitHeaders<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RateLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mut quotas = Quotas::default();
        let inner = quota::observe(&mut quotas, || self.inner.call(req));
        RateLimitFuture { inner, quotas }
    }
}

pin_project! {
    /// The response future of [`RateLimitHeaders`].
    pub struct RateLimitFuture<F> {
        #[pin]
        inner: F,
        quotas: Quotas,
    }
}

impl<F, ResBody, E> Future for RateLimitFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let mut res = match quota::observe(this.quotas, || inner.poll(cx)) {
            Poll::Ready(Ok(res)) => res,
            other => return other,
        };
        if !this.quotas.is_empty() {
            let (policy, state) = fields(this.quotas);
            let headers = res.headers_mut();
            headers.insert(RATELIMIT_POLICY, policy);
            headers.insert(RATELIMIT, state);
        }
        Poll::Ready(Ok(res))
    }
}

/// The two field values: each quota as a structured-field list member.
fn fields(quotas: &Quotas) -> (HeaderValue, HeaderValue) {
    let mut policy = String::new();
    let mut state = String::new();
    for (i, quota) in quotas.iter().enumerate() {
        if i > 0 {
            policy.push_str(", ");
            state.push_str(", ");
        }
        let name = Name(quota);
        let _ = write!(
            policy,
            "{name};q={};w={}",
            quota.limit(),
            whole_seconds(quota.window()).max(1)
        );
        let _ = write!(
            state,
            "{name};r={};t={}",
            quota.remaining_units(),
            whole_seconds(quota.reset_after())
        );
    }
    // Only visible ASCII and spaces were written (names are escaped).
    let value = |s: String| {
        HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("\"invalid\""))
    };
    (value(policy), value(state))
}

/// Seconds rounded up.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A policy name as a structured-field string: quoted, `"` and `\`
/// escaped, anything but visible ASCII and space as `_`, at most 64
/// characters. Names come from the config, but a config is text someone
/// typed.
struct Name<'a>(&'a Quota);

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_char('"')?;
        for c in self.0.policy().chars().take(64) {
            match c {
                '"' | '\\' => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                ' '..='~' => f.write_char(c)?,
                _ => f.write_char('_')?,
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn quota(name: &str, remaining: u32, reset_ms: u64) -> Quota {
        Quota::new(Arc::from(name), 100, Duration::from_secs(60))
            .remaining(remaining)
            .reset(Duration::from_millis(reset_ms))
    }

    fn collected(reported: Vec<Quota>) -> Quotas {
        let mut quotas = Quotas::default();
        quota::observe(&mut quotas, || reported.into_iter().for_each(quota::report));
        quotas
    }

    #[test]
    fn fields_list_every_policy() {
        let (policy, state) = fields(&collected(vec![
            quota("per-client", 7, 1500),
            quota("api", 0, 0),
        ]));
        assert_eq!(policy, "\"per-client\";q=100;w=60, \"api\";q=100;w=60");
        assert_eq!(state, "\"per-client\";r=7;t=2, \"api\";r=0;t=0");
    }

    #[test]
    fn hostile_names_stay_one_quoted_string() {
        let (policy, _) = fields(&collected(vec![quota("a\"b\\c\r\nX-Evil: 1 ü", 1, 0)]));
        assert_eq!(policy, "\"a\\\"b\\\\c__X-Evil: 1 _\";q=100;w=60");
        let long = "n".repeat(1000);
        let (policy, _) = fields(&collected(vec![quota(&long, 1, 0)]));
        assert!(policy.len() < 100, "{policy:?}");
    }
}

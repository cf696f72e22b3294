//! Rate limits at the edge: seawall's `KeyedBudgetLayer` keyed by
//! `ClientIp` against `tower_governor`'s `GovernorLayer` keyed by its
//! `PeerIpKeyExtractor`, in one run, on the same request: an
//! `http::Request<()>` carrying axum's `ConnectInfo<SocketAddr>`, the
//! extension both read the peer's address from. Both at the same rate and
//! burst; the inner service answers an empty `Response<axum::body::Body>`.
//!
//! Each case builds its request outside the measurement (criterion's
//! `iter_batched`) and measures `poll_ready` + `call` + the response future,
//! and dropping the response (the request is dropped by the service):
//!
//! - `bare`: the inner service alone;
//! - `one_client`: one address, admitted;
//! - `10k_clients`: 10 000 addresses visited round-robin in a stride, all
//!   admitted (every key is in the map before the measurement);
//! - `refused`: one address whose budget is spent. tower_governor's refusal
//!   is a finished 429 response (headers and body); seawall's is its
//!   `BoxError`, and `seawall_refused_429` adds turning it into the 429 an
//!   axum server answers (status, `Retry-After`, body; see
//!   `too_many_requests`).
//!
//! Rows `seawall_tsc_*` read the CPU's time-stamp counter (`Clock::tsc`), as
//! governor does through quanta; the others tokio's clock, seawall's default.
//! The `edge_key` group measures the two key extractions alone.
//!
//! `cargo bench -p seawall-benches --bench edge`

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, StatusCode};
use seawall_benches::{call, two_workers};
use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
use seawall_core::key::ClientIp;
use seawall_core::{Clock, KeyFn, KeyMapConfig, Rejection};
use tower::{Layer, ServiceExt};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_service::Service;

/// Clients of the many-clients case.
const CLIENTS: u32 = 10_000;
/// A stride through the clients that visits all of them, in no
/// cache-friendly order.
const STRIDE: u32 = 7_919;

/// The bare HTTP service: an empty 200 for every request, at once.
#[derive(Debug, Clone, Copy, Default)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(Body::empty())))
    }
}

/// The i-th client's address: 10.x.y.z.
fn client(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
}

/// A request from `ip`, as axum's `into_make_service_with_connect_info`
/// hands it over.
fn request(ip: IpAddr) -> Request<()> {
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    req
}

/// One token per nanosecond, a burst no run can spend: every call admitted.
#[derive(Clone, Copy)]
struct Rate {
    period: Duration,
    burst: u32,
}

const OPEN: Rate = Rate {
    period: Duration::from_nanos(1),
    burst: u32::MAX,
};
/// One token an hour, a burst of one: spent by the first call.
const HOURLY: Rate = Rate {
    period: Duration::from_secs(3600),
    burst: 1,
};

type SeawallLayer = KeyedBudgetLayer<ClientIp, seawall_core::key::ClientKey>;

fn seawall(rate: Rate) -> SeawallLayer {
    seawall_with(rate, Clock::tokio())
}

fn seawall_with(rate: Rate, clock: Clock) -> SeawallLayer {
    let per_sec = u32::try_from(Duration::from_secs(1).as_nanos() / rate.period.as_nanos())
        .unwrap_or(u32::MAX);
    let budget = if per_sec >= 1 {
        BudgetConfig::new().rate(per_sec)
    } else {
        BudgetConfig::new().rate(1).per(rate.period)
    };
    let cfg = KeyedBudgetConfig::from(budget.burst(rate.burst)).keys(
        KeyMapConfig::new()
            .capacity(CLIENTS as usize * 2)
            .idle_ttl(Duration::from_secs(3600)),
    );
    KeyedBudgetLayer::new::<Request<()>>(
        ClientIp::new().peer_from(|c: &ConnectInfo<SocketAddr>| c.0),
        &cfg,
    )
    .expect("a valid keyed budget")
    .clock(clock)
}

fn governor(
    rate: Rate,
) -> GovernorLayer<PeerIpKeyExtractor, governor::middleware::NoOpMiddleware, Body> {
    let cfg = GovernorConfigBuilder::default()
        .period(rate.period)
        .burst_size(rate.burst)
        .finish()
        .expect("a valid governor config");
    GovernorLayer::new(cfg)
}

/// Calls `svc` once for each of `clients` addresses, so that every key is
/// in the limiter's map before the measurement.
fn warm<S: Service<Request<()>>>(svc: &mut S, clients: u32) {
    for i in 0..clients {
        let _ = call(svc, request(client(i)));
    }
}

/// A seawall refusal as the 429 an axum server answers: what
/// `seawall::axum::StatusMap::respond` builds (status, fixed body,
/// `Retry-After` in whole seconds rounded up, 1 to 86 400), but for its
/// tracing event. Built here rather than by the facade, whose `axum`
/// feature would turn on the budgets' quota reports for every bench of
/// this package.
fn too_many_requests(err: tower::BoxError) -> Response<Body> {
    let rejection = Rejection::find(&*err);
    let mut res = (StatusCode::TOO_MANY_REQUESTS, "rate budget exhausted").into_response();
    if let Some(wait) = rejection.and_then(|r| r.retry_after()) {
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).clamp(1, 86_400);
        res.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// The status `svc` answers `req` with; `None` for an error.
fn status<S: Service<Request<()>, Response = Response<Body>>>(
    svc: &mut S,
    req: Request<()>,
) -> Option<StatusCode> {
    call(svc, req).ok().map(|r| r.status())
}

fn edge(c: &mut Criterion) {
    let rt = two_workers();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("edge");
    let one = || request(client(1));

    let mut svc = Ok200;
    g.bench_function("bare", |b| {
        b.iter_batched(one, |req| call(&mut svc, req), BatchSize::SmallInput)
    });

    // One client, admitted.
    let mut svc = seawall(OPEN).layer(Ok200);
    warm(&mut svc, 2);
    g.bench_function("seawall_one_client", |b| {
        b.iter_batched(one, |req| call(&mut svc, req), BatchSize::SmallInput)
    });
    let mut svc = seawall_with(OPEN, Clock::tsc()).layer(Ok200);
    warm(&mut svc, 2);
    g.bench_function("seawall_tsc_one_client", |b| {
        b.iter_batched(one, |req| call(&mut svc, req), BatchSize::SmallInput)
    });
    let mut svc = governor(OPEN).layer(Ok200);
    warm(&mut svc, 2);
    g.bench_function("tower_governor_one_client", |b| {
        b.iter_batched(one, |req| call(&mut svc, req), BatchSize::SmallInput)
    });

    // 10 000 clients, round-robin, admitted.
    let mut svc = seawall(OPEN).layer(Ok200);
    warm(&mut svc, CLIENTS);
    let mut k = 0;
    g.bench_function("seawall_10k_clients", |b| {
        b.iter_batched(
            || {
                k = (k + STRIDE) % CLIENTS;
                request(client(k))
            },
            |req| call(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
    let mut svc = seawall_with(OPEN, Clock::tsc()).layer(Ok200);
    warm(&mut svc, CLIENTS);
    let mut k = 0;
    g.bench_function("seawall_tsc_10k_clients", |b| {
        b.iter_batched(
            || {
                k = (k + STRIDE) % CLIENTS;
                request(client(k))
            },
            |req| call(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
    let mut svc = governor(OPEN).layer(Ok200);
    warm(&mut svc, CLIENTS);
    let mut k = 0;
    g.bench_function("tower_governor_10k_clients", |b| {
        b.iter_batched(
            || {
                k = (k + STRIDE) % CLIENTS;
                request(client(k))
            },
            |req| call(&mut svc, req),
            BatchSize::SmallInput,
        )
    });

    // One client, refused.
    let mut svc = seawall(HOURLY).layer(Ok200);
    assert!(
        call(&mut svc, one()).is_ok(),
        "the first call spends the burst"
    );
    assert!(call(&mut svc, one()).is_err(), "refused from then on");
    g.bench_function("seawall_refused", |b| {
        b.iter_batched(one, |req| call(&mut svc, req), BatchSize::SmallInput)
    });
    let mut svc = seawall(HOURLY)
        .layer(Ok200)
        .map_result(|out| Ok::<_, tower::BoxError>(out.unwrap_or_else(too_many_requests)));
    assert_eq!(status(&mut svc, one()), Some(StatusCode::OK));
    assert_eq!(status(&mut svc, one()), Some(StatusCode::TOO_MANY_REQUESTS));
    g.bench_function("seawall_refused_429", |b| {
        b.iter_batched(one, |req| call(&mut svc, req), BatchSize::SmallInput)
    });
    let mut svc = governor(HOURLY).layer(Ok200);
    assert_eq!(status(&mut svc, one()), Some(StatusCode::OK));
    assert_eq!(status(&mut svc, one()), Some(StatusCode::TOO_MANY_REQUESTS));
    g.bench_function("tower_governor_refused", |b| {
        b.iter_batched(one, |req| call(&mut svc, req), BatchSize::SmallInput)
    });
    g.finish();

    // The keys alone, from a request by reference.
    let mut g = c.benchmark_group("edge_key");
    let req = one();
    let ip = ClientIp::new().peer_from(|c: &ConnectInfo<SocketAddr>| c.0);
    g.bench_function("seawall_client_ip", |b| {
        b.iter(|| ip.key(std::hint::black_box(&req)))
    });
    g.bench_function("tower_governor_peer_ip", |b| {
        b.iter(|| PeerIpKeyExtractor.extract(std::hint::black_box(&req)).ok())
    });
    g.finish();
}

criterion_group!(benches, edge);
criterion_main!(benches);

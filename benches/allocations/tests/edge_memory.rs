//! The memory an edge rate limit holds per client, at 100 000 clients:
//! seawall's `KeyedBudgetLayer` keyed by `ClientIp` against tower_governor's
//! `GovernorLayer` keyed by the peer's IP, each driven by one request from
//! each of 100 000 distinct addresses (an `http::Request<()>` carrying
//! axum's `ConnectInfo<SocketAddr>`, as axum's server hands it over).
//!
//! Bytes are counted per thread (`seawall_test_support::CountingAlloc`):
//! the layers run on the test's thread, polled by hand, so what is counted
//! is exactly what they keep; the requests and responses are freed within
//! the count. Only seawall's figure is asserted (the design's bound: a
//! budget key in at most 100 bytes, the map's table included); both are
//! printed (`cargo test -p seawall-bench-allocations --test edge_memory --
//! --nocapture`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, Response, StatusCode};
use seawall_benches::call;
use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer};
use seawall_core::KeyMapConfig;
use seawall_core::key::ClientIp;
use seawall_test_support::{CountingAlloc, count, runtime};
use tower::{Layer, Service};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const CLIENTS: u32 = 100_000;

/// An empty 200 for every request, at once.
#[derive(Debug, Clone, Copy)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        std::future::ready(Ok(Response::new(Body::empty())))
    }
}

/// A request from 10.x.y.z (the i-th client).
fn request(i: u32) -> Request<()> {
    let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i));
    let mut req = Request::new(());
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    req
}

/// Bytes per client that driving `CLIENTS` distinct clients through `svc`
/// leaves allocated; every call must be admitted.
fn per_client<S>(svc: &mut S) -> f64
where
    S: Service<Request<()>, Response = Response<Body>>,
    S::Error: std::fmt::Debug,
{
    let held = count(|| {
        for i in 0..CLIENTS {
            let res = call(svc, request(i)).expect("admitted");
            assert_eq!(res.status(), StatusCode::OK, "admitted");
        }
    });
    held.bytes_retained() as f64 / f64::from(CLIENTS)
}

/// Ten a minute, a burst of ten: the first call of every client passes.
const PER: Duration = Duration::from_secs(6);
const BURST: u32 = 10;

#[test]
fn a_client_costs_seawall_at_most_100_bytes_and_tower_governor_prints() {
    let rt = runtime::paused();
    let _guard = rt.enter();

    // Room for every key whatever the shards they hash to.
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().rate(1).per(PER).burst(BURST))
        .keys(KeyMapConfig::new().capacity(2 * CLIENTS as usize));
    let layer = KeyedBudgetLayer::new::<Request<()>>(
        ClientIp::new().peer_from(|c: &ConnectInfo<SocketAddr>| c.0),
        &cfg,
    )
    .expect("a valid keyed budget");
    let mut svc = layer.layer(Ok200);
    let seawall = per_client(&mut svc);
    assert_eq!(layer.stats().keys, CLIENTS as usize, "one key per client");

    let governor_cfg = || {
        GovernorConfigBuilder::default()
            .period(PER)
            .burst_size(BURST)
            .finish()
            .expect("a valid governor config")
    };
    // governor's clock calibrates once per process, on first use: not a
    // per-client cost, so done before the count on a limiter of its own.
    let mut warm = GovernorLayer::new(governor_cfg()).layer(Ok200);
    let _ = call(&mut warm, request(CLIENTS));
    let governor_layer = GovernorLayer::new(governor_cfg());
    let mut svc = governor_layer.layer(Ok200);
    let governor = per_client(&mut svc);
    assert_eq!(svc.limiter.len(), CLIENTS as usize, "one key per client");

    println!(
        "bytes per client at {CLIENTS} clients: seawall KeyedBudgetLayer by ClientIp \
         {seawall:.1}, tower_governor GovernorLayer by peer IP {governor:.1}"
    );
    // Design rule: a budget key in at most 100 bytes, everything counted.
    assert!(seawall <= 100.0, "{seawall:.1} bytes per client");
}

//! The per-request cost of `SeawallMiddleware` over bare reqwest-middleware.
//!
//! Every case runs a `reqwest_middleware::ClientWithMiddleware` whose last
//! middleware answers an empty 200 at once, without the network, so what a
//! case costs over `bare` is seawall's own work per request (the middleware's
//! boxed future, the per-authority key, the layers). Each request is built
//! outside the measurement (`iter_batched`); the measurement is
//! `execute(request)` driven to completion on a current-thread runtime.
//!
//! - `bare`: the answering middleware alone;
//! - `breaker`: `SeawallMiddleware` with the keyed breaker only;
//! - `stack`: retry (3 attempts), keyed breaker, keyed adaptive timeout and
//!   a budget too large to refuse;
//! - `loopback_bare` / `loopback_stack`: the same two through a real
//!   reqwest client to an axum server on 127.0.0.1 (the network's cost, for
//!   scale);
//! - `key`: taking the per-authority key of a request alone.
//!
//! `cargo bench -p seawall-benches --bench reqwest`

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Extensions;
use reqwest::{Method, Request, Response, Url};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Next};
use seawall_breaker::KeyedBreakerConfig;
use seawall_budget::BudgetConfig;
use seawall_core::KeyFn;
use seawall_reqwest::{ByAuthority, SeawallMiddleware};
use seawall_retry::RetryConfig;
use seawall_timeout::KeyedAdaptiveTimeoutConfig;

type Answer<'a> = Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'a>>;

/// The last middleware: an empty 200, at once.
fn answer<'a>(_: Request, _: &'a mut Extensions, _: Next<'a>) -> Answer<'a> {
    Box::pin(async { Ok(Response::from(http::Response::new(""))) })
}

fn breaker_only() -> SeawallMiddleware {
    SeawallMiddleware::builder()
        .breaker(KeyedBreakerConfig::new())
        .build()
        .expect("a valid config")
}

fn stack() -> SeawallMiddleware {
    SeawallMiddleware::builder()
        .retry(RetryConfig::new().max_attempts(3))
        .breaker(KeyedBreakerConfig::new())
        .timeout(KeyedAdaptiveTimeoutConfig::new())
        .budget(
            BudgetConfig::new()
                .rate(1_000_000_000)
                .per(Duration::from_secs(1))
                .burst(1_000_000),
        )
        .build()
        .expect("a valid config")
}

fn client(seawall: Option<SeawallMiddleware>, answering: bool) -> ClientWithMiddleware {
    let mut builder = ClientBuilder::new(reqwest::Client::new());
    if let Some(seawall) = seawall {
        builder = builder.with(seawall);
    }
    if answering {
        builder = builder.with(answer);
    }
    builder.build()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let url: Url = "http://api.internal:8080/items".parse().expect("a url");
    let mut group = c.benchmark_group("reqwest");
    for (name, seawall) in [
        ("bare", None),
        ("breaker", Some(breaker_only())),
        ("stack", Some(stack())),
    ] {
        let client = client(seawall, true);
        group.bench_function(name, |b| {
            b.iter_batched(
                || Request::new(Method::GET, url.clone()),
                |req| rt.block_on(client.execute(black_box(req))),
                BatchSize::SmallInput,
            )
        });
    }

    let req = Request::new(Method::GET, url.clone());
    group.bench_function("key", |b| b.iter(|| ByAuthority.key(black_box(&req))));

    // The same over a real loopback connection, for scale.
    let (addr, _server) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("a bound address");
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "" }));
        (
            addr,
            tokio::spawn(async move { axum::serve(listener, app).await }),
        )
    });
    let url: Url = format!("http://{addr}/").parse().expect("a url");
    for (name, seawall) in [("loopback_bare", None), ("loopback_stack", Some(stack()))] {
        let client = client(seawall, false);
        group.bench_function(name, |b| {
            b.iter_batched(
                || Request::new(Method::GET, url.clone()),
                |req| rt.block_on(client.execute(black_box(req))),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

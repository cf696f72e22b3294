//! Every layer's metrics, served to Prometheus by `metrics-exporter-prometheus`.
//!
//! With the `metrics` feature each seawall layer reports through the
//! [`metrics`](https://docs.rs/metrics) facade under the names in
//! `seawall::core::names` (`seawall_shed_rejected_total{name, reason}`,
//! `seawall_breaker_state{name}`, …). Any `metrics` exporter then publishes
//! them; this example installs the Prometheus one with its HTTP listener,
//! and keeps traffic flowing through a server stack (shed → budget →
//! timeout) and a client stack (retry → breaker → timeout → budget) so that
//! the scrape has values.
//!
//! Run with `cargo run --example prometheus --features metrics`, then
//! `curl -s http://127.0.0.1:9464/metrics | grep seawall_`. Pass another
//! listen address as the first argument. Stop it with Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use seawall::breaker::{BreakerLayer, TripPolicy};
use seawall::budget::BudgetLayer;
use seawall::retry::{Backoff, RetryLayer};
use seawall::shed::ShedLayer;
use seawall::timeout::AdaptiveTimeoutLayer;
use seawall::{BoxError, ServiceBuilderExt};
use tower::{ServiceBuilder, ServiceExt};

/// A small xorshift, so the simulated work varies without a `rand` dependency.
fn next(seed: &AtomicU64) -> u64 {
    let mut x = seed.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    seed.store(x, Ordering::Relaxed);
    x
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9464".to_owned())
        .parse()?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()?;
    // Help texts and units for every seawall metric.
    seawall::core::names::describe_metrics();
    println!("serving metrics on http://{addr}/metrics (Ctrl-C to stop)");
    println!("try: curl -s http://{addr}/metrics | grep seawall_");

    let seed = Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15));

    // A server stack around a handler that takes 2–30ms, sometimes 400ms.
    let server = {
        let seed = seed.clone();
        ServiceBuilder::new()
            .shed(
                ShedLayer::builder()
                    .name("api")
                    .max_in_flight(16)
                    .soft_limit(8)
                    .build()?,
            )
            .budget(
                BudgetLayer::builder()
                    .name("api")
                    .rate(150)
                    .burst(30)
                    .build()?,
            )
            .adaptive_timeout(
                AdaptiveTimeoutLayer::builder()
                    .name("api")
                    .min_samples(50)
                    .min(Duration::from_millis(50))
                    .build()?,
            )
            .service_fn(move |_req: u64| {
                let r = next(&seed);
                let ms = if r.is_multiple_of(50) {
                    400
                } else {
                    2 + r % 29
                };
                async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok::<_, BoxError>(())
                }
            })
    };

    // A client stack to a peer that fails one call in ten, and fails them
    // all from 3s to 6s of every 20s (so the breaker trips and recovers).
    let client = {
        let seed = seed.clone();
        let started = tokio::time::Instant::now();
        ServiceBuilder::new()
            .retries(
                RetryLayer::builder()
                    .name("peer")
                    .max_attempts(3)
                    .backoff(Backoff::exponential(Duration::from_millis(5), 2.0).jitter(0.2))
                    .build()?,
            )
            .breaker(
                BreakerLayer::builder()
                    .name("peer")
                    .policy(TripPolicy::failure_rate_count(20, 0.5, 10))
                    .open_duration(Duration::from_secs(2))
                    .build()?,
            )
            .adaptive_timeout(
                AdaptiveTimeoutLayer::builder()
                    .name("peer")
                    .base(Duration::from_millis(200))
                    .build()?,
            )
            .budget(BudgetLayer::builder().name("peer").rate(300).build()?)
            .service_fn(move |_req: u64| {
                let down = (3..6).contains(&(started.elapsed().as_secs() % 20));
                let fail = down || next(&seed).is_multiple_of(10);
                async move {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    if fail {
                        Err::<(), BoxError>("peer failed".into())
                    } else {
                        Ok(())
                    }
                }
            })
    };

    // Bursts of 24 concurrent calls to each stack, 10 times a second.
    let traffic = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n = 0u64;
        loop {
            tick.tick().await;
            for _ in 0..24 {
                n += 1;
                tokio::spawn(server.clone().oneshot(n));
                tokio::spawn(client.clone().oneshot(n));
            }
        }
    });

    tokio::signal::ctrl_c().await?;
    traffic.abort();
    println!("stopped");
    Ok(())
}

//! Three replicas — three layers, three connections — share one budget of
//! 1000 calls/s kept in Redis, each offering 1000 calls/s (3× the budget).
//! Prints each replica's admitted rate and the total, every second for 10 s.
//!
//! ```text
//! cargo run -p seawall-budget-redis --example shared_budget
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p seawall-budget-redis --example shared_budget
//! ```
//!
//! Without `REDIS_URL` it starts its own `redis-server` on a free port of
//! 127.0.0.1 (no persistence) and stops it at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seawall_budget_redis::RedisBudgetLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

const REPLICAS: usize = 3;
const RATE: u32 = 1000;
const SECONDS: u64 = 10;

#[tokio::main]
async fn main() {
    let (_server, url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => match seawall_test_support::redis::RedisServer::start() {
            Some(s) => {
                let url = s.url();
                (Some(s), url)
            }
            None => {
                eprintln!("set REDIS_URL, or install redis-server, to run this example");
                return;
            }
        },
    };
    let cfg = RedisBudgetLayer::builder()
        .url(url.clone())
        .name(format!("shared-budget-example-{}", std::process::id()))
        .rate(RATE)
        // A small burst (2% of a second) and leases of at most 5 tokens, so
        // each second's total stays within a few percent of the rate.
        .burst(20)
        .lease_share(0.25)
        .into_config();
    println!("{REPLICAS} replicas share {RATE}/s on {url}, each offering {RATE}/s");

    let counters: Vec<Arc<AtomicU64>> = (0..REPLICAS).map(|_| Arc::default()).collect();
    let layers: Vec<RedisBudgetLayer> = (0..REPLICAS)
        .map(|_| RedisBudgetLayer::from_config(&cfg).expect("valid config"))
        .collect();
    for layer in &layers {
        layer.ping().await.expect("redis answers");
    }
    let stop = tokio::time::Instant::now() + Duration::from_secs(SECONDS);
    let mut replicas = Vec::new();
    for (layer, admitted) in layers.iter().zip(&counters) {
        let svc = layer.layer(service_fn(|x: u64| async move {
            Ok::<_, std::convert::Infallible>(x)
        }));
        let admitted = admitted.clone();
        replicas.push(tokio::spawn(async move {
            // 10 calls every 10ms: 1000 calls/s offered.
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while tokio::time::Instant::now() < stop {
                tick.tick().await;
                for i in 0..10 {
                    let mut svc = svc.clone();
                    if svc.ready().await.unwrap().call(i).await.is_ok() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let mut last = vec![0u64; REPLICAS];
    let mut worst: f64 = 0.0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    for second in 1..=SECONDS {
        tick.tick().await;
        let now: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let each: Vec<u64> = now.iter().zip(&last).map(|(n, l)| n - l).collect();
        let total: u64 = each.iter().sum();
        let off = (total as f64 - f64::from(RATE)) / f64::from(RATE) * 100.0;
        worst = worst.max(off.abs());
        let shares: Vec<String> = each.iter().map(|n| format!("{n:>4}/s")).collect();
        println!(
            "second {second:>2}: replicas [{}]  total {total:>5}/s  ({off:+.1}%)",
            shares.join(", ")
        );
        last = now;
    }
    for r in replicas {
        let _ = r.await;
    }
    let stats: Vec<_> = layers.iter().map(|l| l.stats()).collect();
    let admitted: u64 = stats.iter().map(|s| s.admitted).sum();
    let trips: u64 = stats.iter().map(|s| s.round_trips).sum();
    println!(
        "worst second {worst:.1}% off the rate; {trips} redis round trips for {admitted} admitted calls ({:.3} per call)",
        trips as f64 / admitted.max(1) as f64
    );
}

//! What one key of a keyed layer costs in memory, counted on the test's own
//! thread: keys come from requests, so whoever sends requests decides how
//! many there are.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_test_support::runtime;
use seawall_test_support::{CountingAlloc, count};
use seawall_timeout::{
    AdaptiveTimeoutConfig, KeyedAdaptiveTimeoutConfig, KeyedAdaptiveTimeoutLayer,
};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The bound the design sets for one timeout key, in bytes.
const PER_KEY: i64 = 4 * 1024;

fn keys() -> u64 {
    std::env::var("KEY_MEMORY_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Bytes retained per key after `keys` distinct keys each made one call
/// (measured, so each key has recorded a sample).
fn bytes_per_key(config: KeyedAdaptiveTimeoutConfig, keys: u64) -> i64 {
    let rt = runtime::paused();
    rt.block_on(async {
        let mut cx = Context::from_waker(Waker::noop());
        let layer = KeyedAdaptiveTimeoutLayer::new(|k: &u64| *k, &config).unwrap();
        let mut svc = layer.layer(service_fn(|k: u64| {
            std::future::ready(Ok::<_, std::io::Error>(k))
        }));
        let used = count(|| {
            for k in 0..keys {
                assert!(svc.poll_ready(&mut cx).is_ready());
                let mut fut = pin!(svc.call(k));
                assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
            }
        });
        assert_eq!(layer.len() as u64, keys, "every key is held");
        let stats = layer.key_stats(&(keys - 1)).unwrap();
        assert_eq!(stats.samples, 1, "the key recorded its sample");
        used.bytes_retained() / keys as i64
    })
}

#[test]
fn a_key_costs_at_most_4_kib_with_the_defaults() {
    let n = keys();
    let per_key = bytes_per_key(
        KeyedAdaptiveTimeoutConfig::new().capacity(2 * n as usize),
        n,
    );
    println!("{per_key} bytes per key over {n} keys");
    assert!(per_key <= PER_KEY, "{per_key} bytes per key");
}

#[test]
fn a_key_costs_at_most_4_kib_whatever_max() {
    let n = keys() / 10;
    let per_key = bytes_per_key(
        KeyedAdaptiveTimeoutConfig::from(
            AdaptiveTimeoutConfig::builder()
                .max(seawall_timeout::LONGEST_DEADLINE)
                .into_config(),
        )
        .capacity(2 * n as usize),
        n,
    );
    println!("{per_key} bytes per key over {n} keys, max = 365 days");
    assert!(per_key <= PER_KEY, "{per_key} bytes per key");
}

#[test]
fn eviction_gives_the_memory_back() {
    // 10 000 keys through a 100-key map: what stays is the map's 100 keys.
    let rt = runtime::paused();
    rt.block_on(async {
        let mut cx = Context::from_waker(Waker::noop());
        let layer = KeyedAdaptiveTimeoutLayer::new(
            |k: &u64| *k,
            &KeyedAdaptiveTimeoutConfig::new()
                .capacity(100)
                .idle_ttl(Duration::from_secs(1)),
        )
        .unwrap();
        let mut svc = layer.layer(service_fn(|k: u64| {
            std::future::ready(Ok::<_, std::io::Error>(k))
        }));
        let used = count(|| {
            for k in 0..10_000u64 {
                assert!(svc.poll_ready(&mut cx).is_ready());
                let mut fut = pin!(svc.call(k));
                assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
            }
        });
        assert!(layer.len() <= 100);
        assert!(
            used.bytes_retained() <= 100 * PER_KEY,
            "{} bytes retained",
            used.bytes_retained()
        );
    });
}

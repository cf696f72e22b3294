//! With feature `metrics`: per-key series live only while their key does.
#![cfg(feature = "metrics")]

use seawall_test_support::metrics::{Recording, Value};
use seawall_test_support::runtime;
use seawall_test_support::service::ready_call_ok;
use seawall_timeout::{
    AdaptiveTimeoutConfig, KeyedAdaptiveTimeoutConfig, KeyedAdaptiveTimeoutLayer,
};
use tower::{Layer, service_fn};

/// Per-key series registered, and those whose value is not NaN (what an
/// exporter still shows as a live deadline).
fn keyed(rec: &Recording) -> (usize, usize) {
    let keyed: Vec<_> = rec
        .series()
        .into_iter()
        .filter(|s| s.label("key").is_some())
        .collect();
    let live = keyed
        .iter()
        .filter(|s| !matches!(s.value, Value::Gauge(v) if v.is_nan()))
        .count();
    (keyed.len(), live)
}

/// Sends `calls` calls for each of `keys` through a keyed layer of 100 keys
/// whose keys learn a deadline after 2 samples; returns (per-key series
/// registered, per-key series live).
fn churn(keys: u64, calls: u32) -> (usize, usize) {
    let rec = Recording::default();
    let rt = runtime::paused();
    let _g = rt.enter();
    metrics::with_local_recorder(&rec, || {
        let per_key = AdaptiveTimeoutConfig::builder()
            .name("peers")
            .min_samples(2)
            .refresh_every(1)
            .into_config();
        let config = KeyedAdaptiveTimeoutConfig::from(per_key)
            .capacity(100)
            // Per-key series are opt-in; these tests are about them.
            .key_metrics(true);
        let layer = KeyedAdaptiveTimeoutLayer::new(|k: &u64| *k, &config).unwrap();
        let mut svc = layer.layer(service_fn(|k: u64| {
            std::future::ready(Ok::<_, std::io::Error>(k))
        }));
        for k in 0..keys {
            for _ in 0..calls {
                assert!(ready_call_ok(&mut svc, k));
            }
            // Each key's window drains before the next arrives, so that it
            // may be evicted (a learned deadline is kept while it is fresh).
            rt.block_on(tokio::time::advance(std::time::Duration::from_secs(71)));
        }
        assert!(layer.len() <= 100);
    });
    keyed(&rec)
}

#[test]
fn a_key_that_never_learns_a_deadline_registers_no_series() {
    let (registered, live) = churn(20_000, 1);
    assert_eq!((registered, live), (0, 0));
}

#[test]
fn per_key_series_live_only_while_their_key_does() {
    let (registered, live) = churn(20_000, 2);
    assert_eq!(registered, 20_000, "each key learned a deadline");
    assert!(live <= 100, "{live} live per-key series");
}

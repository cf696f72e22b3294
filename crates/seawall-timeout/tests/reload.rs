//! Live reload of running adaptive timeouts: the window and its histograms
//! are kept, the new percentile / clamp / fixed deadline applies to the
//! next call, and what cannot change in place is refused whole. Paused
//! tokio time only.

use std::time::Duration;

use seawall_core::deadline::CallTimeout;
use seawall_core::{Elapsed, KeyMapConfig, ReloadError};
use seawall_timeout::{
    AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, DeadlineSource, KeyedAdaptiveTimeoutConfig,
    KeyedAdaptiveTimeoutLayer,
};
use tower::{Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// A service that answers after the delay it is asked for.
fn sleeper() -> impl tower::Service<
    Duration,
    Response = (),
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<(), std::convert::Infallible>> + Send,
> + Clone {
    service_fn(|d: Duration| async move {
        tokio::time::sleep(d).await;
        Ok(())
    })
}

fn config() -> AdaptiveTimeoutConfig {
    AdaptiveTimeoutConfig::builder()
        .percentile(99.0)
        .multiplier(1.5)
        .min(10 * MS)
        .max(2_000 * MS)
        .min_samples(20)
        .into_config()
}

fn elapsed_after(err: &seawall_core::BoxError) -> Duration {
    err.downcast_ref::<Elapsed>()
        .unwrap_or_else(|| panic!("not Elapsed: {err}"))
        .after()
}

#[tokio::test(start_paused = true)]
async fn the_histogram_is_kept_and_the_new_percentile_gives_the_next_deadline() {
    let layer = AdaptiveTimeoutLayer::from_config(&config()).unwrap();
    let svc = layer.layer(sleeper());
    // 90 calls of 100ms, 10 of 400ms: p99 is 400ms, p50 100ms.
    for i in 0..100u64 {
        let d = if i % 10 == 0 { 400 * MS } else { 100 * MS };
        svc.clone().oneshot(d).await.unwrap();
    }
    let before = layer.stats();
    assert_eq!(before.source, DeadlineSource::Adaptive);
    assert_eq!(before.samples, 100);
    assert!(
        before.deadline >= 600 * MS && before.deadline < 610 * MS,
        "{before:?}"
    );

    let mut median = config();
    median.percentile = 50.0;
    median.multiplier = 2.0;
    layer.reload(&median).unwrap();
    let after = layer.stats();
    assert_eq!(after.samples, 100, "the samples are kept");
    assert_eq!(after.source, DeadlineSource::Adaptive);
    assert!(
        after.deadline >= 200 * MS && after.deadline < 203 * MS,
        "{after:?}"
    );
    // The next call, through a service made before the reload, gets it.
    let err = svc.clone().oneshot(300 * MS).await.unwrap_err();
    assert_eq!(elapsed_after(&err), after.deadline);
}

#[tokio::test(start_paused = true)]
async fn a_new_clamp_applies_to_the_next_deadline_and_to_a_callers_timeout() {
    let layer = AdaptiveTimeoutLayer::from_config(&config()).unwrap();
    let svc = layer.layer(sleeper());
    for _ in 0..20 {
        svc.clone().oneshot(100 * MS).await.unwrap();
    }
    assert!(layer.deadline() >= 150 * MS);
    // A floor above the learned deadline lifts it at once.
    let mut floor = config();
    floor.min = 500 * MS;
    layer.reload(&floor).unwrap();
    assert_eq!(layer.deadline(), 500 * MS);
    // A ceiling below it caps it, and caps what a caller may ask for.
    let mut ceiling = config();
    ceiling.max = 120 * MS;
    ceiling.base = 100 * MS;
    layer.reload(&ceiling).unwrap();
    assert_eq!(layer.deadline(), 120 * MS);
    let err = CallTimeout::scope(1_000 * MS, svc.clone().oneshot(200 * MS))
        .await
        .unwrap_err();
    assert_eq!(elapsed_after(&err), 120 * MS);
    // Raised again, up to twice the max built with: in place.
    let mut higher = config();
    higher.max = 4_000 * MS;
    layer.reload(&higher).unwrap();
    assert!(
        CallTimeout::scope(1_000 * MS, svc.clone().oneshot(900 * MS))
            .await
            .is_ok()
    );
    assert!(
        layer.stats().samples >= 20,
        "the window survives the reloads"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fixed_deadline_reloads_for_services_already_built() {
    let fixed = AdaptiveTimeoutConfig::builder()
        .fixed(100 * MS)
        .into_config();
    let layer = AdaptiveTimeoutLayer::from_config(&fixed).unwrap();
    let svc = layer.layer(sleeper());
    assert!(svc.clone().oneshot(150 * MS).await.is_err());
    let longer = AdaptiveTimeoutConfig::builder()
        .fixed(200 * MS)
        .into_config();
    layer.reload(&longer).unwrap();
    assert_eq!(layer.deadline(), 200 * MS);
    assert!(svc.clone().oneshot(150 * MS).await.is_ok());
    let err = svc.clone().oneshot(250 * MS).await.unwrap_err();
    assert_eq!(elapsed_after(&err), 200 * MS);
    // A caller may still only shorten it.
    let err = CallTimeout::scope(1_000 * MS, svc.clone().oneshot(250 * MS))
        .await
        .unwrap_err();
    assert_eq!(elapsed_after(&err), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn refused_reloads_change_nothing() {
    let layer = AdaptiveTimeoutLayer::from_config(&config()).unwrap();
    let svc = layer.layer(sleeper());
    for _ in 0..20 {
        svc.clone().oneshot(100 * MS).await.unwrap();
    }
    let before = layer.stats();
    let mut cases: Vec<(AdaptiveTimeoutConfig, Option<&str>)> = Vec::new();
    let mut bad = config();
    bad.percentile = 101.0;
    bad.min = 1 * MS;
    cases.push((bad, None));
    let mut bad = config();
    bad.min = 3_000 * MS; // above max
    cases.push((bad, None));
    let mut bad = config();
    bad.window = Duration::from_secs(10);
    bad.percentile = 50.0;
    cases.push((bad, Some("window")));
    let mut bad = config();
    bad.name = "other".into();
    cases.push((bad, Some("name")));
    let mut bad = config();
    bad.max = 4_001 * MS;
    cases.push((bad, Some("max")));
    cases.push((
        AdaptiveTimeoutConfig::builder()
            .fixed(50 * MS)
            .into_config(),
        Some("fixed"),
    ));
    for (bad, field) in cases {
        let err = layer.reload(&bad).unwrap_err();
        match field {
            Some(f) => assert_eq!(err.not_in_place_field(), Some(f), "{err}"),
            None => assert!(matches!(err, ReloadError::Invalid(_)), "{err}"),
        }
        assert_eq!(layer.stats(), before);
    }
    let fixed = AdaptiveTimeoutLayer::fixed(100 * MS);
    let err = fixed.reload(&config()).unwrap_err();
    assert_eq!(err.not_in_place_field(), Some("fixed"));
    assert_eq!(fixed.deadline(), 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn keyed_reload_reaches_held_keys_and_new_ones() {
    let per_key = AdaptiveTimeoutConfig::builder()
        .base(1_000 * MS)
        .min_samples(5)
        .multiplier(2.0)
        .into_config();
    let config = KeyedAdaptiveTimeoutConfig::new()
        .per_key(per_key.clone())
        .keys(KeyMapConfig::new().capacity(16));
    let layer =
        KeyedAdaptiveTimeoutLayer::new(|d: &Duration| d.as_millis() as u64, &config).unwrap();
    let svc = layer.layer(sleeper());
    for _ in 0..5 {
        svc.clone().oneshot(100 * MS).await.unwrap();
    }
    let learned = layer.key_stats(&100).unwrap();
    // p99 of 100ms (compact histograms: within 12.5%), × 2.
    assert!(
        learned.deadline >= 200 * MS && learned.deadline < 230 * MS,
        "{learned:?}"
    );

    let mut next = per_key.clone();
    next.multiplier = 3.0;
    next.base = 50 * MS;
    layer.reload(&config.clone().per_key(next.clone())).unwrap();
    assert_eq!(layer.config().per_key, next);
    let held = layer.key_stats(&100).unwrap();
    assert_eq!(held.samples, 5, "the key's window is kept");
    // The same percentile, × 3 instead of × 2.
    let expected = learned.deadline * 3 / 2;
    assert!(
        held.deadline.abs_diff(expected) <= MS,
        "{held:?} vs {expected:?}"
    );
    // A key first seen after the reload starts on the new base.
    let err = svc.clone().oneshot(70 * MS).await.unwrap_err();
    assert_eq!(elapsed_after(&err), 50 * MS);

    let mut bad = next.clone();
    bad.window = Duration::from_secs(5);
    let err = layer.reload(&config.clone().per_key(bad)).unwrap_err();
    assert_eq!(err.not_in_place_field(), Some("per_key.window"));
    let err = layer
        .reload(
            &config
                .clone()
                .per_key(next.clone())
                .keys(KeyMapConfig::new().capacity(8)),
        )
        .unwrap_err();
    assert_eq!(err.not_in_place_field(), Some("keys"));
    assert_eq!(layer.config().per_key, next);
}

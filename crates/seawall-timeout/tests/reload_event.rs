//! A reload emits exactly one `info` event, naming the layer and the fields
//! that changed.
//!
//! A binary of its own: tracing caches each callsite's interest
//! process-wide, so a scoped subscriber set while other tests run on other
//! threads may miss events.

use seawall_test_support::trace::capture;

#[test]
fn one_info_event_per_reload() {
    use seawall_timeout::{AdaptiveTimeoutConfig, AdaptiveTimeoutLayer};
    let rt = seawall_test_support::runtime::paused();
    let _enter = rt.enter();
    let (seen, _guard) = capture("seawall_timeout", &["layer", "changed"]);
    let config = AdaptiveTimeoutConfig::default();
    let layer = AdaptiveTimeoutLayer::from_config(&config).unwrap();
    let mut next = config.clone();
    next.percentile = 95.0;
    layer.reload(&next).unwrap();
    next.percentile = 101.0;
    assert!(layer.reload(&next).is_err());
    assert_eq!(
        seen.lines(),
        ["INFO layer=adaptive_timeout changed=percentile"]
    );
}

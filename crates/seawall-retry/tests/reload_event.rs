//! A reload emits exactly one `info` event, naming the layer and the fields
//! that changed.
//!
//! A binary of its own: tracing caches each callsite's interest
//! process-wide, so a scoped subscriber set while other tests run on other
//! threads may miss events.

use seawall_test_support::trace::capture;

#[test]
fn one_info_event_per_reload() {
    use seawall_retry::{RetryConfig, RetryLayer};
    let (seen, _guard) = capture("seawall_retry", &["layer", "changed"]);
    let config = RetryConfig::new().max_attempts(3);
    let layer = RetryLayer::from_config(&config).unwrap();
    layer.reload(&config.clone().max_attempts(5)).unwrap();
    assert!(layer.reload(&config.clone().max_attempts(0)).is_err());
    assert_eq!(seen.lines(), ["INFO layer=retry changed=max_attempts"]);
}

//! A reload emits exactly one `info` event, naming the layer and the fields
//! that changed.
//!
//! A binary of its own: tracing caches each callsite's interest
//! process-wide, so a scoped subscriber set while other tests run on other
//! threads may miss events.

use seawall_test_support::trace::capture;

#[test]
fn one_info_event_per_reload() {
    use seawall_budget::{BudgetConfig, BudgetLayer};
    let (seen, _guard) = capture("seawall_budget", &["layer", "changed"]);
    let config = BudgetConfig::new().rate(10);
    let layer = BudgetLayer::from_config(&config).unwrap();
    layer.reload(&config.clone().rate(20).burst(5)).unwrap();
    assert!(layer.reload(&config.clone().rate(0)).is_err());
    assert_eq!(seen.lines(), ["INFO layer=budget changed=rate, burst"]);
}

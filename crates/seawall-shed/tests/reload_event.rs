//! A shedder's reload is one `tracing` event naming what changed.
//!
//! A binary of its own: a thread-scoped subscriber misses events whose
//! callsite another test thread registers at the same moment (tracing
//! caches each callsite's interest process-wide), so nothing else may run
//! beside it.

use seawall_test_support::trace::capture;

use seawall_shed::{Limit, ShedConfig, Shedder};

#[test]
fn a_reload_is_one_info_event_naming_what_changed() {
    let (events, _guard) = capture("seawall_shed", &["name", "changed", "limit"]);
    let config = ShedConfig::new().name("api").limit(Limit::Fixed(10));
    let shedder = Shedder::new(&config).unwrap();
    shedder
        .reload(&config.clone().limit(Limit::Fixed(20)).soft_limit(15))
        .unwrap();
    assert!(shedder.reload(&config.clone().name("x")).is_err());
    assert_eq!(
        events.lines(),
        ["INFO name=api changed=limit, soft_limit limit=20"]
    );
}

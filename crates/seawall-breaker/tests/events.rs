//! Every transition emits one `tracing` event with target `seawall_breaker`
//! and the fields `name`, `key`, `from`, `to`; calls emit nothing.

use std::time::Duration;

use seawall_breaker::{CircuitBreaker, TripPolicy};
use seawall_test_support::trace::capture;

/// One test at a time: a thread-scoped subscriber misses events whose
/// callsite another test thread registers at the same moment (tracing
/// caches each callsite's interest process-wide).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(start_paused = true)]
async fn transitions_are_traced() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (events, _guard) = capture(
        "seawall_breaker",
        &["name", "key", "from", "to", "open_for"],
    );
    let b = CircuitBreaker::builder()
        .name("db")
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(Duration::from_secs(1))
        .success_threshold(1)
        .build_breaker()
        .unwrap();
    for _ in 0..10 {
        b.try_acquire().unwrap().success();
    }
    assert!(events.lines().is_empty(), "nothing per call");
    b.try_acquire().unwrap().failure();
    let _ = b.try_acquire();
    tokio::time::advance(Duration::from_secs(1)).await;
    b.try_acquire().unwrap().success();
    b.force_open();
    b.reset();
    let got = events.lines();
    assert_eq!(
        got,
        [
            "WARN name=db key= from=closed to=open open_for=1s",
            "INFO name=db key= from=open to=half_open",
            "INFO name=db key= from=half_open to=closed",
            "WARN name=db key= from=closed to=forced_open open_for=1s",
            "INFO name=db key= from=forced_open to=closed",
        ]
    );
}

#[test]
fn a_reload_is_one_info_event_naming_what_changed() {
    let _one = ONE_AT_A_TIME.blocking_lock();
    let (events, _guard) = capture("seawall_breaker", &["name", "changed"]);
    let config = seawall_breaker::BreakerConfig::new()
        .name("db")
        .policy(TripPolicy::consecutive_failures(3));
    let b = CircuitBreaker::from_config(&config).unwrap();
    b.reload(
        &config
            .clone()
            .policy(TripPolicy::consecutive_failures(5))
            .open_duration(Duration::from_secs(5)),
    )
    .unwrap();
    b.reload(&b.config()).unwrap();
    // A refused reload says so to its caller only.
    assert!(b.reload(&config.clone().name("other")).is_err());
    assert_eq!(
        events.lines(),
        [
            "INFO name=db changed=policy, open_duration",
            "INFO name=db changed=(nothing)",
        ]
    );
}

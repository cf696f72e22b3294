//! The dead-peer scenario, short: one of three peers refuses connections,
//! then hangs, then recovers, behind a keyed breaker over a keyed adaptive
//! timeout. Real sockets on 127.0.0.1; generous deadlines.

use std::time::Duration;

use seawall_scenarios::dead_peer::{DeadPeerConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_peer_is_isolated_and_the_healthy_ones_see_no_errors() {
    let config = DeadPeerConfig::short();
    let threshold = config.failure_threshold as usize;
    let max = config.timeout_max;
    let report = tokio::time::timeout(Duration::from_secs(60), run(config))
        .await
        .expect("bounded")
        .expect("ran");
    println!("{}", report.table());
    let run = report.protected().expect("ran");
    // Isolated within the failure threshold's worth of calls (plus the few
    // that may be in flight at once).
    let calls = run.calls_before_isolation.expect("isolated");
    assert!(calls <= threshold + 3, "{calls} calls before isolation");
    // Healthy peers never fail.
    assert!(run.healthy_calls() > 100);
    assert_eq!(run.healthy_errors(), 0, "{:?}", run.per_peer);
    // No call waits (much) longer than the adaptive timeout's max, though
    // the hanging peer never answers.
    assert!(
        run.latency.max < max + Duration::from_secs(2),
        "{:?}",
        run.latency.max
    );
    // The recovered peer is used again.
    assert!(run.time_to_reuse.is_some());
}

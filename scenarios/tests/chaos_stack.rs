//! The chaos-stack scenario, short: three peers, one failing 30% of its
//! calls and one 500 ms slower (injected by `ChaosLayer`), under peer
//! selection with a breaker per peer, an adaptive timeout per peer, a
//! retry budget and a fallback. Real sockets on 127.0.0.1; only what the
//! mechanisms guarantee is asserted, never a timing figure.

use std::time::Duration;

use seawall_scenarios::chaos_stack::{ChaosStackConfig, Client, ERRORING, PEERS, SLOW, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_isolates_routes_around_bounds_retries_and_answers() {
    let config = ChaosStackConfig::short();
    let report = tokio::time::timeout(Duration::from_secs(60), run(config.clone()))
        .await
        .expect("bounded")
        .expect("ran");
    println!("{}", report.table());
    let bare = report.run(Client::Bare).expect("ran");
    let stack = report.run(Client::Stack).expect("ran");
    assert!(stack.requests > 100);

    // Without the stack, the injected errors reach the caller.
    assert!(bare.errors > 0);
    // With it, the fallback answers whatever is left: no error reaches the caller.
    assert_eq!(stack.errors, 0, "{stack:?}");
    // The breaker isolates both bad peers and never the healthy one.
    assert!(stack.trips[ERRORING] >= 1, "{:?}", stack.trips);
    assert!(stack.trips[SLOW] >= 1, "{:?}", stack.trips);
    assert_eq!(stack.trips[0], 0, "{:?}", stack.trips);
    // Routing: while chaos is on, the slow peer gets less than half its
    // share (a third of the attempts) and the healthy one more than its share.
    let total: u64 = stack.peer_attempts_in_chaos.iter().sum();
    let share = total as f64 / PEERS as f64;
    assert!(
        (stack.peer_attempts_in_chaos[SLOW] as f64) < share / 2.0,
        "{:?}",
        stack.peer_attempts_in_chaos
    );
    assert!((stack.peer_attempts_in_chaos[0] as f64) > share);
    // The retry budget bounds amplification; the stack did retry.
    let amplification = stack.attempts as f64 / stack.requests as f64;
    assert!(
        amplification <= config.amplification_bound(stack.requests),
        "{amplification} attempts/request"
    );
    assert!(stack.attempts > stack.requests);
}

//! The retry-storm scenario, short: a backend failing every call; naive
//! retries multiply its load, the retry budget bounds it.

use std::time::Duration;

use seawall_scenarios::retry_storm::{Retries, RetryStormConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_bounds_amplification_that_naive_retries_triple() {
    let config = RetryStormConfig::short();
    let report = tokio::time::timeout(Duration::from_secs(60), run(config))
        .await
        .expect("bounded")
        .expect("ran");
    println!("{}", report.table());
    let naive = report
        .runs
        .iter()
        .find(|r| r.retries == Retries::Naive)
        .expect("ran");
    let budget = report
        .runs
        .iter()
        .find(|r| r.retries != Retries::Naive)
        .expect("ran");
    assert!(naive.requests > 100 && budget.requests > 100);
    // Bound: 1 + ratio (0.1) + floor (1/s x 10 s over ~200 requests) = 1.15.
    assert!(
        budget.amplification() <= 1.5,
        "budget {}",
        budget.amplification()
    );
    assert!(
        naive.amplification() >= 2.5,
        "naive {}",
        naive.amplification()
    );
    assert!(budget.amplification() < naive.amplification());
    // Both clients get answers again once the backend recovers.
    assert!(budget.recovered_ok > 0 && naive.recovered_ok > 0);
}

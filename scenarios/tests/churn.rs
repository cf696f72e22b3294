//! The key-churn scenario, short: a keyed budget flooded with ten times its
//! capacity in fresh keys holds every limit.

use seawall_scenarios::churn::{ChurnConfig, run};

#[test]
fn a_flood_of_fresh_keys_resets_no_limit_and_starves_no_honest_client() {
    check(ChurnConfig::short());
}

#[test]
fn junk_keys_mixed_into_each_round_buy_the_abuser_nothing() {
    check(ChurnConfig::bypass());
}

fn check(config: ChurnConfig) {
    let report = run(config.clone()).expect("ran");
    println!("{}", report.table());
    // The abuser gets its allowance, not a fresh burst per eviction.
    assert!(
        report.abuser_admitted <= config.allowance() + 1,
        "abuser admitted {} of an allowance of {}",
        report.abuser_admitted,
        config.allowance()
    );
    // Honest clients at their limit are all admitted.
    assert_eq!(report.honest_admitted, report.honest_sent);
    assert!(report.junk_sent >= (config.churn * config.capacity) as u64);
    assert!(report.keys <= config.capacity + 64, "keys {}", report.keys);
}

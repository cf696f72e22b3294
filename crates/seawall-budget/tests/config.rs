//! Configs from TOML (feature `serde`) and their validation.
#![cfg(feature = "serde")]

use std::time::Duration;

use seawall_budget::bounded::OverflowPolicy;
use seawall_budget::{
    BudgetConfig, BudgetLayer, BudgetMode, KeyedBudgetConfig, LoopBudget, LoopBudgetConfig,
};

#[derive(serde::Deserialize)]
struct File {
    budget: BudgetConfig,
    sweeper: LoopBudgetConfig,
    per_client: KeyedBudgetConfig,
    overflow: OverflowPolicy,
}

#[test]
fn a_whole_file_parses_with_humantime_durations() {
    let file: File = toml::from_str(
        r#"
        overflow = "drop_oldest"

        [budget]
        name = "payments"
        rate = 200
        per = "1s"
        burst = 20
        mode = "wait"

        [sweeper]
        rate = 5
        per = "250ms"
        backoff_initial = "50ms"
        backoff_max = "5s"

        [per_client.per_key]
        name = "clients"
        rate = 10

        [per_client.keys]
        capacity = 500
        idle_ttl = "2m"
        "#,
    )
    .unwrap();
    assert_eq!(file.overflow, OverflowPolicy::DropOldest);
    let layer = BudgetLayer::from_config(&file.budget).unwrap();
    assert_eq!(layer.mode(), BudgetMode::Wait);
    assert_eq!(layer.budget().burst(), 20);
    assert_eq!(layer.budget().config().name, "payments");

    let sweeper = LoopBudget::from_config(&file.sweeper).unwrap();
    assert_eq!(sweeper.emission_interval(), Duration::from_millis(50));
    assert_eq!(
        sweeper.config().backoff_multiplier,
        1.5,
        "defaults fill the rest"
    );
    assert_eq!(sweeper.config().name, "default");

    assert_eq!(file.per_client.keys.idle_ttl, Duration::from_secs(120));
    assert_eq!(file.per_client.keys.capacity, 500);
    assert_eq!(file.per_client.per_key.name, "clients");
    assert_eq!(file.per_client.effective_burst(), 1);
    assert!(file.per_client.validate().is_ok());
}

#[test]
fn a_keyed_table_keeps_its_parts_apart() {
    // The old flat shape is refused, naming the field.
    let err = toml::from_str::<KeyedBudgetConfig>("rate = 10").unwrap_err();
    assert!(err.to_string().contains("unknown field `rate`"), "{err}");
    // Either table may be left out: its defaults apply.
    let cfg: KeyedBudgetConfig = toml::from_str("[keys]\ncapacity = 3").unwrap();
    assert_eq!(cfg.keys.capacity, 3);
    assert_eq!(cfg.per_key, BudgetConfig::default());
    // Wait mode per key is a config error naming its path.
    let cfg: KeyedBudgetConfig = toml::from_str("[per_key]\nmode = \"wait\"").unwrap();
    assert_eq!(cfg.validate().unwrap_err().field(), "per_key.mode");
}

#[test]
fn unknown_fields_are_refused() {
    let err = toml::from_str::<BudgetConfig>("rate = 1\nrat = 2").unwrap_err();
    assert!(err.to_string().contains("unknown field `rat`"), "{err}");
}

#[test]
fn a_zero_rate_from_a_file_is_a_config_error() {
    let cfg: LoopBudgetConfig = toml::from_str("rate = 0\nburst = 0").unwrap();
    let err = LoopBudget::from_config(&cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rate: 0 must be greater than zero; burst: 0 must be greater than zero"
    );
}

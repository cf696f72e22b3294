//! `ShedConfig` from TOML (feature `serde`).
#![cfg(feature = "serde")]

use std::time::Duration;

use seawall_shed::{Gradient2, Limit, ShedConfig, ShedLayer, Vegas};

#[test]
fn a_whole_config_parses() {
    let config: ShedConfig = toml::from_str(
        r#"
        name = "api"
        limit = { gradient2 = { min = 10, max = 500, tolerance = 2.0 } }
        soft_limit = 80
        critical_headroom = 0.1
        retry_after = "250ms"
        window = "500ms"
        max_queue_delay = "20ms"
        queue_capacity = 64
        "#,
    )
    .unwrap();
    assert_eq!(config.name, "api");
    assert_eq!(
        config.limit,
        Limit::Gradient2(Gradient2::new().min(10).max(500).tolerance(2.0))
    );
    assert_eq!(config.retry_after, Duration::from_millis(250));
    assert_eq!(config.max_queue_delay, Some(Duration::from_millis(20)));
    assert_eq!(config.queue_capacity, 64);
    let layer = ShedLayer::from_config(&config).unwrap();
    assert_eq!(layer.stats().limit, 20);
}

#[test]
fn defaults_and_other_limits() {
    let config: ShedConfig = toml::from_str("").unwrap();
    assert_eq!(config, ShedConfig::default());
    let config: ShedConfig = toml::from_str("limit = { fixed = 7 }").unwrap();
    assert_eq!(config.limit, Limit::Fixed(7));
    let config: ShedConfig = toml::from_str("limit = { vegas = { max = 50 } }").unwrap();
    assert_eq!(config.limit, Limit::Vegas(Vegas::new().max(50)));
    let config: ShedConfig = toml::from_str("limit = { aimd = { timeout = \"2s\" } }").unwrap();
    assert!(matches!(config.limit, Limit::Aimd(a) if a.timeout == Duration::from_secs(2)));
}

#[test]
fn a_memory_pressure_table_parses() {
    let config: ShedConfig = toml::from_str(
        r#"
        name = "api"
        [memory_pressure]
        interval = "250ms"
        shed_sheddable_at = 0.6
        rss_budget = 1073741824
        "#,
    )
    .unwrap();
    let memory = config.memory_pressure.clone().unwrap();
    assert_eq!(memory.interval, Duration::from_millis(250));
    assert_eq!(memory.shed_sheddable_at, 0.6);
    assert_eq!(memory.shed_normal_at, 0.9);
    assert_eq!(memory.hysteresis, 0.05);
    assert_eq!(memory.rss_budget, Some(1 << 30));
    assert!(config.validate().is_ok());
    assert!(
        toml::from_str::<ShedConfig>(
            "[memory_pressure]
threshold = 0.5"
        )
        .is_err()
    );
    let bad: ShedConfig = toml::from_str(
        "[memory_pressure]
shed_normal_at = 0.5",
    )
    .unwrap();
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "memory_pressure.shed_sheddable_at: 0.7 must be at most shed_normal_at (0.5)"
    );
}

#[test]
fn unknown_fields_are_refused() {
    assert!(toml::from_str::<ShedConfig>("max_inflight = 3").is_err());
    assert!(toml::from_str::<ShedConfig>("limit = { aimd = { mn = 3 } }").is_err());
}

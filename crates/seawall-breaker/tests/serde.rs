//! Configs load from TOML (feature `serde`): defaults, durations, policies,
//! unknown fields rejected.
#![cfg(feature = "serde")]

use std::time::Duration;

use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, OpenBackoff, TripPolicy};

#[test]
fn an_empty_table_is_the_default() {
    let c: BreakerConfig = toml::from_str("").unwrap();
    assert_eq!(c, BreakerConfig::default());
}

#[test]
fn every_field_and_policy_parses() {
    let c: BreakerConfig = toml::from_str(
        r#"
        name = "payments"
        open_duration = "10s"
        half_open_max_calls = 1
        success_threshold = 1
        cancelled_is_failure = true
        policy = { kind = "failure_rate_time", window = "30s", buckets = 6, rate = 0.5, min_calls = 20 }
        open_backoff = { multiplier = 3.0, max_open_duration = "2m", jitter = 0.2 }
        "#,
    )
    .unwrap();
    assert_eq!(c.name, "payments");
    assert_eq!(c.open_duration, Duration::from_secs(10));
    assert!(c.cancelled_is_failure);
    assert_eq!(
        c.policy,
        TripPolicy::FailureRateTime {
            window: Duration::from_secs(30),
            buckets: 6,
            rate: 0.5,
            min_calls: 20
        }
    );
    assert_eq!(
        c.open_backoff,
        Some(
            OpenBackoff::new()
                .multiplier(3.0)
                .max_open_duration(Duration::from_secs(120))
                .jitter(0.2)
        )
    );
    assert!(c.validate().is_ok());

    for (src, want) in [
        (
            r#"kind = "consecutive_failures"
               threshold = 3"#,
            TripPolicy::consecutive_failures(3),
        ),
        (
            r#"kind = "failure_rate_count"
               window = 50
               rate = 0.25
               min_calls = 10"#,
            TripPolicy::failure_rate_count(50, 0.25, 10),
        ),
        (
            r#"kind = "slow_call_rate"
               threshold = "250ms"
               rate = 0.5
               window = "1m"
               buckets = 10
               min_calls = 5"#,
            TripPolicy::slow_call_rate(Duration::from_millis(250), 0.5, Duration::from_secs(60), 5),
        ),
    ] {
        assert_eq!(toml::from_str::<TripPolicy>(src).unwrap(), want);
    }
}

#[test]
fn keyed_config_parses_and_unknown_fields_are_errors() {
    let k: KeyedBreakerConfig = toml::from_str(
        r#"
        key_metrics = true
        [per_key]
        open_duration = "1s"
        [keys]
        capacity = 500
        idle_ttl = "90s"
        "#,
    )
    .unwrap();
    assert_eq!(k.keys.capacity, 500);
    assert_eq!(k.keys.idle_ttl, Duration::from_secs(90));
    assert_eq!(k.per_key.open_duration, Duration::from_secs(1));
    assert!(k.key_metrics);
    // Missing tables take their defaults.
    let k: KeyedBreakerConfig = toml::from_str("[keys]\ncapacity = 7").unwrap();
    assert_eq!(k.keys.capacity, 7);
    assert_eq!(k.per_key, BreakerConfig::default());
    // The old flat shape is refused, naming the field.
    let err = toml::from_str::<KeyedBreakerConfig>("capacity = 500").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `capacity`"),
        "{err}"
    );
    let err =
        toml::from_str::<KeyedBreakerConfig>("[breaker]\nopen_duration = \"1s\"").unwrap_err();
    assert!(err.to_string().contains("unknown field `breaker`"), "{err}");

    let err = toml::from_str::<BreakerConfig>("open_duraton = \"1s\"").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `open_duraton`"),
        "{err}"
    );
    let err =
        toml::from_str::<TripPolicy>("kind = \"consecutive_failures\"\nthreshold = 1\nrate = 0.5")
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `rate`"), "{err}");
}

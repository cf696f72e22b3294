//! The registry: ids, stacks registered under their config paths, reload
//! that keeps state, and a whole config applied under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use seawall::breaker::{BreakerLayer, State};
use seawall::config::StackConfig;
use seawall::registry::{LayerConfig, LayerKind, LayerStats, Registry, RegistryError};
use seawall::shed::ShedConfig;
use seawall_core::ReloadError;
use tower::{Layer, Service, ServiceExt, service_fn};

#[test]
fn ids_are_checked_and_unique() {
    let registry = Registry::new();
    let breaker = BreakerLayer::standard();
    for bad in ["", "a\nb", &"x".repeat(129)] {
        assert!(
            matches!(
                registry.register(bad, &breaker),
                Err(RegistryError::BadId(_))
            ),
            "{bad:?}"
        );
    }
    registry.register("a", &breaker).unwrap();
    assert_eq!(
        registry.register("a", &breaker),
        Err(RegistryError::Duplicate("a".into()))
    );
    assert!(registry.remove("a"));
    assert!(!registry.remove("a"));
    registry.register("a", &breaker).unwrap();
    assert_eq!(registry.ids(), ["a"]);
}

#[test]
fn the_registry_shares_the_running_layers_state() {
    let registry = Registry::new();
    let breaker = BreakerLayer::standard();
    registry.register("db", &breaker).unwrap();
    breaker.force_open();
    let snapshot = registry.layer("db").unwrap();
    assert_eq!(snapshot.kind, LayerKind::Breaker);
    assert!(matches!(snapshot.stats, LayerStats::Breaker(ref s) if s.state == State::ForcedOpen));
    registry.reset("db", None).unwrap();
    assert_eq!(breaker.state(), State::Closed);
    assert!(matches!(
        registry.force_open("nope", None),
        Err(RegistryError::UnknownLayer(_))
    ));
}

#[test]
fn a_config_of_another_kind_is_refused() {
    let registry = Registry::new();
    registry.register("db", &BreakerLayer::standard()).unwrap();
    let err = registry
        .reload("db", &LayerConfig::Shed(ShedConfig::new()))
        .unwrap_err();
    let RegistryError::Reload { layer, error } = err else {
        panic!()
    };
    assert_eq!(layer, "db");
    assert_eq!(error.not_in_place_field(), Some("kind"));
}

#[test]
fn stacks_register_all_their_parts_or_none() {
    let config = StackConfig::from_toml_str(
        r#"
        [client.retry]
        max_attempts = 2
        [client.breaker.per_key]
        open_duration = "5s"
        [client.timeout.per_key]
        max = "1s"
        [client.budget]
        rate = 100
        [server.shed]
        limit = { fixed = 4 }
        "#,
    )
    .unwrap();
    let client = config.client.build(|req: &String| req.clone()).unwrap();
    let server = config.server.build().unwrap();
    let registry = Registry::new();
    registry
        .register("server.budget", &BreakerLayer::standard())
        .unwrap();
    registry.register_client("client", &client).unwrap();
    // One id taken: nothing of the server stack is registered.
    let server_with_budget = StackConfig::from_toml_str(
        "[server.shed]\nlimit = { fixed = 4 }\n[server.budget]\nrate = 5\n",
    )
    .unwrap()
    .server
    .build()
    .unwrap();
    assert!(matches!(
        registry.register_server("server", &server_with_budget),
        Err(RegistryError::Duplicate(id)) if id == "server.budget"
    ));
    assert!(!registry.ids().contains(&"server.shed".to_owned()));
    registry.remove("server.budget");
    registry.register_server("server", &server).unwrap();
    assert_eq!(
        registry.ids(),
        [
            "client.breaker",
            "client.budget",
            "client.retry",
            "client.timeout",
            "server.shed"
        ]
    );
    let kinds: Vec<_> = registry.layers().iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [
            LayerKind::KeyedBreaker,
            LayerKind::Budget,
            LayerKind::Retry,
            LayerKind::KeyedTimeout,
            LayerKind::Shed
        ]
    );
}

#[test]
fn apply_reloads_in_place_and_reports_what_it_cannot_do() {
    let config = StackConfig::from_toml_str(
        "[client.breaker.per_key]\nopen_duration = \"5s\"\n[server.shed]\nlimit = { fixed = 4 }\n",
    )
    .unwrap();
    let client = config.client.build(|req: &String| req.clone()).unwrap();
    let server = config.server.build().unwrap();
    let registry = Registry::new();
    registry.register_client("client", &client).unwrap();
    registry.register_server("server", &server).unwrap();

    let next = StackConfig::from_toml_str(
        "[client.breaker.per_key]\nopen_duration = \"9s\"\n[server.shed]\nlimit = { fixed = 40 }\n[server.timeout]\nfixed = \"1s\"\n",
    )
    .unwrap();
    let report = registry.apply(&next).unwrap();
    assert_eq!(report.reloaded, ["client.breaker", "server.shed"]);
    assert_eq!(report.refused.len(), 1);
    assert_eq!(report.refused[0].0, "server.timeout");
    assert!(report.skipped.is_empty());
    assert!(matches!(
        report.refused[0].1,
        ReloadError::NotInPlace { .. }
    ));
    assert!(!report.is_complete());
    assert_eq!(
        client.breaker().unwrap().config().open_duration,
        Duration::from_secs(9)
    );
    assert_eq!(server.shed().unwrap().stats().limit, 40);

    // An invalid config touches nothing.
    let mut bad = next.clone();
    bad.server.shed = Some(ShedConfig::new().limit(seawall::shed::Limit::Fixed(0)));
    assert!(registry.apply(&bad).is_err());
    assert_eq!(server.shed().unwrap().stats().limit, 40);
}

/// The issue's load test, through a whole server stack: 8 tasks call while
/// another reloads every 100 ms, alternating two configs. No call fails
/// because of a reload, no permit is lost, and state survives.
#[tokio::test(start_paused = true)]
async fn reload_every_100ms_under_load_loses_nothing() {
    let a = StackConfig::from_toml_str(
        "[server.shed]\nlimit = { fixed = 64 }\n[server.budget]\nrate = 100000\nburst = 1000\n[server.timeout]\nfixed = \"2s\"\n",
    )
    .unwrap();
    let b = StackConfig::from_toml_str(
        "[server.shed]\nlimit = { fixed = 32 }\n[server.budget]\nrate = 50000\nburst = 500\n[server.timeout]\nfixed = \"3s\"\n",
    )
    .unwrap();
    let server = a.server.build().unwrap();
    let registry = Registry::new();
    registry.register_server("server", &server).unwrap();
    let breaker = BreakerLayer::standard();
    registry.register("peer", &breaker).unwrap();
    registry.force_open("peer", None).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut svc = server.layer(service_fn(|()| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, seawall::BoxError>(())
        }));
        let (done, calls) = (done.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                svc.ready().await.unwrap();
                svc.call(())
                    .await
                    .expect("no call fails because of a reload");
                calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for round in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = if round % 2 == 0 { &b } else { &a };
        let report = registry.apply(next).unwrap();
        assert!(report.is_complete(), "{report}");
    }
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let shed = server.shed().unwrap().stats();
    assert_eq!(shed.in_flight, 0, "no permit lost");
    assert_eq!(shed.limit, 64, "the last config applied (a)");
    assert!(
        calls.load(Ordering::Relaxed) > 8 * 500,
        "{}",
        calls.load(Ordering::Relaxed)
    );
    assert_eq!(
        shed.admitted,
        calls.load(Ordering::Relaxed),
        "the shedder's counters survive 50 reloads"
    );
    assert_eq!(breaker.state(), State::ForcedOpen, "state survives");
    assert_eq!(shed.shed.total(), 0);
}

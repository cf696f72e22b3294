//! With feature `metrics`: the state gauge, transition and rejection
//! counters, under seawall-core's names and labels.
#![cfg(feature = "metrics")]

use seawall_breaker::{CircuitBreaker, TripPolicy};
use seawall_test_support::metrics::Recording;
use seawall_test_support::runtime;

#[test]
fn transitions_and_rejections_are_reported() {
    let rec = Recording::default();
    let rt = runtime::paused();
    let _g = rt.enter();
    metrics::with_local_recorder(&rec, || {
        let b = CircuitBreaker::builder()
            .name("db")
            .policy(TripPolicy::consecutive_failures(1))
            .build_breaker()
            .unwrap();
        b.try_acquire().unwrap().failure();
        assert!(b.try_acquire().is_err());
        assert!(b.try_acquire().is_err());
    });
    assert_eq!(rec.gauge("seawall_breaker_state{name=db}"), Some(1.0));
    assert_eq!(
        rec.counter("seawall_breaker_transitions_total{name=db,state=open}"),
        Some(1)
    );
    assert_eq!(
        rec.counter("seawall_breaker_rejected_total{name=db}"),
        Some(2)
    );
}

// Distinct series of `name` labelled with a key.
fn keyed_series(rec: &Recording, name: &str) -> usize {
    rec.series()
        .iter()
        .filter(|s| s.name == name && s.label("key").is_some())
        .count()
}

// `keys` keys, each tripped then reset (two transitions each), through a
// map of 100: per-key series must stay bounded by the map, not the keys seen.
fn churn(keys: u32, key_metrics: bool) -> Recording {
    use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, KeyedBreakerLayer};
    let rec = Recording::default();
    let rt = runtime::paused();
    metrics::with_local_recorder(&rec, || {
        rt.block_on(async {
            let layer = KeyedBreakerLayer::new(
                |k: &u32| *k,
                &KeyedBreakerConfig::from(
                    BreakerConfig::new()
                        .name("peers")
                        .policy(TripPolicy::consecutive_failures(1)),
                )
                .keys(seawall_core::KeyMapConfig::new().capacity(100))
                .key_metrics(key_metrics),
            )
            .unwrap();
            for key in 0..keys {
                // Every key held is fresh here, so there is always room.
                let b = layer.breaker_or_insert(key).expect("room for a new key");
                b.try_acquire().unwrap().failure();
                assert_eq!(b.state(), seawall_breaker::State::Open);
                b.reset();
            }
            assert!(layer.len() <= 100);
            // The overflow breaker: a full map's newcomers trip it.
            for key in 0..100u32 {
                layer.force_open(100_000 + key);
            }
            layer.overflow_breaker().trip();
        })
    });
    rec
}

#[test]
fn per_key_series_are_bounded_by_the_map_not_the_keys_seen() {
    let rec = churn(20_000, false);
    let series = keyed_series(&rec, "seawall_breaker_state");
    assert!(series <= 200, "{series} per-key series");
    assert_eq!(series, 1, "only the overflow breaker's");
    assert_eq!(
        rec.gauge("seawall_breaker_state{key=(overflow),name=peers}"),
        Some(1.0)
    );
    assert_eq!(
        rec.counter("seawall_breaker_transitions_total{name=peers,state=open}"),
        Some(20_001)
    );
}

#[test]
fn key_metrics_label_every_key_that_changed_state() {
    let rec = churn(1_000, true);
    assert_eq!(
        rec.gauge("seawall_breaker_state{key=7,name=peers}"),
        Some(0.0)
    );
    assert_eq!(
        rec.gauge("seawall_breaker_state{key=100007,name=peers}"),
        Some(3.0)
    );
}

#[test]
fn reading_the_state_after_the_open_period_moves_the_gauge_to_half_open() {
    let rec = Recording::default();
    let (clock, hand) = seawall_core::Clock::manual();
    let b = metrics::with_local_recorder(&rec, || {
        let b = CircuitBreaker::builder()
            .name("db")
            .clock(clock)
            .policy(TripPolicy::consecutive_failures(1))
            .build_breaker()
            .unwrap();
        b.try_acquire().unwrap().failure();
        b
    });
    assert_eq!(rec.gauge("seawall_breaker_state{name=db}"), Some(1.0));
    hand.advance(b.config().open_duration);
    metrics::with_local_recorder(&rec, || {
        assert_eq!(b.state(), seawall_breaker::State::HalfOpen);
    });
    assert_eq!(rec.gauge("seawall_breaker_state{name=db}"), Some(2.0));
    assert_eq!(
        rec.counter("seawall_breaker_transitions_total{name=db,state=half_open}"),
        Some(1)
    );
}

#[test]
fn peer_selection_reports_its_choices_and_peers() {
    use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, PeerSelect};
    use seawall_test_support::service::{Echo, ready_call_ok};

    let rec = Recording::default();
    let names = |what: &str, name: &str| format!("seawall_breaker_select_{what}{{name={name}}}");
    metrics::with_local_recorder(&rec, || {
        let layer = KeyedBreakerLayer::new(|r: &u32| *r, &BreakerConfig::default().into()).unwrap();
        let mut select = PeerSelect::builder(&layer, |r: &u32| Some(*r))
            .name("replicas")
            .peers([(1, Echo), (2, Echo)])
            .build()
            .unwrap();
        assert!(ready_call_ok(&mut select, 1)); // preferred
        layer.force_open(1);
        assert!(ready_call_ok(&mut select, 1)); // another peer
        layer.force_open(2);
        assert!(!ready_call_ok(&mut select, 1)); // none
        select.remove(&2);
        // Unnamed: "default".
        let _other = PeerSelect::builder(&layer, |r: &u32| Some(*r))
            .peers([(3, Echo)])
            .build()
            .unwrap();
    });
    assert_eq!(rec.counter(&names("preferred_total", "replicas")), Some(1));
    assert_eq!(rec.counter(&names("other_total", "replicas")), Some(1));
    assert_eq!(rec.counter(&names("no_peer_total", "replicas")), Some(1));
    assert_eq!(rec.gauge(&names("peers", "replicas")), Some(1.0));
    assert_eq!(rec.gauge(&names("peers", "default")), Some(1.0));
}

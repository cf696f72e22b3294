//! Live reload: a new config reaches running breakers (every handle, every
//! service already made, every key), all or nothing, and keeps their state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use seawall_breaker::{
    BreakerBuilder, BreakerConfig, BreakerLayer, CircuitBreaker, KeyedBreakerConfig,
    KeyedBreakerLayer, OpenBackoff, State, TripPolicy,
};
use seawall_core::{Clock, KeyMapConfig, OpenState, Rejection, ReloadError};
use tower::{Layer, Service, ServiceExt, service_fn};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn manual(config: &BreakerConfig) -> (CircuitBreaker, seawall_core::ManualClock) {
    let (clock, hand) = Clock::manual();
    let breaker = BreakerBuilder::from_config(config.clone())
        .clock(clock)
        .build_breaker()
        .unwrap();
    (breaker, hand)
}

fn one_failure_opens_for(d: Duration) -> BreakerConfig {
    BreakerConfig::new()
        .name("db")
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(d)
}

#[test]
fn an_open_breaker_stays_open_with_its_opening_time_and_end() {
    let config = one_failure_opens_for(secs(10));
    let (b, hand) = manual(&config);
    b.try_acquire().unwrap().failure();
    hand.advance(secs(4));
    let before = b.stats();
    assert_eq!(before.state, State::Open);
    assert_eq!(before.time_in_state, secs(4));
    assert_eq!(before.retry_after, Some(secs(6)));

    let new = config
        .clone()
        .policy(TripPolicy::consecutive_failures(3))
        .open_duration(secs(60))
        .half_open_max_calls(1);
    b.reload(&new).unwrap();
    assert_eq!(b.config(), new);
    let after = b.stats();
    assert_eq!(
        after, before,
        "state, its start, the open period's end, totals"
    );
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(refused.state(), OpenState::Open);
    assert_eq!(refused.retry_after(), Some(secs(6)));
}

/// The open period in progress keeps the end it began with (callers were
/// told that `retry_after`); the new `open_duration` applies from the next
/// trip on.
#[test]
fn a_new_open_duration_applies_from_the_next_open_period() {
    let config = one_failure_opens_for(secs(10));
    let (b, hand) = manual(&config);
    b.try_acquire().unwrap().failure();
    b.reload(&config.clone().open_duration(secs(60))).unwrap();
    hand.advance(Duration::from_millis(9_999));
    assert_eq!(b.state(), State::Open);
    hand.advance(Duration::from_millis(1));
    assert_eq!(b.state(), State::HalfOpen, "the old period ended at 10s");
    // A failed probe re-opens it: for the new duration.
    b.try_acquire().unwrap().failure();
    let stats = b.stats();
    assert_eq!(stats.state, State::Open);
    assert_eq!(stats.open_duration, secs(60));
    assert_eq!(stats.retry_after, Some(secs(60)));
    assert_eq!(stats.trips, 2);
    hand.advance(secs(59));
    assert_eq!(b.state(), State::Open);
    hand.advance(secs(1));
    assert_eq!(b.state(), State::HalfOpen);
}

#[test]
fn a_new_open_backoff_applies_from_the_next_trip() {
    let config = one_failure_opens_for(secs(10));
    let (b, hand) = manual(&config);
    b.try_acquire().unwrap().failure();
    let backoff = OpenBackoff::new()
        .multiplier(3.0)
        .jitter(0.0)
        .max_open_duration(secs(1_000));
    b.reload(&config.clone().open_backoff(backoff)).unwrap();
    hand.advance(secs(10));
    b.try_acquire().unwrap().failure(); // a failed probe: level 1
    assert_eq!(b.stats().open_duration, secs(30));
}

#[test]
fn an_invalid_config_changes_nothing() {
    let config = one_failure_opens_for(secs(10));
    let (b, _hand) = manual(&config);
    let bad = config
        .clone()
        .policy(TripPolicy::consecutive_failures(0))
        .half_open_max_calls(0);
    let err = b.reload(&bad).unwrap_err();
    let ReloadError::Invalid(invalid) = &err else {
        panic!("{err}");
    };
    let text = invalid.to_string();
    assert!(text.contains("policy.threshold"), "{text}");
    assert!(text.contains("half_open_max_calls"), "{text}");
    assert_eq!(b.config(), config);
    // Still trips on the first failure.
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_change_that_cannot_apply_in_place_changes_nothing() {
    let count = BreakerConfig::new()
        .policy(TripPolicy::failure_rate_count(10, 0.5, 4))
        .open_duration(secs(10));
    let timed = BreakerConfig::new().policy(TripPolicy::failure_rate_time(secs(10), 0.5, 4));
    let seeded = count
        .clone()
        .open_backoff(OpenBackoff::new().seed(1).jitter(0.0));
    let cases: [(&BreakerConfig, BreakerConfig, &str); 6] = [
        (
            &count,
            count
                .clone()
                .policy(TripPolicy::consecutive_failures(2))
                .open_duration(secs(99)),
            "policy",
        ),
        (
            &count,
            count
                .clone()
                .policy(TripPolicy::failure_rate_count(20, 0.5, 4))
                .half_open_max_calls(9),
            "policy.window",
        ),
        (
            &timed,
            timed
                .clone()
                .policy(TripPolicy::failure_rate_time(secs(20), 0.5, 4)),
            "policy.window",
        ),
        (
            &timed,
            timed.clone().policy(TripPolicy::FailureRateTime {
                window: secs(10),
                buckets: 5,
                rate: 0.5,
                min_calls: 4,
            }),
            "policy.buckets",
        ),
        (&count, count.clone().name("renamed"), "name"),
        (
            &seeded,
            seeded
                .clone()
                .open_backoff(OpenBackoff::new().seed(2).jitter(0.0)),
            "open_backoff.seed",
        ),
    ];
    for (built, new, field) in cases {
        let (b, _hand) = manual(built);
        let p = b.try_acquire().unwrap();
        p.failure();
        let before = b.stats();
        let err = b.reload(&new).unwrap_err();
        assert_eq!(err.not_in_place_field(), Some(field), "{err}");
        assert_eq!(&b.config(), built, "{field}");
        assert_eq!(b.stats(), before, "{field}");
    }
    // The same seed, or none, is not a change of seed.
    let (b, _hand) = manual(&seeded);
    b.reload(&seeded.clone().open_duration(secs(20))).unwrap();
    b.reload(&seeded.clone().open_backoff(OpenBackoff::new().jitter(0.0)))
        .unwrap();
}

#[test]
fn thresholds_apply_to_the_next_outcome_with_the_streak_and_window_kept() {
    let config = BreakerConfig::new().policy(TripPolicy::consecutive_failures(5));
    let (b, _hand) = manual(&config);
    for _ in 0..3 {
        b.try_acquire().unwrap().failure();
    }
    b.reload(&config.clone().policy(TripPolicy::consecutive_failures(4)))
        .unwrap();
    assert_eq!(b.stats().consecutive_failures, 3, "the streak is kept");
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), State::Open);

    let config = BreakerConfig::new().policy(TripPolicy::failure_rate_count(10, 0.9, 4));
    let (b, _hand) = manual(&config);
    for ok in [false, true, false, true] {
        let p = b.try_acquire().unwrap();
        if ok { p.success() } else { p.failure() }
    }
    assert_eq!(b.state(), State::Closed, "50% < 90%");
    b.reload(
        &config
            .clone()
            .policy(TripPolicy::failure_rate_count(10, 0.5, 6)),
    )
    .unwrap();
    b.try_acquire().unwrap().success(); // 2 of 5: fewer than min_calls 6
    assert_eq!(b.stats().window_calls, 5, "the window is kept");
    assert_eq!(b.state(), State::Closed);
    b.try_acquire().unwrap().failure(); // 3 of 6: 50%
    assert_eq!(b.state(), State::Open);

    let config = BreakerConfig::new().policy(TripPolicy::slow_call_rate(
        Duration::from_millis(100),
        0.5,
        secs(60),
        1,
    ));
    let (b, _hand) = manual(&config);
    b.try_acquire()
        .unwrap()
        .record_elapsed(seawall_core::Outcome::Success, Duration::from_millis(50));
    assert_eq!(b.state(), State::Closed);
    b.reload(&config.clone().policy(TripPolicy::slow_call_rate(
        Duration::from_millis(40),
        0.5,
        secs(60),
        1,
    )))
    .unwrap();
    b.try_acquire()
        .unwrap()
        .record_elapsed(seawall_core::Outcome::Success, Duration::from_millis(50));
    assert_eq!(b.state(), State::Open, "50ms is now slow");
}

#[test]
fn fewer_probe_slots_cancel_no_probe_and_admit_once_under_the_new_bound() {
    let config = one_failure_opens_for(secs(1)).half_open_max_calls(3);
    let (b, hand) = manual(&config);
    b.try_acquire().unwrap().failure();
    hand.advance(secs(1));
    let mut probes: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    assert!(probes.iter().all(|p| p.is_probe()));
    b.reload(&config.clone().half_open_max_calls(1).success_threshold(1))
        .unwrap();
    assert_eq!(b.stats().half_open_in_flight, 3, "no probe is cancelled");
    assert_eq!(
        b.try_acquire().unwrap_err().state(),
        OpenState::HalfOpen,
        "3 in flight, 1 allowed"
    );
    drop(probes.pop());
    drop(probes.pop());
    assert!(b.try_acquire().is_err(), "1 in flight, 1 allowed");
    // The last old probe succeeds: one success now closes it.
    probes.pop().unwrap().success();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test]
async fn a_layer_reload_reaches_every_service_it_made() {
    let layer = BreakerLayer::builder().build().unwrap();
    let mut a = layer.layer(service_fn(|_: ()| async { Err::<(), _>("down") }));
    let mut b = a.clone();
    let config = layer.config().policy(TripPolicy::consecutive_failures(2));
    layer.clone().reload(&config).unwrap();
    assert_eq!(a.breaker().config(), config);
    let _ = a.ready().await.unwrap().call(()).await;
    let _ = b.ready().await.unwrap().call(()).await;
    assert_eq!(layer.state(), State::Open);
    let err = a.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(Rejection::find(&*err).is_some());
}

#[test]
fn a_keyed_reload_reaches_existing_keys_new_keys_and_the_overflow_breaker() {
    let (clock, _hand) = Clock::manual();
    let config = KeyedBreakerConfig::from(
        BreakerConfig::new()
            .name("peers")
            .policy(TripPolicy::consecutive_failures(3)),
    );
    let layer = KeyedBreakerLayer::new(|k: &u32| *k, &config)
        .unwrap()
        .clock(clock);
    let old = layer.breaker_or_insert(1).unwrap();
    old.try_acquire().unwrap().failure();
    let untouched = layer.breaker_or_insert(2).unwrap();
    let per_key = config
        .per_key
        .clone()
        .policy(TripPolicy::consecutive_failures(2));
    layer
        .reload(&config.clone().per_key(per_key.clone()))
        .unwrap();
    assert_eq!(layer.config(), per_key);
    // An existing key: its streak of 1 is kept, one more failure trips it.
    old.try_acquire().unwrap().failure();
    assert_eq!(old.state(), State::Open);
    assert_eq!(untouched.state(), State::Closed);
    // A key made after the reload.
    let new = layer.breaker_or_insert(3).unwrap();
    new.try_acquire().unwrap().failure();
    new.try_acquire().unwrap().failure();
    assert_eq!(new.state(), State::Open);
    assert_eq!(layer.overflow_breaker().config(), per_key);
    assert_eq!(layer.stats().open, 2);

    // One key's breaker is not reloaded alone.
    let err = old.reload(&per_key).unwrap_err();
    assert_eq!(err.not_in_place_field(), Some("per_key"));

    // What cannot change in place, and an invalid `per_key`: nothing changes.
    let keys = KeyMapConfig::new();
    for (bad, field) in [
        (
            config.clone().keys(keys.capacity(10)),
            Some("keys.capacity"),
        ),
        (
            config.clone().keys(keys.idle_ttl(secs(1))),
            Some("keys.idle_ttl"),
        ),
        (config.clone().key_metrics(true), Some("key_metrics")),
        (
            config.clone().per_key(
                per_key
                    .clone()
                    .policy(TripPolicy::failure_rate_count(10, 0.5, 4)),
            ),
            Some("per_key.policy"),
        ),
        (
            config.clone().per_key(per_key.clone().name("x")),
            Some("per_key.name"),
        ),
        (
            config.clone().per_key(per_key.clone().success_threshold(0)),
            None,
        ),
    ] {
        let err = layer.reload(&bad).unwrap_err();
        assert_eq!(err.not_in_place_field(), field, "{err}");
        if field.is_none() {
            assert!(
                err.to_string().contains("per_key.success_threshold"),
                "{err}"
            );
        }
        assert_eq!(layer.config(), per_key);
    }
    assert_eq!(old.state(), State::Open);
}

/// 8 tasks call while another reloads every 100ms, alternating two
/// configs, for 5 simulated seconds: no call fails because of a reload,
/// every outcome is counted, and a forced-open breaker stays forced open.
#[tokio::test(start_paused = true)]
async fn reloads_under_load_fail_no_call_and_keep_state() {
    let a = BreakerConfig::new()
        .name("load")
        .policy(TripPolicy::failure_rate_count(20, 0.5, 10))
        .open_duration(secs(5))
        .half_open_max_calls(2);
    let b = a
        .clone()
        .policy(TripPolicy::failure_rate_count(20, 0.8, 4))
        .open_duration(secs(10))
        .half_open_max_calls(4)
        .success_threshold(3);
    let layer = BreakerLayer::from_config(&a).unwrap();
    let stopped = BreakerLayer::from_config(&a.clone().name("stopped")).unwrap();
    stopped.force_open();
    let keyed = KeyedBreakerLayer::new(|k: &u32| *k, &KeyedBreakerConfig::from(a.clone())).unwrap();
    assert!(keyed.force_open(7));

    let done = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let slow = service_fn(|n: u32| async move {
        tokio::time::sleep(Duration::from_millis(3)).await;
        Ok::<_, std::io::Error>(n)
    });
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let mut svc = layer.layer(slow);
        let mut keyed_svc = keyed.layer(slow);
        let mut stopped_svc = stopped.layer(slow);
        let (done, calls) = (done.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !done.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                assert_eq!(svc.ready().await.unwrap().call(n).await.unwrap(), n);
                // Keys 0..4 pass; key 7 is forced open.
                let key = (n + t) % 4;
                assert_eq!(
                    keyed_svc.ready().await.unwrap().call(key).await.unwrap(),
                    key
                );
                let err = keyed_svc.ready().await.unwrap().call(7).await.unwrap_err();
                let Some(Rejection::CircuitOpen(open)) = Rejection::find(&*err) else {
                    panic!("{err}");
                };
                assert_eq!(open.state(), OpenState::ForcedOpen);
                assert!(stopped_svc.ready().await.unwrap().call(n).await.is_err());
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    let keyed_configs = [
        KeyedBreakerConfig::from(a.clone()),
        KeyedBreakerConfig::from(b.clone()),
    ];
    let stopped_configs = [a.clone().name("stopped"), b.clone().name("stopped")];
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let which = i % 2;
        layer.reload(if which == 0 { &b } else { &a }).unwrap();
        keyed.reload(&keyed_configs[1 - which]).unwrap();
        stopped.reload(&stopped_configs[1 - which]).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let calls = calls.load(Ordering::Relaxed);
    assert!(calls > 1_000, "{calls} calls");
    let stats = layer.stats();
    assert_eq!(stats.state, State::Closed);
    assert_eq!(stats.successes, Some(calls), "every outcome counted");
    assert_eq!((stats.failures, stats.rejected, stats.trips), (0, 0, 0));
    assert_eq!(layer.config(), a, "50 reloads: the last applied `a`");
    let stopped_stats = stopped.stats();
    assert_eq!(stopped_stats.state, State::ForcedOpen);
    assert_eq!(stopped_stats.rejected, calls);
    assert_eq!(keyed.breaker(&7).unwrap().state(), State::ForcedOpen);
    let keyed_stats = keyed.stats();
    assert_eq!(keyed_stats.forced_open, 1);
    assert_eq!(keyed_stats.rejected, calls);
    assert_eq!(keyed_stats.failures, 0);
}

/// A peer that finds the map full of keys it may not evict gets a breaker
/// of its own beside the map: it shares the layer's settings, so a reload
/// of the layer reaches it too.
#[test]
fn a_keyed_reload_reaches_a_breaker_made_beside_a_full_map() {
    let config =
        KeyedBreakerConfig::from(BreakerConfig::new().policy(TripPolicy::consecutive_failures(1)))
            .keys(KeyMapConfig::new().capacity(1));
    let layer = KeyedBreakerLayer::new(|k: &u32| *k, &config).unwrap();
    let held = layer.breaker_or_insert(1).unwrap();
    held.try_acquire().unwrap().failure(); // open: never evicted
    let guarded = layer.guard(2, service_fn(|_: ()| async { Ok::<_, std::io::Error>(()) }));
    assert!(layer.breaker(&2).is_none(), "beside the map");
    let per_key = config
        .per_key
        .clone()
        .policy(TripPolicy::consecutive_failures(3));
    layer
        .reload(&config.clone().per_key(per_key.clone()))
        .unwrap();
    assert_eq!(guarded.breaker().config(), per_key);
    for _ in 0..2 {
        guarded.breaker().try_acquire().unwrap().failure();
    }
    assert_eq!(guarded.breaker().state(), State::Closed, "2 failures < 3");
    guarded.breaker().try_acquire().unwrap().failure();
    assert_eq!(guarded.breaker().state(), State::Open);
}

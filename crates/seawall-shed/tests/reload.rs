//! Live reload: a new config reaches a running shedder (every clone, every
//! service already made), all or nothing, cancels nothing and loses no
//! permit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use seawall_core::rand::SplitMix64;
use seawall_core::{Clock, Outcome, OverloadReason, Rejection, ReloadError};
use seawall_shed::{Aimd, Gradient2, Limit, Priority, ShedConfig, ShedLayer, Shedder, Vegas};
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt, service_fn};

fn rng() -> SplitMix64 {
    SplitMix64::new(7)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn raising_and_lowering_the_limit_with_calls_in_flight_loses_no_permit() {
    let config = ShedConfig::new().limit(Limit::Fixed(4));
    let shedder = Shedder::new(&config).unwrap();
    let mut r = rng();
    let mut held: Vec<_> = (0..4)
        .map(|_| shedder.try_acquire(Priority::Normal, &mut r).unwrap())
        .collect();
    assert!(shedder.try_acquire(Priority::Normal, &mut r).is_err());

    // Raise: two more fit at once.
    shedder
        .reload(&config.clone().limit(Limit::Fixed(6)))
        .unwrap();
    held.push(shedder.try_acquire(Priority::Normal, &mut r).unwrap());
    held.push(shedder.try_acquire(Priority::Normal, &mut r).unwrap());
    let refused = shedder.try_acquire(Priority::Normal, &mut r).unwrap_err();
    assert_eq!(refused.reason(), OverloadReason::HardLimit);

    // Lower below the 6 in flight: nothing is cancelled.
    shedder
        .reload(&config.clone().limit(Limit::Fixed(2)))
        .unwrap();
    assert_eq!(shedder.in_flight(), 6);
    assert_eq!(shedder.stats().limit, 2);
    while held.len() > 2 {
        drop(held.pop());
        assert!(
            shedder.try_acquire(Priority::Normal, &mut r).is_err(),
            "{} in flight, limit 2",
            held.len()
        );
    }
    drop(held.pop());
    held.push(shedder.try_acquire(Priority::Normal, &mut r).unwrap());
    drop(held);
    assert_eq!(shedder.in_flight(), 0, "every permit came back");
    let stats = shedder.stats();
    assert_eq!(stats.admitted, 7);
    assert_eq!(stats.shed.hard_limit, 6);
}

#[tokio::test(start_paused = true)]
async fn a_layer_reload_reaches_services_with_calls_in_flight() {
    let layer = ShedLayer::fixed(2).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let svc = layer.layer(service_fn(move |_: ()| {
        let g = g.clone();
        async move {
            g.acquire().await.unwrap().forget();
            Ok::<_, std::io::Error>(())
        }
    }));
    let mut calls = Vec::new();
    for _ in 0..2 {
        let mut s = svc.clone();
        calls.push(tokio::spawn(async move {
            s.ready().await.unwrap().call(()).await
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(layer.stats().in_flight, 2);
    layer
        .reload(&layer.config().limit(Limit::Fixed(1)))
        .unwrap();
    let mut s = svc.clone();
    let err = s.ready().await.unwrap().call(()).await.unwrap_err();
    let Some(Rejection::Overloaded(o)) = Rejection::find(&*err) else {
        panic!("{err}");
    };
    assert_eq!(o.reason(), OverloadReason::HardLimit);
    gate.add_permits(2);
    for c in calls {
        c.await
            .unwrap()
            .expect("a call in flight is never cancelled");
    }
    assert_eq!(layer.stats().in_flight, 0);
    gate.add_permits(1);
    s.ready().await.unwrap().call(()).await.unwrap();
}

/// An AIMD shedder measured on a manual clock: one sample per 100ms window.
fn aimd(p: Aimd) -> (ShedConfig, Shedder, seawall_core::ManualClock) {
    let config = ShedConfig::new()
        .limit(Limit::Aimd(p))
        .window(ms(100))
        .window_min_samples(1);
    let (clock, hand) = Clock::manual();
    let shedder = Shedder::with_clock(&config, clock).unwrap();
    (config, shedder, hand)
}

#[test]
fn the_adaptive_estimate_is_kept_and_clamped_into_new_bounds() {
    let (config, shedder, hand) = aimd(Aimd::new().initial(50).min(10).max(100));
    let mut r = rng();
    // A dropped call closes the window: 50 × 0.9.
    let p = shedder.try_acquire(Priority::Normal, &mut r).unwrap();
    hand.advance(ms(150));
    p.finish(Outcome::Failure);
    assert_eq!(shedder.limit(), 45, "measured");

    let narrow = config
        .clone()
        .limit(Limit::Aimd(Aimd::new().initial(20).min(10).max(40)));
    shedder.reload(&narrow).unwrap();
    assert_eq!(shedder.limit(), 40, "clamped into the new range");
    assert_eq!(shedder.bounds(), (10, 40));

    let wide = config
        .clone()
        .limit(Limit::Aimd(Aimd::new().initial(500).min(1).max(1000)));
    shedder.reload(&wide).unwrap();
    assert_eq!(shedder.limit(), 40, "kept, not reset to `initial`");
    assert_eq!(shedder.bounds(), (1, 1000));

    let high = config
        .clone()
        .limit(Limit::Aimd(Aimd::new().initial(200).min(100).max(1000)));
    shedder.reload(&high).unwrap();
    assert_eq!(shedder.limit(), 100, "raised to the new minimum");

    // The new parameters drive the next window: a drop now backs off by 0.5.
    let halving = config.clone().limit(Limit::Aimd(
        Aimd::new().initial(200).min(1).max(1000).backoff_ratio(0.5),
    ));
    shedder.reload(&halving).unwrap();
    let p = shedder.try_acquire(Priority::Normal, &mut r).unwrap();
    hand.advance(ms(150));
    p.finish(Outcome::Failure);
    assert_eq!(shedder.limit(), 50);
    assert_eq!(shedder.in_flight(), 0);
}

#[test]
fn gradient_and_vegas_estimates_are_clamped_too() {
    for (limit, narrow) in [
        (
            Limit::Gradient2(Gradient2::new().initial(100).min(10).max(200)),
            Limit::Gradient2(Gradient2::new().initial(20).min(10).max(30).long_window(50)),
        ),
        (
            Limit::Vegas(Vegas::new().initial(100).min(10).max(200)),
            Limit::Vegas(Vegas::new().initial(20).min(10).max(30)),
        ),
    ] {
        let config = ShedConfig::new().limit(limit);
        let shedder = Shedder::new(&config).unwrap();
        shedder.reload(&config.clone().limit(narrow)).unwrap();
        assert_eq!(shedder.limit(), 30);
        assert_eq!(shedder.bounds(), (10, 30));
    }
}

#[test]
fn an_invalid_config_changes_nothing() {
    let config = ShedConfig::new().limit(Limit::Fixed(4)).soft_limit(3);
    let shedder = Shedder::new(&config).unwrap();
    let bad = config
        .clone()
        .limit(Limit::Fixed(8))
        .soft_limit(9)
        .critical_headroom(1.5);
    let err = shedder.reload(&bad).unwrap_err();
    let ReloadError::Invalid(invalid) = &err else {
        panic!("{err}");
    };
    let text = invalid.to_string();
    assert!(text.contains("soft_limit"), "{text}");
    assert!(text.contains("critical_headroom"), "{text}");
    assert_eq!(shedder.config(), config);
    assert_eq!(shedder.limit(), 4);
}

#[test]
fn a_change_that_cannot_apply_in_place_changes_nothing() {
    let fixed = ShedConfig::new().limit(Limit::Fixed(4)).seed(1);
    let adaptive = ShedConfig::new().limit(Limit::Aimd(Aimd::new()));
    let queued = fixed.clone().max_queue_delay(ms(10));
    for (built, new, field) in [
        (
            &fixed,
            fixed.clone().limit(Limit::Aimd(Aimd::new())),
            "limit",
        ),
        (
            &adaptive,
            adaptive
                .clone()
                .limit(Limit::Vegas(Vegas::new()))
                .soft_limit(5),
            "limit",
        ),
        (
            &fixed,
            fixed.clone().max_queue_delay(ms(10)),
            "max_queue_delay",
        ),
        (&queued, fixed.clone().soft_limit(2), "max_queue_delay"),
        (&fixed, fixed.clone().name("other"), "name"),
        (&fixed, fixed.clone().seed(2), "seed"),
        (
            &fixed,
            fixed
                .clone()
                .memory_pressure(seawall_shed::MemoryPressureConfig::new()),
            "memory_pressure",
        ),
    ] {
        let shedder = Shedder::new(built).unwrap();
        let before = shedder.stats();
        let err = shedder.reload(&new).unwrap_err();
        assert_eq!(err.not_in_place_field(), Some(field), "{err}");
        assert_eq!(&shedder.config(), built);
        assert_eq!(shedder.stats(), before);
    }
}

#[test]
fn soft_limit_and_headroom_turn_on_and_off() {
    let config = ShedConfig::new().limit(Limit::Fixed(10));
    let shedder = Shedder::new(&config).unwrap();
    let mut r = rng();
    let held = shedder.try_acquire(Priority::Normal, &mut r).unwrap();
    assert!(shedder.try_acquire(Priority::Sheddable, &mut r).is_ok());
    shedder.reload(&config.clone().soft_limit(1)).unwrap();
    let refused = shedder
        .try_acquire(Priority::Sheddable, &mut r)
        .unwrap_err();
    assert_eq!(refused.reason(), OverloadReason::Priority);
    shedder
        .reload(&config.clone().critical_headroom(0.95).retry_after(ms(250)))
        .unwrap();
    let refused = shedder.try_acquire(Priority::Normal, &mut r).unwrap_err();
    assert_eq!(refused.reason(), OverloadReason::Priority);
    assert_eq!(refused.retry_after(), Some(ms(250)));
    assert!(shedder.try_acquire(Priority::Critical, &mut r).is_ok());
    shedder.reload(&config).unwrap();
    assert!(shedder.try_acquire(Priority::Sheddable, &mut r).is_ok());
    drop(held);
    assert_eq!(shedder.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_higher_limit_admits_queued_requests_and_a_smaller_queue_turns_none_away() {
    let config = ShedConfig::new()
        .limit(Limit::Fixed(1))
        .max_queue_delay(ms(500))
        .queue_capacity(4);
    let layer = ShedLayer::from_config(&config).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let svc = layer.layer(service_fn(move |_: ()| {
        let g = g.clone();
        async move {
            g.acquire().await.unwrap().forget();
            Ok::<_, std::io::Error>(())
        }
    }));
    let mut calls = Vec::new();
    for _ in 0..4 {
        let mut s = svc.clone();
        calls.push(tokio::spawn(async move {
            s.ready().await.unwrap().call(()).await
        }));
    }
    tokio::task::yield_now().await;
    let stats = layer.stats();
    assert_eq!((stats.in_flight, stats.queued), (1, 3));
    layer
        .reload(&config.clone().limit(Limit::Fixed(3)).queue_capacity(1))
        .unwrap();
    tokio::task::yield_now().await;
    let stats = layer.stats();
    assert_eq!(
        (stats.in_flight, stats.queued),
        (3, 1),
        "two admitted, none turned away"
    );
    gate.add_permits(4);
    for c in calls {
        c.await.unwrap().expect("admitted");
    }
    let stats = layer.stats();
    assert_eq!((stats.in_flight, stats.queued), (0, 0));
    assert_eq!(stats.shed.queue_full + stats.shed.queue_delay, 0);
}

/// 8 tasks call while another reloads every 100ms, alternating two
/// configs, for 5 simulated seconds, on a fixed, a queued and an adaptive
/// layer: no call fails because of a reload, no permit is lost, and the
/// counters survive.
#[tokio::test(start_paused = true)]
async fn reloads_under_load_fail_no_call_and_lose_no_permit() {
    let fixed = [
        ShedConfig::new().name("fixed").limit(Limit::Fixed(8)),
        ShedConfig::new()
            .name("fixed")
            .limit(Limit::Fixed(64))
            .soft_limit(16)
            .critical_headroom(0.1),
    ];
    let queued = [
        ShedConfig::new()
            .name("queued")
            .limit(Limit::Fixed(4))
            .max_queue_delay(ms(500))
            .queue_capacity(8),
        ShedConfig::new()
            .name("queued")
            .limit(Limit::Fixed(2))
            .max_queue_delay(ms(800))
            .queue_capacity(16),
    ];
    let adaptive = [
        ShedConfig::new()
            .name("adaptive")
            .limit(Limit::Aimd(Aimd::new().initial(20).min(8).max(100)))
            .window(ms(50))
            .window_min_samples(5),
        ShedConfig::new()
            .name("adaptive")
            .limit(Limit::Aimd(Aimd::new().initial(20).min(10).max(30)))
            .window(ms(200))
            .window_min_samples(20),
    ];
    let layers = [
        ShedLayer::from_config(&fixed[0]).unwrap(),
        ShedLayer::from_config(&queued[0]).unwrap(),
        ShedLayer::from_config(&adaptive[0]).unwrap(),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let slow = service_fn(|n: u32| async move {
        tokio::time::sleep(ms(3)).await;
        Ok::<_, std::io::Error>(n)
    });
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut svcs = layers.clone().map(|l| l.layer(slow));
        let (done, calls) = (done.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !done.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                for svc in &mut svcs {
                    let got = svc.ready().await.unwrap().call(n).await;
                    assert_eq!(got.expect("no call fails because of a reload"), n);
                }
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(ms(1)).await;
            }
        }));
    }
    for i in 0..50 {
        tokio::time::sleep(ms(100)).await;
        let which = (i + 1) % 2;
        layers[0].reload(&fixed[which]).unwrap();
        layers[1].reload(&queued[which]).unwrap();
        layers[2].reload(&adaptive[which]).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let calls = calls.load(Ordering::Relaxed);
    assert!(calls > 1_000, "{calls} calls");
    for layer in &layers {
        let stats = layer.stats();
        assert_eq!(stats.in_flight, 0, "{stats:?}");
        assert_eq!(stats.queued, 0, "{stats:?}");
        assert_eq!(stats.admitted, calls, "{stats:?}");
        assert_eq!(stats.shed, Default::default(), "{stats:?}");
    }
    assert_eq!(
        layers[0].config(),
        fixed[0],
        "50 reloads: the last applied [0]"
    );
    let limit = layers[2].stats().limit;
    assert!((8..=100).contains(&limit), "{limit}");
}

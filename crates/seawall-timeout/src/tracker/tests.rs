use super::sealed::Hold;
use super::*;
use seawall_core::Clock;

fn cfg() -> AdaptiveTimeoutConfig {
    AdaptiveTimeoutConfig {
        min: Duration::from_micros(1),
        base: Duration::from_secs(1),
        min_samples: 100,
        refresh_every: 1,
        sample_every: 1,
        ..Default::default()
    }
}

fn feed(t: &DeadlineTracker, us: impl IntoIterator<Item = u64>) {
    for v in us {
        t.record(Duration::from_micros(v));
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_is_the_formula_on_exact_samples() {
    // Below 256µs the histogram is exact to the microsecond.
    let t = DeadlineTracker::new(&cfg()).unwrap();
    feed(&t, 1..=200);
    let s = t.stats();
    assert_eq!(s.source, DeadlineSource::Adaptive);
    assert_eq!(s.samples, 200);
    // p99 of 1..=200 is 198 (rank ceil(0.99 × 200) = 198); × 1.5 = 297µs.
    assert_eq!(s.p99, Duration::from_micros(198));
    assert_eq!(s.deadline, Duration::from_micros(297));
    assert_eq!(s.p50, Duration::from_micros(100));
    assert_eq!(s.p90, Duration::from_micros(180));
    assert_eq!(s.p999, Duration::from_micros(200));
    assert_eq!(t.deadline(), Duration::from_micros(297));
}

#[tokio::test(start_paused = true)]
async fn other_percentiles_and_multipliers() {
    let t = DeadlineTracker::new(&AdaptiveTimeoutConfig {
        percentile: 50.0,
        multiplier: 3.0,
        ..cfg()
    })
    .unwrap();
    feed(&t, (1..=100).map(|v| v * 2));
    // p50 of 2, 4, …, 200 is 100µs; × 3.
    assert_eq!(t.stats().deadline, Duration::from_micros(300));
}

#[tokio::test(start_paused = true)]
async fn larger_latencies_are_within_the_histogram_precision() {
    let t = DeadlineTracker::new(&cfg()).unwrap();
    feed(&t, (1..=1000).map(|ms| ms * 1_000));
    let d = t.stats().deadline.as_secs_f64();
    let want = 0.990 * 1.5;
    assert!((d - want).abs() / want < 0.01, "{d} vs {want}");
}

#[tokio::test(start_paused = true)]
async fn clamped_at_min_and_max() {
    let t = DeadlineTracker::new(&AdaptiveTimeoutConfig {
        min: Duration::from_millis(10),
        max: Duration::from_millis(500),
        base: Duration::from_millis(100),
        ..cfg()
    })
    .unwrap();
    feed(&t, [50; 100]);
    assert_eq!(t.stats().deadline, Duration::from_millis(10), "75µs → min");

    let t = DeadlineTracker::new(&AdaptiveTimeoutConfig {
        max: Duration::from_millis(500),
        base: Duration::from_millis(100),
        ..cfg()
    })
    .unwrap();
    feed(&t, [400_000; 100]);
    assert_eq!(
        t.stats().deadline,
        Duration::from_millis(500),
        "600ms → max"
    );
    // Far beyond the histogram's range: clamped, not an error.
    feed(&t, [u64::MAX / 2_000; 100]);
    assert_eq!(t.stats().deadline, Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn base_until_min_samples() {
    let t = DeadlineTracker::new(&cfg()).unwrap();
    feed(&t, [100; 99]);
    let s = t.stats();
    assert_eq!(s.source, DeadlineSource::Base);
    assert_eq!(s.deadline, Duration::from_secs(1));
    assert_eq!(s.samples, 99);
    feed(&t, [100]);
    assert_eq!(
        t.deadline(),
        Duration::from_micros(150),
        "refreshed on the 100th sample"
    );
}

#[tokio::test(start_paused = true)]
async fn warm_up_switches_without_stats_even_with_large_refresh_every() {
    let t = DeadlineTracker::new(&AdaptiveTimeoutConfig {
        refresh_every: 1_000_000,
        ..cfg()
    })
    .unwrap();
    // All on this thread, so on one shard: the warm-up threshold is
    // min_samples / shards, so by 100 samples a refresh happened.
    feed(&t, [100; 100]);
    assert_eq!(t.deadline(), Duration::from_micros(150));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_follows_a_shift_within_one_window() {
    let window = Duration::from_secs(60);
    let t = DeadlineTracker::new(&AdaptiveTimeoutConfig {
        window,
        min: Duration::from_millis(10),
        ..cfg()
    })
    .unwrap();
    // Values the histogram holds exactly (the top of their bucket).
    let step = Duration::from_millis(500);
    let mut now = Duration::ZERO;
    while now < window {
        feed(&t, [10_239]);
        tokio::time::advance(step).await;
        now += step;
    }
    assert_eq!(t.deadline(), Duration::from_nanos(10_239_000 * 3 / 2));
    // The peer gets 10× slower.
    let mut elapsed = Duration::ZERO;
    while elapsed < window {
        feed(&t, [100_351]);
        tokio::time::advance(step).await;
        elapsed += step;
    }
    feed(&t, [100_351]);
    assert_eq!(
        t.deadline(),
        Duration::from_nanos(100_351_000 * 3 / 2),
        "old samples aged out within one window"
    );
    // And faster again.
    let mut elapsed = Duration::ZERO;
    while elapsed < window {
        feed(&t, [2_047]);
        tokio::time::advance(step).await;
        elapsed += step;
    }
    feed(&t, [2_047]);
    assert_eq!(
        t.deadline(),
        Duration::from_millis(10),
        "3ms, clamped at min"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_window_falls_back_to_base() {
    let t = DeadlineTracker::new(&cfg()).unwrap();
    feed(&t, [100; 200]);
    assert_eq!(t.deadline(), Duration::from_micros(150));
    tokio::time::advance(Duration::from_secs(61)).await;
    let s = t.stats();
    assert_eq!(s.samples, 0);
    assert_eq!(s.source, DeadlineSource::Base);
    assert_eq!(s.deadline, Duration::from_secs(1));
    assert_eq!(s.p99, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn timeouts_push_the_deadline_up_to_max_only() {
    let t = DeadlineTracker::new(&AdaptiveTimeoutConfig {
        max: Duration::from_millis(200),
        base: Duration::from_millis(100),
        ..cfg()
    })
    .unwrap();
    feed(&t, [50_175; 100]);
    assert_eq!(t.deadline(), Duration::from_nanos(50_175_000 * 3 / 2));
    for _ in 0..1_000 {
        let d = t.deadline();
        t.record_timeout(d);
    }
    let s = t.stats();
    assert_eq!(s.deadline, Duration::from_millis(200));
    assert_eq!(s.timeouts, 1_000);
}

#[tokio::test(start_paused = true)]
async fn fixed_mode_measures_nothing() {
    let t = DeadlineTracker::fixed(Duration::from_millis(250));
    assert!(!t.is_adaptive());
    feed(&t, [1; 500]);
    t.record_timeout(Duration::from_millis(250));
    let s = t.stats();
    assert_eq!(s.deadline, Duration::from_millis(250));
    assert_eq!(s.source, DeadlineSource::Fixed);
    assert_eq!(s.samples, 0);
    assert_eq!(s.timeouts, 1);
}

#[test]
fn threads_record_into_their_own_shards() {
    let t = Arc::new(DeadlineTracker::new(&cfg()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    t.record(Duration::from_micros(100));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = t.stats();
    assert_eq!(s.samples, 40_000, "no sample lost");
    assert_eq!(s.deadline, Duration::from_micros(150));
}

#[tokio::test(start_paused = true)]
async fn under_high_traffic_about_one_call_in_n_is_measured() {
    let t = DeadlineTracker::new(&AdaptiveTimeoutConfig {
        sample_every: 4,
        ..cfg()
    })
    .unwrap();
    let r = t.recorder();
    let mut measured = 0u64;
    // 16 × min_samples × sample_every calls before sampling starts.
    for _ in 0..6_400 {
        assert!(r.should_measure(), "every call while the window is small");
        t.record(Duration::from_micros(100));
    }
    for _ in 0..100_000 {
        if r.should_measure() {
            measured += 1;
        }
    }
    // 25 000 expected; 6 standard deviations is about 820.
    assert!((24_000..26_000).contains(&measured), "{measured}");
    // Fixed mode never measures.
    assert!(
        !DeadlineTracker::fixed(Duration::from_secs(1))
            .recorder()
            .should_measure()
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// On any samples, the deadline is the formula computed on a plain
    /// histogram of the same samples, and always within `min..=max`.
    #[test]
    fn deadline_is_always_the_clamped_formula(
        samples in proptest::collection::vec(0u64..30_000_000, 100..400),
        percentile in 1.0f64..=100.0,
        multiplier in 0.1f64..4.0,
    ) {
        {
            let config = AdaptiveTimeoutConfig {
                percentile,
                multiplier,
                min: Duration::from_millis(1),
                ..cfg()
            };
            let t = DeadlineTracker::with_clock(&config, Clock::manual().0).unwrap();
            let mut plain = hdrhistogram::Histogram::<u32>::new_with_bounds(1, 20_000_000, 2).unwrap();
            for &us in &samples {
                t.record(Duration::from_micros(us));
                // The tracker clamps at its range, 2 × max.
                plain.saturating_record(us.min(20_000_000));
            }
            let p = plain.value_at_quantile(percentile / 100.0);
            let want = ((p as f64 * 1_000.0 * multiplier) as u64).clamp(1_000_000, 10_000_000_000);
            let s = t.stats();
            proptest::prop_assert_eq!(s.deadline, Duration::from_nanos(want));
            proptest::prop_assert!(s.deadline >= config.min && s.deadline <= config.max);
            proptest::prop_assert_eq!(s.samples, samples.len() as u64);
        }
    }
}

#[test]
fn a_packed_deadline_leaves_the_measured_bit_free() {
    let longest = pack(Duration::MAX);
    assert_eq!(longest & MEASURED, 0);
    assert_eq!(unpack(longest | MEASURED), unpack(longest));
}

#[test]
fn a_packed_deadline_reads_back_exactly() {
    for ns in [
        0,
        1,
        999_999_999,
        1_000_000_000,
        1_500_000_001,
        86_400_000_000_123,
    ] {
        assert_eq!(unpack(pack_ns(ns)), Duration::from_nanos(ns));
    }
    let longest = crate::LONGEST_DEADLINE + Duration::from_nanos(999_999_999);
    assert_eq!(unpack(pack(longest)), longest);
    // Beyond 2^33 s it saturates instead of wrapping into a short deadline.
    assert!(unpack(pack_ns(u64::MAX)) >= Duration::from_secs((1 << 33) - 1));
}

#[test]
fn measured_calls_record_into_their_own_tracker() {
    // Several trackers on one thread, recorded into in turn twice: every
    // record lands in its own tracker.
    let (clock, hand) = Clock::manual();
    let trackers: Vec<_> = (0..7)
        .map(|_| DeadlineTracker::with_clock(&cfg(), clock.clone()).unwrap())
        .collect();
    for round in 1..=2u64 {
        for (i, t) in trackers.iter().enumerate() {
            let (deadline, claim) = (t.start(), t.claim());
            assert!(
                deadline & MEASURED != 0,
                "every call is measured while the window fills"
            );
            let began = t.began();
            hand.advance(Duration::from_micros(100 + i as u64));
            claim.record(began);
            assert_eq!(t.stats().samples, round);
        }
    }
    for (i, t) in trackers.iter().enumerate() {
        assert_eq!(t.stats().p50, Duration::from_micros(100 + i as u64));
    }
    // A claim outliving its tracker records nothing, still counts its
    // timeout (in state nobody reads any more) and does not panic.
    let t = DeadlineTracker::new(&cfg()).unwrap();
    let claim = t.claim();
    let began = t.began();
    drop(t);
    claim.record(began);
    let e = claim.expired(Duration::from_millis(5), true);
    assert_eq!(e.key(), None);
    assert_eq!(e.after(), Duration::from_millis(5));
    let at = claim.instant_at(0, Duration::from_secs(1));
    assert!(at > Instant::now(), "a timer still runs for its deadline");
}

#[test]
fn a_measured_call_is_timed_on_the_trackers_clock() {
    let (clock, hand) = Clock::manual();
    let t = DeadlineTracker::with_clock(&cfg(), clock).unwrap();
    let claim = t.claim();
    let began = t.began();
    assert!(matches!(began, Began::At(0)), "{began:?}");
    hand.advance(Duration::from_micros(250));
    claim.record(began);
    assert_eq!(t.stats().p50, Duration::from_micros(250));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// One key of a keyed layer (compact histograms) and a layer's own
    /// tracker (precise ones) fed the same latencies: the key's p99 and
    /// deadline are never below the layer's by more than the layer's 0.8%,
    /// and above it by less than 12.5%, for latencies of 4ms and more (8
    /// units of 512µs, with the default `max`).
    #[test]
    fn a_keys_deadline_is_within_one_eighth_of_the_precise_one(
        // Log-uniform between 4.1ms and 10s, in a few clusters.
        exponents in proptest::collection::vec(12.0f64..23.25, 100..600),
        percentile in proptest::sample::select(vec![50.0, 90.0, 99.0, 99.9]),
    ) {
        {
            let clock = Clock::manual().0;
            let config = AdaptiveTimeoutConfig { percentile, ..Default::default() };
            let params = Params::new(&config);
            let precise = DeadlineTracker::with_clock(&config, clock.clone()).unwrap();
            let key = DeadlineTracker::keyed(params, "default".into(), "k".into(), clock);
            for e in &exponents {
                let us = e.exp2() as u64;
                precise.record(Duration::from_micros(us));
                key.record(Duration::from_micros(us));
            }
            let (p, k) = (precise.stats(), key.stats());
            proptest::prop_assert_eq!(k.samples, p.samples);
            proptest::prop_assert_eq!(k.source, DeadlineSource::Adaptive);
            for (what, kv, pv) in [("p99", k.p99, p.p99), ("deadline", k.deadline, p.deadline)] {
                let (kv, pv) = (kv.as_secs_f64(), pv.as_secs_f64());
                proptest::prop_assert!(kv >= pv * (1.0 - 1.0 / 128.0), "{what}: key {kv} < layer {pv}");
                proptest::prop_assert!(kv < pv * 1.125, "{what}: key {kv} vs layer {pv}");
            }
        }
    }
}

#[test]
fn a_key_is_fresh_until_its_learned_deadline_drains() {
    let config = AdaptiveTimeoutConfig {
        min_samples: 10,
        ..cfg()
    };
    let (clock, hand) = Clock::manual();
    // A key made after its layer's clock has run: readings are the clock's,
    // not the key's own.
    hand.advance(Duration::from_secs(1000));
    let key = DeadlineTracker::keyed(
        Params::new(&config),
        "default".into(),
        "k".into(),
        clock.clone(),
    );
    feed(&key, [100; 9]);
    assert!(
        key.is_fresh(clock.nanos()),
        "base deadline: as a fresh key's"
    );
    feed(&key, [100]);
    assert_eq!(key.stats().source, DeadlineSource::Adaptive);
    assert!(!key.is_fresh(clock.nanos()));
    // The window (60s) drains; one interval (10s) more for samples not yet
    // in it.
    hand.advance(Duration::from_secs(69));
    assert!(!key.is_fresh(clock.nanos()));
    hand.advance(Duration::from_secs(1));
    assert!(key.is_fresh(clock.nanos()));
    assert_eq!(key.stats().source, DeadlineSource::Base);
    assert!(key.is_fresh(clock.nanos()));
}

#[test]
fn on_a_manual_clock_the_tracker_learns_and_rotates_with_no_runtime() {
    let (clock, hand) = Clock::manual();
    let t = DeadlineTracker::with_clock(&cfg(), clock).unwrap();
    feed(&t, [100; 100]);
    assert_eq!(t.deadline(), Duration::from_micros(150), "learned");
    // Each step of the window is 10s; samples count for 5 to 6 steps.
    hand.advance(Duration::from_secs(50));
    // Steps the window first (else the first sample after the pause would
    // land in the interval it ends, as samples pending in a shard do).
    t.stats();
    feed(&t, [200; 100]);
    let s = t.stats();
    assert_eq!(s.samples, 200, "both batches in the window");
    hand.advance(Duration::from_secs(10));
    let s = t.stats();
    assert_eq!(s.samples, 100, "the first batch aged out after 60s");
    assert_eq!(s.deadline, Duration::from_micros(300));
    // A sample recorded when a step is due rotates the window by itself
    // (no stats call): the deadline is back to base.
    hand.advance(Duration::from_secs(60));
    feed(&t, [100]);
    assert_eq!(t.deadline(), Duration::from_secs(1), "back to base");
}

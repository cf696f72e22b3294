//! The capacity-drop and unknown-capacity scenarios, short: a fixed limit
//! lets every admitted request queue for the slots that are left (4× the
//! work), an adaptive one brings the limit down to them. Real sockets on
//! 127.0.0.1, so only directions with structural margins are asserted:
//! with the fixed limit the queue makes nearly every admitted request wait
//! 4× the work, whatever the machine's noise.

use std::time::Duration;

use seawall_scenarios::capacity_drop::{DropConfig, GuardKind, UnknownConfig, run, run_unknown};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_capacity_drops_the_adaptive_limit_comes_down_and_the_fixed_one_queues() {
    let config = DropConfig::short(GuardKind::Gradient2);
    let work = config.work;
    let report = tokio::time::timeout(Duration::from_secs(60), run(config))
        .await
        .expect("bounded")
        .expect("ran");
    println!("{}", report.table());
    let (fixed, fixed_settled) = report.run(GuardKind::Fixed).expect("ran");
    let (adaptive, adaptive_settled) = report.run(GuardKind::Gradient2).expect("ran");
    // The fixed limit's admitted requests queue: 32 in flight on 8 slots.
    assert!(
        fixed_settled.p50 >= work * 3,
        "fixed p50 {:?}",
        fixed_settled.p50
    );
    // The adaptive one brought its limit and its latency down.
    assert!(
        adaptive_settled.p99 < fixed_settled.p99,
        "adaptive p99 {:?}, fixed p99 {:?}",
        adaptive_settled.p99,
        fixed_settled.p99
    );
    assert!(adaptive_settled.p50 < fixed_settled.p50);
    // Both still do useful work through the drop, and refuse the excess.
    for r in [fixed, adaptive] {
        assert!(r.phases[1].goodput_rps > 0.0, "{}", r.guard.name());
        assert!(r.overall.shed > 0.05, "{}", r.guard.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_guessed_4x_too_high_comes_down_when_adaptive() {
    let config = UnknownConfig::short(GuardKind::Gradient2);
    let (work, load) = (config.work, config.loads[0]);
    let report = tokio::time::timeout(Duration::from_secs(60), run_unknown(config))
        .await
        .expect("bounded")
        .expect("ran");
    println!("{}", report.table());
    let fixed = report.point(GuardKind::Fixed, load).expect("ran");
    let adaptive = report.point(GuardKind::Gradient2, load).expect("ran");
    // 64 in flight on 16 slots: the fixed limit admits a queue of 3× the work.
    assert!(fixed.settled.p50 >= work * 3, "{:?}", fixed.settled.p50);
    assert!(
        adaptive.settled.p99 < fixed.settled.p99,
        "adaptive p99 {:?}, fixed p99 {:?}",
        adaptive.settled.p99,
        fixed.settled.p99
    );
    // Its limit left the guess (before the fix, Gradient2 stayed at 64).
    let end = report.config.duration.as_secs_f64();
    let limit = adaptive.run.limit_between(end / 2.0, end).expect("sampled");
    assert!(limit < 48.0, "limit {limit}");
    assert!(adaptive.run.overall.goodput_rps > 0.0);
}

//! LoopBudget under paused time: rate over long spans, bursts, backoff.

use std::time::Duration;

use proptest::prelude::*;
use seawall_budget::LoopBudget;
use seawall_test_support::runtime;
use tokio::time::{Instant, advance};

#[tokio::test(start_paused = true)]
async fn rate_holds_over_ten_thousand_seconds_within_one_token() {
    let budget = LoopBudget::builder().rate(1000).burst(100).build().unwrap();
    let start = Instant::now();
    let mut admitted: u64 = 0;
    // Take greedily, then advance by a step shorter than a burst's worth of
    // refill (so no token is lost to a full bucket), for 10,000 seconds.
    let step = Duration::from_millis(37);
    let span = Duration::from_secs(10_000);
    while start.elapsed() < span {
        while budget.try_consume(1).is_ok() {
            admitted += 1;
        }
        advance(step).await;
    }
    while budget.try_consume(1).is_ok() {
        admitted += 1;
    }
    let elapsed = start.elapsed();
    // A burst at the start, then one token per millisecond.
    let expected = 100 + elapsed.as_millis() as u64;
    assert!(
        admitted.abs_diff(expected) <= 1,
        "admitted {admitted}, expected {expected} over {elapsed:?}"
    );
    assert_eq!(budget.stats().iterations, admitted);
}

#[tokio::test(start_paused = true)]
async fn uneven_rates_do_not_drift() {
    // 3 per second: the emission interval is rounded to whole nanoseconds.
    let budget = LoopBudget::builder().rate(3).burst(1).build().unwrap();
    let mut admitted: u64 = 0;
    for _ in 0..30_000 {
        advance(Duration::from_millis(333)).await;
        if budget.try_consume(1).is_ok() {
            admitted += 1;
        }
        advance(Duration::from_nanos(333_334)).await;
        if budget.try_consume(1).is_ok() {
            admitted += 1;
        }
    }
    // 30,000 × 333.333334ms = 10,000.00002s: 30,000 tokens plus the first.
    assert!(admitted.abs_diff(30_000) <= 1, "admitted {admitted}");
}

#[tokio::test(start_paused = true)]
async fn a_full_budget_admits_its_burst_and_no_more() {
    let budget = LoopBudget::builder().rate(10).burst(4).build().unwrap();
    assert_eq!(budget.available(), 4);
    for _ in 0..4 {
        assert!(budget.can_proceed());
        budget.consume(1);
    }
    assert!(!budget.can_proceed());
    let err = budget.try_consume(1).unwrap_err();
    assert_eq!(err.retry_after(), Duration::from_millis(100));
    assert_eq!(budget.utilisation(), 1.0);
    // A long idle period refills to the burst, never beyond.
    advance(Duration::from_secs(60)).await;
    assert_eq!(budget.available(), 4);
    assert_eq!(budget.utilisation(), 0.0);
    assert!(
        budget.try_consume(5).is_err(),
        "more than the burst is never admitted"
    );
    assert!(budget.try_consume(4).is_ok());
    let stats = budget.stats();
    assert_eq!(stats.iterations, 8);
    assert_eq!(stats.exhausted, 3);
}

#[tokio::test(start_paused = true)]
async fn try_consume_says_when_n_tokens_are_due() {
    let budget = LoopBudget::builder().rate(100).burst(10).build().unwrap();
    budget.try_consume(10).unwrap();
    assert_eq!(
        budget.try_consume(3).unwrap_err().retry_after(),
        Duration::from_millis(30)
    );
    advance(Duration::from_millis(25)).await;
    assert_eq!(
        budget.try_consume(3).unwrap_err().retry_after(),
        Duration::from_millis(5)
    );
    advance(Duration::from_millis(5)).await;
    assert!(budget.try_consume(3).is_ok());
}

#[tokio::test(start_paused = true)]
async fn backoff_sequence_cap_and_reset_are_exact() {
    let budget = LoopBudget::builder()
        .rate(1)
        .burst(1)
        .backoff_max(Duration::from_millis(60))
        .build()
        .unwrap();
    budget.try_consume(1).unwrap();
    let expected_ms = [10.0, 15.0, 22.5, 33.75, 50.625, 60.0, 60.0];
    let mut total = Duration::ZERO;
    for ms in expected_ms {
        assert!(budget.try_consume(1).is_err());
        let want = Duration::from_nanos((ms * 1e6) as u64);
        assert_eq!(budget.next_backoff(), want);
        let before = Instant::now();
        assert_eq!(budget.backoff().await, want);
        // Tokio's timer has millisecond resolution: the sleep ends at the
        // first whole millisecond at or after the delay.
        assert!(before.elapsed() >= want && before.elapsed() < want + Duration::from_millis(1));
        total += want;
    }
    let stats = budget.stats();
    assert_eq!(stats.backoffs, expected_ms.len() as u64);
    assert_eq!(stats.backoff_time, total);

    // Once the budget admits again, the schedule starts over.
    advance(Duration::from_secs(1)).await;
    assert!(budget.try_consume(1).is_ok());
    assert_eq!(budget.next_backoff(), Duration::from_millis(10));
    assert!(!budget.can_proceed());
    assert_eq!(budget.backoff().await, Duration::from_millis(10));
    advance(Duration::from_secs(1)).await;
    assert!(budget.can_proceed(), "can_proceed resets too");
    assert_eq!(budget.next_backoff(), Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn consume_goes_into_debt_and_the_rate_still_holds() {
    let budget = LoopBudget::builder().rate(10).burst(2).build().unwrap();
    budget.consume(12); // work already done: 1.2s worth
    assert!(!budget.can_proceed());
    // 1.2s owed, 0.2s of which the burst absorbs, plus the token asked for.
    assert_eq!(
        budget.try_consume(1).unwrap_err().retry_after(),
        Duration::from_millis(1100)
    );
    advance(Duration::from_millis(1099)).await;
    assert!(!budget.can_proceed());
    advance(Duration::from_millis(1)).await;
    assert!(budget.can_proceed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_budget_exactly() {
    // One token an hour: nothing refills while the test runs on real time.
    let budget = LoopBudget::builder()
        .rate(1)
        .per(Duration::from_secs(3600))
        .burst(500)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let b = budget.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            for _ in 0..1000 {
                if b.try_consume(1).is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    // Exactly the burst, however the tasks interleave.
    assert_eq!(total, 500);
    assert_eq!(budget.stats().iterations, 500);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Over any interval [a, b], at most `burst + (b - a) / emission` tokens
    /// are admitted, whatever the pattern of requests.
    #[test]
    fn no_interval_admits_more_than_burst_plus_refill(
        rate in 1u32..200,
        burst in 1u32..20,
        ops in proptest::collection::vec((0u64..50, 1u32..5), 1..150),
    ) {
        runtime::paused().block_on(async move {
            let budget = LoopBudget::builder().rate(rate).burst(burst).build().unwrap();
            let emission = budget.emission_interval().as_nanos() as u64;
            let start = Instant::now();
            let mut admitted: Vec<(u64, u32)> = Vec::new();
            for (gap_ms, n) in ops {
                advance(Duration::from_millis(gap_ms)).await;
                if budget.try_consume(n).is_ok() {
                    admitted.push((start.elapsed().as_nanos() as u64, n));
                }
            }
            for i in 0..admitted.len() {
                let mut sum = 0u64;
                for j in i..admitted.len() {
                    sum += u64::from(admitted[j].1);
                    let span = admitted[j].0 - admitted[i].0;
                    let bound = u64::from(burst) + span / emission;
                    prop_assert!(sum <= bound, "{sum} tokens in {span}ns, bound {bound}");
                }
            }
            Ok(())
        })?;
    }
}

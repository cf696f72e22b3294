//! Every transition and boundary of the tower-free breaker, with paused time.

use std::time::Duration;

use seawall_breaker::{BreakerConfig, CircuitBreaker, OpenBackoff, State, TripPolicy};
use seawall_core::Outcome;
use seawall_core::rejection::OpenState;
use tokio::time::advance;

fn breaker(policy: TripPolicy) -> CircuitBreaker {
    CircuitBreaker::builder()
        .policy(policy)
        .open_duration(Duration::from_secs(30))
        .build_breaker()
        .unwrap()
}

fn fail(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().expect("admitted").failure();
    }
}

fn succeed(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().expect("admitted").success();
    }
}

#[tokio::test(start_paused = true)]
async fn exactly_the_nth_consecutive_failure_trips() {
    let b = breaker(TripPolicy::consecutive_failures(5));
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().consecutive_failures, 4);
    succeed(&b, 1); // resets the run
    assert_eq!(b.stats().consecutive_failures, 0);
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
    let s = b.stats();
    assert_eq!((s.trips, s.failures, s.successes), (1, 9, None));
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_count_as_neither() {
    let b = breaker(TripPolicy::consecutive_failures(2));
    fail(&b, 1);
    b.try_acquire().unwrap().record(Outcome::Ignore);
    assert_eq!(b.stats().consecutive_failures, 1, "ignore does not reset");
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn open_lasts_exactly_open_duration() {
    let b = breaker(TripPolicy::consecutive_failures(1));
    fail(&b, 1);
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err.state(), OpenState::Open);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    advance(Duration::from_secs(30) - Duration::from_nanos(1)).await;
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_nanos(1)));
    assert_eq!(b.stats().rejected, 2);
    advance(Duration::from_nanos(1)).await;
    let probe = b
        .try_acquire()
        .expect("a probe after exactly open_duration");
    assert!(probe.is_probe());
    assert_eq!(b.state(), State::HalfOpen);
    drop(probe);
}

#[tokio::test(start_paused = true)]
async fn half_open_limits_probes_and_closes_after_success_threshold() {
    let b = breaker(TripPolicy::consecutive_failures(1)); // 3 probes, 2 successes
    fail(&b, 1);
    advance(Duration::from_secs(30)).await;
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let p3 = b.try_acquire().unwrap();
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err.state(), OpenState::HalfOpen);
    assert_eq!(err.retry_after(), None);
    assert_eq!(b.stats().half_open_in_flight, 3);
    p1.success();
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.stats().half_open_successes, 1);
    // A freed slot admits another probe.
    let p4 = b.try_acquire().unwrap();
    p2.success();
    assert_eq!(b.state(), State::Closed);
    // Probes of the closed-again breaker's previous state count for nothing.
    p3.failure();
    p4.failure();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn any_probe_failure_reopens() {
    let b = breaker(TripPolicy::consecutive_failures(1));
    fail(&b, 1);
    advance(Duration::from_secs(30)).await;
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    p1.success();
    p2.failure();
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.stats().trips, 2);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_secs(30))
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_probes_give_back_their_slot() {
    let b = breaker(TripPolicy::consecutive_failures(1));
    fail(&b, 1);
    advance(Duration::from_secs(30)).await;
    for _ in 0..10 {
        let probes: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
        assert!(b.try_acquire().is_err());
        drop(probes);
        assert_eq!(b.stats().half_open_in_flight, 0);
    }
    assert_eq!(
        b.state(),
        State::HalfOpen,
        "cancelled probes count as neither"
    );
    succeed(&b, 2);
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn cancelled_may_count_as_failure() {
    let b = CircuitBreaker::builder()
        .policy(TripPolicy::consecutive_failures(2))
        .cancelled_is_failure(true)
        .build_breaker()
        .unwrap();
    drop(b.try_acquire().unwrap());
    drop(b.try_acquire().unwrap());
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn late_outcomes_of_an_old_state_are_not_counted() {
    let b = breaker(TripPolicy::consecutive_failures(2));
    let late = b.try_acquire().unwrap();
    fail(&b, 2);
    assert_eq!(b.state(), State::Open);
    late.failure(); // admitted while closed; the breaker has moved on
    assert_eq!(b.stats().trips, 1);
    b.reset();
    let late = b.try_acquire().unwrap();
    b.force_open();
    b.reset();
    late.failure();
    assert_eq!(b.stats().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn count_window_respects_min_calls_and_forgets() {
    let b = breaker(TripPolicy::failure_rate_count(4, 0.5, 4));
    fail(&b, 3);
    assert_eq!(b.state(), State::Closed, "3 calls < min_calls");
    b.reset();
    succeed(&b, 3);
    fail(&b, 1); // 1 of 4
    assert_eq!(b.state(), State::Closed);
    fail(&b, 1); // window: s s f f -> 2 of 4
    assert_eq!(b.state(), State::Open);

    // The oldest outcome leaves the window.
    let b = breaker(TripPolicy::failure_rate_count(4, 0.75, 4));
    fail(&b, 2);
    succeed(&b, 2); // f f s s: 50%
    succeed(&b, 2); // s s s s: the failures are gone
    let s = b.stats();
    assert_eq!(
        (s.window_calls, s.window_failures, s.window_successes),
        (4, 0, 4)
    );
    fail(&b, 2); // s s f f
    assert_eq!(b.state(), State::Closed);
    fail(&b, 1); // s f f f: 75%
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.stats().successes, Some(4));
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_buckets() {
    let b = breaker(TripPolicy::FailureRateTime {
        window: Duration::from_secs(10),
        buckets: 10,
        rate: 0.5,
        min_calls: 4,
    });
    fail(&b, 3);
    advance(Duration::from_secs(10)).await;
    assert_eq!(
        b.stats().window_calls,
        0,
        "a whole window later, all forgotten"
    );
    fail(&b, 1);
    assert_eq!(b.state(), State::Closed, "old failures no longer count");
    fail(&b, 2);
    advance(Duration::from_millis(9_999)).await;
    assert_eq!(b.stats().window_calls, 3);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_count() {
    let b = breaker(TripPolicy::slow_call_rate(
        Duration::from_millis(100),
        0.5,
        Duration::from_secs(60),
        4,
    ));
    for ms in [100, 10, 101] {
        let p = b.try_acquire().unwrap();
        advance(Duration::from_millis(ms)).await;
        p.success();
    }
    let s = b.stats();
    assert_eq!(
        (s.window_calls, s.window_slow_calls),
        (3, 1),
        "exactly the threshold is not slow"
    );
    assert_eq!(b.state(), State::Closed);
    // A duration measured by the caller; failures alone do not trip this policy.
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), State::Closed);
    b.try_acquire()
        .unwrap()
        .record_elapsed(Outcome::Success, Duration::from_secs(1));
    assert_eq!(b.state(), State::Closed, "2 slow of 5 is 40%");
    b.try_acquire()
        .unwrap()
        .record_elapsed(Outcome::Success, Duration::from_secs(1));
    assert_eq!(b.state(), State::Open, "3 slow of 6 is 50%");
}

#[tokio::test(start_paused = true)]
async fn forced_states_and_reset() {
    let b = breaker(TripPolicy::consecutive_failures(1));
    b.force_open();
    assert_eq!(b.state(), State::ForcedOpen);
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err.state(), OpenState::ForcedOpen);
    assert_eq!(err.retry_after(), None);
    advance(Duration::from_secs(3600)).await;
    assert!(b.try_acquire().is_err(), "forced open has no end");
    b.force_closed();
    fail(&b, 10);
    assert_eq!(b.state(), State::ForcedClosed, "forced closed never trips");
    assert_eq!(b.stats().failures, 10);
    b.reset();
    assert_eq!(b.state(), State::Closed);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
    b.reset();
    assert_eq!(b.state(), State::Closed);
    assert!(b.try_acquire().is_ok());
    b.trip();
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.stats().trips, 2, "forcing open is not a trip");
}

#[tokio::test(start_paused = true)]
async fn open_duration_grows_on_repeated_trips_and_resets_after_a_sustained_close() {
    let b = CircuitBreaker::from_config(
        &BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(1))
            .open_duration(Duration::from_secs(10))
            .open_backoff(
                OpenBackoff::new()
                    .multiplier(2.0)
                    .max_open_duration(Duration::from_secs(35))
                    .jitter(0.0)
                    .reset_after(Duration::from_secs(60))
                    .seed(1),
            ),
    )
    .unwrap();
    let open_for = |b: &CircuitBreaker| b.stats().open_duration;
    fail(&b, 1);
    assert_eq!(open_for(&b), Duration::from_secs(10));
    for expected in [20, 35, 35] {
        advance(open_for(&b)).await;
        b.try_acquire().unwrap().failure(); // the probe fails
        assert_eq!(open_for(&b), Duration::from_secs(expected));
    }
    // Close, fail again soon: still growing.
    advance(open_for(&b)).await;
    succeed(&b, 2);
    assert_eq!(b.state(), State::Closed);
    advance(Duration::from_secs(59)).await;
    fail(&b, 1);
    assert_eq!(open_for(&b), Duration::from_secs(35));
    // Close and stay closed for reset_after: back to the base.
    advance(open_for(&b)).await;
    succeed(&b, 2);
    advance(Duration::from_secs(60)).await;
    fail(&b, 1);
    assert_eq!(open_for(&b), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn jitter_is_seeded_and_bounded() {
    let make = || {
        CircuitBreaker::builder()
            .policy(TripPolicy::consecutive_failures(1))
            .open_duration(Duration::from_secs(10))
            .open_backoff(OpenBackoff::new().jitter(0.5).seed(42))
            .build_breaker()
            .unwrap()
    };
    let (a, b) = (make(), make());
    fail(&a, 1);
    fail(&b, 1);
    let d = a.stats().open_duration;
    assert_eq!(d, b.stats().open_duration, "same seed, same jitter");
    assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn call_guards_a_future() {
    let b = breaker(TripPolicy::consecutive_failures(1));
    let r = b.call(async { Err::<(), _>("boom") }).await;
    assert_eq!(r.unwrap_err().into_inner(), Some("boom"));
    let r = b.call(async { Ok::<_, &str>(1) }).await;
    let err = r.unwrap_err();
    assert!(err.rejection().is_some());
    assert!(err.to_string().starts_with("circuit open"));

    // A dropped call future releases its probe.
    advance(Duration::from_secs(30)).await;
    let mut task = tokio_test::task::spawn(b.call(std::future::pending::<Result<(), ()>>()));
    tokio_test::assert_pending!(task.poll());
    assert_eq!(b.stats().half_open_in_flight, 1);
    drop(task);
    assert_eq!(b.stats().half_open_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn stats_report_time_in_state() {
    let b = breaker(TripPolicy::consecutive_failures(1));
    advance(Duration::from_secs(5)).await;
    assert_eq!(b.stats().time_in_state, Duration::from_secs(5));
    fail(&b, 1);
    advance(Duration::from_secs(2)).await;
    let s = b.stats();
    assert_eq!(s.time_in_state, Duration::from_secs(2));
    assert_eq!(s.retry_after, Some(Duration::from_secs(28)));
    assert_eq!(b.health(), 0.0);
}

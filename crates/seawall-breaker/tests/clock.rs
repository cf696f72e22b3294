//! The breaker's time-driven behaviour on a manual clock, with no runtime at
//! all (the open period, half-open, the time window, slow calls, open
//! backoff, a keyed layer's idle eviction); and `state()` turning half-open
//! once the open period is over, without a call, on the manual clock and on
//! paused tokio time.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_breaker::{
    BreakerConfig, BreakerLayer, CircuitBreaker, KeyedBreakerConfig, KeyedBreakerLayer,
    OpenBackoff, OpenState, State, TripPolicy,
};
use seawall_core::{Clock, KeyMapConfig, ManualClock};
use seawall_test_support::service::{Echo, ready_call_ok};
use tower::{Layer, Service};

const OPEN: Duration = Duration::from_secs(30);

fn manual(policy: TripPolicy) -> (CircuitBreaker, ManualClock) {
    let (clock, hand) = Clock::manual();
    let b = CircuitBreaker::builder()
        .clock(clock)
        .policy(policy)
        .open_duration(OPEN)
        .half_open_max_calls(2)
        .success_threshold(2)
        .build_breaker()
        .unwrap();
    (b, hand)
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

#[test]
fn open_period_half_open_and_close_on_a_manual_clock() {
    let (b, hand) = manual(TripPolicy::consecutive_failures(2));
    fail(&b, 2);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.stats().retry_after, Some(OPEN));
    hand.advance(OPEN - Duration::from_secs(1));
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(b.stats().time_in_state, OPEN - Duration::from_secs(1));
    hand.advance(Duration::from_secs(1));
    // No call yet: the reader sees half-open.
    assert_eq!(b.state(), State::HalfOpen);
    let s = b.stats();
    assert_eq!(
        (s.state, s.time_in_state, s.retry_after),
        (State::HalfOpen, Duration::ZERO, None)
    );
    assert_eq!(b.health(), 0.25);
    let probes = [b.try_acquire().unwrap(), b.try_acquire().unwrap()];
    assert!(probes.iter().all(|p| p.is_probe()));
    assert_eq!(b.try_acquire().unwrap_err().state(), OpenState::HalfOpen);
    for p in probes {
        p.success();
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().trips, 1);
}

#[test]
fn a_failed_probe_reopens_for_a_whole_period() {
    let (b, hand) = manual(TripPolicy::consecutive_failures(1));
    fail(&b, 1);
    hand.advance(OPEN);
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), State::Open);
    hand.advance(OPEN - Duration::from_nanos(1));
    assert_eq!(b.state(), State::Open);
    hand.advance(Duration::from_nanos(1));
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.stats().trips, 2);
}

#[test]
fn time_window_slides_on_a_manual_clock() {
    let (b, hand) = manual(TripPolicy::failure_rate_time(
        Duration::from_secs(10),
        0.5,
        2,
    ));
    fail(&b, 1);
    hand.advance(Duration::from_secs(11)); // the failure leaves the window
    succeed(&b, 2);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().window_failures, 0);
    fail(&b, 1);
    assert_eq!(b.stats().window_calls, 3);
    fail(&b, 1); // 2 of 4 in the last 10s
    assert_eq!(b.state(), State::Open);
}

#[test]
fn slow_calls_are_timed_on_a_manual_clock() {
    let (b, hand) = manual(TripPolicy::slow_call_rate(
        Duration::from_millis(100),
        0.5,
        Duration::from_secs(60),
        2,
    ));
    let p = b.try_acquire().unwrap();
    hand.advance(Duration::from_millis(100)); // not slower than the threshold
    p.success();
    assert_eq!(b.stats().window_slow_calls, 0);
    let p = b.try_acquire().unwrap();
    hand.advance(Duration::from_millis(101));
    p.success();
    assert_eq!(b.stats().window_slow_calls, 1);
    assert_eq!(b.state(), State::Open, "1 slow of 2 calls: 50%");
}

#[test]
fn open_backoff_grows_and_resets_on_a_manual_clock() {
    let (clock, hand) = Clock::manual();
    let b = CircuitBreaker::builder()
        .clock(clock)
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(Duration::from_secs(10))
        .success_threshold(1)
        .open_backoff(
            OpenBackoff::new()
                .jitter(0.0)
                .max_open_duration(Duration::from_secs(60))
                .reset_after(Duration::from_secs(100)),
        )
        .build_breaker()
        .unwrap();
    fail(&b, 1);
    hand.advance(Duration::from_secs(10));
    b.try_acquire().unwrap().failure(); // the probe fails: 20s
    assert_eq!(b.stats().open_duration, Duration::from_secs(20));
    hand.advance(Duration::from_secs(20));
    succeed(&b, 1);
    assert_eq!(b.state(), State::Closed);
    hand.advance(Duration::from_secs(100));
    fail(&b, 1);
    assert_eq!(b.stats().open_duration, Duration::from_secs(10), "reset");
}

#[test]
fn a_layer_on_a_manual_clock_needs_no_runtime() {
    let (clock, hand) = Clock::manual();
    let layer = BreakerLayer::builder()
        .clock(clock)
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(OPEN)
        .build()
        .unwrap();
    layer.breaker().trip();
    let mut svc = layer.layer(Echo);
    let call = |svc: &mut _| ready_call_ok(svc, 1u32);
    assert!(!call(&mut svc));
    hand.advance(OPEN);
    assert_eq!(layer.state(), State::HalfOpen);
    assert!(call(&mut svc));
    assert!(call(&mut svc));
    assert_eq!(layer.state(), State::Closed);
}

#[test]
fn keyed_layer_evicts_and_reopens_on_its_clock() {
    let (clock, hand) = Clock::manual();
    let config = KeyedBreakerConfig::from(
        BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(1))
            .open_duration(OPEN),
    )
    .keys(
        KeyMapConfig::new()
            .capacity(10)
            .idle_ttl(Duration::from_secs(60)),
    );
    let layer = KeyedBreakerLayer::new(|k: &u32| *k, &config)
        .unwrap()
        .clock(clock);
    {
        let fresh = layer.breaker_or_insert(1).unwrap();
        fresh.try_acquire().unwrap().success();
        let open = layer.breaker_or_insert(2).unwrap();
        open.try_acquire().unwrap().failure();
    }
    assert_eq!(layer.evict_idle(), 0, "not idle yet");
    hand.advance(Duration::from_secs(120));
    assert_eq!(
        layer.evict_idle(),
        1,
        "the fresh key goes, the tripped one stays"
    );
    assert!(layer.breaker(&1).is_none());
    assert_eq!(layer.breaker(&2).unwrap().state(), State::HalfOpen);
    assert_eq!(layer.stats().half_open, 1);
}

#[tokio::test(start_paused = true)]
async fn state_turns_half_open_without_a_call_on_paused_tokio_time() {
    let b = CircuitBreaker::builder()
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(OPEN)
        .build_breaker()
        .unwrap();
    fail(&b, 1);
    tokio::time::advance(OPEN - Duration::from_millis(1)).await;
    assert_eq!(b.state(), State::Open);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.stats().state, State::HalfOpen);
    assert_eq!(b.stats().half_open_in_flight, 0);
    // Forced open never turns half-open by itself.
    b.force_open();
    tokio::time::advance(OPEN * 10).await;
    assert_eq!(b.state(), State::ForcedOpen);
}

/// Probes taken on several threads (each with its own lane of the breaker)
/// and dropped unpolled on another thread, after the layer and its service
/// are gone: every probe slot comes back, and the breaker lives as long as
/// a permit does.
#[test]
fn probes_taken_on_other_threads_give_back_their_slots_when_dropped() {
    let (clock, hand) = Clock::manual();
    let layer = BreakerLayer::builder()
        .clock(clock)
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(OPEN)
        .half_open_max_calls(4)
        .build()
        .unwrap();
    let breaker = layer.breaker().clone();
    layer.breaker().trip();
    hand.advance(OPEN);
    let svc = layer.layer(Pending);
    drop(layer);
    let futures: Vec<_> = (0..4)
        .map(|_| {
            let mut svc = svc.clone();
            std::thread::spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                assert!(svc.poll_ready(&mut cx).is_ready());
                let mut fut = Box::pin(svc.call(()));
                assert!(fut.as_mut().poll(&mut cx).is_pending());
                fut
            })
            .join()
            .unwrap()
        })
        .collect();
    drop(svc);
    assert_eq!(breaker.stats().half_open_in_flight, 4);
    assert!(breaker.try_acquire().is_err(), "every slot held");
    std::thread::spawn(move || drop(futures)).join().unwrap();
    assert_eq!(breaker.stats().half_open_in_flight, 0);
    assert_eq!(breaker.state(), State::HalfOpen);
}

/// A service whose calls never finish.
#[derive(Clone)]
struct Pending;

impl Service<()> for Pending {
    type Response = ();
    type Error = std::convert::Infallible;
    type Future = std::future::Pending<Result<(), std::convert::Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ()) -> Self::Future {
        std::future::pending()
    }
}

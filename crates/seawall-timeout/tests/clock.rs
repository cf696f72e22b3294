//! The layers on a manual clock, with no runtime: a call that answers at its
//! first poll makes no timer, so latencies are measured on the layer's clock
//! and the deadline learned without tokio. The timer set at the first poll
//! that finds a call pending (paused tokio time): for what is left of the
//! deadline, on any clock. And the response future's size against tower's
//! `Timeout`'s.

use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_core::{Clock, ManualClock};
use seawall_timeout::{
    AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, DeadlineSource, KeyedAdaptiveTimeoutConfig,
    KeyedAdaptiveTimeoutLayer, ResponseFuture,
};
use tower::{Layer, Service, service_fn};

/// A service that answers at once, after moving the manual clock by the
/// request's number of milliseconds (a call that "takes" that long).
fn takes(hand: ManualClock) -> impl Service<u64, Response = u64, Error = std::io::Error> {
    service_fn(move |ms: u64| {
        hand.advance(Duration::from_millis(ms));
        ready(Ok(ms))
    })
}

fn call<S: Service<u64>>(svc: &mut S, req: u64) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("answers at once"),
    }
}

#[test]
fn a_layer_learns_its_deadline_on_a_manual_clock_without_a_runtime() {
    let (clock, hand) = Clock::manual();
    let layer = AdaptiveTimeoutLayer::builder()
        .min_samples(10)
        .refresh_every(1)
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = layer.layer(takes(hand.clone()));
    for _ in 0..10 {
        call(&mut svc, 40).unwrap();
    }
    let stats = layer.stats();
    assert_eq!(stats.source, DeadlineSource::Adaptive);
    assert!(stats.p99 >= Duration::from_millis(40) && stats.p99 < Duration::from_micros(40_400));
    // The window ages on the same clock: a window (60s) and a step later the
    // deadline is the base one again.
    hand.advance(Duration::from_secs(70));
    assert_eq!(layer.stats().source, DeadlineSource::Base);
}

#[test]
fn a_keyed_layer_and_its_map_read_the_layers_clock() {
    let (clock, hand) = Clock::manual();
    let per_key = AdaptiveTimeoutConfig::builder()
        .min_samples(5)
        .refresh_every(1)
        .into_config();
    let config = KeyedAdaptiveTimeoutConfig::from(per_key).idle_ttl(Duration::from_secs(10));
    let layer = KeyedAdaptiveTimeoutLayer::new(|ms: &u64| *ms, &config)
        .unwrap()
        .clock(clock);
    let mut svc = layer.layer(takes(hand.clone()));
    for _ in 0..5 {
        call(&mut svc, 20).unwrap();
    }
    call(&mut svc, 1).unwrap();
    let learned = layer.key_stats(&20).unwrap();
    assert_eq!(learned.source, DeadlineSource::Adaptive);
    assert!(learned.p50 >= Duration::from_millis(20));
    // Idle past the TTL on the manual clock: the key still at its base
    // deadline goes, the learned one stays until its window drains.
    hand.advance(Duration::from_secs(11));
    assert_eq!(layer.evict_idle(), 1);
    assert!(layer.key_stats(&20).is_some());
    hand.advance(Duration::from_secs(70));
    assert_eq!(layer.evict_idle(), 1);
    assert!(layer.is_empty());
}

type Inner = Ready<Result<u64, std::io::Error>>;

#[test]
fn the_response_future_is_at_most_16_bytes_over_towers() {
    let ours = size_of::<ResponseFuture<Inner>>();
    let towers = size_of::<tower::timeout::future::ResponseFuture<Inner>>();
    // The inner future and the timer, as tower's; then the deadline (with
    // the "measured" bit) and the tracker's number: the call's start shares
    // the timer's bytes until the timer is armed.
    assert!(ours <= towers + 16, "{ours} bytes against tower's {towers}");
    let keyed = size_of::<ResponseFuture<Inner, seawall_timeout::KeyedClaim>>();
    assert!(keyed <= towers + 16, "keyed: {keyed} against {towers}");
}

/// A service that never answers.
fn hangs() -> impl Service<u64, Response = u64, Error = std::io::Error> {
    service_fn(|_: u64| std::future::pending::<Result<u64, std::io::Error>>())
}

#[tokio::test(start_paused = true)]
async fn a_call_first_polled_after_its_deadline_times_out_at_once() {
    let layer = AdaptiveTimeoutLayer::fixed(Duration::from_millis(50));
    let mut svc = layer.layer(hangs());
    let fut = svc.call(1);
    // The deadline runs from `call`, not from the first poll.
    tokio::time::advance(Duration::from_millis(60)).await;
    let mut fut = tokio_test::task::spawn(fut);
    let err = match fut.poll() {
        Poll::Ready(Err(e)) => e,
        other => panic!("expected Elapsed at the first poll, got {other:?}"),
    };
    let elapsed = err.downcast_ref::<seawall_core::Elapsed>().unwrap();
    assert_eq!(elapsed.after(), Duration::from_millis(50));
    assert_eq!(layer.stats().timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_pending_call_on_a_manual_clock_is_cut_by_tokio_for_what_is_left() {
    let (clock, hand) = Clock::manual();
    let layer = AdaptiveTimeoutLayer::builder()
        .base(Duration::from_millis(100))
        .sample_every(1)
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = layer.layer(hangs());
    let fut = svc.call(1);
    // 30ms pass on the layer's clock before the first poll: 70ms are left,
    // and tokio's timer is set for them.
    hand.advance(Duration::from_millis(30));
    let mut fut = tokio_test::task::spawn(fut);
    assert!(fut.poll().is_pending());
    tokio::time::advance(Duration::from_millis(69)).await;
    assert!(fut.poll().is_pending());
    tokio::time::advance(Duration::from_millis(2)).await;
    let Poll::Ready(Err(err)) = fut.poll() else {
        panic!("expected Elapsed")
    };
    let elapsed = err.downcast_ref::<seawall_core::Elapsed>().unwrap();
    assert_eq!(elapsed.after(), Duration::from_millis(100));
    let stats = layer.stats();
    assert_eq!(stats.timeouts, 1);
    assert_eq!(
        stats.samples, 1,
        "a measured timeout is a sample of its deadline"
    );
}

#[test]
fn a_call_dropped_before_its_first_poll_leaves_nothing() {
    let (clock, hand) = Clock::manual();
    let layer = AdaptiveTimeoutLayer::builder()
        .sample_every(1)
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = layer.layer(takes(hand));
    drop(svc.call(5));
    let stats = layer.stats();
    assert_eq!((stats.samples, stats.timeouts), (0, 0));
}

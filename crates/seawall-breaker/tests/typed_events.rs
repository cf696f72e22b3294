//! The breaker's typed events (`seawall_core::event`): one per transition,
//! with the key for a keyed breaker, delivered after the breaker's lock is
//! released (a callback may call back into the breaker).
//!
//! The hub is per process and the tests of this file run in parallel: each
//! test names its breaker uniquely and keeps only that name's events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall_breaker::{
    BreakerConfig, CircuitBreaker, KeyedBreakerConfig, KeyedBreakerLayer, TripPolicy,
};
use seawall_core::Clock;
use seawall_core::event::{self, BreakerState, Event, EventKind, Subscriber};

const OPEN: Duration = Duration::from_secs(30);

fn transitions(
    name: &str,
    events: &mut Subscriber,
) -> Vec<(Option<String>, BreakerState, BreakerState)> {
    let mut out = Vec::new();
    while let Some(e) = events.try_recv() {
        if &*e.layer == name
            && let EventKind::BreakerTransition { from, to, .. } = e.kind
        {
            out.push((e.key, from, to));
        }
    }
    out
}

#[test]
fn every_transition_is_an_event() {
    use BreakerState::*;
    let (clock, hand) = Clock::manual();
    let b = CircuitBreaker::builder()
        .name("ev-breaker-cycle")
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(OPEN)
        .success_threshold(1)
        .clock(clock)
        .build_breaker()
        .unwrap();
    let mut events = event::subscribe(1024);
    b.try_acquire().unwrap().failure(); // closed -> open
    assert!(b.try_acquire().is_err()); // refused: no event
    hand.advance(OPEN);
    b.try_acquire().unwrap().success(); // open -> half-open -> closed
    b.force_open();
    b.force_closed();
    b.reset();
    assert_eq!(
        transitions("ev-breaker-cycle", &mut events),
        [
            (None, Closed, Open),
            (None, Open, HalfOpen),
            (None, HalfOpen, Closed),
            (None, Closed, ForcedOpen),
            (None, ForcedOpen, ForcedClosed),
            (None, ForcedClosed, Closed),
        ]
    );
    assert_eq!(events.dropped(), 0);
}

#[test]
fn a_keyed_breaker_gives_the_key() {
    let config = KeyedBreakerConfig::from(
        BreakerConfig::new()
            .name("ev-breaker-keyed")
            .policy(TripPolicy::consecutive_failures(1))
            .open_duration(OPEN),
    );
    let layer = KeyedBreakerLayer::new(|k: &String| k.clone(), &config).unwrap();
    let mut events = event::subscribe(1024);
    layer
        .breaker_or_insert("10.0.0.7:443".to_owned())
        .unwrap()
        .try_acquire()
        .unwrap()
        .failure();
    assert_eq!(
        transitions("ev-breaker-keyed", &mut events),
        [(
            Some("10.0.0.7:443".to_owned()),
            BreakerState::Closed,
            BreakerState::Open
        )]
    );
}

#[test]
fn a_callback_may_call_back_into_the_breaker_that_emitted() {
    let b = CircuitBreaker::builder()
        .name("ev-breaker-reenter")
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(OPEN)
        .build_breaker()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _guard = {
        let (b, seen) = (b.clone(), Arc::clone(&seen));
        event::on_event(move |e: &Event| {
            if &*e.layer == "ev-breaker-reenter" {
                // Takes the breaker's lock: this would deadlock if the event
                // were delivered under it.
                seen.lock()
                    .unwrap()
                    .push((b.stats().state, b.stats().trips));
            }
        })
    };
    b.try_acquire().unwrap().failure();
    assert_eq!(*seen.lock().unwrap(), [(seawall_breaker::State::Open, 1)]);
}

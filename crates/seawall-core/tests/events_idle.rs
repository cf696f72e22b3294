//! With nobody subscribed, an emit point builds nothing. Its own test
//! binary: no other test of the process subscribes, so "nobody listens" holds
//! for the whole run.

use seawall_core::Clock;
use seawall_core::event::{self, Event, EventKind, Throttle, ValueThrottle};

#[test]
fn with_no_subscriber_nothing_is_built() {
    assert!(!event::enabled());
    event::emit(|| unreachable!("built with nobody listening"));
    let (clock, _hand) = Clock::manual();
    let throttle = Throttle::new(clock.clone());
    let value = ValueThrottle::new(clock, 1);
    for v in 0..100 {
        throttle.note(|_| unreachable!("built with nobody listening"));
        value.observe(v, |_, _| unreachable!("built with nobody listening"));
    }
    // Nothing was counted either: the first event after subscribing stands
    // for occurrences seen while someone listened, not before.
    let mut events = event::subscribe(16);
    throttle.note(|n| Event::new("idle", EventKind::budget_exhausted(n)));
    let e = events.try_recv().expect("an event");
    assert_eq!(e.kind, EventKind::budget_exhausted(1));
    drop(events);
    assert!(
        !event::enabled(),
        "the last subscriber's drop turns emitting off"
    );
}

//! The budget's typed events (`seawall_core::event`): a spent budget reports
//! `BudgetExhausted` at most once a second per layer, counting the refusals
//! it stands for; a keyed budget names the key refused.
//!
//! The hub is per process and these tests run in parallel: each test names
//! its budget uniquely and keeps only that name's events.

use std::time::Duration;

use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer, LoopBudget};
use seawall_core::event::{self, EventKind, Subscriber};
use seawall_core::{Clock, KeyMapConfig};
use seawall_test_support::runtime;
use seawall_test_support::service::{Echo, ready_call_ok};
use tower::Layer;

fn exhausted(name: &str, events: &mut Subscriber) -> Vec<(Option<String>, u64)> {
    let mut out = Vec::new();
    while let Some(e) = events.try_recv() {
        if &*e.layer == name
            && let EventKind::BudgetExhausted { refused, .. } = e.kind
        {
            out.push((e.key, refused));
        }
    }
    out
}

#[test]
fn a_spent_budget_reports_once_a_second_with_the_count() {
    let (clock, hand) = Clock::manual();
    let budget = LoopBudget::builder()
        .name("ev-budget-loop")
        .rate(1)
        .burst(1)
        .clock(clock)
        .build()
        .unwrap();
    let mut events = event::subscribe(1024);
    assert!(budget.try_consume(1).is_ok());
    for _ in 0..100 {
        assert!(budget.try_consume(1).is_err());
    }
    assert_eq!(exhausted("ev-budget-loop", &mut events), [(None, 1)]);
    // 999 ms later: still within the second, folded.
    hand.advance(Duration::from_millis(999));
    assert!(budget.try_consume(1).is_err());
    assert!(!budget.can_proceed());
    assert_eq!(exhausted("ev-budget-loop", &mut events), []);
    // The second is over: one event for the 99 + 2 folded and this one.
    hand.advance(Duration::from_millis(1));
    assert!(budget.try_consume(1).is_ok(), "a token accrued meanwhile");
    assert!(budget.try_consume(1).is_err());
    assert_eq!(exhausted("ev-budget-loop", &mut events), [(None, 102)]);
    assert_eq!(budget.stats().exhausted, 103);
}

#[test]
fn a_rejecting_layer_reports_through_its_budget() {
    let rt = runtime::paused();
    let _guard = rt.enter();
    let layer = seawall_budget::BudgetLayer::builder()
        .name("ev-budget-layer")
        .rate(1)
        .burst(1)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    let mut events = event::subscribe(1024);
    assert!(ready_call_ok(&mut svc, ()));
    for _ in 0..3 {
        assert!(!ready_call_ok(&mut svc, ()));
    }
    assert_eq!(exhausted("ev-budget-layer", &mut events), [(None, 1)]);
}

#[test]
fn a_keyed_budget_reports_per_layer_with_the_key_refused() {
    let rt = runtime::paused();
    let _guard = rt.enter();
    let (clock, hand) = Clock::manual();
    let cfg = KeyedBudgetConfig::from(BudgetConfig::new().name("ev-budget-keyed").rate(1).burst(1))
        .keys(KeyMapConfig::new().capacity(2));
    let layer = KeyedBudgetLayer::new(|k: &u32| *k, &cfg)
        .unwrap()
        .clock(clock);
    let mut svc = layer.layer(Echo);
    let mut events = event::subscribe(1024);
    assert!(ready_call_ok(&mut svc, 7u32));
    assert!(!ready_call_ok(&mut svc, 7u32)); // event: key 7
    assert!(ready_call_ok(&mut svc, 8u32));
    assert!(!ready_call_ok(&mut svc, 8u32)); // folded: one event per layer a second
    assert_eq!(
        exhausted("ev-budget-keyed", &mut events),
        [(Some("7".to_owned()), 1)]
    );
    hand.advance(Duration::from_millis(500));
    // The map is full of keys that owe tokens: a newcomer is served by the
    // overflow budget, which it spends; folded too.
    assert!(ready_call_ok(&mut svc, 9u32));
    assert!(!ready_call_ok(&mut svc, 10u32));
    assert_eq!(exhausted("ev-budget-keyed", &mut events), []);
    // A second after the first event: the next refusal reports the three.
    hand.advance(Duration::from_millis(500));
    assert!(ready_call_ok(&mut svc, 7u32), "key 7 refilled");
    assert!(!ready_call_ok(&mut svc, 7u32));
    assert_eq!(
        exhausted("ev-budget-keyed", &mut events),
        [(Some("7".to_owned()), 3)]
    );
    assert_eq!(layer.stats().exhausted, 4);
    // Another second: the overflow budget's refusal names the overflow key.
    hand.advance(Duration::from_secs(1));
    assert!(ready_call_ok(&mut svc, 7u32));
    assert!(ready_call_ok(&mut svc, 8u32));
    assert!(
        ready_call_ok(&mut svc, 12u32),
        "the map is full: the overflow budget"
    );
    assert!(
        !ready_call_ok(&mut svc, 13u32),
        "the overflow budget is spent"
    );
    assert_eq!(
        exhausted("ev-budget-keyed", &mut events),
        [(Some("<overflow>".to_owned()), 1)]
    );
}

//! What a cancelled reservation gives back: a Wait-mode service that reserved
//! a token in `poll_ready` and is dropped before `call` returns only the part
//! of its token that is still owed, never a token the refill already replaced.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_budget::{BudgetLayer, BudgetMode};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt};

/// Always ready; echoes its request.
#[derive(Clone, Default)]
struct Echo;

impl Service<u32> for Echo {
    type Response = u32;
    type Error = Infallible;
    type Future = Ready<Result<u32, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u32) -> Self::Future {
        ready(Ok(x))
    }
}

/// A Wait-mode budget of `rate` a second, bursts of `burst`.
fn wait_layer(rate: u32, burst: u32) -> BudgetLayer {
    BudgetLayer::builder()
        .rate(rate)
        .burst(burst)
        .mode(BudgetMode::Wait)
        .build()
        .unwrap()
}

/// The bug this file pins down: 10/s, burst 2. A service reserves at t=0,
/// the bucket refills, two calls take both tokens at t=10s, then the
/// reservation is dropped. Its token was replaced by the refill long ago, so
/// the refund owes nothing: a third call at t=10s must wait.
#[tokio::test(start_paused = true)]
async fn a_reservation_dropped_after_the_refill_gives_nothing_back() {
    let layer = wait_layer(10, 2);
    let mut reserved = layer.layer(Echo);
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| reserved.poll_ready(cx)));
    assert!(reserved.is_reserved());

    advance(Duration::from_secs(10)).await;
    let mut svc = layer.layer(Echo);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    assert_eq!(layer.budget().available(), 0);

    drop(reserved);
    assert_eq!(
        layer.budget().available(),
        0,
        "the refund handed back a token the refill had already replaced"
    );
    // A third call at the same instant waits for the next token (100ms).
    let mut third = layer.layer(Echo);
    let mut t3 = task::spawn(());
    assert_pending!(t3.enter(|cx, _| third.poll_ready(cx)));
    advance(Duration::from_millis(99)).await;
    assert_pending!(t3.enter(|cx, _| third.poll_ready(cx)));
    advance(Duration::from_millis(1)).await;
    assert_ready_ok!(t3.enter(|cx, _| third.poll_ready(cx)));
    // The dropped reservation was never used: not counted as an iteration.
    assert_eq!(layer.stats().iterations, 3);
}

/// Dropped at the instant it was taken, a reservation gives its whole token
/// back, even when others took tokens after it (theirs move up into its slot).
#[tokio::test(start_paused = true)]
async fn a_reservation_dropped_at_once_gives_its_whole_token_back() {
    let layer = wait_layer(10, 3);
    let mut reserved = layer.layer(Echo);
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| reserved.poll_ready(cx)));
    let mut svc = layer.layer(Echo);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(layer.budget().available(), 1);
    drop(reserved);
    assert_eq!(layer.budget().available(), 2);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    assert_eq!(svc.ready().await.unwrap().call(3).await.unwrap(), 3);
    let mut t2 = task::spawn(());
    assert_pending!(t2.enter(|cx, _| svc.poll_ready(cx)));
}

/// Held for part of its slot, a reservation gives back the part not yet
/// elapsed: 10/s, burst 2, reserved at t=0 with the bucket full, dropped at
/// t=40ms after another call took the second token. Without the reservation
/// the bucket would now hold 1 token and be 60ms from the next; so it does.
#[tokio::test(start_paused = true)]
async fn a_reservation_held_a_while_gives_back_what_is_still_owed() {
    let layer = wait_layer(10, 2);
    let mut reserved = layer.layer(Echo);
    let mut t = task::spawn(());
    assert_ready_ok!(t.enter(|cx, _| reserved.poll_ready(cx)));
    advance(Duration::from_millis(40)).await;
    let mut svc = layer.layer(Echo);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    assert_eq!(layer.budget().available(), 0);
    drop(reserved);
    assert_eq!(layer.budget().available(), 1);
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    // The next token is due 100ms after the call at 40ms: at 140ms.
    let mut t2 = task::spawn(());
    assert_pending!(t2.enter(|cx, _| svc.poll_ready(cx)));
    advance(Duration::from_millis(99)).await;
    assert_pending!(t2.enter(|cx, _| svc.poll_ready(cx)));
    advance(Duration::from_millis(1)).await;
    assert_ready_ok!(t2.enter(|cx, _| svc.poll_ready(cx)));
}

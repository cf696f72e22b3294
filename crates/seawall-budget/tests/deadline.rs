//! Wait mode waits no longer than the caller's deadline, on paused time.

use std::time::Duration;

use seawall_budget::{BudgetLayer, BudgetMode};
use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, Rejection, RejectionKind};
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

fn kind(err: &BoxError) -> Option<RejectionKind> {
    Rejection::find(&**err).map(|r| r.kind())
}

fn layer() -> BudgetLayer {
    // One token every 100ms, no burst.
    BudgetLayer::builder()
        .rate(10)
        .burst(1)
        .mode(BudgetMode::Wait)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_token_due_after_the_callers_deadline_is_not_waited_for() {
    let layer = layer();
    let svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    // The next token is due in 100ms; the caller gives up in 30ms.
    let start = Instant::now();
    let err = Deadline::scope(Deadline::after(30 * MS), svc.clone().oneshot(2))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::BudgetExhausted), "{err}");
    let after = Rejection::find(&*err).unwrap().retry_after().unwrap();
    assert_eq!(after, 100 * MS);
    assert_eq!(start.elapsed(), Duration::ZERO, "refused at once, no wait");
    // A caller with time enough waits for the token, as before.
    let start = Instant::now();
    let n = Deadline::scope(Deadline::after(150 * MS), svc.clone().oneshot(3)).await;
    assert_eq!(n.unwrap(), 3);
    assert_eq!(start.elapsed(), 100 * MS);
    // Without a deadline: waits.
    assert_eq!(svc.oneshot(4).await.unwrap(), 4);
    assert_eq!(start.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_caller_already_gone_is_refused_with_deadline_exceeded() {
    let layer = layer();
    let svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    let deadline = Deadline::after(MS);
    tokio::time::advance(5 * MS).await;
    let err = Deadline::scope(deadline, svc.clone().oneshot(2))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_decided_in_poll_ready_is_decided_again() {
    use tower::Service;
    let layer = layer();
    let mut svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 1);
    // Ready (to refuse) for a hurried caller, then dropped without a call.
    Deadline::scope(Deadline::after(10 * MS), async {
        svc.ready().await.unwrap();
    })
    .await;
    // The next caller has no deadline: it waits for its token.
    let start = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2);
    assert_eq!(start.elapsed(), 100 * MS);
}

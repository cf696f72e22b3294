//! The queue's wait is bounded by the caller's deadline, on paused time.

use std::convert::Infallible;
use std::time::Duration;

use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, OverloadReason, Rejection, RejectionKind};
use seawall_shed::ShedLayer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

fn kind(err: &BoxError) -> Option<RejectionKind> {
    Rejection::find(&**err).map(|r| r.kind())
}

fn reason(err: &BoxError) -> Option<OverloadReason> {
    match Rejection::find(&**err) {
        Some(Rejection::Overloaded(o)) => Some(o.reason()),
        _ => None,
    }
}

fn sleeper() -> impl Service<
    Duration,
    Response = Duration,
    Error = Infallible,
    Future = impl Future<Output = Result<Duration, Infallible>> + Send,
> + Clone
+ Send {
    service_fn(|d: Duration| async move {
        tokio::time::sleep(d).await;
        Ok::<_, Infallible>(d)
    })
}

fn layer() -> ShedLayer {
    ShedLayer::builder()
        .max_in_flight(1)
        .max_queue_delay(100 * MS)
        // One place: a caller still queued (or joined when it should not
        // have) makes the next one `QueueFull`.
        .queue_capacity(1)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_waits_no_longer_than_its_caller() {
    let layer = layer();
    // The only slot is busy for 500ms.
    let mut a = layer.layer(sleeper());
    let busy = tokio::spawn(a.ready().await.unwrap().call(500 * MS));
    tokio::task::yield_now().await;

    // The caller gives up after 30ms, before the queue's 100ms.
    let start = Instant::now();
    let b = layer.layer(sleeper());
    let err = Deadline::scope(Deadline::after(30 * MS), b.oneshot(MS))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded), "{err}");
    assert_eq!(start.elapsed(), 30 * MS);
    assert_eq!(layer.stats().queued, 0, "it left the queue");

    // A caller with more time than the queue's delay: the queue's delay
    // holds, as without a deadline. It joins the queue's only place, so B
    // left it.
    let start = Instant::now();
    let c = layer.layer(sleeper());
    let err = Deadline::scope(Deadline::after(10_000 * MS), c.oneshot(MS))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), Some(OverloadReason::QueueDelay), "{err}");
    assert_eq!(start.elapsed(), 100 * MS);
    assert_eq!(layer.stats().shed.queue_full, 0);
    busy.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_caller_already_gone_does_not_join_the_queue() {
    let layer = layer();
    let mut a = layer.layer(sleeper());
    let busy = tokio::spawn(a.ready().await.unwrap().call(50 * MS));
    tokio::task::yield_now().await;
    // The queue's only place is taken by a patient caller.
    let d = layer.layer(sleeper());
    let waiter = tokio::spawn(d.oneshot(MS));
    tokio::task::yield_now().await;
    assert_eq!(layer.stats().queued, 1);
    let deadline = Deadline::after(MS);
    tokio::time::advance(2 * MS).await;
    let start = Instant::now();
    let b = layer.layer(sleeper());
    let err = Deadline::scope(deadline, b.oneshot(MS)).await.unwrap_err();
    // Had it tried to join, the full queue would have answered `QueueFull`.
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded), "{err}");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(layer.stats().shed.queue_full, 0);
    busy.await.unwrap().unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), MS);
    // A call with a free slot and no wait is admitted whatever its caller.
    let ok = layer.layer(sleeper()).oneshot(MS).await.unwrap();
    assert_eq!(ok, MS);
}

#[tokio::test(start_paused = true)]
async fn a_late_caller_leaves_nothing_for_the_next_caller_of_the_same_service() {
    let layer = layer();
    let mut a = layer.layer(sleeper());
    let busy = tokio::spawn(a.ready().await.unwrap().call(50 * MS));
    tokio::task::yield_now().await;
    let mut b = layer.layer(sleeper());
    // A caller whose deadline has passed polls ready (its call would be
    // refused), then gives up without calling.
    let gone = Deadline::after(MS);
    tokio::time::advance(2 * MS).await;
    Deadline::scope(gone, async {
        b.ready().await.unwrap();
    })
    .await;
    busy.await.unwrap().unwrap();
    // The slot is free; the next caller, with no deadline, uses the same
    // service and is admitted.
    let res = b.ready().await.unwrap().call(MS).await;
    assert_eq!(res.unwrap(), MS);
}

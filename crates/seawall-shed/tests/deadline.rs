//! The queue's wait is bounded by the caller's deadline, on paused time.

use std::convert::Infallible;
use std::time::Duration;

use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, Rejection, RejectionKind};
use seawall_shed::ShedLayer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

fn kind(err: &BoxError) -> Option<RejectionKind> {
    Rejection::find(&**err).map(|r| r.kind())
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
        .queue_capacity(4)
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
    // holds, as without a deadline.
    let start = Instant::now();
    let c = layer.layer(sleeper());
    let err = Deadline::scope(Deadline::after(10_000 * MS), c.oneshot(MS))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::Overloaded), "{err}");
    assert_eq!(start.elapsed(), 100 * MS);
    busy.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_caller_already_gone_does_not_join_the_queue() {
    let layer = layer();
    let mut a = layer.layer(sleeper());
    let busy = tokio::spawn(a.ready().await.unwrap().call(50 * MS));
    tokio::task::yield_now().await;
    let deadline = Deadline::after(MS);
    tokio::time::advance(2 * MS).await;
    let b = layer.layer(sleeper());
    let err = Deadline::scope(deadline, b.oneshot(MS)).await.unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded), "{err}");
    assert_eq!(layer.stats().queued, 0);
    busy.await.unwrap().unwrap();
    // A call with a free slot and no wait is admitted whatever its caller.
    let ok = layer.layer(sleeper()).oneshot(MS).await.unwrap();
    assert_eq!(ok, MS);
}

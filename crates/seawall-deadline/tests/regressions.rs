//! Regression tests: waits below `CallerDeadline` are charged to the
//! caller's deadline, and the propagated header never says "0".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use seawall_core::{BoxError, Rejection, RejectionKind};
use seawall_deadline::{CallerDeadlineLayer, Deadline};
use tokio::time::{Instant, Sleep};
use tower::{Layer, ServiceExt};

const MS: Duration = Duration::from_millis(1);

/// A service that is not ready until `until` (a server whose capacity is
/// taken, as a shed queue or a budget wait would make it), and counts the
/// calls it gets and the readiness polls that saw a caller's deadline.
struct BusyUntil {
    until: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    calls: Arc<AtomicUsize>,
    saw_deadline: Arc<AtomicUsize>,
}

impl Clone for BusyUntil {
    fn clone(&self) -> Self {
        BusyUntil {
            until: self.until,
            sleep: None,
            calls: self.calls.clone(),
            saw_deadline: self.saw_deadline.clone(),
        }
    }
}

impl tower::Service<Request<()>> for BusyUntil {
    type Response = Response<()>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Response<()>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if Deadline::current().is_some() {
            self.saw_deadline.fetch_add(1, Ordering::Relaxed);
        }
        let until = self.until;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        sleep.as_mut().poll(cx).map(Ok)
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(Response::new(())))
    }
}

fn busy(until: Duration) -> BusyUntil {
    BusyUntil {
        until: Instant::now() + until,
        sleep: None,
        calls: Arc::new(AtomicUsize::new(0)),
        saw_deadline: Arc::new(AtomicUsize::new(0)),
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_for_readiness_below_is_charged_to_the_callers_deadline() {
    let inner = busy(250 * MS);
    let (calls, saw) = (inner.calls.clone(), inner.saw_deadline.clone());
    let server = CallerDeadlineLayer::new().layer(inner);
    let start = Instant::now();
    let req = Request::builder()
        .header("grpc-timeout", "100m")
        .body(())
        .unwrap();
    let err = server.oneshot(req).await.unwrap_err();
    assert_eq!(start.elapsed(), 100 * MS, "the caller gave up at 100ms");
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    // Still waiting for readiness: no work was done, a refusal.
    assert!(found.is_refusal());
    assert_eq!(calls.load(Ordering::Relaxed), 0, "the handler never ran");
    assert!(
        saw.load(Ordering::Relaxed) > 0,
        "poll_ready ran in the scope"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_ready_within_the_deadline_runs_and_a_request_without_one_waits() {
    let inner = busy(50 * MS);
    let calls = inner.calls.clone();
    let server = CallerDeadlineLayer::new().layer(inner);
    let req = Request::builder()
        .header("grpc-timeout", "100m")
        .body(())
        .unwrap();
    server.clone().oneshot(req).await.unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // No header: readiness is awaited with no limit, as without the layer.
    let start = Instant::now();
    let mut later = busy(300 * MS);
    later.calls = calls.clone();
    CallerDeadlineLayer::new()
        .layer(later)
        .oneshot(Request::new(()))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), 300 * MS);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn a_handler_cut_while_running_is_not_a_refusal() {
    let server = CallerDeadlineLayer::new().layer(tower::service_fn(|_req: Request<()>| async {
        std::future::pending::<Result<Response<()>, BoxError>>().await
    }));
    let req = Request::builder()
        .header("grpc-timeout", "20m")
        .body(())
        .unwrap();
    let err = server.oneshot(req).await.unwrap_err();
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    assert!(!found.is_refusal());
}

#[tokio::test(start_paused = true)]
async fn under_a_millisecond_left_is_refused_not_sent_as_zero() {
    use seawall_deadline::{PropagateDeadlineConfig, PropagateDeadlineLayer};
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    // A name given in capitals: written in its lowercase form.
    let layer = PropagateDeadlineLayer::from_config(
        &PropagateDeadlineConfig::new().header("X-Deadline-Ms"),
    )
    .unwrap();
    let svc = layer.layer(tower::service_fn(move |req: Request<()>| {
        counter.fetch_add(1, Ordering::Relaxed);
        let value = req.headers().get("x-deadline-ms").cloned();
        async move { Ok::<_, BoxError>(value) }
    }));
    let err = Deadline::scope(
        Deadline::after(Duration::from_micros(900)),
        svc.clone().oneshot(Request::new(())),
    )
    .await
    .unwrap_err();
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    assert!(found.is_refusal());
    assert_eq!(sent.load(Ordering::Relaxed), 0, "not sent with \"0\"");
    assert_eq!(layer.stats().refused, 1);
    // One millisecond left: sent.
    let value = Deadline::scope(
        Deadline::after(Duration::from_micros(1_000)),
        svc.oneshot(Request::new(())),
    )
    .await
    .unwrap();
    assert_eq!(value.unwrap(), "1");
    // The same name in a second layer (the name is kept once).
    let again = PropagateDeadlineLayer::from_config(
        &PropagateDeadlineConfig::new().header("x-deadline-ms"),
    )
    .unwrap();
    let value = Deadline::scope(
        Deadline::after(5 * MS),
        again
            .layer(tower::service_fn(|req: Request<()>| async move {
                Ok::<_, BoxError>(req.headers().get("x-deadline-ms").cloned())
            }))
            .oneshot(Request::new(())),
    )
    .await
    .unwrap();
    assert_eq!(value.unwrap(), "5");

    // gRPC's grammar has finer units: 900µs is sent.
    let grpc =
        PropagateDeadlineLayer::new().layer(tower::service_fn(|req: Request<()>| async move {
            Ok::<_, BoxError>(req.headers().get("grpc-timeout").cloned())
        }));
    let value = Deadline::scope(
        Deadline::after(Duration::from_micros(900)),
        grpc.oneshot(Request::new(())),
    )
    .await
    .unwrap();
    assert_eq!(value.unwrap(), "900000n");
}

/// The documented server order: `CallerDeadlineLayer` above everything, the
/// shedder (queue mode) below it. A request queued behind a slow one ends at
/// its caller's deadline, and its handler never runs.
#[tokio::test(start_paused = true)]
async fn a_wait_in_the_shed_queue_ends_at_the_callers_deadline() {
    use seawall_shed::ShedLayer;
    use tower::ServiceBuilder;
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    let shed = ShedLayer::builder()
        .max_in_flight(1)
        .max_queue_delay(1000 * MS)
        .queue_capacity(4)
        .build()
        .unwrap();
    let server = ServiceBuilder::new()
        .layer(CallerDeadlineLayer::new())
        .layer(shed)
        .service(tower::service_fn(move |_req: Request<()>| {
            counter.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::time::sleep(150 * MS).await;
                Ok::<_, BoxError>(Response::new(()))
            }
        }));
    // A holds the only slot for 150ms.
    let a = tokio::spawn(server.clone().oneshot(Request::new(())));
    tokio::task::yield_now().await;
    // B's caller gives up at 100ms.
    let start = Instant::now();
    let req = Request::builder()
        .header("grpc-timeout", "100m")
        .body(())
        .unwrap();
    let err = server.oneshot(req).await.unwrap_err();
    assert_eq!(start.elapsed(), 100 * MS);
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    assert!(found.is_refusal(), "it never left the queue");
    a.await.unwrap().unwrap();
    assert_eq!(handled.load(Ordering::Relaxed), 1, "only A's handler ran");
}

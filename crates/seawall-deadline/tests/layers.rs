//! Both layers driven by hand, on paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use proptest::prelude::*;
use seawall_core::{BoxError, Rejection, RejectionKind};
use seawall_deadline::{
    CallerDeadlineConfig, CallerDeadlineLayer, Deadline, PropagateDeadlineConfig,
    PropagateDeadlineLayer,
};
use tower::{Layer, Service, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn kind(err: &BoxError) -> Option<RejectionKind> {
    Rejection::find(&**err).map(|r| r.kind())
}

fn request(header: Option<(&str, &[u8])>) -> Request<()> {
    let mut req = Request::new(());
    if let Some((name, value)) = header {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    req
}

/// What a handler saw: the remaining deadline in `call` and when polled.
type Seen = Response<(Option<Duration>, Option<Duration>)>;

/// A handler that reports the deadline it sees, in `call` and when polled.
fn seen() -> impl tower::Service<
    Request<()>,
    Response = Seen,
    Error = BoxError,
    Future = impl Future<Output = Result<Seen, BoxError>>,
> + Clone {
    service_fn(|_req: Request<()>| {
        let at_call = Deadline::current().map(Deadline::remaining);
        async move {
            let polled = Deadline::current().map(Deadline::remaining);
            Ok(Response::new((at_call, polled)))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn the_handler_runs_inside_the_callers_deadline() {
    let layer = CallerDeadlineLayer::new();
    let res = layer
        .layer(seen())
        .oneshot(request(Some(("grpc-timeout", b"250m"))))
        .await
        .unwrap();
    assert_eq!(res.into_body(), (Some(ms(250)), Some(ms(250))));
    // No header: no scope.
    let res = layer.layer(seen()).oneshot(request(None)).await.unwrap();
    assert_eq!(res.into_body(), (None, None));
    assert_eq!(layer.stats().refused, 0);
}

#[tokio::test(start_paused = true)]
async fn a_named_header_holds_milliseconds_and_every_deadline_is_capped() {
    let layer = CallerDeadlineLayer::from_config(
        &CallerDeadlineConfig::new()
            .header("x-deadline-ms")
            .max(Duration::from_secs(2)),
    )
    .unwrap();
    let svc = layer.layer(seen());
    let res = svc
        .clone()
        .oneshot(request(Some(("x-deadline-ms", b"1500"))))
        .await
        .unwrap();
    assert_eq!(res.into_body().1, Some(ms(1500)));
    let res = svc
        .clone()
        .oneshot(request(Some(("x-deadline-ms", b"9999999999"))))
        .await
        .unwrap();
    assert_eq!(
        res.into_body().1,
        Some(Duration::from_secs(2)),
        "capped at max"
    );
    // grpc-timeout is not this layer's header.
    let res = svc
        .oneshot(request(Some(("grpc-timeout", b"1m"))))
        .await
        .unwrap();
    assert_eq!(res.into_body().1, None);
}

#[tokio::test(start_paused = true)]
async fn hostile_headers_are_ignored() {
    let svc = CallerDeadlineLayer::new().layer(seen());
    for bad in [
        &b"-1m"[..],
        b"1.5S",
        b"123456789m",
        b"5 m",
        b"5x",
        b"",
        b"\xff",
    ] {
        let res = svc
            .clone()
            .oneshot(request(Some(("grpc-timeout", bad))))
            .await
            .unwrap();
        assert_eq!(res.into_body().1, None, "{bad:?}");
    }
    let res = svc
        .oneshot(request(Some(("grpc-timeout", b"99999999H"))))
        .await
        .unwrap();
    assert_eq!(
        res.into_body().1,
        Some(Duration::from_secs(300)),
        "capped at the default max"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_with_no_time_left_is_refused_without_a_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let layer = CallerDeadlineLayer::new();
    let svc = layer.layer(service_fn(move |_req: Request<()>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, BoxError>(Response::new(())) }
    }));
    let err = svc
        .oneshot(request(Some(("grpc-timeout", b"0n"))))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded));
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(layer.stats().refused, 1);
}

struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(start_paused = true)]
async fn work_is_dropped_when_the_callers_deadline_passes() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let svc = CallerDeadlineLayer::new().layer(service_fn(move |_req: Request<()>| {
        let guard = DropFlag(flag.clone());
        async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(guard);
            Ok::<_, BoxError>(Response::new(()))
        }
    }));
    let start = tokio::time::Instant::now();
    let err = svc
        .oneshot(request(Some(("grpc-timeout", b"100m"))))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded));
    assert_eq!(start.elapsed(), ms(100));
    assert!(
        dropped.load(Ordering::Relaxed),
        "the handler's future was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_future_drops_the_work() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let mut svc = CallerDeadlineLayer::new().layer(service_fn(move |_req: Request<()>| {
        let guard = DropFlag(flag.clone());
        async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(guard);
            Ok::<_, BoxError>(Response::new(()))
        }
    }));
    let svc = svc.ready().await.unwrap();
    let mut fut = tokio_test::task::spawn(svc.call(request(Some(("grpc-timeout", b"1S")))));
    tokio_test::assert_pending!(fut.poll());
    drop(fut);
    assert!(dropped.load(Ordering::Relaxed));
}

/// A peer that echoes the header it was sent.
fn echo(
    name: &'static str,
) -> impl tower::Service<
    Request<()>,
    Response = Option<HeaderValue>,
    Error = BoxError,
    Future = impl Future<Output = Result<Option<HeaderValue>, BoxError>>,
> + Clone {
    service_fn(move |req: Request<()>| {
        let value = req.headers().get(name).cloned();
        async move { Ok(value) }
    })
}

#[tokio::test(start_paused = true)]
async fn the_client_sends_what_is_left_minus_the_margin() {
    let layer =
        PropagateDeadlineLayer::from_config(&PropagateDeadlineConfig::new().margin(ms(5))).unwrap();
    let svc = layer.layer(echo("grpc-timeout"));
    // No deadline anywhere: the request goes out untouched.
    assert_eq!(svc.clone().oneshot(Request::new(())).await.unwrap(), None);

    let deadline = Deadline::after(ms(100));
    tokio::time::advance(ms(20)).await;
    let sent = Deadline::scope(deadline, svc.clone().oneshot(Request::new(())))
        .await
        .unwrap();
    assert_eq!(sent.unwrap(), "75000000n");

    // A deadline in the request's extensions, outside any scope.
    let mut req = Request::new(());
    req.extensions_mut().insert(Deadline::after(ms(40)));
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap().unwrap(),
        "35000000n"
    );

    // The earlier of the scope's and the extension's.
    let mut req = Request::new(());
    req.extensions_mut().insert(Deadline::after(ms(30)));
    let sent = Deadline::scope(deadline, svc.clone().oneshot(req))
        .await
        .unwrap();
    assert_eq!(sent.unwrap(), "25000000n");

    // A smaller header already there is kept; a larger one is replaced.
    let req = request(Some(("grpc-timeout", b"10m")));
    let sent = Deadline::scope(deadline, svc.clone().oneshot(req))
        .await
        .unwrap();
    assert_eq!(sent.unwrap(), "10m");
    let req = request(Some(("grpc-timeout", b"1H")));
    let sent = Deadline::scope(deadline, svc.clone().oneshot(req))
        .await
        .unwrap();
    assert_eq!(sent.unwrap(), "75000000n");
    assert_eq!(layer.stats().refused, 0);
}

#[tokio::test(start_paused = true)]
async fn the_client_writes_milliseconds_in_a_named_header() {
    let layer = PropagateDeadlineLayer::from_config(
        &PropagateDeadlineConfig::new().header("x-deadline-ms"),
    )
    .unwrap();
    let svc = layer.layer(echo("x-deadline-ms"));
    let deadline = Deadline::after(Duration::from_micros(1_500_900));
    let sent = Deadline::scope(deadline, svc.oneshot(Request::new(())))
        .await
        .unwrap();
    assert_eq!(sent.unwrap(), "1500", "rounded down");
}

#[tokio::test(start_paused = true)]
async fn nothing_left_after_the_margin_is_refused_without_sending() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let layer = PropagateDeadlineLayer::from_config(&PropagateDeadlineConfig::new().margin(ms(10)))
        .unwrap();
    let svc = layer.layer(service_fn(move |_req: Request<()>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, BoxError>(()) }
    }));
    let deadline = Deadline::after(ms(10));
    let err = Deadline::scope(deadline, svc.clone().oneshot(Request::new(())))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded));
    tokio::time::advance(ms(30)).await;
    let err = Deadline::scope(deadline, svc.oneshot(Request::new(())))
        .await
        .unwrap_err();
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    assert_eq!(err.to_string(), "the caller's deadline passed 20ms ago");
    assert_eq!(sent.load(Ordering::Relaxed), 0);
    assert_eq!(layer.stats().refused, 2);
}

#[tokio::test(start_paused = true)]
async fn two_hops_pass_the_deadline_on() {
    // B: reads the caller's deadline, and its handler calls C through the
    // propagating client; C sees what is left.
    let c = PropagateDeadlineLayer::new().layer(echo("grpc-timeout"));
    let b = CallerDeadlineLayer::new().layer(service_fn(move |_req: Request<()>| {
        let c = c.clone();
        async move {
            tokio::time::sleep(ms(30)).await;
            c.oneshot(Request::new(())).await
        }
    }));
    let sent = b
        .oneshot(request(Some(("grpc-timeout", b"100m"))))
        .await
        .unwrap();
    assert_eq!(sent.unwrap(), "70000000n");
}

#[test]
fn defaults_are_valid() {
    assert!(CallerDeadlineConfig::default().validate().is_ok());
    assert!(PropagateDeadlineConfig::default().validate().is_ok());
}

proptest! {
    #[test]
    fn any_header_value_is_handled(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else { return Ok(()) };
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            for header in ["grpc-timeout", "x-deadline-ms"] {
                let layer = CallerDeadlineLayer::from_config(&CallerDeadlineConfig::new().header(header)).unwrap();
                let mut req = Request::new(());
                req.headers_mut().insert(header, value.clone());
                match layer.layer(seen()).oneshot(req).await {
                    Ok(res) => {
                        let left = res.into_body().1;
                        assert!(left.is_none_or(|d| d <= Duration::from_secs(300)));
                    }
                    Err(err) => assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded)),
                }
            }
        });
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_timeout_in_the_extensions_is_in_scope_for_the_call_and_its_polls() {
    use seawall_deadline::{CallTimeout, CallTimeoutLayer};
    let svc = CallTimeoutLayer::new().layer(service_fn(|_req: Request<()>| {
        let at_call = CallTimeout::current();
        async move {
            tokio::task::yield_now().await;
            Ok::<_, BoxError>((at_call, CallTimeout::current()))
        }
    }));
    let mut req = Request::new(());
    req.extensions_mut().insert(CallTimeout(ms(750)));
    assert_eq!(
        svc.clone().oneshot(req).await.unwrap(),
        (Some(ms(750)), Some(ms(750)))
    );
    assert_eq!(svc.oneshot(Request::new(())).await.unwrap(), (None, None));
    assert_eq!(CallTimeout::current(), None);
}

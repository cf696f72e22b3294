//! The caller's deadline shortens the adaptive timeout's, on paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, Rejection, RejectionKind};
use seawall_timeout::{
    AdaptiveTimeoutLayer, KeyedAdaptiveTimeoutConfig, KeyedAdaptiveTimeoutLayer,
};
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

fn kind(err: &BoxError) -> Option<RejectionKind> {
    Rejection::find(&**err).map(|r| r.kind())
}

#[tokio::test(start_paused = true)]
async fn the_callers_earlier_deadline_cuts_the_call_short() {
    let layer = AdaptiveTimeoutLayer::fixed(500 * MS);
    let svc = layer.layer(service_fn(|d: Duration| async move {
        sleep(d).await;
        Ok::<_, std::io::Error>(d)
    }));
    // The caller's deadline comes first: DeadlineExceeded at it, not counted
    // as a timeout of the service.
    let start = Instant::now();
    let err = Deadline::scope(
        Deadline::after(80 * MS),
        svc.clone().oneshot(10 * 1000 * MS),
    )
    .await
    .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded), "{err}");
    assert_eq!(start.elapsed(), 80 * MS);
    assert_eq!(layer.stats().timeouts, 0);

    // The layer's own deadline comes first: Elapsed, as without a caller.
    let start = Instant::now();
    let err = Deadline::scope(
        Deadline::after(900 * MS),
        svc.clone().oneshot(10 * 1000 * MS),
    )
    .await
    .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::Elapsed), "{err}");
    assert_eq!(start.elapsed(), 500 * MS);
    assert_eq!(layer.stats().timeouts, 1);

    // A call that ends in time is untouched.
    let ok = Deadline::scope(Deadline::after(80 * MS), svc.oneshot(20 * MS)).await;
    assert_eq!(ok.unwrap(), 20 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_call_after_the_callers_deadline_is_not_started() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let layer = AdaptiveTimeoutLayer::fixed(500 * MS);
    let svc = layer.layer(service_fn(move |()| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, std::io::Error>(()) }
    }));
    let deadline = Deadline::after(10 * MS);
    tokio::time::advance(25 * MS).await;
    let err = Deadline::scope(deadline, svc.oneshot(()))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded));
    assert_eq!(err.to_string(), "the caller's deadline passed 15ms ago");
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    assert_eq!(layer.stats().timeouts, 0);
}

#[tokio::test(start_paused = true)]
async fn the_keyed_layer_honours_the_caller_too() {
    let config = KeyedAdaptiveTimeoutConfig::new();
    let layer = KeyedAdaptiveTimeoutLayer::new(|req: &(u32, Duration)| req.0, &config).unwrap();
    let svc = layer.layer(service_fn(|(_, d): (u32, Duration)| async move {
        sleep(d).await;
        Ok::<_, std::io::Error>(d)
    }));
    let start = Instant::now();
    let err = Deadline::scope(
        Deadline::after(30 * MS),
        svc.clone().oneshot((7, 60 * 1000 * MS)),
    )
    .await
    .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded));
    assert_eq!(start.elapsed(), 30 * MS);
    let deadline = Deadline::after(MS);
    tokio::time::advance(2 * MS).await;
    let err = Deadline::scope(deadline, svc.oneshot((7, MS)))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn a_success_cut_short_by_the_caller_is_not_a_sample() {
    let layer = AdaptiveTimeoutLayer::builder()
        .min_samples(1)
        .refresh_every(1)
        .sample_every(1)
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|d: Duration| async move {
        sleep(d).await;
        Ok::<_, std::io::Error>(d)
    }));
    // The caller's deadline is later than the layer's: measured as usual.
    let ok = Deadline::scope(
        Deadline::after(60 * 1000 * MS),
        svc.clone().oneshot(40 * MS),
    )
    .await;
    assert_eq!(ok.unwrap(), 40 * MS);
    let stats = layer.stats();
    assert_eq!(stats.samples, 1);
    assert!(
        stats.p50 >= 39 * MS && stats.p50 <= 41 * MS,
        "{:?}",
        stats.p50
    );
    // The caller's deadline binds: only calls faster than it could end, so
    // they are not samples (they would pull the percentile down).
    let ok = Deadline::scope(Deadline::after(30 * MS), svc.oneshot(MS)).await;
    assert_eq!(ok.unwrap(), MS);
    assert_eq!(layer.stats().samples, 1);
    // Also a call ready at its first poll (no timer ever armed): the
    // caller's deadline binds from `call` on.
    let ready = layer.layer(service_fn(|()| async { Ok::<_, std::io::Error>(()) }));
    Deadline::scope(Deadline::after(30 * MS), ready.clone().oneshot(()))
        .await
        .unwrap();
    assert_eq!(
        layer.stats().samples,
        1,
        "a ready call under a binding caller"
    );
    // The same call under a caller with time to spare is a sample.
    Deadline::scope(Deadline::after(60_000 * MS), ready.oneshot(()))
        .await
        .unwrap();
    assert_eq!(layer.stats().samples, 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_cut_by_the_caller_while_running_is_a_failure_not_a_refusal() {
    let layer = AdaptiveTimeoutLayer::fixed(500 * MS);
    let svc = layer.layer(service_fn(|()| {
        std::future::pending::<Result<(), std::io::Error>>()
    }));
    let err = Deadline::scope(Deadline::after(30 * MS), svc.clone().oneshot(()))
        .await
        .unwrap_err();
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    assert!(!found.is_refusal() && !found.kind().is_retryable());
    // Not a timeout of the service either.
    assert_eq!(layer.stats().timeouts, 0);
    // Refused before it started: a refusal.
    let gone = Deadline::after(MS);
    tokio::time::advance(2 * MS).await;
    let err = Deadline::scope(gone, svc.oneshot(())).await.unwrap_err();
    assert!(Rejection::find(&*err).unwrap().is_refusal());
}

#[tokio::test(start_paused = true)]
async fn a_call_timeout_expiry_is_not_counted_against_the_service() {
    use seawall_core::deadline::CallTimeout;
    let layer = AdaptiveTimeoutLayer::builder()
        .base(200 * MS)
        .min(10 * MS)
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|()| {
        std::future::pending::<Result<(), std::io::Error>>()
    }));
    let err = CallTimeout::scope(20 * MS, svc.clone().oneshot(()))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::Elapsed), "{err}");
    assert_eq!(layer.stats().timeouts, 0, "the caller chose that timeout");
    // The layer's own deadline expiring is counted.
    let _ = svc.oneshot(()).await.unwrap_err();
    assert_eq!(layer.stats().timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_timeout_replaces_the_deadline_within_min_and_max() {
    use seawall_core::deadline::CallTimeout;
    let layer = AdaptiveTimeoutLayer::builder()
        .base(200 * MS)
        .min(50 * MS)
        .max(1000 * MS)
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|d: Duration| async move {
        sleep(d).await;
        Ok::<_, std::io::Error>(d)
    }));
    let cases = [
        (500 * MS, 500 * MS),   // longer than base: honoured
        (10 * MS, 50 * MS),     // below min: min
        (9000 * MS, 1000 * MS), // above max: max
    ];
    for (asked, expected) in cases {
        let start = Instant::now();
        let err = CallTimeout::scope(asked, svc.clone().oneshot(60_000 * MS))
            .await
            .unwrap_err();
        assert_eq!(kind(&err), Some(RejectionKind::Elapsed), "{err}");
        assert_eq!(start.elapsed(), expected, "asked {asked:?}");
    }
    // A success under a call timeout is not a sample.
    let ok = CallTimeout::scope(500 * MS, svc.clone().oneshot(300 * MS)).await;
    assert_eq!(ok.unwrap(), 300 * MS);
    assert_eq!(layer.stats().samples, 0);
    // The caller's deadline still holds when it comes first.
    let start = Instant::now();
    let call = CallTimeout::scope(500 * MS, svc.clone().oneshot(60_000 * MS));
    let err = Deadline::scope(Deadline::after(120 * MS), call)
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(RejectionKind::DeadlineExceeded));
    assert_eq!(start.elapsed(), 120 * MS);
    // Outside the scope: the layer's own deadline (base).
    let start = Instant::now();
    let _ = svc.oneshot(60_000 * MS).await.unwrap_err();
    assert_eq!(start.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_call_timeout_applies_to_fixed_and_keyed_layers() {
    use seawall_core::deadline::CallTimeout;
    let fixed = AdaptiveTimeoutLayer::fixed(100 * MS).layer(service_fn(|d: Duration| async move {
        sleep(d).await;
        Ok::<_, std::io::Error>(d)
    }));
    // In fixed mode a call timeout may only shorten the fixed deadline.
    let start = Instant::now();
    let _ = CallTimeout::scope(300 * MS, fixed.clone().oneshot(60_000 * MS))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), 100 * MS);
    let start = Instant::now();
    let _ = CallTimeout::scope(30 * MS, fixed.clone().oneshot(60_000 * MS))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), 30 * MS);
    let start = Instant::now();
    let _ = CallTimeout::scope(Duration::MAX, fixed.oneshot(60_000 * MS))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), 100 * MS);

    let config = KeyedAdaptiveTimeoutConfig::new();
    let layer = KeyedAdaptiveTimeoutLayer::new(|req: &(u32, Duration)| req.0, &config).unwrap();
    let keyed = layer.layer(service_fn(|(_, d): (u32, Duration)| async move {
        sleep(d).await;
        Ok::<_, std::io::Error>(d)
    }));
    let start = Instant::now();
    let _ = CallTimeout::scope(40 * MS, keyed.oneshot((1, 60_000 * MS)))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), 40 * MS);
}

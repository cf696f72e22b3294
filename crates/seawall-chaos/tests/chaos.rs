//! The chaos layer around a probe service that counts its calls, the polls
//! of its futures and their drops; time is tokio's, paused.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_chaos::{ChaosConfig, ChaosLayer, Injected, Placement};
use seawall_core::BoxError;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};

/// What the probe saw.
#[derive(Debug, Default)]
struct Seen {
    calls: AtomicUsize,
    polled: AtomicUsize,
    dropped: AtomicUsize,
}

impl Seen {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn polled(&self) -> usize {
        self.polled.load(Ordering::SeqCst)
    }
    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Answers `x * 2` after `work` (zero: at once); counts calls, first polls
/// and drops of its futures.
#[derive(Clone)]
struct Probe {
    seen: Arc<Seen>,
    work: Duration,
}

impl Probe {
    fn new() -> (Self, Arc<Seen>) {
        Self::working(Duration::ZERO)
    }
    fn working(work: Duration) -> (Self, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        (
            Probe {
                seen: seen.clone(),
                work,
            },
            seen,
        )
    }
}

struct DropGuard(Arc<Seen>);
impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Service<u32> for Probe {
    type Response = u32;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u32) -> Self::Future {
        self.seen.calls.fetch_add(1, Ordering::SeqCst);
        let guard = DropGuard(self.seen.clone());
        let work = self.work;
        Box::pin(async move {
            let guard = guard;
            guard.0.polled.fetch_add(1, Ordering::SeqCst);
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            Ok(x * 2)
        })
    }
}

#[derive(Debug, PartialEq)]
struct Unavailable(u32);
impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "503 for {}", self.0)
    }
}
impl std::error::Error for Unavailable {}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn errors_at_rate_one_skip_the_inner_call() {
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder()
        .seed(1)
        .error_rate(1.0)
        .build()
        .unwrap();
    let svc = layer.layer(probe);
    for x in 0..100 {
        let err = svc.clone().oneshot(x).await.unwrap_err();
        assert!(err.downcast_ref::<Injected>().is_some(), "{err}");
    }
    assert_eq!(
        seen.calls(),
        0,
        "placed before: the inner service is not called"
    );
    let s = layer.stats();
    assert_eq!((s.calls, s.errors, s.passed), (100, 100, 0));
}

#[tokio::test(start_paused = true)]
async fn rates_of_zero_inject_nothing() {
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder()
        .seed(1)
        .latency(Duration::from_secs(1))
        .outcome_with(|_: &u32| 0u32)
        .build()
        .unwrap();
    let svc = layer.layer(probe);
    for x in 0..100 {
        assert_eq!(svc.clone().oneshot(x).await.unwrap(), x * 2);
    }
    assert_eq!(seen.calls(), 100);
    let s = layer.stats();
    assert_eq!(
        (s.calls, s.passed, s.errors, s.latencies, s.outcomes),
        (100, 100, 0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn the_users_error_is_boxed_as_it_is() {
    let (probe, _) = Probe::new();
    let layer = ChaosLayer::builder()
        .error_rate(1.0)
        .error_with(|x: &u32| Unavailable(*x))
        .build()
        .unwrap();
    let err = layer.layer(probe).oneshot(7).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Unavailable>(), Some(&Unavailable(7)));
}

#[tokio::test(start_paused = true)]
async fn placed_after_the_inner_service_does_the_work_and_its_result_is_replaced() {
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder()
        .error_rate(1.0)
        .placement(Placement::After)
        .build()
        .unwrap();
    let err = layer.layer(probe).oneshot(7).await.unwrap_err();
    assert!(err.downcast_ref::<Injected>().is_some());
    assert_eq!((seen.calls(), seen.polled(), seen.dropped()), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn outcomes_replace_the_response_before_or_after() {
    for (placement, inner_calls) in [(Placement::Before, 0), (Placement::After, 1)] {
        let (probe, seen) = Probe::new();
        let layer = ChaosLayer::builder()
            .outcome_rate(1.0)
            .outcome_with(|x: &u32| x + 1000)
            .placement(placement)
            .build()
            .unwrap();
        assert_eq!(layer.layer(probe).oneshot(7).await.unwrap(), 1007);
        assert_eq!(seen.calls(), inner_calls, "{placement:?}");
        assert_eq!(layer.stats().outcomes, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_wins_over_an_outcome() {
    let (probe, _) = Probe::new();
    let layer = ChaosLayer::builder()
        .error_rate(1.0)
        .outcome_rate(1.0)
        .outcome_with(|_: &u32| 0u32)
        .build()
        .unwrap();
    assert!(layer.layer(probe).oneshot(7).await.is_err());
    let s = layer.stats();
    assert_eq!((s.errors, s.outcomes), (1, 0));
}

/// Which calls of a seeded run failed, and what the others answered.
async fn run(seed: u64) -> Vec<Result<u32, String>> {
    let (probe, _) = Probe::new();
    let layer = ChaosLayer::builder()
        .seed(seed)
        .error_rate(0.3)
        .outcome_rate(0.2)
        .outcome_with(|_: &u32| 0u32)
        .build()
        .unwrap();
    let svc = layer.layer(probe);
    let mut out = Vec::new();
    for x in 1..=200 {
        out.push(svc.clone().oneshot(x).await.map_err(|e| e.to_string()));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_seeded_run_replays() {
    let first = run(42).await;
    assert_eq!(first, run(42).await);
    assert_ne!(first, run(43).await);
    let errors = first.iter().filter(|r| r.is_err()).count();
    let outcomes = first.iter().filter(|r| r == &&Ok(0)).count();
    // Fixed seed, so fixed counts; loosely near 30% and 70% × 20%.
    assert!((40..=80).contains(&errors), "{errors}");
    assert!((10..=50).contains(&outcomes), "{outcomes}");
}

#[tokio::test(start_paused = true)]
async fn disabling_at_run_time_stops_the_faults() {
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder().error_rate(1.0).build().unwrap();
    let handle = layer.handle();
    let svc = layer.layer(probe);
    assert!(svc.clone().oneshot(1).await.is_err());
    handle.disable();
    for x in 0..10 {
        assert_eq!(svc.clone().oneshot(x).await.unwrap(), x * 2);
    }
    assert_eq!(seen.calls(), 10);
    assert_eq!(layer.stats().calls, 1, "a disabled layer counts nothing");
    handle.enable();
    assert!(svc.clone().oneshot(1).await.is_err());
    handle.set_error_rate(0.0).unwrap();
    assert!(svc.clone().oneshot(1).await.is_ok());
    // A whole config at once, as a live reload would.
    handle
        .apply(
            &ChaosConfig::new()
                .placement(Placement::After)
                .error_rate(1.0),
        )
        .unwrap();
    assert!(svc.clone().oneshot(1).await.is_err());
    assert_eq!(
        seen.calls(),
        12,
        "placed after: the inner service was called"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_before_delays_the_first_poll_of_the_inner_future() {
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder()
        .latency_rate(1.0)
        .latency(100 * MS)
        .build()
        .unwrap();
    let mut svc = layer.layer(probe);
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(7));
    assert_pending!(fut.poll());
    assert_eq!((seen.calls(), seen.polled()), (1, 0));
    tokio::time::advance(99 * MS).await;
    assert_pending!(fut.poll());
    assert_eq!(seen.polled(), 0);
    tokio::time::advance(MS).await;
    assert!(fut.is_woken());
    assert_eq!(assert_ready!(fut.poll()).unwrap(), 14);
    assert_eq!(seen.polled(), 1);
    assert_eq!(layer.stats().latencies, 1);
}

#[tokio::test(start_paused = true)]
async fn latency_after_holds_the_finished_result() {
    let (probe, seen) = Probe::working(10 * MS);
    let layer = ChaosLayer::builder()
        .latency_rate(1.0)
        .latency(100 * MS)
        .placement(Placement::After)
        .build()
        .unwrap();
    let mut svc = layer.layer(probe);
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(7));
    assert_pending!(fut.poll());
    assert_eq!(seen.polled(), 1, "the inner call runs at once");
    tokio::time::advance(10 * MS).await;
    assert_pending!(fut.poll());
    assert_eq!(seen.dropped(), 1, "the inner call finished");
    // The latency starts when the inner call finishes.
    tokio::time::advance(99 * MS).await;
    assert_pending!(fut.poll());
    tokio::time::advance(MS).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), 14);
}

#[tokio::test(start_paused = true)]
async fn latency_then_an_error_never_calls_the_inner_service() {
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder()
        .latency_rate(1.0)
        .latency(50 * MS)
        .error_rate(1.0)
        .build()
        .unwrap();
    let mut svc = layer.layer(probe);
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(7));
    assert_pending!(fut.poll());
    tokio::time::advance(50 * MS).await;
    assert!(assert_ready!(fut.poll()).is_err());
    assert_eq!(seen.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn cancelled_during_latency_before_the_inner_future_is_dropped_unpolled() {
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder()
        .latency_rate(1.0)
        .latency(100 * MS)
        .build()
        .unwrap();
    let mut svc = layer.layer(probe);
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(7));
    assert_pending!(fut.poll());
    drop(fut);
    assert_eq!((seen.calls(), seen.polled(), seen.dropped()), (1, 0, 1));
    // The timer went with it: advancing wakes nothing and panics nothing.
    tokio::time::advance(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn cancelled_during_latency_after_or_an_injected_answer() {
    let (probe, seen) = Probe::working(10 * MS);
    let layer = ChaosLayer::builder()
        .latency_rate(1.0)
        .latency(100 * MS)
        .placement(Placement::After)
        .build()
        .unwrap();
    let mut svc = layer.layer(probe);
    svc.ready().await.unwrap();
    // Dropped while the inner call runs.
    let mut fut = task::spawn(svc.call(1));
    assert_pending!(fut.poll());
    drop(fut);
    assert_eq!((seen.polled(), seen.dropped()), (1, 1));
    // Dropped during the latency after it.
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(2));
    assert_pending!(fut.poll());
    tokio::time::advance(10 * MS).await;
    assert_pending!(fut.poll());
    drop(fut);
    assert_eq!((seen.calls(), seen.dropped()), (2, 2));

    // Dropped while a delayed injected error waits: nothing was called.
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder()
        .latency_rate(1.0)
        .latency(100 * MS)
        .error_rate(1.0)
        .build()
        .unwrap();
    let mut svc = layer.layer(probe);
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(3));
    assert_pending!(fut.poll());
    drop(fut);
    assert_eq!(seen.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn only_selected_requests_get_faults() {
    let (probe, seen) = Probe::new();
    let layer = ChaosLayer::builder()
        .error_rate(1.0)
        .only_when(|x: &u32| x.is_multiple_of(2))
        .build()
        .unwrap();
    let svc = layer.layer(probe);
    for x in 0..10 {
        let r = svc.clone().oneshot(x).await;
        assert_eq!(r.is_err(), x.is_multiple_of(2), "{x}");
    }
    assert_eq!(seen.calls(), 5);
    assert_eq!(layer.stats().calls, 5, "unselected calls are not counted");
}

/// Ready, pending or failing in `poll_ready`, as told.
struct Readiness(Poll<Result<(), BoxError>>);

impl Service<u32> for Readiness {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &self.0 {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e.to_string().into())),
        }
    }
    fn call(&mut self, x: u32) -> Self::Future {
        std::future::ready(Ok(x))
    }
}

#[tokio::test(start_paused = true)]
async fn poll_ready_is_the_inner_services() {
    let layer = ChaosLayer::builder().error_rate(1.0).build().unwrap();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut pending = layer.layer(Readiness(Poll::Pending));
    assert!(pending.poll_ready(&mut cx).is_pending());
    let mut failing = layer.layer(Readiness(Poll::Ready(Err("gone".into()))));
    match failing.poll_ready(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "gone"),
        other => panic!("{other:?}"),
    }
    let mut ready = layer.layer(Readiness(Poll::Ready(Ok(()))));
    assert!(matches!(ready.poll_ready(&mut cx), Poll::Ready(Ok(()))));
}

#[test]
fn no_runtime_is_needed_without_latency() {
    // Disabled, errors and outcomes: no timer, so no tokio runtime.
    let layer = ChaosLayer::builder().error_rate(1.0).build().unwrap();
    let mut svc = layer.layer(Readiness(Poll::Ready(Ok(()))));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut fut = std::pin::pin!(svc.call(1));
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
    layer.handle().disable();
    let mut fut = std::pin::pin!(svc.call(1));
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(1))));
}

#[test]
fn hostile_settings_are_config_errors() {
    let err = ChaosLayer::builder()
        .name("")
        .error_rate(f64::NAN)
        .latency_rate(2.0)
        .outcome_rate(f64::INFINITY)
        .latency(Duration::from_secs(u64::MAX))
        .build()
        .unwrap_err();
    let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
    assert_eq!(
        fields,
        [
            "name",
            "error_rate",
            "latency_rate",
            "outcome_rate",
            "latency",
            "outcome_rate"
        ]
    );
    let err = ChaosLayer::builder()
        .latency_rate(0.5)
        .latency_between(Duration::from_secs(2), Duration::from_secs(4000))
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "latency_max");
    assert!(err.to_string().contains("4000s"), "{err}");
    // A handle refuses the same values and keeps what it had.
    let layer = ChaosLayer::builder().error_rate(0.5).build().unwrap();
    let handle = layer.handle();
    for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
        assert_eq!(
            handle.set_error_rate(bad).unwrap_err().field(),
            "error_rate"
        );
    }
    assert_eq!(handle.config().error_rate, 0.5);
}

/// Errors injected into `n` calls of a layer seeded with `seed`, made by
/// `threads` threads at once (no runtime: no latency).
fn errors_with_threads(seed: u64, n: u32, threads: u32) -> u64 {
    let layer = ChaosLayer::builder()
        .seed(seed)
        .error_rate(0.25)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let mut svc = layer.layer(Readiness(Poll::Ready(Ok(()))));
            s.spawn(move || {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                for x in 0..n / threads {
                    let _ = std::pin::pin!(svc.call(x)).as_mut().poll(&mut cx);
                }
            });
        }
    });
    assert_eq!(layer.stats().calls, u64::from(n));
    layer.stats().errors
}

#[test]
fn concurrent_callers_share_one_sequence_of_draws() {
    // Calls 0..n draw the same numbers whichever thread makes them, so the
    // number of faults is the sequential run's (which request gets them is
    // up to the interleaving).
    let sequential = errors_with_threads(11, 4000, 1);
    assert_eq!(errors_with_threads(11, 4000, 4), sequential);
    assert_ne!(errors_with_threads(12, 4000, 1), sequential);
}

#[test]
fn layer_service_future_and_handle_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let layer = ChaosLayer::builder()
        .error_with(|x: &u32| Unavailable(*x))
        .outcome_with(|x: &u32| *x)
        .only_when(|x: &u32| *x > 1)
        .build()
        .unwrap();
    send_sync(&layer);
    send_sync(&layer.handle());
    let (probe, _) = Probe::new();
    let mut svc = layer.layer(probe);
    send(&svc);
    let fut = svc.call(1);
    send(&fut);
}

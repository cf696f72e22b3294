//! The retry layer driven through tower, with paused time.

use std::error::Error;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::Outcome;
use seawall_core::{
    BoxError, BudgetExhausted, CircuitOpen, Elapsed, OpenState, OverloadReason, Overloaded,
    Rejection, RejectionKind, classify_fn,
};
use seawall_retry::{
    Backoff, RetryBudget, RetryBudgetConfig, RetryConfig, RetryError, RetryLayer, StopReason,
};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// When each call reached the backend, relative to the log's creation.
#[derive(Clone)]
struct Log {
    t0: Instant,
    times: Arc<Mutex<Vec<Duration>>>,
}

impl Log {
    fn new() -> Self {
        Log {
            t0: Instant::now(),
            times: Arc::default(),
        }
    }

    fn record(&self) -> usize {
        let mut times = self.times.lock().unwrap();
        times.push(self.t0.elapsed());
        times.len() - 1
    }

    fn times(&self) -> Vec<Duration> {
        self.times.lock().unwrap().clone()
    }

    fn calls(&self) -> usize {
        self.times.lock().unwrap().len()
    }
}

/// A backend answering call `n` (0-based) with `script(n)`.
fn backend<Req, Res>(
    log: &Log,
    script: impl Fn(usize) -> Result<Res, BoxError> + Clone,
) -> impl Service<Req, Response = Res, Error = BoxError, Future = Ready<Result<Res, BoxError>>> + Clone
{
    let log = log.clone();
    tower::service_fn(move |_req: Req| ready(script(log.record())))
}

fn failing(n: usize) -> Result<u32, BoxError> {
    Err(format!("connection reset #{n}").into())
}

fn no_budget() -> seawall_retry::RetryBuilder {
    RetryLayer::builder().no_budget()
}

fn retry_error(err: &BoxError) -> &RetryError {
    err.downcast_ref::<RetryError>()
        .unwrap_or_else(|| panic!("not a RetryError: {err}"))
}

#[tokio::test(start_paused = true)]
async fn each_strategy_spaces_attempts_exactly() {
    let cases = [
        (Backoff::constant(ms(100)), vec![0, 100, 200, 300, 400]),
        (Backoff::linear(ms(100)), vec![0, 100, 300, 600, 1000]),
        (
            Backoff::exponential(ms(100), 2.0),
            vec![0, 100, 300, 700, 1500],
        ),
        (Backoff::fibonacci(ms(100)), vec![0, 100, 200, 400, 700]),
        (
            Backoff::exponential(ms(100), 2.0).max_delay(ms(250)),
            vec![0, 100, 300, 550, 800],
        ),
    ];
    for (backoff, want) in cases {
        let log = Log::new();
        let layer = no_budget()
            .max_attempts(5)
            .backoff(backoff)
            .build()
            .unwrap();
        let err = layer
            .layer(backend(&log, failing))
            .oneshot(())
            .await
            .unwrap_err();
        let want: Vec<_> = want.into_iter().map(ms).collect();
        assert_eq!(log.times(), want, "{backoff:?}");
        let retry = retry_error(&err);
        assert_eq!(retry.attempts(), 5);
        assert_eq!(retry.reason(), StopReason::AttemptsExhausted);
        assert_eq!(
            retry.last_error().to_string(),
            "connection reset #4",
            "the source is the last attempt's error"
        );
        assert_eq!(
            err.to_string(),
            "gave up after 5 attempts (attempts exhausted): connection reset #4"
        );
        let stats = layer.stats();
        assert_eq!((stats.requests, stats.attempts, stats.retries), (1, 5, 4));
        assert_eq!(stats.gave_up_attempts_exhausted, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn jittered_and_decorrelated_delays_stay_in_bounds() {
    for backoff in [
        Backoff::constant(ms(100)).jitter(0.5),
        Backoff::decorrelated_jitter(ms(100), ms(1000)),
    ] {
        let log = Log::new();
        let layer = no_budget()
            .max_attempts(30)
            .backoff(backoff)
            .build()
            .unwrap();
        let _ = layer.layer(backend(&log, failing)).oneshot(()).await;
        let times = log.times();
        assert_eq!(times.len(), 30);
        let gaps: Vec<_> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let (lo, hi) = match backoff.strategy() {
            seawall_retry::Strategy::Constant => (ms(50), ms(150)),
            _ => (ms(100), ms(1000)),
        };
        assert!(
            gaps.iter().all(|g| *g >= lo && *g <= hi),
            "{backoff:?}: {gaps:?}"
        );
        assert!(
            gaps.iter().any(|g| *g != gaps[0]),
            "jitter spreads: {gaps:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_before_a_delay_that_would_pass_it() {
    let log = Log::new();
    let layer = no_budget()
        .max_attempts(10)
        .backoff(Backoff::exponential(ms(100), 2.0))
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let err = layer
        .layer(backend(&log, failing))
        .oneshot(())
        .await
        .unwrap_err();
    // 0, 100, 300, 700; the next delay (800ms) would end at 1500ms.
    assert_eq!(log.times(), [ms(0), ms(100), ms(300), ms(700)]);
    assert_eq!(t0.elapsed(), ms(700), "gave up at once, without sleeping");
    let retry = retry_error(&err);
    assert_eq!(
        (retry.attempts(), retry.reason()),
        (4, StopReason::Deadline)
    );
    assert_eq!(layer.stats().gave_up_deadline, 1);
}

/// A wrapper from some other layer, to show rejections are found deep down.
#[derive(Debug)]
struct Wrapped(BoxError);
impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}
impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn overloaded_and_budget_exhausted_are_never_retried() {
    let rejections: Vec<fn() -> BoxError> = vec![
        || Overloaded::new(OverloadReason::HardLimit).into(),
        || BudgetExhausted::new(ms(5)).into(),
        || Box::new(Wrapped(Overloaded::new(OverloadReason::QueueFull).into())),
    ];
    for make in rejections {
        let log = Log::new();
        let layer = RetryLayer::builder()
            .backoff(Backoff::constant(ms(1)))
            .build()
            .unwrap();
        let err = layer
            .layer(backend(&log, move |_| Err::<u32, _>(make())))
            .oneshot(())
            .await
            .unwrap_err();
        assert_eq!(log.calls(), 1, "{err}");
        // Passed through unchanged: the first attempt was not retryable.
        assert!(err.downcast_ref::<RetryError>().is_none());
        assert!(!Rejection::find(&*err).unwrap().kind().is_retryable());
        assert_eq!(layer.stats().gave_up_not_retryable, 1);
        assert_eq!(layer.stats().retries, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejection_after_a_retry_stops_and_is_still_found() {
    let log = Log::new();
    let layer = no_budget()
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    let err = layer
        .layer(backend(&log, |n| {
            Err::<u32, BoxError>(if n == 0 {
                Elapsed::new(ms(50)).into()
            } else {
                Overloaded::new(OverloadReason::Priority).into()
            })
        }))
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!(log.calls(), 2, "Elapsed was retried, Overloaded was not");
    let retry = retry_error(&err);
    assert_eq!(
        (retry.attempts(), retry.reason()),
        (2, StopReason::NotRetryable)
    );
    assert_eq!(
        Rejection::find(&*err).unwrap().kind(),
        RejectionKind::Overloaded,
        "found under the RetryError"
    );
}

#[tokio::test(start_paused = true)]
async fn circuit_open_waits_its_retry_after_when_it_fits() {
    let log = Log::new();
    let layer = no_budget()
        .backoff(Backoff::constant(ms(10)))
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let got = layer
        .layer(backend(&log, |n| {
            if n == 0 {
                Err(CircuitOpen::new(Some(ms(300))).with_key("db").into())
            } else {
                Ok(7u32)
            }
        }))
        .oneshot(())
        .await
        .unwrap();
    assert_eq!(got, 7);
    assert_eq!(
        log.times(),
        [ms(0), ms(300)],
        "waited retry_after, not the 10ms backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn circuit_open_that_does_not_fit_gives_up_at_once() {
    // retry_after past the deadline: stop with `Deadline`, without waiting.
    let log = Log::new();
    let layer = no_budget()
        .backoff(Backoff::constant(ms(10)))
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let err = layer
        .layer(backend(&log, |_| {
            Err::<u32, BoxError>(CircuitOpen::new(Some(Duration::from_secs(30))).into())
        }))
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(log.calls(), 1);
    let retry = retry_error(&err);
    assert_eq!(
        (retry.attempts(), retry.reason()),
        (1, StopReason::Deadline)
    );
    assert_eq!(
        Rejection::find(&*err).unwrap().retry_after(),
        Some(Duration::from_secs(30)),
        "the caller still learns when to come back"
    );

    // Forced open (no retry_after): not retryable, passed through.
    let log = Log::new();
    let err = layer
        .layer(backend(&log, |_| {
            Err::<u32, BoxError>(
                CircuitOpen::new(None)
                    .with_state(OpenState::ForcedOpen)
                    .into(),
            )
        }))
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!(log.calls(), 1);
    assert!(err.is::<CircuitOpen>());

    // No deadline: a wait beyond the backoff's cap does not fit either.
    let log = Log::new();
    let capped = no_budget()
        .backoff(Backoff::constant(ms(10)).max_delay(ms(100)))
        .build()
        .unwrap();
    let err = capped
        .layer(backend(&log, |_| {
            Err::<u32, BoxError>(CircuitOpen::new(Some(ms(500))).into())
        }))
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!(log.calls(), 1);
    assert!(err.is::<CircuitOpen>());
}

#[tokio::test(start_paused = true)]
async fn a_failed_response_is_retried_and_returned_as_ok() {
    let log = Log::new();
    let layer = no_budget()
        .backoff(Backoff::constant(ms(5)))
        .classify(classify_fn(|r: &Result<u16, BoxError>| match r {
            Ok(s) if *s >= 500 => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }))
        .build()
        .unwrap();
    let status = layer
        .layer(backend(&log, |_| Ok(503u16)))
        .oneshot(())
        .await
        .unwrap();
    assert_eq!(status, 503, "the last response, as Ok");
    assert_eq!(log.calls(), 3);
    assert_eq!(layer.stats().gave_up_attempts_exhausted, 1);

    let log = Log::new();
    let status = layer
        .layer(backend(&log, |n| Ok(if n < 1 { 503u16 } else { 200 })))
        .oneshot(())
        .await
        .unwrap();
    assert_eq!((status, log.calls()), (200, 2));
}

#[tokio::test(start_paused = true)]
async fn an_error_the_classifier_ignores_is_returned_unchanged() {
    let log = Log::new();
    let layer = no_budget()
        .classify(classify_fn(|r: &Result<u32, BoxError>| match r {
            Err(_) => Outcome::Ignore,
            Ok(_) => Outcome::Success,
        }))
        .build()
        .unwrap();
    let err = layer
        .layer(backend(&log, failing))
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "connection reset #0");
    assert_eq!(log.calls(), 1);
}

/// A request that is not `Clone`.
struct Upload {
    replayable: bool,
}

#[tokio::test(start_paused = true)]
async fn requests_that_cannot_be_cloned_are_sent_once() {
    let log = Log::new();
    let layer = no_budget()
        .backoff(Backoff::constant(ms(1)))
        .clone_with(|u: &Upload| {
            u.replayable.then_some(Upload {
                replayable: u.replayable,
            })
        })
        .build()
        .unwrap();
    let svc = layer.layer(backend(&log, failing));

    let err = svc
        .clone()
        .oneshot(Upload { replayable: false })
        .await
        .unwrap_err();
    assert_eq!(log.calls(), 1, "sent once");
    assert_eq!(err.to_string(), "connection reset #0", "passed through");
    assert_eq!(layer.stats().not_cloneable, 1);

    let err = svc.oneshot(Upload { replayable: true }).await.unwrap_err();
    assert_eq!(log.calls(), 4, "a replayable one is retried");
    assert_eq!(retry_error(&err).attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_if_replaces_the_default_rule() {
    let log = Log::new();
    let layer = no_budget()
        .backoff(Backoff::constant(ms(1)))
        .retry_if(|e| e.to_string() != "fatal")
        .build()
        .unwrap();
    let err = layer
        .layer(backend(&log, |_| Err::<u32, BoxError>("fatal".into())))
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!((log.calls(), err.to_string().as_str()), (1, "fatal"));

    // The rule may even retry an Overloaded (your call).
    let log = Log::new();
    let _ = layer
        .layer(backend(&log, |_| {
            Err::<u32, BoxError>(Overloaded::new(OverloadReason::HardLimit).into())
        }))
        .oneshot(())
        .await;
    assert_eq!(log.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_one_makes_one_call_and_says_so() {
    let log = Log::new();
    let layer = no_budget().max_attempts(1).build().unwrap();
    let err = layer
        .layer(backend(&log, failing))
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!(log.calls(), 1);
    assert_eq!(retry_error(&err).reason(), StopReason::AttemptsExhausted);
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_amplification_against_a_dead_backend() {
    // 100 requests a second for one ttl (10s) against a backend failing every
    // call, 3 attempts each: without a budget that is 3000 calls.
    let (ratio, min_per_sec, ttl) = (0.2, 10u32, Duration::from_secs(10));
    let log = Log::new();
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(1)))
        .budget(
            RetryBudgetConfig::new()
                .enabled(true)
                .ratio(ratio)
                .min_per_sec(min_per_sec)
                .ttl(ttl),
        )
        .build()
        .unwrap();
    let svc = layer.layer(backend(&log, failing));
    let requests = 1000u32;
    let mut reasons = std::collections::HashMap::new();
    for _ in 0..requests {
        let err = svc.clone().oneshot(()).await.unwrap_err();
        let reason = err
            .downcast_ref::<RetryError>()
            .map(|r| r.reason().as_str())
            .unwrap_or("passed through");
        *reasons.entry(reason).or_insert(0) += 1;
        tokio::time::advance(ms(8)).await;
    }
    assert!(Instant::now() - log.t0 <= ttl, "all within one window");
    let calls = log.calls() as f64;
    let bound = (1.0 + ratio) * f64::from(requests) + f64::from(min_per_sec) * ttl.as_secs_f64();
    let stats = layer.stats();
    println!("calls {calls}, bound {bound}, reasons {reasons:?}, stats {stats:?}");
    assert!(calls <= bound, "{calls} calls > bound {bound}");
    assert!(
        calls > f64::from(requests) * 1.2,
        "the budget did allow retries: {calls}"
    );
    assert!(stats.budget_refusals > 0);
    assert_eq!(stats.attempts as f64, calls);
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_is_shared_between_layers() {
    let budget = RetryBudget::new(0.0, 1, Duration::from_secs(1)).unwrap();
    let a = RetryLayer::builder()
        .shared_budget(budget.clone())
        .backoff(Backoff::constant(ms(1)))
        .build()
        .unwrap();
    let b = RetryLayer::builder()
        .shared_budget(budget.clone())
        .backoff(Backoff::constant(ms(1)))
        .build()
        .unwrap();
    let log = Log::new();
    let _ = a.layer(backend(&log, failing)).oneshot(()).await;
    assert_eq!(log.calls(), 2, "one retry from the floor of 1");
    let _ = b.layer(backend(&log, failing)).oneshot(()).await;
    assert_eq!(log.calls(), 3, "the other layer finds it spent");
    assert_eq!(b.stats().budget_refusals, 1);
    assert_eq!(b.budget().unwrap().config().min_per_sec, 1);
}

/// A service whose readiness is switched by hand and which never answers
/// until told to (`hold`), counting what it is asked.
#[derive(Clone)]
struct Gate {
    ready: Arc<AtomicBool>,
    hold: Arc<AtomicBool>,
    polls: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Gate {
    fn new() -> Self {
        Gate {
            ready: Arc::new(AtomicBool::new(true)),
            hold: Arc::new(AtomicBool::new(false)),
            polls: Arc::default(),
            calls: Arc::default(),
        }
    }
}

impl Service<()> for Gate {
    type Response = ();
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.ready.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn call(&mut self, _: ()) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hold.load(Ordering::SeqCst) {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async { Err::<(), BoxError>("refused".into()) })
        }
    }
}

#[tokio::test(start_paused = true)]
async fn after_the_backoff_the_service_is_polled_ready_before_the_call() {
    let gate = Gate::new();
    let layer = no_budget()
        .backoff(Backoff::constant(ms(100)))
        .build()
        .unwrap();
    let mut svc = layer.layer(gate.clone());
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(()));
    assert_pending!(fut.poll(), "backing off after the first failure");
    assert_eq!(gate.calls.load(Ordering::SeqCst), 1);

    gate.ready.store(false, Ordering::SeqCst);
    let polls = gate.polls.load(Ordering::SeqCst);
    tokio::time::advance(ms(100)).await;
    assert!(fut.is_woken());
    assert_pending!(fut.poll(), "waiting for readiness");
    assert!(
        gate.polls.load(Ordering::SeqCst) > polls,
        "poll_ready was asked"
    );
    assert_eq!(gate.calls.load(Ordering::SeqCst), 1, "no call before ready");

    gate.ready.store(true, Ordering::SeqCst);
    assert_pending!(fut.poll(), "second attempt failed, backing off again");
    assert_eq!(gate.calls.load(Ordering::SeqCst), 2);
    tokio::time::advance(ms(100)).await;
    let err = assert_ready!(fut.poll()).unwrap_err();
    assert_eq!(retry_error(&err).attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_backoff_leaves_nothing_behind() {
    let gate = Gate::new();
    let layer = RetryLayer::builder()
        .backoff(Backoff::constant(ms(100)))
        .budget(RetryBudgetConfig::new().ratio(0.0).min_per_sec(1))
        .build()
        .unwrap();
    let budget = layer.budget().unwrap().clone();
    assert_eq!(budget.balance(), 10.0);
    let mut svc = layer.layer(gate.clone());
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(()));
    assert_pending!(fut.poll());
    assert_eq!(budget.balance(), 9.0, "one retry taken");
    drop(fut);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        gate.calls.load(Ordering::SeqCst),
        1,
        "no call after the drop"
    );
    assert_eq!(
        budget.balance(),
        10.0,
        "the retry never sent gives its token back"
    );
    let stats = layer.stats();
    assert_eq!((stats.requests, stats.attempts, stats.retries), (1, 1, 0));
    // The service and its budget work on.
    let mut svc2 = svc.clone();
    svc2.ready().await.unwrap();
    let _ = svc2.call(()).await;
    assert_eq!(gate.calls.load(Ordering::SeqCst), 4);
    assert_eq!(budget.balance(), 8.0, "two retries sent");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_call_drops_the_call() {
    let gate = Gate::new();
    gate.hold.store(true, Ordering::SeqCst);
    let layer = no_budget().build().unwrap();
    let mut svc = layer.layer(gate.clone());
    svc.ready().await.unwrap();
    let mut fut = task::spawn(svc.call(()));
    assert_pending!(fut.poll());
    drop(fut);
    assert_eq!(layer.stats().retries, 0);
    // The service's clone held by the future is gone: only ours and the gate remain.
    assert_eq!(Arc::strong_count(&gate.calls), 2);
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_after_the_backoff_stops() {
    #[derive(Clone)]
    struct Breaks(Arc<AtomicUsize>);
    impl Service<()> for Breaks {
        type Response = ();
        type Error = BoxError;
        type Future = Ready<Result<(), BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                Poll::Ready(Ok(()))
            } else {
                Poll::Ready(Err("service closed".into()))
            }
        }
        fn call(&mut self, _: ()) -> Self::Future {
            ready(Err("refused".into()))
        }
    }
    let layer = no_budget()
        .backoff(Backoff::constant(ms(10)))
        .build()
        .unwrap();
    let err = layer
        .layer(Breaks(Arc::default()))
        .oneshot(())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "service closed");
    assert_eq!(layer.stats().gave_up_not_retryable, 1);
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_share_the_layer_stats() {
    let log = Log::new();
    let layer = no_budget().build().unwrap();
    let a = layer.layer(backend(&log, |_| Ok::<_, BoxError>(1u32)));
    let b = layer.layer(backend(&log, |_| Ok::<_, BoxError>(2u32)));
    a.clone().oneshot(()).await.unwrap();
    a.oneshot(()).await.unwrap();
    b.clone().oneshot(()).await.unwrap();
    assert_eq!(layer.stats().requests, 3);
    assert_eq!(b.stats().attempts, 3);
    assert_eq!(layer.stats().budget_balance, None);
}

#[test]
fn bad_config_names_every_field() {
    let config = RetryConfig::new()
        .max_attempts(0)
        .deadline(Duration::ZERO)
        .backoff(Backoff::fibonacci(Duration::ZERO).jitter(-0.1))
        .budget(
            RetryBudgetConfig::new()
                .ratio(2.0)
                .ttl(Duration::from_secs(120)),
        );
    let err = RetryLayer::from_config(&config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "max_attempts: 0 must be greater than zero; \
         deadline: 0s must be longer than zero; \
         backoff.base: 0s must be longer than zero; \
         backoff.jitter: -0.1 is not in 0..=1; \
         budget.ratio: 2 is not in 0..=1; \
         budget.ttl: 120s is not in 1s..=60s"
    );
    let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
    assert_eq!(
        fields,
        [
            "max_attempts",
            "deadline",
            "backoff.base",
            "backoff.jitter",
            "budget.ratio",
            "budget.ttl"
        ]
    );
    // A disabled budget is not checked.
    let ok = RetryConfig::new().budget(RetryBudgetConfig::new().enabled(false).ratio(9.0));
    let layer = RetryLayer::from_config(&ok).unwrap();
    assert!(layer.budget().is_none());
    // The defaults are as documented.
    let d = RetryLayer::builder().build().unwrap();
    assert_eq!(d.config().max_attempts, 3);
    assert_eq!(d.config().name, "default");
    assert_eq!(d.config().backoff, Backoff::default());
    let b = d.budget().unwrap().config();
    assert_eq!(
        (b.ratio, b.min_per_sec, b.ttl),
        (0.2, 10, Duration::from_secs(10))
    );
}

#[cfg(feature = "serde")]
#[test]
fn configs_deserialise_with_humantime_durations() {
    use serde::de::value::{Error as DeError, MapDeserializer};
    use serde::de::{Deserializer, IntoDeserializer, Visitor};
    use serde::{Deserialize, forward_to_deserialize_any};

    /// A string value, as a config file would give it (`Some` for options).
    struct Str<'a>(&'a str);

    impl<'de> Deserializer<'de> for Str<'de> {
        type Error = DeError;
        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            v.visit_borrowed_str(self.0)
        }
        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            v.visit_some(self)
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            variants: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, DeError> {
            IntoDeserializer::<DeError>::into_deserializer(self.0)
                .deserialize_enum(name, variants, v)
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct
            map struct identifier ignored_any
        }
    }

    impl<'de> IntoDeserializer<'de, DeError> for Str<'de> {
        type Deserializer = Self;
        fn into_deserializer(self) -> Self {
            self
        }
    }

    fn from<'a, T: Deserialize<'a>>(pairs: &[(&'a str, &'a str)]) -> Result<T, DeError> {
        T::deserialize(MapDeserializer::new(
            pairs.iter().map(|(k, v)| (*k, Str(v))),
        ))
    }

    let b: Backoff = from(&[
        ("strategy", "fibonacci"),
        ("base", "50ms"),
        ("max_delay", "1s"),
    ])
    .unwrap();
    assert_eq!(
        b,
        Backoff::fibonacci(ms(50))
            .jitter(0.2)
            .max_delay(Duration::from_secs(1)),
        "unset fields keep the defaults"
    );
    let c: RetryConfig = from(&[("name", "users"), ("deadline", "2s")]).unwrap();
    assert_eq!(c.deadline, Some(Duration::from_secs(2)));
    assert_eq!(c.name, "users");
    assert_eq!(c.max_attempts, 3, "unset fields keep their defaults");
    let t: RetryBudgetConfig = from(&[("ttl", "5s")]).unwrap();
    assert_eq!(t.ttl, Duration::from_secs(5));
    let err = from::<RetryConfig>(&[("max_atempts", "3")]).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `max_atempts`"),
        "{err}"
    );
}

#[cfg(feature = "metrics")]
#[test]
fn metrics_count_attempts_retries_and_give_ups_by_name_and_reason() {
    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;

    /// Counters by "name{label=value,…}".
    #[derive(Default)]
    struct Counters(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

    impl Counters {
        fn get(&self, key: &str) -> u64 {
            self.0
                .lock()
                .unwrap()
                .get(key)
                .map_or(0, |c| c.load(Ordering::SeqCst))
        }
    }

    impl Recorder for Counters {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<_> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let id = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(self.0.lock().unwrap().entry(id).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    let recorder = Counters::default();
    // Handles are resolved when the layer is built.
    let layer = metrics::with_local_recorder(&recorder, || {
        RetryLayer::builder()
            .name("users")
            .backoff(Backoff::constant(Duration::ZERO))
            .build()
            .unwrap()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = Log::new();
        let _ = layer.layer(backend(&log, failing)).oneshot(()).await;
        let _ = layer
            .layer(backend(&log, |_| {
                Err::<u32, BoxError>(Overloaded::new(OverloadReason::HardLimit).into())
            }))
            .oneshot(())
            .await;
    });
    assert_eq!(recorder.get("seawall_retry_attempts_total{name=users}"), 4);
    assert_eq!(recorder.get("seawall_retry_retries_total{name=users}"), 2);
    assert_eq!(
        recorder.get("seawall_retry_gave_up_total{name=users,reason=attempts_exhausted}"),
        1
    );
    assert_eq!(
        recorder.get("seawall_retry_gave_up_total{name=users,reason=not_retryable}"),
        1
    );
    assert_eq!(
        recorder.get("seawall_retry_budget_exhausted_total{name=users}"),
        0
    );
}

/// The layer on a manual clock, with no runtime at all: zero backoff, so no
/// timer; the budget's window and the deadline move only with the clock.
mod manual_clock {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Waker;

    use seawall_core::Clock;

    use super::*;

    /// One call through `svc`, polled once: every answer is immediate.
    fn call<S>(svc: &mut S) -> Result<u32, BoxError>
    where
        S: Service<(), Response = u32, Error = BoxError>,
    {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        match pin!(svc.call(())).poll(&mut cx) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("a zero backoff never waits"),
        }
    }

    fn fails(_: usize) -> Result<u32, BoxError> {
        Err("down".into())
    }

    #[test]
    fn the_budget_window_moves_with_the_layers_clock() {
        let (clock, hand) = Clock::manual();
        let layer = RetryLayer::builder()
            .backoff(Backoff::constant(Duration::ZERO))
            .max_attempts(2)
            .budget(
                RetryBudgetConfig::new()
                    .ratio(0.0)
                    .min_per_sec(1)
                    .ttl(Duration::from_secs(1)),
            )
            .clock(clock)
            .build()
            .unwrap();
        let log = Log {
            t0: Instant::now(),
            times: Arc::default(),
        };
        let mut svc = layer.layer(backend(&log, fails));
        // The floor: one retry per second of the manual clock.
        let first = call(&mut svc).unwrap_err();
        assert_eq!(retry_error(&first).reason(), StopReason::AttemptsExhausted);
        let second = call(&mut svc).unwrap_err();
        assert_eq!(retry_error(&second).reason(), StopReason::BudgetExhausted);
        assert_eq!(log.calls(), 3);
        // Time on the clock: the withdrawal expires, one more retry.
        hand.advance(Duration::from_millis(1100));
        let third = call(&mut svc).unwrap_err();
        assert_eq!(retry_error(&third).reason(), StopReason::AttemptsExhausted);
        assert_eq!(log.calls(), 5);
        assert_eq!(layer.stats().budget_refusals, 1);
    }

    #[test]
    fn the_deadline_is_measured_on_the_layers_clock() {
        let (clock, hand) = Clock::manual();
        let layer = no_budget()
            .backoff(Backoff::constant(Duration::ZERO))
            .max_attempts(10)
            .deadline(ms(100))
            .clock(clock)
            .build()
            .unwrap();
        let log = Log {
            t0: Instant::now(),
            times: Arc::default(),
        };
        let hand2 = hand.clone();
        // Each attempt takes 40ms of the manual clock.
        let slow = move |_: usize| {
            hand2.advance(ms(40));
            Err::<u32, BoxError>("down".into())
        };
        let mut svc = layer.layer(backend(&log, slow));
        let err = call(&mut svc).unwrap_err();
        let err = retry_error(&err);
        // Attempts end at 40, 80 and 120ms: no retry after 120ms > 100ms.
        assert_eq!((err.attempts(), err.reason()), (3, StopReason::Deadline));
        assert_eq!(hand.elapsed(), ms(120));
    }
}

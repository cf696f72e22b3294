//! The hedging layer end to end, on paused tokio time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::{BoxError, OverloadReason, Overloaded, Rejection, RejectionKind};
use seawall_hedge::{HedgeConfig, HedgeLayer};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt};

type Plan = dyn Fn(usize) -> (u64, Result<&'static str, BoxError>) + Send + Sync;

/// A backend whose `n`-th call waits `plan(n).0` ms and answers `plan(n).1`;
/// counts calls, and attempts dropped before they answered.
#[derive(Clone)]
struct Backend {
    calls: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
    plan: Arc<Plan>,
}

impl Backend {
    fn new(
        plan: impl Fn(usize) -> (u64, Result<&'static str, BoxError>) + Send + Sync + 'static,
    ) -> Self {
        Backend {
            calls: Arc::default(),
            cancelled: Arc::default(),
            plan: Arc::new(plan),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Relaxed)
    }

    fn cancelled(&self) -> usize {
        self.cancelled.load(Relaxed)
    }
}

struct Attempt {
    cancelled: Arc<AtomicUsize>,
    done: bool,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.cancelled.fetch_add(1, Relaxed);
        }
    }
}

impl Service<u32> for Backend {
    type Response = &'static str;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Self::Future {
        let n = self.calls.fetch_add(1, Relaxed);
        let (ms, result) = (self.plan)(n);
        let attempt = Attempt {
            cancelled: self.cancelled.clone(),
            done: false,
        };
        Box::pin(async move {
            let mut attempt = attempt;
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            attempt.done = true;
            result
        })
    }
}

fn fixed(ms: u64) -> HedgeLayer {
    HedgeLayer::builder()
        .delay(Duration::from_millis(ms))
        .budget_min_per_sec(1000)
        .build()
        .unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_sends_no_hedge() {
    let layer = fixed(50);
    let backend = Backend::new(|_| (10, Ok("first")));
    let mut svc = layer.layer(backend.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    advance(ms(10)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "first");
    // Well past the delay: the timer went with the answer.
    advance(ms(100)).await;
    assert_eq!(backend.calls(), 1);
    let stats = layer.stats();
    assert_eq!(
        (stats.calls, stats.hedges_sent, stats.hedges_won),
        (1, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_attempt_is_hedged_and_dropped_when_the_hedge_answers() {
    let layer = fixed(50);
    let backend = Backend::new(|n| {
        if n == 0 {
            (1000, Ok("first"))
        } else {
            (10, Ok("hedge"))
        }
    });
    let mut svc = layer.layer(backend.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    advance(ms(49)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 1, "no hedge before the delay");
    advance(ms(1)).await;
    assert!(fut.is_woken());
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 2, "the hedge is sent at the delay");
    advance(ms(10)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "hedge");
    // The loser is dropped when the winner answers, not when the caller
    // drops the future.
    assert_eq!(backend.cancelled(), 1);
    let stats = layer.stats();
    assert_eq!(
        (stats.calls, stats.hedges_sent, stats.hedges_won),
        (1, 1, 1)
    );
    assert!((stats.extra_load() - 1.0).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn the_first_attempt_can_still_win_and_the_hedge_is_dropped() {
    let layer = fixed(50);
    let backend = Backend::new(|n| {
        if n == 0 {
            (60, Ok("first"))
        } else {
            (1000, Ok("hedge"))
        }
    });
    let mut svc = layer.layer(backend.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 2);
    advance(ms(10)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "first");
    assert_eq!(backend.cancelled(), 1, "the hedge is dropped at once");
    let stats = layer.stats();
    assert_eq!((stats.hedges_sent, stats.hedges_won), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_response_future_drops_every_attempt() {
    let layer = fixed(50);
    let backend = Backend::new(|_| (1000, Ok("slow")));
    let mut svc = layer.layer(backend.clone());

    // Before the hedge.
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    drop(fut);
    assert_eq!((backend.calls(), backend.cancelled()), (1, 1));
    advance(ms(100)).await;
    assert_eq!(backend.calls(), 1, "a dropped call sends no hedge later");

    // After the hedge.
    let mut fut = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(fut.poll());
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 3);
    drop(fut);
    assert_eq!(backend.cancelled(), 3, "both attempts dropped");
}

#[tokio::test(start_paused = true)]
async fn no_hedge_when_the_budget_is_spent() {
    let layer = HedgeLayer::builder()
        .delay(ms(50))
        .budget_ratio(0.0)
        .budget_min_per_sec(0)
        .build()
        .unwrap();
    let backend = Backend::new(|_| (100, Ok("first")));
    let mut svc = layer.layer(backend.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 1, "no hedge without budget");
    advance(ms(50)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "first");
    let stats = layer.stats();
    assert_eq!((stats.hedges_sent, stats.budget_exhausted), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn the_ratio_pays_for_one_hedge_in_ten_calls() {
    let layer = HedgeLayer::builder()
        .delay(ms(50))
        .budget_ratio(0.1)
        .budget_min_per_sec(0)
        .build()
        .unwrap();
    let backend = Backend::new(|_| (100, Ok("slow")));
    let svc = layer.layer(backend.clone());
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let mut svc = svc.clone();
            tokio::spawn(async move { svc.ready().await.unwrap().call(i).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let stats = layer.stats();
    assert_eq!(stats.calls, 20);
    assert_eq!(stats.hedges_sent, 2, "10% of 20");
    assert_eq!(stats.budget_exhausted, 18);
    assert_eq!(backend.calls(), 22);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_sent_once() {
    let layer = HedgeLayer::builder()
        .delay(ms(50))
        .clone_with(|r: &u32| (*r != 7).then_some(*r))
        .build()
        .unwrap();
    let backend = Backend::new(|_| (100, Ok("once")));
    let mut svc = layer.layer(backend.clone());
    assert_eq!(svc.ready().await.unwrap().call(7).await.unwrap(), "once");
    assert_eq!(backend.calls(), 1);
    let stats = layer.stats();
    assert_eq!(
        (stats.calls, stats.not_cloneable, stats.hedges_sent),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_refused_at_once_is_returned_as_is() {
    let layer = fixed(50);
    let backend = Backend::new(|_| (0, Err(Overloaded::new(OverloadReason::HardLimit).into())));
    let mut svc = layer.layer(backend.clone());
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    let rejection = Rejection::find(&*err).expect("the refusal itself");
    assert_eq!(rejection.kind(), RejectionKind::Overloaded);
    assert_eq!(backend.calls(), 1, "not hedged around");
    assert_eq!(layer.stats().hedges_sent, 0);
}

#[tokio::test(start_paused = true)]
async fn a_refused_hedge_leaves_the_first_attempt_running() {
    let layer = fixed(50);
    let backend = Backend::new(|n| {
        if n == 0 {
            (200, Ok("first"))
        } else {
            (0, Err(Overloaded::new(OverloadReason::HardLimit).into()))
        }
    });
    let mut svc = layer.layer(backend.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 2);
    assert_eq!(backend.cancelled(), 0, "the refusal cancelled nothing");
    advance(ms(150)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "first");
    assert_eq!(layer.stats().hedges_won, 0);
}

#[tokio::test(start_paused = true)]
async fn an_error_waits_for_the_other_attempt() {
    let layer = fixed(50);
    let backend = Backend::new(|n| {
        if n == 0 {
            (60, Err("boom".into()))
        } else {
            (30, Ok("hedge"))
        }
    });
    let mut svc = layer.layer(backend.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    advance(ms(10)).await;
    assert_pending!(
        fut.poll(),
        "the first attempt failed; the hedge is still running"
    );
    advance(ms(20)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "hedge");
    assert_eq!(layer.stats().hedges_won, 1);
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_fails_the_first_failure_is_returned() {
    let layer = fixed(50);
    let backend = Backend::new(|n| {
        if n == 0 {
            (60, Err("first failed".into()))
        } else {
            (20, Err("hedge failed".into()))
        }
    });
    let mut svc = layer.layer(backend.clone());
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(err.to_string(), "first failed");
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn more_hedges_follow_one_delay_apart() {
    let layer = HedgeLayer::builder()
        .delay(ms(50))
        .max_hedges(2)
        .budget_min_per_sec(1000)
        .build()
        .unwrap();
    let backend = Backend::new(|n| {
        if n < 2 {
            (1000, Ok("slow"))
        } else {
            (10, Ok("third"))
        }
    });
    let mut svc = layer.layer(backend.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 2);
    advance(ms(49)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 2);
    advance(ms(1)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 3, "the second hedge at twice the delay");
    advance(ms(10)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "third");
    assert_eq!(backend.cancelled(), 2);
    let stats = layer.stats();
    assert_eq!((stats.hedges_sent, stats.hedges_won), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn max_hedges_zero_turns_hedging_off() {
    let layer = HedgeLayer::new(&HedgeConfig::new().max_hedges(0).delay(ms(1))).unwrap();
    let backend = Backend::new(|_| (100, Ok("once")));
    let mut svc = layer.layer(backend.clone());
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), "once");
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_delay_follows_the_latency_percentile() {
    let layer = HedgeLayer::builder()
        .min_samples(20)
        .percentile(95.0)
        .min_delay(ms(1))
        .max_delay(ms(500))
        .budget_min_per_sec(1000)
        .build()
        .unwrap();
    assert_eq!(
        layer.stats().delay,
        ms(500),
        "the initial delay is max_delay"
    );
    // 20 calls of 10ms: the 95th percentile is 10ms.
    let backend = Backend::new(|n| {
        if n < 20 {
            (10, Ok("learn"))
        } else {
            (1000, Ok("slow"))
        }
    });
    let mut svc = layer.layer(backend.clone());
    for i in 0..20 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    let delay = layer.stats().delay;
    assert!(
        delay >= ms(10) && delay <= Duration::from_micros(10_100),
        "delay {delay:?} follows p95"
    );
    // A slow call is now hedged after about 10ms.
    let mut fut = task::spawn(svc.ready().await.unwrap().call(99));
    assert_pending!(fut.poll());
    advance(ms(9)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 21);
    advance(ms(2)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 22, "hedged after the learned delay");
}

#[test]
fn bad_config_names_every_field() {
    let err = HedgeConfig::new()
        .max_hedges(5)
        .percentile(0.0)
        .min_delay(Duration::ZERO)
        .budget_ratio(2.0)
        .budget_burst(0)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "max_hedges: 5 is not in 0..=4; percentile: 0 is not in (0, 100]; \
         min_delay: 0s must be longer than zero; budget_ratio: 2 is not in 0..=1; \
         budget_burst: 0 is not in 1..=1000000"
    );
    let err = HedgeConfig::new()
        .initial_delay(Duration::from_secs(5))
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "initial_delay: 5s is not in min_delay..=max_delay (1ms..=1s)"
    );
    assert!(HedgeLayer::new(&HedgeConfig::new().window(Duration::ZERO)).is_err());
}

#[cfg(feature = "serde")]
#[test]
fn config_from_toml() {
    let cfg: HedgeConfig = toml::from_str(
        r#"
        name = "users"
        max_hedges = 2
        percentile = 90.0
        min_delay = "2ms"
        max_delay = "250ms"
        budget_ratio = 0.05
        "#,
    )
    .unwrap();
    assert_eq!(
        cfg,
        HedgeConfig::new()
            .name("users")
            .max_hedges(2)
            .percentile(90.0)
            .min_delay(ms(2))
            .max_delay(ms(250))
            .budget_ratio(0.05)
    );
    assert!(toml::from_str::<HedgeConfig>("delay = \"5ms\"\nbogus = 1").is_err());
}

#[tokio::test(start_paused = true)]
async fn a_keyed_layer_learns_one_delay_per_key() {
    use seawall_core::KeyMapConfig;
    use seawall_hedge::KeyedHedgeLayer;

    // Requests are (key, latency ms): key 0 answers in 10ms, key 1 in 100ms.
    #[derive(Clone)]
    struct ByReq;
    impl Service<(u8, u64)> for ByReq {
        type Response = u64;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<u64, BoxError>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, (_, wait): (u8, u64)) -> Self::Future {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                Ok(wait)
            })
        }
    }

    let layer = KeyedHedgeLayer::new(
        |r: &(u8, u64)| r.0,
        &HedgeConfig::new()
            .min_samples(10)
            .max_delay(ms(1000))
            .budget_min_per_sec(1000),
        KeyMapConfig::new().capacity(16),
    )
    .unwrap();
    let mut svc = layer.layer(ByReq);
    for _ in 0..10 {
        svc.ready().await.unwrap().call((0, 10)).await.unwrap();
        svc.ready().await.unwrap().call((1, 100)).await.unwrap();
    }
    let fast = layer.key_delay(&0).unwrap();
    let slow = layer.key_delay(&1).unwrap();
    assert!(fast >= ms(10) && fast < ms(11), "key 0: {fast:?}");
    assert!(slow >= ms(100) && slow < ms(110), "key 1: {slow:?}");
    assert_eq!(layer.len(), 2);
    assert_eq!(layer.stats().hedges_sent, 0);

    // A 100ms call of key 1 is its usual: not hedged. Of key 0, it is.
    svc.ready().await.unwrap().call((1, 100)).await.unwrap();
    assert_eq!(layer.stats().hedges_sent, 0);
    svc.ready().await.unwrap().call((0, 100)).await.unwrap();
    assert_eq!(layer.stats().hedges_sent, 1);
}

#[test]
fn a_keyed_layer_checks_its_map() {
    use seawall_core::KeyMapConfig;

    let err = HedgeLayer::builder()
        .build_keyed::<_, u32>(|r: &u32| *r, KeyMapConfig::new().capacity(0))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "keys.capacity: 0 must be greater than zero"
    );
}

/// A backend whose readiness the test sets: `Pending` (waker kept) until
/// `open`, or an error once `broken`.
#[derive(Clone)]
struct Gated {
    backend: Backend,
    gate: Arc<std::sync::Mutex<(bool, bool, Option<std::task::Waker>)>>,
}

impl Gated {
    fn new(backend: Backend) -> Self {
        Gated {
            backend,
            gate: Arc::new(std::sync::Mutex::new((true, false, None))),
        }
    }

    fn set(&self, open: bool, broken: bool) {
        let mut g = self.gate.lock().unwrap();
        g.0 = open;
        g.1 = broken;
        if let Some(w) = g.2.take() {
            w.wake();
        }
    }
}

impl Service<u32> for Gated {
    type Response = &'static str;
    type Error = BoxError;
    type Future = <Backend as Service<u32>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let mut g = self.gate.lock().unwrap();
        if g.1 {
            return Poll::Ready(Err("broken".into()));
        }
        if g.0 {
            Poll::Ready(Ok(()))
        } else {
            g.2 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn call(&mut self, req: u32) -> Self::Future {
        self.backend.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_waits_for_the_service_to_be_ready() {
    let layer = fixed(50);
    let backend = Backend::new(|n| {
        if n == 0 {
            (1000, Ok("first"))
        } else {
            (10, Ok("hedge"))
        }
    });
    let gated = Gated::new(backend.clone());
    let mut svc = layer.layer(gated.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    gated.set(false, false);
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 1, "due, but the service is not ready");
    advance(ms(30)).await;
    assert_pending!(fut.poll());
    gated.set(true, false);
    assert!(fut.is_woken(), "readiness wakes the call");
    assert_pending!(fut.poll());
    assert_eq!(backend.calls(), 2, "sent once ready");
    advance(ms(10)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "hedge");
}

#[tokio::test(start_paused = true)]
async fn a_service_that_fails_readiness_sends_no_hedge() {
    let layer = fixed(50);
    let backend = Backend::new(|_| (100, Ok("first")));
    let gated = Gated::new(backend.clone());
    let mut svc = layer.layer(gated.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    gated.set(false, true);
    advance(ms(50)).await;
    assert_pending!(fut.poll(), "the first attempt goes on");
    advance(ms(50)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "first");
    assert_eq!(backend.calls(), 1);
    assert_eq!(layer.stats().hedges_sent, 0);
}

// A hedge whose service fails readiness is not an answer: the first
// attempt's own failure is what the caller sees.
#[tokio::test(start_paused = true)]
async fn a_hedge_failing_readiness_leaves_the_first_attempts_failure() {
    let layer = fixed(50);
    let backend = Backend::new(|_| (100, Err("first attempt: upstream 503".into())));
    let gated = Gated::new(backend.clone());
    let mut svc = layer.layer(gated.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    gated.set(false, true);
    advance(ms(50)).await;
    assert_pending!(fut.poll(), "the first attempt goes on");
    advance(ms(50)).await;
    let err = assert_ready!(fut.poll()).unwrap_err();
    assert_eq!(err.to_string(), "first attempt: upstream 503");
    assert_eq!(backend.calls(), 1);
    assert_eq!(layer.stats().hedges_sent, 0);
}

// With a classifier that reads answers (a 503 is a failure), a first
// attempt's bad answer stays an answer when the hedge's readiness fails.
#[tokio::test(start_paused = true)]
async fn a_hedge_failing_readiness_leaves_the_first_attempts_bad_answer() {
    use seawall_core::classify::{Outcome, classify_fn};
    let layer = HedgeLayer::builder()
        .delay(ms(50))
        .budget_min_per_sec(1000)
        .classify(classify_fn(|r: &Result<&'static str, BoxError>| match r {
            Ok("503") | Err(_) => Outcome::Failure,
            Ok(_) => Outcome::Success,
        }))
        .build()
        .unwrap();
    let backend = Backend::new(|_| (100, Ok("503")));
    let gated = Gated::new(backend.clone());
    let mut svc = layer.layer(gated.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    gated.set(false, true);
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    advance(ms(50)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "503");
}

// A call that is not hedged (max_hedges = 0) polled after it completed
// says so; it does not poll the finished attempt again.
#[tokio::test(start_paused = true)]
async fn an_unhedged_call_polled_after_completion_is_an_error() {
    let layer = HedgeLayer::builder().max_hedges(0).build().unwrap();
    let mut svc = layer.layer(tower::service_fn(|_: u32| async { Ok::<_, BoxError>("x") }));
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "x");
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll()));
    let again = again.expect("polled again, the finished async block panics");
    let err = assert_ready!(again).unwrap_err();
    assert!(err.to_string().contains("after completion"), "{err}");
}

// The same for a request that cannot be copied (not hedged either).
#[tokio::test(start_paused = true)]
async fn an_uncopied_call_polled_after_completion_is_an_error() {
    let layer = HedgeLayer::builder()
        .clone_with(|_: &u32| None)
        .build()
        .unwrap();
    let mut svc = layer.layer(tower::service_fn(|_: u32| async { Ok::<_, BoxError>("x") }));
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "x");
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll()));
    assert!(assert_ready!(again.expect("no panic")).is_err());
}

// A hedge that is due but whose service never becomes ready spends no
// budget: the token is taken only when the hedge can be sent.
#[tokio::test(start_paused = true)]
async fn a_hedge_never_ready_spends_no_budget() {
    let layer = HedgeLayer::builder()
        .delay(ms(50))
        .budget_min_per_sec(1)
        .budget_burst(1)
        .budget_ratio(0.0)
        .build()
        .unwrap();
    // Calls 1 and 2 send one attempt each; call 3's hedge is the fourth.
    let backend = Backend::new(|n| {
        if n == 3 {
            (10, Ok("hedge"))
        } else {
            (100, Ok("first"))
        }
    });
    let gated = Gated::new(backend.clone());
    let mut svc = layer.layer(gated.clone());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    let before = layer.stats().budget_balance;
    assert_eq!(before, 1);
    gated.set(false, false);
    advance(ms(50)).await;
    assert_pending!(fut.poll(), "due, waiting for readiness");
    advance(ms(50)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "first");
    assert_eq!(backend.calls(), 1);
    assert_eq!(
        layer.stats().budget_balance,
        before,
        "no hedge sent, no token spent"
    );

    // Dropped while waiting for readiness: no token spent either.
    gated.set(true, false);
    let mut fut = task::spawn(svc.ready().await.unwrap().call(2));
    assert_pending!(fut.poll());
    gated.set(false, false);
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    drop(fut);
    assert_eq!(layer.stats().budget_balance, before);

    // Once ready, the hedge is sent and paid for.
    gated.set(true, false);
    let mut fut = task::spawn(svc.ready().await.unwrap().call(3));
    assert_pending!(fut.poll());
    gated.set(false, false);
    advance(ms(50)).await;
    assert_pending!(fut.poll());
    gated.set(true, false);
    assert_pending!(fut.poll());
    assert_eq!(layer.stats().hedges_sent, 1);
    assert_eq!(layer.stats().budget_balance, 0);
    advance(ms(10)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), "hedge");
}

//! The tower shells, driven by hand with paused time.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::{BoxError, Elapsed, Rejection, RejectionKind};
use seawall_timeout::{
    AdaptiveTimeoutConfig, AdaptiveTimeoutLayer, DeadlineSource, KeyedAdaptiveTimeoutConfig,
    KeyedAdaptiveTimeoutLayer,
};
use tokio::time::{advance, sleep};
use tokio_test::{assert_pending, assert_ready, assert_ready_err, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// A service that answers after the duration it is asked for.
fn sleeper() -> impl Service<
    Duration,
    Response = Duration,
    Error = std::io::Error,
    Future = impl Future<Output = Result<Duration, std::io::Error>>,
> + Clone {
    service_fn(|d: Duration| async move {
        sleep(d).await;
        Ok::<_, std::io::Error>(d)
    })
}

/// A service of `(key, duration)` requests that answers after the duration.
fn keyed_sleeper() -> impl Service<
    (&'static str, Duration),
    Response = Duration,
    Error = std::io::Error,
    Future = impl Future<Output = Result<Duration, std::io::Error>>,
> + Clone {
    service_fn(|(_, d): (&'static str, Duration)| async move {
        sleep(d).await;
        Ok::<_, std::io::Error>(d)
    })
}

/// The key of a `(key, duration)` request.
fn key_of(req: &(&'static str, Duration)) -> &'static str {
    req.0
}

fn quick_builder() -> seawall_timeout::AdaptiveTimeoutBuilder {
    AdaptiveTimeoutConfig::builder()
        .min_samples(10)
        .refresh_every(1)
        .base(100 * MS)
}

fn quick() -> AdaptiveTimeoutConfig {
    quick_builder().into_config()
}

/// `got` is `want` as the histogram reports it: at or up to 1% above.
fn near(got: Duration, want: Duration) {
    assert!(
        got >= want && got.as_secs_f64() < want.as_secs_f64() * 1.01,
        "{got:?} is not within 1% above {want:?}"
    );
}

fn elapsed(err: &BoxError) -> &Elapsed {
    err.downcast_ref::<Elapsed>().expect("an Elapsed")
}

#[tokio::test(start_paused = true)]
async fn expires_at_exactly_the_deadline() {
    let layer = AdaptiveTimeoutLayer::from_config(&quick()).unwrap();
    let mut svc = layer.layer(sleeper());
    assert_ready_ok!(task::spawn(()).enter(|cx, _| svc.poll_ready(cx)));
    let mut fut = task::spawn(svc.call(Duration::from_secs(3600)));
    assert_pending!(fut.poll());
    advance(99 * MS).await;
    assert_pending!(fut.poll(), "not a tick early");
    advance(MS).await;
    assert!(fut.is_woken());
    let err = assert_ready_err!(fut.poll());
    assert_eq!(elapsed(&err).after(), 100 * MS);
    assert_eq!(elapsed(&err).key(), None);
    let r = Rejection::find(&*err).unwrap();
    assert_eq!(r.kind(), RejectionKind::Elapsed);
    assert_eq!(err.to_string(), "deadline of 100ms elapsed");
    let stats = layer.stats();
    assert_eq!(stats.timeouts, 1);
    assert_eq!(stats.samples, 1, "the timeout is a sample at the deadline");
    near(stats.p99, 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_call_done_before_the_deadline_passes_through() {
    let layer = AdaptiveTimeoutLayer::from_config(&quick()).unwrap();
    let svc = layer.layer(sleeper());
    assert_eq!(svc.clone().oneshot(99 * MS).await.unwrap(), 99 * MS);
    // Inner errors pass through untouched (boxed).
    let failing = layer.layer(service_fn(|_: ()| async {
        Err::<(), _>(std::io::Error::other("boom"))
    }));
    let err = failing.oneshot(()).await.unwrap_err();
    let io = err
        .downcast_ref::<std::io::Error>()
        .expect("the inner error");
    assert_eq!(io.to_string(), "boom");
    let stats = layer.stats();
    assert_eq!(stats.samples, 1, "errors are not latencies");
    assert_eq!(stats.timeouts, 0);
    near(stats.p50, 99 * MS);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_adapts_to_measured_latency() {
    let layer = AdaptiveTimeoutLayer::from_config(&quick()).unwrap();
    let mut svc = layer.layer(sleeper());
    for _ in 0..9 {
        svc.ready().await.unwrap().call(40 * MS).await.unwrap();
    }
    assert_eq!(layer.stats().source, DeadlineSource::Base);
    svc.ready().await.unwrap().call(40 * MS).await.unwrap();
    // 40ms × 1.5 = 60ms (40ms is exact in the histogram: 40 000µs is the top
    // of no bucket, so read the percentile back rather than assume it).
    let s = layer.stats();
    assert_eq!(s.source, DeadlineSource::Adaptive);
    let want = s.p99.mul_f64(1.5);
    assert_eq!(s.deadline, want);
    assert!(s.deadline >= 60 * MS && s.deadline < 61 * MS);
    // A call that would have passed under the base deadline now times out.
    let err = svc.ready().await.unwrap().call(90 * MS).await.unwrap_err();
    assert_eq!(elapsed(&err).after(), want);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_peer_raises_the_deadline_only_to_max() {
    let layer = quick_builder().max(500 * MS).build().unwrap();
    let mut svc = layer.layer(sleeper());
    for _ in 0..10 {
        svc.ready().await.unwrap().call(20 * MS).await.unwrap();
    }
    let first = layer.deadline();
    assert!(first < 31 * MS);
    let mut last = first;
    for _ in 0..40 {
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(Duration::from_secs(3600))
            .await
            .unwrap_err();
        assert_eq!(elapsed(&err).after(), last);
        assert!(layer.deadline() >= last, "never falls while timing out");
        last = layer.deadline();
    }
    assert_eq!(last, 500 * MS, "rose to max, not beyond");
    assert_eq!(layer.stats().timeouts, 40);
}

#[tokio::test(start_paused = true)]
async fn fixed_mode_is_a_plain_timeout() {
    let layer = AdaptiveTimeoutLayer::fixed(30 * MS);
    let mut svc = layer.layer(sleeper());
    assert_eq!(
        svc.ready().await.unwrap().call(29 * MS).await.unwrap(),
        29 * MS
    );
    let mut fut = task::spawn(svc.ready().await.unwrap().call(31 * MS));
    assert_pending!(fut.poll());
    advance(29 * MS).await;
    assert_pending!(fut.poll());
    advance(MS).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(elapsed(&err).after(), 30 * MS);
    let s = layer.stats();
    assert_eq!(
        (s.source, s.samples, s.timeouts),
        (DeadlineSource::Fixed, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_response_future_leaves_nothing_behind() {
    let layer = AdaptiveTimeoutLayer::from_config(&quick()).unwrap();
    let mut svc = layer.layer(sleeper());
    let before = layer.stats();
    for _ in 0..100 {
        let mut fut = task::spawn(svc.ready().await.unwrap().call(50 * MS));
        assert_pending!(fut.poll());
        advance(10 * MS).await;
        drop(fut);
    }
    // Past every deadline those calls had: nothing fires, nothing recorded.
    advance(Duration::from_secs(2)).await;
    assert_eq!(layer.stats(), before);
    // And the service still works.
    assert_eq!(svc.ready().await.unwrap().call(MS).await.unwrap(), MS);
    assert_eq!(layer.stats().samples, 1);
}

/// Ready after one `Pending`, then fails readiness.
struct Flaky(u8);

impl Service<()> for Flaky {
    type Response = ();
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<(), std::io::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0 += 1;
        match self.0 {
            1 => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            2 => Poll::Ready(Ok(())),
            _ => Poll::Ready(Err(std::io::Error::other("gone"))),
        }
    }

    fn call(&mut self, _: ()) -> Self::Future {
        std::future::ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn poll_ready_forwards_the_inner_readiness() {
    let layer = AdaptiveTimeoutLayer::from_config(&quick()).unwrap();
    let mut svc = layer.layer(Flaky(0));
    let mut t = task::spawn(());
    assert_pending!(t.enter(|cx, _| svc.poll_ready(cx)));
    assert_ready_ok!(t.enter(|cx, _| svc.poll_ready(cx)));
    let err = assert_ready_err!(t.enter(|cx, _| svc.poll_ready(cx)));
    assert_eq!(err.to_string(), "gone");
}

#[tokio::test(start_paused = true)]
async fn services_and_clones_share_the_layers_state() {
    let layer = AdaptiveTimeoutLayer::from_config(&quick()).unwrap();
    let a = layer.layer(sleeper());
    let b = layer.layer(sleeper());
    a.clone().oneshot(MS).await.unwrap();
    a.oneshot(MS).await.unwrap();
    b.clone().oneshot(MS).await.unwrap();
    assert_eq!(layer.stats().samples, 3);
    assert_eq!(b.stats().samples, 3);
}

#[tokio::test(start_paused = true)]
async fn keyed_deadlines_are_isolated() {
    let layer = AdaptiveTimeoutLayer::builder()
        .min_samples(10)
        .refresh_every(1)
        .base(100 * MS)
        .build_keyed(key_of)
        .unwrap();
    let mut svc = layer.layer(keyed_sleeper());
    for _ in 0..10 {
        svc.ready()
            .await
            .unwrap()
            .call(("slow", 400 * MS))
            .await
            .ok();
        svc.ready()
            .await
            .unwrap()
            .call(("fast", 20 * MS))
            .await
            .unwrap();
    }
    let slow = layer.key_stats("slow").unwrap();
    let fast = layer.key_stats("fast").unwrap();
    // The slow peer timed out at its 100ms base 10 times; the fast one never.
    assert_eq!((slow.timeouts, fast.timeouts), (10, 0));
    assert_eq!(slow.source, DeadlineSource::Adaptive);
    assert!(slow.deadline >= 150 * MS, "{:?}", slow.deadline);
    assert!(fast.deadline < 31 * MS, "{:?}", fast.deadline);

    let err = svc
        .ready()
        .await
        .unwrap()
        .call(("fast", 500 * MS))
        .await
        .unwrap_err();
    let e = elapsed(&err);
    assert_eq!(e.key(), Some("fast"));
    assert_eq!(e.after(), fast.deadline);
    assert_eq!(
        err.to_string(),
        format!("deadline of {:?} elapsed for `fast`", fast.deadline)
    );

    let mut all = layer.stats();
    all.sort_by_key(|(k, _)| *k);
    let keys: Vec<_> = all.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ["fast", "slow"]);
}

#[tokio::test(start_paused = true)]
async fn keyed_state_is_bounded_and_idle_keys_are_evicted() {
    let config = KeyedAdaptiveTimeoutConfig::new()
        .capacity(2)
        .idle_ttl(Duration::from_secs(10));
    let layer = KeyedAdaptiveTimeoutLayer::new(|req: &u32| *req, &config).unwrap();
    let mut svc = layer.layer(service_fn(
        |x: u32| async move { Ok::<_, std::io::Error>(x) },
    ));
    for k in [1, 2, 3] {
        svc.ready().await.unwrap().call(k).await.unwrap();
    }
    assert_eq!(layer.len(), 2, "capacity holds");
    assert!(layer.key_stats(&3).is_some(), "the newest key is in");

    // Idle keys go (their deadline is still the base one): at the first
    // sweep after a TTL unused.
    advance(Duration::from_secs(9)).await;
    assert_eq!(layer.evict_idle(), 0);
    advance(Duration::from_secs(1)).await;
    assert_eq!(layer.evict_idle(), 2);
    assert!(layer.is_empty());
    // A returning key starts afresh.
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(layer.key_stats(&1).unwrap().samples, 1);
}

#[tokio::test(start_paused = true)]
async fn bad_config_is_a_config_error() {
    let err = AdaptiveTimeoutLayer::builder()
        .percentile(0.0)
        .multiplier(0.0)
        .min(Duration::from_secs(20))
        .window(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "percentile: 0 is not in (0, 100]; \
         multiplier: 0 must be a finite number greater than zero; \
         min: 20s must be at most max (10s); \
         window: 0s must be longer than zero"
    );
    let config = KeyedAdaptiveTimeoutConfig::from(
        AdaptiveTimeoutConfig::builder()
            .min_samples(0)
            .into_config(),
    )
    .capacity(0);
    // Unused layers need their key type named.
    let err = KeyedAdaptiveTimeoutLayer::<_, u32>::new(|r: &u32| *r, &config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "per_key.min_samples: 0 is not in 1..=16777216; keys.capacity: 0 must be greater than zero"
    );
}

/// `Elapsed` arrives from the future, not from `poll_ready`, so the service
/// works under `Buffer`-like wrappers that call `poll_ready` early.
#[tokio::test(start_paused = true)]
async fn the_response_future_is_named_and_unboxed() {
    fn assert_send<T: Send>(_: &T) {}
    let layer = AdaptiveTimeoutLayer::from_config(&quick()).unwrap();
    let mut svc = layer.layer(sleeper());
    let fut: seawall_timeout::ResponseFuture<_> = svc.call(MS);
    assert_send(&fut);
    assert_eq!(fut.deadline(), 100 * MS);
    let mut fut = task::spawn(fut);
    assert_pending!(fut.poll());
    advance(MS).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), MS);
}

// A call that is not measured (every call in fixed mode, most calls under
// high traffic) holds only its tracker's ticket: its timeout must still be
// counted under its key and name the key.
#[tokio::test(start_paused = true)]
async fn an_unmeasured_call_that_times_out_is_counted_under_its_key() {
    let layer = AdaptiveTimeoutLayer::builder()
        .fixed(50 * MS)
        .build_keyed(key_of)
        .unwrap();
    let mut svc = layer.layer(keyed_sleeper());
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(("db", 60 * MS))
        .await
        .unwrap_err();
    assert_eq!(elapsed(&err).key(), Some("db"));
    assert_eq!(elapsed(&err).after(), 50 * MS);
    let db = layer.key_stats("db").unwrap();
    assert_eq!((db.timeouts, db.samples), (1, 0));
}

// A keyed call holds on to its key's recorder: a key evicted from the map
// while its call is in flight (here by capacity), or the whole layer
// dropped, still counts the timeout and names the key.
#[tokio::test(start_paused = true)]
async fn a_keyed_call_outliving_its_key_still_names_it() {
    let per_key = AdaptiveTimeoutConfig::builder()
        .fixed(50 * MS)
        .into_config();
    let config = KeyedAdaptiveTimeoutConfig::from(per_key).capacity(1);
    let layer = KeyedAdaptiveTimeoutLayer::new(key_of, &config).unwrap();
    let mut svc = layer.layer(keyed_sleeper());
    let mut a = task::spawn(svc.ready().await.unwrap().call(("a", 60 * MS)));
    assert_pending!(a.poll());
    // "b" takes the only place: "a" is evicted while its call runs.
    let b = svc.ready().await.unwrap().call(("b", MS));
    assert!(layer.key_stats("a").is_none());
    drop((svc, layer));
    b.await.unwrap();
    advance(50 * MS).await;
    let err = assert_ready_err!(a.poll());
    assert_eq!(elapsed(&err).after(), 50 * MS);
    assert_eq!(elapsed(&err).key(), Some("a"));
}

// An unkeyed call may outlive its layer and every service of it: it still
// times out (uncounted: the tracker is gone), and nothing panics.
#[tokio::test(start_paused = true)]
async fn a_call_outliving_its_layer_still_times_out() {
    let layer = AdaptiveTimeoutLayer::fixed(50 * MS);
    let mut svc = layer.layer(sleeper());
    let mut fut = task::spawn(svc.ready().await.unwrap().call(60 * MS));
    assert_pending!(fut.poll());
    drop((svc, layer));
    advance(50 * MS).await;
    let err = assert_ready_err!(fut.poll());
    assert_eq!(elapsed(&err).after(), 50 * MS);
    assert_eq!(elapsed(&err).key(), None);
}

// A key whose deadline is learned is not forgotten while its window holds
// samples, however many new keys arrive; the keys the map has no room for
// meanwhile share the overflow deadline, never none.
#[tokio::test(start_paused = true)]
async fn churning_keys_cannot_flush_a_learned_deadline() {
    let per_key = AdaptiveTimeoutConfig::builder()
        .min_samples(10)
        .window(Duration::from_secs(60))
        .base(Duration::from_millis(500))
        .into_config();
    let config = KeyedAdaptiveTimeoutConfig::from(per_key)
        .capacity(4)
        .idle_ttl(Duration::from_secs(1));
    let layer = KeyedAdaptiveTimeoutLayer::new(|req: &(u32, Duration)| req.0, &config).unwrap();
    let mut svc = layer.layer(service_fn(|req: (u32, Duration)| async move {
        tokio::time::sleep(req.1).await;
        Ok::<_, std::io::Error>(req.0)
    }));
    // Four honest peers learn a 20ms deadline.
    for peer in 0..4 {
        for _ in 0..10 {
            let call = svc
                .ready()
                .await
                .unwrap()
                .call((peer, Duration::from_millis(20)));
            call.await.unwrap();
        }
        assert_eq!(
            layer.key_stats(&peer).unwrap().source,
            DeadlineSource::Adaptive
        );
    }
    let learned = layer.key_stats(&0).unwrap().deadline;
    assert!(learned < Duration::from_millis(40), "{learned:?}");
    // Well past the idle TTL, a flood of new keys.
    advance(Duration::from_secs(5)).await;
    for k in 100..1_100 {
        let call = svc.ready().await.unwrap().call((k, Duration::ZERO));
        call.await.unwrap();
    }
    assert_eq!(layer.evict_idle(), 0, "learned keys stay");
    for peer in 0..4 {
        assert_eq!(layer.key_stats(&peer).unwrap().deadline, learned);
    }
    assert_eq!(
        layer.overflowed(),
        1_000,
        "newcomers got the overflow deadline"
    );
    let overflow = layer.overflow_stats();
    assert_eq!(overflow.samples, 1_000);
    // A newcomer that hangs is cut at the overflow deadline.
    let err = svc
        .ready()
        .await
        .unwrap()
        .call((5_000, Duration::from_secs(3_600)));
    let err = err.await.unwrap_err();
    assert!(elapsed(&err).after() <= Duration::from_millis(500));
    // Once their window has drained, the peers' state equals a fresh key's
    // and they may go.
    advance(Duration::from_secs(80)).await;
    assert_eq!(layer.evict_idle(), 4);
}

//! Under `seawall_breaker::PeerSelect`, a hedge goes to another peer than
//! its first attempt.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, PeerSelect};
use seawall_core::BoxError;
use seawall_hedge::HedgeLayer;
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A clonable handle on a service that is not `Clone`: each `poll_ready`
/// and `call` runs on the caller's thread under a lock (never held across
/// an `.await`), so the hedging layer's attempt scope reaches the selection.
struct Locked<S>(Arc<Mutex<S>>);

impl<S> Clone for Locked<S> {
    fn clone(&self) -> Self {
        Locked(self.0.clone())
    }
}

impl<S: Service<R>, R> Service<R> for Locked<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.lock().unwrap().poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.0.lock().unwrap().call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_goes_to_the_other_peer() {
    let breakers = KeyedBreakerLayer::new(|r: &u32| *r, &BreakerConfig::new().into()).unwrap();
    let hits: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let peer = |id: usize| {
        let hits = hits.clone();
        service_fn(move |_: u32| {
            hits[id].fetch_add(1, Relaxed);
            async move {
                // Peer 0 is stuck; peer 1 answers in 10ms.
                let wait = if id == 0 { 10_000 } else { 10 };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                Ok::<_, BoxError>(id)
            }
        })
    };
    // Every request prefers peer 0: without the attempt scope, the hedge
    // would go there too.
    let select = PeerSelect::builder(&breakers, |_: &u32| Some(0u32))
        .peers([(0, peer(0)), (1, peer(1))])
        .build()
        .unwrap();
    let hedge = HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut svc = hedge.layer(Locked(Arc::new(Mutex::new(select))));

    let mut fut = task::spawn(svc.ready().await.unwrap().call(0));
    assert_pending!(fut.poll());
    assert_eq!(
        hits[0].load(Relaxed),
        1,
        "the first attempt: the preferred peer"
    );
    advance(Duration::from_millis(50)).await;
    assert_pending!(fut.poll());
    assert_eq!(hits[1].load(Relaxed), 1, "the hedge: the other peer");
    advance(Duration::from_millis(10)).await;
    assert_eq!(assert_ready!(fut.poll()).unwrap(), 1);
    assert_eq!(hedge.stats().hedges_won, 1);

    // Outside a hedge, the preference holds.
    let mut fut = task::spawn(svc.ready().await.unwrap().call(0));
    assert_pending!(fut.poll());
    assert_eq!(hits[0].load(Relaxed), 2);
    assert_eq!(hits[1].load(Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn with_one_ready_peer_the_hedge_goes_to_it() {
    let breakers = KeyedBreakerLayer::new(|r: &u32| *r, &BreakerConfig::new().into()).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let only = service_fn(move |_: u32| {
        let n = counter.fetch_add(1, Relaxed);
        async move {
            let wait = if n == 0 { 10_000 } else { 10 };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Ok::<_, BoxError>(n)
        }
    });
    let select = PeerSelect::builder(&breakers, |_: &u32| Some(0u32))
        .peers([(0, only)])
        .build()
        .unwrap();
    let hedge = HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut svc = hedge.layer(Locked(Arc::new(Mutex::new(select))));
    let mut fut = task::spawn(svc.ready().await.unwrap().call(0));
    assert_pending!(fut.poll());
    advance(Duration::from_millis(50)).await;
    assert_pending!(fut.poll());
    advance(Duration::from_millis(10)).await;
    assert_eq!(
        assert_ready!(fut.poll()).unwrap(),
        1,
        "the hedge, on the same peer"
    );
}

// The documented race of a shared selection: readiness lives in the shared
// `PeerSelect`, so a hedge of one caller's request can take the only ready
// peer between another caller's `poll_ready` and its `call`; that call
// then fails at once with `NoPeerAvailable` (typed, nothing sent). Driving
// the handle ready again makes the peer ready again.
#[tokio::test(start_paused = true)]
async fn a_hedge_can_take_the_peer_another_handle_was_told_is_ready() {
    let breakers = KeyedBreakerLayer::new(|r: &u32| *r, &BreakerConfig::new().into()).unwrap();
    let only = service_fn(move |_: u32| async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        Ok::<_, BoxError>(0usize)
    });
    let select = PeerSelect::builder(&breakers, |_: &u32| Some(0u32))
        .peers([(0, only)])
        .build()
        .unwrap();
    let hedge = HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let shared = Arc::new(Mutex::new(select));
    let mut y = hedge.layer(Locked(shared.clone()));
    let mut x = hedge.layer(Locked(shared.clone()));
    let mut fut_y = task::spawn(y.ready().await.unwrap().call(0));
    assert_pending!(fut_y.poll());
    // Caller X is told the selection is ready...
    x.ready().await.unwrap();
    advance(Duration::from_millis(50)).await;
    // ...then Y's hedge is sent, on the one ready peer.
    assert_pending!(fut_y.poll());
    assert_eq!(hedge.stats().hedges_sent, 1);
    let err = x.call(0).await.unwrap_err();
    assert!(
        err.downcast_ref::<seawall_breaker::NoPeerAvailable>()
            .is_some(),
        "{err}"
    );
    // Ready again, X's next call goes through.
    let mut fut_x = task::spawn(x.ready().await.unwrap().call(0));
    assert_pending!(fut_x.poll());
    advance(Duration::from_millis(1000)).await;
    assert_eq!(assert_ready!(fut_x.poll()).unwrap(), 0);
}

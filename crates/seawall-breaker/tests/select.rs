//! Peer selection over the keyed breaker's map, with paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use seawall_breaker::{
    BreakerConfig, KeyedBreakerLayer, NoPeerAvailable, PeerSelect, PeerSelectConfig, State,
    TripPolicy,
};
use seawall_core::{BoxError, Rejection, RejectionKind};
use tokio_test::{assert_pending, assert_ready, task};
use tower::util::BoxService;
use tower::{Layer, Service, ServiceExt, service_fn};

/// A request names its preferred peer, or none.
type Req = Option<u32>;
type Peer = BoxService<Req, u32, BoxError>;

fn ok(id: u32) -> Peer {
    BoxService::new(service_fn(
        move |_: Req| async move { Ok::<_, BoxError>(id) },
    ))
}

fn switchable(id: u32, down: Arc<AtomicBool>) -> Peer {
    BoxService::new(service_fn(move |_: Req| {
        let down = down.load(Ordering::SeqCst);
        async move {
            if down {
                Err::<u32, BoxError>("connection refused".into())
            } else {
                Ok(id)
            }
        }
    }))
}

fn slow(id: u32, live: Arc<AtomicUsize>) -> Peer {
    BoxService::new(service_fn(move |_: Req| {
        live.fetch_add(1, Ordering::SeqCst);
        let live = live.clone();
        async move {
            struct Done(Arc<AtomicUsize>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _done = Done(live);
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, BoxError>(id)
        }
    }))
}

/// One call at a time, each lasting a second: not ready while busy.
fn busy(id: u32) -> Peer {
    BoxService::new(tower::limit::ConcurrencyLimitLayer::new(1).layer(slow(id, Arc::default())))
}

type Keyed = KeyedBreakerLayer<fn(&Req) -> u32, u32>;

fn layer(threshold: u32) -> Keyed {
    KeyedBreakerLayer::new(
        (|r: &Req| r.unwrap_or(0)) as fn(&Req) -> u32,
        &BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(threshold))
            .open_duration(Duration::from_secs(10))
            .into(),
    )
    .unwrap()
}

fn prefer(r: &Req) -> Option<u32> {
    *r
}

type Select =
    PeerSelect<Peer, fn(&Req) -> Option<u32>, fn(&Req) -> u32, u32, seawall_core::ErrorsAsFailures>;

fn select(layer: &Keyed, max_tries: usize, peers: Vec<(u32, Peer)>) -> Select {
    PeerSelect::builder(layer, prefer as fn(&Req) -> Option<u32>)
        .config(&PeerSelectConfig::new().max_tries(max_tries))
        .peers(peers)
        .build()
        .unwrap()
}

async fn send(s: &mut Select, r: Req) -> Result<u32, BoxError> {
    s.ready().await.unwrap().call(r).await
}

fn no_peer(err: &BoxError) -> &NoPeerAvailable {
    err.downcast_ref::<NoPeerAvailable>()
        .unwrap_or_else(|| panic!("not a NoPeerAvailable: {err}"))
}

#[tokio::test(start_paused = true)]
async fn preferred_peer_takes_its_requests() {
    let layer = layer(3);
    let mut s = select(&layer, 3, vec![(1, ok(1)), (2, ok(2)), (3, ok(3))]);
    for p in [1, 2, 3, 2, 1] {
        assert_eq!(send(&mut s, Some(p)).await.unwrap(), p);
    }
    assert_eq!(layer.len(), 3, "each peer holds its key in the map");
}

#[tokio::test(start_paused = true)]
async fn open_preferred_peer_sends_to_the_healthiest_other() {
    let layer = layer(3);
    let down2 = Arc::new(AtomicBool::new(true));
    let mut s = select(
        &layer,
        3,
        vec![(1, ok(1)), (2, switchable(2, down2.clone())), (3, ok(3))],
    );
    // Peer 2 has one failure (health 0.83): less healthy than peer 3.
    assert!(send(&mut s, Some(2)).await.is_err());
    down2.store(false, Ordering::SeqCst);
    layer.force_open(1);
    for _ in 0..10 {
        assert_eq!(send(&mut s, Some(1)).await.unwrap(), 3);
    }
    assert_eq!(
        layer.key_stats(&1).unwrap().rejected,
        10,
        "one fast refusal each"
    );
    let st = s.stats();
    assert_eq!((st.preferred, st.other, st.no_peer), (1, 10, 0));
    assert_eq!(
        (st.peers, st.ready),
        (3, 2),
        "the last peer called must be polled again"
    );
    s.ready().await.unwrap();
    assert_eq!(s.stats().ready, 3);
}

#[tokio::test(start_paused = true)]
async fn failures_trip_the_peer_and_its_traffic_moves() {
    let layer = layer(2);
    let down = Arc::new(AtomicBool::new(true));
    let mut s = select(
        &layer,
        3,
        vec![(1, switchable(1, down.clone())), (2, ok(2))],
    );
    for _ in 0..2 {
        assert_eq!(
            send(&mut s, Some(1)).await.unwrap_err().to_string(),
            "connection refused"
        );
    }
    assert_eq!(layer.breaker(&1).unwrap().state(), State::Open);
    for _ in 0..5 {
        assert_eq!(send(&mut s, Some(1)).await.unwrap(), 2);
    }
    // Recovery: after open_duration the preferred peer gets a probe.
    down.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(send(&mut s, Some(1)).await.unwrap(), 1);
    assert_eq!(layer.breaker(&1).unwrap().state(), State::HalfOpen);
    assert_eq!(send(&mut s, Some(1)).await.unwrap(), 1);
    assert_eq!(layer.breaker(&1).unwrap().state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_open_peer_is_never_sent_a_request() {
    let layer = layer(1);
    let mut s = select(
        &layer,
        4,
        vec![(1, ok(1)), (2, ok(2)), (3, ok(3)), (4, ok(4))],
    );
    layer.breaker_or_insert(2).unwrap().trip();
    layer.force_open(4);
    let mut seen = [0usize; 5];
    for i in 0..200u32 {
        // Preferred, unknown and absent preferences alike.
        let r = match i % 3 {
            0 => Some(2),
            1 => Some(99),
            _ => None,
        };
        seen[send(&mut s, r).await.unwrap() as usize] += 1;
    }
    assert_eq!((seen[2], seen[4]), (0, 0), "{seen:?}");
    // Without a preference, equal health is taken in turn.
    assert!(seen[1] > 50 && seen[3] > 50, "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn tries_are_bounded() {
    let layer = layer(1);
    let peers: Vec<_> = (1..=5).map(|id| (id, ok(id))).collect();
    let mut s = select(&layer, 2, peers);
    for id in 1..=5 {
        layer.force_open(id);
    }
    let err = send(&mut s, Some(1)).await.unwrap_err();
    let e = no_peer(&err);
    assert_eq!((e.tried(), e.peers()), (2, 5));
    assert_eq!(layer.stats().rejected, 2, "only two breakers were asked");
    // The bound also holds without a preference.
    let err = send(&mut s, None).await.unwrap_err();
    assert_eq!(no_peer(&err).tried(), 2);
    assert_eq!(s.stats().no_peer, 2);
}

#[tokio::test(start_paused = true)]
async fn all_open_is_a_typed_rejection_at_once() {
    let layer = layer(1);
    let mut s = select(&layer, 3, vec![(1, ok(1)), (2, ok(2))]);
    layer.breaker_or_insert(1).unwrap().trip();
    layer.breaker_or_insert(2).unwrap().trip();
    let mut fut = task::spawn(s.ready().await.unwrap().call(Some(1)));
    let err = assert_ready!(fut.poll()).unwrap_err();
    let e = no_peer(&err);
    assert_eq!(e.tried(), 2);
    assert!(
        e.retry_after()
            .is_some_and(|d| d <= Duration::from_secs(10))
    );
    let found = Rejection::find(&*err).expect("a seawall rejection inside");
    assert_eq!(found.kind(), RejectionKind::CircuitOpen);
    assert!(matches!(found.key(), Some("1" | "2")));
}

#[tokio::test(start_paused = true)]
async fn empty_set_fails_at_once() {
    let layer = layer(1);
    let mut s = select(&layer, 3, vec![]);
    let err = send(&mut s, Some(1)).await.unwrap_err();
    let e = no_peer(&err);
    assert_eq!((e.tried(), e.peers()), (0, 0));
    assert!(Rejection::find(&*err).is_none());
}

#[tokio::test(start_paused = true)]
async fn busy_peer_is_skipped_and_all_busy_is_pending() {
    let layer = layer(1);
    let mut s = select(&layer, 3, vec![(1, busy(1)), (2, busy(2))]);
    let mut first = task::spawn(send(&mut s, Some(1)));
    assert_pending!(first.poll());
    drop(first); // dropped: peer 1's permit comes back
    let mut a = task::spawn(s.ready().await.unwrap().call(Some(1)));
    assert_pending!(a.poll()); // peer 1 busy for a second
    let mut b = task::spawn(s.ready().await.unwrap().call(Some(1)));
    assert_pending!(b.poll()); // peer 1 not ready: went to peer 2
    {
        let mut ready = task::spawn(std::future::poll_fn(|cx| s.poll_ready(cx)));
        assert_pending!(ready.poll(), "every peer busy");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(assert_ready!(a.poll()).unwrap(), 1);
        assert_eq!(assert_ready!(b.poll()).unwrap(), 2);
        drop((a, b));
        assert!(ready.is_woken());
        assert!(assert_ready!(ready.poll()).is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn failed_peer_is_removed_from_the_set() {
    struct Broken;
    impl Service<Req> for Broken {
        type Response = u32;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u32, BoxError>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Err("gone for good".into()))
        }
        fn call(&mut self, _: Req) -> Self::Future {
            std::future::ready(Ok(0))
        }
    }
    let layer = layer(1);
    let mut s = select(&layer, 3, vec![(1, BoxService::new(Broken)), (2, ok(2))]);
    assert_eq!(send(&mut s, Some(1)).await.unwrap(), 2);
    assert_eq!(s.keys().copied().collect::<Vec<_>>(), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_probe_gives_back_its_slot() {
    let layer = KeyedBreakerLayer::new(
        (|r: &Req| r.unwrap_or(0)) as fn(&Req) -> u32,
        &BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(1))
            .open_duration(Duration::from_secs(10))
            .half_open_max_calls(1)
            .into(),
    )
    .unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let mut s = select(&layer, 1, vec![(1, slow(1, live.clone()))]);
    layer.breaker_or_insert(1).unwrap().trip();
    tokio::time::advance(Duration::from_secs(10)).await;
    let mut probe = task::spawn(s.ready().await.unwrap().call(Some(1)));
    assert_pending!(probe.poll());
    assert_eq!(layer.key_stats(&1).unwrap().half_open_in_flight, 1);
    // The slot is taken: the next request is refused at once.
    let err = send(&mut s, Some(1)).await.unwrap_err();
    assert_eq!(no_peer(&err).tried(), 1);
    drop(probe);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the peer's call was dropped"
    );
    let st = layer.key_stats(&1).unwrap();
    assert_eq!((st.state, st.half_open_in_flight), (State::HalfOpen, 0));
    // The slot is back: a new probe passes and closes nothing yet.
    let mut again = task::spawn(s.ready().await.unwrap().call(Some(1)));
    assert_pending!(again.poll());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(assert_ready!(again.poll()).unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn insert_and_remove_change_the_set_and_pin_map_entries() {
    let layer = layer(1);
    let mut s = select(&layer, 3, vec![(1, ok(1))]);
    s.insert(2, ok(2));
    s.insert(1, ok(10)); // replaces peer 1's service, keeps its breaker
    assert_eq!(send(&mut s, Some(1)).await.unwrap(), 10);
    assert_eq!(send(&mut s, Some(2)).await.unwrap(), 2);
    assert!(s.remove(&1).is_some());
    assert_eq!(send(&mut s, Some(1)).await.unwrap(), 2);
    assert!(s.remove(&7).is_none());
    assert_eq!(s.len(), 1);
    // A peer of the set is never evicted from the map; a removed one may be.
    for _ in 0..2 {
        // The map evicts what was not used over a whole sweep period.
        tokio::time::advance(Duration::from_secs(600)).await;
        layer.evict_idle();
    }
    assert!(layer.breaker(&2).is_some());
    assert!(layer.breaker(&1).is_none());
}

#[test]
fn zero_tries_is_a_config_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _e = rt.enter();
    let layer = layer(1);
    let err = PeerSelect::builder(&layer, prefer as fn(&Req) -> Option<u32>)
        .max_tries(0)
        .peers(Vec::<(u32, Peer)>::new())
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "max_tries");
}

#[cfg(feature = "discover")]
#[tokio::test(start_paused = true)]
async fn peers_from_a_discover_stream() {
    use tokio_test::stream_mock::StreamMockBuilder;
    use tower::discover::Change;

    let layer = layer(1);
    let stream = StreamMockBuilder::new()
        .next(Ok::<_, BoxError>(Change::Insert(1, ok(1))))
        .next(Ok(Change::Insert(2, ok(2))))
        .wait(Duration::from_secs(5))
        .next(Ok(Change::Remove(1)))
        .build();
    let mut s: Select = PeerSelect::builder(&layer, prefer as fn(&Req) -> Option<u32>)
        .discover(stream)
        .build()
        .unwrap();
    assert_eq!(send(&mut s, Some(1)).await.unwrap(), 1);
    assert_eq!(send(&mut s, Some(2)).await.unwrap(), 2);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        send(&mut s, Some(1)).await.unwrap(),
        2,
        "peer 1 was removed"
    );
    assert_eq!(s.len(), 1);
}

#[cfg(feature = "discover")]
#[tokio::test(start_paused = true)]
async fn discover_error_comes_out_of_poll_ready() {
    use tokio_test::stream_mock::StreamMockBuilder;
    use tower::discover::Change;

    let layer = layer(1);
    let stream = StreamMockBuilder::new()
        .next(Err::<Change<u32, Peer>, BoxError>("registry down".into()))
        .build();
    let mut s: Select = PeerSelect::builder(&layer, prefer as fn(&Req) -> Option<u32>)
        .discover(stream)
        .build()
        .unwrap();
    let err = s.ready().await.unwrap_err();
    assert_eq!(err.to_string(), "registry down");
}

#[cfg(feature = "balance")]
#[tokio::test(start_paused = true)]
async fn balance_prefers_healthy_peers() {
    use tower::balance::p2c::Balance;
    use tower::discover::ServiceList;
    use tower::load::Load;

    let layer = layer(4);
    let hits: Arc<[AtomicUsize; 3]> = Arc::default();
    let peers: Vec<_> = (0..3u32)
        .map(|id| {
            let hits = hits.clone();
            layer.guard(
                id,
                service_fn(move |_: Req| {
                    hits[id as usize].fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, BoxError>(id) }
                }),
            )
        })
        .collect();
    // Peer 0 open, peer 1 with one failure of four, peer 2 clean.
    layer.breaker_or_insert(0).unwrap().trip();
    layer
        .breaker_or_insert(1)
        .unwrap()
        .try_acquire()
        .unwrap()
        .failure();
    assert_eq!(peers[0].load(), 1.0);
    assert_eq!(peers[1].load(), 0.125);
    assert_eq!(peers[2].load(), 0.0);
    let mut balance = Balance::new(ServiceList::new(peers));
    for _ in 0..300 {
        balance.ready().await.unwrap().call(None).await.unwrap();
    }
    let [h0, h1, h2] = [0, 1, 2].map(|i| hits[i].load(Ordering::SeqCst));
    // p2c compares two distinct peers: the open one always loses, so it is
    // never even asked (its breaker refused nothing).
    assert_eq!((h0, h1 + h2), (0, 300), "{h0} {h1} {h2}");
    assert_eq!(layer.key_stats(&0).unwrap().rejected, 0);
    // Peer 1's first success clears its failure: both are then equal.
    assert!(h1 > 50 && h2 > 50, "{h0} {h1} {h2}");
}

#[cfg(feature = "serde")]
#[test]
fn config_from_toml() {
    let c: PeerSelectConfig = toml::from_str("max_tries = 2").unwrap();
    assert_eq!(c.max_tries, 2);
    let c: PeerSelectConfig = toml::from_str("").unwrap();
    assert_eq!(c, PeerSelectConfig::default());
    assert!(toml::from_str::<PeerSelectConfig>("tries = 2").is_err());
}

#[tokio::test(start_paused = true)]
async fn select_and_its_future_are_send() {
    fn send<T: Send>(t: T) -> T {
        t
    }
    let layer = layer(1);
    let mut s = send(select(&layer, 3, vec![(1, ok(1))]));
    let fut = send(s.ready().await.unwrap().call(Some(1)));
    assert_eq!(fut.await.unwrap(), 1);
}

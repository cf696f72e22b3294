//! Peer selection against real peers on 127.0.0.1 (a one-line protocol over
//! TCP: the client sends `ping`, the peer answers `pong <id>`).
//!
//! Real time, bounded: every call has a 2s timeout and the asserts are
//! directions with wide margins.

use std::time::{Duration, Instant};

use seawall_breaker::{
    BreakerConfig, KeyedBreakerLayer, NoPeerAvailable, PeerSelect, State, TripPolicy,
};
use tokio_test::{assert_ready, task};
use tower::{Service, ServiceExt};

use seawall_test_support::pong::{client, peer};

fn keyed() -> KeyedBreakerLayer<fn(&Option<usize>) -> usize, usize> {
    KeyedBreakerLayer::new(
        (|r: &Option<usize>| r.unwrap_or(0)) as fn(&Option<usize>) -> usize,
        &BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(2))
            .open_duration(Duration::from_secs(30))
            .into(),
    )
    .unwrap()
}

fn mean(d: &[Duration]) -> Duration {
    d.iter().sum::<Duration>() / d.len() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_down_its_traffic_lands_on_the_others() {
    let mut peers = Vec::new();
    for id in 0..3 {
        peers.push(peer(id).await);
    }
    let layer = keyed();
    let mut select = PeerSelect::builder(&layer, |r: &Option<usize>| *r)
        .peers(
            peers
                .iter()
                .enumerate()
                .map(|(i, (addr, _))| (i, client(*addr))),
        )
        .build()
        .unwrap();

    // Warm up, then the baseline: calls to a healthy preferred peer.
    for _ in 0..10 {
        select.ready().await.unwrap().call(Some(1)).await.unwrap();
    }
    let mut direct = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(
            select.ready().await.unwrap().call(Some(1)).await.unwrap(),
            1
        );
        direct.push(t.elapsed());
    }

    // Peer 0 goes down: its first calls fail fast (connection refused)
    // until its breaker trips.
    peers[0].1.abort();
    let _ = (&mut peers[0].1).await;
    let t = Instant::now();
    let mut refused = 0;
    while layer.breaker(&0).unwrap().state() != State::Open {
        assert!(select.ready().await.unwrap().call(Some(0)).await.is_err());
        refused += 1;
        assert!(refused <= 2, "threshold is 2");
    }
    assert!(t.elapsed() < Duration::from_secs(2), "refusals are fast");

    // Now every call preferring peer 0 lands on peer 1 or 2.
    let mut rerouted = Vec::new();
    let mut landed = [0; 3];
    for _ in 0..50 {
        let t = Instant::now();
        let id = select.ready().await.unwrap().call(Some(0)).await.unwrap();
        rerouted.push(t.elapsed());
        landed[id as usize] += 1;
    }
    assert_eq!(landed[0], 0);
    assert_eq!(landed[1] + landed[2], 50);
    assert_eq!(
        layer.key_stats(&0).unwrap().rejected,
        50,
        "one breaker refusal each"
    );
    assert_eq!(select.stats().other, 50);
    // No added latency beyond that refusal: the same order as direct calls
    // (a wide margin; both are loopback round trips).
    let (d, r) = (mean(&direct), mean(&rerouted));
    assert!(
        r < d * 5 + Duration::from_millis(20),
        "direct {d:?}, rerouted {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_peers_down_is_a_typed_error_at_once() {
    let mut peers = Vec::new();
    for id in 0..3 {
        peers.push(peer(id).await);
    }
    let layer = keyed();
    let mut select = PeerSelect::builder(&layer, |r: &Option<usize>| *r)
        .peers(
            peers
                .iter()
                .enumerate()
                .map(|(i, (addr, _))| (i, client(*addr))),
        )
        .build()
        .unwrap();
    assert_eq!(
        select.ready().await.unwrap().call(Some(2)).await.unwrap(),
        2
    );
    for (_, task) in &mut peers {
        task.abort();
        let _ = task.await;
    }
    // Each peer fails twice (fast), then every breaker is open.
    let mut calls = 0;
    while (0..3).any(|i| layer.breaker(&i).unwrap().state() != State::Open) {
        assert!(select.ready().await.unwrap().call(None).await.is_err());
        calls += 1;
        assert!(calls <= 6);
    }
    // The next call resolves on its first poll, without touching a socket.
    let mut fut = task::spawn(select.ready().await.unwrap().call(Some(0)));
    let err = assert_ready!(fut.poll()).unwrap_err();
    let e = err.downcast_ref::<NoPeerAvailable>().expect("typed");
    assert_eq!(e.tried(), 3);
    assert!(e.retry_after().is_some());
}

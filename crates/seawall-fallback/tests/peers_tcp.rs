//! A fallback over peer selection against real peers on 127.0.0.1 (a
//! one-line protocol over TCP: `ping` → `pong <id>`): when every peer is
//! down, the fallback answers at once.
//!
//! Real time, bounded: every call has a 2s timeout.

use std::time::{Duration, Instant};

use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, PeerSelect, State, TripPolicy};
use seawall_core::BoxError;
use seawall_fallback::FallbackLayer;
use tower::{Layer, Service, ServiceExt};

use seawall_test_support::pong::{client, peer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_peers_down_the_fallback_answers() {
    let mut peers = Vec::new();
    for id in 0..3 {
        peers.push(peer(id).await);
    }
    let keyed = KeyedBreakerLayer::new(
        |r: &Option<usize>| r.unwrap_or(0),
        &BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(1))
            .into(),
    )
    .unwrap();
    let select = PeerSelect::builder(&keyed, |r: &Option<usize>| *r)
        .peers(
            peers
                .iter()
                .enumerate()
                .map(|(i, (addr, _))| (i, client(*addr))),
        )
        .build()
        .unwrap();
    let fallback = FallbackLayer::builder()
        .answer_with(|_: Option<usize>, _: BoxError| Ok::<_, BoxError>(u32::MAX))
        .build()
        .unwrap();
    let mut svc = fallback.layer(select);

    assert_eq!(svc.ready().await.unwrap().call(Some(1)).await.unwrap(), 1);
    for (_, task) in &mut peers {
        task.abort();
        let _ = task.await;
    }
    // Connection refused is not a rejection: it reaches the caller, and
    // trips each peer's breaker (threshold 1).
    while (0..3).any(|i| keyed.breaker(&i).unwrap().state() != State::Open) {
        let err = svc.ready().await.unwrap().call(None).await.unwrap_err();
        assert!(!err.to_string().starts_with("no peer"), "{err}");
    }
    assert_eq!(fallback.stats().fallbacks, 0);

    // Every peer open: the selection refuses at once and the fallback answers.
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            svc.ready().await.unwrap().call(Some(0)).await.unwrap(),
            u32::MAX
        );
    }
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(fallback.stats().fallbacks, 20);
}

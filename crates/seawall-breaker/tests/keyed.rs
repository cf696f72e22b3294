//! The keyed breaker map: isolation, eviction, protection of open keys,
//! the full map, concurrency, health.

use std::sync::Arc;
use std::time::Duration;

use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, KeyedBreakerLayer, State, TripPolicy};
use seawall_core::{CircuitOpen, KeyFn};
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Clone, Copy)]
struct Req {
    peer: u32,
    fail: bool,
}

fn config(capacity: usize, ttl_secs: u64) -> KeyedBreakerConfig {
    KeyedBreakerConfig {
        breaker: BreakerConfig {
            policy: TripPolicy::consecutive_failures(2),
            open_duration: Duration::from_secs(1_000),
            ..BreakerConfig::default()
        },
        capacity,
        idle_ttl: Duration::from_secs(ttl_secs),
    }
}

fn peer(r: &Req) -> u32 {
    r.peer
}

fn keyed(capacity: usize, ttl: u64) -> KeyedBreakerLayer<fn(&Req) -> u32, u32> {
    KeyedBreakerLayer::new(peer as fn(&Req) -> u32, config(capacity, ttl)).unwrap()
}

fn svc() -> impl Service<
    Req,
    Response = u32,
    Error = &'static str,
    Future = impl Future<Output = Result<u32, &'static str>> + Send,
> + Clone
+ Send {
    service_fn(|r: Req| async move { if r.fail { Err("down") } else { Ok(r.peer) } })
}

async fn call<S>(s: &mut S, peer: u32, fail: bool) -> Result<u32, seawall_core::BoxError>
where
    S: Service<Req, Response = u32, Error = seawall_core::BoxError>,
{
    s.ready().await?.call(Req { peer, fail }).await
}

#[tokio::test(start_paused = true)]
async fn keys_are_isolated() {
    let layer = keyed(100, 60);
    let mut s = layer.layer(svc());
    for _ in 0..2 {
        assert!(call(&mut s, 1, true).await.is_err());
    }
    assert_eq!(layer.breaker(&1).unwrap().state(), State::Open);
    let err = call(&mut s, 1, false).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(open.key(), Some("1"));
    assert_eq!(call(&mut s, 2, false).await.unwrap(), 2);
    assert_eq!(layer.breaker(&2).unwrap().state(), State::Closed);
    let stats = layer.stats();
    assert_eq!(
        (
            stats.keys,
            stats.open,
            stats.closed,
            stats.rejected,
            stats.trips
        ),
        (2, 1, 1, 1, 1)
    );
    assert_eq!(layer.key_stats(&1).unwrap().rejected, 1);
    assert_eq!(layer.all_key_stats().len(), 2);
    assert!(layer.key_stats(&3).is_none());
}

#[tokio::test(start_paused = true)]
async fn capacity_evicts_closed_keys() {
    let layer = keyed(2, 60);
    let mut s = layer.layer(svc());
    for p in 0..5 {
        call(&mut s, p, false).await.unwrap();
    }
    assert_eq!(layer.len(), 2);
    assert!(layer.breaker(&4).is_some(), "the newest key is in");
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted_after_their_ttl() {
    let layer = keyed(100, 10);
    let mut s = layer.layer(svc());
    call(&mut s, 1, false).await.unwrap();
    call(&mut s, 2, false).await.unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        layer.evict_idle(),
        0,
        "first sweep: both were used in the first period"
    );
    call(&mut s, 2, false).await.unwrap(); // 2 stays in use
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(layer.evict_idle(), 1);
    assert!(layer.breaker(&1).is_none());
    // Lazily, on insert, without calling evict_idle.
    tokio::time::advance(Duration::from_secs(20)).await;
    call(&mut s, 3, false).await.unwrap();
    assert!(layer.breaker(&2).is_none());
    assert!(!layer.is_empty());
}

#[tokio::test(start_paused = true)]
async fn open_keys_are_never_evicted_and_a_full_map_passes_calls_unguarded() {
    let layer = keyed(2, 10);
    let mut s = layer.layer(svc());
    for _ in 0..2 {
        let _ = call(&mut s, 1, true).await;
    }
    call(&mut s, 2, false).await.unwrap();
    call(&mut s, 3, false).await.unwrap(); // evicts 2, never 1
    assert!(layer.breaker(&1).is_some());
    assert!(layer.breaker(&2).is_none());
    tokio::time::advance(Duration::from_secs(100)).await;
    layer.evict_idle();
    layer.evict_idle();
    assert_eq!(
        layer.breaker(&1).unwrap().state(),
        State::Open,
        "idle but open: kept"
    );

    // Both keys protected: 3 is forced open too.
    assert!(layer.force_open(3));
    assert_eq!(call(&mut s, 4, true).await.unwrap_err().to_string(), "down");
    assert_eq!(call(&mut s, 4, true).await.unwrap_err().to_string(), "down");
    assert_eq!(
        call(&mut s, 4, false).await.unwrap(),
        4,
        "unguarded, never rejected"
    );
    assert_eq!(layer.stats().untracked, 3);
    assert!(layer.breaker(&4).is_none());
    assert!(!layer.force_closed(5), "no room for a new key");

    // Once a key closes again it may make room.
    layer.reset(&3);
    call(&mut s, 4, false).await.unwrap();
    assert!(layer.breaker(&4).is_some());
    assert_eq!(layer.stats().untracked, 3);
}

#[tokio::test(start_paused = true)]
async fn open_keys_nobody_calls_are_forgotten_an_idle_ttl_after_their_deadline() {
    let layer = keyed(2, 10); // open_duration 1000s, idle_ttl 10s
    let mut s = layer.layer(svc());
    for _ in 0..2 {
        let _ = call(&mut s, 1, true).await;
    }
    assert!(layer.force_open(2));
    tokio::time::advance(Duration::from_secs(1_009)).await;
    call(&mut s, 3, false).await.unwrap(); // no room: 1 is open until 1010s
    assert_eq!(layer.stats().untracked, 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    call(&mut s, 3, false).await.unwrap(); // 1 is forgotten, 2 (forced) is kept
    assert!(layer.breaker(&1).is_none());
    assert_eq!(layer.breaker(&2).unwrap().state(), State::ForcedOpen);
    assert!(layer.breaker(&3).is_some());

    // Half-open with no caller for an idle TTL: forgotten too.
    layer.reset(&2);
    for _ in 0..2 {
        let _ = call(&mut s, 3, true).await;
    }
    tokio::time::advance(Duration::from_secs(1_000)).await;
    let probe = layer.breaker(&3).unwrap();
    drop(probe.try_acquire().unwrap()); // 3 is half-open now, nothing in flight
    drop(probe);
    assert_eq!(layer.breaker(&3).unwrap().state(), State::HalfOpen);
    assert!(layer.force_open(4)); // evicts 2 (closed), never 3 (half-open)
    assert!(layer.breaker(&3).is_some());
    tokio::time::advance(Duration::from_secs(10)).await;
    call(&mut s, 5, false).await.unwrap();
    assert!(layer.breaker(&3).is_none(), "half-open and idle: forgotten");
}

#[tokio::test(start_paused = true)]
async fn health_prefers_healthy_keys() {
    let layer = keyed(100, 60);
    let mut s = layer.layer(svc());
    call(&mut s, 1, false).await.unwrap();
    let _ = call(&mut s, 2, true).await; // 1 of 2 failures: 0.75
    for _ in 0..2 {
        let _ = call(&mut s, 3, true).await; // open: 0
    }
    assert_eq!(layer.health(&1), 1.0);
    assert_eq!(layer.health(&2), 0.75);
    assert_eq!(layer.health(&3), 0.0);
    assert_eq!(layer.health(&99), 1.0, "unknown keys are presumed healthy");
    assert_eq!(layer.healthiest(2), vec![(1, 1.0), (2, 0.75)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_many_keys() {
    let layer = Arc::new(keyed(10_000, 60));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let layer = layer.clone();
            tokio::spawn(async move {
                let mut s = layer.layer(svc());
                for i in 0..2_000u32 {
                    let peer = (i * 7 + t) % 64;
                    // Odd peers always fail, even peers never do.
                    let _ = call(&mut s, peer, peer % 2 == 1).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(layer.len(), 64);
    for p in 0..64 {
        let b = layer.breaker(&p).unwrap();
        let want = if p % 2 == 1 {
            State::Open
        } else {
            State::Closed
        };
        assert_eq!(b.state(), want, "peer {p}");
        if p % 2 == 1 {
            assert_eq!(b.stats().trips, 1);
        }
    }
}

#[tokio::test]
async fn bad_config_names_every_field() {
    let cfg = KeyedBreakerConfig {
        breaker: BreakerConfig {
            policy: TripPolicy::failure_rate_count(10, 2.0, 5),
            ..BreakerConfig::default()
        },
        capacity: 0,
        idle_ttl: Duration::ZERO,
    };
    let err = KeyedBreakerLayer::new(peer as fn(&Req) -> u32, cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "breaker.policy.rate: 2 is not in 0..=1; capacity: 0 must be greater than zero; \
         idle_ttl: 0s must be longer than zero"
    );
}

#[tokio::test]
async fn closures_and_key_fns_infer_the_key() {
    let layer = KeyedBreakerLayer::new(
        |r: &Req| format!("peer-{}", r.peer),
        BreakerConfig::default().into(),
    )
    .unwrap();
    let mut s = layer.layer(svc());
    call(&mut s, 7, false).await.unwrap();
    assert!(layer.breaker(&"peer-7".to_string()).is_some());
    assert_eq!(
        (|r: &Req| r.peer).key(&Req {
            peer: 1,
            fail: false
        }),
        1
    );
}

//! The keyed breaker map: isolation, eviction, protection of open keys,
//! the full map, concurrency, health.

use std::sync::Arc;
use std::time::Duration;

use seawall_breaker::{BreakerConfig, KeyedBreakerConfig, KeyedBreakerLayer, State, TripPolicy};
use seawall_core::{CircuitOpen, KeyFn, KeyMapConfig};
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Clone, Copy)]
struct Req {
    peer: u32,
    fail: bool,
}

fn config(capacity: usize, ttl_secs: u64) -> KeyedBreakerConfig {
    KeyedBreakerConfig::from(
        BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(2))
            .open_duration(Duration::from_secs(1_000)),
    )
    .keys(
        KeyMapConfig::new()
            .capacity(capacity)
            .idle_ttl(Duration::from_secs(ttl_secs)),
    )
}

fn peer(r: &Req) -> u32 {
    r.peer
}

fn keyed(capacity: usize, ttl: u64) -> KeyedBreakerLayer<fn(&Req) -> u32, u32> {
    KeyedBreakerLayer::new(peer as fn(&Req) -> u32, &config(capacity, ttl)).unwrap()
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
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(layer.evict_idle(), 0, "used half a TTL ago");
    call(&mut s, 2, false).await.unwrap(); // 2 stays in use
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(layer.evict_idle(), 1);
    assert!(layer.breaker(&1).is_none());
    // Lazily, on insert, without calling evict_idle.
    tokio::time::advance(Duration::from_secs(20)).await;
    call(&mut s, 3, false).await.unwrap();
    assert!(layer.breaker(&2).is_none());
    assert!(!layer.is_empty());
}

#[tokio::test(start_paused = true)]
async fn open_keys_are_never_evicted_and_a_full_map_shares_the_overflow_breaker() {
    let layer = keyed(2, 10);
    let mut s = layer.layer(svc());
    for _ in 0..2 {
        let _ = call(&mut s, 1, true).await;
    }
    call(&mut s, 2, false).await.unwrap();
    call(&mut s, 3, false).await.unwrap(); // evicts 2, never 1
    assert!(layer.breaker(&1).is_some());
    assert!(layer.breaker(&2).is_none());
    tokio::time::advance(Duration::from_secs(2_000)).await;
    layer.evict_idle();
    layer.evict_idle();
    assert_eq!(
        layer.breaker(&1).unwrap().state(),
        State::HalfOpen,
        "idle, open and past its deadline (so half-open when read): kept"
    );

    // Both keys protected: 3 is forced open too. New keys share the overflow
    // breaker, which trips like one key's and refuses, never a free pass.
    assert!(layer.force_open(3));
    assert_eq!(call(&mut s, 4, true).await.unwrap_err().to_string(), "down");
    assert_eq!(call(&mut s, 5, true).await.unwrap_err().to_string(), "down");
    for peer in [4, 6] {
        let err = call(&mut s, peer, false).await.unwrap_err();
        let open = err.downcast_ref::<CircuitOpen>().expect("refused");
        assert_eq!(open.key(), Some(seawall_breaker::OVERFLOW_KEY));
        assert!(open.retry_after().is_some());
    }
    let stats = layer.stats();
    assert_eq!(stats.overflow_calls, 4);
    assert!(stats.overflow_open);
    assert_eq!(stats.keys, 2);
    assert_eq!(stats.trips, 2, "key 1 and the overflow breaker");
    assert_eq!(stats.rejected, 2);
    assert_eq!(layer.overflow_breaker().state(), State::Open);
    assert!(layer.breaker(&4).is_none());
    assert!(!layer.force_closed(5), "no room for a new key");

    // Once a key is fresh again it may make room.
    layer.reset(&3);
    call(&mut s, 4, false).await.unwrap();
    assert!(layer.breaker(&4).is_some());
    assert_eq!(layer.stats().overflow_calls, 4);
}

#[tokio::test(start_paused = true)]
async fn a_key_with_counted_failures_survives_a_flood_of_fresh_keys() {
    const CAPACITY: u32 = 100;
    let layer = keyed(CAPACITY as usize, 10); // threshold 2
    let mut s = layer.layer(svc());
    let _ = call(&mut s, 0, true).await; // one failure counted: not fresh
    for peer in 1..=100 * CAPACITY {
        call(&mut s, peer, false).await.unwrap();
        if peer % 1_000 == 0 {
            tokio::time::advance(Duration::from_secs(60)).await;
        }
    }
    assert_eq!(
        layer.key_stats(&0).unwrap().consecutive_failures,
        1,
        "the failure is still counted"
    );
    assert!(layer.len() <= CAPACITY as usize);
    // Every newcomer found room: only key 0 is protected.
    assert_eq!(layer.stats().overflow_calls, 0);
    // A second failure trips it, as it would have without the flood.
    let _ = call(&mut s, 0, true).await;
    assert_eq!(layer.breaker(&0).unwrap().state(), State::Open);
    // Once fresh again (reset, or a success), it goes like any other.
    layer.reset(&0);
    tokio::time::advance(Duration::from_secs(60)).await;
    for peer in 100 * CAPACITY + 1..=101 * CAPACITY + 50 {
        call(&mut s, peer, false).await.unwrap();
    }
    layer.evict_idle();
    assert!(layer.breaker(&0).is_none(), "fresh and idle: evicted");

    // A success clears the streak: the key is fresh, and evictable.
    let _ = call(&mut s, 7, true).await;
    call(&mut s, 7, false).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(layer.evict_idle() >= 1);
    assert!(layer.breaker(&7).is_none());
}

#[tokio::test(start_paused = true)]
async fn stale_open_keys_stay_until_removed_or_recovered() {
    let layer = keyed(2, 10); // open_duration 1000s, idle_ttl 10s
    let mut s = layer.layer(svc());
    for _ in 0..2 {
        let _ = call(&mut s, 1, true).await;
    }
    assert!(layer.force_open(2));
    tokio::time::advance(Duration::from_secs(5_000)).await;
    layer.evict_idle();
    assert_eq!(
        layer.len(),
        2,
        "an open key is never forgotten by time alone"
    );
    // Half-open with a probe that succeeded, but not yet closed: kept.
    call(&mut s, 1, false).await.unwrap();
    assert_eq!(layer.breaker(&1).unwrap().state(), State::HalfOpen);
    tokio::time::advance(Duration::from_secs(60)).await;
    layer.evict_idle();
    assert!(layer.breaker(&1).is_some());
    // Recovered (closed, fresh): it may go.
    call(&mut s, 1, false).await.unwrap();
    assert_eq!(layer.breaker(&1).unwrap().state(), State::Closed);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(layer.evict_idle(), 1);
    // Forced open: stays until an operator resets or removes it.
    assert_eq!(layer.remove(&2).unwrap().state(), State::ForcedOpen);
    assert!(layer.is_empty());
    // Forced closed is not fresh either.
    assert!(layer.force_closed(3));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(layer.evict_idle(), 0);
}

#[tokio::test(start_paused = true)]
async fn open_backoff_history_is_kept_until_reset_after() {
    let cfg = KeyedBreakerConfig::from(
        BreakerConfig::new()
            .policy(TripPolicy::consecutive_failures(1))
            .open_duration(Duration::from_secs(1))
            .half_open_max_calls(1)
            .success_threshold(1)
            .open_backoff(
                seawall_breaker::OpenBackoff::new()
                    .jitter(0.0)
                    .reset_after(Duration::from_secs(100)),
            ),
    )
    .keys(
        KeyMapConfig::new()
            .capacity(10)
            .idle_ttl(Duration::from_secs(10)),
    );
    let layer = KeyedBreakerLayer::new(peer as fn(&Req) -> u32, &cfg).unwrap();
    let mut s = layer.layer(svc());
    let _ = call(&mut s, 1, true).await; // trips
    tokio::time::advance(Duration::from_secs(1)).await;
    call(&mut s, 1, false).await.unwrap(); // probe closes it
    assert_eq!(layer.breaker(&1).unwrap().state(), State::Closed);
    // Closed, no failure, but a trip within reset_after would open it for
    // 2s, not the 1s of a fresh breaker: kept.
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(layer.evict_idle(), 0);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(layer.evict_idle(), 1, "closed for reset_after: fresh");
}

#[tokio::test(start_paused = true)]
async fn rate_windows_keep_keys_with_failures_until_they_slide_out() {
    let cfg = KeyedBreakerConfig::from(BreakerConfig::new().policy(TripPolicy::failure_rate_time(
        Duration::from_secs(30),
        0.5,
        10,
    )))
    .keys(
        KeyMapConfig::new()
            .capacity(10)
            .idle_ttl(Duration::from_secs(10)),
    );
    let layer = KeyedBreakerLayer::new(peer as fn(&Req) -> u32, &cfg).unwrap();
    let mut s = layer.layer(svc());
    let _ = call(&mut s, 1, true).await;
    call(&mut s, 2, false).await.unwrap();
    tokio::time::advance(Duration::from_secs(15)).await;
    assert_eq!(layer.evict_idle(), 1, "only successes: fresh enough");
    assert!(layer.breaker(&1).is_some());
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(layer.evict_idle(), 1, "the failure left the window");
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
    let cfg = KeyedBreakerConfig::from(
        BreakerConfig::new().policy(TripPolicy::failure_rate_count(10, 2.0, 5)),
    )
    .keys(KeyMapConfig::new().capacity(0).idle_ttl(Duration::ZERO));
    let err = KeyedBreakerLayer::new(peer as fn(&Req) -> u32, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "per_key.policy.rate: 2 is not in 0..=1; keys.capacity: 0 must be greater than zero; \
         keys.idle_ttl: 0s must be longer than zero"
    );
}

#[tokio::test]
async fn closures_and_key_fns_infer_the_key() {
    let layer = KeyedBreakerLayer::new(
        |r: &Req| format!("peer-{}", r.peer),
        &BreakerConfig::default().into(),
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

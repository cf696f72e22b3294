//! The keyed budget under keys chosen by an adversary, against a real
//! `redis-server` on 127.0.0.1 (started per test). Real time, as Redis's
//! `TIME` does not follow paused time; the budgets are one call an hour, so
//! no token comes back while a test runs, and nothing waits on a fixed sleep:
//! the tests wait (bounded) for refills to settle.

use std::time::Duration;

use seawall_budget_redis::{RedisBudgetConfig, RedisBudgetLayer, RedisKeyedBudgetLayer};
use seawall_core::KeyMapConfig;
use seawall_core::{Rejection, RejectionKind};
use seawall_test_support::redis::RedisServer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

/// Waits (real time, bounded) until `f` holds.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    f()
}

/// One call an hour, bursts of one: every admitted call is charged to Redis
/// by one refill, and no token comes back during the test.
fn hourly(url: String, name: &str, capacity: usize) -> RedisBudgetConfig {
    RedisBudgetLayer::builder()
        .url(url)
        .name(name)
        .rate(1)
        .per(Duration::from_secs(3600))
        .burst(1)
        // A short idle TTL, so that use is stamped finely (a 64th of it)
        // and the least recently used key is the one the map would evict.
        .keys(
            KeyMapConfig::new()
                .capacity(capacity)
                .idle_ttl(Duration::from_millis(100)),
        )
        .into_config()
}

type Keyed = RedisKeyedBudgetLayer<fn(&String) -> String, String>;

// A key function takes `&Request`, and the requests here are `String`s.
#[allow(clippy::ptr_arg)]
fn key_of(k: &String) -> String {
    k.clone()
}

/// Calls `key` once; `Ok(())` if admitted, else the rejection's key.
async fn call<S>(svc: &mut S, key: &str) -> Result<(), (Option<String>, Duration)>
where
    S: Service<String, Response = String, Error = seawall_core::BoxError>,
{
    match svc.ready().await.unwrap().call(key.to_owned()).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let r = Rejection::find(&*e).expect("a seawall rejection");
            assert_eq!(r.kind(), RejectionKind::BudgetExhausted);
            Err((r.key().map(str::to_owned), r.retry_after().unwrap()))
        }
    }
}

/// Waits until every admitted call has been charged to Redis (each refill
/// has answered), so that no cell is held by the refill queue.
async fn settle(layer: &Keyed) {
    let settled = eventually(Duration::from_secs(5), || {
        let s = layer.stats();
        s.leased >= s.admitted
    })
    .await;
    assert!(settled, "refills did not settle: {:?}", layer.stats());
}

#[tokio::test(flavor = "current_thread")]
async fn churning_junk_keys_does_not_refresh_a_throttled_key() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let layer: Keyed = RedisKeyedBudgetLayer::new(
        key_of as fn(&String) -> String,
        &hourly(server.url(), "churn", 4),
    )
    .unwrap();
    layer.ping().await.unwrap();
    let mut svc = layer.layer(service_fn(|k: String| async move {
        Ok::<_, std::convert::Infallible>(k)
    }));
    let mut abuser_admitted = 0;
    for round in 0..20 {
        match call(&mut svc, "abuser").await {
            Ok(()) => abuser_admitted += 1,
            Err((key, retry_after)) => {
                // Refused as itself: still in the map, still throttled.
                assert_eq!(key.as_deref(), Some("abuser"), "round {round}");
                assert!(retry_after > Duration::from_secs(3000), "{retry_after:?}");
            }
        }
        settle(&layer).await;
        // Enough junk to push any evictable key out of a map of four.
        for j in 0..8 {
            let _ = call(&mut svc, &format!("junk-{round}-{j}")).await;
            settle(&layer).await;
        }
    }
    // One call an hour, burst one: the abuser gets one call, however many
    // keys went through the map meanwhile.
    assert_eq!(abuser_admitted, 1, "{:?}", layer.stats());
    assert!(layer.stats().keys <= 4);
}

#[tokio::test(flavor = "current_thread")]
async fn new_keys_past_a_full_map_of_throttled_keys_share_one_overflow_budget() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let layer: Keyed = RedisKeyedBudgetLayer::new(
        key_of as fn(&String) -> String,
        &hourly(server.url(), "full", 4),
    )
    .unwrap();
    layer.ping().await.unwrap();
    let mut svc = layer.layer(service_fn(|k: String| async move {
        Ok::<_, std::convert::Infallible>(k)
    }));
    // Four keys, each spent for an hour: none may be forgotten.
    for k in 0..4 {
        assert_eq!(call(&mut svc, &format!("held-{k}")).await, Ok(()));
        settle(&layer).await;
    }
    assert_eq!(layer.stats().keys, 4);
    assert_eq!(layer.stats().overflowed, 0);
    // Newcomers share one budget of one call an hour: the first gets it,
    // the others are refused, without a key (it is not theirs alone). One
    // named like the overflow key's suffix is a newcomer like any.
    let mut admitted = 0;
    for n in 0..10 {
        let name = if n == 5 {
            "#overflow".to_owned()
        } else {
            format!("new-{n}")
        };
        match call(&mut svc, &name).await {
            Ok(()) => admitted += 1,
            Err((key, retry_after)) => {
                assert_eq!(key, None);
                assert!(retry_after > Duration::ZERO);
            }
        }
        settle(&layer).await;
    }
    assert_eq!(admitted, 1);
    let stats = layer.stats();
    assert_eq!(stats.overflowed, 10);
    assert_eq!(stats.keys, 4);
    // The held keys are still themselves, still throttled.
    let (key, retry_after) = call(&mut svc, "held-2").await.unwrap_err();
    assert_eq!(key.as_deref(), Some("held-2"));
    assert!(retry_after > Duration::from_secs(3000), "{retry_after:?}");
    // In Redis: the four keys and the one overflow key, which no user key
    // can name (user keys are `seawall:{full}:` and their text).
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("seawall:*")
        .query_async(&mut con)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "seawall:{full}#overflow",
            "seawall:{full}:held-0",
            "seawall:{full}:held-1",
            "seawall:{full}:held-2",
            "seawall:{full}:held-3",
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_throttled_key_may_go_once_its_time_is_up() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Ten calls a second, burst one: a key is throttled for 100ms.
    let mut cfg = hourly(server.url(), "thaw", 2);
    cfg.rate = 10;
    cfg.per = Duration::from_secs(1);
    let layer: Keyed = RedisKeyedBudgetLayer::new(key_of as fn(&String) -> String, &cfg).unwrap();
    layer.ping().await.unwrap();
    let mut svc = layer.layer(service_fn(|k: String| async move {
        Ok::<_, std::convert::Infallible>(k)
    }));
    let start = Instant::now();
    for k in ["a", "b"] {
        assert_eq!(call(&mut svc, k).await, Ok(()));
        settle(&layer).await;
    }
    // While both are throttled, newcomers overflow; once the first's 100ms
    // are up it is fresh again and a newcomer takes its place. Each try is a
    // new key, so that it is a newcomer whatever happened to the last.
    let mut overflowed = layer.stats().overflowed;
    let mut tries = 0;
    loop {
        let _ = call(&mut svc, &format!("new-{tries}")).await;
        settle(&layer).await;
        let now = layer.stats().overflowed;
        if now == overflowed {
            break;
        }
        overflowed = now;
        tries += 1;
        assert!(start.elapsed() < Duration::from_secs(5), "no key was freed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Not before the throttle was over (it began after `start`).
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    // (Keys idle and fresh may go too: the map holds the newcomer, at most two.)
    assert!((1..=2).contains(&layer.stats().keys));
}

#[tokio::test(flavor = "current_thread")]
async fn credit_taken_as_redis_went_down_is_charged_when_it_is_back() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let mut cfg = hourly(server.url(), "owed", 4);
    cfg.redis_timeout = Duration::from_millis(100);
    cfg.probe_interval = Duration::from_millis(50);
    let layer: Keyed = RedisKeyedBudgetLayer::new(key_of as fn(&String) -> String, &cfg).unwrap();
    layer.ping().await.unwrap();
    let mut svc = layer.layer(service_fn(|k: String| async move {
        Ok::<_, std::convert::Infallible>(k)
    }));
    server.stop();
    // Admitted on credit; its refill finds Redis gone.
    assert_eq!(call(&mut svc, "a").await, Ok(()));
    let down = eventually(Duration::from_secs(5), || {
        layer.backend() == seawall_budget_redis::Backend::Fallback
    })
    .await;
    assert!(down);
    assert_eq!(layer.stats().leased, 0);
    server.restart();
    // "a" is never called again, yet what it owes is charged, so its cell
    // becomes settled (and, once its time is up, fresh).
    let charged = eventually(Duration::from_secs(5), || layer.stats().leased == 1).await;
    assert!(charged, "{:?}", layer.stats());
    let mut con = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg("seawall:{owed}:a")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(exists);
}

//! KeyedBudgetLayer against keys chosen by an adversary, under paused time:
//! a throttled key is never forgotten while it owes tokens, and newcomers
//! that find the map full share one overflow budget as strict as a key.

use std::time::Duration;

use seawall_budget::{BudgetConfig, KeyedBudgetConfig, KeyedBudgetLayer, OVERFLOW_KEY};
use seawall_core::KeyMapConfig;
use seawall_core::{BoxError, Rejection, RejectionKind};
use seawall_test_support::service::Echo;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};

const HOUR: Duration = Duration::from_secs(3600);
const ABUSER: u64 = u64::MAX;

async fn call<S>(svc: &mut S, key: u64) -> Result<u64, BoxError>
where
    S: Service<u64, Response = u64, Error = BoxError>,
{
    svc.ready().await?.call(key).await
}

/// The rejection's key label; panics unless it is a budget rejection.
fn rejected_key(err: &BoxError) -> Option<String> {
    let r = Rejection::find(&**err).expect("a rejection");
    assert_eq!(r.kind(), RejectionKind::BudgetExhausted);
    r.key().map(str::to_owned)
}

/// One call an hour, bursts of one, 100 keys.
fn hourly(capacity: usize, idle_ttl: Duration) -> KeyedBudgetConfig {
    KeyedBudgetConfig::new()
        .per_key(BudgetConfig::new().rate(1).per(HOUR).burst(1))
        .keys(KeyMapConfig::new().capacity(capacity).idle_ttl(idle_ttl))
}

// The bypass this guards against: junk keys pushed a throttled key out of a
// full map, and it came back with a whole burst. Before keys owing tokens
// were kept, this abuser was admitted 19 times in the hour, not once.
#[tokio::test(start_paused = true)]
async fn junk_keys_cannot_evict_a_throttled_key() {
    let layer = KeyedBudgetLayer::new(|k: &u64| *k, &hourly(100, Duration::from_secs(60))).unwrap();
    let mut svc = layer.layer(Echo);
    let mut admitted = 0;
    let mut junk = 0u64;
    // A round a minute for an hour: the abuser, then 100 fresh junk keys.
    for _ in 0..60 {
        match call(&mut svc, ABUSER).await {
            Ok(_) => admitted += 1,
            // It kept its key all along: its rejections name it.
            Err(err) => assert_eq!(rejected_key(&err), Some(ABUSER.to_string())),
        }
        for _ in 0..100 {
            let _ = call(&mut svc, junk).await;
            junk += 1;
        }
        advance(Duration::from_secs(60)).await;
    }
    // burst + one hour × 1/hour, counting the edge; here exactly the burst.
    assert_eq!(
        admitted, 1,
        "the abuser was admitted {admitted} times in an hour"
    );
    let stats = layer.stats();
    assert!(stats.keys <= 100);
    assert!(stats.overflow > 0, "{stats:?}");
    assert!(
        call(&mut svc, ABUSER).await.is_ok(),
        "a full hour later its token is back"
    );
}

// The same with the abuser arriving after the map filled up: it lands in the
// overflow budget, which the junk keys spend too, so it gains nothing.
#[tokio::test(start_paused = true)]
async fn an_abuser_in_overflow_gains_nothing() {
    let layer = KeyedBudgetLayer::new(|k: &u64| *k, &hourly(100, Duration::from_secs(60))).unwrap();
    let mut svc = layer.layer(Echo);
    for k in 0..100 {
        call(&mut svc, k).await.unwrap();
    }
    let mut admitted = 0;
    let mut junk = 1_000u64;
    for _ in 0..60 {
        if call(&mut svc, ABUSER).await.is_ok() {
            admitted += 1;
        }
        for _ in 0..100 {
            let _ = call(&mut svc, junk).await;
            junk += 1;
        }
        advance(Duration::from_secs(60)).await;
    }
    assert!(
        admitted <= 1,
        "the abuser was admitted {admitted} times in an hour"
    );
}

#[tokio::test(start_paused = true)]
async fn newcomers_share_one_overflow_budget_until_keys_refill() {
    // One call every 10s per key, 4 keys.
    let cfg = KeyedBudgetConfig::new()
        .per_key(
            BudgetConfig::new()
                .rate(1)
                .per(Duration::from_secs(10))
                .burst(1),
        )
        .keys(
            KeyMapConfig::new()
                .capacity(4)
                .idle_ttl(Duration::from_secs(1)),
        );
    let layer = KeyedBudgetLayer::new(|k: &u64| *k, &cfg).unwrap();
    let mut svc = layer.layer(Echo);
    for k in 0..4 {
        call(&mut svc, k).await.unwrap();
    }
    // Every key owes its token: none may go, even idle for longer than the TTL.
    advance(Duration::from_secs(2)).await;
    assert_eq!(layer.evict_idle(), 0);

    // The first newcomer takes the overflow budget's one token...
    call(&mut svc, 10).await.unwrap();
    // ...and every other newcomer, whatever its key, finds it spent.
    for k in 11..20 {
        let err = call(&mut svc, k).await.unwrap_err();
        assert_eq!(rejected_key(&err).as_deref(), Some(OVERFLOW_KEY));
        let r = Rejection::find(&*err).unwrap();
        assert_eq!(r.retry_after(), Some(Duration::from_secs(10)));
    }
    // The keys held are still held, and still throttled by their own budget.
    let err = call(&mut svc, 0).await.unwrap_err();
    assert_eq!(rejected_key(&err).as_deref(), Some("0"));
    let stats = layer.stats();
    assert_eq!(stats.keys, 4);
    assert_eq!(stats.overflow, 10);
    assert_eq!(stats.overflow_rejected, 9);
    assert_eq!(stats.admitted, 5);
    assert_eq!(
        stats.exhausted, 10,
        "overflow rejections count as exhausted too"
    );

    // Once the keys refill they equal fresh keys: newcomers get keys of their own.
    advance(Duration::from_secs(10)).await;
    for k in 20..24 {
        call(&mut svc, k).await.unwrap();
    }
    let err = call(&mut svc, 20).await.unwrap_err();
    assert_eq!(rejected_key(&err).as_deref(), Some("20"));
    let stats = layer.stats();
    assert_eq!(
        stats.overflow, 10,
        "no newcomer went to overflow: {stats:?}"
    );
    assert_eq!(stats.keys, 4);
}

#[tokio::test(start_paused = true)]
async fn the_overflow_budget_refills_like_a_key() {
    let cfg = KeyedBudgetConfig::new()
        .per_key(
            BudgetConfig::new()
                .rate(2)
                .per(Duration::from_secs(1))
                .burst(2),
        )
        .keys(
            KeyMapConfig::new()
                .capacity(1)
                .idle_ttl(Duration::from_secs(60)),
        );
    let layer = KeyedBudgetLayer::new(|k: &u64| *k, &cfg).unwrap();
    let mut svc = layer.layer(Echo);
    call(&mut svc, 0).await.unwrap();
    // Key 0 owes half a second: newcomers overflow, bursts of 2, 2 a second.
    call(&mut svc, 1).await.unwrap();
    call(&mut svc, 2).await.unwrap();
    let err = call(&mut svc, 3).await.unwrap_err();
    assert_eq!(rejected_key(&err).as_deref(), Some("<overflow>"));
    assert_eq!(
        Rejection::find(&*err).unwrap().retry_after(),
        Some(Duration::from_millis(500))
    );
    // Key 0 keeps its own state: overflow traffic does not spend it.
    call(&mut svc, 0).await.unwrap();
    advance(Duration::from_millis(500)).await;
    // Key 0 still owes (it took its second token at 0): one more overflow token is due.
    call(&mut svc, 3).await.unwrap();
    let err = call(&mut svc, 4).await.unwrap_err();
    assert_eq!(rejected_key(&err).as_deref(), Some("<overflow>"));
    let stats = layer.stats();
    assert_eq!((stats.overflow, stats.overflow_rejected), (5, 2));
}

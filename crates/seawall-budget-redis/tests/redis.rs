//! Against a real `redis-server` on 127.0.0.1 (started per test). Real time,
//! short windows, wide margins: Redis's `TIME` does not follow paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seawall_budget_redis::{
    Backend, BudgetMode, FallbackPolicy, RedisBudgetError, RedisBudgetLayer, RedisKeyedBudgetLayer,
};
use seawall_core::{Rejection, RejectionKind};
use seawall_test_support::redis::RedisServer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

type Echo =
    tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, std::convert::Infallible>>>;

fn echo() -> Echo {
    service_fn(|x: u32| std::future::ready(Ok(x)))
}

async fn side(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits (real time, bounded) until `f` holds.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

/// Offers calls as fast as a replica can until `until`; returns admitted.
async fn offer(layer: RedisBudgetLayer, until: Instant) -> u64 {
    let mut svc = layer.layer(echo());
    let mut admitted = 0;
    while Instant::now() < until {
        match svc.ready().await.unwrap().call(1).await {
            Ok(_) => admitted += 1,
            Err(e) => {
                let r = Rejection::find(&*e).expect("a seawall rejection");
                assert_eq!(r.kind(), RejectionKind::BudgetExhausted);
                tokio::time::sleep(r.retry_after().unwrap().min(Duration::from_millis(2))).await;
            }
        }
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_budget_atomically() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cfg = RedisBudgetLayer::builder()
        .url(server.url())
        .name("atomic")
        .rate(200)
        .burst(20)
        .lease_share(0.25)
        .into_config();
    let replicas: Vec<_> = (0..3)
        .map(|_| RedisBudgetLayer::from_config(&cfg).unwrap())
        .collect();
    let start = Instant::now();
    let until = start + Duration::from_millis(1500);
    let tasks: Vec<_> = replicas
        .iter()
        .map(|l| tokio::spawn(offer(l.clone(), until)))
        .collect();
    let mut total = 0;
    let mut each = Vec::new();
    for t in tasks {
        let n = t.await.unwrap();
        each.push(n);
        total += n;
    }
    let secs = start.elapsed().as_secs_f64();
    // GCRA bound: burst + rate × T, plus each replica's lease/credit (k = 5).
    let bound = 20.0 + 200.0 * secs + 3.0 * 5.0;
    assert!(
        (total as f64) <= bound,
        "admitted {total} > {bound:.0} in {secs:.2}s"
    );
    assert!(
        (total as f64) >= 0.7 * 200.0 * 1.5,
        "admitted only {total} ({each:?}) in {secs:.2}s"
    );
    // Every replica got a share: one budget, not one replica's.
    assert!(each.iter().all(|&n| n > 30), "shares {each:?}");
    for l in &replicas {
        assert_eq!(l.backend(), Backend::Redis);
        assert!(l.stats().last_error.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasing_makes_far_fewer_round_trips_than_calls() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let layer = RedisBudgetLayer::builder()
        .url(server.url())
        .name("lease")
        .rate(10_000)
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_millis(500);
    let admitted = offer(layer.clone(), until).await;
    let stats = layer.stats();
    assert_eq!(stats.admitted, admitted);
    assert!(admitted > 500, "admitted {admitted}");
    assert!(
        stats.round_trips_per_call() < 0.2,
        "{} round trips for {} calls",
        stats.round_trips,
        stats.admitted
    );
    assert!(stats.leased > 0);
    assert!(layer.lease_size() > 1, "lease {}", layer.lease_size());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_at_the_gcra_horizon_and_share_a_hash_tag() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let cfg = RedisBudgetLayer::builder()
        .url(server.url())
        .name("tenants")
        .rate(10)
        .burst(2)
        .into_config();
    let layer = RedisKeyedBudgetLayer::new(|t: &&'static str| *t, &cfg).unwrap();
    let mut svc = layer.layer(service_fn(|t: &'static str| async move {
        Ok::<_, std::convert::Infallible>(t)
    }));
    // Spend "a" until it is refused; the refusal names the key.
    let mut refused = None;
    for _ in 0..200 {
        match svc.ready().await.unwrap().call("a").await {
            Ok(_) => {}
            Err(e) => {
                let r = Rejection::find(&*e).unwrap();
                if r.key() == Some("a") && r.retry_after() > Some(Duration::from_millis(5)) {
                    refused = Some(r.retry_after().unwrap());
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let retry_after = refused.expect("key a was refused");
    assert!(retry_after <= Duration::from_millis(300), "{retry_after:?}");
    // Another key has its own budget.
    assert_eq!(svc.ready().await.unwrap().call("b").await.unwrap(), "b");
    assert_eq!(layer.stats().keys, 2);
    let mut con = side(&server.url()).await;
    let mut ok = false;
    for _ in 0..100 {
        let pttl: i64 = redis::cmd("PTTL")
            .arg("seawall:{tenants}:a")
            .query_async(&mut con)
            .await
            .unwrap();
        // Expires when the bucket is full again: within burst / rate = 200ms.
        if pttl > 0 {
            assert!(pttl <= 300, "pttl {pttl}");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(ok, "the key has a TTL");
    // Both keys hash to the same cluster slot.
    let slot = |k: &str| {
        let tag = &k[k.find('{').unwrap() + 1..k.find('}').unwrap()];
        tag.to_owned()
    };
    assert_eq!(slot("seawall:{tenants}:a"), slot("seawall:{tenants}:b"));
    // Untouched, the keys disappear.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("seawall:*")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(left.is_empty(), "left {left:?}");
}

/// One call (ready + call + response); records the slowest, in µs.
async fn timed_call(
    svc: &mut seawall_budget_redis::RedisBudget<Echo>,
    slowest: &AtomicU64,
) -> bool {
    let t = Instant::now();
    let r = svc.ready().await.unwrap().call(1).await;
    slowest.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
    r.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_within_a_timeout_and_comes_back() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(250);
    let layer = RedisBudgetLayer::builder()
        .url(server.url())
        .name("faults")
        .rate(1000)
        .redis_timeout(timeout)
        .probe_interval(Duration::from_millis(100))
        .fallback(FallbackPolicy::Local { share: 0.5 })
        .build()
        .unwrap();
    let mut svc = layer.layer(echo());
    let slowest = Arc::new(AtomicU64::new(0));
    for _ in 0..200 {
        timed_call(&mut svc, &slowest).await;
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    assert_eq!(layer.backend(), Backend::Redis);
    server.stop();
    let killed = Instant::now();
    let mut admitted_after = 0;
    while layer.backend() == Backend::Redis && killed.elapsed() < Duration::from_secs(2) {
        if timed_call(&mut svc, &slowest).await {
            admitted_after += 1;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    assert_eq!(layer.backend(), Backend::Fallback);
    let switched = killed.elapsed();
    // Calls keep flowing under the local fallback.
    for _ in 0..50 {
        if timed_call(&mut svc, &slowest).await {
            admitted_after += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        admitted_after > 20,
        "admitted {admitted_after} after the stop"
    );
    // A Reject call never waits on Redis: each took far less than a timeout.
    let worst = Duration::from_micros(slowest.load(Ordering::Relaxed));
    assert!(worst < timeout, "a call took {worst:?}");
    assert!(switched < timeout * 5, "switched after {switched:?}");
    let stats = layer.stats();
    assert_eq!(stats.fallbacks, 1);
    let err = stats.last_error.expect("the error is kept");
    assert!(matches!(
        err,
        RedisBudgetError::Redis(_) | RedisBudgetError::Timeout(_)
    ));

    server.restart();
    let back = eventually(Duration::from_secs(3), || layer.backend() == Backend::Redis).await;
    assert!(back, "the shared budget resumes");
    let leased = layer.stats().leased;
    for _ in 0..100 {
        timed_call(&mut svc, &slowest).await;
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    assert!(
        eventually(Duration::from_secs(1), || layer.stats().leased > leased).await,
        "leases again after the restart (script reloaded)"
    );
    assert_eq!(layer.stats().fallbacks, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_mode_paces_and_never_hangs_on_a_dead_redis() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(100);
    let layer = RedisBudgetLayer::builder()
        .url(server.url())
        .name("wait")
        .rate(50)
        .burst(1)
        .mode(BudgetMode::Wait)
        .redis_timeout(timeout)
        .fallback(FallbackPolicy::FailOpen)
        .build()
        .unwrap();
    let svc = layer.layer(echo());
    let t = Instant::now();
    for i in 0..10 {
        assert_eq!(svc.clone().oneshot(i).await.unwrap(), i);
    }
    let paced = t.elapsed();
    // 50/s, no burst: about 20ms apart (wide margins).
    assert!(paced >= Duration::from_millis(100), "took {paced:?}");
    assert!(paced < Duration::from_secs(3), "took {paced:?}");

    server.stop();
    let t = Instant::now();
    for i in 0..20 {
        let one = Instant::now();
        assert_eq!(svc.clone().oneshot(i).await.unwrap(), i);
        assert!(one.elapsed() < timeout * 3, "waited {:?}", one.elapsed());
    }
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(layer.backend(), Backend::Fallback);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_is_loaded_again() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let layer = RedisBudgetLayer::builder()
        .url(server.url())
        .name("flush")
        .rate(100)
        .build()
        .unwrap();
    let until = Instant::now() + Duration::from_millis(200);
    offer(layer.clone(), until).await;
    let before = layer.stats();
    let mut con = side(&server.url()).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_millis(300);
    offer(layer.clone(), until).await;
    let after = layer.stats();
    assert!(after.admitted > before.admitted, "{before:?} {after:?}");
    assert!(
        after.round_trips > before.round_trips + 2,
        "{before:?} {after:?}"
    );
    assert_eq!(after.backend, Backend::Redis);
    let sha = redis::Script::new(seawall_budget_redis::GCRA_SCRIPT)
        .get_hash()
        .to_owned();
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, [true], "the script was loaded again");
    assert_eq!(after.fallbacks, 0, "NOSCRIPT is handled, not a fault");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_error_is_typed_and_keeps_its_source() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut con = side(&server.url()).await;
    // Someone else's data under the budget's key.
    let _: () = redis::cmd("LPUSH")
        .arg("seawall:{typed}")
        .arg("x")
        .query_async(&mut con)
        .await
        .unwrap();
    let layer = RedisBudgetLayer::builder()
        .url(server.url())
        .name("typed")
        .fallback(FallbackPolicy::FailClosed)
        .probe_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let err = layer.ping().await.unwrap_err();
    let redis_err = err.redis_error().expect("a redis error");
    assert!(std::error::Error::source(&err).is_some());
    assert!(redis_err.to_string().contains("WRONGTYPE"), "{redis_err}");
    // Calls see the fail-closed answer once the budget notices: the key's
    // own error, so the key falls back while Redis stays the backend.
    let mut svc = layer.layer(echo());
    let mut closed = None;
    for _ in 0..200 {
        if let Err(e) = svc.ready().await.unwrap().call(1).await
            && layer.stats().key_errors > 0
        {
            closed = Some(Rejection::find(&*e).unwrap().retry_after());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(closed, Some(Some(Duration::from_millis(50))));
    let stats = layer.stats();
    assert!(stats.last_error.unwrap().redis_error().is_some());
    assert_eq!(stats.backend, Backend::Redis);
    assert_eq!(stats.fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_holding_another_type_falls_back_alone() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut con = side(&server.url()).await;
    // Someone else's data under two keys' names: another type, and a
    // string that is not a TAT.
    let _: () = redis::cmd("HSET")
        .arg("seawall:{t}:victim")
        .arg("f")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("seawall:{t}:garbage")
        .arg("not a number")
        .query_async(&mut con)
        .await
        .unwrap();
    let cfg = RedisBudgetLayer::builder()
        .url(server.url())
        .name("t")
        .rate(1000)
        .burst(100)
        .fallback(FallbackPolicy::FailClosed)
        .probe_interval(Duration::from_millis(100))
        .into_config();
    let layer = RedisKeyedBudgetLayer::new(|k: &&'static str| *k, &cfg).unwrap();
    let svc = layer.layer(service_fn(|k: &'static str| async move {
        Ok::<_, std::convert::Infallible>(k)
    }));
    let keys = ["a", "victim", "b", "garbage", "c"];
    let mut served = [0u32; 5];
    let mut refused_bad = 0;
    let mut good_refused = 0;
    let start = Instant::now();
    // Every key's refill goes out in one pipeline: the two bad replies must
    // not fail the three good ones.
    while start.elapsed() < Duration::from_millis(600) {
        for (i, k) in keys.iter().enumerate() {
            match svc.clone().oneshot(*k).await {
                Ok(_) => served[i] += 1,
                Err(e) if matches!(*k, "victim" | "garbage") => {
                    let r = Rejection::find(&*e).unwrap();
                    // Fail-closed for this key alone: the probe interval.
                    if r.retry_after() == Some(Duration::from_millis(100)) {
                        refused_bad += 1;
                    }
                }
                // A good key may be refused while its very first lease is on
                // its way on a slow machine; it must not be refused often.
                Err(_) => good_refused += 1,
            }
        }
        assert_eq!(layer.backend(), Backend::Redis, "the backend stays Redis");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = layer.stats();
    assert_eq!(stats.backend, Backend::Redis);
    assert_eq!(stats.fallbacks, 0, "{stats:?}");
    assert!(stats.key_errors >= 2, "{stats:?}");
    assert!(
        refused_bad > 20,
        "bad keys refused {refused_bad}, {served:?}"
    );
    // A good key went on leasing: far more calls than one credit's worth.
    assert!(
        served[0] > 50 && served[2] > 50 && served[4] > 50,
        "{served:?}"
    );
    let good = served[0] + served[2] + served[4];
    assert!(
        good_refused * 10 < good,
        "{good_refused} refusals of good keys, {served:?}"
    );
    // ... from Redis: every call of a good key was leased there, but for at
    // most one lease of credit (k ≤ 10) per key not yet settled.
    assert!(stats.leased + 30 >= u64::from(good), "{stats:?} {served:?}");
    // Repaired, the victim comes back to Redis within a probe interval.
    let _: () = redis::cmd("DEL")
        .arg("seawall:{t}:victim")
        .query_async(&mut con)
        .await
        .unwrap();
    let mut back = false;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        if svc.clone().oneshot("victim").await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(back, "the repaired key is served again");
    assert_eq!(layer.stats().fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_task_ends_with_the_layer() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut con = side(&server.url()).await;
    let clients = |info: String| -> u32 {
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    let before: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut con)
        .await
        .unwrap();
    let before = clients(before);
    let layer = RedisBudgetLayer::builder()
        .url(server.url())
        .name("task")
        .build()
        .unwrap();
    let svc = layer.layer(echo());
    svc.clone().oneshot(1).await.unwrap();
    let mut during = before;
    for _ in 0..100 {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut con)
            .await
            .unwrap();
        during = clients(info);
        if during > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(during > before, "the layer connected");
    drop(svc);
    drop(layer);
    let mut after = during;
    for _ in 0..200 {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut con)
            .await
            .unwrap();
        after = clients(info);
        if after == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(after, before, "the task and its connection are gone");
}

#[tokio::test(flavor = "current_thread")]
async fn refills_of_many_keys_share_round_trips() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // One token a minute: each key's GCRA state lives (PEXPIRE at its
    // horizon) long enough to be listed below, however slow the machine.
    let cfg = RedisBudgetLayer::builder()
        .url(server.url())
        .name("many")
        .rate(1)
        .per(Duration::from_secs(60))
        .into_config();
    let layer = RedisKeyedBudgetLayer::new(|k: &u32| *k, &cfg).unwrap();
    layer.ping().await.unwrap();
    let mut svc = layer.layer(service_fn(|k: u32| async move {
        Ok::<_, std::convert::Infallible>(k)
    }));
    // The calls do not yield, so every key's refill is queued before the
    // background task runs: they go out in pipelines of up to 64.
    for k in 0..100 {
        assert_eq!(svc.ready().await.unwrap().call(k).await.unwrap(), k);
    }
    let settled = eventually(Duration::from_secs(2), || layer.stats().leased >= 100).await;
    assert!(settled, "{:?}", layer.stats());
    let stats = layer.stats();
    assert_eq!(stats.keys, 100);
    assert!(stats.round_trips <= 10, "{} round trips", stats.round_trips);
    let mut con = side(&server.url()).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("seawall:{many}:*")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(keys.len(), 100);
}

/// A TCP relay between one replica and Redis, which the test can sever
/// (every connection through it is dropped and new ones refused) and
/// restore: a network partition of that replica alone.
struct Relay {
    url: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(redis_port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let cut = cut.clone();
            let conns = conns.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut out) =
                            tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                    });
                    conns.lock().unwrap().push(task);
                }
            }
        });
        Relay {
            url,
            cut,
            conns,
            accept,
        }
    }

    fn sever(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.sever();
        self.accept.abort();
    }
}

/// Offers calls as fast as a replica can until `stop`; returns admitted.
async fn offer_until(layer: RedisBudgetLayer, stop: Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let mut svc = layer.layer(echo());
    let mut admitted = 0;
    while !stop.load(Ordering::SeqCst) {
        match svc.ready().await.unwrap().call(1).await {
            Ok(_) => admitted += 1,
            Err(e) => {
                let r = Rejection::find(&*e).expect("a seawall rejection");
                tokio::time::sleep(r.retry_after().unwrap().min(Duration::from_millis(2))).await;
            }
        }
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_pays_back_what_its_fallback_admitted() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let relay = Relay::start(server.port()).await;
    let (rate, burst, share) = (300u32, 30u32, 1.0 / 3.0);
    let cfg = |url: String| {
        RedisBudgetLayer::builder()
            .url(url)
            .name("partial")
            .rate(rate)
            .burst(burst)
            .lease_share(0.1) // k ≤ 3
            .fallback(FallbackPolicy::Local { share })
            .redis_timeout(Duration::from_millis(100))
            .probe_interval(Duration::from_millis(100))
            .into_config()
    };
    let direct: Vec<_> = (0..2)
        .map(|_| RedisBudgetLayer::from_config(&cfg(server.url())).unwrap())
        .collect();
    let cut_off = RedisBudgetLayer::from_config(&cfg(relay.url.clone())).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = direct
        .iter()
        .chain([&cut_off])
        .map(|l| tokio::spawn(offer_until(l.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.sever();
    let fell_back = eventually(Duration::from_secs(2), || {
        cut_off.backend() == Backend::Fallback
    })
    .await;
    assert!(fell_back, "the cut-off replica falls back");
    let admitted_at_cut = cut_off.stats().admitted;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_fallback = cut_off.stats().admitted - admitted_at_cut;
    relay.restore();
    let back = eventually(Duration::from_secs(3), || {
        cut_off.backend() == Backend::Redis
    })
    .await;
    assert!(back, "the cut-off replica comes back");
    // Long enough for the debt charged at reconnection to be paid off.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut each = Vec::new();
    for t in tasks {
        each.push(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    let total: u64 = each.iter().sum();
    // The documented bound over a window that starts and ends with every
    // replica connected and its fallback admissions charged: the GCRA bound
    // plus one lease per replica. Plus the local burst the cut-off replica
    // spent at once, and 5% for scheduling on a loaded machine.
    let k = 3.0;
    let bound = f64::from(burst) + f64::from(rate) * secs + 3.0 * k;
    let allowed = bound * 1.05 + (f64::from(burst) * share).ceil();
    eprintln!(
        "partial outage: admitted {total} ({each:?}) in {secs:.2}s, {by_fallback} by the \
         fallback; bound {bound:.0}, rate × T = {:.0}",
        f64::from(rate) * secs
    );
    assert!(
        by_fallback > 50,
        "the cut-off replica kept serving: {by_fallback}"
    );
    assert!(
        (total as f64) <= allowed,
        "admitted {total} ({each:?}) in {secs:.2}s > {allowed:.0}"
    );
    assert!(
        (total as f64) >= 0.6 * f64::from(rate) * secs,
        "admitted only {total} ({each:?}) in {secs:.2}s"
    );
    for l in &direct {
        assert_eq!(l.stats().fallbacks, 0, "a connected replica fell back");
    }
    assert_eq!(cut_off.stats().fallbacks, 1);
}

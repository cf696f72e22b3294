//! The shared budget on a Redis Cluster, through Sentinel, and over TLS with
//! an ACL user: real `redis-server` processes on 127.0.0.1, started (and
//! killed) by the tests. Real time, since Redis's clock is real: short runs,
//! wide margins where the machine's speed matters, none where it does not.
//!
//! The full-size Cluster run (10 000 tenants) is `#[ignore]`d for time:
//! `cargo test -p seawall-budget-redis --all-features --test deployments -- --ignored --nocapture`.

mod support;

/// The deployments run one at a time: each starts several servers and
/// loads the machine, and the accuracy and timing checks hold against load
/// from elsewhere, not against each other's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use seawall_budget_redis::{
    Backend, Deployment, FallbackPolicy, RedisBudgetLayer, RedisKeyedBudgetLayer, TlsConfig,
};
use seawall_core::{KeyMapConfig, Rejection, RejectionKind};
use support::{Cluster, Sentinel, TlsServer, cli, wait_for};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

type Echo =
    tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, std::convert::Infallible>>>;

fn echo() -> Echo {
    service_fn(|x: u32| std::future::ready(Ok(x)))
}

/// What one Cluster run measured.
struct ClusterRun {
    /// Per tenant: admitted in the window / (rate × window).
    worst_low: f64,
    worst_high: f64,
    mean: f64,
    round_trips_per_call: f64,
    /// `EVALSHA` calls per primary.
    per_node: Vec<u64>,
    slowest_call: Duration,
    /// Calls offered in the window / (3 × rate × window × tenants): below 1
    /// when the machine could not offer the full rate.
    offered: f64,
}

/// `tenants` keys, three layers (replicas), each offering every tenant
/// `rate` calls a second (so three times what the budget admits) for
/// `warmup + window`; counts what is admitted per tenant in the window.
async fn cluster_run(
    cluster: &Cluster,
    tenants: u32,
    rate: u32,
    warmup: Duration,
    window: Duration,
) -> ClusterRun {
    let cfg = RedisBudgetLayer::builder()
        .name("tenants")
        .rate(rate)
        // A few tokens of burst absorb the gaps between discrete offers and
        // a refill delayed by a busy machine (a token due meanwhile is not
        // lost); a lease stays one token.
        .burst(rate.clamp(3, 5))
        .deployment(Deployment::Cluster {
            nodes: cluster.urls(),
        })
        .key_slots(64)
        .redis_timeout(Duration::from_millis(500))
        .keys(KeyMapConfig::new().capacity(tenants as usize * 2))
        .into_config();
    let replicas: Vec<_> = (0..3)
        .map(|_| RedisKeyedBudgetLayer::new(|t: &u32| *t, &cfg).unwrap())
        .collect();
    let primaries = cluster.primaries();
    let before: Vec<u64> = primaries
        .iter()
        .map(|&i| cluster.evalsha_calls(i))
        .collect();
    let counts: Arc<Vec<AtomicU32>> = Arc::new((0..tenants).map(|_| AtomicU32::new(0)).collect());
    let slowest = Arc::new(AtomicU64::new(0));
    let offered = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (from, until) = (start + warmup, start + warmup + window);
    let tick = Duration::from_secs(1) / rate;
    let tasks: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(r, layer)| {
            let mut svc = layer.layer(echo());
            let counts = counts.clone();
            let slowest = slowest.clone();
            let offered = offered.clone();
            tokio::spawn(async move {
                // Replicas start out of phase, as real ones would.
                let mut next = start + tick * r as u32 / 3;
                // Each tick's calls are spread over the tick in slices, as
                // independent clients' calls would be.
                let slices = tenants.div_ceil(250).max(1);
                while next < until {
                    for t in 0..tenants {
                        if t % 250 == 0 {
                            tokio::time::sleep_until(next + tick * (t / 250) / slices).await;
                        }
                        let counting = Instant::now() >= from;
                        if counting && Instant::now() < until {
                            offered.fetch_add(1, Ordering::Relaxed);
                        }
                        let begun = Instant::now();
                        let r = svc.ready().await.unwrap().call(t).await;
                        slowest.fetch_max(begun.elapsed().as_micros() as u64, Ordering::Relaxed);
                        match r {
                            Ok(_) if counting && Instant::now() < until => {
                                counts[t as usize].fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                let r = Rejection::find(&*e).expect("a seawall rejection");
                                assert_eq!(r.kind(), RejectionKind::BudgetExhausted);
                            }
                        }
                    }
                    next += tick;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let expected = f64::from(rate) * window.as_secs_f64();
    let ratios: Vec<f64> = counts
        .iter()
        .map(|c| f64::from(c.load(Ordering::Relaxed)) / expected)
        .collect();
    let (mut admitted, mut round_trips) = (0, 0);
    for l in &replicas {
        let s = l.stats();
        assert_eq!(s.backend, Backend::Redis, "{s:?}");
        assert_eq!(s.key_errors, 0, "{s:?}");
        admitted += s.admitted;
        round_trips += s.round_trips;
    }
    ClusterRun {
        worst_low: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        worst_high: ratios.iter().copied().fold(0.0, f64::max),
        mean: ratios.iter().sum::<f64>() / ratios.len() as f64,
        round_trips_per_call: round_trips as f64 / admitted.max(1) as f64,
        per_node: primaries
            .iter()
            .zip(before)
            .map(|(&i, b)| cluster.evalsha_calls(i) - b)
            .collect(),
        slowest_call: Duration::from_micros(slowest.load(Ordering::Relaxed)),
        offered: offered.load(Ordering::Relaxed) as f64 / (3.0 * expected * f64::from(tenants)),
    }
}

/// `tolerance`: how far from the rate a tenant may land (0.05 for the
/// full-size proof; wider for the short run on a shared CI machine, where
/// 8 s of a busy scheduler is a coarser clock).
fn check_cluster_run(run: &ClusterRun, tenants: u32, tolerance: f64) {
    let total: u64 = run.per_node.iter().sum();
    eprintln!(
        "cluster, {tenants} tenants, 3 replicas: per-tenant admitted/expected in \
         [{:.3}, {:.3}] (mean {:.3}); {:.4} round trips per admitted call; EVALSHA per \
         primary {:?}; slowest call {:?}; offered {:.2} of the full rate",
        run.worst_low,
        run.worst_high,
        run.mean,
        run.round_trips_per_call,
        run.per_node,
        run.slowest_call,
        run.offered
    );
    assert!(
        run.worst_low >= 1.0 - tolerance && run.worst_high <= 1.0 + tolerance,
        "per-tenant accuracy outside ±{:.0}%: [{:.3}, {:.3}]",
        tolerance * 100.0,
        run.worst_low,
        run.worst_high
    );
    assert!(
        run.round_trips_per_call <= 0.1,
        "{} round trips per admitted call",
        run.round_trips_per_call
    );
    assert_eq!(run.per_node.len(), 3);
    for &n in &run.per_node {
        // Spread: every primary serves a fair part (a third, ±40%).
        assert!(n * 5 >= total, "EVALSHA per primary {:?}", run.per_node);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_budget_spreads_over_a_cluster_and_holds_per_tenant() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = Cluster::start(3, 0) else {
        return;
    };
    let run = cluster_run(
        &cluster,
        1_000,
        10,
        // Long enough to spend the initial burst first.
        Duration::from_secs(2),
        Duration::from_secs(8),
    )
    .await;
    check_cluster_run(&run, 1_000, 0.08);
}

/// The full-size proof: 10 000 tenants at one call a second each, counted
/// over a minute and a half (about 100 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 10 000 tenants; run with --ignored"]
async fn ten_thousand_tenants_on_a_cluster() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = Cluster::start(3, 0) else {
        return;
    };
    let run = cluster_run(
        &cluster,
        10_000,
        1,
        Duration::from_secs(5),
        Duration::from_secs(90),
    )
    .await;
    check_cluster_run(&run, 10_000, 0.05);
}

/// Offers calls of `tenants` keys, round after round, until `stop`; counts
/// admitted calls, and the slowest call.
async fn offer_keys(
    layer: RedisKeyedBudgetLayer<fn(&u32) -> u32, u32>,
    tenants: u32,
    stop: Arc<AtomicBool>,
    slowest: Arc<AtomicU64>,
) -> u64 {
    let mut svc = layer.layer(echo());
    let mut admitted = 0;
    while !stop.load(Ordering::Relaxed) {
        for t in 0..tenants {
            let begun = Instant::now();
            if svc.ready().await.unwrap().call(t).await.is_ok() {
                admitted += 1;
            }
            slowest.fetch_max(begun.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    admitted
}

fn tenant(t: &u32) -> u32 {
    *t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_run_is_its_keys_outage_until_its_replica_takes_over() {
    let _serial = SERIAL.lock().await;
    let Some(mut cluster) = Cluster::start(3, 1) else {
        return;
    };
    let timeout = Duration::from_millis(200);
    let cfg = RedisBudgetLayer::builder()
        .name("failover")
        .rate(100)
        .deployment(Deployment::Cluster {
            nodes: cluster.urls(),
        })
        .key_slots(64)
        .fallback(FallbackPolicy::FailClosed)
        .probe_interval(Duration::from_millis(200))
        .redis_timeout(timeout)
        .into_config();
    let layer = RedisKeyedBudgetLayer::new(tenant as fn(&u32) -> u32, &cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(offer_keys(
        layer.clone(),
        300,
        stop.clone(),
        slowest.clone(),
    ));
    assert!(
        support_eventually(Duration::from_secs(10), || layer.stats().admitted > 1_000).await,
        "{:?}",
        layer.stats()
    );
    // Every primary forgets the script (as a restart would): each node's
    // `NOSCRIPT` loads it again and its pipeline is sent again, no key fails.
    let primaries = cluster.primaries();
    for &i in &primaries {
        assert!(cli(cluster.nodes[i].port, &["SCRIPT", "FLUSH"]).contains("OK"));
    }
    let admitted = layer.stats().admitted;
    assert!(
        support_eventually(Duration::from_secs(10), || layer.stats().admitted
            > admitted + 1_000)
        .await,
        "{:?}",
        layer.stats()
    );
    assert_eq!(layer.stats().key_errors, 0, "{:?}", layer.stats());
    for &i in &primaries {
        let exists = cli(cluster.nodes[i].port, &["SCRIPT", "EXISTS", &sha()]);
        assert_eq!(exists.trim(), "1", "the script is back on node {i}");
    }
    // Kill one primary (as a crash would).
    let victim = primaries[0];
    cluster.nodes[victim].kill();
    // Its keys follow the fallback (fail closed) until its replica is
    // promoted; the other keys, and the backend, stay on Redis.
    assert!(
        support_eventually(Duration::from_secs(10), || layer.stats().key_errors > 0).await,
        "{:?}",
        layer.stats()
    );
    assert_eq!(layer.backend(), Backend::Redis);
    // The replica takes over (about the 1 s node timeout and an election).
    let began = Instant::now();
    assert!(
        wait_for(Duration::from_secs(20), || cluster.primaries().len() == 3),
        "no replica took over"
    );
    let promoted = began.elapsed();
    let errors = layer.stats().key_errors;
    // Then every key leases again: within a few probe intervals the key
    // errors stop, and calls are admitted.
    let mut settled = layer.stats().key_errors;
    let mut quiet = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = layer.stats().key_errors;
        if now == settled {
            quiet = true;
            break;
        }
        settled = now;
    }
    let resumed = began.elapsed();
    assert!(quiet, "key errors go on: {:?}", layer.stats());
    let admitted = layer.stats().admitted;
    assert!(
        support_eventually(Duration::from_secs(10), || layer.stats().admitted
            > admitted + 1_000)
        .await,
        "{:?}",
        layer.stats()
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    eprintln!(
        "cluster failover: replica promoted {promoted:?} after the kill was noticed, keys \
         settled by {resumed:?}; key errors {errors} at promotion, {settled} in all"
    );
    let s = layer.stats();
    assert_eq!(
        s.key_errors, settled,
        "keys failed after the promotion (before it: {errors}) {s:?}"
    );
    assert_eq!(s.backend, Backend::Redis);
    // No call waited on Redis at all, let alone past its timeout.
    let slowest = Duration::from_micros(slowest.load(Ordering::Relaxed));
    assert!(slowest < timeout, "a call took {slowest:?}");
}

/// The script's SHA1, as `SCRIPT LOAD` answers it.
fn sha() -> String {
    redis::Script::new(seawall_budget_redis::GCRA_SCRIPT)
        .get_hash()
        .to_owned()
}

/// Waits (real time, bounded) until `f` holds.
async fn support_eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed() {
    let _serial = SERIAL.lock().await;
    let Some(sentinel) = Sentinel::start() else {
        return;
    };
    let timeout = Duration::from_millis(200);
    let probe = Duration::from_millis(200);
    let layer = RedisBudgetLayer::builder()
        .name("sentinel")
        .rate(1_000)
        .deployment(Deployment::Sentinel {
            master: Sentinel::MASTER.to_owned(),
            sentinels: vec![sentinel.url()],
        })
        .fallback(FallbackPolicy::FailClosed)
        .probe_interval(probe)
        .redis_timeout(timeout)
        .build()
        .unwrap();
    layer
        .ping()
        .await
        .expect("the primary answers through the sentinel");
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let task = {
        let (layer, stop, slowest) = (layer.clone(), stop.clone(), slowest.clone());
        tokio::spawn(async move {
            let mut svc = layer.layer(echo());
            while !stop.load(Ordering::Relaxed) {
                let begun = Instant::now();
                let _ = svc.ready().await.unwrap().call(1).await;
                slowest.fetch_max(begun.elapsed().as_micros() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    assert!(support_eventually(Duration::from_secs(5), || layer.stats().admitted > 100).await);
    let old = sentinel.primary.port;
    let leased_before = layer.stats().leased;
    let began = Instant::now();
    let answer = cli(
        sentinel.sentinel.port,
        &["SENTINEL", "FAILOVER", Sentinel::MASTER],
    );
    assert!(answer.contains("OK"), "SENTINEL FAILOVER: {answer}");
    assert!(
        wait_for(Duration::from_secs(20), || sentinel.primary_port()
            == Some(sentinel.replica.port)),
        "the sentinel did not promote the replica"
    );
    // The budget follows: it leases from the new primary (its key is
    // written there), on Redis again.
    let new = sentinel.replica.port;
    let followed = support_eventually(Duration::from_secs(10), || {
        layer.backend() == Backend::Redis
            && layer.stats().leased > leased_before
            && cli(new, &["EXISTS", "seawall:{sentinel}"]).trim() == "1"
            && cli(new, &["ROLE"]).starts_with("master")
    })
    .await;
    let took = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    assert!(followed, "not followed: {:?}", layer.stats());
    eprintln!(
        "sentinel failover: the budget leases from the new primary {took:?} after SENTINEL FAILOVER \
         (old primary {old}, new {new}); stats {:?}",
        layer.stats()
    );
    let slowest = Duration::from_micros(slowest.load(Ordering::Relaxed));
    assert!(slowest < timeout, "a call took {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_an_acl_user_and_no_secret_in_print() {
    let _serial = SERIAL.lock().await;
    let Some(tls) = TlsServer::start() else {
        return;
    };
    let builder = RedisBudgetLayer::builder()
        .url(tls.url())
        .name("tls")
        .rate(1_000)
        .username(TlsServer::USER)
        .password(TlsServer::PASSWORD)
        .tls(TlsConfig::new().ca_file(&tls.ca))
        .redis_timeout(Duration::from_millis(500));
    let layer = builder.clone().build().unwrap();
    layer.ping().await.expect("TLS, CA checked, ACL user");
    let svc = layer.clone().layer(echo());
    for i in 0..50 {
        let _ = svc.clone().oneshot(i).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        support_eventually(Duration::from_secs(5), || layer.stats().leased > 0).await,
        "{:?}",
        layer.stats()
    );
    assert_eq!(layer.backend(), Backend::Redis);
    for printed in [
        format!("{layer:?}"),
        format!("{builder:?}"),
        format!("{:?}", layer.stats()),
    ] {
        assert!(!printed.contains(TlsServer::PASSWORD), "{printed}");
    }

    // A wrong password: the error, kept and printed, holds no secret.
    let wrong = "wrong-s3cret-pw";
    let bad = builder.clone().password(wrong).build().unwrap();
    let err = bad.ping().await.unwrap_err();
    for printed in [format!("{err}"), format!("{err:?}"), format!("{bad:?}")] {
        assert!(!printed.contains(wrong), "{printed}");
    }
    // A certificate from no trusted CA is refused...
    let untrusted = RedisBudgetLayer::builder()
        .url(tls.url())
        .username(TlsServer::USER)
        .password(TlsServer::PASSWORD)
        .redis_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(untrusted.ping().await.is_err());
    // ...unless the check is off, which a config must say in plain words.
    let insecure = RedisBudgetLayer::builder()
        .url(tls.url())
        .username(TlsServer::USER)
        .password(TlsServer::PASSWORD)
        .tls(TlsConfig::new().insecure_skip_verify(true))
        .redis_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    insecure.ping().await.expect("insecure_skip_verify");
    let fragment = RedisBudgetLayer::builder()
        .url(format!("{}/#insecure", tls.url()))
        .build()
        .unwrap_err();
    assert_eq!(fragment.field(), "url");
}

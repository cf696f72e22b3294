//! Hostile values in every field of the config: each build either fails
//! with a `ConfigError` that names the field and never prints the URL's
//! password, or makes layers that serve calls without panicking. No server:
//! the URL points where nothing listens, so the layers fall back.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_budget_redis::{
    BudgetMode, FallbackPolicy, RedisBudgetConfig, RedisBudgetLayer, RedisKeyedBudgetLayer,
};
use seawall_core::config::{MAX_CAPACITY, MAX_DURATION};
use seawall_test_support::service::Echo;
use tower::{Layer, Service};

const PASSWORD: &str = "hunter2-s3cret";

fn dead_url() -> String {
    let port = seawall_test_support::redis::free_port().unwrap();
    format!("redis://app:{PASSWORD}@127.0.0.1:{port}")
}

/// Polls `svc` as a caller would, by hand: ready, then call, a few times
/// (past the credit, so a `Wait` service arms its deadline). Never blocks.
fn serve<S: Service<u32>>(svc: &mut S, cx: &mut Context<'_>) {
    for i in 0..20 {
        match svc.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                let fut = pin!(svc.call(i));
                let _ = fut.poll(cx);
            }
            Poll::Ready(Err(_)) | Poll::Pending => return,
        }
    }
}

/// Builds every layer from `cfg`: each is an error without the password,
/// or serves calls.
fn try_all(what: &str, cfg: &RedisBudgetConfig, cx: &mut Context<'_>) -> bool {
    assert!(!format!("{cfg:?}").contains(PASSWORD), "{what}");
    let mut built = false;
    for mode in [BudgetMode::Reject, BudgetMode::Wait] {
        let mut cfg = cfg.clone();
        cfg.mode = mode;
        match RedisBudgetLayer::from_config(&cfg) {
            Ok(layer) => {
                built = true;
                assert!(!format!("{layer:?}").contains(PASSWORD), "{what}");
                serve(&mut layer.layer(Echo), cx);
            }
            Err(e) => {
                let text = format!("{e} {e:?}");
                assert!(!text.contains(PASSWORD), "{what}: {text}");
                assert!(text.len() < 2000, "{what}: {} bytes", text.len());
            }
        }
    }
    match RedisKeyedBudgetLayer::new(|x: &u32| *x, cfg) {
        Ok(layer) => {
            assert!(!format!("{layer:?}").contains(PASSWORD), "{what}");
            serve(&mut layer.layer(Echo), cx);
        }
        Err(e) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(PASSWORD), "{what}: {text}");
        }
    }
    built
}

#[tokio::test(flavor = "current_thread")]
async fn hostile_values_are_errors_or_served() {
    let mut base = RedisBudgetConfig::default();
    base.url = dead_url();
    let mut cx = Context::from_waker(Waker::noop());
    let durations = [
        Duration::ZERO,
        Duration::from_nanos(1),
        MAX_DURATION,
        MAX_DURATION + Duration::from_nanos(1),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ];
    type SetDuration = fn(&mut RedisBudgetConfig, Duration);
    let fields: [(&str, SetDuration); 5] = [
        ("per", |c, d| c.per = d),
        ("redis_timeout", |c, d| c.redis_timeout = d),
        ("probe_interval", |c, d| c.probe_interval = d),
        ("lease_interval", |c, d| c.lease_interval = d),
        ("keys.idle_ttl", |c, d| c.keys.idle_ttl = d),
    ];
    for (field, set) in fields {
        for d in durations {
            let mut cfg = base.clone();
            set(&mut cfg, d);
            let built = try_all(&format!("{field} = {d:?}"), &cfg, &mut cx);
            // Zero and anything past 365 days is refused by name (and a
            // `per` too short for 1000 calls, by `rate`).
            let ok = !d.is_zero()
                && d <= MAX_DURATION
                && !(field == "per" && d < Duration::from_micros(1));
            assert_eq!(built, ok, "{field} = {d:?}");
            if d.is_zero() || d > MAX_DURATION {
                assert_eq!(cfg.validate().unwrap_err().field(), field);
            }
        }
    }
    let shares = [
        0.0,
        -1.0,
        1e-300,
        1.0,
        1.0 + f64::EPSILON,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for s in shares {
        let ok = s > 0.0 && s <= 1.0;
        let mut cfg = base.clone();
        cfg.lease_share = s;
        assert_eq!(try_all(&format!("lease_share = {s}"), &cfg, &mut cx), ok);
        let mut cfg = base.clone();
        cfg.fallback = FallbackPolicy::Local { share: s };
        assert_eq!(try_all(&format!("share = {s}"), &cfg, &mut cx), ok);
    }
    for (rate, burst) in [
        (0, None),
        (1, Some(0)),
        (1, Some(u32::MAX)),
        (u32::MAX, None),
        (1_000_000_000, Some(u32::MAX)),
    ] {
        let mut cfg = base.clone();
        cfg.rate = rate;
        cfg.burst = burst;
        try_all(&format!("rate = {rate}, burst = {burst:?}"), &cfg, &mut cx);
    }
    for capacity in [0, 1, MAX_CAPACITY, MAX_CAPACITY + 1, usize::MAX] {
        let mut cfg = base.clone();
        cfg.keys.capacity = capacity;
        match RedisKeyedBudgetLayer::new(|x: &u32| *x, &cfg) {
            Ok(layer) => {
                assert!((1..=MAX_CAPACITY).contains(&capacity));
                serve(&mut layer.layer(Echo), &mut cx);
            }
            Err(e) => {
                assert!(!(1..=MAX_CAPACITY).contains(&capacity));
                assert_eq!(e.field(), "keys.capacity");
            }
        }
    }
    let long = "h".repeat(100_000);
    for url in [
        String::new(),
        "not a url".to_owned(),
        long.clone(),
        format!("redis://app:{PASSWORD}@{long}:6379"),
        format!("redis://:{PASSWORD}@127.0.0.1:1"),
        format!("redis://app:{PASSWORD}@127.0.0.1:1/notadb"),
        format!("rediss://app:{PASSWORD}@127.0.0.1:1"),
        format!("redis+unix:///nonexistent.sock?pass={PASSWORD}"),
        format!("unix:///nonexistent.sock?db=x&pass={PASSWORD}"),
        format!("app:{PASSWORD}@127.0.0.1:1"),
        format!("redis://app:{PASSWORD}@0.0.0.0:1"),
        format!("redis://app:{PASSWORD}@127.0.0.1:1/?protocol=9"),
    ] {
        let mut cfg = base.clone();
        cfg.url = url;
        try_all("url", &cfg, &mut cx);
    }
    for name in [String::new(), "{".to_owned(), "a}b".to_owned(), long] {
        let mut cfg = base.clone();
        cfg.name = name;
        try_all("name", &cfg, &mut cx);
    }
}

//! Per-call cost of the fallback layer and of peer selection against the
//! bare service, the keyed breaker and tower's `Steer`, in the same run.
//!
//! Every service answers `Ready` at once; each iteration is `poll_ready` +
//! `call` + one poll of the future with a noop waker (no runtime overhead).

use std::fmt;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use seawall_breaker::{BreakerConfig, KeyedBreakerLayer, PeerSelect};
use seawall_core::BoxError;
use seawall_fallback::{FallbackLayer, FallbackOn};
use tower::{Layer, Service};

/// A zero-sized error, so boxing it costs nothing.
#[derive(Debug, Clone, Copy)]
struct Refused;
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused")
    }
}
impl std::error::Error for Refused {}

#[derive(Clone, Copy)]
struct Bare {
    fail: bool,
}

impl Service<u64> for Bare {
    type Response = u64;
    type Error = Refused;
    type Future = Ready<Result<u64, Refused>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, x: u64) -> Self::Future {
        ready(if self.fail { Err(Refused) } else { Ok(x) })
    }
}

fn drive<S: Service<u64>>(svc: &mut S, cx: &mut Context<'_>, x: u64) -> bool {
    if !matches!(svc.poll_ready(cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let mut fut = pin!(svc.call(x));
    matches!(fut.as_mut().poll(cx), Poll::Ready(Ok(_)))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let mut cx = Context::from_waker(Waker::noop());

    let mut group = c.benchmark_group("fallback");
    let mut bare = Bare { fail: false };
    group.bench_function("bare", |b| {
        b.iter(|| drive(&mut bare, &mut cx, black_box(1)))
    });

    let layer = FallbackLayer::builder()
        .answer_with(|x: u64, _: BoxError| Ok::<_, Refused>(x))
        .build()
        .expect("valid");
    let mut svc = layer.layer(Bare { fail: false });
    group.bench_function("seawall_fallback_fn_success", |b| {
        b.iter(|| drive(&mut svc, &mut cx, black_box(1)))
    });

    let layer = FallbackLayer::builder()
        .on(FallbackOn::Failure)
        .service(Bare { fail: false })
        .build()
        .expect("valid");
    let mut svc = layer.layer(Bare { fail: false });
    group.bench_function("seawall_fallback_service_success", |b| {
        b.iter(|| drive(&mut svc, &mut cx, black_box(1)))
    });
    let mut svc = layer.layer(Bare { fail: true });
    group.bench_function("seawall_fallback_service_falling_back", |b| {
        b.iter(|| drive(&mut svc, &mut cx, black_box(1)))
    });
    group.finish();

    let mut group = c.benchmark_group("peer_select");
    let mut bare = Bare { fail: false };
    group.bench_function("bare", |b| {
        b.iter(|| drive(&mut bare, &mut cx, black_box(1)))
    });

    let keyed =
        KeyedBreakerLayer::new(|r: &u64| *r % 4, BreakerConfig::default().into()).expect("valid");
    let mut svc = keyed.layer(Bare { fail: false });
    group.bench_function("seawall_keyed_breaker_4_keys", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            drive(&mut svc, &mut cx, black_box(i))
        })
    });

    let keyed =
        KeyedBreakerLayer::new(|r: &u64| *r % 4, BreakerConfig::default().into()).expect("valid");
    let mut select = PeerSelect::builder(&keyed, |r: &u64| Some(*r % 4))
        .peers((0..4).map(|id| (id, Bare { fail: false })))
        .build()
        .expect("valid");
    group.bench_function("seawall_peer_select_4_preferred", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            drive(&mut select, &mut cx, black_box(i))
        })
    });
    keyed.force_open(0);
    group.bench_function("seawall_peer_select_4_preferred_open", |b| {
        b.iter(|| drive(&mut select, &mut cx, black_box(0)))
    });

    let mut steer = tower::steer::Steer::new(
        (0..4).map(|_| Bare { fail: false }).collect::<Vec<_>>(),
        |r: &u64, _: &[Bare]| (*r % 4) as usize,
    );
    group.bench_function("tower_steer_4", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            drive(&mut steer, &mut cx, black_box(i))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

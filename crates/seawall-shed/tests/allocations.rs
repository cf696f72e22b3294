//! Heap allocations per call, counted per thread by `CountingAlloc`: admit
//! path 0, the layer's reject path exactly 1 (the `Box` of `BoxError`), the
//! tower-free reject 0; the same with a pressure signal consulted on every
//! call. Every service is polled by hand on the test's own thread, so only
//! its allocations are counted, whatever else runs at the same time.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use seawall_shed::{
    Aimd, Limit, ManualPressure, PressureLevel, Priority, ShedConfig, ShedLayer, ShedRng, Shedder,
};
use seawall_test_support::{CountingAlloc, allocations, count};
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Clone)]
struct Bare;
impl Service<u32> for Bare {
    type Response = u32;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u32, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, x: u32) -> Self::Future {
        std::future::ready(Ok(x))
    }
}

/// One call driven by hand; returns whether it was admitted.
fn once<S: Service<u32>>(svc: &mut S, cx: &mut Context<'_>) -> bool {
    assert!(svc.poll_ready(cx).is_ready());
    once_called(svc, cx)
}

fn allocs_during(n: u64, mut f: impl FnMut()) -> u64 {
    allocations(|| {
        for _ in 0..n {
            f();
        }
    })
}

const N: u64 = 1000;

#[test]
fn allocations_per_call() {
    let mut cx = Context::from_waker(Waker::noop());

    // Admit path, fixed limit: 0.
    let layer = ShedLayer::fixed(10).unwrap();
    let mut svc = layer.layer(Bare);
    once(&mut svc, &mut cx); // warm up
    assert_eq!(allocs_during(N, || assert!(once(&mut svc, &mut cx))), 0);

    // Admit path with the band, priorities and an adaptive limit: 0.
    let layer = ShedLayer::builder()
        .limit(Limit::Aimd(Aimd::default()))
        .soft_limit(10)
        .critical_headroom(0.1)
        .priority(|_: &u32| Priority::Sheddable)
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare);
    once(&mut svc, &mut cx);
    assert_eq!(allocs_during(N, || assert!(once(&mut svc, &mut cx))), 0);

    // Admit path in queue mode with free slots: 0.
    let layer = ShedLayer::builder()
        .max_in_flight(10)
        .max_queue_delay(std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare);
    once(&mut svc, &mut cx);
    assert_eq!(allocs_during(N, || assert!(once(&mut svc, &mut cx))), 0);

    // Admit path with a pressure signal consulted (Elevated: Normal passes): 0.
    let pressure = ManualPressure::new();
    pressure.set(PressureLevel::Elevated);
    let layer = ShedLayer::builder()
        .max_in_flight(10)
        .pressure_signal(pressure.clone())
        .build()
        .unwrap();
    let mut svc = layer.layer(Bare);
    once(&mut svc, &mut cx);
    assert_eq!(allocs_during(N, || assert!(once(&mut svc, &mut cx))), 0);

    // Shed for pressure: the layer's 1 (the Box), the tower-free shedder's 0.
    pressure.set(PressureLevel::Severe);
    assert_eq!(allocs_during(N, || assert!(!once(&mut svc, &mut cx))), N);
    let shedder = layer.shedder();
    let mut rng = ShedRng::new(3);
    assert_eq!(
        allocs_during(N, || {
            assert!(shedder.try_acquire(Priority::Normal, &mut rng).is_err());
        }),
        0
    );
    assert_eq!(layer.stats().shed.memory_pressure, 2 * N);

    // Reject path of the layer: exactly 1 per call (the Box of BoxError).
    let layer = ShedLayer::fixed(1).unwrap();
    let shedder = layer.shedder();
    let mut rng = ShedRng::new(1);
    let held = shedder.try_acquire(Priority::Critical, &mut rng).unwrap();
    let mut svc = layer.layer(Bare);
    once(&mut svc, &mut cx);
    assert_eq!(allocs_during(N, || assert!(!once(&mut svc, &mut cx))), N);

    // Reject path of the tower-free shedder: 0.
    assert_eq!(
        allocs_during(N, || {
            assert!(shedder.try_acquire(Priority::Normal, &mut rng).is_err());
        }),
        0
    );
    drop(held);

    // The tower-free admit path: 0.
    let shedder = Shedder::new(&ShedConfig::default()).unwrap();
    assert_eq!(
        allocs_during(N, || {
            let p = shedder.try_acquire(Priority::Normal, &mut rng).unwrap();
            p.finish(seawall_core::Outcome::Success);
        }),
        0
    );
}

/// A queue of the largest capacity reserves nothing: building the layer
/// allocates a few hundred bytes, and waiting in the queue allocates only
/// for the waiters there are (DESIGN rule 4).
#[test]
fn the_queue_grows_as_it_fills() {
    use seawall_core::config::MAX_CAPACITY;
    use std::time::Duration;

    let mut layer = None;
    let built = count(|| {
        layer = Some(
            ShedLayer::builder()
                .max_in_flight(1)
                .max_queue_delay(Duration::from_secs(1))
                .queue_capacity(MAX_CAPACITY)
                .build()
                .unwrap(),
        );
    });
    let layer = layer.unwrap();
    assert!(
        built.bytes_retained() < 4096,
        "building reserved {} bytes",
        built.bytes_retained()
    );

    // One waiter: the queue grows by a handful of entries, not to its bound.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    let shedder = layer.shedder();
    let held = shedder
        .try_acquire(Priority::Critical, &mut ShedRng::new(1))
        .unwrap();
    let mut svc = layer.layer(Bare);
    let mut cx = Context::from_waker(Waker::noop());
    let waited = count(|| assert!(svc.poll_ready(&mut cx).is_pending()));
    assert_eq!(layer.stats().queued, 1);
    assert!(
        waited.bytes_retained() < 4096,
        "one waiter retained {} bytes",
        waited.bytes_retained()
    );
    drop(held);
    assert!(svc.poll_ready(&mut cx).is_ready());
    assert!(once_called(&mut svc, &mut cx));
}

/// `call` and poll after a `poll_ready` that returned `Ready`.
fn once_called<S: Service<u32>>(svc: &mut S, cx: &mut Context<'_>) -> bool {
    let fut = pin!(svc.call(1));
    match fut.poll(cx) {
        Poll::Ready(r) => r.is_ok(),
        Poll::Pending => panic!("ready service"),
    }
}

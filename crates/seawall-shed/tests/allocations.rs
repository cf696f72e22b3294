//! Heap allocations per call, counted per thread by `CountingAlloc`: admit
//! path 0, the layer's reject path exactly 1 (the `Box` of `BoxError`), the
//! tower-free reject 0; the same with a pressure signal consulted on every
//! call. Every service is polled by hand on the test's own thread, so only
//! its allocations are counted, whatever else runs at the same time.

use seawall_core::rand::SplitMix64;
use std::task::{Context, Waker};

use seawall_shed::{
    Aimd, Limit, ManualPressure, PressureLevel, Priority, ShedConfig, ShedLayer, Shedder,
};
use seawall_test_support::service::{Echo, call_ok, ready_call_ok};
use seawall_test_support::{CountingAlloc, allocations, count, runtime};
use tower::{Layer, Service};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

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
    // Admit path, fixed limit: 0.
    let layer = ShedLayer::fixed(10).unwrap();
    let mut svc = layer.layer(Echo);
    ready_call_ok(&mut svc, 1u32); // warm up
    assert_eq!(
        allocs_during(N, || assert!(ready_call_ok(&mut svc, 1u32))),
        0
    );

    // Admit path with the band, priorities and an adaptive limit: 0.
    let layer = ShedLayer::builder()
        .limit(Limit::Aimd(Aimd::default()))
        .soft_limit(10)
        .critical_headroom(0.1)
        .priority(|_: &u32| Priority::Sheddable)
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    ready_call_ok(&mut svc, 1u32);
    assert_eq!(
        allocs_during(N, || assert!(ready_call_ok(&mut svc, 1u32))),
        0
    );

    // Admit path in queue mode with free slots: 0.
    let layer = ShedLayer::builder()
        .max_in_flight(10)
        .max_queue_delay(std::time::Duration::from_millis(5))
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    ready_call_ok(&mut svc, 1u32);
    assert_eq!(
        allocs_during(N, || assert!(ready_call_ok(&mut svc, 1u32))),
        0
    );

    // Admit path with a pressure signal consulted (Elevated: Normal passes): 0.
    let pressure = ManualPressure::new();
    pressure.set(PressureLevel::Elevated);
    let layer = ShedLayer::builder()
        .max_in_flight(10)
        .pressure_signal(pressure.clone())
        .build()
        .unwrap();
    let mut svc = layer.layer(Echo);
    ready_call_ok(&mut svc, 1u32);
    assert_eq!(
        allocs_during(N, || assert!(ready_call_ok(&mut svc, 1u32))),
        0
    );

    // Shed for pressure: the layer's 1 (the Box), the tower-free shedder's 0.
    pressure.set(PressureLevel::Severe);
    assert_eq!(
        allocs_during(N, || assert!(!ready_call_ok(&mut svc, 1u32))),
        N
    );
    let shedder = layer.shedder();
    let mut rng = SplitMix64::new(3);
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
    let mut rng = SplitMix64::new(1);
    let held = shedder.try_acquire(Priority::Critical, &mut rng).unwrap();
    let mut svc = layer.layer(Echo);
    ready_call_ok(&mut svc, 1u32);
    assert_eq!(
        allocs_during(N, || assert!(!ready_call_ok(&mut svc, 1u32))),
        N
    );

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
    let rt = runtime::paused();
    let _guard = rt.enter();
    let shedder = layer.shedder();
    let held = shedder
        .try_acquire(Priority::Critical, &mut SplitMix64::new(1))
        .unwrap();
    let mut svc = layer.layer(Echo);
    let mut cx = Context::from_waker(Waker::noop());
    let waited = count(|| assert!(Service::<u32>::poll_ready(&mut svc, &mut cx).is_pending()));
    assert_eq!(layer.stats().queued, 1);
    assert!(
        waited.bytes_retained() < 4096,
        "one waiter retained {} bytes",
        waited.bytes_retained()
    );
    drop(held);
    assert!(Service::<u32>::poll_ready(&mut svc, &mut cx).is_ready());
    assert!(call_ok(&mut svc, 1u32));
}

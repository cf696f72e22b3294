//! Interleaved rounds (median of 31) of the same cases as `benches/shed.rs`
//! (and the tower-free shedder's admit path, without and with a signal),
//! less sensitive to a noisy machine than one criterion group after another.
//! `cargo bench --bench shed_rounds` prints ns/call; with an argument
//! (`bare`, `shed_admit`, ...) it runs only that case 1 000 000 times, for
//! `valgrind --tool=callgrind` instruction counts.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use seawall_shed::{
    ManualPressure, MemoryPressure, MemoryPressureConfig, PressureLevel, PressureSignal, Priority,
    ShedConfig, ShedLayer, ShedRng, Shedder,
};
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{Layer, Service};

#[derive(Clone)]
struct Bare;
impl Service<u64> for Bare {
    type Response = u64;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u64, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, x: u64) -> Self::Future {
        std::future::ready(Ok(x))
    }
}

#[inline(always)]
fn once<S: Service<u64>>(svc: &mut S, cx: &mut Context<'_>, x: u64) -> bool {
    if svc.poll_ready(cx).is_pending() {
        return false;
    }
    let fut = pin!(svc.call(x));
    match fut.poll(cx) {
        Poll::Ready(r) => r.is_ok(),
        Poll::Pending => false,
    }
}

type Case = Box<dyn FnMut(u64) -> u64>;

fn looped<S: Service<u64> + 'static>(mut svc: S, expect: bool) -> Case {
    Box::new(move |n| {
        let mut cx = Context::from_waker(Waker::noop());
        let mut ok = 0;
        for i in 0..n {
            if once(&mut svc, &mut cx, black_box(i)) == expect {
                ok += 1;
            }
        }
        ok
    })
}

fn cases() -> Vec<(&'static str, Case)> {
    let reject = ShedLayer::fixed(1).unwrap();
    let held = reject
        .shedder()
        .try_acquire(Priority::Critical, &mut ShedRng::new(1))
        .unwrap();
    let shedder = reject.shedder();
    let mut rng = ShedRng::new(2);
    let core: Case = Box::new(move |n| {
        let _held = &held;
        (0..n)
            .filter(|_| black_box(shedder.try_acquire(Priority::Normal, &mut rng).is_err()))
            .count() as u64
    });
    let severe = ManualPressure::new();
    severe.set(PressureLevel::Severe);
    // The sampler needs a runtime to be spawned on; it never runs here (the
    // runtime is not driven), so the level stays that of the first sample.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let memory = {
        let _in = rt.enter();
        MemoryPressure::start(&MemoryPressureConfig::default()).unwrap()
    };
    assert_eq!(memory.level(), PressureLevel::Normal);
    let with_signal = |signal: &dyn Fn(seawall_shed::ShedBuilder) -> seawall_shed::ShedBuilder| {
        signal(ShedLayer::builder().max_in_flight(1000))
            .build()
            .unwrap()
    };
    let core_admit = |shedder: Shedder| -> Case {
        let mut rng = ShedRng::new(3);
        Box::new(move |n| {
            (0..n)
                .filter(|_| black_box(shedder.try_acquire(Priority::Normal, &mut rng).is_ok()))
                .count() as u64
        })
    };
    let config = ShedConfig {
        limit: seawall_shed::Limit::Fixed(1000),
        ..ShedConfig::default()
    };
    vec![
        ("bare", looped(Bare, true)),
        (
            "shed_admit",
            looped(ShedLayer::fixed(1000).unwrap().layer(Bare), true),
        ),
        (
            "shed_admit_pressure_manual",
            looped(
                with_signal(&|b| b.pressure_signal(ManualPressure::new())).layer(Bare),
                true,
            ),
        ),
        (
            "shed_admit_pressure_memory",
            looped(
                with_signal(&|b| b.pressure_signal(memory.clone())).layer(Bare),
                true,
            ),
        ),
        (
            "shed_reject_pressure",
            looped(
                with_signal(&|b| b.pressure_signal(severe.clone())).layer(Bare),
                false,
            ),
        ),
        (
            "shedder_admit_core",
            core_admit(Shedder::new(&config).unwrap()),
        ),
        (
            "shedder_admit_core_pressure",
            core_admit(Shedder::with_pressure(&config, memory.clone()).unwrap()),
        ),
        ("shed_reject", looped(reject.layer(Bare), false)),
        ("shedder_reject_core", core),
        (
            "tower_concurrency_limit",
            looped(ConcurrencyLimitLayer::new(1000).layer(Bare), true),
        ),
        (
            "tower_load_shed_concurrency_limit",
            looped(
                LoadShedLayer::new().layer(ConcurrencyLimitLayer::new(1000).layer(Bare)),
                true,
            ),
        ),
    ]
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut cases = cases();
    if let Some(name) = only {
        for (n, f) in cases.iter_mut() {
            if *n == name {
                let n = 1_000_000;
                assert_eq!(f(n), n);
            }
        }
        return;
    }
    const ROUNDS: usize = 31;
    const N: u64 = 200_000;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in cases.iter_mut().enumerate() {
            let t = Instant::now();
            assert_eq!(f(N), N);
            times[i].push(t.elapsed().as_nanos() as f64 / N as f64);
        }
    }
    for (i, (name, _)) in cases.iter().enumerate() {
        let mut t = times[i].clone();
        t.sort_by(f64::total_cmp);
        println!("{name:<36} median {:>6.2} ns/call", t[ROUNDS / 2]);
    }
}

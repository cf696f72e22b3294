//! The tower layer: hard limit, band, priorities, readiness, drop safety.

use seawall_core::rand::SplitMix64;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::{BoxError, OverloadReason, Rejection};
use seawall_shed::{Limit, Priority, ShedConfig, ShedLayer, Shedder};
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt, service_fn};

fn reason(err: &BoxError) -> OverloadReason {
    match Rejection::find(&**err) {
        Some(Rejection::Overloaded(o)) => o.reason(),
        other => panic!("not an Overloaded: {other:?} ({err})"),
    }
}

/// Sleeps for the request's duration, then answers it.
fn sleeper() -> impl Service<
    Duration,
    Response = Duration,
    Error = Infallible,
    Future = impl Future<Output = Result<Duration, Infallible>> + Send,
> + Clone {
    service_fn(|d: Duration| async move {
        tokio::time::sleep(d).await;
        Ok::<_, Infallible>(d)
    })
}

const SLOW: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn hard_limit_is_exact_and_slots_come_back() {
    let layer = ShedLayer::fixed(5).unwrap();
    let mut svc = layer.layer(sleeper());
    let mut running = Vec::new();
    for _ in 0..5 {
        let mut f = task::spawn(svc.ready().await.unwrap().call(SLOW));
        assert_pending!(f.poll());
        running.push(f);
    }
    for _ in 0..3 {
        let mut f = task::spawn(svc.ready().await.unwrap().call(SLOW));
        let err = assert_ready!(f.poll()).unwrap_err();
        assert_eq!(reason(&err), OverloadReason::HardLimit);
        let Some(Rejection::Overloaded(o)) = Rejection::find(&*err) else {
            unreachable!()
        };
        assert_eq!(o.retry_after(), Some(Duration::from_millis(100)));
    }
    let s = layer.stats();
    assert_eq!(
        (s.in_flight, s.limit, s.admitted, s.shed.hard_limit),
        (5, 5, 5, 3)
    );

    // Dropping a running response future frees its slot at once.
    drop(running.pop());
    assert_eq!(layer.stats().in_flight, 4);
    let mut f = task::spawn(svc.ready().await.unwrap().call(SLOW));
    assert_pending!(f.poll());
    running.push(f);

    tokio::time::advance(SLOW).await;
    for mut f in running {
        assert_eq!(assert_ready_ok!(f.poll()), SLOW);
    }
    assert_eq!(layer.stats().in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_limit_holds_under_contention() {
    let layer = ShedLayer::fixed(3).unwrap();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let inner = service_fn(move |_: ()| {
        let (n, p) = (n.clone(), p.clone());
        async move {
            let c = n.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(c, Ordering::SeqCst);
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            n.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        }
    });
    let svc = layer.layer(inner);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..500 {
                let _ = svc.clone().oneshot(()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 3);
    let s = layer.stats();
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.admitted + s.shed.total(), 4000);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_future_is_rejected_at_once_and_holds_nothing() {
    let layer = ShedLayer::fixed(1).unwrap();
    let mut svc = layer.layer(sleeper());
    let mut held = task::spawn(svc.ready().await.unwrap().call(SLOW));
    assert_pending!(held.poll());
    let rejected = svc.ready().await.unwrap().call(SLOW);
    drop(rejected); // never polled
    assert_eq!(layer.stats().in_flight, 1);
    // A completed future's slot is released once, not again on drop.
    tokio::time::advance(SLOW).await;
    assert_ready_ok!(held.poll());
    drop(held);
    assert_eq!(layer.stats().in_flight, 0);
    assert_eq!(svc.oneshot(Duration::ZERO).await.unwrap(), Duration::ZERO);
    assert_eq!(layer.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_future_polled_again_errs_without_panicking() {
    let layer = ShedLayer::fixed(1).unwrap();
    let mut svc = layer.layer(sleeper());
    let mut held = task::spawn(svc.ready().await.unwrap().call(SLOW));
    assert_pending!(held.poll());
    let mut rejected = task::spawn(svc.ready().await.unwrap().call(SLOW));
    let first = assert_ready!(rejected.poll()).unwrap_err();
    assert_eq!(reason(&first), OverloadReason::HardLimit);
    // The error was handed over; a second poll breaks the future contract
    // and gets a plain error, not a second `Overloaded`, not a panic.
    let second = assert_ready!(rejected.poll()).unwrap_err();
    assert!(Rejection::find(&*second).is_none(), "{second}");
    assert!(second.to_string().contains("polled after completion"));
    assert_eq!(layer.stats().shed.hard_limit, 1);
}

/// An inner service that is never ready.
#[derive(Clone)]
struct NotReady;
impl Service<()> for NotReady {
    type Response = ();
    type Error = Infallible;
    type Future = std::future::Ready<Result<(), Infallible>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Pending
    }
    fn call(&mut self, _: ()) -> Self::Future {
        unreachable!("never ready")
    }
}

#[tokio::test]
async fn an_unready_inner_service_is_shed_like_load_shed() {
    let layer = ShedLayer::fixed(4).unwrap();
    let mut svc = layer.layer(NotReady);
    // poll_ready does not wait for the inner service.
    let mut ready = task::spawn(std::future::poll_fn(|cx| svc.poll_ready(cx)));
    assert_ready_ok!(ready.poll());
    drop(ready);
    let err = svc.call(()).await.unwrap_err();
    assert_eq!(reason(&err), OverloadReason::HardLimit);
    assert_eq!(layer.stats().in_flight, 0);
}

/// Holds `n` slots through Critical permits (which skip the band).
fn hold(shedder: &Shedder, n: usize) -> Vec<seawall_shed::Permit> {
    let mut rng = SplitMix64::new(0);
    (0..n)
        .map(|_| shedder.try_acquire(Priority::Critical, &mut rng).unwrap())
        .collect()
}

#[test]
fn probabilistic_band_matches_the_formula() {
    let soft = 40usize;
    let trials = 20_000u32;
    for seed in [1u64, 2, 3] {
        let shedder =
            Shedder::new(&ShedConfig::new().limit(Limit::Fixed(100)).soft_limit(soft)).unwrap();
        let mut rng = SplitMix64::new(seed);
        for n in [0usize, 30, 40, 44, 50, 60, 70, 79, 80, 95] {
            let held = hold(&shedder, n);
            let mut shed = 0u32;
            for _ in 0..trials {
                match shedder.try_acquire(Priority::Normal, &mut rng) {
                    Ok(p) => drop(p),
                    Err(o) => {
                        assert_eq!(o.reason(), OverloadReason::Probabilistic);
                        shed += 1;
                    }
                }
            }
            let p = (n as f64 / soft as f64 - 1.0).clamp(0.0, 1.0);
            let got = f64::from(shed) / f64::from(trials);
            // Five standard deviations, plus a hair for p in {0, 1}.
            let tol = 5.0 * (p * (1.0 - p) / f64::from(trials)).sqrt() + 1e-9;
            assert!(
                (got - p).abs() <= tol,
                "seed {seed} n {n}: shed {got}, formula {p}, tolerance {tol}"
            );
            drop(held);
        }
        assert_eq!(shedder.in_flight(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn the_layer_sheds_in_the_band_with_its_seed() {
    let run = |seed| async move {
        let layer = ShedLayer::builder()
            .max_in_flight(20)
            .soft_limit(10)
            .seed(seed)
            .build()
            .unwrap();
        let held = hold(&layer.shedder(), 15); // p = 0.5
        let mut svc = layer.layer(sleeper());
        let mut outcomes = Vec::new();
        for _ in 0..2000 {
            let r = svc.ready().await.unwrap().call(Duration::ZERO).await;
            outcomes.push(r.is_ok());
        }
        drop(held);
        let shed = layer.stats().shed.probabilistic;
        (outcomes, shed)
    };
    let (a, shed) = run(7).await;
    let (b, _) = run(7).await;
    assert_eq!(a, b, "same seed, same decisions");
    assert!((900..=1100).contains(&shed), "{shed} of 2000 at p = 0.5");
}

#[test]
fn priorities_shed_in_order_and_critical_headroom_holds() {
    // limit 10, headroom 20% = 2 slots for Critical, band from 6.
    let shedder = Shedder::new(
        &ShedConfig::new()
            .limit(Limit::Fixed(10))
            .soft_limit(6)
            .critical_headroom(0.2),
    )
    .unwrap();
    let mut rng = SplitMix64::new(3);
    let try_at = |n: usize, p: Priority, rng: &mut SplitMix64| {
        let held = hold(&shedder, n);
        let r = shedder
            .try_acquire(p, rng)
            .map(drop)
            .map_err(|o| o.reason());
        drop(held);
        r
    };
    use OverloadReason as R;
    use Priority as P;
    // Below the band: everyone gets in.
    for pr in [P::Sheddable, P::Normal, P::Critical] {
        assert_eq!(try_at(5, pr, &mut rng), Ok(()));
    }
    // At the soft limit: P::Sheddable goes first; P::Normal's probability is 0.
    assert_eq!(try_at(6, P::Sheddable, &mut rng), Err(R::Priority));
    assert_eq!(try_at(6, P::Normal, &mut rng), Ok(()));
    // In the headroom: only P::Critical.
    assert_eq!(try_at(8, P::Normal, &mut rng), Err(R::Priority));
    assert_eq!(try_at(8, P::Sheddable, &mut rng), Err(R::Priority));
    assert_eq!(try_at(9, P::Critical, &mut rng), Ok(()));
    // At the limit: nobody.
    assert_eq!(try_at(10, P::Critical, &mut rng), Err(R::HardLimit));

    // A flood of P::Normal and P::Sheddable work never takes the reserved slots.
    let mut taken = Vec::new();
    for i in 0..1000 {
        let pr = if i % 2 == 0 { P::Normal } else { P::Sheddable };
        if let Ok(permit) = shedder.try_acquire(pr, &mut rng) {
            taken.push(permit);
        }
    }
    assert!(taken.len() <= 8, "{}", taken.len());
    let c1 = shedder
        .try_acquire(P::Critical, &mut rng)
        .expect("headroom");
    let c2 = shedder
        .try_acquire(P::Critical, &mut rng)
        .expect("headroom");
    drop((c1, c2, taken));
    assert_eq!(shedder.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_layer_takes_priorities_from_requests() {
    let layer = ShedLayer::builder()
        .max_in_flight(2)
        .critical_headroom(0.5)
        .priority(|d: &Duration| {
            if d.is_zero() {
                Priority::Critical
            } else {
                Priority::Normal
            }
        })
        .build()
        .unwrap();
    let mut svc = layer.layer(sleeper());
    let mut a = task::spawn(svc.ready().await.unwrap().call(SLOW));
    assert_pending!(a.poll());
    let err = svc.ready().await.unwrap().call(SLOW).await.unwrap_err();
    assert_eq!(reason(&err), OverloadReason::Priority);
    assert_eq!(
        svc.ready()
            .await
            .unwrap()
            .call(Duration::ZERO)
            .await
            .unwrap(),
        Duration::ZERO
    );
    assert_eq!(layer.stats().shed.priority, 1);
}

#[test]
fn from_config_validates() {
    let err = ShedLayer::from_config(&ShedConfig::new().soft_limit(0)).unwrap_err();
    assert_eq!(err.to_string(), "soft_limit: 0 must be greater than zero");
    assert!(Shedder::new(&ShedConfig::default()).is_ok());
}

#[tokio::test]
async fn services_and_clones_share_the_layer_state() {
    let layer = ShedLayer::fixed(10).unwrap();
    let a = layer.layer(sleeper());
    let b = layer.layer(sleeper());
    let c = a.clone();
    a.oneshot(Duration::ZERO).await.unwrap();
    b.oneshot(Duration::ZERO).await.unwrap();
    let c = c.oneshot(Duration::ZERO).await.unwrap();
    assert_eq!(c, Duration::ZERO);
    assert_eq!(layer.stats().admitted, 3);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any sequence of acquires and releases: the in-flight count equals
        /// the permits held, never exceeds the limit, `Critical` is refused
        /// only at the limit, and nothing is admitted in the headroom but
        /// `Critical`.
        #[test]
        fn accounting_matches_a_model(
            limit in 1usize..20,
            soft in proptest::option::of(1usize..20),
            headroom in 0.0f64..0.9,
            ops in proptest::collection::vec((0u8..4, any::<u16>()), 1..200),
        ) {
            let soft = soft.map(|s| s.min(limit));
            let mut config = ShedConfig::new()
                .limit(Limit::Fixed(limit))
                .critical_headroom(headroom)
                .seed(9);
            config.soft_limit = soft;
            let shedder = Shedder::new(&config).unwrap();
            let reserved = (limit as f64 * headroom).ceil() as usize;
            let mut rng = SplitMix64::new(1);
            let mut held = Vec::new();
            for (op, pick) in ops {
                let n = held.len();
                let priority = match op {
                    0 => Priority::Critical,
                    1 => Priority::Normal,
                    2 => Priority::Sheddable,
                    _ => {
                        if !held.is_empty() {
                            held.swap_remove(pick as usize % held.len());
                        }
                        prop_assert_eq!(shedder.in_flight(), held.len());
                        continue;
                    }
                };
                match shedder.try_acquire(priority, &mut rng) {
                    Ok(p) => {
                        prop_assert!(n < limit);
                        if priority != Priority::Critical {
                            prop_assert!(n + reserved < limit, "admitted into the headroom");
                        }
                        if priority == Priority::Sheddable {
                            prop_assert!(soft.is_none_or(|s| n < s));
                        }
                        held.push(p);
                    }
                    Err(o) => {
                        if priority == Priority::Critical {
                            prop_assert!(n >= limit);
                        }
                        if n >= limit {
                            prop_assert_eq!(o.reason(), OverloadReason::HardLimit);
                        }
                    }
                }
                prop_assert_eq!(shedder.in_flight(), held.len());
                prop_assert!(held.len() <= limit);
            }
            drop(held);
            prop_assert_eq!(shedder.in_flight(), 0);
        }
    }
}

/// A service whose `call` panics.
#[derive(Clone)]
struct PanicsInCall;

impl Service<u32> for PanicsInCall {
    type Response = u32;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u32, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Self::Future {
        panic!("the inner service panics in call");
    }
}

// A panic in the inner service's `call` (caught by an outer layer or task)
// must not keep the slot it was admitted to.
#[tokio::test(start_paused = true)]
async fn a_panicking_inner_call_gives_its_slot_back() {
    let layer = ShedLayer::fixed(1).unwrap();
    let mut svc = layer.layer(PanicsInCall);
    for _ in 0..3 {
        svc.ready().await.unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(svc.call(1));
        }));
        assert!(caught.is_err());
        assert_eq!(layer.stats().in_flight, 0);
    }
}

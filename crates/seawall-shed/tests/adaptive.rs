//! Adaptive limits against a simulated backend whose latency rises past its
//! capacity (paused time): the limit converges near the capacity, follows it
//! down and back up, and never leaves `[min, max]`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use seawall_shed::{Aimd, Gradient2, Limit, ShedLayer, Vegas};
use tower::{Layer, Service, ServiceExt, service_fn};

const BASE: Duration = Duration::from_millis(10);

/// Answers in `BASE` up to `capacity` concurrent calls; beyond it, latency
/// grows in proportion (a queue in front of `capacity` workers).
#[derive(Clone)]
struct Backend {
    in_flight: Arc<AtomicUsize>,
    capacity: Arc<AtomicUsize>,
}

impl Backend {
    fn service(
        &self,
    ) -> impl Service<
        (),
        Response = (),
        Error = Infallible,
        Future = impl Future<Output = Result<(), Infallible>> + Send + use<>,
    > + Clone
    + Send
    + use<> {
        let b = self.clone();
        service_fn(move |()| {
            let b = b.clone();
            async move {
                let n = b.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                let cap = b.capacity.load(Ordering::SeqCst).max(1);
                let factor = (n as f64 / cap as f64).max(1.0);
                tokio::time::sleep(BASE.mul_f64(factor)).await;
                b.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            }
        })
    }
}

/// Runs three phases (capacity 40, then 15, then 40 again) with 150 clients
/// that retry 5ms after a rejection; returns the mean limit over the last
/// second of each phase.
async fn run(limit: Limit) -> [f64; 3] {
    let (min, max) = limit.bounds();
    let layer = ShedLayer::builder()
        .limit(limit)
        .window(Duration::from_millis(100))
        .window_min_samples(5)
        .build()
        .unwrap();
    let backend = Backend {
        in_flight: Arc::new(AtomicUsize::new(0)),
        capacity: Arc::new(AtomicUsize::new(40)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..150 {
        let svc = layer.layer(backend.service());
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut svc = svc;
            while !stop.load(Ordering::Relaxed) {
                if svc.ready().await.unwrap().call(()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    let mut means = [0.0; 3];
    for (phase, capacity) in [40, 15, 40].into_iter().enumerate() {
        backend.capacity.store(capacity, Ordering::SeqCst);
        let mut tail = Vec::new();
        for step in 0..150 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let s = layer.stats();
            assert!(
                (min..=max).contains(&s.limit),
                "limit {} left [{min}, {max}]",
                s.limit
            );
            assert!(s.in_flight <= s.limit.max(max));
            if step >= 140 {
                tail.push(s.limit as f64);
            }
        }
        means[phase] = tail.iter().sum::<f64>() / tail.len() as f64;
        let s = layer.stats();
        println!(
            "phase {phase} capacity {capacity}: mean limit {:.1} {s:?}",
            means[phase]
        );
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let s = layer.stats();
    assert!(s.rtt_min.is_some() && s.rtt_recent.is_some());
    assert!(s.rtt_min.unwrap() >= BASE);
    means
}

fn near(got: f64, capacity: f64, lo: f64, hi: f64) -> bool {
    got >= capacity * lo && got <= capacity * hi
}

#[tokio::test(start_paused = true)]
async fn aimd_converges_near_capacity_and_recovers() {
    // A window slower than 1.5 × the unloaded latency counts as a drop.
    let means = run(Limit::Aimd(Aimd {
        initial: 10,
        min: 2,
        max: 200,
        timeout: BASE.mul_f64(1.5),
        ..Aimd::default()
    }))
    .await;
    assert!(near(means[0], 40.0, 0.7, 1.7), "{means:?}");
    assert!(near(means[1], 15.0, 0.7, 1.7), "{means:?}");
    assert!(near(means[2], 40.0, 0.7, 1.7), "{means:?}");
}

/// Gradient2 compares each window with a *moving* long-term RTT: it cuts the
/// limit when latency rises, but under a sustained overload its baseline
/// follows the raised latency and the limit creeps up again (as Netflix's
/// does). What it guarantees here: it rises to capacity, falls when the
/// backend degrades, rises again when it recovers, within its bounds.
#[tokio::test(start_paused = true)]
async fn gradient2_follows_capacity_down_and_up() {
    let means = run(Limit::Gradient2(Gradient2 {
        initial: 10,
        min: 2,
        max: 200,
        ..Gradient2::default()
    }))
    .await;
    assert!(near(means[0], 40.0, 0.7, 2.0), "{means:?}");
    assert!(means[1] < means[0] * 0.7, "{means:?}");
    assert!(means[2] > means[1] && means[2] >= 40.0, "{means:?}");
}

#[tokio::test(start_paused = true)]
async fn vegas_converges_near_capacity_and_recovers() {
    let means = run(Limit::Vegas(Vegas {
        initial: 10,
        min: 2,
        max: 200,
        ..Vegas::default()
    }))
    .await;
    assert!(near(means[0], 40.0, 0.7, 1.7), "{means:?}");
    assert!(near(means[1], 15.0, 0.7, 1.7), "{means:?}");
    assert!(near(means[2], 40.0, 0.7, 1.7), "{means:?}");
}

#[tokio::test(start_paused = true)]
async fn the_fixed_limit_measures_nothing() {
    let layer = ShedLayer::fixed(3).unwrap();
    let svc = layer.layer(service_fn(|()| async {
        tokio::time::sleep(BASE).await;
        Ok::<_, Infallible>(())
    }));
    for _ in 0..20 {
        svc.clone().oneshot(()).await.unwrap();
    }
    let s = layer.stats();
    assert_eq!((s.rtt_min, s.rtt_recent, s.rtt_long), (None, None, None));
    assert_eq!((s.limit, s.min_limit, s.max_limit), (3, 3, 3));
}

#[tokio::test(start_paused = true)]
async fn failures_are_drops_unless_classified_otherwise() {
    let aimd = Limit::Aimd(Aimd {
        initial: 20,
        min: 5,
        max: 50,
        ..Aimd::default()
    });
    let failing = || {
        service_fn(|()| async {
            tokio::time::sleep(BASE).await;
            Err::<(), _>(std::io::Error::other("boom"))
        })
    };
    // Default: every `Err` is a drop, and AIMD backs off to its minimum.
    let layer = ShedLayer::builder()
        .limit(aimd.clone())
        .window(Duration::from_millis(50))
        .window_min_samples(1)
        .build()
        .unwrap();
    let svc = layer.layer(failing());
    for _ in 0..40 {
        let _ = svc.clone().oneshot(()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(layer.stats().limit, 5);

    // Classified as ignored: nothing is sampled, the limit stays.
    let layer = ShedLayer::builder()
        .limit(aimd)
        .window(Duration::from_millis(50))
        .window_min_samples(1)
        .classify(seawall_core::classify_fn(
            |_: &Result<(), std::io::Error>| seawall_core::Outcome::Ignore,
        ))
        .build()
        .unwrap();
    let svc = layer.layer(failing());
    for _ in 0..40 {
        let _ = svc.clone().oneshot(()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = layer.stats();
    assert_eq!((s.limit, s.rtt_recent), (20, None));
}

#[tokio::test(start_paused = true)]
async fn refusals_from_a_layer_below_are_not_drops() {
    // A budget below the shedder refuses: the call never reached the
    // service, so the adaptive limit must not back off for it.
    let layer = ShedLayer::builder()
        .limit(Limit::Aimd(Aimd {
            initial: 20,
            min: 5,
            max: 50,
            ..Aimd::default()
        }))
        .window(Duration::from_millis(50))
        .window_min_samples(1)
        .build()
        .unwrap();
    let refusing = service_fn(|()| async {
        tokio::time::sleep(BASE).await;
        Err::<(), seawall_core::BoxError>(
            seawall_core::BudgetExhausted::new(Duration::from_millis(10)).into(),
        )
    });
    let svc = layer.layer(refusing);
    for _ in 0..40 {
        let err = svc.clone().oneshot(()).await.unwrap_err();
        assert!(err.is::<seawall_core::BudgetExhausted>());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(layer.stats().limit, 20, "a refusal is not a drop");
}

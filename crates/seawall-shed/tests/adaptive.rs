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
    let means = run(Limit::Aimd(
        Aimd::new()
            .initial(10)
            .min(2)
            .max(200)
            .timeout(BASE.mul_f64(1.5)),
    ))
    .await;
    assert!(near(means[0], 40.0, 0.7, 1.7), "{means:?}");
    assert!(near(means[1], 15.0, 0.7, 1.7), "{means:?}");
    assert!(near(means[2], 40.0, 0.7, 1.7), "{means:?}");
}

/// Gradient2 compares each window with a *moving* long-term RTT (queueing
/// windows kept out of it): it cuts the limit when latency rises. What it
/// guarantees here: it rises to capacity, falls when the backend degrades,
/// rises again when it recovers, within its bounds.
#[tokio::test(start_paused = true)]
async fn gradient2_follows_capacity_down_and_up() {
    let means = run(Limit::Gradient2(
        Gradient2::new().initial(10).min(2).max(200),
    ))
    .await;
    assert!(near(means[0], 40.0, 0.7, 2.0), "{means:?}");
    assert!(means[1] < means[0] * 0.7, "{means:?}");
    assert!(means[2] > means[1] && means[2] >= 40.0, "{means:?}");
}

#[tokio::test(start_paused = true)]
async fn vegas_converges_near_capacity_and_recovers() {
    let means = run(Limit::Vegas(Vegas::new().initial(10).min(2).max(200))).await;
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
    let aimd = Limit::Aimd(Aimd::new().initial(20).min(5).max(50));
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
        .limit(Limit::Aimd(Aimd::new().initial(20).min(5).max(50)))
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

/// The adaptive limits' time-driven behaviour on a manual clock, with no
/// runtime: the window closes once per `window` of clock time, a call
/// slower than AIMD's timeout is a drop, and nothing moves while the clock
/// stands still however many calls complete.
mod manual_clock {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use seawall_core::rand::SplitMix64;
    use seawall_core::{Clock, ManualClock, Outcome};
    use seawall_shed::{Priority, ShedConfig, Shedder};

    use super::*;

    fn aimd(initial: usize) -> Limit {
        Limit::Aimd(
            Aimd::new()
                .initial(initial)
                .min(1)
                .max(100)
                .timeout(Duration::from_millis(50)),
        )
    }

    fn shedder(limit: Limit) -> (Shedder, ManualClock) {
        let (clock, hand) = Clock::manual();
        let config = ShedConfig::new()
            .limit(limit)
            .window(Duration::from_millis(100))
            .window_min_samples(3);
        (Shedder::with_clock(&config, clock).unwrap(), hand)
    }

    /// `n` calls in flight together, each taking `rtt` of clock time.
    fn calls(s: &Shedder, hand: &ManualClock, n: usize, rtt: Duration, outcome: Outcome) {
        let mut rng = SplitMix64::new(1);
        let permits: Vec<_> = (0..n)
            .map(|_| s.try_acquire(Priority::Normal, &mut rng).unwrap())
            .collect();
        assert!(permits.iter().all(|p| p.measures()));
        hand.advance(rtt);
        for p in permits {
            p.finish(outcome);
        }
    }

    #[test]
    fn aimd_moves_once_per_window_of_clock_time() {
        let (s, hand) = shedder(aimd(4));
        // Busy (4 of 4 in flight) and fast, but the window is not over:
        // however many calls complete, the limit stays.
        for _ in 0..10 {
            calls(&s, &hand, 4, Duration::from_millis(1), Outcome::Success);
        }
        assert_eq!(s.limit(), 4);
        assert_eq!(s.stats().rtt_recent, None, "no window closed yet");
        // The clock reaches the window's end: one step up.
        hand.advance(Duration::from_millis(90));
        calls(&s, &hand, 4, Duration::from_millis(1), Outcome::Success);
        assert_eq!(s.limit(), 5);
        assert_eq!(s.stats().rtt_recent, Some(Duration::from_millis(1)));
        // The next window needs 100ms more and 3 samples.
        calls(&s, &hand, 5, Duration::from_millis(99), Outcome::Success);
        assert_eq!(s.limit(), 5, "99ms later: still the same window");
        hand.advance(Duration::from_millis(1));
        calls(&s, &hand, 2, Duration::ZERO, Outcome::Success);
        // Closed on its 9th sample: (3 × 1ms + 5 × 99ms + 0) / 9 = 55ms,
        // slower than the 50ms timeout: a drop, floor(5 × 0.9).
        assert_eq!(s.limit(), 4);
        assert_eq!(s.stats().in_flight, 0);
    }

    #[test]
    fn a_call_slower_than_the_timeout_and_a_failure_are_drops() {
        let (s, hand) = shedder(aimd(20));
        calls(&s, &hand, 3, Duration::from_millis(120), Outcome::Success);
        assert_eq!(
            s.limit(),
            18,
            "floor(20 × 0.9): the window's RTT beat the timeout"
        );
        hand.advance(Duration::from_millis(100));
        calls(&s, &hand, 3, Duration::ZERO, Outcome::Failure);
        assert_eq!(s.limit(), 16, "floor(18 × 0.9): a failure is a drop");
        // Ignored calls are not sampled: no window can close on them.
        hand.advance(Duration::from_secs(10));
        calls(&s, &hand, 3, Duration::ZERO, Outcome::Ignore);
        assert_eq!(s.limit(), 16);
    }

    #[test]
    fn gradient_and_vegas_follow_clock_latency() {
        for limit in [
            Limit::Gradient2(Gradient2::new().initial(20).min(5).max(50)),
            Limit::Vegas(Vegas::new().initial(20).min(5).max(50)),
        ] {
            let (s, hand) = shedder(limit.clone());
            // Fast windows first, then ten times slower ones: the limit
            // falls, and stays in its bounds.
            // Every round fills the limit, so neither algorithm sees an
            // application-limited window.
            for _ in 0..5 {
                calls(
                    &s,
                    &hand,
                    s.limit(),
                    Duration::from_millis(100),
                    Outcome::Success,
                );
            }
            let before = s.limit();
            for _ in 0..20 {
                calls(
                    &s,
                    &hand,
                    s.limit(),
                    Duration::from_secs(1),
                    Outcome::Success,
                );
            }
            let after = s.limit();
            assert!(after < before, "{limit:?}: {before} -> {after}");
            assert!((5..=50).contains(&after));
            assert_eq!(s.stats().rtt_min, Some(Duration::from_millis(100)));
        }
    }

    #[test]
    fn the_layer_measures_on_its_clock_without_a_runtime() {
        let (clock, hand) = Clock::manual();
        let layer = ShedLayer::builder()
            .limit(aimd(2))
            .window_min_samples(1)
            .clock(clock)
            .build()
            .unwrap();
        let inner = service_fn(|()| async { Ok::<_, Infallible>(()) });
        let mut svc = layer.layer(inner);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut fut = pin!(svc.call(()));
        hand.advance(Duration::from_secs(1)); // past the 1s default window
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        let s = layer.stats();
        // 1s is slower than the 50ms timeout: a drop.
        assert_eq!((s.limit, s.rtt_recent), (1, Some(Duration::from_secs(1))));
    }
}

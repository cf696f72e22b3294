//! Queue mode: bounded waiting, hand-over to the oldest waiter, drop safety.

use seawall_core::rand::SplitMix64;
use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::{BoxError, OverloadReason, Rejection};
use seawall_shed::ShedLayer;
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt, service_fn};

fn reason(err: &BoxError) -> OverloadReason {
    match Rejection::find(&**err) {
        Some(Rejection::Overloaded(o)) => o.reason(),
        other => panic!("not an Overloaded: {other:?} ({err})"),
    }
}

fn sleeper() -> impl Service<
    Duration,
    Response = Duration,
    Error = Infallible,
    Future = impl Future<Output = Result<Duration, Infallible>> + Send,
> + Clone
+ Send {
    service_fn(|d: Duration| async move {
        tokio::time::sleep(d).await;
        Ok::<_, Infallible>(d)
    })
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn waits_for_a_slot_then_sheds_what_waited_too_long() {
    let layer = ShedLayer::builder()
        .max_in_flight(1)
        .max_queue_delay(100 * MS)
        .queue_capacity(2)
        .build()
        .unwrap();
    let mut a = layer.layer(sleeper());
    let mut b = layer.layer(sleeper());
    let mut c = layer.layer(sleeper());
    let mut d = layer.layer(sleeper());

    let mut fa = task::spawn(a.ready().await.unwrap().call(30 * MS));
    assert_pending!(fa.poll());

    let mut rb = task::spawn(poll_fn(|cx| b.poll_ready(cx)));
    assert_pending!(rb.poll());
    let mut rc = task::spawn(poll_fn(|cx| c.poll_ready(cx)));
    assert_pending!(rc.poll());
    assert_eq!(layer.stats().queued, 2);
    // Queue full: ready at once, and the call says why.
    let mut rd = task::spawn(poll_fn(|cx| d.poll_ready(cx)));
    assert_ready_ok!(rd.poll());
    drop(rd);
    let err = d.call(MS).await.unwrap_err();
    assert_eq!(reason(&err), OverloadReason::QueueFull);

    // A finishes at 30ms; its slot goes to B, the oldest waiter.
    tokio::time::advance(30 * MS).await;
    assert_ready_ok!(fa.poll());
    assert!(rb.is_woken());
    assert_ready_ok!(rb.poll());
    drop(rb);
    assert_pending!(rc.poll());
    let mut fb = task::spawn(b.call(SLOW));
    assert_pending!(fb.poll());

    // C gives up at 100ms and is shed.
    tokio::time::advance(70 * MS).await;
    assert_ready_ok!(rc.poll());
    drop(rc);
    let err = c.call(MS).await.unwrap_err();
    assert_eq!(reason(&err), OverloadReason::QueueDelay);
    let s = layer.stats();
    assert_eq!((s.queued, s.in_flight), (0, 1));
    assert_eq!((s.shed.queue_full, s.shed.queue_delay), (1, 1));
    drop(fb);
    assert_eq!(layer.stats().in_flight, 0);
}

const SLOW: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn dropping_a_service_gives_back_its_reservation_and_its_place() {
    let layer = ShedLayer::builder()
        .max_in_flight(1)
        .max_queue_delay(100 * MS)
        .build()
        .unwrap();
    // A reservation made by poll_ready, then the service is dropped.
    let mut a = layer.layer(sleeper());
    a.ready().await.unwrap();
    assert_eq!(layer.stats().in_flight, 1);
    drop(a);
    assert_eq!(layer.stats().in_flight, 0);

    // A waiter dropped while waiting leaves the queue.
    let mut holder = layer.layer(sleeper());
    let mut held = task::spawn(holder.ready().await.unwrap().call(SLOW));
    assert_pending!(held.poll());
    let mut w = layer.layer(sleeper());
    {
        let mut r = task::spawn(poll_fn(|cx| w.poll_ready(cx)));
        assert_pending!(r.poll());
    }
    assert_eq!(layer.stats().queued, 1);
    drop(w);
    assert_eq!(layer.stats().queued, 0);

    // A waiter handed a slot but dropped before it picked it up passes the
    // slot on to the next waiter.
    let mut w1 = layer.layer(sleeper());
    let mut w2 = layer.layer(sleeper());
    let mut r1 = task::spawn(poll_fn(|cx| w1.poll_ready(cx)));
    assert_pending!(r1.poll());
    drop(r1);
    let mut r2 = task::spawn(poll_fn(|cx| w2.poll_ready(cx)));
    assert_pending!(r2.poll());
    drop(held); // frees the slot: granted to w1
    assert_eq!(layer.stats().in_flight, 1);
    drop(w1); // w1 never picked it up: w2 gets it
    assert!(r2.is_woken());
    assert_ready_ok!(r2.poll());
    drop(r2);
    assert_eq!(w2.call(MS).await.unwrap(), MS);
    let s = layer.stats();
    assert_eq!((s.in_flight, s.queued), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_reservation_rejected_by_priority_is_handed_on() {
    let layer = ShedLayer::builder()
        .max_in_flight(2)
        .soft_limit(1)
        .max_queue_delay(100 * MS)
        .priority(|d: &Duration| {
            if *d == SLOW {
                seawall_shed::Priority::Normal
            } else {
                seawall_shed::Priority::Sheddable
            }
        })
        .build()
        .unwrap();
    let mut a = layer.layer(sleeper());
    let mut fa = task::spawn(a.ready().await.unwrap().call(SLOW));
    assert_pending!(fa.poll());
    // One in flight = soft limit: a Sheddable request is refused after its
    // slot was reserved, and the slot comes back.
    let mut b = layer.layer(sleeper());
    let err = b.ready().await.unwrap().call(MS).await.unwrap_err();
    assert_eq!(reason(&err), OverloadReason::Priority);
    assert_eq!(layer.stats().in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn never_admits_a_request_that_waited_too_long_and_stays_bounded() {
    let max_delay = 20 * MS;
    let capacity = 8;
    let layer = ShedLayer::builder()
        .max_in_flight(4)
        .max_queue_delay(max_delay)
        .queue_capacity(capacity)
        .seed(1)
        .build()
        .unwrap();
    let peak_queue = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..40u64 {
        let layer = layer.clone();
        let peak_queue = peak_queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(w);
            let mut svc = layer.layer(sleeper());
            let mut admitted = 0;
            for _ in 0..50 {
                let start = Instant::now();
                svc.ready().await.unwrap();
                let waited = start.elapsed();
                peak_queue.fetch_max(layer.stats().queued, Ordering::Relaxed);
                let work = MS * (1 + (rng.next_u64() % 30) as u32);
                match svc.call(work).await {
                    Ok(_) => {
                        assert!(waited <= max_delay, "admitted after {waited:?}");
                        admitted += 1;
                    }
                    Err(e) => {
                        let r = reason(&e);
                        assert!(
                            matches!(r, OverloadReason::QueueDelay | OverloadReason::QueueFull),
                            "{r:?}"
                        );
                        tokio::time::sleep(MS * (rng.next_u64() % 5) as u32).await;
                    }
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    let s = layer.stats();
    assert!(peak_queue.load(Ordering::Relaxed) <= capacity);
    assert_eq!(s.admitted, admitted);
    assert!(s.shed.queue_delay > 0 && s.shed.queue_full > 0, "{s:?}");
    assert_eq!((s.in_flight, s.queued), (0, 0));
    assert!(!ready_is_pending_forever(&layer).await);
}

/// After the storm, a new request is admitted at once.
async fn ready_is_pending_forever(layer: &ShedLayer) -> bool {
    let svc = layer.layer(sleeper());
    let mut f = task::spawn(svc.oneshot(Duration::ZERO));
    let r = f.poll();
    !matches!(r, std::task::Poll::Ready(Ok(_)))
}

#[tokio::test(start_paused = true)]
async fn a_waiter_granted_in_time_is_admitted() {
    let layer = ShedLayer::builder()
        .max_in_flight(1)
        .max_queue_delay(50 * MS)
        .build()
        .unwrap();
    let mut a = layer.layer(sleeper());
    let mut fa = task::spawn(a.ready().await.unwrap().call(50 * MS));
    assert_pending!(fa.poll());
    let mut b = layer.layer(sleeper());
    let mut rb = task::spawn(poll_fn(|cx| b.poll_ready(cx)));
    assert_pending!(rb.poll());
    // Exactly at the deadline: A finishes and hands its slot over.
    tokio::time::advance(50 * MS).await;
    assert_ready_ok!(fa.poll());
    assert_ready!(rb.poll()).unwrap();
    drop(rb);
    assert_eq!(b.call(MS).await.unwrap(), MS);
}

/// Two threads, many waiters: every slot freed is handed to a waiter (a
/// lost wake-up would show as a `QueueDelay` after a minute), and the limit
/// holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_over_loses_no_wake_up_under_contention() {
    let layer = ShedLayer::builder()
        .max_in_flight(2)
        .max_queue_delay(Duration::from_secs(60))
        .queue_capacity(16)
        .build()
        .unwrap();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let inner = service_fn(move |()| {
        let (n, p) = (n.clone(), p.clone());
        async move {
            let c = n.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(c, Ordering::SeqCst);
            tokio::task::yield_now().await;
            n.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        }
    });
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = layer.layer(inner.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..300 {
                svc.clone().oneshot(()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = layer.stats();
    assert!(peak.load(Ordering::SeqCst) <= 2);
    assert_eq!(s.admitted, 2400);
    assert_eq!(s.shed.total(), 0);
    assert_eq!((s.in_flight, s.queued), (0, 0));
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

#[tokio::test(start_paused = true)]
async fn an_unready_inner_service_gives_its_reservation_back() {
    let layer = ShedLayer::builder()
        .max_in_flight(1)
        .max_queue_delay(10 * MS)
        .build()
        .unwrap();
    let mut svc = layer.layer(NotReady);
    let mut ready = task::spawn(poll_fn(|cx| svc.poll_ready(cx)));
    assert_ready_ok!(ready.poll());
    drop(ready);
    assert_eq!(layer.stats().in_flight, 1, "reserved by poll_ready");
    let err = svc.call(()).await.unwrap_err();
    assert_eq!(reason(&err), OverloadReason::HardLimit);
    assert_eq!(layer.stats().in_flight, 0);
}

/// The longest `max_queue_delay` (365 days) and the shortest `retry_after`
/// (1ms): a request queues, its deadline is computed without overflow, it
/// times out exactly then, and its refusal carries the 1ms hint. Past the
/// bounds, `build()` names the field.
#[tokio::test(start_paused = true)]
async fn the_longest_queue_delay_and_the_shortest_retry_after() {
    use seawall_core::config::MAX_DURATION;

    let layer = ShedLayer::builder()
        .max_in_flight(1)
        .max_queue_delay(MAX_DURATION)
        .retry_after(MS)
        .build()
        .unwrap();
    let held = layer
        .shedder()
        .try_acquire(seawall_shed::Priority::Critical, &mut SplitMix64::new(1))
        .unwrap();
    let mut svc = layer.layer(sleeper());
    let mut ready = task::spawn(poll_fn(|cx| svc.poll_ready(cx)));
    assert_pending!(ready.poll());
    tokio::time::advance(MAX_DURATION - MS).await;
    assert_pending!(ready.poll());
    tokio::time::advance(2 * MS).await;
    assert_ready_ok!(ready.poll());
    drop(ready);
    let err = svc.call(MS).await.unwrap_err();
    assert_eq!(reason(&err), OverloadReason::QueueDelay);
    let Some(Rejection::Overloaded(o)) = Rejection::find(&*err) else {
        unreachable!()
    };
    assert_eq!(o.retry_after(), Some(MS));
    drop(held);

    for (delay, retry_after, field) in [
        (Duration::from_secs(u64::MAX), MS, "max_queue_delay"),
        (
            MAX_DURATION + Duration::from_nanos(1),
            MS,
            "max_queue_delay",
        ),
        (MS, Duration::ZERO, "retry_after"),
        (MS, Duration::from_micros(999), "retry_after"),
    ] {
        let e = ShedLayer::builder()
            .max_queue_delay(delay)
            .retry_after(retry_after)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), field, "{e}");
        assert_eq!(e.errors().len(), 1, "{e}");
    }
}

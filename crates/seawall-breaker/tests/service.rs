//! The tower shells: `Breaker` driven by hand, rejections, cancellation.

use std::time::Duration;

use seawall_breaker::{BreakerLayer, State, TripPolicy};
use seawall_core::rejection::OpenState;
use seawall_core::{
    BoxError, CircuitOpen, Outcome, OverloadReason, Overloaded, Rejection, RejectionKind,
    classify_fn,
};
use tokio::sync::oneshot;
use tokio_test::{assert_pending, assert_ready, assert_ready_ok, task};
use tower::{Layer, Service, ServiceExt, service_fn};

type Reply = Result<u32, &'static str>;

// A service whose calls finish when the caller says so.
fn remote() -> impl Service<
    oneshot::Receiver<Reply>,
    Response = u32,
    Error = &'static str,
    Future = impl Future<Output = Reply> + Send,
> + Clone {
    service_fn(|rx: oneshot::Receiver<Reply>| async move { rx.await.unwrap_or(Err("dropped")) })
}

fn layer(threshold: u32) -> BreakerLayer {
    BreakerLayer::builder()
        .policy(TripPolicy::consecutive_failures(threshold))
        .open_duration(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn answered(r: Reply) -> oneshot::Receiver<Reply> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(r);
    rx
}

fn as_open(err: &BoxError) -> &CircuitOpen {
    err.downcast_ref::<CircuitOpen>().expect("a CircuitOpen")
}

#[tokio::test(start_paused = true)]
async fn open_breaker_stays_ready_and_rejects_from_the_future() {
    let layer = layer(2);
    let mut svc = layer.layer(remote());
    for _ in 0..2 {
        let r = svc.ready().await.unwrap().call(answered(Err("500"))).await;
        assert_eq!(r.unwrap_err().to_string(), "500");
    }
    assert_eq!(layer.state(), State::Open);

    let mut t = task::spawn(());
    assert_ready_ok!(
        t.enter(|cx, _| svc.poll_ready(cx)),
        "poll_ready reports the inner service"
    );
    let mut fut = task::spawn(svc.call(answered(Ok(1))));
    let err = assert_ready!(fut.poll()).unwrap_err();
    let open = as_open(&err);
    assert_eq!(open.state(), OpenState::Open);
    assert_eq!(open.retry_after(), Some(Duration::from_secs(10)));
    let r = Rejection::find(&*err).unwrap();
    assert_eq!(r.kind(), RejectionKind::CircuitOpen);
    assert_eq!(layer.stats().rejected, 1);

    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..2 {
        assert_eq!(
            svc.ready()
                .await
                .unwrap()
                .call(answered(Ok(3)))
                .await
                .unwrap(),
            3
        );
    }
    assert_eq!(layer.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropped_response_futures_give_back_probe_slots() {
    let layer = layer(1);
    let mut svc = layer.layer(remote());
    let _ = svc.ready().await.unwrap().call(answered(Err("x"))).await;
    tokio::time::advance(Duration::from_secs(10)).await;

    let mut senders = Vec::new();
    let mut futs = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        let mut f = task::spawn(svc.ready().await.unwrap().call(rx));
        assert_pending!(f.poll());
        futs.push(f);
    }
    assert_eq!(layer.stats().half_open_in_flight, 3);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(answered(Ok(1)))
        .await
        .unwrap_err();
    assert_eq!(as_open(&err).state(), OpenState::HalfOpen);

    // Drop the futures at different points: before any poll, pending, done.
    drop(futs.pop());
    assert_eq!(layer.stats().half_open_in_flight, 2);
    let never_polled = svc.ready().await.unwrap().call(answered(Ok(9)));
    drop(never_polled);
    assert_eq!(layer.stats().half_open_in_flight, 2);
    drop(futs);
    assert_eq!(layer.stats().half_open_in_flight, 0);
    assert_eq!(
        layer.state(),
        State::HalfOpen,
        "cancelled probes count as neither"
    );

    for _ in 0..2 {
        svc.ready()
            .await
            .unwrap()
            .call(answered(Ok(1)))
            .await
            .unwrap();
    }
    assert_eq!(layer.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropped_service_clones_hold_nothing() {
    let layer = layer(1);
    let svc = layer.layer(remote());
    let mut first = svc.clone();
    let _ = first.ready().await.unwrap().call(answered(Err("x"))).await;
    tokio::time::advance(Duration::from_secs(10)).await;

    // A clone made ready and dropped reserved nothing.
    for _ in 0..5 {
        let mut clone = svc.clone();
        let mut t = task::spawn(());
        assert_ready_ok!(t.enter(|cx, _| clone.poll_ready(cx)));
        drop(clone);
    }
    assert_eq!(layer.stats().half_open_in_flight, 0);

    // A clone dropped while its call is in flight: the future still owns the probe.
    let mut clone = svc.clone();
    let (tx, rx) = oneshot::channel();
    let mut fut = task::spawn(clone.ready().await.unwrap().call(rx));
    drop(clone);
    assert_pending!(fut.poll());
    assert_eq!(layer.stats().half_open_in_flight, 1);
    tx.send(Ok(5)).unwrap();
    assert_eq!(assert_ready!(fut.poll()).unwrap(), 5);
    assert_eq!(layer.stats().half_open_in_flight, 0);
    assert_eq!(layer.stats().half_open_successes, 1);
}

#[tokio::test(start_paused = true)]
async fn classification_is_pluggable_and_shared_by_clones() {
    // 5xx replies are failures, errors are ignored.
    let layer = layer(2).classify(classify_fn(|r: &Result<u32, &'static str>| match r {
        Ok(code) if *code >= 500 => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Ignore,
    }));
    let mut a = layer.layer(remote());
    let mut b = a.clone();
    a.ready()
        .await
        .unwrap()
        .call(answered(Ok(503)))
        .await
        .unwrap();
    b.ready()
        .await
        .unwrap()
        .call(answered(Err("ignored")))
        .await
        .unwrap_err();
    assert_eq!(layer.state(), State::Closed);
    b.ready()
        .await
        .unwrap()
        .call(answered(Ok(500)))
        .await
        .unwrap();
    assert_eq!(layer.state(), State::Open, "clones share one breaker");
    assert_eq!(a.stats().trips, 1);
    layer.force_closed();
    assert_eq!(a.breaker().state(), State::ForcedClosed);
    layer.reset();
    layer.force_open();
    let err = b
        .ready()
        .await
        .unwrap()
        .call(answered(Ok(1)))
        .await
        .unwrap_err();
    assert_eq!(as_open(&err).state(), OpenState::ForcedOpen);
}

#[tokio::test]
async fn standard_and_from_config() {
    let l = BreakerLayer::standard();
    assert_eq!(l.config(), seawall_breaker::BreakerConfig::default());
    let bad = seawall_breaker::BreakerConfig::new().success_threshold(0);
    assert_eq!(
        BreakerLayer::from_config(&bad).unwrap_err().to_string(),
        "success_threshold: 0 must be greater than zero"
    );
}

#[tokio::test(start_paused = true)]
async fn refusals_from_layers_below_never_trip_the_breaker() {
    // The recommended client stack puts a per-peer budget below the breaker:
    // its refusals never reached the peer and must not open the circuit.
    let layer = layer(2);
    let spent = layer.layer(service_fn(|()| async {
        Err::<(), BoxError>(seawall_core::BudgetExhausted::new(Duration::from_millis(5)).into())
    }));
    let shed = layer.layer(service_fn(|()| async {
        Err::<(), BoxError>(Overloaded::new(OverloadReason::HardLimit).into())
    }));
    for _ in 0..5 {
        let err = spent.clone().oneshot(()).await.unwrap_err();
        assert_eq!(
            Rejection::find(&*err).map(|r| r.kind()),
            Some(RejectionKind::BudgetExhausted),
            "the refusal comes back unchanged"
        );
        let err = shed.clone().oneshot(()).await.unwrap_err();
        assert!(err.is::<Overloaded>());
    }
    assert_eq!(layer.state(), State::Closed);
    // A timeout below is a failure: the peer was called and was too slow.
    let slow = layer.layer(service_fn(|()| async {
        Err::<(), BoxError>(seawall_core::Elapsed::new(Duration::from_millis(5)).into())
    }));
    for _ in 0..2 {
        let _ = slow.clone().oneshot(()).await;
    }
    assert_eq!(layer.state(), State::Open);
}

//! Bounded queues: every overflow policy under a burst, and BoundedLoop.

use std::time::Duration;

use seawall_budget::bounded::{self, Delivery, OverflowPolicy, SendError};
use seawall_budget::{BoundedLoop, LoopBudget};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, task};

async fn drain(rx: &mut bounded::Receiver<u32>) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(x) = rx.try_recv() {
        out.push(x);
    }
    out
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest() {
    let (tx, mut rx) = bounded::channel(3, OverflowPolicy::DropOldest).unwrap();
    let mut deliveries = Vec::new();
    for i in 0..10 {
        deliveries.push(tx.send(i).await.unwrap());
    }
    assert_eq!(deliveries[..3], [Delivery::Queued; 3]);
    assert_eq!(deliveries[3..], [Delivery::ReplacedOldest; 7]);
    assert_eq!(drain(&mut rx).await, [7, 8, 9]);
    let s = rx.stats();
    assert_eq!((s.sent, s.received, s.dropped_oldest), (10, 3, 7));
    assert_eq!((s.dropped_newest, s.rejected, s.max_len), (0, 0, 3));
    assert_eq!(s.dropped(), 7);
}

#[tokio::test]
async fn drop_newest_keeps_the_oldest() {
    let (tx, mut rx) = bounded::channel(3, OverflowPolicy::DropNewest).unwrap();
    let mut deliveries = Vec::new();
    for i in 0..10 {
        deliveries.push(tx.try_send(i).unwrap());
    }
    assert_eq!(deliveries[..3], [Delivery::Queued; 3]);
    assert_eq!(deliveries[3..], [Delivery::Dropped; 7]);
    assert_eq!(drain(&mut rx).await, [0, 1, 2]);
    let s = rx.stats();
    assert_eq!((s.sent, s.received, s.dropped_newest), (3, 3, 7));
    assert_eq!(s.dropped(), 7);
}

#[tokio::test]
async fn reject_hands_every_refused_item_back() {
    let (tx, mut rx) = bounded::channel(3, OverflowPolicy::Reject).unwrap();
    let mut returned = Vec::new();
    for i in 0..10 {
        match tx.send(i).await {
            Ok(d) => assert_eq!(d, Delivery::Queued),
            Err(e) => {
                assert!(e.is_full());
                assert_eq!(e.to_string(), "bounded queue full; item returned");
                returned.push(e.into_inner());
            }
        }
    }
    assert_eq!(returned, [3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(drain(&mut rx).await, [0, 1, 2]);
    let s = rx.stats();
    assert_eq!((s.sent, s.rejected, s.dropped()), (3, 7, 7));
}

#[tokio::test]
async fn wait_holds_the_producer_until_there_is_room() {
    let (tx, mut rx) = bounded::channel(3, OverflowPolicy::Wait).unwrap();
    for i in 0..3 {
        assert_eq!(tx.send(i).await.unwrap(), Delivery::Queued);
    }
    // Full: try_send hands the item back, send waits.
    assert!(matches!(tx.try_send(99), Err(SendError::Full(99))));
    let mut send = task::spawn(tx.send(3));
    assert_pending!(send.poll());
    assert!(!send.is_woken());
    assert_eq!(rx.recv().await, Some(0));
    assert!(send.is_woken(), "a pop wakes a waiting sender");
    assert_eq!(assert_ready!(send.poll()).unwrap(), Delivery::Queued);
    drop(send);
    drop(tx);
    let mut got = Vec::new();
    while let Some(x) = rx.recv().await {
        got.push(x);
    }
    assert_eq!(got, [1, 2, 3]);
    let s = rx.stats();
    assert_eq!((s.sent, s.received, s.rejected, s.max_len), (4, 4, 1, 3));
}

#[tokio::test]
async fn a_waiting_sender_learns_the_receiver_is_gone() {
    let (tx, rx) = bounded::channel(1, OverflowPolicy::Wait).unwrap();
    let _ = tx.send(1).await.unwrap();
    let mut send = task::spawn(tx.send(2));
    assert_pending!(send.poll());
    drop(rx);
    assert!(send.is_woken());
    match assert_ready!(send.poll()) {
        Err(SendError::Closed(2)) => {}
        other => panic!("expected Closed(2), got {other:?}"),
    }
    drop(send);
    assert!(tx.is_closed());
    assert!(matches!(tx.try_send(3), Err(SendError::Closed(3))));
    assert_eq!(tx.stats().closed, 2);
}

#[tokio::test]
async fn a_cancelled_send_changes_nothing() {
    let (tx, mut rx) = bounded::channel(1, OverflowPolicy::Wait).unwrap();
    let _ = tx.send(1).await.unwrap();
    let mut send = task::spawn(tx.send(2));
    assert_pending!(send.poll());
    drop(send);
    assert_eq!(rx.try_recv(), Some(1));
    assert_eq!(rx.try_recv(), None);
    assert_eq!(rx.stats().sent, 1);
}

#[tokio::test]
async fn recv_ends_when_all_senders_are_gone_and_the_queue_is_drained() {
    let (tx, mut rx) = bounded::channel(4, OverflowPolicy::Reject).unwrap();
    let tx2 = tx.clone();
    let _ = tx.send(1).await.unwrap();
    drop(tx);
    let mut recv = task::spawn(async {
        let a = rx.recv().await;
        let b = rx.recv().await;
        (a, b)
    });
    assert_pending!(recv.poll(), "tx2 still open");
    let _ = tx2.send(2).await.unwrap();
    assert!(recv.is_woken());
    assert_eq!(assert_ready!(recv.poll()), (Some(1), Some(2)));
    drop(recv);
    let mut last = task::spawn(rx.recv());
    assert_pending!(last.poll());
    drop(tx2);
    assert!(last.is_woken(), "the last sender's drop wakes the receiver");
    assert_eq!(assert_ready!(last.poll()), None);
}

#[test]
fn zero_capacity_is_a_config_error() {
    let err = bounded::channel::<u32>(0, OverflowPolicy::Wait).unwrap_err();
    assert_eq!(err.to_string(), "capacity: 0 must be greater than zero");
}

/// A producer ten times faster than its budgeted consumer: memory stays at
/// the capacity, and every item is either processed or counted as dropped.
#[tokio::test(start_paused = true)]
async fn memory_stays_flat_under_a_producer_ten_times_faster() {
    let (tx, rx) = bounded::channel(64, OverflowPolicy::DropOldest).unwrap();
    let budget = LoopBudget::builder().rate(100).burst(10).build().unwrap();
    let consumer = tokio::spawn(BoundedLoop::new(rx, budget.clone()).run(|_: u32| async {}));
    let start = Instant::now();
    let mut offered = 0u32;
    // 1000 items/s for 10 simulated seconds.
    while start.elapsed() < Duration::from_secs(10) {
        let _ = tx.send(offered).await.unwrap();
        offered += 1;
        assert!(tx.stats().len <= 64);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(tx);
    let report = consumer.await.unwrap();
    let q = report.queue;
    assert_eq!(q.max_len, 64, "never more than the capacity");
    assert_eq!(q.sent, u64::from(offered));
    assert_eq!(
        report.processed + q.dropped(),
        u64::from(offered),
        "nothing lost silently"
    );
    assert_eq!(report.processed, q.received);
    // The consumer kept to its budget: about 100/s, plus what it drained at the end.
    assert!(report.processed <= 10 + 100 * 10 + 64 + 100, "{report:?}");
    assert!(report.processed >= 900, "{report:?}");
    assert!(report.backoffs > 0 && report.backoff_time > Duration::ZERO);
}

/// Items that trickle in (the loop waits on an empty queue) still never
/// pass faster than the budget.
#[tokio::test(start_paused = true)]
async fn bounded_loop_keeps_the_burst_when_items_trickle_in() {
    let (tx, rx) = bounded::channel(16, OverflowPolicy::Reject).unwrap();
    let budget = LoopBudget::builder().rate(10).burst(1).build().unwrap();
    let start = Instant::now();
    let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = times.clone();
    let consumer = tokio::spawn(BoundedLoop::new(rx, budget).run(move |_: u32| {
        seen.lock().unwrap().push(start.elapsed());
        async {}
    }));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = tx.try_send(1).unwrap();
    let _ = tx.try_send(2).unwrap();
    drop(tx);
    let report = consumer.await.unwrap();
    assert_eq!(report.processed, 2);
    let times = times.lock().unwrap().clone();
    // Burst 1: the second item waits for its own token, 100ms after the first.
    assert!(
        times[1] - times[0] >= Duration::from_millis(100),
        "{times:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn wait_policy_slows_the_producer_to_the_consumer() {
    let (tx, rx) = bounded::channel(16, OverflowPolicy::Wait).unwrap();
    let budget = LoopBudget::builder().rate(100).burst(1).build().unwrap();
    let consumer = tokio::spawn(BoundedLoop::new(rx, budget).run(|_: u32| async {}));
    let start = Instant::now();
    for i in 0..500 {
        let _ = tx.send(i).await.unwrap();
    }
    // 500 items at 100/s cannot be accepted in less than ~(500-16)/100 s.
    assert!(
        start.elapsed() >= Duration::from_millis(4800),
        "{:?}",
        start.elapsed()
    );
    drop(tx);
    let report = consumer.await.unwrap();
    assert_eq!(report.processed, 500);
    assert_eq!(report.queue.dropped(), 0);
    assert!(report.queue.max_len <= 16);
}

#[tokio::test(start_paused = true)]
async fn bounded_loop_never_exceeds_its_budget() {
    let (tx, rx) = bounded::channel(1000, OverflowPolicy::Reject).unwrap();
    for i in 0..1000 {
        let _ = tx.try_send(i).unwrap();
    }
    drop(tx);
    let budget = LoopBudget::builder().rate(100).burst(5).build().unwrap();
    let start = Instant::now();
    let mut times = Vec::new();
    let report = BoundedLoop::new(rx, budget)
        .run(|_: u32| {
            times.push(start.elapsed());
            async {}
        })
        .await;
    assert_eq!(report.processed, 1000);
    let emission = Duration::from_millis(10);
    for (i, t) in times.iter().enumerate() {
        // At most `burst + t / emission` items by time t.
        let bound = 5 + (t.as_nanos() / emission.as_nanos()) as usize;
        assert!(i < bound, "item {i} at {t:?}");
    }
}

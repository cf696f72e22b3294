//! Priority lanes: each lane's overflow policy, the order items come out
//! in, the anti-starvation rule, closing, Wait backpressure and
//! cancellation, and BoundedLoop driving a priority channel.

use std::time::Duration;

use seawall_budget::bounded::{
    self, Delivery, LaneConfig, OverflowPolicy, PriorityConfig, PriorityReceiver, SendError,
};
use seawall_budget::{BoundedLoop, LoopBudget};
use tokio_test::{assert_pending, assert_ready, task};

use OverflowPolicy::{DropNewest, DropOldest, Reject, Wait};

fn lanes(lanes: &[(usize, OverflowPolicy)]) -> PriorityConfig {
    PriorityConfig::new(lanes.iter().map(|&(c, p)| LaneConfig::new(c, p)))
}

fn drain(rx: &mut PriorityReceiver<u32>) -> Vec<u32> {
    std::iter::from_fn(|| rx.try_recv()).collect()
}

#[tokio::test]
async fn every_lane_applies_its_own_policy() {
    let (tx, mut rx) = bounded::priority_channel(&lanes(&[
        (2, DropOldest),
        (2, DropNewest),
        (2, Reject),
        (2, Wait),
    ]))
    .unwrap();
    // Four items into each two-slot lane, without waiting.
    let mut outcomes = Vec::new();
    for lane in 0..4 {
        for i in 0..4 {
            outcomes.push(tx.try_send(lane, (lane * 10 + i) as u32));
        }
    }
    let d = |r: &Result<Delivery, SendError<u32>>| match r {
        Ok(d) => format!("{d:?}"),
        Err(SendError::Full(x)) => format!("Full({x})"),
        Err(SendError::Closed(x)) => format!("Closed({x})"),
    };
    let got: Vec<String> = outcomes.iter().map(d).collect();
    assert_eq!(
        got,
        [
            "Queued",
            "Queued",
            "ReplacedOldest",
            "ReplacedOldest", // lane 0
            "Queued",
            "Queued",
            "Dropped",
            "Dropped", // lane 1
            "Queued",
            "Queued",
            "Full(22)",
            "Full(23)", // lane 2
            "Queued",
            "Queued",
            "Full(32)",
            "Full(33)", // lane 3: try_send
        ]
    );
    let s = tx.stats();
    let per_lane = |f: fn(&bounded::QueueStats) -> u64| s.lanes.iter().map(f).collect::<Vec<_>>();
    assert_eq!(per_lane(|l| l.sent), [4, 2, 2, 2]);
    assert_eq!(per_lane(|l| l.dropped_oldest), [2, 0, 0, 0]);
    assert_eq!(per_lane(|l| l.dropped_newest), [0, 2, 0, 0]);
    assert_eq!(per_lane(|l| l.rejected), [0, 0, 2, 2]);
    assert_eq!(per_lane(|l| l.len as u64), [2, 2, 2, 2]);
    assert_eq!(s.max_len, 8);
    let total = s.total();
    assert_eq!(
        (total.capacity, total.len, total.sent, total.dropped()),
        (8, 8, 10, 8)
    );
    // Strict order is visible with fairness far away: lane 0's newest two
    // first, then each lane's survivors in order (fair_every 8: the 8th
    // take would be fair, but by then only one lane is left).
    assert_eq!(drain(&mut rx), [2, 3, 10, 11, 20, 21, 30, 31]);
    assert_eq!(rx.stats().fair_takes, 0);
    assert_eq!(
        rx.stats()
            .lanes
            .iter()
            .map(|l| l.received)
            .collect::<Vec<_>>(),
        [2, 2, 2, 2]
    );
}

#[tokio::test]
async fn higher_lanes_first_fifo_within_a_lane() {
    let (tx, mut rx) = bounded::priority_channel(&lanes(&[(8, Reject); 3]).fair_every(0)).unwrap();
    for (lane, x) in [(2, 1), (1, 2), (2, 3), (0, 4), (1, 5), (0, 6)] {
        assert_eq!(tx.try_send(lane, x).unwrap(), Delivery::Queued);
    }
    let mut got = Vec::new();
    while let Some(taken) = rx.try_recv_with_lane() {
        got.push(taken);
    }
    assert_eq!(got, [(0, 4), (0, 6), (1, 2), (1, 5), (2, 1), (2, 3)]);
    // A lane past the last is the last.
    let _ = tx.try_send(99, 7).unwrap();
    assert_eq!(rx.try_recv_with_lane(), Some((2, 7)));
    assert_eq!(tx.lanes(), 3);
    assert_eq!(rx.lanes(), 3);
}

/// Under a steady stream of high-priority work, every `fair_every`-th take
/// serves the oldest lower item; with `fair_every = 0` the low lane starves.
#[tokio::test]
async fn anti_starvation_serves_the_oldest_lower_item_every_nth_take() {
    let (tx, mut rx) = bounded::priority_channel(
        &lanes(&[(64, Reject), (64, Reject), (64, Reject)]).fair_every(4),
    )
    .unwrap();
    // Lower lanes: lane 2 holds the oldest (100, 101), lane 1 newer (200).
    let _ = tx.try_send(2, 100).unwrap();
    let _ = tx.try_send(1, 200).unwrap();
    let _ = tx.try_send(2, 101).unwrap();
    // Keep lane 0 busy: refill it after every take.
    let mut next_high = 0u32;
    for _ in 0..3 {
        let _ = tx.try_send(0, next_high).unwrap();
        next_high += 1;
    }
    let mut got = Vec::new();
    for _ in 0..12 {
        got.push(rx.try_recv_with_lane().unwrap());
        let _ = tx.try_send(0, next_high).unwrap();
        next_high += 1;
    }
    // Takes 4, 8 and 12 go below lane 0, oldest first: 100 (lane 2, older
    // than 200), then 200 (older than 101), then 101.
    assert_eq!(
        got,
        [
            (0, 0),
            (0, 1),
            (0, 2),
            (2, 100),
            (0, 3),
            (0, 4),
            (0, 5),
            (1, 200),
            (0, 6),
            (0, 7),
            (0, 8),
            (2, 101),
        ]
    );
    assert_eq!(rx.stats().fair_takes, 3);
    // Nothing waits below: lane 0 gets every take, the count restarts.
    for _ in 0..6 {
        assert_eq!(rx.try_recv_with_lane().unwrap().0, 0);
        let _ = tx.try_send(0, 0).unwrap();
    }
    assert_eq!(rx.stats().fair_takes, 3);

    // Strict priority: the low item waits as long as high work comes.
    let (tx, mut rx) =
        bounded::priority_channel(&lanes(&[(4, Reject), (4, Reject)]).fair_every(0)).unwrap();
    let _ = tx.try_send(1, 1).unwrap();
    for _ in 0..100 {
        let _ = tx.try_send(0, 0).unwrap();
        assert_eq!(rx.try_recv(), Some(0));
    }
    assert_eq!(rx.try_recv(), Some(1));
}

#[tokio::test]
async fn a_waiting_sender_is_woken_by_a_take_from_its_own_lane() {
    let (tx, mut rx) = bounded::priority_channel(&lanes(&[(1, Reject), (1, Wait)])).unwrap();
    let _ = tx.try_send(1, 10).unwrap();
    let _ = tx.try_send(0, 1).unwrap();
    let mut send = task::spawn(tx.send(1, 11));
    assert_pending!(send.poll());
    // A take from another lane makes no room in lane 1.
    assert_eq!(rx.try_recv(), Some(1));
    assert!(!send.is_woken());
    assert_pending!(send.poll());
    // A take from lane 1 does.
    assert_eq!(rx.try_recv(), Some(10));
    assert!(
        send.is_woken(),
        "a take from its lane wakes a waiting sender"
    );
    assert_eq!(assert_ready!(send.poll()).unwrap(), Delivery::Queued);
    drop(send);
    assert_eq!(rx.try_recv(), Some(11));
    let s = rx.stats().lanes[1];
    assert_eq!((s.sent, s.received, s.rejected, s.max_len), (2, 2, 0, 1));
}

#[tokio::test]
async fn a_cancelled_send_changes_nothing() {
    let (tx, mut rx) = bounded::priority_channel(&lanes(&[(1, Wait)])).unwrap();
    let _ = tx.send(0, 1).await.unwrap();
    let mut send = task::spawn(tx.send(0, 2));
    assert_pending!(send.poll());
    drop(send);
    assert_eq!(rx.try_recv(), Some(1));
    assert_eq!(rx.try_recv(), None);
    let s = rx.stats().lanes[0];
    assert_eq!((s.sent, s.rejected, s.closed), (1, 0, 0));
    // The lane works on: the cancelled waiter took no room with it.
    assert_eq!(tx.try_send(0, 3).unwrap(), Delivery::Queued);
}

#[tokio::test]
async fn a_waiting_sender_learns_the_receiver_is_gone() {
    let (tx, rx) = bounded::priority_channel(&lanes(&[(1, Wait), (1, Wait)])).unwrap();
    let _ = tx.send(1, 1).await.unwrap();
    let mut send = task::spawn(tx.send(1, 2));
    assert_pending!(send.poll());
    drop(rx);
    assert!(send.is_woken());
    assert!(matches!(
        assert_ready!(send.poll()),
        Err(SendError::Closed(2))
    ));
    drop(send);
    assert!(tx.is_closed());
    assert!(matches!(tx.try_send(0, 3), Err(SendError::Closed(3))));
    let s = tx.stats();
    assert_eq!((s.lanes[0].closed, s.lanes[1].closed), (1, 1));
}

#[tokio::test]
async fn recv_ends_when_all_senders_are_gone_and_every_lane_is_drained() {
    let (tx, mut rx) = bounded::priority_channel(&lanes(&[(4, Reject), (4, Reject)])).unwrap();
    let tx2 = tx.clone();
    let _ = tx.try_send(1, 1).unwrap();
    drop(tx);
    let mut recv = task::spawn(async {
        let a = rx.recv().await;
        let b = rx.recv().await;
        (a, b)
    });
    assert_pending!(recv.poll(), "tx2 still open");
    let _ = tx2.try_send(0, 2).unwrap();
    assert!(recv.is_woken());
    assert_eq!(assert_ready!(recv.poll()), (Some(1), Some(2)));
    drop(recv);
    let mut last = task::spawn(rx.recv());
    assert_pending!(last.poll());
    drop(tx2);
    assert!(last.is_woken(), "the last sender's drop wakes the receiver");
    assert_eq!(assert_ready!(last.poll()), None);
}

#[tokio::test]
async fn items_left_when_the_receiver_is_dropped_are_dropped_with_it() {
    let item = std::sync::Arc::new(());
    let (tx, rx) = bounded::priority_channel(&lanes(&[(2, Reject)])).unwrap();
    let _ = tx.try_send(0, item.clone()).unwrap();
    assert_eq!(std::sync::Arc::strong_count(&item), 2);
    drop(rx);
    drop(tx);
    assert_eq!(std::sync::Arc::strong_count(&item), 1);
}

#[test]
fn a_bad_config_names_every_field() {
    let err = bounded::priority_channel::<u32>(&PriorityConfig::new([])).unwrap_err();
    assert_eq!(err.to_string(), "lanes: [] must hold at least one lane");
    let err = bounded::priority_channel::<u32>(
        &lanes(&[(1, Wait), (0, Reject), (0, Wait)]).fair_every(1),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "lanes[1].capacity: 0 must be greater than zero; \
         lanes[2].capacity: 0 must be greater than zero; \
         fair_every: 1 must be 0 (strict priority) or at least 2"
    );
}

#[cfg(feature = "serde")]
#[test]
fn a_config_parses_from_toml() {
    let config: PriorityConfig = toml::from_str(
        r#"
        lanes = [
            { capacity = 16, policy = "wait" },
            { capacity = 1024, policy = "drop_oldest" },
        ]
        "#,
    )
    .unwrap();
    assert_eq!(config, lanes(&[(16, Wait), (1024, DropOldest)]));
    assert_eq!(config.fair_every, 8);
    assert!(toml::from_str::<PriorityConfig>("lanes = []\nfairness = 2").is_err());
}

/// BoundedLoop drains a priority channel within its budget: urgent items
/// that arrive while bulk work is queued overtake it; memory stays bounded.
#[tokio::test(start_paused = true)]
async fn bounded_loop_drives_a_priority_channel() {
    let (tx, rx) = bounded::priority_channel(&lanes(&[(8, Wait), (32, DropOldest)])).unwrap();
    let budget = LoopBudget::builder().rate(100).burst(1).build().unwrap();
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = order.clone();
    let consumer = tokio::spawn(BoundedLoop::new(rx, budget).run(move |x: u32| {
        seen.lock().unwrap().push(x);
        async {}
    }));
    for i in 0..20 {
        let _ = tx.try_send(1, 1000 + i).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(55)).await;
    for i in 0..3 {
        let _ = tx.send(0, i).await.unwrap();
    }
    drop(tx);
    let report = consumer.await.unwrap();
    assert_eq!(report.processed, 23);
    assert_eq!(report.queue.dropped(), 0);
    assert_eq!(report.queue.sent, 23);
    assert!(report.queue.max_len <= 40);
    let order = order.lock().unwrap().clone();
    let first_urgent = order.iter().position(|&x| x < 1000).unwrap();
    // About 6 bulk items went by in 55ms at 100/s; the urgent three come
    // next, together, before the 14 bulk items still queued.
    assert!(first_urgent <= 8, "{order:?}");
    assert_eq!(
        order[first_urgent..first_urgent + 3],
        [0, 1, 2],
        "{order:?}"
    );
}

#[tokio::test]
async fn an_item_that_replaces_the_oldest_counts_as_new_for_anti_starvation() {
    let (tx, mut rx) = bounded::priority_channel(
        &lanes(&[(64, Reject), (64, Reject), (1, DropOldest)]).fair_every(2),
    )
    .unwrap();
    let _ = tx.try_send(2, 100).unwrap();
    // 101 replaces 100 in lane 2: it arrived after 100, before 300.
    assert_eq!(tx.try_send(2, 101).unwrap(), Delivery::ReplacedOldest);
    let _ = tx.try_send(1, 300).unwrap();
    let mut lower = Vec::new();
    for high in 0..4 {
        let _ = tx.try_send(0, high).unwrap();
        let (lane, item) = rx.try_recv_with_lane().unwrap();
        if lane > 0 {
            lower.push(item);
        }
    }
    assert_eq!(lower, [101, 300], "the oldest waiting item first");
    assert_eq!(rx.stats().lanes[2].dropped_oldest, 1);
}

//! [`BoundedLoop`]: a consumer that drains a bounded queue within a budget.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use seawall_core::names::TARGET_BUDGET;

use crate::bounded::{QueueReceiver, QueueStats, Receiver};
use crate::loop_budget::LoopBudget;

/// Drives a [`Receiver`] (or a
/// [`PriorityReceiver`](crate::bounded::PriorityReceiver), highest priority
/// first) through an async handler, one token of a
/// [`LoopBudget`] per item: the consumer never exceeds its budget, and the
/// producer, facing a bounded queue, never grows memory past its capacity:
/// what does not fit is dropped or refused by the queue's policy, and
/// counted.
///
/// When the budget is spent, the loop sleeps with
/// [`LoopBudget::backoff`] (10ms, 15ms, … by default) and tries again. It
/// ends cleanly when every sender is gone and the queue is drained, and
/// returns a [`LoopReport`].
///
/// ```
/// use seawall_budget::{BoundedLoop, LoopBudget};
/// use seawall_budget::bounded::{self, OverflowPolicy};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let (tx, rx) = bounded::channel(8, OverflowPolicy::DropOldest).unwrap();
/// let consumer = tokio::spawn(BoundedLoop::new(rx, LoopBudget::new(100)).run(|job: u32| async move {
///     let _ = job; // handle it
/// }));
/// for job in 0..20 {
///     let _ = tx.send(job).await; // a burst: 20 jobs at once into 8 slots
/// }
/// drop(tx);
/// let report = consumer.await.unwrap();
/// assert_eq!(report.processed + report.queue.dropped(), 20);
/// # }
/// ```
///
/// A priority channel is driven the same way; the report's `queue` adds its
/// lanes up:
///
/// ```
/// use seawall_budget::{BoundedLoop, LoopBudget};
/// use seawall_budget::bounded::{self, LaneConfig, OverflowPolicy, PriorityConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let (tx, rx) = bounded::priority_channel(&PriorityConfig::new([
///     LaneConfig::new(4, OverflowPolicy::Wait),
///     LaneConfig::new(4, OverflowPolicy::DropOldest),
/// ]))
/// .unwrap();
/// for job in 0..6 {
///     let _ = tx.try_send(1, job); // bulk: the oldest two are dropped
/// }
/// tx.send(0, 100).await.unwrap(); // urgent
/// drop(tx);
/// let mut order = Vec::new();
/// let report = BoundedLoop::new(rx, LoopBudget::new(100))
///     .run(|job: u32| {
///         order.push(job);
///         async {}
///     })
///     .await;
/// assert_eq!(order, [100, 2, 3, 4, 5]);
/// assert_eq!(report.queue.dropped_oldest, 2);
/// # }
/// ```
#[derive(Debug)]
pub struct BoundedLoop<T, R = Receiver<T>> {
    rx: R,
    budget: LoopBudget,
    _item: PhantomData<fn() -> T>,
}

/// What a [`BoundedLoop`] did, returned when it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct LoopReport {
    /// Items handled.
    pub processed: u64,
    /// Times the loop backed off because the budget was spent.
    pub backoffs: u64,
    /// Total time spent backing off.
    pub backoff_time: Duration,
    /// The queue's counters at the end: what was dropped or refused, and why.
    pub queue: QueueStats,
}

impl<T, R: QueueReceiver<Item = T>> BoundedLoop<T, R> {
    /// A loop draining `rx` (a [`Receiver`] or a
    /// [`PriorityReceiver`](crate::bounded::PriorityReceiver)) within
    /// `budget`.
    pub fn new(rx: R, budget: LoopBudget) -> Self {
        BoundedLoop {
            rx,
            budget,
            _item: PhantomData,
        }
    }

    /// The budget.
    pub fn budget(&self) -> &LoopBudget {
        &self.budget
    }

    /// The queue's counters now.
    pub fn queue_stats(&self) -> QueueStats {
        self.rx.queue_stats()
    }

    /// Runs until every sender is gone and the queue is drained. Each item
    /// is taken from the queue, then waits for its budget token (backing
    /// off), then goes to the handler; while the loop backs off, the queue
    /// keeps applying its policy to newer items.
    pub async fn run<F, Fut>(mut self, mut handler: F) -> LoopReport
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut processed = 0u64;
        let mut backoffs = 0u64;
        let mut backoff_time = Duration::ZERO;
        // Item first, then its token: a token taken while waiting for an
        // item would let that item and the next one through at the same
        // instant, one more than the burst.
        while let Some(item) = self.rx.recv().await {
            while self.budget.try_consume(1).is_err() {
                // Saturating: each delay is at most `backoff_max`, but a
                // loop may back off for as long as it lives.
                backoff_time = backoff_time.saturating_add(self.budget.backoff().await);
                backoffs += 1;
            }
            handler(item).await;
            processed += 1;
        }
        let report = LoopReport {
            processed,
            backoffs,
            backoff_time,
            queue: self.rx.queue_stats(),
        };
        tracing::debug!(
            target: TARGET_BUDGET,
            name = %self.budget.name(),
            processed,
            dropped = report.queue.dropped(),
            ?backoff_time,
            "bounded loop finished: all senders gone, queue drained"
        );
        report
    }
}

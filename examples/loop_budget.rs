//! Loop budgets and a bounded queue, side by side.
//!
//! - a network-style loop that would spin as fast as the CPU allows, held to
//!   1000 iterations/s by `LoopBudget::for_network()`;
//! - a consensus-style loop that handles batches, accounted with
//!   `consume(n)`, held to 500 messages/s by `LoopBudget::for_consensus()`;
//! - a bounded queue hit by a burst of 1000 jobs: the queue keeps 100, drops
//!   the oldest, counts every drop, and a `BoundedLoop` drains it at 200/s.
//!
//! Run with `cargo run --example loop_budget`.

use std::time::Duration;

use seawall::budget::bounded::{self, OverflowPolicy};
use seawall::budget::{BoundedLoop, LoopBudget};
use tokio::time::Instant;

const RUN_FOR: Duration = Duration::from_millis(500);

/// Polls a socket-like source as fast as it can, within the budget.
async fn network_loop(budget: LoopBudget) {
    let start = Instant::now();
    let mut polled = 0u64;
    while start.elapsed() < RUN_FOR {
        if budget.can_proceed() {
            budget.consume(1);
            polled += 1; // read from the socket here
        } else {
            budget.backoff().await;
        }
    }
    let s = budget.stats();
    println!(
        "network   (1000/s): {polled} iterations in {:?}; exhausted {} times, backed off {} times for {:?}",
        start.elapsed(),
        s.exhausted,
        s.backoffs,
        s.backoff_time,
    );
}

/// Handles batches of consensus messages; a batch spends one token per message.
async fn consensus_loop(budget: LoopBudget) {
    let start = Instant::now();
    let mut messages = 0u64;
    let mut round = 0u32;
    while start.elapsed() < RUN_FOR {
        let batch = 1 + round % 8; // messages that arrived this round
        match budget.try_consume(batch) {
            Ok(()) => {
                messages += u64::from(batch);
                round += 1;
            }
            Err(e) => tokio::time::sleep(e.retry_after()).await,
        }
    }
    let s = budget.stats();
    println!(
        "consensus  (500/s): {messages} messages in {round} rounds in {:?}; exhausted {} times",
        start.elapsed(),
        s.exhausted,
    );
}

/// A burst of 1000 jobs into a queue of 100, drained at 200/s.
async fn queue_under_a_burst() {
    let (tx, rx) = bounded::channel(100, OverflowPolicy::DropOldest).expect("capacity is not zero");
    let consumer = tokio::spawn(BoundedLoop::new(rx, LoopBudget::for_discovery()).run(
        |job: u32| async move {
            std::hint::black_box(job); // handle the job here
        },
    ));
    for job in 0..1000 {
        // DropOldest never refuses: a full queue drops its oldest job instead.
        let _ = tx.send(job).await;
    }
    drop(tx); // the consumer drains what is left and stops
    let report = consumer.await.expect("the consumer does not panic");
    println!(
        "queue  (100 slots): processed {}, dropped {} (oldest first), at most {} queued; backed off {} times for {:?}",
        report.processed,
        report.queue.dropped(),
        report.queue.max_len,
        report.backoffs,
        report.backoff_time,
    );
}

#[tokio::main]
async fn main() {
    tokio::join!(
        network_loop(LoopBudget::for_network()),
        consensus_loop(LoopBudget::for_consensus()),
        queue_under_a_burst(),
    );
}

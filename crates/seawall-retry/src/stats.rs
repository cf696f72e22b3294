//! Counters shared by a layer and all its services, and their snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StopReason;

/// A snapshot of a retry layer's counters since it was built; see
/// [`RetryLayer::stats`](crate::RetryLayer::stats).
///
/// Every service made by one layer (and every clone) counts into the same
/// counters.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RetryStats {
    /// Requests received (calls to the retry service).
    pub requests: u64,
    /// Calls made to the inner service: `requests + retries`. A retry is
    /// counted when it is sent, not when it is decided: a request dropped
    /// while backing off made only the calls it sent.
    pub attempts: u64,
    /// Attempts after the first, counted when they are sent.
    pub retries: u64,
    /// Retries the budget refused (each one ended a request).
    pub budget_refusals: u64,
    /// Requests that stopped after `max_attempts`.
    pub gave_up_attempts_exhausted: u64,
    /// Requests that stopped because the next retry would pass the deadline.
    pub gave_up_deadline: u64,
    /// Failures that were not retryable.
    pub gave_up_not_retryable: u64,
    /// Failures whose hint said not to retry ([`StopReason::DoNotRetry`]).
    pub gave_up_do_not_retry: u64,
    /// Failures whose hint asked for a longer wait than the deadline (or
    /// the backoff's cap) allows ([`StopReason::HintTooLong`]).
    pub gave_up_hint_too_long: u64,
    /// Retries that waited for a hint: the failure's
    /// [`Hint::After`](crate::hint::Hint::After) was longer than the
    /// backoff's delay, so the retry waited the hint instead.
    pub hinted: u64,
    /// Requests the clone function could not copy (sent once).
    pub not_cloneable: u64,
    /// Retries the budget would allow now; `None` without a budget.
    pub budget_balance: Option<f64>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) not_cloneable: AtomicU64,
    pub(crate) hinted: AtomicU64,
    gave_up: [AtomicU64; 6],
}

fn index(reason: StopReason) -> usize {
    match reason {
        StopReason::AttemptsExhausted => 0,
        StopReason::BudgetExhausted => 1,
        StopReason::Deadline => 2,
        StopReason::NotRetryable => 3,
        StopReason::DoNotRetry => 4,
        StopReason::HintTooLong => 5,
    }
}

impl Counters {
    pub(crate) fn gave_up(&self, reason: StopReason) {
        self.gave_up[index(reason)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, budget_balance: Option<f64>) -> RetryStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let requests = get(&self.requests);
        let retries = get(&self.retries);
        RetryStats {
            requests,
            attempts: requests + retries,
            retries,
            budget_refusals: get(&self.gave_up[index(StopReason::BudgetExhausted)]),
            gave_up_attempts_exhausted: get(&self.gave_up[index(StopReason::AttemptsExhausted)]),
            gave_up_deadline: get(&self.gave_up[index(StopReason::Deadline)]),
            gave_up_not_retryable: get(&self.gave_up[index(StopReason::NotRetryable)]),
            gave_up_do_not_retry: get(&self.gave_up[index(StopReason::DoNotRetry)]),
            gave_up_hint_too_long: get(&self.gave_up[index(StopReason::HintTooLong)]),
            hinted: get(&self.hinted),
            not_cloneable: get(&self.not_cloneable),
            budget_balance,
        }
    }
}

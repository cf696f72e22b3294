//! `metrics` handles, registered once per layer under the core names.

use metrics::{Counter, counter};
use seawall_core::names::{
    LABEL_NAME, LABEL_REASON, RETRY_ATTEMPTS_TOTAL, RETRY_BUDGET_EXHAUSTED_TOTAL,
    RETRY_GAVE_UP_TOTAL, RETRY_RETRIES_TOTAL,
};

use crate::error::StopReason;

/// Handles are resolved when the layer is built, so install the recorder
/// before building layers; per call only an increment remains.
pub(crate) struct Handles {
    pub(crate) attempts: Counter,
    pub(crate) retries: Counter,
    budget_exhausted: Counter,
    gave_up: [Counter; 6],
}

impl Handles {
    pub(crate) fn new(name: &str) -> Self {
        let gave_up = |reason: StopReason| counter!(RETRY_GAVE_UP_TOTAL, LABEL_NAME => name.to_owned(), LABEL_REASON => reason.as_str());
        Handles {
            attempts: counter!(RETRY_ATTEMPTS_TOTAL, LABEL_NAME => name.to_owned()),
            retries: counter!(RETRY_RETRIES_TOTAL, LABEL_NAME => name.to_owned()),
            budget_exhausted: counter!(RETRY_BUDGET_EXHAUSTED_TOTAL, LABEL_NAME => name.to_owned()),
            gave_up: [
                gave_up(StopReason::AttemptsExhausted),
                gave_up(StopReason::BudgetExhausted),
                gave_up(StopReason::Deadline),
                gave_up(StopReason::NotRetryable),
                gave_up(StopReason::DoNotRetry),
                gave_up(StopReason::HintTooLong),
            ],
        }
    }

    pub(crate) fn gave_up(&self, reason: StopReason) {
        let i = match reason {
            StopReason::AttemptsExhausted => 0,
            StopReason::BudgetExhausted => {
                self.budget_exhausted.increment(1);
                1
            }
            StopReason::Deadline => 2,
            StopReason::NotRetryable => 3,
            StopReason::DoNotRetry => 4,
            StopReason::HintTooLong => 5,
        };
        self.gave_up[i].increment(1);
    }
}

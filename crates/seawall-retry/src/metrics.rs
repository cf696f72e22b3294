//! `metrics` handles, registered once per layer under the core names.

use metrics::{Counter, counter};
use seawall_core::names::{
    LABEL_NAME, LABEL_REASON, RETRY_ATTEMPTS_TOTAL, RETRY_BUDGET_EXHAUSTED_TOTAL,
    RETRY_GAVE_UP_TOTAL, RETRY_HINTED_TOTAL, RETRY_RETRIES_TOTAL,
};

use crate::error::StopReason;

/// Handles are resolved when the layer is built, so install the recorder
/// before building layers; per call only an increment remains.
pub(crate) struct Handles {
    pub(crate) attempts: Counter,
    pub(crate) retries: Counter,
    /// Retries that waited for a hint (counted when decided, as
    /// `RetryStats::hinted`).
    pub(crate) hinted: Counter,
    budget_exhausted: Counter,
    gave_up: [Counter; 6],
}

impl Handles {
    pub(crate) fn new(name: &str) -> Self {
        let gave_up = |reason: StopReason| counter!(RETRY_GAVE_UP_TOTAL, LABEL_NAME => name.to_owned(), LABEL_REASON => reason.as_str());
        Handles {
            attempts: counter!(RETRY_ATTEMPTS_TOTAL, LABEL_NAME => name.to_owned()),
            retries: counter!(RETRY_RETRIES_TOTAL, LABEL_NAME => name.to_owned()),
            hinted: counter!(RETRY_HINTED_TOTAL, LABEL_NAME => name.to_owned()),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use metrics::{
        CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use seawall_core::BoxError;
    use tower::{Layer, ServiceExt, service_fn};

    use crate::hint::{Hint, hint_fn};
    use crate::{Backoff, RetryLayer};

    struct Cell(AtomicU64);

    impl CounterFn for Cell {
        fn increment(&self, v: u64) {
            self.0.fetch_add(v, Ordering::Relaxed);
        }
        fn absolute(&self, v: u64) {
            self.0.store(v, Ordering::Relaxed);
        }
    }

    /// Counters by `name{label=value,…}`.
    #[derive(Default)]
    struct Counters(Mutex<BTreeMap<String, Arc<Cell>>>);

    impl Counters {
        fn get(&self, id: &str) -> u64 {
            let map = self.0.lock().unwrap();
            map.get(id).map_or(0, |c| c.0.load(Ordering::Relaxed))
        }
    }

    impl Recorder for Counters {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let id = format!("{}{{{}}}", key.name(), labels.join(","));
            let mut map = self.0.lock().unwrap();
            let cell = map
                .entry(id)
                .or_insert_with(|| Arc::new(Cell(AtomicU64::new(0))));
            metrics::Counter::from_arc(cell.clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// Errors whose text is the hint: `"wait"` (250ms), `"stop"`
    /// (`DoNotRetry`), `"long"` (an hour: past the 1s deadline).
    fn read(result: &Result<u32, BoxError>) -> Hint {
        match result.as_ref().map_err(|e| e.to_string()).err().as_deref() {
            Some("wait") => Hint::After(Duration::from_millis(250)),
            Some("stop") => Hint::DoNotRetry,
            Some("long") => Hint::After(Duration::from_secs(3600)),
            _ => Hint::None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hinted_retries_and_each_stop_reason_are_counted() {
        let recorder = Counters::default();
        let layer = metrics::with_local_recorder(&recorder, || {
            RetryLayer::builder()
                .name("users")
                .max_attempts(2)
                .backoff(Backoff::constant(Duration::from_millis(10)))
                .deadline(Duration::from_secs(1))
                .hint(hint_fn(read as fn(&Result<u32, BoxError>) -> Hint))
                .build()
                .unwrap()
        });
        for text in ["wait", "stop", "long"] {
            let svc = layer.layer(service_fn(move |_: u32| async move {
                Err::<u32, BoxError>(text.into())
            }));
            assert!(svc.oneshot(1).await.is_err());
        }
        let get = |id: &str| recorder.get(id);
        assert_eq!(get("seawall_retry_hinted_total{name=users}"), 1);
        assert_eq!(get("seawall_retry_retries_total{name=users}"), 1);
        for (reason, n) in [
            ("attempts_exhausted", 1),
            ("do_not_retry", 1),
            ("hint_too_long", 1),
            ("deadline", 0),
        ] {
            let id = format!("seawall_retry_gave_up_total{{name=users,reason={reason}}}");
            assert_eq!(get(&id), n, "{reason}");
        }
        let stats = layer.stats();
        assert_eq!(stats.hinted, 1);
        assert_eq!(
            (stats.gave_up_do_not_retry, stats.gave_up_hint_too_long),
            (1, 1)
        );
    }
}

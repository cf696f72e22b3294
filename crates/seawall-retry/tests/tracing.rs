//! Tracing events of the retry layer.
//!
//! This test has a binary of its own: tracing caches each callsite's interest
//! process-wide, so a scoped subscriber set while other tests run on other
//! threads may miss events. Alone here, it sees every one.

use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use seawall_core::BoxError;
use seawall_retry::{Backoff, RetryLayer};
use seawall_test_support::runtime;
use tower::{Layer, ServiceExt};

/// Counts `seawall_retry` events at DEBUG.
struct CountEvents(Arc<AtomicUsize>);

impl tracing::Subscriber for CountEvents {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let m = event.metadata();
        if m.target() == "seawall_retry" && *m.level() == tracing::Level::DEBUG {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn one_debug_event_per_retry_and_one_when_giving_up() {
    let events = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(CountEvents(events.clone()));
    let rt = runtime::paused();
    rt.block_on(async {
        let layer = RetryLayer::builder()
            .no_budget()
            .backoff(Backoff::constant(Duration::from_millis(1)))
            .build()
            .unwrap();
        let backend =
            tower::service_fn(|_req: ()| ready(Err::<u32, BoxError>("connection reset".into())));
        let _ = layer.layer(backend).oneshot(()).await;
    });
    assert_eq!(events.load(Ordering::SeqCst), 3, "2 retries + 1 give-up");
}

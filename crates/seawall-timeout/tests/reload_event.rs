//! A reload emits exactly one `info` event, naming the layer and the fields
//! that changed.
//!
//! A binary of its own: tracing caches each callsite's interest
//! process-wide, so a scoped subscriber set while other tests run on other
//! threads may miss events.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

/// Keeps the `layer` and `changed` fields of every INFO event of `target`.
struct Capture {
    target: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        if matches!(field.name(), "layer" | "changed") {
            self.0.push_str(&format!("{}={:?} ", field.name(), value));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "layer" {
            self.0.push_str(&format!("layer={value} "));
        }
    }
}

impl tracing::Subscriber for Capture {
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
        if m.target() == self.target && *m.level() == tracing::Level::INFO {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.seen
                .lock()
                .unwrap()
                .push(fields.0.trim_end().to_owned());
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn capture(target: &'static str) -> (Arc<Mutex<Vec<String>>>, tracing::subscriber::DefaultGuard) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = tracing::subscriber::set_default(Capture {
        target,
        seen: seen.clone(),
    });
    (seen, guard)
}

#[test]
fn one_info_event_per_reload() {
    use seawall_timeout::{AdaptiveTimeoutConfig, AdaptiveTimeoutLayer};
    let rt = seawall_test_support::runtime::paused();
    let _enter = rt.enter();
    let (seen, _guard) = capture("seawall_timeout");
    let config = AdaptiveTimeoutConfig::default();
    let layer = AdaptiveTimeoutLayer::from_config(&config).unwrap();
    let mut next = config.clone();
    next.percentile = 95.0;
    layer.reload(&next).unwrap();
    next.percentile = 101.0;
    assert!(layer.reload(&next).is_err());
    let seen = seen.lock().unwrap();
    assert_eq!(*seen, ["layer=adaptive_timeout changed=[\"percentile\"]"]);
}

//! A shedder's reload is one `tracing` event naming what changed.
//!
//! A binary of its own: a thread-scoped subscriber misses events whose
//! callsite another test thread registers at the same moment (tracing
//! caches each callsite's interest process-wide), so nothing else may run
//! beside it.

use std::fmt;
use std::sync::{Arc, Mutex};

use seawall_shed::{Limit, ShedConfig, Shedder};

#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<String>>>);

struct Fields(Vec<String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            self.0.push(format!("{}={:?}", field.name(), value));
        }
    }
}

impl tracing::Subscriber for Events {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::INFO
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(format!(
            "{} {} {}",
            event.metadata().target(),
            event.metadata().level(),
            fields.0.join(" ")
        ));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_reload_is_one_info_event_naming_what_changed() {
    let events = Events::default();
    let _guard = tracing::subscriber::set_default(events.clone());
    let config = ShedConfig::new().name("api").limit(Limit::Fixed(10));
    let shedder = Shedder::new(&config).unwrap();
    shedder
        .reload(&config.clone().limit(Limit::Fixed(20)).soft_limit(15))
        .unwrap();
    assert!(shedder.reload(&config.clone().name("x")).is_err());
    assert_eq!(
        events.0.lock().unwrap().clone(),
        ["seawall_shed INFO name=api changed=limit, soft_limit limit=20"]
    );
}

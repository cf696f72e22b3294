//! Every transition emits one `tracing` event with target `seawall_breaker`
//! and the fields `name`, `key`, `from`, `to`; calls emit nothing.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall_breaker::{CircuitBreaker, TripPolicy};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One test at a time: a thread-scoped subscriber misses events whose
/// callsite another test thread registers at the same moment (tracing
/// caches each callsite's interest process-wide).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<String>>>);

struct Fields(Vec<String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            self.0.push(format!("{}={:?}", field.name(), value));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{}={}", field.name(), value));
    }
}

impl Subscriber for Events {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let level = if *meta.level() == Level::WARN {
            "WARN"
        } else {
            "INFO"
        };
        self.0.lock().unwrap().push(format!(
            "{} {} {}",
            meta.target(),
            level,
            fields.0.join(" ")
        ));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn transitions_are_traced() {
    let _one = ONE_AT_A_TIME.lock().await;
    let events = Events::default();
    let _guard = tracing::subscriber::set_default(events.clone());
    let b = CircuitBreaker::builder()
        .name("db")
        .policy(TripPolicy::consecutive_failures(1))
        .open_duration(Duration::from_secs(1))
        .success_threshold(1)
        .build_breaker()
        .unwrap();
    for _ in 0..10 {
        b.try_acquire().unwrap().success();
    }
    assert!(events.0.lock().unwrap().is_empty(), "nothing per call");
    b.try_acquire().unwrap().failure();
    let _ = b.try_acquire();
    tokio::time::advance(Duration::from_secs(1)).await;
    b.try_acquire().unwrap().success();
    b.force_open();
    b.reset();
    let got = events.0.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            "seawall_breaker WARN name=db key= from=closed to=open open_for=1s",
            "seawall_breaker INFO name=db key= from=open to=half_open",
            "seawall_breaker INFO name=db key= from=half_open to=closed",
            "seawall_breaker WARN name=db key= from=closed to=forced_open open_for=1s",
            "seawall_breaker INFO name=db key= from=forced_open to=closed",
        ]
    );
}

#[test]
fn a_reload_is_one_info_event_naming_what_changed() {
    let _one = ONE_AT_A_TIME.blocking_lock();
    let events = Events::default();
    let _guard = tracing::subscriber::set_default(events.clone());
    let config = seawall_breaker::BreakerConfig::new()
        .name("db")
        .policy(TripPolicy::consecutive_failures(3));
    let b = CircuitBreaker::from_config(&config).unwrap();
    b.reload(
        &config
            .clone()
            .policy(TripPolicy::consecutive_failures(5))
            .open_duration(Duration::from_secs(5)),
    )
    .unwrap();
    b.reload(&b.config()).unwrap();
    // A refused reload says so to its caller only.
    assert!(b.reload(&config.clone().name("other")).is_err());
    assert_eq!(
        events.0.lock().unwrap().clone(),
        [
            "seawall_breaker INFO name=db changed=policy, open_duration",
            "seawall_breaker INFO name=db changed=(nothing)",
        ]
    );
}

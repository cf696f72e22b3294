//! A `tracing` subscriber that keeps the events a test asks for (feature
//! `tracing`).
//!
//! Set it for the current thread with [`capture`]. A thread-scoped
//! subscriber can miss an event whose callsite another thread registers at
//! the same moment (tracing caches each callsite's interest process-wide):
//! put a test that captures in a binary of its own, or run such tests one
//! at a time.
//!
//! ```
//! use seawall_test_support::trace::capture;
//!
//! let (seen, _guard) = capture("app", &["name", "changed"]);
//! tracing::info!(target: "app", name = "db", changed = %"rate, burst", other = 1, "reloaded");
//! tracing::debug!(target: "app", name = "db", "not kept: below INFO");
//! assert_eq!(seen.lines(), ["INFO name=db changed=rate, burst"]);
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The events kept: one line each, `LEVEL field=value …`, in the order the
/// fields were asked for.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<String>>>);

impl Captured {
    /// The lines kept so far.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Capture {
    target: &'static str,
    fields: &'static [&'static str],
    seen: Captured,
}

struct Fields<'a> {
    wanted: &'a [&'static str],
    values: Vec<Option<String>>,
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(i) = self.wanted.iter().position(|w| *w == field.name()) {
            self.values[i] = Some(format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(i) = self.wanted.iter().position(|w| *w == field.name()) {
            self.values[i] = Some(value.to_owned());
        }
    }
}

impl Subscriber for Capture {
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
        if meta.target() != self.target || *meta.level() > Level::INFO {
            return;
        }
        let mut fields = Fields {
            wanted: self.fields,
            values: vec![None; self.fields.len()],
        };
        event.record(&mut fields);
        let mut line = meta.level().to_string();
        for (name, value) in self.fields.iter().zip(fields.values) {
            if let Some(value) = value {
                line.push_str(&format!(" {name}={value}"));
            }
        }
        self.seen
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Keeps, for as long as the guard lives on this thread, every event of
/// `target` at INFO or above, with the `fields` asked for (those present).
pub fn capture(
    target: &'static str,
    fields: &'static [&'static str],
) -> (Captured, tracing::subscriber::DefaultGuard) {
    let seen = Captured::default();
    let guard = tracing::subscriber::set_default(Capture {
        target,
        fields,
        seen: seen.clone(),
    });
    (seen, guard)
}

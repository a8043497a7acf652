//! The library's logs for bindings that hand them to their own logging (the
//! Python package's `logging`): one rule for what is logged and how a
//! record reads, whatever the binding. Rust programs use a `tracing`
//! subscriber of their own instead.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
pub use tracing::Level;
use tracing::{Event, Metadata, Subscriber};

/// Records from the library itself down to DEBUG; from its dependencies
/// (h2, tonic, hyper) only warnings and errors.
fn wanted(meta: &Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("libregistry");
    if ours {
        *meta.level() <= Level::DEBUG
    } else {
        *meta.level() <= Level::WARN
    }
}

/// Collects an event's message and its other fields as `key=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// A subscriber handing each record to a sink; spans are not tracked (the
/// library logs events only).
struct Forward<F> {
    sink: F,
    next_span: AtomicU64,
}

impl<F> Subscriber for Forward<F>
where
    F: Fn(Level, &str, String) + Send + Sync + 'static,
{
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        wanted(meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed).max(1))
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut text = Text::default();
        event.record(&mut text);
        text.message.push_str(&text.fields);
        (self.sink)(*meta.level(), meta.target(), text.message);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Makes `sink` receive every record of the library (DEBUG and up) and of
/// its dependencies (WARN and up) as (level, target, text: the message then
/// `key=value` fields), for the whole process. `sink` runs on the thread
/// that logs, often the library's runtime thread: it must not block. False
/// when the process already had a global `tracing` subscriber.
pub fn forward_logs<F>(sink: F) -> bool
where
    F: Fn(Level, &str, String) + Send + Sync + 'static,
{
    let forward = Forward {
        sink,
        next_span: AtomicU64::new(1),
    };
    tracing::subscriber::set_global_default(forward).is_ok()
}

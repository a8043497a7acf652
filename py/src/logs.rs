//! Library logs to Python's `logging`: a `tracing` subscriber that formats
//! each event and queues it for the dispatcher thread, which logs it under
//! the logger `libregistry`. Nothing here touches the GIL, so logging never
//! delays the library runtime.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::dispatch::{self, Item};

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

/// Python's level number for a tracing level.
fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
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

/// The subscriber; spans are not tracked (the library logs events only).
struct ToPython {
    next_span: AtomicU64,
}

impl Subscriber for ToPython {
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
        dispatch::send(Item::Log(
            python_level(meta.level()),
            meta.target().to_string(),
            text.message,
        ));
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Makes this module's subscriber the process-wide one for the library's
/// `tracing` (statically linked into this extension, so no one else's).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(ToPython {
        next_span: AtomicU64::new(1),
    });
}

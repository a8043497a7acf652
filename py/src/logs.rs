//! Library logs to Python's `logging`: the core hands each record (see
//! `libregistry::logs`) to the dispatcher queue, whose thread logs it under
//! the logger `libregistry`. Nothing here touches the GIL, so logging never
//! delays the library runtime.

use libregistry::logs::Level;

use crate::dispatch::{self, Item};

/// Python's level number for a tracing level.
fn python_level(level: Level) -> u8 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// Forwards the library's logs (statically linked into this extension, so
/// no one else's) to Python.
pub fn install() {
    libregistry::logs::forward_logs(|level, target, message| {
        dispatch::send(Item::Log(python_level(level), target.to_string(), message));
    });
}

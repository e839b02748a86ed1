//! Structured logs with `tracing`. Nothing secret is ever a field.
//!
//! Lines are written to stdout by a thread of their own: a worker hands a
//! formatted line to a bounded queue and goes on, never waiting for a slow
//! terminal or pipe. When the queue is full (stdout stalled), lines are
//! dropped rather than workers stopped, and counted
//! (`polyauth_log_lines_dropped_total`).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::server::LogFormat;

/// Lines waiting for the writer thread at most.
const QUEUED_LINES: usize = 64 * 1024;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Installs the global subscriber; `RUST_LOG` overrides the default filter.
/// Keep the guard until the process ends: dropping it writes what is queued.
pub fn init(format: LogFormat) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("polyauth-log")
        .finish(std::io::stdout());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(writer)
        .with_ansi(std::io::stdout().is_terminal());
    // A second init (tests) keeps the first subscriber.
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.ok()?;
    let _ = DROPPED.set(dropped);
    Some(guard)
}

/// Lines dropped so far because stdout did not keep up.
pub fn dropped_lines() -> usize {
    DROPPED.get().map_or(0, ErrorCounter::dropped_lines)
}

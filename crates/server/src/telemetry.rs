//! Structured logs with `tracing`: human-readable by default, JSON with `UJ_LOG_FORMAT=json`.
//! `RUST_LOG` filters as usual (default `info`, with PostgreSQL's notices, such as the
//! migrator's "relation already exists, skipping" at every start, at `warn`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let default = || EnvFilter::new("info,sqlx::postgres::notice=warn");
    // A filter that does not parse is said, not silently replaced.
    let (filter, refused) = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(text) => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(error) => (default(), Some((text, error))),
        },
        Err(_) => (default(), None),
    };
    // Colours only for a person at a terminal: a file, a pipe or journald got escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Some((text, error)) = refused {
        tracing::warn!("RUST_LOG={text:?} is not a log filter ({error}); logging at info");
    }
}

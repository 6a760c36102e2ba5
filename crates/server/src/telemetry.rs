//! Structured logs with `tracing`: human-readable by default, JSON with `UJ_LOG_FORMAT=json`.
//! `RUST_LOG` filters as usual (default `info`, with PostgreSQL's notices, such as the
//! migrator's "relation already exists, skipping" at every start, at `warn`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

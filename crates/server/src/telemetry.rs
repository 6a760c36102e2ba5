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

/// An error and its causes on one line, as `{:#}` writes them, without a cause whose text
/// the one before ends with: sqlx's errors quote their source, so a PostgreSQL error came out
/// twice (`relation "x" does not exist: relation "x" does not exist`; found by the
/// observability probe).
pub fn causes(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut before = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !text.is_empty() && !before.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        before = text;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::causes;

    #[derive(Debug, thiserror::Error)]
    #[error("error returned from database: relation \"x\" does not exist")]
    struct Quoting(#[source] Source);

    #[derive(Debug, thiserror::Error)]
    #[error("relation \"x\" does not exist")]
    struct Source;

    #[test]
    fn a_cause_the_line_already_says_is_said_once() {
        let error = anyhow::Error::from(Quoting(Source)).context("request failed");
        assert_eq!(
            causes(&error),
            "request failed: error returned from database: relation \"x\" does not exist"
        );
        let plain = anyhow::anyhow!("no answer").context("the database is unavailable");
        assert_eq!(causes(&plain), "the database is unavailable: no answer");
        // A cause said earlier in the line, not just before, is said again.
        let again = anyhow::anyhow!("timed out")
            .context("no answer")
            .context("timed out waiting");
        assert_eq!(causes(&again), "timed out waiting: no answer: timed out");
    }
}

//! Storage for UserJourneys: one [`Store`] trait, implemented for SQLite ([`SqliteStore`])
//! and PostgreSQL ([`PgStore`]). Both run the same SQL where the dialects agree (see
//! `shared.rs`) and are held to one conformance suite (`tests/conformance.rs`).

mod copy;
mod error;
mod key_filter;
mod postgres;
#[cfg(test)]
mod postgres_plans;
mod rows;
mod shared;
mod shared_cohort_sync;
mod shared_invites;
mod shared_mixpanel;
mod shared_studies;
mod sqlite;
mod sqlite_checkpoint;
mod sqlite_inline;
mod sqlite_pages;
#[cfg(test)]
mod sqlite_plans;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod time;

use std::sync::Arc;

pub use copy::{copy_sqlite_to_postgres, CopyError};
pub use error::StoreError;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use store::{
    AppEventCount, AudienceDeletion, CohortSyncStore, Exclusive, InviteStore, LiveStarts,
    MembershipsRead, MixpanelStore, NewAccount, NewInvitation, Page, PageRequest, RuleStats,
    SettingsChange, Store, StudyStore, SyncCohort, SyncPage, UserHistory, WebhookReceiver,
    WithMemberships, MAX_APP_EVENT_NAMES, MAX_SESSIONS_PER_ACCOUNT,
};

/// Which database a `DATABASE_URL` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The database `url` names: PostgreSQL for `postgres://` and `postgresql://`, SQLite
    /// for `sqlite:` URLs and plain paths, schemes in any case (RFC 3986). Anything else that
    /// starts like a URL (`mysql://`, a misspelt `postgress://`) is refused: taken as a file
    /// name, it made a SQLite file, and errors about that file showed the URL's password. A
    /// file whose name has a colon in its first segment is written `./this:that` (as RFC 3986
    /// has relative references).
    pub fn of(url: &str) -> Result<Self, StoreError> {
        let Some(scheme) = scheme_of(url) else {
            return sqlite_file(url);
        };
        let is = |name: &str| scheme.eq_ignore_ascii_case(name);
        let after = &url[scheme.len() + 1..];
        if is("sqlite") {
            sqlite_file(after.strip_prefix("//").unwrap_or(after))
        } else if (is("postgres") || is("postgresql")) && after.starts_with("//") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(scheme.to_owned()))
        }
    }
}

/// SQLite at `path` (what follows `sqlite:` and `//`), when it names a file: an empty one
/// (`DATABASE_URL=`, `sqlite://`) failed later with "no such table", and an in-memory one
/// would lose everything at each stop (and is one per connection).
fn sqlite_file(path: &str) -> Result<Backend, StoreError> {
    let (file, options) = path.split_once('?').unwrap_or((path, ""));
    let in_memory = file == ":memory:" || options.split('&').any(|o| o == "mode=memory");
    if file.trim().is_empty() || in_memory {
        return Err(StoreError::NoSqliteFile);
    }
    Ok(Backend::Sqlite)
}

/// The scheme `url` starts with (`letter *(letter / digit / "+" / "-" / ".") ":"`), if any.
/// One letter is a Windows drive (`C:\…`), not a scheme.
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && scheme.len() > 1).then_some(scheme)
}

/// Opens the database named by `url` (a `postgres://` URL, or a SQLite file as
/// `sqlite://path` or a plain path; [`Backend::of`]) and brings its schema up to date,
/// beside the server that may be serving it ([`SqliteStore::connect`]).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Backend::of(url)? {
        Backend::Postgres => Arc::new(PgStore::connect(url).await?),
        Backend::Sqlite => Arc::new(SqliteStore::connect(url).await?),
    })
}

/// Opens the database for the server process: on SQLite as the file's one server
/// ([`SqliteStore::connect_as_server`]); PostgreSQL is shared by any number.
pub async fn connect_as_server(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Backend::of(url)? {
        Backend::Postgres => Arc::new(PgStore::connect(url).await?),
        Backend::Sqlite => Arc::new(SqliteStore::connect_as_server(url).await?),
    })
}

/// The application key fingerprint the database at `url` records, read before it is opened
/// for serving: nothing is created and no migration applied, so a start refused on it leaves
/// the database as the release before can serve it. `None` when none is recorded, or when it
/// cannot be read here within a few seconds (opening the database then says why).
pub async fn recorded_key_fingerprint(url: &str) -> Option<String> {
    let read = async {
        match Backend::of(url).ok()? {
            Backend::Sqlite => {
                if !SqliteStore::file_of(url).ok()?.exists() {
                    return None;
                }
                SqliteStore::recorded_key_fingerprint(url).await.ok()?
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let mut connection = sqlx::PgConnection::connect(url).await.ok()?;
                // No such table before migration 0015: none recorded.
                let recorded = sqlx::query_scalar(
                    "SELECT fingerprint FROM application_key WHERE singleton = 1",
                )
                .fetch_optional(&mut connection)
                .await
                .ok()
                .flatten();
                let _ = connection.close().await;
                recorded
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
}

/// Applies `migrator`'s migrations the database behind `pool` lacks, saying in the log which
/// (and how long they took) when there are any: after an upgrade, a big database can take
/// seconds, during which the server does not listen yet.
async fn migrate<DB>(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::Pool<DB>,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    use sqlx::migrate::Migrate;
    // Read before the migrations' own lock, for the log only (a database without the
    // migrations' table has applied none).
    let applied = match pool.acquire().await?.list_applied_migrations().await {
        Ok(applied) => applied.into_iter().map(|m| m.version).collect(),
        Err(_) => Vec::new(),
    };
    let pending: Vec<i64> = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if let (Some(first), Some(last)) = (pending.first(), pending.last()) {
        tracing::info!(
            count = pending.len(),
            first,
            last,
            "applying database migrations; the server listens once they are done"
        );
    }
    let started = std::time::Instant::now();
    migrator.run(pool).await?;
    if !pending.is_empty() {
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            "database migrations applied"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn a_url_names_its_database_by_scheme_in_any_case() {
        for (url, backend) in [
            ("postgres://u:p@db/uj", Backend::Postgres),
            ("POSTGRES://u:p@db/uj", Backend::Postgres),
            ("PostgreSQL://db/uj", Backend::Postgres),
            ("sqlite://data/uj.db", Backend::Sqlite),
            ("SQLite:uj.db", Backend::Sqlite),
            ("uj.db", Backend::Sqlite),
            ("/var/lib/uj/uj.db", Backend::Sqlite),
            ("./this:that.db", Backend::Sqlite),
            ("C:\\uj\\uj.db", Backend::Sqlite),
        ] {
            assert_eq!(Backend::of(url).unwrap(), backend, "{url}");
        }
        for url in [
            "mysql://u:secret@db/uj",
            "postgress://u:secret@db/uj",
            "postgres:/u:secret@db/uj",
            "this:that.db",
        ] {
            let error = Backend::of(url).unwrap_err().to_string();
            assert!(!error.contains("secret"), "{error}");
            assert!(error.contains("postgres://"), "{error}");
        }
        // No file: said at once (they failed later with "no such table", or lost everything
        // at each stop).
        for url in [
            "",
            " ",
            "sqlite://",
            "sqlite:",
            ":memory:",
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://uj.db?mode=memory",
        ] {
            let error = Backend::of(url).unwrap_err().to_string();
            assert!(error.contains("names no SQLite file"), "{url:?}: {error}");
        }
        assert_eq!(
            Backend::of("sqlite://uj.db?mode=rwc").unwrap(),
            Backend::Sqlite
        );
    }
}

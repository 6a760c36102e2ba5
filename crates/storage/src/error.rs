/// The driver's own error, kept as the source.
pub type DriverError = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage call failed, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was hit: the thing (named) already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database cannot be reached or is too busy right now; retrying later may work.
    #[error("the database is unavailable")]
    Unavailable(#[source] DriverError),
    /// Stored data that does not decode into the domain (a bug or manual edit).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("schema migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Database(#[source] DriverError),
    /// The database URL's scheme (named; never the URL, which may carry a password) is
    /// neither PostgreSQL's nor SQLite's.
    #[error(
        "{0}:… names no database served here: give postgres://… or \
         postgresql://… for PostgreSQL, or sqlite://PATH, sqlite:PATH or a plain file path for \
         SQLite"
    )]
    UnsupportedUrl(String),
    #[error(
        "names no SQLite file: give a file path (data/userjourneys.db or \
         sqlite://data/userjourneys.db); an in-memory database would lose everything at each stop"
    )]
    NoSqliteFile,
    /// A cohort sync delivery for a cohort whose id is an audience's of another Mixpanel
    /// project (named: its id): the connection moved, and the old cohort's audience is not
    /// this one's.
    #[error("the cohort's audience belongs to Mixpanel project {0}")]
    CohortOfAnotherProject(String),
    /// What a write names was deleted meanwhile (named): a rule's audience.
    #[error("the {0} no longer exists")]
    Gone(&'static str),
    /// A page of a full-sync run replaced before it was complete, with nothing applied
    /// since: acknowledged, Mixpanel would go on from a membership never applied.
    #[error("the page's run was replaced before it was complete")]
    RunReplaced,
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
    pub(crate) fn conflict_as(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |error| match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::from(error),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        crate::postgres::note_cut_connection(&error);
        if is_transient(&error) {
            StoreError::Unavailable(error.into())
        } else {
            StoreError::Database(error.into())
        }
    }
}

fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY (5), SQLITE_LOCKED (6) and their extended codes, SQLITE_READONLY
                // (8, the file made read-only), SQLITE_IOERR (10), SQLITE_FULL (13),
                // SQLITE_CANTOPEN (14).
                let primary = code.parse::<i32>().ok().map(|c| c & 0xff);
                return matches!(primary, Some(5 | 6 | 8 | 10 | 13 | 14));
            }
            // PostgreSQL's SQLSTATEs (read as SQLite's numbers, 22021, a NUL in text, was
            // "busy"): connection exceptions (08…), insufficient resources (53…), operator
            // intervention such as admin shutdown (57P…), serialization failure, a
            // transaction chosen to break a deadlock (40P01), a database that no longer
            // exists (3D000), one that takes no writes (25006: a standby after a
            // failover, or read-only mode), one that takes no connections (55000:
            // `ALLOW_CONNECTIONS false`), and a login it refuses (28…: the role's password
            // changed or its access revoked, which an operator fixes without us), and a
            // statement given up on past the database's `lock_timeout` (55P03) or
            // `statement_timeout` (57014, also a cancel by an operator): a table locked by
            // a migration, say.
            code.starts_with("08")
                || code == "55P03"
                || code == "57014"
                || code.starts_with("28")
                || (code == "55000" && db.message().contains("not currently accepting connections"))
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
                || code == "3D000"
                || code == "25006"
        }
        _ => false,
    }
}

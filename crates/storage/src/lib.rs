//! Storage for UserJourneys: one [`Store`] trait, implemented for SQLite ([`SqliteStore`])
//! and PostgreSQL ([`PgStore`]). Both run the same SQL where the dialects agree (see
//! `shared.rs`) and are held to one conformance suite (`tests/conformance.rs`).

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

pub use error::StoreError;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use store::{
    AppEventCount, CohortSyncStore, Exclusive, InviteStore, MixpanelStore, NewAccount,
    NewInvitation, Page, PageRequest, RuleStats, Store, StudyStore, SyncCohort, SyncPage,
    UserHistory, WebhookReceiver, MAX_APP_EVENT_NAMES,
};

/// Which database a `DATABASE_URL` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// Opens the database named by `url` (a `postgres://` URL, or a SQLite file as
/// `sqlite://path` or a plain path) and brings its schema up to date, beside the server
/// that may be serving it ([`SqliteStore::connect`]).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Backend::of(url) {
        Backend::Postgres => Arc::new(PgStore::connect(url).await?),
        Backend::Sqlite => Arc::new(SqliteStore::connect(url).await?),
    })
}

/// Opens the database for the server process: on SQLite as the file's one server
/// ([`SqliteStore::connect_as_server`]); PostgreSQL is shared by any number.
pub async fn connect_as_server(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Backend::of(url) {
        Backend::Postgres => Arc::new(PgStore::connect(url).await?),
        Backend::Sqlite => Arc::new(SqliteStore::connect_as_server(url).await?),
    })
}

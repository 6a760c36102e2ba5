//! The SQLite store: a WAL-mode file with many readers and exactly one writer connection.
//!
//! SQLite allows one writer at a time. A deferred transaction that reads and then writes
//! can fail with `SQLITE_BUSY` however long the busy timeout, when another connection
//! committed in between. Funnelling every write through a single connection that opens
//! transactions with `BEGIN IMMEDIATE` makes writers queue instead of deadlock; readers
//! never wait in WAL mode.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use uj_domain::accounts::{Account, Role};
use uj_domain::ids::{AccountId, AudienceId, InvitationId, ProjectId, SecretKeyId};
use uj_domain::projects::{Invitation, Member, Membership, Project, SecretKey};

use crate::rows::*;
use crate::shared::{impl_store, Dialect};
use crate::shared_cohort_sync::impl_cohort_sync_store;
use crate::shared_invites::impl_invite_store;
use crate::shared_mixpanel::impl_mixpanel_store;
use crate::shared_studies::impl_study_store;
use crate::sqlite_checkpoint::{Checkpointer, WRITER_AUTOCHECKPOINT};
use crate::sqlite_inline::{from_rusqlite, InlineReader};
use crate::sqlite_pages::PageWriter;
use crate::time::Ts;
use crate::StoreError;
use rusqlite::named_params;

/// How long a statement waits for a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a free connection before the store reports unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// The SDK path's point reads, without sqlx's thread hand-offs.
    inline: Arc<InlineReader>,
    /// WAL checkpoints off the writer's path.
    checkpointer: Arc<Checkpointer>,
    /// First-sync pages without sqlx's thread hand-offs.
    pages: Arc<PageWriter>,
}

impl Dialect for SqliteStore {
    type Db = Sqlite;
}

impl SqliteStore {
    /// Opens (creating if needed) the SQLite file named by `url` and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // The file as sqlx reads the URL (percent-decoded, without its `?…` options).
        let file = options.get_filename().to_path_buf();
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT.to_string()),
            )
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            // A local file does not drop connections; sqlx's default ping before every
            // acquire was a second round trip to the connection's thread per query.
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            read,
            write,
            inline: Arc::new(InlineReader::new(file.clone())),
            pages: Arc::new(PageWriter::new(file.clone())),
            checkpointer: Arc::new(Checkpointer::start(file)),
        })
    }

    /// Writes a consistent copy of the whole database to `target` (which must not exist)
    /// with `VACUUM INTO`, while the server keeps running: readers and the writer of other
    /// processes carry on; the copy is as of one instant.
    pub async fn backup_into(&self, target: &std::path::Path) -> Result<(), StoreError> {
        sqlx::query("VACUUM INTO $1")
            .bind(target.to_string_lossy().into_owned())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.write.begin_with("BEGIN IMMEDIATE").await
    }

    /// Closes both pools; later calls fail as if the database had gone away.
    pub async fn close(&self) {
        self.inline.close();
        self.pages.close();
        self.checkpointer.close();
        self.read.close().await;
        self.write.close().await;
    }

    /// A plain page of an audience's first full sync, written on this thread
    /// (`sqlite_pages.rs`); `None` for the shared implementation to take it.
    async fn receive_first_sync_page(
        &self,
        project: &ProjectId,
        cohort: &crate::SyncCohort<'_>,
        page: &crate::SyncPage<'_>,
        entry: &uj_domain::audiences::LedgerEntry,
    ) -> Result<Option<uj_domain::audiences::LedgerEntry>, StoreError> {
        // Held, the writer connection keeps this the only write under way.
        let _writer = self.write.acquire().await?;
        // A page takes milliseconds.
        blocking(|| {
            self.pages
                .write_first_sync_page(project, cohort, page, entry)
        })
    }

    /// New invites in one transaction on the first-sync pages' connection
    /// (`sqlite_pages.rs`), without sqlx's thread hand-offs.
    async fn issue_new_invites_inline(
        &self,
        invites: &[uj_domain::invites::Invite],
    ) -> Result<Option<Vec<Option<uj_domain::invites::Invite>>>, StoreError> {
        // Held, the writer connection keeps this the only write under way.
        let _writer = self.write.acquire().await?;
        // Usually a millisecond, but up to the busy timeout while another process holds the
        // file's lock.
        blocking(|| self.pages.issue_new_invites(invites)).map(Some)
    }

    // The two reads below share their SQL with PostgreSQL. Its `$1`, `$2` are names to
    // SQLite, numbered in order of appearance (`$2` comes first in the memberships read), so
    // they are bound by name.

    async fn user_invites(
        &self,
        project: &ProjectId,
        reference_id: &str,
    ) -> Result<Vec<uj_domain::invites::Invite>, StoreError> {
        use crate::shared_invites::{newest_first, HISTORY, USER_INVITES, USER_INVITES_NEWEST};
        self.inline.read(|db| {
            let read = |sql, limit: usize| {
                let mut statement = db.prepare_cached(sql).map_err(from_rusqlite)?;
                let rows = statement
                    .query_map(
                        named_params! {"$1": project.as_str(), "$2": reference_id, "$3": limit as i64},
                        |row| {
                            Ok(InviteRow {
                                code: row.get("code")?,
                                project_id: row.get("project_id")?,
                                rule_id: row.get("rule_id")?,
                                study_id: row.get("study_id")?,
                                reference_id: row.get("reference_id")?,
                                source: row.get("source")?,
                                audience_id: row.get("audience_id")?,
                                audience_member_id: row.get("audience_member_id")?,
                                event_name: row.get("event_name")?,
                                metadata: row.get("metadata")?,
                                traits: row.get("traits")?,
                                state: row.get("state")?,
                                issued_at: row.get("issued_at")?,
                                expires_at: row.get("expires_at")?,
                                accepted_at: row.get("accepted_at")?,
                                dismissed_at: row.get("dismissed_at")?,
                            })
                        },
                    )
                    .map_err(from_rusqlite)?;
                rows.map(|row| row.map_err(from_rusqlite)?.try_into())
                    .collect::<Result<Vec<_>, StoreError>>()
            };
            match newest_first(read(USER_INVITES, HISTORY + 1)?) {
                Some(invites) => Ok(invites),
                None => read(USER_INVITES_NEWEST, HISTORY),
            }
        })
    }

    async fn user_memberships(
        &self,
        project: &ProjectId,
        match_key: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.inline.read(|db| {
            let mut statement = db
                .prepare_cached(crate::shared_cohort_sync::USER_MEMBERSHIPS)
                .map_err(from_rusqlite)?;
            let rows = statement
                .query_map(
                    named_params! {"$1": project.as_str(), "$2": match_key},
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(from_rusqlite)?;
            rows.map(|row| row.map_err(from_rusqlite)).collect()
        })
    }

    async fn member_by_key(
        &self,
        audience: &AudienceId,
        provider_member_id: &str,
    ) -> Result<Option<uj_domain::audiences::AudienceMember>, StoreError> {
        use rusqlite::OptionalExtension;
        self.inline.read(|db| {
            let mut statement = db
                .prepare_cached(crate::shared_cohort_sync::AUDIENCE_MEMBER)
                .map_err(from_rusqlite)?;
            let row = statement
                .query_row(
                    named_params! {"$1": audience.as_str(), "$2": provider_member_id},
                    |row| {
                        Ok(AudienceMemberRow {
                            provider_member_id: row.get("provider_member_id")?,
                            reference_id: row.get("reference_id")?,
                            traits: row.get("traits")?,
                            entered_at: row.get("entered_at")?,
                            exited_at: row.get("exited_at")?,
                        })
                    },
                )
                .optional()
                .map_err(from_rusqlite)?;
            row.map(TryInto::try_into).transpose()
        })
    }
}

/// Runs a write that blocks on this thread for a while: on the multi-threaded runtime its
/// other tasks move off this worker first.
fn blocking<T>(write: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(write),
        _ => write(),
    }
}

impl_store!(SqliteStore);
impl_mixpanel_store!(SqliteStore);
impl_cohort_sync_store!(SqliteStore);
impl_study_store!(SqliteStore);
impl_invite_store!(SqliteStore);

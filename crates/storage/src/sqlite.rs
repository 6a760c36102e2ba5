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

use crate::key_filter::{KeyFilter, Keys};
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
    /// The database file, as sqlx reads the URL.
    file: std::path::PathBuf,
    read: SqlitePool,
    write: SqlitePool,
    /// The SDK path's point reads, without sqlx's thread hand-offs.
    inline: Arc<InlineReader>,
    /// WAL checkpoints off the writer's path.
    checkpointer: Arc<Checkpointer>,
    /// First-sync pages without sqlx's thread hand-offs.
    pages: Arc<PageWriter>,
    /// A server's store: the file's lock and the SDK reads' key filter.
    serving: Option<Arc<Serving>>,
}

/// What a server's store holds beyond the connections.
#[derive(Debug)]
struct Serving {
    /// Which users may have invites or memberships (`key_filter.rs`).
    filter: KeyFilter,
    /// Locked (`flock`) while this process serves the file; released when it exits.
    _lock: std::fs::File,
    /// The file opened, `(device, inode)`: another (or none) at its path is not ours.
    opened: Option<(u64, u64)>,
}

/// The identity of the file at `path` (links followed), `None` when there is none.
fn identity(path: &std::path::Path) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(Some((metadata.dev(), metadata.ino()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Dialect for SqliteStore {
    type Db = Sqlite;
    const ROW_LOCKS: bool = false;
}

impl SqliteStore {
    /// How long a server waits for another one serving the file to stop (a restart).
    pub const LOCK_WAIT: Duration = Duration::from_secs(5);

    /// Opens (creating if needed) the SQLite file named by `url` and migrates it, beside
    /// the server that may be serving it (admin commands, tests): writes of invites and
    /// audience members through it would go unseen by that server's key filter.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, false).await
    }

    /// Opens the file as its one server: locks it against a second server (waiting up to
    /// [`SqliteStore::LOCK_WAIT`] for one shutting down), and keeps the key filter that
    /// lets the SDK's reads skip the database for users without invites or memberships.
    pub async fn connect_as_server(url: &str) -> Result<Self, StoreError> {
        Self::open(url, true).await
    }

    /// The options every connection to the file `url` names starts from.
    fn file_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
        let path = Self::path_in_url(url);
        Ok(SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?)
    }

    /// What follows the scheme of `url` (`sqlite://path` or `sqlite:path`, the scheme in any
    /// case), or `url` itself, a plain path; with its `?…` options, still percent-encoded.
    fn path_in_url(url: &str) -> &str {
        match url.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("sqlite:") => {
                url[7..].strip_prefix("//").unwrap_or(&url[7..])
            }
            _ => url,
        }
    }

    /// The database file `url` names.
    pub fn file_of(url: &str) -> Result<std::path::PathBuf, StoreError> {
        Ok(Self::file_options(url)?.get_filename().to_path_buf())
    }

    async fn open(url: &str, serving: bool) -> Result<Self, StoreError> {
        let options = Self::file_options(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // The file as sqlx reads the URL (percent-decoded, without its `?…` options).
        let file = options.get_filename().to_path_buf();
        create_private(&file);
        let lock = match serving {
            true => Some(lock_for_serving(&file).await?),
            false => None,
        };
        // One process opens and migrates at a time (admin commands start beside the server):
        // two turning a new file to WAL at once, one failed with "database is locked", and
        // two applying the same migration at once, one failed half-way through it.
        let migrating = lock_for_migrating(&file).await?;
        // The one writer stays open while the process runs (no idle or age limit): a file
        // deleted under the server is still open through it, for its rescue.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT.to_string()),
            )
            .await?;
        crate::migrate(&sqlx::migrate!("./migrations/sqlite"), &write).await?;
        drop(migrating);
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            // A local file does not drop connections; sqlx's default ping before every
            // acquire was a second round trip to the connection's thread per query.
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.read_only(true))
            .await?;
        let inline = Arc::new(InlineReader::new(file.clone()));
        let serving = match lock {
            Some(lock) => {
                let started = std::time::Instant::now();
                let filter = blocking(|| inline.read(key_filter_of_file))?;
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    capacity = filter.capacity(),
                    "SDK key filter built from the file"
                );
                Some(Arc::new(Serving {
                    filter,
                    _lock: lock,
                    opened: identity(&file).ok().flatten(),
                }))
            }
            None => None,
        };
        Ok(Self {
            file: file.clone(),
            read,
            write,
            inline,
            pages: Arc::new(PageWriter::new(file.clone())),
            checkpointer: Arc::new(Checkpointer::start(file)),
            serving,
        })
    }

    /// `<file>.admin-lock`, waited for.
    async fn lock_exclusive(&self) -> Result<crate::Exclusive, StoreError> {
        let path = beside(&self.file, ".admin-lock");
        let held = lock(&path, None).await?.ok_or_else(|| {
            StoreError::Unavailable(format!("cannot lock {}", path.display()).into())
        })?;
        Ok(crate::Exclusive(Box::new(held)))
    }

    /// Notes keys about to get rows, before their write commits (`key_filter.rs`).
    fn note<'k>(&self, keys: Keys, each: impl IntoIterator<Item = &'k str>) {
        if let Some(serving) = &self.serving {
            serving.filter.note(keys, each);
        }
    }

    /// Whether `key` may have rows (always, without a key filter).
    fn may_have(&self, keys: Keys, key: &str) -> bool {
        self.serving
            .as_ref()
            .is_none_or(|serving| serving.filter.may_have(keys, key))
    }

    /// A read-only connection to the existing database file `url` names, beside a server
    /// that may be running and without migrating it.
    async fn read_only(url: &str) -> Result<sqlx::SqliteConnection, StoreError> {
        use sqlx::ConnectOptions;
        Ok(Self::file_options(url)?
            .create_if_missing(false)
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT)
            .connect()
            .await?)
    }

    /// The Mixpanel secrets the database at `url` holds, `(project id, sealed secret)`,
    /// read without migrating it (for a backup of a database whose key is not recorded yet).
    pub async fn sealed_secrets(url: &str) -> Result<Vec<(String, String)>, StoreError> {
        use sqlx::Connection;
        let mut connection = Self::read_only(url).await?;
        let sealed =
            match sqlx::query_as("SELECT project_id, secret_ciphertext FROM mixpanel_connections")
                .fetch_all(&mut connection)
                .await
            {
                Ok(sealed) => sealed,
                Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => {
                    Vec::new()
                }
                Err(e) => return Err(e.into()),
            };
        connection.close().await?;
        Ok(sealed)
    }

    /// The fingerprint of the application key the database at `url` belongs to, read without
    /// migrating it (`None` when none is recorded, as in a database older than the record).
    pub async fn recorded_key_fingerprint(url: &str) -> Result<Option<String>, StoreError> {
        use sqlx::Connection;
        let mut connection = Self::read_only(url).await?;
        let recorded =
            match sqlx::query_scalar("SELECT fingerprint FROM application_key WHERE singleton = 1")
                .fetch_optional(&mut connection)
                .await
            {
                Ok(recorded) => recorded,
                Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => None,
                Err(e) => return Err(e.into()),
            };
        connection.close().await?;
        Ok(recorded)
    }

    /// Writes a consistent copy of the database file `url` names to `target` (which must
    /// not exist, or be empty) with `VACUUM INTO`, while a server keeps running: its readers and writer
    /// carry on; the copy is as of one instant. The database is neither created (a wrong
    /// path fails) nor migrated: a backup taken before an upgrade is the old version's,
    /// and the old version can restore it.
    pub async fn backup(url: &str, target: &std::path::Path) -> Result<(), StoreError> {
        use sqlx::{ConnectOptions, Connection};
        let mut connection = Self::file_options(url)?
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT)
            .connect()
            .await?;
        sqlx::query("VACUUM INTO $1")
            .bind(target.to_string_lossy().into_owned())
            .execute(&mut connection)
            .await?;
        connection.close().await?;
        Ok(())
    }

    /// Whether the file this server opened is still the one at its path
    /// ([`crate::Store::file_lost`]).
    fn file_lost_here(&self) -> Option<&'static str> {
        let opened = self.serving.as_ref()?.opened?;
        match identity(&self.file) {
            Ok(Some(now)) if now == opened => None,
            Ok(Some(_)) => Some("replaced by another file"),
            Ok(None) => Some("deleted"),
            // Unreadable for a moment (permissions changed, say): not known to be lost.
            Err(_) => None,
        }
    }

    /// A copy of the database as the writer's connection has it open, to
    /// `<file>.rescued-<UTC time>` ([`crate::Store::rescue`]): the file it opened, wherever
    /// its path now points.
    async fn rescue_here(&self) -> Result<std::path::PathBuf, StoreError> {
        let at = Utc::now().format("%Y%m%dT%H%M%SZ");
        let target = beside(&self.file, &format!(".rescued-{at}"));
        create_private(&target);
        sqlx::query("VACUUM INTO $1")
            .bind(target.to_string_lossy().into_owned())
            .execute(self.writer())
            .await?;
        Ok(target)
    }

    /// The version of the last migration this build applies.
    fn latest_migration() -> i64 {
        let migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Nothing to check beyond the file watch (`file_lost`): taking the write lock to see
    /// would make readiness wait for every write in line.
    async fn refuses_writes_here(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A file opens, or the pool's own error says why not.
    async fn connect_error_here(&self) -> Option<String> {
        None
    }

    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        match self.write.begin_with("BEGIN IMMEDIATE").await {
            // A statement that found the disk full made SQLite roll its transaction back by
            // itself; sqlx's own rollback then failed and left the writer connection counting
            // an open transaction, so no transaction could begin on it again. It is closed,
            // and the pool opens a sound one.
            Err(sqlx::Error::InvalidSavePointStatement) => {
                tracing::warn!("the SQLite writer connection lost track of a rolled-back transaction; reopening it");
                self.write.acquire().await?.close().await?;
                self.write.begin_with("BEGIN IMMEDIATE").await
            }
            begun => begun,
        }
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
        let writer = self.write.acquire().await?;
        // Usually a millisecond, but up to the busy timeout while another process holds the
        // file's lock: on the blocking pool's thread, so no worker waits for it. (With
        // `block_in_place` each batch handed its worker's tasks to another thread:
        // docs/benchmarks.md.) The writer goes with it, held until the batch is written even
        // if this call is dropped meanwhile.
        let (pages, invites) = (self.pages.clone(), invites.to_vec());
        tokio::task::spawn_blocking(move || {
            let _writer = writer;
            pages.issue_new_invites(&invites)
        })
        .await
        .map_err(|error| StoreError::Database(error.into()))?
        .map(Some)
    }

    // The SDK's two reads below: [`read_user_invites`] and [`read_user_memberships`].

    async fn user_memberships(
        &self,
        project: &ProjectId,
        match_key: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if !self.may_have(Keys::MatchKeys, match_key) {
            return self.inline.check_open().map(|()| Vec::new());
        }
        self.inline
            .read(|db| read_user_memberships(db, project, match_key))
    }

    /// Each read is a lookup on the calling thread, and often none (`key_filter.rs`). When
    /// both are read, they share one read transaction: one look at the WAL and its locks
    /// instead of two, and the invites and memberships of the same moment.
    async fn user_invites_and_memberships(
        &self,
        project: &ProjectId,
        reference_id: &str,
        with_memberships: crate::WithMemberships,
    ) -> Result<crate::UserHistory, StoreError> {
        use crate::{MembershipsRead, WithMemberships};
        let invited = self.may_have(Keys::Invitees, reference_id);
        let wanted = with_memberships != WithMemberships::No;
        let member = wanted && self.may_have(Keys::MatchKeys, reference_id);
        // Known to be in no audience: an empty list, not a read later.
        let none_read = || match wanted {
            true => MembershipsRead::All(Vec::new()),
            false => MembershipsRead::NotRead,
        };
        match (invited, member) {
            (false, false) => self.inline.check_open().map(|()| (Vec::new(), none_read())),
            (true, false) => Ok((
                self.inline
                    .read(|db| read_user_invites(db, project, reference_id))?,
                none_read(),
            )),
            (false, true) => Ok((
                Vec::new(),
                MembershipsRead::All(
                    self.inline
                        .read(|db| read_user_memberships(db, project, reference_id))?,
                ),
            )),
            (true, true) => self.inline.read(|db| {
                // Rolled back when dropped: the read transaction ends whatever happened.
                let _read = db.unchecked_transaction().map_err(from_rusqlite)?;
                let invites = read_user_invites(db, project, reference_id)?;
                let pending_from = match with_memberships {
                    WithMemberships::UnlessPending(now) => invites
                        .iter()
                        .find(|i| i.is_pending(now))
                        .and_then(|i| i.audience_id.clone()),
                    _ => None,
                };
                let memberships = match pending_from {
                    Some(audience) => MembershipsRead::OfPendingInvite {
                        member: read_user_membership_of(db, project, reference_id, &audience)?,
                        audience,
                    },
                    None => MembershipsRead::All(read_user_memberships(db, project, reference_id)?),
                };
                Ok((invites, memberships))
            }),
        }
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

/// The SDK's read of a user's invites, newest first (its SQL is PostgreSQL's too). `$1`,
/// `$2` are names to SQLite, numbered in order of appearance (`$2` comes first in the
/// memberships read), so both reads bind them by name.
fn read_user_invites(
    db: &rusqlite::Connection,
    project: &ProjectId,
    reference_id: &str,
) -> Result<Vec<uj_domain::invites::Invite>, StoreError> {
    use crate::shared_invites::{newest_first, HISTORY, USER_INVITES, USER_INVITES_NEWEST};
    let read = |sql, limit: usize| {
        let mut statement = db.prepare_cached(sql).map_err(from_rusqlite)?;
        let rows = statement
            .query_map(
                named_params! {"$1": project.as_str(), "$2": reference_id, "$3": limit as i64},
                // By position: the statements list `select_invite!()`.
                |row| {
                    Ok(InviteRow {
                        code: row.get(0)?,
                        project_id: row.get(1)?,
                        rule_id: row.get(2)?,
                        study_id: row.get(3)?,
                        reference_id: row.get(4)?,
                        source: row.get(5)?,
                        audience_id: row.get(6)?,
                        audience_member_id: row.get(7)?,
                        event_name: row.get(8)?,
                        metadata: row.get(9)?,
                        traits: row.get(10)?,
                        state: row.get(11)?,
                        issued_at: row.get(12)?,
                        expires_at: row.get(13)?,
                        accepted_at: row.get(14)?,
                        dismissed_at: row.get(15)?,
                        withdrawn_at: row.get(16)?,
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
}

/// The SDK's read of a user's memberships (SQLite's own SQL, `USER_MEMBERSHIPS`).
fn read_user_memberships(
    db: &rusqlite::Connection,
    project: &ProjectId,
    match_key: &str,
) -> Result<Vec<(String, String)>, StoreError> {
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
}

/// Whether the user is a current member of `audience`, of project `$1`, by their match key
/// (SQLite's own SQL, `USER_MEMBERSHIP_OF`).
fn read_user_membership_of(
    db: &rusqlite::Connection,
    project: &ProjectId,
    match_key: &str,
    audience: &str,
) -> Result<bool, StoreError> {
    use rusqlite::OptionalExtension;
    let mut statement = db
        .prepare_cached(crate::shared_cohort_sync::USER_MEMBERSHIP_OF)
        .map_err(from_rusqlite)?;
    let found = statement
        .query_row(
            named_params! {"$1": project.as_str(), "$2": match_key, "$3": audience},
            |_| Ok(()),
        )
        .optional()
        .map_err(from_rusqlite)?;
    Ok(found.is_some())
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

/// Creates `file` if missing, readable and writable by its owner only: it holds password
/// hashes, respondent codes and members' traits. SQLite gives the `-wal` and `-shm` files it
/// creates beside it the same mode. An empty file is an empty database; a failure here is
/// left for SQLite to report.
fn create_private(file: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file);
}

/// An exclusive lock on `<file>.migrate-lock`, waited for: held while migrating, so that
/// processes opening a new or older file at once apply each migration once, one after the
/// other (PostgreSQL's migrations take an advisory lock for the same reason).
async fn lock_for_migrating(file: &std::path::Path) -> Result<std::fs::File, StoreError> {
    let path = beside(file, ".migrate-lock");
    // Without a deadline the wait ends only with the lock.
    lock(&path, None)
        .await?
        .ok_or_else(|| StoreError::Unavailable(format!("cannot lock {}", path.display()).into()))
}

/// Locks `<file>.lock` for this process, waiting up to [`SqliteStore::LOCK_WAIT`] for
/// another server to let go of it. The file is named as resolved (symbolic links followed),
/// so two names of one database share one lock. `flock` locks belong to the open file: the
/// process's exit releases them, and they are independent of the POSIX locks SQLite takes
/// on the database itself.
///
/// A file with several names (hard links, which may sit in other directories) is not
/// served: each name would have its own `<name>.lock`, and two servers, each with its own
/// SDK key filter, would serve one file (one hid the invites the other issued).
async fn lock_for_serving(file: &std::path::Path) -> Result<std::fs::File, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let names = std::fs::metadata(file).map_or(1, |m| m.nlink());
    if names > 1 {
        return Err(StoreError::Unavailable(
            format!(
                "{} has {names} names (hard links): one server per SQLite file can be made \
                 sure of for one name only; remove the other names (a copy for a backup is \
                 `admin backup`), or run several servers on PostgreSQL",
                file.display()
            )
            .into(),
        ));
    }
    let path = beside(file, ".lock");
    lock(&path, Some(SqliteStore::LOCK_WAIT))
        .await?
        .ok_or_else(|| {
            StoreError::Unavailable(
                format!(
                    "another userjourneys server is serving {} (it holds {}); one server \
                     per SQLite file: stop it first, or run several on PostgreSQL",
                    file.display(),
                    path.display()
                )
                .into(),
            )
        })
}

/// `file` (links followed) with `suffix` added to its name.
fn beside(file: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut path = resolved(file).into_os_string();
    path.push(suffix);
    path.into()
}

/// An exclusive lock on the file at `path` (created if needed), polled rather than waited
/// for on the thread (its holder may be a task of this process); `None` once `wait` passed.
async fn lock(
    path: &std::path::Path,
    wait: Option<Duration>,
) -> Result<Option<std::fs::File>, StoreError> {
    let cannot = |error: std::io::Error| {
        StoreError::Unavailable(format!("cannot lock {}: {error}", path.display()).into())
    };
    // Reading is enough to lock: a lock file another user created is still usable.
    let lock = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        // Not allowed to create it: one that exists may still be read. One that does not
        // is reported as the refusal to create it, not as "no such file".
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            std::fs::File::open(path).map_err(|reading| match reading.kind() {
                std::io::ErrorKind::NotFound => cannot(error),
                _ => cannot(reading),
            })?
        }
        opened => opened.map_err(cannot)?,
    };
    let deadline = wait.map(|wait| tokio::time::Instant::now() + wait);
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(Some(lock)),
            Err(std::fs::TryLockError::WouldBlock) => {
                if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                    return Ok(None);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(cannot(error)),
        }
    }
}

/// `file` with symbolic links followed; for a file not created yet, its directory's.
fn resolved(file: &std::path::Path) -> std::path::PathBuf {
    std::fs::canonicalize(file)
        .or_else(|_| {
            let dir = file.parent().filter(|dir| !dir.as_os_str().is_empty());
            let name = file.file_name().unwrap_or_default();
            std::fs::canonicalize(dir.unwrap_or(std::path::Path::new("."))).map(|d| d.join(name))
        })
        .unwrap_or_else(|_| file.to_path_buf())
}

/// The key filter of what the file holds: sized by its rows (a key with several rows
/// counts several times), then filled with their keys, a row at a time.
fn key_filter_of_file(db: &rusqlite::Connection) -> Result<KeyFilter, StoreError> {
    let present: i64 = db
        .query_row(
            "SELECT (SELECT COUNT(*) FROM audience_members) + (SELECT COUNT(*) FROM invites)
                  + (SELECT COUNT(*) FROM sync_staged_members)",
            [],
            |row| row.get(0),
        )
        .map_err(from_rusqlite)?;
    let filter = KeyFilter::for_keys(usize::try_from(present).unwrap_or(0));
    for (keys, sql) in [
        (Keys::MatchKeys, "SELECT match_key FROM audience_members"),
        // Copies an unfinished full sync staged (an earlier process may have received
        // them): completing the session writes them into `audience_members`, keys and all.
        (Keys::MatchKeys, "SELECT match_key FROM sync_staged_members"),
        (Keys::Invitees, "SELECT reference_id FROM invites"),
    ] {
        let mut statement = db.prepare(sql).map_err(from_rusqlite)?;
        let mut rows = statement.query([]).map_err(from_rusqlite)?;
        while let Some(row) = rows.next().map_err(from_rusqlite)? {
            let key = row
                .get_ref(0)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(from_rusqlite)?;
            filter.note(keys, [key]);
        }
    }
    Ok(filter)
}

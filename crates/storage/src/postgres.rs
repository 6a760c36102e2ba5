//! The PostgreSQL store: one pool; several server processes may share the database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};
use uj_domain::accounts::{Account, Role};
use uj_domain::ids::{AccountId, AudienceId, InvitationId, ProjectId, SecretKeyId};
use uj_domain::projects::{Invitation, Member, Membership, Project, SecretKey};

use crate::key_filter::Keys;
use crate::rows::*;
use crate::shared::{impl_store, Dialect};
use crate::shared_cohort_sync::impl_cohort_sync_store;
use crate::shared_invites::impl_invite_store;
use crate::shared_mixpanel::impl_mixpanel_store;
use crate::shared_studies::impl_study_store;
use crate::time::Ts;
use crate::StoreError;

/// How long a query waits for a connection. While PostgreSQL refuses connections (down,
/// restarting), sqlx retries until then: each request waits this long before its 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection idle for less than this is used without a check first, unless a
/// connection was found cut since it was returned ([`note_cut_connection`]).
const CHECKED_RECENTLY: Duration = Duration::from_secs(1);

/// When this process last found a connection cut, in milliseconds after [`START`], plus one
/// (0: never). PostgreSQL ends every connection at once (a restart, a failover, an
/// administrator), so each one returned to a pool before then is checked before its next
/// use: only the first request to meet a cut connection fails, not one per pooled connection
/// (16, each a 503). Per process, not per pool: a pool of a database still up checks its
/// connections once more, a round trip each.
static FOUND_CUT_AT: AtomicU64 = AtomicU64::new(0);
static START: OnceLock<Instant> = OnceLock::new();

fn millis_since_start(at: Instant) -> u64 {
    let start = *START.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX)
}

/// Notes a connection found cut, as `error` says (its socket closed, or PostgreSQL's
/// connection exceptions, 08…, and operator interventions, 57P…: "terminating connection").
pub(crate) fn note_cut_connection(error: &sqlx::Error) {
    let cut = match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| pg.code().starts_with("08") || pg.code().starts_with("57P")),
        _ => false,
    };
    if cut {
        FOUND_CUT_AT.fetch_max(millis_since_start(Instant::now()) + 1, Ordering::Relaxed);
    }
}

/// Whether a pooled connection idle for `idle_for` is checked before it is handed out.
fn check_before_use(idle_for: Duration) -> bool {
    let returned = Instant::now().checked_sub(idle_for);
    idle_for >= CHECKED_RECENTLY
        || returned.is_none_or(|at| millis_since_start(at) < FOUND_CUT_AT.load(Ordering::Relaxed))
}

/// The current memberships with match key `$2` in the audiences of project `$1`, as
/// SQLite's [`USER_MEMBERSHIPS`](crate::shared_cohort_sync::USER_MEMBERSHIPS) reads them,
/// written for PostgreSQL's planner: `OFFSET 0` keeps the user's rows found first, by one
/// seek in `audience_members_by_match_key` (without statistics, as before the first
/// `ANALYZE`, it probed the index once per audience of the project), and a row's own
/// `staged_session` settles it before `sync_staging` is looked at.
macro_rules! user_memberships_sql {
    () => {
        "SELECT k.audience_id, k.provider_member_id
         FROM (SELECT audience_id, provider_member_id, staged_session FROM audience_members
               WHERE match_key = $2 AND exited_at IS NULL OFFSET 0) k
         JOIN audiences a ON a.id = k.audience_id
         WHERE a.project_id = $1
           AND (k.staged_session IS NULL OR k.staged_session = a.last_session_id
                OR NOT EXISTS (SELECT 1 FROM sync_staging s WHERE s.audience_id = a.id))"
    };
}
const USER_MEMBERSHIPS: &str = user_memberships_sql!();

/// [`USER_INVITES`](crate::shared_invites::USER_INVITES) (`$3` rows at most) and
/// [`USER_MEMBERSHIPS`] in one statement: the memberships as two arrays in the same order
/// (`NULL` for none), repeated on each invite's row, and one row with `NULL` invite columns
/// when the user has no invite.
const USER_HISTORY_AND_MEMBERSHIPS: &str = concat!(
    "WITH m AS (SELECT array_agg(audience_id) AS m_audiences, \
                       array_agg(provider_member_id) AS m_members FROM (",
    user_memberships_sql!(),
    ") u) SELECT i.*, m.m_audiences, m.m_members FROM m LEFT JOIN LATERAL (",
    crate::shared_invites::user_invites_sql!(),
    ") i ON true"
);

/// The advisory lock key of [`crate::Store::exclusive`] ("ujadmin" in ASCII).
const ADMIN_LOCK: i64 = 0x0075_6a61_646d_696e;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl Dialect for PgStore {
    type Db = Postgres;
    const ROW_LOCKS: bool = true;
}

impl PgStore {
    /// Connects to the database at `url` and migrates it. Concurrent migrations from
    /// several processes are serialised by sqlx's advisory lock.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx checks a connection with a round trip when it returns to the pool, and by
            // default again before handing it out: two extra round trips per query (the
            // second cost the SDK config a sixth of its server CPU, docs/benchmarks.md). A
            // connection checked at its return less than `CHECKED_RECENTLY` ago is handed
            // out as it is; one idle longer (PostgreSQL may have restarted since), or returned
            // before a connection was found cut, is checked.
            .test_before_acquire(false)
            .before_acquire(|connection, meta| {
                Box::pin(async move {
                    if check_before_use(meta.idle_for) {
                        sqlx::Connection::ping(connection).await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            // The pool retried until its timeout, which hides why no connection opened
            // (refused, unknown host, bad password): one more attempt says.
            Err(sqlx::Error::PoolTimedOut) => {
                let connect = <sqlx::PgConnection as sqlx::Connection>::connect(url);
                let why = match tokio::time::timeout(ACQUIRE_TIMEOUT, connect).await {
                    Ok(Err(error)) => error,
                    // Connected this time, or no answer in time either: the pool's error.
                    Ok(Ok(_)) | Err(_) => sqlx::Error::PoolTimedOut,
                };
                return Err(why.into());
            }
            Err(error) => return Err(error.into()),
        };
        crate::migrate(&sqlx::migrate!("./migrations/postgres"), &pool).await?;
        Ok(Self { pool })
    }

    /// Several processes share a PostgreSQL database: no key filter (`key_filter.rs`).
    fn note<'k>(&self, _keys: Keys, _each: impl IntoIterator<Item = &'k str>) {}

    /// The version of the last migration this build applies.
    fn latest_migration() -> i64 {
        let migrator = sqlx::migrate!("./migrations/postgres");
        migrator.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// A standby, or a database set read-only, answers reads and refuses every write.
    async fn refuses_writes_here(&self) -> Result<(), StoreError> {
        let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
            .fetch_one(self.writer())
            .await?;
        match read_only.as_str() {
            "off" => Ok(()),
            _ => Err(StoreError::Unavailable(
                "the database refuses writes (read-only, or a standby)".into(),
            )),
        }
    }

    /// Why a new connection to the database fails, if it does: what the pool's timeout
    /// hides (refused, unknown host, a wrong password, connections not allowed).
    async fn connect_error_here(&self) -> Option<String> {
        let options = self.pool.connect_options();
        let connect = sqlx::ConnectOptions::connect(&*options);
        match tokio::time::timeout(ACQUIRE_TIMEOUT, connect).await {
            Ok(Ok(connection)) => {
                let _ = sqlx::Connection::close(connection).await;
                None
            }
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {} s", ACQUIRE_TIMEOUT.as_secs())),
        }
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// A transaction-level advisory lock, waited for; the transaction (rolled back when the
    /// guard drops, or ended with its connection) holds it.
    async fn lock_exclusive(&self) -> Result<crate::Exclusive, StoreError> {
        let mut held = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ADMIN_LOCK)
            .execute(&mut *held)
            .await?;
        Ok(crate::Exclusive(Box::new(held)))
    }

    /// Closes the pool; later calls fail as if the database had gone away.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A SQLite file's fate; PostgreSQL has no file at a path of ours.
    fn file_lost_here(&self) -> Option<&'static str> {
        None
    }

    /// Nothing to rescue: [`Self::file_lost_here`] never reports a loss.
    async fn rescue_here(&self) -> Result<std::path::PathBuf, StoreError> {
        Err(StoreError::Unavailable(
            "PostgreSQL keeps no file to rescue: use pg_dump".into(),
        ))
    }

    /// SQLite's shortcut for first-sync pages; here every page takes the shared path.
    async fn receive_first_sync_page(
        &self,
        _: &ProjectId,
        _: &crate::SyncCohort<'_>,
        _: &crate::SyncPage<'_>,
        _: &uj_domain::audiences::LedgerEntry,
    ) -> Result<Option<uj_domain::audiences::LedgerEntry>, StoreError> {
        Ok(None)
    }

    /// SQLite's shortcut for issuing invites; here the shared statement issues them.
    async fn issue_new_invites_inline(
        &self,
        _: &[uj_domain::invites::Invite],
    ) -> Result<Option<Vec<Option<uj_domain::invites::Invite>>>, StoreError> {
        Ok(None)
    }

    async fn user_invites(
        &self,
        project: &ProjectId,
        reference_id: &str,
    ) -> Result<Vec<uj_domain::invites::Invite>, StoreError> {
        use crate::shared_invites::{newest_first, HISTORY, USER_INVITES, USER_INVITES_NEWEST};
        let read = |sql, limit: usize| async move {
            let rows: Vec<InviteRow> = sqlx::query_as(sql)
                .bind(project.as_str())
                .bind(reference_id)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
            rows.into_iter()
                .map(TryInto::try_into)
                .collect::<Result<Vec<_>, StoreError>>()
        };
        match newest_first(read(USER_INVITES, HISTORY + 1).await?) {
            Some(invites) => Ok(invites),
            None => read(USER_INVITES_NEWEST, HISTORY).await,
        }
    }

    /// The user's invites and, if any are asked for, all their memberships in one round
    /// trip ([`USER_HISTORY_AND_MEMBERSHIPS`]): each query is a round trip, and sqlx adds
    /// one more when the connection returns to the pool.
    async fn user_invites_and_memberships(
        &self,
        project: &ProjectId,
        reference_id: &str,
        with_memberships: crate::WithMemberships,
    ) -> Result<crate::UserHistory, StoreError> {
        use crate::shared_invites::{newest_first, HISTORY};
        use sqlx::{FromRow, Row};
        if with_memberships == crate::WithMemberships::No {
            let invites = self.user_invites(project, reference_id).await?;
            return Ok((invites, crate::MembershipsRead::NotRead));
        }
        let rows = sqlx::query(USER_HISTORY_AND_MEMBERSHIPS)
            .bind(project.as_str())
            .bind(reference_id)
            .bind((HISTORY + 1) as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut invites = Vec::with_capacity(rows.len());
        for row in &rows {
            // One row with no invite when the user has none.
            if row.try_get::<Option<String>, _>("code")?.is_some() {
                invites.push(InviteRow::from_row(row)?.try_into()?);
            }
        }
        let memberships = match rows.first() {
            Some(row) => {
                let audiences: Option<Vec<String>> = row.try_get("m_audiences")?;
                let members: Option<Vec<String>> = row.try_get("m_members")?;
                audiences
                    .unwrap_or_default()
                    .into_iter()
                    .zip(members.unwrap_or_default())
                    .collect()
            }
            None => Vec::new(),
        };
        let invites = match newest_first(invites) {
            Some(invites) => invites,
            // More than a history: the rare user whose newest are read on their own.
            None => self.user_invites(project, reference_id).await?,
        };
        Ok((invites, crate::MembershipsRead::All(memberships)))
    }

    async fn user_memberships(
        &self,
        project: &ProjectId,
        match_key: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(USER_MEMBERSHIPS)
            .bind(project.as_str())
            .bind(match_key)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn member_by_key(
        &self,
        audience: &AudienceId,
        provider_member_id: &str,
    ) -> Result<Option<uj_domain::audiences::AudienceMember>, StoreError> {
        let row: Option<AudienceMemberRow> =
            sqlx::query_as(crate::shared_cohort_sync::AUDIENCE_MEMBER)
                .bind(audience.as_str())
                .bind(provider_member_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(TryInto::try_into).transpose()
    }
}

impl_store!(PgStore);
impl_mixpanel_store!(PgStore);
impl_cohort_sync_store!(PgStore);
impl_study_store!(PgStore);
impl_invite_store!(PgStore);

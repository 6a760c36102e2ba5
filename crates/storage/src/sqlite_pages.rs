//! An audience's first full sync on SQLite, page by page on the calling thread.
//!
//! A `members` page is one transaction of six statements (with `BEGIN` and `COMMIT`).
//! Through sqlx each is a hop to the connection's thread and back, and the page's 7,000
//! values are copied on the way there: a quarter of a page's time (`docs/benchmarks.md`).
//! The common page of a first sync (new members, neither a repeat nor the page that
//! completes or supersedes a session) is written here with rusqlite instead, while the
//! store's writer connection is held, so writes stay one at a time. Any other page rolls
//! back and goes through the shared implementation, which handles every case: this is only
//! a faster way to the same rows, and the shared conformance tests run through both.
//!
//! The SDK's group-committed invites (`Store::issue_new_invites`) are written on the same
//! connection, the shared statement a row at a time in one transaction: through sqlx the
//! batch's values were copied to the connection's thread and its answer sent back row by
//! row (`docs/benchmarks.md`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{named_params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use uj_domain::audiences::{LedgerEntry, LedgerOutcome};
use uj_domain::ids::{AudienceId, ProjectId};

use crate::shared_cohort_sync::{
    dedupe, AUDIENCE_DELETING, INSERT_LEDGER, MEMBER_BATCH, STAGE_PAGE, SYNC_STILL_ACCEPTED,
    UPSERT_AUDIENCE,
};
use crate::sqlite_checkpoint::WRITER_AUTOCHECKPOINT;
use crate::sqlite_inline::from_rusqlite;
use crate::time::Ts;
use crate::{StoreError, SyncCohort, SyncPage};

/// As long as the store's writer waits for another process's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection first-sync pages and new invites are written on.
#[derive(Debug)]
pub(crate) struct PageWriter {
    path: PathBuf,
    /// `Err` once closed: later pages fail as if the database had gone away.
    connection: Mutex<Result<Option<Connection>, ()>>,
}

impl PageWriter {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            connection: Mutex::new(Ok(None)),
        }
    }

    /// Writes `page` if it is a plain page of the audience's first full sync: its ledger
    /// entry, or `None` (nothing written) for the shared implementation to take it. The
    /// caller holds the store's writer connection.
    pub(crate) fn write_first_sync_page(
        &self,
        project: &ProjectId,
        cohort: &SyncCohort<'_>,
        page: &SyncPage<'_>,
        entry: &LedgerEntry,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        self.with_connection(|connection| write(connection, project, cohort, page, entry))
    }

    /// Issues new invites (each unless its user has one issued) in one transaction. The
    /// caller holds the store's writer connection.
    pub(crate) fn issue_new_invites(
        &self,
        invites: &[uj_domain::invites::Invite],
    ) -> Result<Vec<Option<uj_domain::invites::Invite>>, StoreError> {
        self.with_connection(|connection| insert_new_invites(connection, invites))
    }

    /// Runs `write` on the connection, opening it first if needed.
    fn with_connection<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut guard = self.connection.lock().expect("poisoned");
        let connection = match &mut *guard {
            Err(()) => return Err(StoreError::Unavailable("the database was closed".into())),
            Ok(Some(connection)) => connection,
            Ok(idle) => idle.insert(self.open().map_err(from_rusqlite)?),
        };
        write(connection).map_err(from_rusqlite)
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        // As the store's writer (`SqliteStore::connect`).
        connection.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT};"
        ))?;
        Ok(connection)
    }

    /// Drops the connection; later pages fail.
    pub(crate) fn close(&self) {
        *self.connection.lock().expect("poisoned") = Err(());
    }
}

/// The page's transaction; returning before the commit rolls it back.
fn write(
    connection: &mut Connection,
    project: &ProjectId,
    cohort: &SyncCohort<'_>,
    page: &SyncPage<'_>,
    entry: &LedgerEntry,
) -> rusqlite::Result<Option<LedgerEntry>> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Settings changed since the page was accepted: the shared implementation's refusal.
    if let Some(secret_hash) = cohort.accepted_with {
        let accepted = tx
            .prepare_cached(SYNC_STILL_ACCEPTED)?
            .query_row(
                named_params! {
                    "$1": project.as_str(), "$2": secret_hash, "$3": cohort.mixpanel_project_id,
                },
                |_| Ok(()),
            )
            .optional()?;
        if accepted.is_none() {
            return Ok(None);
        }
    }
    let upserted: Option<(String, Option<String>, Option<Ts>)> = tx
        .prepare_cached(UPSERT_AUDIENCE)?
        .query_row(
            named_params! {
                "$1": AudienceId::generate().as_str(), "$2": project.as_str(),
                "$3": cohort.mixpanel_cohort_id, "$4": cohort.name, "$5": cohort.description,
                "$6": Ts(entry.received_at), "$7": true, "$8": cohort.mixpanel_project_id,
            },
            |row| {
                Ok((
                    row.get("id")?,
                    row.get("last_session_id")?,
                    row.get("last_synced_at")?,
                ))
            },
        )
        .optional()?;
    // Another Mixpanel project's audience: the shared implementation's refusal.
    let Some((audience, applied, last_synced)) = upserted else {
        return Ok(None);
    };
    // Being deleted: the shared implementation's refusal too.
    let deleting: bool = tx
        .prepare_cached(AUDIENCE_DELETING)?
        .query_row(named_params! {"$1": audience}, |row| row.get(0))?;
    if deleting {
        return Ok(None);
    }
    // Never before the audience's last change, as on the shared path (a diff timed later
    // may have committed while this page waited for the writer).
    let at = Ts(crate::shared_cohort_sync::not_before(
        entry.received_at,
        last_synced.map(|t| t.0),
    ));
    let entered_at = at.text();
    if applied.is_some() {
        // Not a first sync: members may have rows of their own.
        return Ok(None);
    }
    let stale_before = Ts(at.0 - uj_domain::cohort_sync::STAGING_KEPT_FOR);
    let staged: Option<(i64, bool, bool)> = tx
        .prepare_cached(STAGE_PAGE)?
        .query_row(
            named_params! {
                "$1": audience, "$2": page.session_id, "$3": page.page,
                "$4": page.total_pages, "$5": at, "$6": stale_before,
            },
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let Some((before, false, none_fresh)) = staged else {
        // A repeat, or a page that supersedes another session.
        return Ok(None);
    };
    if before > 0 && none_fresh {
        // Of a session staged too long ago: dropped first, by the shared implementation.
        return Ok(None);
    }
    if before == 0 {
        // The first page of a run: whether it is a late page of a run seen before is the
        // shared implementation's to tell (`stage_page`).
        return Ok(None);
    }
    if before + 1 >= page.total_pages {
        // It completes the session: the apply is the shared implementation's.
        return Ok(None);
    }
    for chunk in dedupe(page.members).chunks(MEMBER_BATCH) {
        let sql = format!(
            "INSERT INTO audience_members (audience_id, provider_member_id, reference_id, \
             match_key, traits, entered_at, staged_session) VALUES {} ON CONFLICT DO NOTHING",
            vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut insert = tx.prepare_cached(&sql)?;
        for (n, member) in chunk.iter().enumerate() {
            let first = n * 7 + 1;
            insert.raw_bind_parameter(first, &audience)?;
            insert.raw_bind_parameter(first + 1, &member.provider_member_id)?;
            insert.raw_bind_parameter(first + 2, &member.reference_id)?;
            insert.raw_bind_parameter(first + 3, member.match_key())?;
            insert.raw_bind_parameter(first + 4, crate::shared::traits_json(&member.traits))?;
            insert.raw_bind_parameter(first + 5, &entered_at)?;
            insert.raw_bind_parameter(first + 6, page.session_id)?;
        }
        if insert.raw_execute()? != chunk.len() {
            // Some have rows already (a diff added them, or they left): the shared
            // implementation stages those as copies.
            return Ok(None);
        }
    }
    let entry = LedgerEntry {
        audience_id: Some(AudienceId::from_string(audience)),
        outcome: LedgerOutcome::Staged,
        added: 0,
        removed: 0,
        ..entry.clone()
    };
    tx.prepare_cached(INSERT_LEDGER)?.execute(named_params! {
        "$1": entry.id.as_str(), "$2": project.as_str(),
        "$3": entry.audience_id.as_ref().map(|a| a.as_str()), "$4": entry.action,
        "$5": entry.session_id, "$6": entry.page, "$7": entry.total_pages,
        "$8": entry.members, "$9": entry.added, "$10": entry.removed,
        "$11": entry.outcome.as_str(), "$12": entry.error, "$13": Ts(entry.received_at),
    })?;
    tx.commit()?;
    Ok(Some(entry))
}

/// Each invite inserted unless its user has one issued; one transaction.
fn insert_new_invites(
    connection: &mut Connection,
    invites: &[uj_domain::invites::Invite],
) -> rusqlite::Result<Vec<Option<uj_domain::invites::Invite>>> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut issued = Vec::with_capacity(invites.len());
    {
        let mut insert = tx.prepare_cached(crate::shared_invites::INSERT_ISSUED)?;
        for i in invites {
            let inserted = insert.execute(rusqlite::params![
                i.code,
                i.project_id.as_str(),
                i.rule_id.as_str(),
                i.study_id.as_str(),
                i.reference_id,
                i.source,
                i.audience_id,
                i.audience_member_id,
                i.event_name,
                crate::shared::traits_json(&i.metadata),
                crate::shared::traits_json(&i.traits),
                Ts(i.issued_at),
                Ts(i.expires_at),
            ])?;
            issued.push((inserted == 1).then(|| crate::shared_invites::as_stored(i)));
        }
    }
    tx.commit()?;
    Ok(issued)
}

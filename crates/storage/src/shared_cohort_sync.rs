//! The [`CohortSyncStore`](crate::CohortSyncStore) implementation both databases share
//! (see `shared.rs` for how the expansion works).

/// Stored traits `stored` (a JSON object) with only the keys in `keep`, or `None` when
/// they hold no other.
pub(crate) fn kept_traits(
    stored: &str,
    keep: &[String],
) -> Result<Option<String>, crate::StoreError> {
    let mut traits: serde_json::Map<String, serde_json::Value> = serde_json::from_str(stored)
        .map_err(|e| crate::StoreError::Corrupt(format!("stored traits: {e}")))?;
    Ok(uj_domain::cohort_sync::keep_allowlisted(&mut traits, keep)
        .then(|| crate::shared::traits_json(&traits)))
}

/// The unaccepted invites of audience `$1` (unexpired at `$2`) whose users left it: those no
/// current row has as its match key any more, unless they are still in it under another
/// distinct id with the same match key (a row staged by a session counts once the session
/// is applied, as in the SDK's read). Each checked by a seek of its user's rows
/// (`audience_members_by_match_key`, `m`), then of each row (`c`, for its session): SQLite,
/// planning without statistics, walked the audience by its primary key instead, the index
/// not holding the session (a removal cost its open invites times the audience's size: 1.6 s
/// for 50 invites in an audience of 166,000; found by the schema review).
pub(crate) const LEFT_MEMBERS_INVITES: &str =
    "audience_id = $1 AND state = 'issued' AND expires_at > $2 AND NOT EXISTS (
        SELECT 1 FROM audience_members m CROSS JOIN audience_members c
        WHERE m.match_key = invites.reference_id AND m.audience_id = $1 AND m.exited_at IS NULL
          AND c.audience_id = m.audience_id AND c.provider_member_id = m.provider_member_id
          AND COALESCE(c.staged_session, '') IN
              ('', (SELECT last_session_id FROM audiences WHERE id = $1)))";

/// The next `$4` members of audience `$1` (if it is project `$3`'s) with traits, after
/// provider member id `$2`: one seek in the audience's key, walked in order.
pub(crate) const ERASE_MEMBERS_PAGE: &str =
    "SELECT provider_member_id, traits FROM audience_members
    WHERE audience_id = $1 AND provider_member_id > $2 AND traits <> '{}'
    AND EXISTS (SELECT 1 FROM audiences WHERE id = $1 AND project_id = $3)
    ORDER BY provider_member_id LIMIT $4";

/// [`ERASE_MEMBERS_PAGE`] for the members audience `$1`'s unfinished full syncs staged,
/// after (session, provider member id) (`$2`, `$3`), if it is project `$4`'s.
pub(crate) const ERASE_STAGED_PAGE: &str =
    "SELECT session_id, provider_member_id, traits FROM sync_staged_members
    WHERE audience_id = $1 AND (session_id, provider_member_id) > ($2, $3)
    AND traits <> '{}'
    AND EXISTS (SELECT 1 FROM audiences WHERE id = $1 AND project_id = $4)
    ORDER BY session_id, provider_member_id LIMIT $5";

/// The last of the next `$3` app users of project `$1` with invites after reference id `$2`,
/// read from `invites_by_user` in order.
pub(crate) const ERASE_NEXT_USERS: &str = "SELECT MAX(reference_id) FROM (
    SELECT DISTINCT reference_id FROM invites
    WHERE project_id = $1 AND reference_id > $2
    ORDER BY reference_id LIMIT $3) AS next_users";

/// The invites with traits of project `$1`'s users after reference id `$2` up to `$3`: a
/// range of `invites_by_user`.
pub(crate) const ERASE_USERS_INVITES: &str = "SELECT code, traits FROM invites
    WHERE project_id = $1 AND reference_id > $2 AND reference_id <= $3
    AND traits <> '{}'";

/// The current memberships with match key `$2` in the audiences of project `$1`, as
/// `(audience_id, provider_member_id)`: one seek in `audience_members_by_match_key`, which
/// holds all the columns needed (migration 0012), then each entry's audience by its key.
/// Rows a full-sync session staged in place count once the session is applied (migration
/// 0008); such rows exist only while the audience has pages of an unfinished session in
/// `sync_staging`, so only then is a member's row read to tell. (`CROSS JOIN` makes SQLite
/// keep that order; PostgreSQL reads its own, `postgres.rs`.)
/// [`USER_MEMBERSHIPS`]'s statement, with a condition of its own after its `WHERE`.
macro_rules! user_memberships_where {
    ($and:literal) => {
        concat!(
            "SELECT k.audience_id, k.provider_member_id
     FROM audience_members k CROSS JOIN audiences a
     WHERE k.match_key = $2 AND k.exited_at IS NULL AND a.id = k.audience_id AND a.project_id = $1",
            $and,
            "
       AND (NOT EXISTS (SELECT 1 FROM sync_staging s WHERE s.audience_id = a.id)
            OR EXISTS (SELECT 1 FROM audience_members m
                       WHERE m.audience_id = k.audience_id AND m.provider_member_id = k.provider_member_id
                         AND (m.staged_session IS NULL OR m.staged_session = a.last_session_id)))"
        )
    };
}

pub(crate) const USER_MEMBERSHIPS: &str = user_memberships_where!("");

/// [`USER_MEMBERSHIPS`] in audience `$3` only, one row at most: one seek in the same index
/// (it is keyed by match key, then audience).
pub(crate) const USER_MEMBERSHIP_OF: &str = concat!(
    user_memberships_where!(" AND k.audience_id = $3"),
    " LIMIT 1"
);

/// One member by its key, `$1` audience and `$2` provider member id, current or past, if
/// their row counts ([`COUNTS`]'s condition, written out: a `const` cannot splice another).
pub(crate) const AUDIENCE_MEMBER: &str =
    "SELECT provider_member_id, reference_id, traits, entered_at, exited_at FROM audience_members
     WHERE audience_id = $1 AND provider_member_id = $2
       AND (staged_session IS NULL OR staged_session = (SELECT last_session_id FROM audiences WHERE id = $1))";

/// The members of audience `$1` whose provider member id or match key (reference id, else
/// distinct id) is `$2`, current or past, if their rows count: the keys from one seek each
/// (by provider id; by match key in `audience_members_by_match_key`, which holds the key),
/// then each row by its key. (Written as a `UNION` of two row reads, or as one `OR`, SQLite
/// read the match-key half by walking the audience's whole key range: 56 ms in an audience
/// of 350,000.) A page of them: provider ids after `$3`, members who left only when `$4`,
/// at most `$5` (a cohort can list any number of distinct ids under one reference id). The
/// page's start is a filter of the match-key seek's rows, written so SQLite cannot take it
/// for a range of the primary key instead (it walked the audience).
pub(crate) const FIND_AUDIENCE_MEMBERS: &str =
    "SELECT provider_member_id, reference_id, traits, entered_at, exited_at FROM audience_members
     WHERE audience_id = $1
       AND provider_member_id IN (
         SELECT CAST($2 AS TEXT) WHERE CAST($2 AS TEXT) > CAST($3 AS TEXT)
         UNION SELECT provider_member_id FROM audience_members
           WHERE match_key = $2 AND audience_id = $1 AND (provider_member_id || '') > $3)
       AND ($4 OR exited_at IS NULL)
       AND (staged_session IS NULL OR staged_session = (SELECT last_session_id FROM audiences WHERE id = $1))
     ORDER BY provider_member_id LIMIT $5";

/// A page of project `$1`'s sync history, newest first, before id `$2` (none when empty), of
/// `$3` entries. Run as a statement planned with its values, as [`AUDIENCE_LEDGER_PAGE`].
pub(crate) const PROJECT_LEDGER_PAGE: &str =
    "SELECT id, audience_id, action, session_id, page, total_pages, members, added, removed,
        outcome, error, received_at, mixpanel_cohort_id, mixpanel_cohort_name
     FROM sync_ledger
     WHERE project_id = $1 AND ($2 = '' OR id < $2)
     ORDER BY id DESC LIMIT $3";

/// How many live rules of project `$1` target audience `$2` (from the live rules' index,
/// as [`LIVE_RULES`](crate::shared_studies::LIVE_RULES)).
pub(crate) const RULES_TARGETING: &str = "SELECT COUNT(*) FROM launch_rules
     WHERE project_id = $1 AND trigger_type = 'audience' AND trigger_value = $2
       AND status <> 'archived'";

/// A page of audience `$4`'s sync history if it is project `$1`'s, as
/// [`PROJECT_LEDGER_PAGE`], read from `sync_ledger_by_audience`: the project is checked on
/// the audience, so SQLite has no other index to choose (with `project_id = $1 AND
/// audience_id = $4` it walked the project's index past every newer delivery of the other
/// audiences: 25 ms after 20,000 deliveries to another, on every audiences list).
/// The audience is a value, not a subquery's result: PostgreSQL, planning for an audience it
/// could not see (the subquery's), walked the table's primary key back past the other
/// audiences' deliveries when one audience had most of them (31 ms at 36,000 deliveries,
/// growing with the history, which is kept). For the same reason the statement is planned
/// with its values each time rather than kept prepared, whose generic plan is also made for
/// any audience.
pub(crate) const AUDIENCE_LEDGER_PAGE: &str =
    "SELECT id, audience_id, action, session_id, page, total_pages, members, added, removed,
        outcome, error, received_at, mixpanel_cohort_id, mixpanel_cohort_name
     FROM sync_ledger
     WHERE audience_id = $4 AND EXISTS (SELECT 1 FROM audiences WHERE id = $4 AND project_id = $1)
       AND ($2 = '' OR id < $2)
     ORDER BY id DESC LIMIT $3";

/// A cohort sync configuration's columns (table alias `c`): its last delivery is the latest
/// of its project's audiences since it was set up (migration 0009).
pub(crate) const SYNC_CONFIG: &str =
    "c.project_id, c.webhook_id, c.username, c.secret_hash, c.created_at, c.secret_rotated_at, c.enabled,
     (SELECT MAX(a.last_delivery_at) FROM audiences a
      WHERE a.project_id = c.project_id AND a.last_delivery_at >= c.created_at) AS last_delivery_at";

/// Whether a row of `audience_members` of audience `$1` counts: rows a full-sync session
/// staged in place count once that session is the audience's applied one (migration 0008).
pub(crate) const COUNTS: &str = "(staged_session IS NULL \
     OR staged_session = (SELECT last_session_id FROM audiences WHERE id = $1))";

/// Creates the cohort's audience (`$1` a new id, `$2` project, `$3` cohort id, `$4` name,
/// `$5` description or NULL, `$6` now, `$8` its Mixpanel project or NULL) or, when `$7`,
/// follows its name and description (an empty name, a NULL description keep the
/// audience's): the row. A cohort first seen without a name is called "Cohort <id>" (an
/// empty name was a link no one could click). No row when the audience is another Mixpanel
/// project's cohort of that id (the connection moved): it is not this cohort's.
pub(crate) const UPSERT_AUDIENCE: &str =
    concat!("INSERT INTO audiences (id, project_id, mixpanel_cohort_id, name, description, created_at, last_delivery_at,
        mixpanel_project_id)
     VALUES ($1, $2, $3, CASE WHEN $4 = '' THEN 'Cohort ' || $3 ELSE $4 END, COALESCE($5, ''), $6, $6, $8)
     ON CONFLICT (project_id, mixpanel_cohort_id) DO UPDATE SET
        name = CASE WHEN $7 AND $4 <> '' THEN $4 ELSE audiences.name END,
        description = CASE WHEN $7 AND $5 IS NOT NULL THEN excluded.description
            ELSE audiences.description END,
        last_delivery_at = CASE WHEN audiences.last_delivery_at > excluded.last_delivery_at
            THEN audiences.last_delivery_at ELSE excluded.last_delivery_at END,
        mixpanel_project_id = COALESCE(audiences.mixpanel_project_id, excluded.mixpanel_project_id)
     WHERE audiences.mixpanel_project_id IS NULL OR excluded.mixpanel_project_id IS NULL
        OR audiences.mixpanel_project_id = excluded.mixpanel_project_id
     RETURNING ", crate::rows::audience_columns!(), ", last_session_id");

/// The Mixpanel project of the audience of cohort `$2` in project `$1`.
pub(crate) const COHORT_OWNER: &str =
    "SELECT mixpanel_project_id FROM audiences WHERE project_id = $1 AND mixpanel_cohort_id = $2";

/// Follows the cohort's name (`$2`, empty keeps it) and description (`$3`, NULL keeps it)
/// on audience `$1`.
pub(crate) const FOLLOW_COHORT: &str =
    "UPDATE audiences SET name = CASE WHEN $2 = '' THEN name ELSE $2 END,
        description = COALESCE($3, description)
     WHERE id = $1";

/// Whether the ledger holds a diff `$3` (its action) of session `$2` with members `$4`
/// (`members_digest`) as applied to audience `$1` (index `sync_ledger_by_diff`).
pub(crate) const DIFF_APPLIED: &str = "SELECT EXISTS (SELECT 1 FROM sync_ledger
     WHERE audience_id = $1 AND session_id = $2 AND action = $3 AND members_digest = $4
       AND action <> 'members' AND outcome = 'applied')";

/// Notes page `$3` of `$4` of session `$2` of audience `$1` received at `$5`, and answers
/// what was there before it: this session's other pages, whether pages of another
/// session, or of this one announcing another page count, are staged (this page supersedes
/// them), and whether none of this session's other pages came at or after `$6` (with
/// some, it is stale: dropped first; the first page looked at answers for a run being
/// staged). None can see the row it inserts, on either database. No row: the page was
/// there already.
pub(crate) const STAGE_PAGE: &str =
    "INSERT INTO sync_staging (audience_id, session_id, page, total_pages, received_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (audience_id, session_id, page) DO NOTHING
     RETURNING
        (SELECT COUNT(*) FROM sync_staging WHERE audience_id = $1 AND session_id = $2 AND page <> $3),
        EXISTS (SELECT 1 FROM sync_staging
                WHERE audience_id = $1 AND (session_id <> $2 OR total_pages <> $4)),
        NOT EXISTS (SELECT 1 FROM sync_staging
                    WHERE audience_id = $1 AND session_id = $2 AND page <> $3 AND received_at >= $6)";

/// The time a change of an audience timed `at` (when its delivery arrived) is recorded
/// at: no earlier than the audience's last change (`last`). A delivery that waited for the
/// audience behind one timed later would otherwise record a member leaving before they
/// entered, and move the audience's last sync back.
pub(crate) fn not_before(
    at: chrono::DateTime<chrono::Utc>,
    last: Option<chrono::DateTime<chrono::Utc>>,
) -> chrono::DateTime<chrono::Utc> {
    last.map_or(at, |last| at.max(last))
}

/// Whether project `$1` still takes a delivery accepted with the webhook secret whose hash is
/// `$2`, from Mixpanel project `$3`: sync on with that secret, and connected to it.
pub(crate) const SYNC_STILL_ACCEPTED: &str = "SELECT 1 FROM cohort_sync_configs c
     JOIN mixpanel_connections m ON m.project_id = c.project_id
     WHERE c.project_id = $1 AND c.enabled AND c.secret_hash = $2 AND m.mixpanel_project_id = $3";

/// Holds audience `$1`'s row (a no-op write, as a delivery's writes take it) and names its
/// project: no row when the audience is gone or being deleted. A delete, a new rule on it and
/// the staging sweep take it, so whichever comes second sees what the first did.
pub(crate) const HOLD_AUDIENCE: &str = "UPDATE audiences SET member_count = member_count
     WHERE id = $1 AND deleting_since IS NULL RETURNING project_id";

/// Whether audience `$1`'s deletion began: a delivery for its cohort is then refused, to be
/// retried once it is gone (landing in it, it would be deleted with it, and Mixpanel never
/// sends a diff again).
pub(crate) const AUDIENCE_DELETING: &str =
    "SELECT deleting_since IS NOT NULL FROM audiences WHERE id = $1";

/// Holds audience `$1` of project `$2` (as [`HOLD_AUDIENCE`], whether being deleted or not)
/// and tells whether its deletion began: no row when it is not the project's.
pub(crate) const HOLD_OWN_AUDIENCE: &str = "UPDATE audiences SET member_count = member_count
     WHERE id = $1 AND project_id = $2 RETURNING deleting_since IS NOT NULL";

/// Rows of a table deleted per statement while an audience is deleted: SQLite's one writer
/// is held ~10–20 ms for each (a million members in one transaction held it 2–3 s), so
/// invites and deliveries of every project wait one batch at most.
pub(crate) const AUDIENCE_DELETE_BATCH: i64 = 5000;

/// Rows deleted per statement when old ones are purged (sync history, idempotency records).
pub(crate) const PURGE_BATCH: i64 = 5000;

/// One delivery's ledger entry.
pub(crate) const INSERT_LEDGER: &str =
    "INSERT INTO sync_ledger (id, project_id, audience_id, action, session_id, page, total_pages,
        members, added, removed, outcome, error, received_at, members_digest, mixpanel_cohort_id,
        mixpanel_cohort_name)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

/// Rows per multi-row statement: 1000 members × 8 columns stays under both databases'
/// parameter limits.
pub(crate) const MEMBER_BATCH: usize = 1000;

/// Keeps the last occurrence of each provider id (one statement may not upsert a row
/// twice), in the ids' order: every write of an audience's members then locks their rows in
/// key order, as the trait erase does, so on PostgreSQL the two wait for each other in line
/// instead of deadlocking (a soak test found deliveries answered 503 for it).
pub(crate) fn dedupe(
    members: &[uj_domain::cohort_sync::SyncedMember],
) -> Vec<&uj_domain::cohort_sync::SyncedMember> {
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<_> = members
        .iter()
        .rev()
        .filter(|m| seen.insert(m.provider_member_id.as_str()))
        .collect();
    unique.sort_unstable_by(|a, b| a.provider_member_id.cmp(&b.provider_member_id));
    unique
}

macro_rules! impl_cohort_sync_store {
    ($store:ty) => {
        type SyncDb = <$store as crate::shared::Dialect>::Db;

        /// Serialises membership changes of one audience: on PostgreSQL the UPDATE holds
        /// the audience row's lock until commit (SQLite already has a single writer). Diffs
        /// take it here; a `members` page takes it with its audience upsert
        /// (`upsert_audience_in`), so a diff and a page, or two last pages, never interleave.
        /// Answers the audience's member count, exact while the lock is held: every change
        /// of membership updates it before it commits; and the time to record a change
        /// timed `at` at (`not_before`).
        async fn lock_audience(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            at: DateTime<Utc>,
        ) -> Result<(i64, DateTime<Utc>), $crate::StoreError> {
            let (count, last): (i64, Option<Ts>) = sqlx::query_as(
                "UPDATE audiences SET member_count = member_count WHERE id = $1
                 RETURNING member_count, last_synced_at",
            )
            .bind(audience.as_str())
            .fetch_one(&mut **tx)
            .await?;
            Ok((count, crate::shared_cohort_sync::not_before(at, last.map(|t| t.0))))
        }

        /// Deletes an audience whose deletion began (`deleting_since` set): its
        /// members, staged members, staged pages and sync history a batch per statement,
        /// each table until a batch finds none, then the audience. No delivery writes to it
        /// meanwhile (they are refused once the deletion began: `AUDIENCE_DELETING`), so
        /// nothing comes back and no batch meets a delivery's row locks. Several processes
        /// finishing one deletion take turns at its batches.
        async fn finish_audience_deletion(
            store: &$store,
            audience: &AudienceId,
        ) -> Result<(), $crate::StoreError> {
            let batch = crate::shared_cohort_sync::AUDIENCE_DELETE_BATCH;
            for rows in [
                "DELETE FROM audience_members WHERE audience_id = $1 AND provider_member_id IN (
                    SELECT provider_member_id FROM audience_members WHERE audience_id = $1 LIMIT $2)",
                "DELETE FROM sync_staged_members WHERE audience_id = $1
                   AND (session_id, provider_member_id) IN (
                    SELECT session_id, provider_member_id FROM sync_staged_members
                    WHERE audience_id = $1 LIMIT $2)",
                "DELETE FROM sync_staging WHERE audience_id = $1 AND (session_id, page) IN (
                    SELECT session_id, page FROM sync_staging WHERE audience_id = $1 LIMIT $2)",
                "DELETE FROM sync_ledger WHERE id IN (
                    SELECT id FROM sync_ledger WHERE audience_id = $1 LIMIT $2)",
            ] {
                // Until none is left. Each batch holds the audience's row first (PostgreSQL),
                // so another process finishing it too takes turns: both picked the same
                // rows, and the one that waited found them gone, took the table for empty
                // and went on to delete the audience, its remaining members in one
                // statement through the cascade (which could deadlock with the batches).
                loop {
                    let mut tx = store.begin().await?;
                    if <$store as crate::shared::Dialect>::ROW_LOCKS {
                        sqlx::query("SELECT 1 FROM audiences WHERE id = $1 FOR UPDATE")
                            .bind(audience.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    let deleted = sqlx::query(rows)
                        .bind(audience.as_str())
                        .bind(batch)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    if deleted == 0 {
                        break;
                    }
                }
            }
            sqlx::query("DELETE FROM audiences WHERE id = $1 AND deleting_since IS NOT NULL")
                .bind(audience.as_str())
                .execute(store.writer())
                .await?;
            Ok(())
        }

        /// Counts the audience's current members row by row (a scan of the audience).
        async fn active_members(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
        ) -> Result<i64, $crate::StoreError> {
            let sql = format!(
                "SELECT COUNT(*) FROM audience_members WHERE audience_id = $1 AND exited_at IS NULL AND {}",
                crate::shared_cohort_sync::COUNTS
            );
            Ok(sqlx::query_scalar(&sql)
                .bind(audience.as_str())
                .fetch_one(&mut **tx)
                .await?)
        }

        /// Upserts members: new or returning ones enter at `at`, current ones keep their
        /// entry time; all get fresh traits and count at once (a row an unfinished session
        /// staged in place becomes a plain current row that session still lists).
        /// How many did not count before, and whether a current one changed its match key
        /// (each chunk's current ones are read by key first, so a diff costs its own
        /// members, not the audience's).
        async fn upsert_members(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            members: &[uj_domain::cohort_sync::SyncedMember],
            at: DateTime<Utc>,
        ) -> Result<(i64, bool), $crate::StoreError> {
            let unique = crate::shared_cohort_sync::dedupe(members);
            let mut added = 0;
            let mut relisted = false;
            for chunk in unique.chunks(crate::shared_cohort_sync::MEMBER_BATCH) {
                let mut builder = sqlx::QueryBuilder::<SyncDb>::new(
                    "SELECT provider_member_id, match_key FROM audience_members WHERE audience_id = ",
                );
                builder.push_bind(audience.as_str());
                builder.push(" AND exited_at IS NULL AND (staged_session IS NULL OR staged_session = \
                    (SELECT last_session_id FROM audiences WHERE id = ");
                builder.push_bind(audience.as_str());
                builder.push(")) AND provider_member_id IN (");
                let mut ids = builder.separated(", ");
                for member in chunk {
                    ids.push_bind(member.provider_member_id.as_str());
                }
                builder.push(")");
                let current: Vec<(String, String)> = builder.build_query_as().fetch_all(&mut **tx).await?;
                added += (chunk.len() - current.len()) as i64;
                if !relisted && !current.is_empty() {
                    let keys: std::collections::HashMap<&str, &str> = chunk
                        .iter()
                        .map(|m| (m.provider_member_id.as_str(), m.match_key()))
                        .collect();
                    relisted = current
                        .iter()
                        .any(|(id, key)| keys.get(id.as_str()).is_some_and(|new| new != key));
                }
                let mut builder = sqlx::QueryBuilder::<SyncDb>::new(
                    "INSERT INTO audience_members (audience_id, provider_member_id, reference_id, \
                     match_key, traits, entered_at) ",
                );
                builder.push_values(chunk, |mut row, member| {
                    row.push_bind(audience.as_str())
                        .push_bind(member.provider_member_id.as_str())
                        .push_bind(member.reference_id.as_deref())
                        .push_bind(member.match_key())
                        .push_bind(crate::shared::traits_json(&member.traits))
                        .push_bind(Ts(at));
                });
                builder.push(
                    " ON CONFLICT (audience_id, provider_member_id) DO UPDATE SET \
                     reference_id = excluded.reference_id, match_key = excluded.match_key, \
                     traits = excluded.traits, \
                     entered_at = CASE WHEN audience_members.exited_at IS NULL \
                        THEN audience_members.entered_at ELSE excluded.entered_at END, \
                     exited_at = NULL, \
                     last_session = COALESCE(audience_members.staged_session, audience_members.last_session), \
                     staged_session = NULL",
                );
                builder.build().execute(&mut **tx).await?;
            }
            Ok((added, relisted))
        }

        /// Drops an unfinished session: its pages, its staged copies, the rows it wrote in
        /// place and its mark on rows it listed (scans of the audience's rows; sessions are
        /// superseded or go stale rarely).
        /// The number of pages dropped.
        async fn discard_session(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            session_id: &str,
        ) -> Result<u64, $crate::StoreError> {
            sqlx::query(
                "DELETE FROM audience_members WHERE audience_id = $1 AND staged_session = $2
                   AND staged_session <> COALESCE((SELECT last_session_id FROM audiences WHERE id = $1), '')",
            )
            .bind(audience.as_str())
            .bind(session_id)
            .execute(&mut **tx)
            .await?;
            // Rows a diff made current while the session listed them (`upsert_members`) are no
            // longer listed by it: a rerun of the session that omits them must see them leave.
            sqlx::query(
                "UPDATE audience_members SET last_session = NULL
                 WHERE audience_id = $1 AND last_session = $2 AND staged_session IS NULL
                   AND last_session <> COALESCE((SELECT last_session_id FROM audiences WHERE id = $1), '')",
            )
            .bind(audience.as_str())
            .bind(session_id)
            .execute(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM sync_staged_members WHERE audience_id = $1 AND session_id = $2")
                .bind(audience.as_str())
                .bind(session_id)
                .execute(&mut **tx)
                .await?;
            let pages = sqlx::query("DELETE FROM sync_staging WHERE audience_id = $1 AND session_id = $2")
                .bind(audience.as_str())
                .bind(session_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            Ok(pages)
        }

        /// Stages one page's members. Members without a row yet (and rows this session wrote
        /// before: a member listed twice counts once, last wins) are written in place under
        /// the session, counted only once it is applied; members with a row of their own are
        /// staged as copies, applied over their row when the session completes.
        async fn stage_members(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            session_id: &str,
            members: &[uj_domain::cohort_sync::SyncedMember],
            at: DateTime<Utc>,
        ) -> Result<(), $crate::StoreError> {
            let unique = crate::shared_cohort_sync::dedupe(members);
            for chunk in unique.chunks(crate::shared_cohort_sync::MEMBER_BATCH) {
                let mut builder = sqlx::QueryBuilder::<SyncDb>::new(
                    "INSERT INTO audience_members (audience_id, provider_member_id, reference_id, \
                     match_key, traits, entered_at, staged_session) ",
                );
                // Borrowed, not copied: a page binds 7,000 values. `last_session` stays
                // NULL: a row written in place is listed by its `staged_session`, and the
                // apply's removals only look at `last_session` for rows that are not.
                builder.push_values(chunk, |mut row, member| {
                    row.push_bind(audience.as_str())
                        .push_bind(member.provider_member_id.as_str())
                        .push_bind(member.reference_id.as_deref())
                        .push_bind(member.match_key())
                        .push_bind(crate::shared::traits_json(&member.traits))
                        .push_bind(Ts(at))
                        .push_bind(session_id);
                });
                builder.push(
                    " ON CONFLICT (audience_id, provider_member_id) DO UPDATE SET \
                     reference_id = excluded.reference_id, match_key = excluded.match_key, \
                     traits = excluded.traits \
                     WHERE audience_members.staged_session = excluded.staged_session",
                );
                let written = builder.build().execute(&mut **tx).await?.rows_affected();
                if written == chunk.len() as u64 {
                    continue;
                }
                // Some have rows of their own (current, exited, or of the applied session).
                let mut builder = sqlx::QueryBuilder::<SyncDb>::new(
                    "SELECT provider_member_id FROM audience_members WHERE audience_id = ",
                );
                builder.push_bind(audience.as_str().to_owned());
                builder.push(" AND (staged_session IS NULL OR staged_session <> ");
                builder.push_bind(session_id.to_owned());
                builder.push(") AND provider_member_id IN (");
                let mut ids = builder.separated(", ");
                for member in chunk {
                    ids.push_bind(member.provider_member_id.clone());
                }
                builder.push(")");
                let own: std::collections::HashSet<String> = builder
                    .build_query_scalar()
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .collect();
                let copies: Vec<_> = chunk
                    .iter()
                    .filter(|m| own.contains(&m.provider_member_id))
                    .collect();
                if copies.is_empty() {
                    continue;
                }
                let mut builder = sqlx::QueryBuilder::<SyncDb>::new(
                    "INSERT INTO sync_staged_members (audience_id, session_id, provider_member_id, \
                     reference_id, match_key, traits) ",
                );
                builder.push_values(copies, |mut row, member| {
                    row.push_bind(audience.as_str().to_owned())
                        .push_bind(session_id.to_owned())
                        .push_bind(member.provider_member_id.clone())
                        .push_bind(member.reference_id.clone())
                        .push_bind(member.match_key().to_owned())
                        .push_bind(crate::shared::traits_json(&member.traits));
                });
                builder.push(
                    " ON CONFLICT (audience_id, session_id, provider_member_id) DO UPDATE SET \
                     reference_id = excluded.reference_id, match_key = excluded.match_key, \
                     traits = excluded.traits",
                );
                builder.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        /// Creates the cohort's audience on its first delivery, else follows its name and
        /// description; notes the delivery's time (the webhook's last delivery is its
        /// audiences' latest, `SYNC_CONFIG`). On
        /// PostgreSQL the upsert holds the audience row's lock until commit (see
        /// `lock_audience`).
        async fn upsert_audience_in(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            project: &ProjectId,
            cohort: &$crate::SyncCohort<'_>,
            at: DateTime<Utc>,
            follow: bool,
        ) -> Result<AudienceSessionRow, $crate::StoreError> {
            if let Some(secret_hash) = cohort.accepted_with {
                // Held to the commit on PostgreSQL, so a Disable, Disconnect or Regenerate
                // secret waits for the delivery (SQLite's one writer orders them already).
                let sql = format!(
                    "{}{}",
                    crate::shared_cohort_sync::SYNC_STILL_ACCEPTED,
                    if <$store as crate::shared::Dialect>::ROW_LOCKS { " FOR SHARE OF c, m" } else { "" }
                );
                let accepted: Option<i32> = sqlx::query_scalar(&sql)
                    .bind(project.as_str())
                    .bind(secret_hash)
                    .bind(cohort.mixpanel_project_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                if accepted.is_none() {
                    return Err($crate::StoreError::Gone("cohort sync settings"));
                }
            }
            let row: Option<AudienceSessionRow> = sqlx::query_as(crate::shared_cohort_sync::UPSERT_AUDIENCE)
            .bind(uj_domain::ids::AudienceId::generate().as_str())
            .bind(project.as_str())
            .bind(cohort.mixpanel_cohort_id)
            .bind(cohort.name)
            .bind(cohort.description)
            .bind(Ts(at))
            .bind(follow)
            .bind(cohort.mixpanel_project_id)
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                Some(row) => {
                    // Held by the upsert: a deletion began before it, or waits for it.
                    let deleting: bool = sqlx::query_scalar(crate::shared_cohort_sync::AUDIENCE_DELETING)
                        .bind(&row.audience.id)
                        .fetch_one(&mut **tx)
                        .await?;
                    if deleting {
                        return Err($crate::StoreError::Gone("audience being deleted"));
                    }
                    Ok(row)
                }
                None => {
                    let owner: Option<String> = sqlx::query_scalar(crate::shared_cohort_sync::COHORT_OWNER)
                        .bind(project.as_str())
                        .bind(cohort.mixpanel_cohort_id)
                        .fetch_one(&mut **tx)
                        .await?;
                    Err($crate::StoreError::CohortOfAnotherProject(owner.unwrap_or_default()))
                }
            }
        }

        /// Follows the cohort's name and description (`FOLLOW_COHORT`), for a delivery known
        /// not to come late.
        async fn follow_cohort(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            cohort: &$crate::SyncCohort<'_>,
        ) -> Result<(), $crate::StoreError> {
            sqlx::query(crate::shared_cohort_sync::FOLLOW_COHORT)
                .bind(audience.as_str())
                .bind(cohort.name)
                .bind(cohort.description)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// `add_members` under the audience's lock (`before` its member count): members enter.
        async fn enter(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            before: i64,
            members: &[uj_domain::cohort_sync::SyncedMember],
            at: DateTime<Utc>,
        ) -> Result<uj_domain::audiences::MembershipChange, $crate::StoreError> {
            let (added, relisted) = upsert_members(tx, audience, members, at).await?;
            let change = uj_domain::audiences::MembershipChange {
                added,
                removed: 0,
                member_count: before + added,
            };
            // A member listed under another `reference_id` leaves the old user's invites.
            finish_change(tx, audience, change, relisted, at).await
        }

        /// `remove_members` under the audience's lock (`before` its member count): members exit.
        async fn leave(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            before: i64,
            provider_member_ids: &[&str],
            at: DateTime<Utc>,
        ) -> Result<uj_domain::audiences::MembershipChange, $crate::StoreError> {
            let mut removed = 0;
            for chunk in provider_member_ids.chunks(crate::shared_cohort_sync::MEMBER_BATCH) {
                let mut builder = sqlx::QueryBuilder::<SyncDb>::new("UPDATE audience_members SET exited_at = ");
                builder.push_bind(Ts(at));
                builder.push(" WHERE audience_id = ");
                builder.push_bind(audience.as_str().to_owned());
                builder.push(" AND exited_at IS NULL AND (staged_session IS NULL OR staged_session = \
                    (SELECT last_session_id FROM audiences WHERE id = ");
                builder.push_bind(audience.as_str().to_owned());
                builder.push(")) AND provider_member_id IN (");
                let mut ids = builder.separated(", ");
                for id in chunk {
                    ids.push_bind((*id).to_owned());
                }
                builder.push(")");
                removed += builder.build().execute(&mut **tx).await?.rows_affected() as i64;
            }
            let change = uj_domain::audiences::MembershipChange {
                added: 0,
                removed,
                member_count: before - removed,
            };
            finish_change(tx, audience, change, false, at).await
        }

        /// Stages one page: the session's pages staged now, or `None` for a duplicate.
        async fn stage_page(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            applied: Option<&str>,
            sync_page: &$crate::SyncPage<'_>,
            at: DateTime<Utc>,
        ) -> Result<Option<i64>, $crate::StoreError> {
            let $crate::SyncPage { session_id, page, total_pages, members } = *sync_page;
            // Mixpanel delivers at least once: a page of the session already applied is a
            // duplicate, not the start of a new session.
            if applied == Some(session_id) {
                return Ok(None);
            }
            // A run staged longer ago than staging is kept is dropped first, as the hourly job
            // drops it (`delete_stale_staging`): its page is then answered as after the job,
            // below (a run that old never completes; its last page completed it within the
            // hour after, applying pages two days old).
            let stale_before = Ts(at - uj_domain::cohort_sync::STAGING_KEPT_FOR);
            let stale: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sync_staging WHERE audience_id = $1 AND session_id = $2)
                    AND NOT EXISTS (SELECT 1 FROM sync_staging
                                    WHERE audience_id = $1 AND session_id = $2 AND received_at >= $3)",
            )
            .bind(audience.as_str())
            .bind(session_id)
            .bind(stale_before)
            .fetch_one(&mut **tx)
            .await?;
            if stale {
                discard_session(tx, audience, session_id).await?;
            }
            // So is a page starting a run the ledger has seen: that run was applied, replaced
            // by a newer one or dropped as stale, and this page comes late (retried after a
            // 503, or in flight in another process). Taken as a new run it would discard the
            // run being staged, or apply an older membership again. A run is its session and
            // page count.
            // Unless nothing was applied since the run began: it was replaced unfinished by a
            // run seen later (which need not be newer, of another session or a rerun of its
            // own), and acknowledging its pages would have Mixpanel go on from a membership
            // never applied. Refused for Mixpanel to retry, give the run up, and go on from
            // the last one it completed: the audience's membership, which it then converges
            // from. (Once the replacing run is applied, its pages are duplicates.)
            let late: bool = sqlx::query_scalar(
                "SELECT NOT EXISTS (SELECT 1 FROM sync_staging
                                    WHERE audience_id = $1 AND session_id = $2 AND total_pages = $3)
                    AND EXISTS (SELECT 1 FROM sync_ledger
                                WHERE audience_id = $1 AND action = 'members' AND session_id = $2
                                  AND total_pages = $3 AND outcome <> 'rejected')",
            )
            .bind(audience.as_str())
            .bind(session_id)
            .bind(total_pages)
            .fetch_one(&mut **tx)
            .await?;
            if late {
                // Read for late pages only: it walks the audience's history since the run.
                let settled: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM sync_ledger
                        WHERE audience_id = $1 AND outcome = 'applied'
                          AND received_at >= (SELECT MIN(received_at) FROM sync_ledger
                                              WHERE audience_id = $1 AND action = 'members'
                                                AND session_id = $2 AND total_pages = $3
                                                AND outcome <> 'rejected'))",
                )
                .bind(audience.as_str())
                .bind(session_id)
                .bind(total_pages)
                .fetch_one(&mut **tx)
                .await?;
                return match settled {
                    true => Ok(None),
                    false => Err($crate::StoreError::RunReplaced),
                };
            }
            // Pages of this session announcing another page count are an earlier run of it
            // (a run restarted from the top, the cohort grown meanwhile): this page starts
            // the session afresh, as a newer session would. Completing it with the earlier
            // run's pages counted would apply a membership missing pages.
            let rerun: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sync_staging
                                WHERE audience_id = $1 AND session_id = $2 AND total_pages <> $3)",
            )
            .bind(audience.as_str())
            .bind(session_id)
            .bind(total_pages)
            .fetch_one(&mut **tx)
            .await?;
            if rerun {
                discard_session(tx, audience, session_id).await?;
            }
            let staged: Option<(i64, bool, bool)> = sqlx::query_as(crate::shared_cohort_sync::STAGE_PAGE)
            .bind(audience.as_str())
            .bind(session_id)
            .bind(page)
            .bind(total_pages)
            .bind(Ts(at))
            .bind(stale_before)
            .fetch_optional(&mut **tx)
            .await?;
            let Some((before, superseding, _)) = staged else {
                return Ok(None);
            };
            if superseding {
                let older: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT session_id FROM sync_staging WHERE audience_id = $1 AND session_id <> $2",
                )
                .bind(audience.as_str())
                .bind(session_id)
                .fetch_all(&mut **tx)
                .await?;
                for other in older {
                    discard_session(tx, audience, &other).await?;
                }
            }
            stage_members(tx, audience, session_id, members, at).await?;
            Ok(Some(before + 1))
        }

        /// Applies a complete session over the `previous` one: the audience's lock is held
        /// (its page was just staged in this transaction).
        async fn apply_session(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            previous: Option<&str>,
            session_id: &str,
            before: i64,
            at: DateTime<Utc>,
        ) -> Result<uj_domain::audiences::MembershipChange, $crate::StoreError> {
            // Members that were current already take their staged copy; one set-based
            // statement, nothing passes through this process's memory.
            sqlx::query(
                "INSERT INTO audience_members
                    (audience_id, provider_member_id, reference_id, match_key, traits, entered_at, last_session)
                 SELECT audience_id, provider_member_id, reference_id, match_key, traits, $3, $2
                 FROM sync_staged_members WHERE audience_id = $1 AND session_id = $2
                 ON CONFLICT (audience_id, provider_member_id) DO UPDATE SET
                    reference_id = excluded.reference_id, match_key = excluded.match_key,
                    traits = excluded.traits,
                    entered_at = CASE WHEN audience_members.exited_at IS NULL
                        THEN audience_members.entered_at ELSE excluded.entered_at END,
                    exited_at = NULL, last_session = excluded.last_session, staged_session = NULL",
            )
            .bind(audience.as_str())
            .bind(session_id)
            .bind(Ts(at))
            .execute(&mut **tx)
            .await?;
            // Current members the session did not list exit (none to look for when the
            // audience had no current members).
            let removed = if before == 0 {
                0
            } else {
                sqlx::query(
                    "UPDATE audience_members SET exited_at = $3
                     WHERE audience_id = $1 AND exited_at IS NULL
                       AND (staged_session IS NULL OR staged_session = $4)
                       AND (last_session IS NULL OR last_session <> $2)",
                )
                .bind(audience.as_str())
                .bind(session_id)
                .bind(Ts(at))
                .bind(previous)
                .execute(&mut **tx)
                .await?
                .rows_affected() as i64
            };
            // The previous session's rows stop counting through it: they become plain
            // rows before the audience switches to this session's.
            if let Some(previous) = previous {
                sqlx::query(
                    "UPDATE audience_members SET staged_session = NULL
                     WHERE audience_id = $1 AND staged_session = $2",
                )
                .bind(audience.as_str())
                .bind(previous)
                .execute(&mut **tx)
                .await?;
            }
            sqlx::query("UPDATE audiences SET last_session_id = $2 WHERE id = $1")
                .bind(audience.as_str())
                .bind(session_id)
                .execute(&mut **tx)
                .await?;
            for table in ["sync_staging", "sync_staged_members"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE audience_id = $1"))
                    .bind(audience.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
            let after = active_members(tx, audience).await?;
            let change = uj_domain::audiences::MembershipChange {
                added: after - before + removed,
                removed,
                member_count: after,
            };
            // A full membership may list members under another `reference_id` too.
            finish_change(tx, audience, change, before > 0, at).await
        }

        /// The entry, with a diff's `members_digest` (`DIFF_APPLIED`).
        async fn insert_ledger<'e, E: sqlx::Executor<'e, Database = SyncDb>>(
            executor: E,
            project: &ProjectId,
            e: &uj_domain::audiences::LedgerEntry,
            members_digest: Option<&str>,
        ) -> Result<(), $crate::StoreError> {
            sqlx::query(crate::shared_cohort_sync::INSERT_LEDGER)
            .bind(e.id.as_str())
            .bind(project.as_str())
            .bind(e.audience_id.as_ref().map(|a| a.as_str().to_owned()))
            .bind(&e.action)
            .bind(e.session_id.as_deref())
            .bind(e.page)
            .bind(e.total_pages)
            .bind(e.members)
            .bind(e.added)
            .bind(e.removed)
            .bind(e.outcome.as_str())
            .bind(e.error.as_deref())
            .bind(Ts(e.received_at))
            .bind(members_digest)
            .bind(e.mixpanel_cohort_id.as_deref())
            .bind(e.mixpanel_cohort_name.as_deref())
            .execute(executor)
            .await?;
            Ok(())
        }

        /// Withdraws the invites of members who left and stores the new count.
        async fn finish_change(
            tx: &mut sqlx::Transaction<'static, SyncDb>,
            audience: &AudienceId,
            change: uj_domain::audiences::MembershipChange,
            relisted: bool,
            at: DateTime<Utc>,
        ) -> Result<uj_domain::audiences::MembershipChange, $crate::StoreError> {
            if change.removed > 0 || relisted {
                // Users who left lose their unaccepted invites of this audience (a member
                // who exited, or one `relisted` under another `reference_id`): the
                // audience's issued invites (`invites_issued_by_audience`), each checked
                // against the current rows of its user.
                withdraw_invites(tx, $crate::shared_cohort_sync::LEFT_MEMBERS_INVITES, audience.as_str(), at)
                    .await?;
            }
            sqlx::query("UPDATE audiences SET member_count = $2, last_synced_at = $3 WHERE id = $1")
                .bind(audience.as_str())
                .bind(change.member_count)
                .bind(Ts(at))
                .execute(&mut **tx)
                .await?;
            Ok(change)
        }

        /// Rewrites the stored traits of `rows` (each its key, bound first in `update`, and
        /// its traits as read) to the keys project `project`'s allowlist names: `update`
        /// takes the key, then the new traits, then the traits as read, and changes a row
        /// only if they are still what was read (a sync that wrote since keeps its write).
        /// Rows that keep every key are left alone; the others are rewritten in one short
        /// write that reads the allowlist itself (on PostgreSQL holding it against a change
        /// until the commit), so that a key put back meanwhile is kept.
        async fn rewrite_traits(
            store: &$store,
            project: &ProjectId,
            audience: Option<&AudienceId>,
            rows: impl IntoIterator<Item = (Vec<String>, String)>,
            update: &str,
        ) -> Result<(), $crate::StoreError> {
            use crate::shared_cohort_sync::kept_traits;
            let allowlist = |raw: Option<String>| raw.map_or(Ok(Vec::new()), |raw| trait_allowlist(&raw));
            let read = "SELECT trait_allowlist FROM projects WHERE id = $1";
            let keep = allowlist(
                sqlx::query_scalar(read).bind(project.as_str()).fetch_optional(store.reader()).await?,
            )?;
            let mut candidates = Vec::new();
            for (key, traits) in rows {
                if kept_traits(&traits, &keep)?.is_some() {
                    candidates.push((key, traits));
                }
            }
            if candidates.is_empty() {
                return Ok(());
            }
            let mut tx = store.begin().await?;
            let locked = if <$store as crate::shared::Dialect>::ROW_LOCKS {
                format!("{read} FOR SHARE")
            } else {
                read.to_owned()
            };
            let keep = allowlist(
                sqlx::query_scalar(&locked).bind(project.as_str()).fetch_optional(&mut *tx).await?,
            )?;
            // An audience's rows wait behind its lock, as every sync's writes do (a full
            // sync's apply takes its rows in no one order): on PostgreSQL the erase and a sync
            // then take turns instead of ever locking rows in a cycle.
            if let Some(audience) = audience {
                sqlx::query("UPDATE audiences SET member_count = member_count WHERE id = $1")
                    .bind(audience.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            // Rows locked in byte order, as diffs lock members and withdrawals invites.
            candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (key, traits) in &candidates {
                let Some(kept) = kept_traits(traits, &keep)? else {
                    continue;
                };
                let mut query = sqlx::query(update);
                for part in key {
                    query = query.bind(part);
                }
                query.bind(kept).bind(traits).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::CohortSyncStore for $store {
            async fn create_cohort_sync_config(
                &self,
                c: &uj_domain::audiences::CohortSyncConfig,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO cohort_sync_configs
                        (project_id, webhook_id, username, secret_hash, created_at, secret_rotated_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (project_id) DO NOTHING",
                )
                .bind(c.project_id.as_str())
                .bind(&c.webhook_id)
                .bind(&c.username)
                .bind(&c.secret_hash)
                .bind(Ts(c.created_at))
                .bind(Ts(c.secret_rotated_at))
                .execute(self.writer())
                .await
                .map_err($crate::StoreError::conflict_as("webhook"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn rotate_cohort_sync_secret(
                &self,
                project: &ProjectId,
                secret_hash: &str,
                at: DateTime<Utc>,
            ) -> Result<Option<String>, $crate::StoreError> {
                Ok(sqlx::query_scalar(
                    "UPDATE cohort_sync_configs SET secret_hash = $2, secret_rotated_at = $3
                     WHERE project_id = $1 RETURNING webhook_id",
                )
                .bind(project.as_str())
                .bind(secret_hash)
                .bind(Ts(at))
                .fetch_optional(self.writer())
                .await?)
            }

            async fn cohort_sync_config(
                &self,
                project: &ProjectId,
            ) -> Result<Option<uj_domain::audiences::CohortSyncConfig>, $crate::StoreError> {
                let row: Option<SyncConfigRow> =
                    sqlx::query_as(&format!(
                        "SELECT {} FROM cohort_sync_configs c WHERE c.project_id = $1",
                        crate::shared_cohort_sync::SYNC_CONFIG
                    ))
                        .bind(project.as_str())
                        .fetch_optional(self.reader())
                        .await?;
                Ok(row.map(Into::into))
            }

            async fn webhook_receiver(
                &self,
                webhook_id: &str,
            ) -> Result<Option<$crate::WebhookReceiver>, $crate::StoreError> {
                let row: Option<WebhookReceiverRow> = sqlx::query_as(&format!(
                    "SELECT {}, p.trait_allowlist, m.mixpanel_project_id, m.mixpanel_project_name
                     FROM cohort_sync_configs c JOIN projects p ON p.id = c.project_id
                     LEFT JOIN mixpanel_connections m ON m.project_id = c.project_id
                     WHERE c.webhook_id = $1",
                    crate::shared_cohort_sync::SYNC_CONFIG
                ))
                .bind(webhook_id)
                .fetch_optional(self.reader())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn disable_cohort_sync(&self, project: &ProjectId) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query("UPDATE cohort_sync_configs SET enabled = FALSE WHERE project_id = $1")
                    .bind(project.as_str())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn enable_cohort_sync(&self, project: &ProjectId) -> Result<Option<String>, $crate::StoreError> {
                Ok(sqlx::query_scalar(
                    "UPDATE cohort_sync_configs SET enabled = TRUE
                     WHERE project_id = $1 AND NOT enabled RETURNING webhook_id",
                )
                .bind(project.as_str())
                .fetch_optional(self.writer())
                .await?)
            }

            async fn trait_allowlist(&self, project: &ProjectId) -> Result<Vec<String>, $crate::StoreError> {
                let raw: Option<String> =
                    sqlx::query_scalar("SELECT trait_allowlist FROM projects WHERE id = $1")
                        .bind(project.as_str())
                        .fetch_optional(self.reader())
                        .await?;
                raw.map_or(Ok(Vec::new()), |raw| trait_allowlist(&raw))
            }

            async fn change_settings(
                &self,
                project: &ProjectId,
                change: &$crate::SettingsChange<'_>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<bool>, $crate::StoreError> {
                // One transaction: a PATCH of both settings wrote one, then failed to write
                // the other, and answered an error with the first changed.
                let mut tx = self.begin().await?;
                // Holds the project's row (a no-op write) while the list before is read: a
                // save at the same moment reads this one's.
                let held = sqlx::query("UPDATE projects SET trait_allowlist = trait_allowlist WHERE id = $1")
                    .bind(project.as_str())
                    .execute(&mut *tx)
                    .await?;
                if held.rows_affected() != 1 {
                    return Ok(None);
                }
                let mut dropped = false;
                if let Some(keys) = change.trait_allowlist {
                    let before: String =
                        sqlx::query_scalar("SELECT trait_allowlist FROM projects WHERE id = $1")
                            .bind(project.as_str())
                            .fetch_one(&mut *tx)
                            .await?;
                    // A list saved again, or grown, leaves nothing to erase (each save started
                    // an erase of every member: found by the settings review).
                    dropped = trait_allowlist(&before)?
                        .iter()
                        .any(|key| !keys.contains(key));
                    let list = serde_json::Value::from(keys.to_vec()).to_string();
                    let saved = if dropped {
                        sqlx::query(
                            "UPDATE projects SET trait_allowlist = $2, trait_erase_due = $3 WHERE id = $1",
                        )
                        .bind(project.as_str())
                        .bind(list)
                        .bind(at)
                    } else {
                        sqlx::query("UPDATE projects SET trait_allowlist = $2 WHERE id = $1")
                            .bind(project.as_str())
                            .bind(list)
                    };
                    saved.execute(&mut *tx).await?;
                }
                if let Some(days) = change.contact_limit_days {
                    sqlx::query("UPDATE projects SET contact_limit_days = $2 WHERE id = $1")
                        .bind(project.as_str())
                        .bind(days)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(dropped))
            }

            async fn trait_erase_due(
                &self,
                project: &ProjectId,
            ) -> Result<Option<chrono::DateTime<chrono::Utc>>, $crate::StoreError> {
                let due: Option<Option<chrono::DateTime<chrono::Utc>>> =
                    sqlx::query_scalar("SELECT trait_erase_due FROM projects WHERE id = $1")
                        .bind(project.as_str())
                        .fetch_optional(self.reader())
                        .await?;
                Ok(due.flatten())
            }

            async fn trait_erases_due(&self) -> Result<Vec<ProjectId>, $crate::StoreError> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM projects WHERE trait_erase_due IS NOT NULL ORDER BY id",
                )
                .fetch_all(self.reader())
                .await?;
                Ok(ids.into_iter().map(ProjectId::from_string).collect())
            }

            async fn trait_erase_done(
                &self,
                project: &ProjectId,
                due: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE projects SET trait_erase_due = NULL WHERE id = $1 AND trait_erase_due = $2",
                )
                .bind(project.as_str())
                .bind(due)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn erase_member_traits(
                &self,
                project: &ProjectId,
                audience: &AudienceId,
                after: Option<String>,
                limit: i64,
            ) -> Result<Option<String>, $crate::StoreError> {
                // Read without the writer, in the key's order (one seek per batch).
                let rows: Vec<(String, String)> = sqlx::query_as(
                    crate::shared_cohort_sync::ERASE_MEMBERS_PAGE,
                )
                .bind(audience.as_str())
                .bind(after.unwrap_or_default())
                .bind(project.as_str())
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                let last = rows.last().map(|(member, _)| member.clone());
                let update = "UPDATE audience_members SET traits = $3
                              WHERE audience_id = $1 AND provider_member_id = $2 AND traits = $4";
                let keyed = rows.into_iter().map(|(member, traits)| (vec![audience.to_string(), member], traits));
                rewrite_traits(self, project, Some(audience), keyed, update).await?;
                Ok(last)
            }

            async fn erase_staged_traits(
                &self,
                project: &ProjectId,
                audience: &AudienceId,
                after: Option<(String, String)>,
                limit: i64,
            ) -> Result<Option<(String, String)>, $crate::StoreError> {
                let (session, member) = after.unwrap_or_default();
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    crate::shared_cohort_sync::ERASE_STAGED_PAGE,
                )
                .bind(audience.as_str())
                .bind(&session)
                .bind(&member)
                .bind(project.as_str())
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                let last = rows.last().map(|(session, member, _)| (session.clone(), member.clone()));
                let update = "UPDATE sync_staged_members SET traits = $4
                              WHERE audience_id = $1 AND session_id = $2 AND provider_member_id = $3
                                AND traits = $5";
                let keyed = rows.into_iter().map(|(session, member, traits)| {
                    (vec![audience.to_string(), session, member], traits)
                });
                rewrite_traits(self, project, Some(audience), keyed, update).await?;
                Ok(last)
            }

            async fn erase_invite_traits(
                &self,
                project: &ProjectId,
                after: Option<String>,
                users: i64,
            ) -> Result<Option<String>, $crate::StoreError> {
                let after = after.unwrap_or_default();
                // The next `users` users' invites, as a range of `invites_by_user`.
                let last: Option<String> = sqlx::query_scalar(
                    crate::shared_cohort_sync::ERASE_NEXT_USERS,
                )
                .bind(project.as_str())
                .bind(&after)
                .bind(users)
                .fetch_one(self.reader())
                .await?;
                let Some(last) = last else {
                    return Ok(None);
                };
                let rows: Vec<(String, String)> = sqlx::query_as(
                    crate::shared_cohort_sync::ERASE_USERS_INVITES,
                )
                .bind(project.as_str())
                .bind(&after)
                .bind(&last)
                .fetch_all(self.reader())
                .await?;
                let update = "UPDATE invites SET traits = $2 WHERE code = $1 AND traits = $3";
                let keyed = rows.into_iter().map(|(code, traits)| (vec![code], traits));
                rewrite_traits(self, project, None, keyed, update).await?;
                Ok(Some(last))
            }

            async fn upsert_audience(
                &self,
                project: &ProjectId,
                mixpanel_cohort_id: &str,
                name: &str,
                description: &str,
                at: DateTime<Utc>,
            ) -> Result<uj_domain::audiences::Audience, $crate::StoreError> {
                let cohort = $crate::SyncCohort {
                    mixpanel_project_id: None,
                    mixpanel_cohort_id,
                    name,
                    description: Some(description),
                    accepted_with: None,
                };
                let mut tx = self.begin().await?;
                let row = upsert_audience_in(&mut tx, project, &cohort, at, true).await?;
                tx.commit().await?;
                Ok(row.audience.into())
            }

            async fn audiences(
                &self,
                project: &ProjectId,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<uj_domain::audiences::Audience>, $crate::StoreError> {
                let rows: Vec<AudienceRow> = sqlx::query_as(
                    concat!("SELECT ", crate::rows::audience_columns!(), " FROM audiences WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
                )
                .bind(project.as_str())
                .bind(page.starting_after.as_deref().unwrap_or(""))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(self.reader())
                .await?;
                Ok(crate::shared::into_page(rows, page.limit))
            }

            async fn audience(
                &self,
                project: &ProjectId,
                id: &AudienceId,
            ) -> Result<Option<uj_domain::audiences::Audience>, $crate::StoreError> {
                let row: Option<AudienceRow> =
                    sqlx::query_as(concat!("SELECT ", crate::rows::audience_columns!(), " FROM audiences WHERE project_id = $1 AND id = $2"))
                        .bind(project.as_str())
                        .bind(id.as_str())
                        .fetch_optional(self.reader())
                        .await?;
                Ok(row.map(Into::into))
            }

            async fn add_audience_members(
                &self,
                audience: &AudienceId,
                members: &[uj_domain::cohort_sync::SyncedMember],
                at: DateTime<Utc>,
            ) -> Result<uj_domain::audiences::MembershipChange, $crate::StoreError> {
                self.note(crate::key_filter::Keys::MatchKeys, members.iter().map(|m| m.match_key()));
                let mut tx = self.begin().await?;
                let (before, at) = lock_audience(&mut tx, audience, at).await?;
                let change = enter(&mut tx, audience, before, members, at).await?;
                tx.commit().await?;
                Ok(change)
            }

            async fn remove_audience_members(
                &self,
                audience: &AudienceId,
                provider_member_ids: &[String],
                at: DateTime<Utc>,
            ) -> Result<uj_domain::audiences::MembershipChange, $crate::StoreError> {
                let mut tx = self.begin().await?;
                let (before, at) = lock_audience(&mut tx, audience, at).await?;
                let ids: Vec<&str> = provider_member_ids.iter().map(String::as_str).collect();
                let change = leave(&mut tx, audience, before, &ids, at).await?;
                tx.commit().await?;
                Ok(change)
            }

            async fn receive_sync_diff(
                &self,
                project: &ProjectId,
                cohort: &$crate::SyncCohort<'_>,
                members: &[uj_domain::cohort_sync::SyncedMember],
                leaving: bool,
                entry: uj_domain::audiences::LedgerEntry,
            ) -> Result<uj_domain::audiences::LedgerEntry, $crate::StoreError> {
                if !leaving {
                    self.note(crate::key_filter::Keys::MatchKeys, members.iter().map(|m| m.match_key()));
                }
                let mut tx = self.begin().await?;
                // The cohort's name is followed once the diff is known to be new.
                let row = upsert_audience_in(&mut tx, project, cohort, entry.received_at, false).await?;
                // Exact: the upsert holds the audience's lock (see `lock_audience`).
                let audience = uj_domain::audiences::Audience::from(row.audience);
                let at = crate::shared_cohort_sync::not_before(entry.received_at, audience.last_synced_at);
                let (audience, before) = (&audience.id, audience.member_count);
                // Mixpanel delivers at least once: a diff applied before (its session, action
                // and members) is a duplicate, which applied again could bring back members
                // who left since, or an older name. Calls of one run are told apart by their
                // members, not their page_info (which a diff may lack); two calls with the
                // same members are one change, so skipping the second loses nothing.
                let digest = uj_domain::cohort_sync::members_digest(members);
                let repeated: bool = match entry.session_id.as_deref() {
                    Some(session_id) => sqlx::query_scalar(crate::shared_cohort_sync::DIFF_APPLIED)
                        .bind(audience.as_str())
                        .bind(session_id)
                        .bind(&entry.action)
                        .bind(&digest)
                        .fetch_one(&mut *tx)
                        .await?,
                    None => false,
                };
                let (outcome, change) = if repeated {
                    (uj_domain::audiences::LedgerOutcome::Duplicate, Default::default())
                } else if leaving {
                    let ids: Vec<&str> = members.iter().map(|m| m.provider_member_id.as_str()).collect();
                    (entry.outcome, leave(&mut tx, audience, before, &ids, at).await?)
                } else {
                    (entry.outcome, enter(&mut tx, audience, before, members, at).await?)
                };
                if !repeated {
                    follow_cohort(&mut tx, audience, cohort).await?;
                }
                let entry = uj_domain::audiences::LedgerEntry {
                    audience_id: Some(audience.clone()),
                    outcome,
                    added: change.added,
                    removed: change.removed,
                    ..entry
                };
                insert_ledger(&mut *tx, project, &entry, Some(&digest)).await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn receive_sync_page(
                &self,
                project: &ProjectId,
                cohort: &$crate::SyncCohort<'_>,
                page: &$crate::SyncPage<'_>,
                entry: uj_domain::audiences::LedgerEntry,
            ) -> Result<uj_domain::audiences::LedgerEntry, $crate::StoreError> {
                use uj_domain::audiences::{LedgerOutcome, MembershipChange};
                // Members staged now and applied later are noted with their page (or, staged
                // before this process started, were read into its filter then).
                self.note(crate::key_filter::Keys::MatchKeys, page.members.iter().map(|m| m.match_key()));
                if let Some(entry) = self.receive_first_sync_page(project, cohort, page, &entry).await? {
                    return Ok(entry);
                }
                let at = entry.received_at;
                let mut tx = self.begin().await?;
                // The cohort's name is followed once the page is known not to come late.
                let row = upsert_audience_in(&mut tx, project, cohort, at, false).await?;
                let applied = row.last_session_id;
                // Exact: the upsert holds the audience's lock (see `lock_audience`).
                let audience = uj_domain::audiences::Audience::from(row.audience);
                let at = crate::shared_cohort_sync::not_before(at, audience.last_synced_at);
                let (audience, before) = (&audience.id, audience.member_count);
                let received = stage_page(&mut tx, audience, applied.as_deref(), page, at).await?;
                let (outcome, change) = match received {
                    None => (LedgerOutcome::Duplicate, MembershipChange::default()),
                    Some(received) if received >= page.total_pages => (
                        LedgerOutcome::Applied,
                        apply_session(&mut tx, audience, applied.as_deref(), page.session_id, before, at)
                            .await?,
                    ),
                    Some(_) => (LedgerOutcome::Staged, MembershipChange::default()),
                };
                if outcome != LedgerOutcome::Duplicate {
                    follow_cohort(&mut tx, audience, cohort).await?;
                }
                let entry = uj_domain::audiences::LedgerEntry {
                    audience_id: Some(audience.clone()),
                    outcome,
                    added: change.added,
                    removed: change.removed,
                    ..entry
                };
                insert_ledger(&mut *tx, project, &entry, None).await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn staged_session(
                &self,
                audience: &AudienceId,
            ) -> Result<Option<uj_domain::audiences::StagedSession>, $crate::StoreError> {
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT session_id, page, total_pages FROM sync_staging WHERE audience_id = $1 ORDER BY page",
                )
                .bind(audience.as_str())
                .fetch_all(self.reader())
                .await?;
                let Some((session_id, _, total_pages)) = rows.first().cloned() else {
                    return Ok(None);
                };
                Ok(Some(uj_domain::audiences::StagedSession {
                    received_pages: rows.iter().filter(|r| r.0 == session_id).map(|r| r.1).collect(),
                    session_id,
                    total_pages,
                }))
            }

            async fn delete_stale_staging(&self, before: DateTime<Utc>) -> Result<u64, $crate::StoreError> {
                // A session is stale when its latest page is.
                let stale: Vec<(String, String)> = sqlx::query_as(
                    "SELECT audience_id, session_id FROM sync_staging
                     GROUP BY audience_id, session_id HAVING MAX(received_at) < $1
                     ORDER BY audience_id, session_id",
                )
                .bind(Ts(before))
                .fetch_all(self.reader())
                .await?;
                let mut pages = 0;
                // One transaction per session: a discard can be a large delete, and the
                // deliveries of the audiences done before it need not wait for it.
                for (audience, session) in stale {
                    let audience = AudienceId::from_string(audience);
                    let mut tx = self.begin().await?;
                    // Under the audience's lock, as a page takes it, and looked at again: a
                    // page of the session that arrived meanwhile keeps it. (Discarded under
                    // such a page, the session left the members it wrote in place.) An
                    // audience deleted meanwhile took its staging with it.
                    let there: Option<String> =
                        sqlx::query_scalar(crate::shared_cohort_sync::HOLD_AUDIENCE)
                            .bind(audience.as_str())
                            .fetch_optional(&mut *tx)
                            .await?;
                    if there.is_none() {
                        continue;
                    }
                    let still_stale: bool = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(received_at) < $3, FALSE) FROM sync_staging
                         WHERE audience_id = $1 AND session_id = $2",
                    )
                    .bind(audience.as_str())
                    .bind(&session)
                    .bind(Ts(before))
                    .fetch_one(&mut *tx)
                    .await?;
                    if still_stale {
                        pages += discard_session(&mut tx, &audience, &session).await?;
                    }
                    tx.commit().await?;
                }
                Ok(pages)
            }

            async fn delete_audience(
                &self,
                project: &ProjectId,
                audience: &AudienceId,
            ) -> Result<$crate::AudienceDeletion, $crate::StoreError> {
                let mut tx = self.begin().await?;
                // Under the audience's lock, as a delivery and a new rule on it take it: one
                // in flight finishes first (a later delivery makes the audience anew once it
                // is gone; a later rule finds it gone).
                let deleting: Option<bool> = sqlx::query_scalar(crate::shared_cohort_sync::HOLD_OWN_AUDIENCE)
                    .bind(audience.as_str())
                    .bind(project.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                match deleting {
                    None => return Ok($crate::AudienceDeletion::NotFound),
                    // Begun by a process that stopped: finished here.
                    Some(true) => drop(tx),
                    Some(false) => {
                        let targeting: i64 = sqlx::query_scalar(crate::shared_cohort_sync::RULES_TARGETING)
                            .bind(project.as_str())
                            .bind(audience.as_str())
                            .fetch_one(&mut *tx)
                            .await?;
                        if targeting > 0 {
                            return Ok($crate::AudienceDeletion::InUse(targeting));
                        }
                        // From here no new rule may target it (`HOLD_AUDIENCE` finds no row),
                        // and whoever comes next finishes the deletion if this one stops.
                        sqlx::query("UPDATE audiences SET deleting_since = $2 WHERE id = $1")
                            .bind(audience.as_str())
                            .bind(Ts(chrono::Utc::now()))
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                    }
                }
                finish_audience_deletion(self, audience).await?;
                Ok($crate::AudienceDeletion::Deleted)
            }

            async fn finish_audience_deletions(&self) -> Result<u64, $crate::StoreError> {
                let pending: Vec<String> =
                    sqlx::query_scalar("SELECT id FROM audiences WHERE deleting_since IS NOT NULL")
                        .fetch_all(self.writer())
                        .await?;
                for audience in &pending {
                    finish_audience_deletion(self, &AudienceId::from_string(audience.clone()))
                        .await?;
                }
                Ok(pending.len() as u64)
            }

            async fn delete_old_ledger_entries(&self, before: DateTime<Utc>) -> Result<u64, $crate::StoreError> {
                let mut removed = 0;
                // In batches, each its own statement: deliveries wait for one batch at most.
                loop {
                    let done = sqlx::query(
                        "DELETE FROM sync_ledger WHERE id IN (
                            SELECT id FROM sync_ledger WHERE received_at < $1 LIMIT $2)",
                    )
                    .bind(Ts(before))
                    .bind(crate::shared_cohort_sync::PURGE_BATCH)
                    .execute(self.writer())
                    .await?;
                    removed += done.rows_affected();
                    if done.rows_affected() < crate::shared_cohort_sync::PURGE_BATCH as u64 {
                        return Ok(removed);
                    }
                }
            }

            async fn audience_members(
                &self,
                audience: &AudienceId,
                include_exited: bool,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<uj_domain::audiences::AudienceMember>, $crate::StoreError> {
                let sql = format!(
                    "SELECT provider_member_id, reference_id, traits, entered_at, exited_at
                     FROM audience_members
                     WHERE audience_id = $1 AND ($2 OR exited_at IS NULL) AND provider_member_id > $3
                       AND {}
                     ORDER BY provider_member_id LIMIT $4",
                    crate::shared_cohort_sync::COUNTS
                );
                let rows: Vec<AudienceMemberRow> = sqlx::query_as(&sql)
                .bind(audience.as_str())
                .bind(include_exited)
                .bind(page.starting_after.as_deref().unwrap_or(""))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(self.reader())
                .await?;
                crate::shared::try_into_page(rows, page.limit)
            }

            async fn audience_memberships(
                &self,
                project: &ProjectId,
                match_key: &str,
            ) -> Result<Vec<(String, String)>, $crate::StoreError> {
                self.user_memberships(project, match_key).await
            }

            async fn audience_member(
                &self,
                audience: &AudienceId,
                provider_member_id: &str,
            ) -> Result<Option<uj_domain::audiences::AudienceMember>, $crate::StoreError> {
                self.member_by_key(audience, provider_member_id).await
            }

            async fn find_audience_members(
                &self,
                audience: &AudienceId,
                id: &str,
                include_exited: bool,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<uj_domain::audiences::AudienceMember>, $crate::StoreError> {
                let rows: Vec<AudienceMemberRow> =
                    sqlx::query_as(crate::shared_cohort_sync::FIND_AUDIENCE_MEMBERS)
                .bind(audience.as_str())
                .bind(id)
                .bind(page.starting_after.as_deref().unwrap_or(""))
                .bind(include_exited)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(self.reader())
                .await?;
                crate::shared::try_into_page(rows, page.limit)
            }

            async fn record_sync(
                &self,
                project: &ProjectId,
                e: &uj_domain::audiences::LedgerEntry,
                mixpanel_cohort_id: Option<&str>,
            ) -> Result<(), $crate::StoreError> {
                let audience: Option<String> = match (&e.audience_id, mixpanel_cohort_id) {
                    (None, Some(cohort)) => {
                        sqlx::query_scalar(
                            "SELECT id FROM audiences WHERE project_id = $1 AND mixpanel_cohort_id = $2",
                        )
                        .bind(project.as_str())
                        .bind(cohort)
                        .fetch_optional(self.reader())
                        .await?
                    }
                    _ => None,
                };
                let looked_up = audience.is_some();
                let entry = uj_domain::audiences::LedgerEntry {
                    audience_id: audience.map(AudienceId::from_string).or_else(|| e.audience_id.clone()),
                    ..e.clone()
                };
                match insert_ledger(self.writer(), project, &entry, None).await {
                    // The audience was deleted since it was looked up: the webhook's entry.
                    Err($crate::StoreError::Database(_)) if looked_up => {
                        let entry = uj_domain::audiences::LedgerEntry { audience_id: None, ..entry };
                        insert_ledger(self.writer(), project, &entry, None).await
                    }
                    written => written,
                }
            }

            async fn sync_ledger(
                &self,
                project: &ProjectId,
                audience: Option<&AudienceId>,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<uj_domain::audiences::LedgerEntry>, $crate::StoreError> {
                let sql = match audience {
                    Some(_) => crate::shared_cohort_sync::AUDIENCE_LEDGER_PAGE,
                    None => crate::shared_cohort_sync::PROJECT_LEDGER_PAGE,
                };
                // Planned with its values each time (see AUDIENCE_LEDGER_PAGE).
                let mut query = sqlx::query_as(sql)
                    .persistent(false)
                    .bind(project.as_str())
                    .bind(page.starting_after.as_deref().unwrap_or(""))
                    .bind(i64::from(page.limit) + 1);
                if let Some(audience) = audience {
                    query = query.bind(audience.as_str());
                }
                let rows: Vec<LedgerRow> = query.fetch_all(self.reader()).await?;
                crate::shared::try_into_page(rows, page.limit)
            }

            async fn refused_deliveries(
                &self,
                project: &ProjectId,
                limit: u32,
            ) -> Result<Vec<uj_domain::audiences::LedgerEntry>, $crate::StoreError> {
                // From `sync_ledger_refusals`, whatever else arrived since.
                let rows: Vec<LedgerRow> = sqlx::query_as(
                    "SELECT id, audience_id, action, session_id, page, total_pages, members, added,
                        removed, outcome, error, received_at, mixpanel_cohort_id, mixpanel_cohort_name
                     FROM sync_ledger WHERE project_id = $1 AND outcome = 'rejected'
                     ORDER BY id DESC LIMIT $2",
                )
                .bind(project.as_str())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }
        }
    };
}

pub(crate) use impl_cohort_sync_store;

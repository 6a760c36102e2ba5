//! The [`InviteStore`](crate::InviteStore) implementation both databases share (see
//! `shared.rs` for how the expansion works).

/// How many of a user's invites make their history: the newest (and, past that, the older
/// ones that decide something, [`USER_INVITES_NEWEST`]).
pub(crate) const HISTORY: usize = 500;

/// Whether user `$2` of project `$1` started study `$3` by an invite other than `$4`: a seek
/// of the user's invites (`invites_by_user`), never a walk of the study's starts: SQLite,
/// planning without statistics, took `invites_accepted_by_study` for it, which `|| ''` keeps
/// it from (each accept cost the study's starts under the writer: 130 ms for 50,000; found
/// by the schema review).
pub(crate) const STARTED_BEFORE: &str = "SELECT 1 FROM invites
     WHERE project_id = $1 AND reference_id = $2 AND study_id || '' = $3
       AND state = 'accepted' AND code <> $4";

/// How many invites of rule `$1` are in each state, and how many of them expire after `$2`
/// (an issued one that does not has expired, though its row still says issued): one
/// statement, so both counts are of one moment, read from `invites_by_rule` alone.
pub(crate) const RULE_INVITES_BY_STATE: &str =
    "SELECT state, COUNT(*), COUNT(CASE WHEN expires_at > $2 THEN 1 END)
     FROM invites WHERE rule_id = $1 GROUP BY state";

/// The first page of a rule's invites, newest first (codes sort by issue time).
pub(crate) const RULE_INVITES_FIRST: &str = concat!(
    "SELECT ",
    crate::rows::invite_columns!(),
    " FROM invites WHERE rule_id = $1 AND project_id = $2
     ORDER BY code DESC LIMIT $3"
);
/// A later page, after a code: a seek to it, so that reading all the pages reads each
/// invite once (`$3 IS NULL OR code < $3` walked from the newest each time).
pub(crate) const RULE_INVITES_AFTER: &str = concat!(
    "SELECT ",
    crate::rows::invite_columns!(),
    " FROM invites WHERE rule_id = $1 AND project_id = $2 AND code < $3
     ORDER BY code DESC LIMIT $4"
);

/// `limit + 1` fetched invite rows as a page and whether more follow.
pub(crate) fn invite_page(
    mut rows: Vec<crate::rows::InviteRow>,
    limit: u32,
) -> Result<crate::Page<uj_domain::invites::Invite>, crate::StoreError> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let items = rows
        .into_iter()
        .map(TryInto::try_into)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::Page { items, has_more })
}

/// [`USER_INVITES`] as a literal, for statements that read it with more (`concat!`).
macro_rules! user_invites_sql {
    () => {
        concat!(
            $crate::shared_invites::select_invite!(),
            " FROM invites WHERE project_id = $1 AND reference_id = $2 LIMIT $3"
        )
    };
}

/// `SELECT` of an invite's columns (`invite_columns!`).
macro_rules! select_invite {
    () => {
        concat!("SELECT ", $crate::rows::invite_columns!())
    };
}
pub(crate) use select_invite;
pub(crate) use user_invites_sql;

/// The user's invites in no order, at most `$3`: `$1` project, `$2` reference id. Ordering
/// them in SQL made SQLite open a temporary b-tree per read, a third of a read that finds
/// one or none (the SDK path reads this on every request); they are ordered by
/// [`newest_first`] instead.
pub(crate) const USER_INVITES: &str = user_invites_sql!();

/// For the rare user with more than [`HISTORY`] invites: their `$3` newest, and of the older
/// ones those that still decide something (their accepted invites, a started study never
/// invites again; each rule's newest, its cooldown), newest first.
pub(crate) const USER_INVITES_NEWEST: &str = concat!(
    select_invite!(),
    " FROM invites WHERE code IN (
        SELECT code FROM (SELECT code FROM invites WHERE project_id = $1 AND reference_id = $2
                          ORDER BY issued_at DESC LIMIT $3) AS newest
        UNION
        SELECT code FROM (SELECT code, state,
                                 ROW_NUMBER() OVER (PARTITION BY rule_id ORDER BY issued_at DESC) AS n
                          FROM invites WHERE project_id = $1 AND reference_id = $2) AS deciding
        WHERE n = 1 OR state = 'accepted')
     ORDER BY issued_at DESC"
);

/// A user's invites as read with [`USER_INVITES`] (limit `HISTORY + 1`), newest first; `None`
/// when there were more than [`HISTORY`], to be read again with [`USER_INVITES_NEWEST`].
pub(crate) fn newest_first(
    mut invites: Vec<uj_domain::invites::Invite>,
) -> Option<Vec<uj_domain::invites::Invite>> {
    if invites.len() > HISTORY {
        return None;
    }
    invites.sort_by_key(|i| std::cmp::Reverse(i.issued_at));
    Some(invites)
}

/// An invite as the database gives it back: its times to the microsecond.
pub(crate) fn as_stored(invite: &uj_domain::invites::Invite) -> uj_domain::invites::Invite {
    uj_domain::invites::Invite {
        issued_at: crate::time::stored(invite.issued_at),
        expires_at: crate::time::stored(invite.expires_at),
        ..invite.clone()
    }
}

/// One new invite, issued unless its user has one issued already (`$1`…`$13` as
/// [`insert_invite!`] binds them, in order).
pub(crate) const INSERT_ISSUED: &str =
    "INSERT INTO invites (code, project_id, rule_id, study_id, reference_id, source, audience_id,
        audience_member_id, event_name, metadata, traits, state, issued_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'issued', $12, $13)
     ON CONFLICT DO NOTHING";

/// The INSERT of a new invite: issued (doing nothing when the user already has one issued),
/// or in the given state.
macro_rules! insert_invite {
    ($i:expr) => {
        $crate::shared_invites::insert_invite!($i, "issued", None::<Ts>)
    };
    ($i:expr, $state:expr, $accepted_at:expr) => {{
        let i = $i;
        sqlx::query(
            "INSERT INTO invites (code, project_id, rule_id, study_id, reference_id, source, audience_id,
                audience_member_id, event_name, metadata, traits, state, issued_at, expires_at, accepted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $14, $12, $13, $15)
             ON CONFLICT DO NOTHING",
        )
        .bind(&i.code)
        .bind(i.project_id.as_str())
        .bind(i.rule_id.as_str())
        .bind(i.study_id.as_str())
        .bind(&i.reference_id)
        .bind(i.source)
        .bind(i.audience_id.as_deref())
        .bind(i.audience_member_id.as_deref())
        .bind(i.event_name.as_deref())
        .bind(crate::shared::traits_json(&i.metadata))
        .bind(crate::shared::traits_json(&i.traits))
        .bind(Ts(i.issued_at))
        .bind(Ts(i.expires_at))
        .bind($state)
        .bind($accepted_at)
    }};
}

/// What decides whether a start may happen, read under the locks that keep it so until the
/// start commits: the study's status and weekly and monthly limits, the rule's status,
/// surface and schedule window. A status is `None` when its row is gone.
#[derive(Default)]
pub(crate) struct StartOwners {
    pub study_status: Option<uj_domain::pacing::StudyStatus>,
    pub weekly_limit: Option<i64>,
    pub monthly_limit: Option<i64>,
    pub rule_status: Option<uj_domain::pacing::RuleStatus>,
    pub surface: Option<uj_domain::studies::Surface>,
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The rule's starts and its cap, as locked.
    pub starts: i64,
    pub max_starts: Option<i64>,
}

macro_rules! impl_invite_store {
    ($store:ty) => {
        /// Withdraws the open invites `filter` selects (`$1` is `id`, `$2` the time). A study
        /// that stops, a rule that stops and members who leave find their invites through
        /// different indexes, so on PostgreSQL the rows are locked in code order first (the
        /// bytes' order, whatever the database's collation, as the trait erase takes them):
        /// two such withdrawals of overlapping invites then wait in line, never in a cycle. The
        /// locks and the update are one statement, so they see the same invites (a second
        /// statement could find one committed in between, out of order).
        async fn withdraw_invites(
            tx: &mut sqlx::Transaction<'static, <$store as crate::shared::Dialect>::Db>,
            filter: &str,
            id: &str,
            at: DateTime<Utc>,
        ) -> Result<u64, $crate::StoreError> {
            let statement = if <$store as crate::shared::Dialect>::ROW_LOCKS {
                format!(
                    r#"UPDATE invites SET state = 'withdrawn', withdrawn_at = $2 WHERE code IN
                        (SELECT code FROM invites WHERE {filter} ORDER BY code COLLATE "C" FOR UPDATE)"#
                )
            } else {
                format!("UPDATE invites SET state = 'withdrawn', withdrawn_at = $2 WHERE {filter}")
            };
            let done = sqlx::query(&statement)
                .bind(id)
                .bind(Ts(at))
                .execute(&mut **tx)
                .await?;
            Ok(done.rows_affected())
        }

        /// Locks a start's study, then its rule, in the order every writer takes rows
        /// (PostgreSQL; SQLite has one writer): the study, its rules, then their invites,
        /// as a pause does. A pause or a schedule change of either then commits before this
        /// transaction reads them, or waits for it. The study row's lock also serialises
        /// every start of the study, so its limits are not overshot by starts made at once.
        async fn lock_owners(
            tx: &mut sqlx::Transaction<'static, <$store as crate::shared::Dialect>::Db>,
            study: &str,
            rule: &str,
        ) -> Result<$crate::shared_invites::StartOwners, $crate::StoreError> {
            let study: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
                "UPDATE studies SET weekly_limit = weekly_limit WHERE id = $1
                 RETURNING status, weekly_limit, monthly_limit",
            )
            .bind(study)
            .fetch_optional(&mut **tx)
            .await?;
            #[allow(clippy::type_complexity)]
            let rule: Option<(String, String, Option<Ts>, Option<Ts>, i64, Option<i64>)> = sqlx::query_as(
                "UPDATE launch_rules SET starts = starts WHERE id = $1
                 RETURNING status, surface, starts_at, ends_at, starts, max_starts",
            )
            .bind(rule)
            .fetch_optional(&mut **tx)
            .await?;
            let corrupt = |e: uj_domain::ValidationError| $crate::StoreError::Corrupt(e.to_string());
            let mut owners = $crate::shared_invites::StartOwners::default();
            if let Some((status, weekly, monthly)) = study {
                owners.study_status = Some(uj_domain::pacing::StudyStatus::parse(&status).map_err(corrupt)?);
                (owners.weekly_limit, owners.monthly_limit) = (weekly, monthly);
            }
            if let Some((status, surface, starts_at, ends_at, starts, max_starts)) = rule {
                owners.rule_status = Some(uj_domain::pacing::RuleStatus::parse(&status).map_err(corrupt)?);
                owners.surface = Some(uj_domain::studies::Surface::parse(&surface).map_err(corrupt)?);
                owners.starts_at = starts_at.map(|t| t.0);
                owners.ends_at = ends_at.map(|t| t.0);
                (owners.starts, owners.max_starts) = (starts, max_starts);
            }
            Ok(owners)
        }

        /// Why `invite` cannot become a start now, checked in the transaction that would
        /// make it, under [`lock_owners`]' locks, in the engine's order of gates
        /// (`Reason::gate`): its rule or study stopped, the rule's schedule window does not
        /// hold `now`, the user started the study with another invite, the rule's max starts
        /// or the study's weekly or monthly limit is used up.
        async fn start_refused(
            tx: &mut sqlx::Transaction<'static, <$store as crate::shared::Dialect>::Db>,
            invite: &uj_domain::invites::Invite,
            owners: &$crate::shared_invites::StartOwners,
            now: DateTime<Utc>,
        ) -> Result<Option<uj_domain::pacing::Reason>, $crate::StoreError> {
            use uj_domain::pacing::{closed_because, month_start, week_start, Reason};
            let Some(rule_status) = owners.rule_status else {
                return Ok(Some(Reason::RuleArchived));
            };
            if let Some(reason) = closed_because(rule_status, owners.study_status) {
                return Ok(Some(reason));
            }
            let outside = owners.starts_at.is_some_and(|start| now < start)
                || owners.ends_at.is_some_and(|end| now >= end);
            if outside {
                return Ok(Some(Reason::OutsideSchedule));
            }
            let started: Option<i32> = sqlx::query_scalar($crate::shared_invites::STARTED_BEFORE)
            .bind(invite.project_id.as_str())
            .bind(&invite.reference_id)
            .bind(invite.study_id.as_str())
            .bind(&invite.code)
            .fetch_optional(&mut **tx)
            .await?;
            if started.is_some() {
                return Ok(Some(Reason::AlreadyStarted));
            }
            // The rule's cap before the study's limits, as the engine checks them (the
            // reservation that follows is what holds the cap under concurrency).
            if owners.max_starts.is_some_and(|cap| owners.starts >= cap) {
                return Ok(Some(Reason::MaxStartsReached));
            }
            let limits = [
                (owners.weekly_limit, week_start(now)),
                (owners.monthly_limit, month_start(now)),
            ];
            for (limit, since) in limits {
                let Some(limit) = limit else { continue };
                let starts: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM invites
                     WHERE study_id = $1 AND state = 'accepted' AND accepted_at >= $2",
                )
                .bind(invite.study_id.as_str())
                .bind(Ts(since))
                .fetch_one(&mut **tx)
                .await?;
                if starts >= limit {
                    return Ok(Some(Reason::StudyLimit));
                }
            }
            Ok(None)
        }

        #[async_trait::async_trait]
        impl $crate::InviteStore for $store {
            async fn user_invites_page(
                &self,
                project: &ProjectId,
                reference_id: &str,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<uj_domain::invites::Invite>, $crate::StoreError> {
                // Seeks the user's invites by `invites_by_user` and sorts them (a user has
                // few; an index in this order would cost every invite the SDK writes).
                let rows: Vec<InviteRow> = sqlx::query_as(
                    concat!("SELECT ", crate::rows::invite_columns!(), " FROM invites WHERE project_id = $1 AND reference_id = $2
                       AND ($3 IS NULL OR (issued_at, code) <
                            (SELECT issued_at, code FROM invites
                             WHERE project_id = $1 AND reference_id = $2 AND code = $3))
                     ORDER BY issued_at DESC, code DESC LIMIT $4"),
                )
                .bind(project.as_str())
                .bind(reference_id)
                .bind(page.starting_after.as_deref())
                .bind(i64::from(page.limit) + 1)
                .fetch_all(self.reader())
                .await?;
                $crate::shared_invites::invite_page(rows, page.limit)
            }

            async fn rule_invites_page(
                &self,
                project: &ProjectId,
                rule: &uj_domain::ids::LaunchRuleId,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<uj_domain::invites::Invite>, $crate::StoreError> {
                let limit = i64::from(page.limit) + 1;
                let rows: Vec<InviteRow> = match &page.starting_after {
                    None => sqlx::query_as($crate::shared_invites::RULE_INVITES_FIRST)
                        .bind(rule.as_str())
                        .bind(project.as_str())
                        .bind(limit),
                    Some(after) => sqlx::query_as($crate::shared_invites::RULE_INVITES_AFTER)
                        .bind(rule.as_str())
                        .bind(project.as_str())
                        .bind(after.as_str())
                        .bind(limit),
                }
                .fetch_all(self.reader())
                .await?;
                $crate::shared_invites::invite_page(rows, page.limit)
            }

            async fn user_history(
                &self,
                project: &ProjectId,
                reference_id: &str,
                with_memberships: $crate::WithMemberships,
            ) -> Result<$crate::UserHistory, $crate::StoreError> {
                self.user_invites_and_memberships(project, reference_id, with_memberships)
                    .await
            }

            async fn study_starts_since(
                &self,
                study: &uj_domain::ids::StudyId,
                since: DateTime<Utc>,
            ) -> Result<i64, $crate::StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM invites WHERE study_id = $1 AND state = 'accepted' AND accepted_at >= $2",
                )
                .bind(study.as_str())
                .bind(Ts(since))
                .fetch_one(self.reader())
                .await?)
            }

            async fn rule_starts(&self, rule: &uj_domain::ids::LaunchRuleId) -> Result<i64, $crate::StoreError> {
                let starts: Option<i64> = sqlx::query_scalar("SELECT starts FROM launch_rules WHERE id = $1")
                    .bind(rule.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                Ok(starts.unwrap_or(0))
            }

            async fn issue_invite(
                &self,
                i: &uj_domain::invites::Invite,
                now: DateTime<Utc>,
            ) -> Result<uj_domain::invites::Invite, $crate::StoreError> {
                self.note(crate::key_filter::Keys::Invitees, [i.reference_id.as_str()]);
                // Usually the user has no issued invite: one statement does it.
                if $crate::shared_invites::insert_invite!(i).execute(self.writer()).await?.rows_affected() == 1 {
                    return Ok($crate::shared_invites::as_stored(i));
                }
                // An issued one exists: expired (mark it so, then insert) or still open.
                let mut tx = self.begin().await?;
                sqlx::query(
                    "UPDATE invites SET state = 'expired'
                     WHERE project_id = $1 AND reference_id = $2 AND state = 'issued' AND expires_at <= $3",
                )
                .bind(i.project_id.as_str())
                .bind(&i.reference_id)
                .bind(Ts(now))
                .execute(&mut *tx)
                .await?;
                // Ours, or the one a concurrent load for the same user issued first. Between
                // the insert and the read (PostgreSQL reads each statement's own snapshot)
                // the open invite that kept ours out may be dismissed, accepted or
                // withdrawn: then there is room for ours, and the insert goes again.
                for _ in 0..3 {
                    $crate::shared_invites::insert_invite!(i).execute(&mut *tx).await?;
                    let row: Option<InviteRow> = sqlx::query_as(
                        concat!("SELECT ", crate::rows::invite_columns!(), " FROM invites WHERE project_id = $1 AND reference_id = $2 AND state = 'issued'"),
                    )
                    .bind(i.project_id.as_str())
                    .bind(&i.reference_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(row) = row {
                        tx.commit().await?;
                        return row.try_into();
                    }
                }
                // Each time, the user's open invite was answered and another issued between
                // the two statements (other processes, PostgreSQL): a passing contention, to
                // be retried (503), not a duplicate (409 said "already exists" to the SDK).
                Err($crate::StoreError::Unavailable(
                    "the user's invites kept changing while one was issued".into(),
                ))
            }

            async fn issue_new_invites(
                &self,
                invites: &[uj_domain::invites::Invite],
            ) -> Result<Vec<Option<uj_domain::invites::Invite>>, $crate::StoreError> {
                if invites.is_empty() {
                    return Ok(Vec::new());
                }
                self.note(crate::key_filter::Keys::Invitees, invites.iter().map(|i| i.reference_id.as_str()));
                if let Some(issued) = self.issue_new_invites_inline(invites).await? {
                    return Ok(issued);
                }
                let mut builder = sqlx::QueryBuilder::new(
                    "INSERT INTO invites (code, project_id, rule_id, study_id, reference_id, source, audience_id,
                        audience_member_id, event_name, metadata, traits, state, issued_at, expires_at) ",
                );
                // Users in one order whoever writes (a stable sort: of one user's rows the
                // first listed still wins), so two processes' batches for the same users
                // wait for each other in line, never in a cycle.
                let mut sorted: Vec<_> = invites.iter().collect();
                sorted.sort_by(|a, b| (&a.project_id, &a.reference_id).cmp(&(&b.project_id, &b.reference_id)));
                builder.push_values(sorted, |mut row, i| {
                    row.push_bind(i.code.as_str())
                        .push_bind(i.project_id.as_str())
                        .push_bind(i.rule_id.as_str())
                        .push_bind(i.study_id.as_str())
                        .push_bind(i.reference_id.as_str())
                        .push_bind(i.source)
                        .push_bind(i.audience_id.as_deref())
                        .push_bind(i.audience_member_id.as_deref())
                        .push_bind(i.event_name.as_deref())
                        .push_bind(crate::shared::traits_json(&i.metadata))
                        .push_bind(crate::shared::traits_json(&i.traits))
                        .push_bind("issued")
                        .push_bind(Ts(i.issued_at))
                        .push_bind(Ts(i.expires_at));
                });
                // Later rows of one user conflict with the first: only that one is issued.
                builder.push(" ON CONFLICT DO NOTHING RETURNING code");
                let issued: std::collections::HashSet<String> = builder
                    .build_query_scalar::<String>()
                    .fetch_all(self.writer())
                    .await?
                    .into_iter()
                    .collect();
                Ok(invites
                    .iter()
                    .map(|i| {
                        issued.contains(&i.code).then(|| $crate::shared_invites::as_stored(i))
                    })
                    .collect())
            }

            async fn invite(&self, project: &ProjectId, code: &str) -> Result<Option<uj_domain::invites::Invite>, $crate::StoreError> {
                let row: Option<InviteRow> = sqlx::query_as(concat!("SELECT ", crate::rows::invite_columns!(), " FROM invites WHERE project_id = $1 AND code = $2"))
                    .bind(project.as_str())
                    .bind(code)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn invite_by_code(&self, code: &str) -> Result<Option<uj_domain::invites::Invite>, $crate::StoreError> {
                let row: Option<InviteRow> = sqlx::query_as(concat!("SELECT ", crate::rows::invite_columns!(), " FROM invites WHERE code = $1"))
                    .bind(code)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn study_by_public_code(&self, code: &str) -> Result<Option<uj_domain::studies::Study>, $crate::StoreError> {
                let row: Option<StudyRow> = sqlx::query_as(concat!("SELECT ", crate::rows::study_columns!(), " FROM studies WHERE public_code = $1"))
                    .bind(code)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn accept_invite(
                &self,
                project: &ProjectId,
                code: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<uj_domain::invites::AcceptOutcome>, $crate::StoreError> {
                use uj_domain::invites::{AcceptOutcome, Invite, InviteState};
                let mut tx = self.begin().await?;
                // Rows are locked (PostgreSQL) in the order every writer takes them: the
                // study, its rule, then their invites, as a pause does. Locking the invite
                // first deadlocked with a pause of its rule or study (one side answered 500).
                let owners: Option<(String, String)> = sqlx::query_as(
                    "SELECT study_id, rule_id FROM invites WHERE project_id = $1 AND code = $2",
                )
                .bind(project.as_str())
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((study, rule)) = owners else {
                    return Ok(None);
                };
                let owners = lock_owners(&mut tx, &study, &rule).await?;
                // Locks the invite row (PostgreSQL) so two accepts of one invite serialise.
                let row: Option<InviteRow> = sqlx::query_as(
                    concat!("UPDATE invites SET state = state WHERE project_id = $1 AND code = $2 RETURNING ", crate::rows::invite_columns!()),
                )
                .bind(project.as_str())
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(invite) = row.map(Invite::try_from).transpose()? else {
                    return Ok(None);
                };
                let outcome = if invite.state == InviteState::Accepted {
                    AcceptOutcome::AlreadyAccepted(invite)
                } else if !invite.is_pending(now) {
                    AcceptOutcome::NotPending(invite)
                } else if owners.surface == Some(uj_domain::studies::Surface::DirectLink) {
                    // Its rule moved to a direct link, which took back its prompts; this one
                    // was issued from a snapshot older than the move (another process's).
                    sqlx::query("UPDATE invites SET state = 'withdrawn', withdrawn_at = $2 WHERE code = $1")
                        .bind(&invite.code)
                        .bind(Ts(now))
                        .execute(&mut *tx)
                        .await?;
                    AcceptOutcome::NotPending(Invite {
                        state: InviteState::Withdrawn,
                        withdrawn_at: Some(now),
                        ..invite
                    })
                } else if let Some(reason) = start_refused(&mut tx, &invite, &owners, now).await? {
                    AcceptOutcome::Refused(invite, reason)
                } else {
                    // The cap holds under any concurrency: the row's own UPDATE checks it.
                    let reserved = sqlx::query(
                        "UPDATE launch_rules SET starts = starts + 1
                         WHERE id = $1 AND (max_starts IS NULL OR starts < max_starts)",
                    )
                    .bind(invite.rule_id.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if reserved == 1 {
                        let row: InviteRow = sqlx::query_as(
                            concat!("UPDATE invites SET state = 'accepted', accepted_at = $3
                             WHERE project_id = $1 AND code = $2 RETURNING ", crate::rows::invite_columns!()),
                        )
                        .bind(project.as_str())
                        .bind(code)
                        .bind(Ts(now))
                        .fetch_one(&mut *tx)
                        .await?;
                        AcceptOutcome::Accepted(row.try_into()?)
                    } else {
                        AcceptOutcome::Refused(invite, uj_domain::pacing::Reason::MaxStartsReached)
                    }
                };
                if let AcceptOutcome::Refused(invite, _) = &outcome {
                    // A refused invite can never start: withdrawn, it is not offered again and
                    // frees the user for other rules.
                    sqlx::query(
                        "UPDATE invites SET state = 'withdrawn', withdrawn_at = $2
                         WHERE code = $1 AND state = 'issued' AND expires_at > $2",
                    )
                        .bind(&invite.code)
                        .bind(Ts(now))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(outcome))
            }

            async fn start_invite(
                &self,
                i: &uj_domain::invites::Invite,
                now: DateTime<Utc>,
            ) -> Result<uj_domain::invites::AcceptOutcome, $crate::StoreError> {
                use uj_domain::invites::{AcceptOutcome, InviteState};
                self.note(crate::key_filter::Keys::Invitees, [i.reference_id.as_str()]);
                let mut tx = self.begin().await?;
                let owners = lock_owners(&mut tx, i.study_id.as_str(), i.rule_id.as_str()).await?;
                if let Some(reason) = start_refused(&mut tx, i, &owners, now).await? {
                    return Ok(AcceptOutcome::Refused(i.clone(), reason));
                }
                if owners.surface != Some(uj_domain::studies::Surface::DirectLink) {
                    // Its rule became a prompt rule after the link was decided (from another
                    // process's older snapshot): links no longer start it, as a prompt issued
                    // before a move to a link no longer starts (`accept_invite`).
                    return Ok(AcceptOutcome::Refused(
                        i.clone(),
                        uj_domain::pacing::Reason::NotTriggered,
                    ));
                }
                let reserved = sqlx::query(
                    "UPDATE launch_rules SET starts = starts + 1
                     WHERE id = $1 AND (max_starts IS NULL OR starts < max_starts)",
                )
                .bind(i.rule_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if reserved != 1 {
                    return Ok(AcceptOutcome::Refused(
                        i.clone(),
                        uj_domain::pacing::Reason::MaxStartsReached,
                    ));
                }
                let inserted = $crate::shared_invites::insert_invite!(i, "accepted", Some(Ts(now)))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted != 1 {
                    // The code is random; a clash is as unlikely as a guessed key.
                    return Err($crate::StoreError::Conflict("invite code"));
                }
                tx.commit().await?;
                let now = $crate::time::stored(now);
                Ok(AcceptOutcome::Accepted(uj_domain::invites::Invite {
                    state: InviteState::Accepted,
                    issued_at: now,
                    expires_at: $crate::time::stored(i.expires_at),
                    accepted_at: Some(now),
                    ..i.clone()
                }))
            }

            async fn dismiss_invite(
                &self,
                project: &ProjectId,
                code: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<uj_domain::invites::Invite>, $crate::StoreError> {
                let row: Option<InviteRow> = sqlx::query_as(
                    concat!("UPDATE invites SET
                        state = CASE WHEN state = 'issued' AND expires_at > $3 THEN 'dismissed' ELSE state END,
                        dismissed_at = CASE WHEN state = 'issued' AND expires_at > $3 THEN $3 ELSE dismissed_at END
                     WHERE project_id = $1 AND code = $2 RETURNING ", crate::rows::invite_columns!()),
                )
                .bind(project.as_str())
                .bind(code)
                .bind(Ts(now))
                .fetch_optional(self.writer())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn withdraw_invite(
                &self,
                project: &ProjectId,
                code: &str,
                now: DateTime<Utc>,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE invites SET state = 'withdrawn', withdrawn_at = $3
                     WHERE project_id = $1 AND code = $2 AND state = 'issued' AND expires_at > $3",
                )
                .bind(project.as_str())
                .bind(code)
                .bind(Ts(now))
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn add_suppressions(&self, counts: &[(String, String, i64)]) -> Result<(), $crate::StoreError> {
                if counts.is_empty() {
                    return Ok(());
                }
                // In one order whoever flushes (see `record_app_events`).
                let mut sorted: Vec<_> = counts.iter().collect();
                sorted.sort_unstable_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
                let mut tx = self.begin().await?;
                for (rule, reason, count) in sorted {
                    // Through a SELECT so a rule deleted meanwhile adds nothing.
                    sqlx::query(
                        "INSERT INTO rule_suppressions (rule_id, reason, count)
                         SELECT id, $2, $3 FROM launch_rules WHERE id = $1
                         ON CONFLICT (rule_id, reason) DO UPDATE SET count = rule_suppressions.count + excluded.count",
                    )
                    .bind(rule)
                    .bind(reason)
                    .bind(count)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn rule_stats(
                &self,
                rule: &uj_domain::ids::LaunchRuleId,
                now: DateTime<Utc>,
            ) -> Result<$crate::RuleStats, $crate::StoreError> {
                let states: Vec<(String, i64, i64)> =
                    sqlx::query_as(crate::shared_invites::RULE_INVITES_BY_STATE)
                        .bind(rule.as_str())
                        .bind(Ts(now))
                        .fetch_all(self.reader())
                        .await?;
                let mut stats = $crate::RuleStats::default();
                for (state, count, open) in states {
                    stats.issued += count;
                    match state.as_str() {
                        "issued" => {
                            stats.pending += open;
                            stats.expired += count - open;
                        }
                        "accepted" => stats.accepted += count,
                        "dismissed" => stats.dismissed += count,
                        "expired" => stats.expired += count,
                        _ => stats.withdrawn += count,
                    }
                }
                stats.suppressions = sqlx::query_as(
                    "SELECT reason, count FROM rule_suppressions WHERE rule_id = $1 ORDER BY reason",
                )
                .bind(rule.as_str())
                .fetch_all(self.reader())
                .await?;
                Ok(stats)
            }
        }
    };
}

pub(crate) use impl_invite_store;
pub(crate) use insert_invite;

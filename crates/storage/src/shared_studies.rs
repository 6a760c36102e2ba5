//! The [`StudyStore`](crate::StudyStore) implementation both databases share (see
//! `shared.rs` for how the expansion works).

/// The stored form of a trigger: its type and its value (event name or audience id).
pub(crate) fn trigger_columns(trigger: &uj_domain::pacing::Trigger) -> (&'static str, &str) {
    match trigger {
        uj_domain::pacing::Trigger::AppEvent(name) => ("app_event", name),
        uj_domain::pacing::Trigger::Audience(id) => ("audience", id),
    }
}

/// The statements that find a project's live (not archived) rules and studies. The SDK's
/// snapshot of every active project is read with them each second, and archived rules are
/// unbounded (the live limit does not count them): each seeks a partial index that holds the
/// live ones only (migration 0031), as `status <> 'archived'` seeks no index of all rules.
pub(crate) const LIVE_RULES: &str = concat!(
    "SELECT ",
    crate::rows::rule_columns!(),
    " FROM launch_rules WHERE project_id = $1 AND status <> 'archived' ORDER BY id"
);
pub(crate) const LIVE_RULE_COUNT: &str =
    "SELECT COUNT(*) FROM launch_rules WHERE project_id = $1 AND status <> 'archived'";
pub(crate) const LIVE_STUDY_COUNT: &str =
    "SELECT COUNT(*) FROM studies WHERE project_id = $1 AND status <> 'archived'";
pub(crate) const LIVE_RULE_STARTS: &str =
    "SELECT id, starts FROM launch_rules WHERE project_id = $1 AND status <> 'archived'";
/// Each study's counts from its own range of `invites_accepted_by_study`.
pub(crate) const LIVE_STUDY_STARTS: &str = concat!(
    "SELECT ",
    crate::rows::study_columns!(),
    ",
        (SELECT COUNT(*) FROM invites i WHERE i.study_id = studies.id
            AND i.state = 'accepted' AND i.accepted_at >= $2) AS week_starts,
        (SELECT COUNT(*) FROM invites i WHERE i.study_id = studies.id
            AND i.state = 'accepted' AND i.accepted_at >= $3) AS month_starts
     FROM studies WHERE project_id = $1 AND id IN
        (SELECT study_id FROM launch_rules WHERE project_id = $1 AND status <> 'archived')
     ORDER BY id"
);

/// The records of a key (`$2`) made after `$3` in the projects the account (`$1`) belongs
/// to: sought by project and key in each of the account's projects.
macro_rules! account_idempotency_records {
    () => {
        " FROM idempotency_keys
         WHERE project_id IN (SELECT project_id FROM project_members WHERE account_id = $1)
            AND idempotency_key = $2 AND created_at > $3
         LIMIT 1"
    };
}
pub(crate) use account_idempotency_records;

macro_rules! impl_study_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::StudyStore for $store {
            async fn create_study(
                &self,
                s: &uj_domain::studies::Study,
                once: Option<&uj_domain::idempotency::IdempotencyRecord>,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.begin().await?;
                if !record_once(&mut tx, once).await? {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO studies (id, project_id, name, status, interview_url, launch_mode, weekly_limit,
                        monthly_limit, public_code, created_at, updated_at, public_link)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(s.id.as_str())
                .bind(s.project_id.as_str())
                .bind(&s.name)
                .bind(s.status.as_str())
                .bind(&s.interview_url)
                .bind(s.launch_mode.as_str())
                .bind(s.weekly_limit)
                .bind(s.monthly_limit)
                .bind(&s.public_code)
                .bind(Ts(s.created_at))
                .bind(Ts(s.updated_at))
                .bind(s.public_link)
                .execute(&mut *tx)
                .await
                .map_err($crate::StoreError::conflict_as("study code"))?;
                tx.commit().await?;
                Ok(true)
            }

            async fn update_study(
                &self,
                s: &uj_domain::studies::Study,
                read_at: DateTime<Utc>,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "UPDATE studies SET name = $3, status = $4, interview_url = $5, launch_mode = $6,
                        weekly_limit = $7, monthly_limit = $8, updated_at = $9, public_link = $11
                     WHERE id = $1 AND project_id = $2 AND updated_at = $10",
                )
                .bind(s.id.as_str())
                .bind(s.project_id.as_str())
                .bind(&s.name)
                .bind(s.status.as_str())
                .bind(&s.interview_url)
                .bind(s.launch_mode.as_str())
                .bind(s.weekly_limit)
                .bind(s.monthly_limit)
                .bind(Ts(s.updated_at))
                .bind(Ts(read_at))
                .bind(s.public_link)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 && s.status != uj_domain::pacing::StudyStatus::Active {
                    // A study that stops takes back the invites its rules offered.
                    withdraw_invites(
                        &mut tx,
                        "state = 'issued' AND expires_at > $2
                         AND rule_id IN (SELECT id FROM launch_rules WHERE study_id = $1)",
                        s.id.as_str(),
                        s.updated_at,
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn study(
                &self,
                project: &ProjectId,
                id: &uj_domain::ids::StudyId,
            ) -> Result<Option<uj_domain::studies::Study>, $crate::StoreError> {
                let row: Option<StudyRow> = sqlx::query_as(concat!("SELECT ", crate::rows::study_columns!(), " FROM studies WHERE project_id = $1 AND id = $2"))
                    .bind(project.as_str())
                    .bind(id.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn studies(
                &self,
                project: &ProjectId,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<uj_domain::studies::Study>, $crate::StoreError> {
                let rows: Vec<StudyRow> = sqlx::query_as(
                    concat!("SELECT ", crate::rows::study_columns!(), " FROM studies WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3"),
                )
                .bind(project.as_str())
                .bind(page.starting_after.as_deref().unwrap_or(""))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(self.reader())
                .await?;
                crate::shared::try_into_page(rows, page.limit)
            }

            async fn create_launch_rule(
                &self,
                r: &uj_domain::studies::LaunchRule,
                once: Option<&uj_domain::idempotency::IdempotencyRecord>,
            ) -> Result<bool, $crate::StoreError> {
                let (trigger_type, trigger_value) = crate::shared_studies::trigger_columns(&r.trigger);
                let mut tx = self.begin().await?;
                if !record_once(&mut tx, once).await? {
                    return Ok(false);
                }
                // Its audience held (as a delete holds it) and still there: a delete of it
                // that came first is seen, and one that comes later sees this rule.
                if trigger_type == "audience" {
                    let owner: Option<String> = sqlx::query_scalar(crate::shared_cohort_sync::HOLD_AUDIENCE)
                        .bind(trigger_value)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if owner.as_deref() != Some(r.project_id.as_str()) {
                        return Err($crate::StoreError::Gone("audience"));
                    }
                }
                sqlx::query(
                    "INSERT INTO launch_rules (id, project_id, study_id, name, status, trigger_type, trigger_value,
                        surface, prompt_title, prompt_message, prompt_start_label, prompt_dismiss_label, priority,
                        cooldown_seconds, max_starts, sampling_percent, starts_at, ends_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                )
                .bind(r.id.as_str())
                .bind(r.project_id.as_str())
                .bind(r.study_id.as_str())
                .bind(&r.name)
                .bind(r.status.as_str())
                .bind(trigger_type)
                .bind(trigger_value)
                .bind(r.surface.as_str())
                .bind(&r.prompt.title)
                .bind(&r.prompt.message)
                .bind(&r.prompt.start_label)
                .bind(&r.prompt.dismiss_label)
                .bind(r.priority)
                .bind(r.cooldown_seconds)
                .bind(r.max_starts)
                .bind(r.sampling_percent)
                .bind(r.starts_at.map(Ts))
                .bind(r.ends_at.map(Ts))
                .bind(Ts(r.created_at))
                .bind(Ts(r.updated_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn idempotency_record(
                &self,
                project: &ProjectId,
                key: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<uj_domain::idempotency::IdempotencyRecord>, $crate::StoreError> {
                let row: Option<IdempotencyRow> = sqlx::query_as(
                    concat!("SELECT ", crate::rows::idempotency_columns!(), " FROM idempotency_keys
                     WHERE project_id = $1 AND idempotency_key = $2 AND created_at > $3"),
                )
                .bind(project.as_str())
                .bind(key)
                .bind(Ts(now - uj_domain::idempotency::KEY_LIFETIME))
                .fetch_optional(self.reader())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn account_idempotency_record(
                &self,
                account: &uj_domain::ids::AccountId,
                key: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<uj_domain::idempotency::IdempotencyRecord>, $crate::StoreError> {
                let row: Option<IdempotencyRow> = sqlx::query_as(
                    concat!(
                        "SELECT ",
                        crate::rows::idempotency_columns!(),
                        crate::shared_studies::account_idempotency_records!()
                    ),
                )
                .bind(account.as_str())
                .bind(key)
                .bind(Ts(now - uj_domain::idempotency::KEY_LIFETIME))
                .fetch_optional(self.reader())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn delete_stale_idempotency_records(
                &self,
                before: DateTime<Utc>,
            ) -> Result<u64, $crate::StoreError> {
                let mut removed = 0;
                // In batches, as the sync history's: an hour of keyed creates (up to 360,000
                // at the default rate limit) deleted at once held SQLite's writer for seconds
                // (found by the idempotency review). The age is checked by the DELETE itself
                // too: a create renewing a stale record of its key (`record_once`) while the
                // purge waits for its row is re-checked by PostgreSQL against the outer
                // statement's conditions alone, and the renewed record was deleted.
                loop {
                    let done = sqlx::query(
                        "DELETE FROM idempotency_keys WHERE created_at <= $1 AND (project_id, idempotency_key) IN (
                            SELECT project_id, idempotency_key FROM idempotency_keys
                            WHERE created_at <= $1 LIMIT $2)",
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

            async fn update_launch_rule(
                &self,
                r: &uj_domain::studies::LaunchRule,
                read_at: DateTime<Utc>,
            ) -> Result<Option<u64>, $crate::StoreError> {
                // The trigger is fixed at creation and never written here.
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "UPDATE launch_rules SET name = $3, status = $4, surface = $5, prompt_title = $6,
                        prompt_message = $7, prompt_start_label = $8, prompt_dismiss_label = $9, priority = $10,
                        cooldown_seconds = $11, max_starts = $12, sampling_percent = $13, starts_at = $14,
                        ends_at = $15, updated_at = $16
                     WHERE id = $1 AND project_id = $2 AND updated_at = $17",
                )
                .bind(r.id.as_str())
                .bind(r.project_id.as_str())
                .bind(&r.name)
                .bind(r.status.as_str())
                .bind(r.surface.as_str())
                .bind(&r.prompt.title)
                .bind(&r.prompt.message)
                .bind(&r.prompt.start_label)
                .bind(&r.prompt.dismiss_label)
                .bind(r.priority)
                .bind(r.cooldown_seconds)
                .bind(r.max_starts)
                .bind(r.sampling_percent)
                .bind(r.starts_at.map(Ts))
                .bind(r.ends_at.map(Ts))
                .bind(Ts(r.updated_at))
                .bind(Ts(read_at))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(None);
                }
                let mut withdrawn = 0;
                if !r.offers_prompts_at(r.updated_at) {
                    // A rule that stops, stops prompting (a direct link now) or is scheduled
                    // elsewhere takes back the prompts it offered (`invites_by_rule`).
                    withdrawn = withdraw_invites(
                        &mut tx,
                        "rule_id = $1 AND state = 'issued' AND expires_at > $2",
                        r.id.as_str(),
                        r.updated_at,
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(Some(withdrawn))
            }

            async fn launch_rule(
                &self,
                project: &ProjectId,
                id: &uj_domain::ids::LaunchRuleId,
            ) -> Result<Option<uj_domain::studies::LaunchRule>, $crate::StoreError> {
                let row: Option<RuleRow> =
                    sqlx::query_as(concat!("SELECT ", crate::rows::rule_columns!(), " FROM launch_rules WHERE project_id = $1 AND id = $2"))
                        .bind(project.as_str())
                        .bind(id.as_str())
                        .fetch_optional(self.reader())
                        .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn launch_rules_of_study(
                &self,
                project: &ProjectId,
                study: &uj_domain::ids::StudyId,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<uj_domain::studies::LaunchRule>, $crate::StoreError> {
                let rows: Vec<RuleRow> = sqlx::query_as(
                    concat!("SELECT ", crate::rows::rule_columns!(), " FROM launch_rules WHERE project_id = $1 AND study_id = $2 AND id > $3
                     ORDER BY id LIMIT $4"),
                )
                .bind(project.as_str())
                .bind(study.as_str())
                .bind(page.starting_after.as_deref().unwrap_or(""))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(self.reader())
                .await?;
                crate::shared::try_into_page(rows, page.limit)
            }

            async fn live_launch_rules(
                &self,
                project: &ProjectId,
            ) -> Result<Vec<uj_domain::studies::LaunchRule>, $crate::StoreError> {
                let rows: Vec<RuleRow> = sqlx::query_as(crate::shared_studies::LIVE_RULES)
                .bind(project.as_str())
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn live_launch_rule_count(&self, project: &ProjectId) -> Result<i64, $crate::StoreError> {
                Ok(sqlx::query_scalar(crate::shared_studies::LIVE_RULE_COUNT)
                .bind(project.as_str())
                .fetch_one(self.reader())
                .await?)
            }

            async fn live_study_count(&self, project: &ProjectId) -> Result<i64, $crate::StoreError> {
                Ok(sqlx::query_scalar(crate::shared_studies::LIVE_STUDY_COUNT)
                .bind(project.as_str())
                .fetch_one(self.reader())
                .await?)
            }

            async fn live_starts(
                &self,
                project: &ProjectId,
                week: DateTime<Utc>,
                month: DateTime<Utc>,
            ) -> Result<$crate::LiveStarts, $crate::StoreError> {
                let rules: Vec<(String, i64)> = sqlx::query_as(crate::shared_studies::LIVE_RULE_STARTS)
                .bind(project.as_str())
                .fetch_all(self.reader())
                .await?;
                let studies: Vec<StudyStartsRow> = sqlx::query_as(crate::shared_studies::LIVE_STUDY_STARTS)
                .bind(project.as_str())
                .bind(Ts(week))
                .bind(Ts(month))
                .fetch_all(self.reader())
                .await?;
                Ok($crate::LiveStarts {
                    rules: rules.into_iter().collect(),
                    studies: studies
                        .into_iter()
                        .map(|row| Ok((row.study.try_into()?, row.week_starts, row.month_starts)))
                        .collect::<Result<_, $crate::StoreError>>()?,
                })
            }

            async fn sdk_contacted_at(&self, project: &ProjectId) -> Result<Option<DateTime<Utc>>, $crate::StoreError> {
                let at: Option<Option<Ts>> = sqlx::query_scalar("SELECT sdk_contacted_at FROM projects WHERE id = $1")
                    .bind(project.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                Ok(at.flatten().map(|t| t.0))
            }

            async fn contact_limit_days(&self, project: &ProjectId) -> Result<Option<i64>, $crate::StoreError> {
                let days: Option<Option<i64>> = sqlx::query_scalar("SELECT contact_limit_days FROM projects WHERE id = $1")
                    .bind(project.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                Ok(days.flatten())
            }

            async fn mark_sdk_contact(&self, project: &ProjectId, at: DateTime<Utc>) -> Result<(), $crate::StoreError> {
                sqlx::query("UPDATE projects SET sdk_contacted_at = $2 WHERE id = $1 AND sdk_contacted_at IS NULL")
                    .bind(project.as_str())
                    .bind(Ts(at))
                    .execute(self.writer())
                    .await?;
                Ok(())
            }
        }

        /// Records `once` (when given) in `tx`: `false`, and nothing written, when its key
        /// has a record within the key's lifetime (the request that came first made it;
        /// PostgreSQL waits here for that request's transaction to end). An older record of
        /// the key is replaced, as if it had been purged.
        async fn record_once(
            tx: &mut sqlx::Transaction<'static, <$store as crate::shared::Dialect>::Db>,
            once: Option<&uj_domain::idempotency::IdempotencyRecord>,
        ) -> Result<bool, $crate::StoreError> {
            let Some(once) = once else {
                return Ok(true);
            };
            let done = sqlx::query(
                "INSERT INTO idempotency_keys (project_id, idempotency_key, fingerprint, resource_id,
                    status, body, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (project_id, idempotency_key) DO UPDATE SET fingerprint = excluded.fingerprint,
                    resource_id = excluded.resource_id, status = excluded.status, body = excluded.body,
                    created_at = excluded.created_at
                 WHERE idempotency_keys.created_at <= $8",
            )
            .bind(once.project_id.as_str())
            .bind(&once.key)
            .bind(&once.fingerprint)
            .bind(&once.resource_id)
            .bind(i64::from(once.status))
            .bind(&once.body)
            .bind(Ts(once.created_at))
            .bind(Ts(once.created_at - uj_domain::idempotency::KEY_LIFETIME))
            .execute(&mut **tx)
            .await?;
            Ok(done.rows_affected() == 1)
        }
    };
}

pub(crate) use impl_study_store;

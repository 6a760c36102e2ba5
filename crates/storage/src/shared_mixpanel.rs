//! The [`MixpanelStore`](crate::MixpanelStore) implementation both databases share (see
//! `shared.rs` for how the expansion works).

macro_rules! impl_mixpanel_store {
    ($store:ty) => {
        /// The names of `events` (sorted by project and name) that a project's catalog has
        /// no room for: when a batch's names not yet seen from the app would pass
        /// [`MAX_APP_EVENT_NAMES`], those first seen latest. The statements add them by name
        /// (the order that keeps two processes' flushes from deadlocking), so the cap kept the
        /// names that sort first, not the first sent (found by the scale probe); each
        /// statement still checks it. A name Mixpanel listed takes room once the app sends it.
        ///
        /// On PostgreSQL each project's row is held first, in the order of `events`, so that
        /// flushes from several processes count one after the other: each counted only the
        /// names committed, and two at once both filled the room left (990 names and 10 new
        /// in each made 1010; found by the storage review). `FOR NO KEY UPDATE` leaves the
        /// row to the key checks of other writes of the project (a Mixpanel read adding a
        /// name waits for no flush).
        async fn past_the_cap<'e>(
            tx: &mut sqlx::Transaction<'static, <$store as crate::shared::Dialect>::Db>,
            events: &[&'e $crate::AppEventCount],
        ) -> Result<std::collections::HashSet<(&'e ProjectId, &'e str)>, $crate::StoreError> {
            let mut unkept = std::collections::HashSet::new();
            for batch in events.chunk_by(|a, b| a.project == b.project) {
                let project = &batch[0].project;
                if <$store as crate::shared::Dialect>::ROW_LOCKS {
                    sqlx::query("SELECT 1 FROM projects WHERE id = $1 FOR NO KEY UPDATE")
                        .bind(project.as_str())
                        .execute(&mut **tx)
                        .await?;
                }
                let named: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM event_catalog WHERE project_id = $1 AND app_first_seen_at IS NOT NULL",
                )
                .bind(project.as_str())
                .fetch_one(&mut **tx)
                .await?;
                let room = ($crate::MAX_APP_EVENT_NAMES as i64 - named).max(0) as usize;
                if batch.len() <= room {
                    continue;
                }
                // At most MAX_APP_EVENT_NAMES names, in one statement.
                let seen: std::collections::HashSet<String> = sqlx::query_scalar(
                    "SELECT name FROM event_catalog WHERE project_id = $1 AND app_first_seen_at IS NOT NULL",
                )
                .bind(project.as_str())
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .collect();
                let mut new: Vec<&&$crate::AppEventCount> =
                    batch.iter().filter(|e| !seen.contains(&e.name)).collect();
                new.sort_by(|a, b| (a.first, &a.name).cmp(&(b.first, &b.name)));
                unkept.extend(new.iter().skip(room).map(|e| (&e.project, e.name.as_str())));
            }
            Ok(unkept)
        }

        /// Drops what was read through the project's connection: its cohorts, and the event
        /// names the catalog has from Mixpanel only (names the app sent stay, unmarked).
        /// The two catalog statements walk the names twice, so on PostgreSQL the rows are
        /// locked first in byte order, the order a flush of counts takes them in.
        async fn forget_mixpanel_reads(
            tx: &mut sqlx::Transaction<'static, <$store as crate::shared::Dialect>::Db>,
            project: &ProjectId,
        ) -> Result<(), $crate::StoreError> {
            if <$store as crate::shared::Dialect>::ROW_LOCKS {
                sqlx::query(
                    r#"SELECT 1 FROM event_catalog WHERE project_id = $1
                       ORDER BY name COLLATE "C" FOR UPDATE"#,
                )
                .bind(project.as_str())
                .execute(&mut **tx)
                .await?;
            }
            for statement in [
                "DELETE FROM mixpanel_cohorts WHERE project_id = $1",
                "DELETE FROM event_catalog WHERE project_id = $1 AND app_count = 0",
                "UPDATE event_catalog SET seen_in_mixpanel_at = NULL
                 WHERE project_id = $1 AND seen_in_mixpanel_at IS NOT NULL",
            ] {
                sqlx::query(statement)
                    .bind(project.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Locks the project's connection if it is still the one made at `connected_at`:
        /// false when it was removed or replaced since. What was read through it is written
        /// in the same transaction, so a disconnect or a new connection cannot come between.
        async fn reading_through(
            tx: &mut sqlx::Transaction<'static, <$store as crate::shared::Dialect>::Db>,
            project: &ProjectId,
            connected_at: DateTime<Utc>,
        ) -> Result<bool, $crate::StoreError> {
            let locked = sqlx::query(
                "UPDATE mixpanel_connections SET connected_at = connected_at
                 WHERE project_id = $1 AND connected_at = $2",
            )
            .bind(project.as_str())
            .bind(Ts(connected_at))
            .execute(&mut **tx)
            .await?;
            Ok(locked.rows_affected() == 1)
        }

        #[async_trait::async_trait]
        impl $crate::MixpanelStore for $store {
            async fn save_mixpanel_connection(
                &self,
                c: &uj_domain::mixpanel::MixpanelConnection,
                secret_ciphertext: &str,
            ) -> Result<bool, $crate::StoreError> {
                // The connection's row first, then what was read through the old one: a
                // read being recorded holds that row (see `reading_through`), so it either
                // lands before this and is forgotten, or finds its connection gone.
                let mut tx = self.begin().await?;
                let saved = sqlx::query(
                    "INSERT INTO mixpanel_connections (project_id, username, secret_ciphertext,
                        mixpanel_project_id, mixpanel_project_name, organization_name, region, timezone,
                        workspace_id, status, status_detail, connected_at, last_verified_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (project_id) DO UPDATE SET
                        username = excluded.username, secret_ciphertext = excluded.secret_ciphertext,
                        mixpanel_project_id = excluded.mixpanel_project_id,
                        mixpanel_project_name = excluded.mixpanel_project_name,
                        organization_name = excluded.organization_name, region = excluded.region,
                        timezone = excluded.timezone, workspace_id = excluded.workspace_id,
                        status = excluded.status, status_detail = excluded.status_detail,
                        connected_at = excluded.connected_at, last_verified_at = excluded.last_verified_at,
                        cohorts_read_at = NULL, event_names_read_at = NULL
                     WHERE mixpanel_connections.mixpanel_project_id = excluded.mixpanel_project_id",
                )
                .bind(c.project_id.as_str())
                .bind(&c.username)
                .bind(secret_ciphertext)
                .bind(&c.mixpanel_project_id)
                .bind(&c.mixpanel_project_name)
                .bind(&c.organization)
                .bind(&c.region)
                .bind(&c.timezone)
                .bind(c.workspace_id.as_deref())
                .bind(c.status.as_str())
                .bind(c.status_detail.as_deref())
                .bind(Ts(c.connected_at))
                .bind(Ts(c.last_verified_at))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !saved {
                    return Ok(false);
                }
                forget_mixpanel_reads(&mut tx, &c.project_id).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn mixpanel_connection(
                &self,
                project: &ProjectId,
            ) -> Result<Option<uj_domain::mixpanel::StoredConnection>, $crate::StoreError> {
                let row: Option<ConnectionRow> = sqlx::query_as(
                    concat!("SELECT ", crate::rows::connection_columns!(), " FROM mixpanel_connections WHERE project_id = $1"),
                )
                .bind(project.as_str())
                .fetch_optional(self.reader())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn mixpanel_connections(
                &self,
            ) -> Result<Vec<uj_domain::mixpanel::StoredConnection>, $crate::StoreError> {
                let rows: Vec<ConnectionRow> =
                    sqlx::query_as(concat!("SELECT ", crate::rows::connection_columns!(), " FROM mixpanel_connections ORDER BY project_id"))
                        .fetch_all(self.reader())
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn set_mixpanel_connection_status(
                &self,
                project: &ProjectId,
                connected_at: DateTime<Utc>,
                status: uj_domain::mixpanel::ConnectionStatus,
                detail: Option<&str>,
                verified_at: Option<DateTime<Utc>>,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE mixpanel_connections
                     SET status = $2, status_detail = $3, last_verified_at = COALESCE($4, last_verified_at)
                     WHERE project_id = $1 AND connected_at = $5",
                )
                .bind(project.as_str())
                .bind(status.as_str())
                .bind(detail)
                .bind(verified_at.map(Ts))
                .bind(Ts(connected_at))
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_mixpanel_connection(&self, project: &ProjectId) -> Result<bool, $crate::StoreError> {
                // The connection's row first (see `save_mixpanel_connection`).
                let mut tx = self.begin().await?;
                let done = sqlx::query("DELETE FROM mixpanel_connections WHERE project_id = $1")
                    .bind(project.as_str())
                    .execute(&mut *tx)
                    .await?;
                forget_mixpanel_reads(&mut tx, project).await?;
                sqlx::query("DELETE FROM mixpanel_connect_attempts WHERE project_id = $1")
                    .bind(project.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn save_connect_attempt(
                &self,
                token_hash: &str,
                attempt: &uj_domain::mixpanel::ConnectAttempt,
            ) -> Result<(), $crate::StoreError> {
                let now = crate::time::now();
                let mut tx = self.begin().await?;
                // Expired attempts of any project go when a new one arrives.
                sqlx::query("DELETE FROM mixpanel_connect_attempts WHERE expires_at <= $1")
                    .bind(Ts(now))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO mixpanel_connect_attempts
                        (token_hash, project_id, username, secret_ciphertext, candidates, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(token_hash)
                .bind(attempt.project_id.as_str())
                .bind(&attempt.username)
                .bind(&attempt.secret_ciphertext)
                .bind(&attempt.candidates)
                .bind(Ts(now))
                .bind(Ts(attempt.expires_at))
                .execute(&mut *tx)
                .await
                .map_err($crate::StoreError::conflict_as("connect attempt"))?;
                tx.commit().await?;
                Ok(())
            }

            async fn connect_attempt(
                &self,
                project: &ProjectId,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<uj_domain::mixpanel::ConnectAttempt>, $crate::StoreError> {
                let row: Option<ConnectAttemptRow> = sqlx::query_as(
                    "SELECT project_id, username, secret_ciphertext, candidates, expires_at
                     FROM mixpanel_connect_attempts
                     WHERE project_id = $1 AND token_hash = $2 AND expires_at > $3",
                )
                .bind(project.as_str())
                .bind(token_hash)
                .bind(Ts(now))
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn take_connect_attempt(
                &self,
                project: &ProjectId,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM mixpanel_connect_attempts
                     WHERE project_id = $1 AND token_hash = $2 AND expires_at > $3",
                )
                .bind(project.as_str())
                .bind(token_hash)
                .bind(Ts(now))
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_connect_attempts(&self, project: &ProjectId) -> Result<(), $crate::StoreError> {
                sqlx::query("DELETE FROM mixpanel_connect_attempts WHERE project_id = $1")
                    .bind(project.as_str())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn replace_mixpanel_cohorts(
                &self,
                project: &ProjectId,
                connected_at: DateTime<Utc>,
                read_at: DateTime<Utc>,
                cohorts: &[uj_domain::mixpanel::MixpanelCohort],
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.begin().await?;
                if !reading_through(&mut tx, project, connected_at).await? {
                    return Ok(false);
                }
                // The connection's row is held (`reading_through`): a read recorded at once
                // waits, then finds this one's time.
                let latest = sqlx::query(
                    "UPDATE mixpanel_connections SET cohorts_read_at = $2
                     WHERE project_id = $1 AND (cohorts_read_at IS NULL OR cohorts_read_at <= $2)",
                )
                .bind(project.as_str())
                .bind(Ts(read_at))
                .execute(&mut *tx)
                .await?;
                if latest.rows_affected() == 0 {
                    return Ok(true);
                }
                sqlx::query("DELETE FROM mixpanel_cohorts WHERE project_id = $1")
                    .bind(project.as_str())
                    .execute(&mut *tx)
                    .await?;
                for cohort in cohorts {
                    sqlx::query(
                        "INSERT INTO mixpanel_cohorts
                            (project_id, cohort_id, name, description, member_count, is_visible, fetched_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (project_id, cohort_id) DO NOTHING",
                    )
                    .bind(project.as_str())
                    .bind(&cohort.cohort_id)
                    .bind(&cohort.name)
                    .bind(&cohort.description)
                    .bind(cohort.member_count)
                    .bind(cohort.is_visible)
                    .bind(Ts(cohort.fetched_at))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn mixpanel_cohorts(
                &self,
                project: &ProjectId,
            ) -> Result<Vec<uj_domain::mixpanel::MixpanelCohort>, $crate::StoreError> {
                let rows: Vec<CohortRow> = sqlx::query_as(
                    "SELECT cohort_id, name, description, member_count, is_visible, fetched_at
                     FROM mixpanel_cohorts WHERE project_id = $1 ORDER BY name, cohort_id",
                )
                .bind(project.as_str())
                .fetch_all(self.reader())
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn record_mixpanel_event_names(
                &self,
                project: &ProjectId,
                connected_at: DateTime<Utc>,
                names: &[String],
                seen_at: DateTime<Utc>,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.begin().await?;
                if !reading_through(&mut tx, project, connected_at).await? {
                    return Ok(false);
                }
                // A read older than the one stored changes nothing (two reads at once from
                // two processes may commit out of order). Its time is the connection's, as
                // for cohorts: told from the names' times, a newer read that listed none
                // left nothing to tell it by, and an older one listing names replaced it.
                let latest = sqlx::query(
                    "UPDATE mixpanel_connections SET event_names_read_at = $2
                     WHERE project_id = $1 AND (event_names_read_at IS NULL OR event_names_read_at <= $2)",
                )
                .bind(project.as_str())
                .bind(Ts(seen_at))
                .execute(&mut *tx)
                .await?;
                if latest.rows_affected() == 0 {
                    return Ok(true);
                }
                // Each read replaces the last (each one only added: a renamed event stayed for
                // good): a name no longer listed is no longer "seen in Mixpanel", and leaves
                // unless the app sent it. The listed names and the ones read before are walked
                // together in byte order, the order the app's counts take the same rows in
                // (`record_app_events`): locking them all first and then inserting new ones
                // deadlocked on PostgreSQL with a flush inserting one of those.
                let before: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM event_catalog
                     WHERE project_id = $1 AND seen_in_mixpanel_at IS NOT NULL",
                )
                .bind(project.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let listed: std::collections::BTreeSet<&str> =
                    names.iter().map(String::as_str).collect();
                let walked: std::collections::BTreeSet<&str> =
                    listed.iter().copied().chain(before.iter().map(String::as_str)).collect();
                for name in walked {
                    if listed.contains(name) {
                        sqlx::query(
                            "INSERT INTO event_catalog (project_id, name, seen_in_mixpanel_at) VALUES ($1, $2, $3)
                             ON CONFLICT (project_id, name) DO UPDATE SET seen_in_mixpanel_at = excluded.seen_in_mixpanel_at",
                        )
                        .bind(project.as_str())
                        .bind(name)
                        .bind(Ts(seen_at))
                        .execute(&mut *tx)
                        .await?;
                        continue;
                    }
                    for statement in [
                        "DELETE FROM event_catalog WHERE project_id = $1 AND name = $2 AND app_count = 0",
                        "UPDATE event_catalog SET seen_in_mixpanel_at = NULL WHERE project_id = $1 AND name = $2",
                    ] {
                        sqlx::query(statement)
                            .bind(project.as_str())
                            .bind(name)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn forget_old_app_events(&self, before: DateTime<Utc>) -> Result<u64, $crate::StoreError> {
                let projects: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT project_id FROM event_catalog WHERE app_last_seen_at < $1",
                )
                .bind(Ts(before))
                .fetch_all(self.reader())
                .await?;
                let mut forgotten = 0;
                // A project at a time, its rows locked first on PostgreSQL in the byte order
                // a flush of counts takes them in (`record_app_events`).
                for project in projects {
                    let mut tx = self.begin().await?;
                    if <$store as crate::shared::Dialect>::ROW_LOCKS {
                        sqlx::query(
                            r#"SELECT 1 FROM event_catalog WHERE project_id = $1
                               ORDER BY name COLLATE "C" FOR UPDATE"#,
                        )
                        .bind(&project)
                        .execute(&mut *tx)
                        .await?;
                    }
                    for statement in [
                        "DELETE FROM event_catalog
                         WHERE project_id = $1 AND app_last_seen_at < $2 AND seen_in_mixpanel_at IS NULL",
                        "UPDATE event_catalog
                         SET app_count = 0, app_first_seen_at = NULL, app_last_seen_at = NULL
                         WHERE project_id = $1 AND app_last_seen_at < $2",
                    ] {
                        forgotten += sqlx::query(statement)
                            .bind(&project)
                            .bind(Ts(before))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                    }
                    tx.commit().await?;
                }
                Ok(forgotten)
            }

            async fn record_app_events(&self, events: &[$crate::AppEventCount]) -> Result<(), $crate::StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                // In one order whoever flushes: two processes' batches lock the same rows
                // in the same order, so on PostgreSQL neither waits for the other in a cycle.
                let mut sorted: Vec<_> = events.iter().collect();
                sorted.sort_unstable_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
                let mut tx = self.begin().await?;
                let unkept = past_the_cap(&mut tx, &sorted).await?;
                for e in sorted.into_iter().filter(|e| !unkept.contains(&(&e.project, e.name.as_str()))) {
                    // Through a SELECT so a project deleted meanwhile adds nothing, nor a new
                    // name to a full catalog (`MAX_APP_EVENT_NAMES`). Batches may commit out
                    // of time order (two flushes, two processes): first and last seen widen.
                    sqlx::query(
                        "INSERT INTO event_catalog (project_id, name, app_count, app_first_seen_at, app_last_seen_at)
                         SELECT id, $2, $3, $4, $5 FROM projects WHERE id = $1
                           AND (EXISTS (SELECT 1 FROM event_catalog WHERE project_id = $1 AND name = $2)
                                OR (SELECT COUNT(*) FROM event_catalog
                                    WHERE project_id = $1 AND app_first_seen_at IS NOT NULL) < $6)
                         ON CONFLICT (project_id, name) DO UPDATE SET
                            app_count = event_catalog.app_count + excluded.app_count,
                            app_first_seen_at = CASE
                                WHEN event_catalog.app_first_seen_at IS NULL
                                  OR excluded.app_first_seen_at < event_catalog.app_first_seen_at
                                THEN excluded.app_first_seen_at ELSE event_catalog.app_first_seen_at END,
                            app_last_seen_at = CASE
                                WHEN event_catalog.app_last_seen_at IS NULL
                                  OR excluded.app_last_seen_at > event_catalog.app_last_seen_at
                                THEN excluded.app_last_seen_at ELSE event_catalog.app_last_seen_at END",
                    )
                    .bind(e.project.as_str())
                    .bind(&e.name)
                    .bind(e.count)
                    .bind(Ts(e.first))
                    .bind(Ts(e.last))
                    .bind($crate::MAX_APP_EVENT_NAMES as i64)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn event_catalog(
                &self,
                project: &ProjectId,
            ) -> Result<Vec<uj_domain::mixpanel::CatalogEvent>, $crate::StoreError> {
                let rows: Vec<CatalogRow> = sqlx::query_as(
                    "SELECT name, seen_in_mixpanel_at, app_count, app_first_seen_at, app_last_seen_at
                     FROM event_catalog WHERE project_id = $1 ORDER BY name",
                )
                .bind(project.as_str())
                .fetch_all(self.reader())
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

pub(crate) use impl_mixpanel_store;

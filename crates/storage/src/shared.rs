//! The [`Store`](crate::Store) implementation both databases share.
//!
//! SQLite and PostgreSQL agree on everything used here (`$n` parameters, `RETURNING`,
//! `ON CONFLICT`), so the queries are written once and expanded for each store type.
//! A store type provides three inherent methods: `reader()` (a pool for reads), `writer()`
//! (a pool for single-statement writes) and `begin()` (a write transaction that cannot
//! deadlock). Where the dialects differ, the store implements that method itself.

macro_rules! impl_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            async fn ping(&self) -> Result<(), $crate::StoreError> {
                // Answering is not enough (found by the observability probe): a database
                // dropped and made anew answers without this server's tables, and a standby
                // answers reads and refuses every write.
                let applied: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                        .fetch_one(self.reader())
                        .await?;
                let expected = Self::latest_migration();
                if applied.unwrap_or(0) < expected {
                    return Err($crate::StoreError::Unavailable(
                        format!("the database's schema is not this server's (migration {} of {expected})", applied.unwrap_or(0)).into(),
                    ));
                }
                self.refuses_writes_here().await
            }

            fn file_lost(&self) -> Option<&'static str> {
                self.file_lost_here()
            }

            async fn connect_error(&self) -> Option<String> {
                self.connect_error_here().await
            }

            async fn rescue(&self) -> Result<std::path::PathBuf, $crate::StoreError> {
                self.rescue_here().await
            }

            async fn adopt_key_fingerprint(&self, fingerprint: &str) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO application_key (singleton, fingerprint) VALUES (1, $1)
                     ON CONFLICT (singleton) DO UPDATE SET fingerprint = excluded.fingerprint",
                )
                .bind(fingerprint)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn exclusive(&self) -> Result<$crate::Exclusive, $crate::StoreError> {
                self.lock_exclusive().await
            }

            async fn claim_key_fingerprint(&self, fingerprint: &str) -> Result<String, $crate::StoreError> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "INSERT INTO application_key (singleton, fingerprint) VALUES (1, $1)
                     ON CONFLICT (singleton) DO NOTHING",
                )
                .bind(fingerprint)
                .execute(&mut *tx)
                .await?;
                let recorded: String =
                    sqlx::query_scalar("SELECT fingerprint FROM application_key WHERE singleton = 1")
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(recorded)
            }

            async fn key_fingerprint(&self) -> Result<Option<String>, $crate::StoreError> {
                Ok(sqlx::query_scalar("SELECT fingerprint FROM application_key WHERE singleton = 1")
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn is_set_up(&self) -> Result<bool, $crate::StoreError> {
                let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM installation")
                    .fetch_one(self.reader())
                    .await?;
                Ok(rows > 0)
            }

            async fn set_up(
                &self,
                owner: $crate::NewAccount,
                project_name: &str,
                public_key: &str,
            ) -> Result<(Account, Project), $crate::StoreError> {
                let now = Ts(crate::time::now());
                let mut tx = self.begin().await?;
                sqlx::query("INSERT INTO installation (id, set_up_at) VALUES (1, $1)")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::StoreError::conflict_as("installation"))?;
                let account: AccountRow = sqlx::query_as(
                    "INSERT INTO accounts (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)
                     RETURNING id, email, password_hash, created_at",
                )
                .bind(AccountId::generate().as_str())
                .bind(&owner.email)
                .bind(&owner.password_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::StoreError::conflict_as("account"))?;
                let account = Account::from(account);
                let project = insert_project(&mut tx, &ProjectId::generate(), &account.id, project_name, public_key, now).await?;
                tx.commit().await?;
                Ok((account, project))
            }

            async fn create_account(&self, new: $crate::NewAccount) -> Result<Account, $crate::StoreError> {
                let row: AccountRow = sqlx::query_as(
                    "INSERT INTO accounts (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)
                     RETURNING id, email, password_hash, created_at",
                )
                .bind(AccountId::generate().as_str())
                .bind(&new.email)
                .bind(&new.password_hash)
                .bind(Ts(crate::time::now()))
                .fetch_one(self.writer())
                .await
                .map_err($crate::StoreError::conflict_as("account"))?;
                Ok(row.into())
            }

            async fn account_by_email(&self, email: &str) -> Result<Option<Account>, $crate::StoreError> {
                let row: Option<AccountRow> = sqlx::query_as(
                    "SELECT id, email, password_hash, created_at FROM accounts WHERE email = $1",
                )
                .bind(email)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn create_project(
                &self,
                owner: &AccountId,
                name: &str,
                public_key: &str,
                max_owned: usize,
                once: Option<&uj_domain::idempotency::IdempotencyRecord>,
            ) -> Result<Option<Project>, $crate::StoreError> {
                let mut tx = self.begin().await?;
                // One account's projects created one at a time (a no-op write holds its row on
                // PostgreSQL), so that the count sees those created at once, and the form
                // sent twice at once finds the record of the first.
                sqlx::query("UPDATE accounts SET email = email WHERE id = $1")
                    .bind(owner.as_str())
                    .execute(&mut *tx)
                    .await?;
                if let Some(once) = once {
                    let made: Option<String> = sqlx::query_scalar(concat!(
                        "SELECT project_id",
                        crate::shared_studies::account_idempotency_records!()
                    ))
                        .bind(owner.as_str())
                        .bind(&once.key)
                        .bind(Ts(once.created_at - uj_domain::idempotency::KEY_LIFETIME))
                        .fetch_optional(&mut *tx)
                        .await?;
                    if made.is_some() {
                        return Ok(None);
                    }
                }
                let owned: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM project_members WHERE account_id = $1 AND role = $2",
                )
                .bind(owner.as_str())
                .bind(Role::Owner.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if owned >= max_owned as i64 {
                    return Ok(None);
                }
                let id = once.map_or_else(ProjectId::generate, |once| once.project_id.clone());
                let project = insert_project(&mut tx, &id, owner, name, public_key, Ts(crate::time::now())).await?;
                record_once(&mut tx, once).await?;
                tx.commit().await?;
                Ok(Some(project))
            }

            async fn project(&self, id: &ProjectId) -> Result<Option<Project>, $crate::StoreError> {
                let row: Option<ProjectRow> = sqlx::query_as(
                    "SELECT id, name, public_key, created_at FROM projects WHERE id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn project_by_public_key(&self, key: &str) -> Result<Option<Project>, $crate::StoreError> {
                let row: Option<ProjectRow> = sqlx::query_as(
                    "SELECT id, name, public_key, created_at FROM projects WHERE public_key = $1",
                )
                .bind(key)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn set_public_key(
                &self,
                id: &ProjectId,
                replaced: &str,
                key: &str,
            ) -> Result<Option<Project>, $crate::StoreError> {
                // Over the key replaced only: of two rotations that read one key, the second
                // would replace the key the first just answered (PostgreSQL checks the
                // condition again on the row the first wrote).
                let row: Option<ProjectRow> = sqlx::query_as(
                    "UPDATE projects SET public_key = $3 WHERE id = $1 AND public_key = $2
                     RETURNING id, name, public_key, created_at",
                )
                .bind(id.as_str())
                .bind(replaced)
                .bind(key)
                .fetch_optional(self.writer())
                .await
                .map_err($crate::StoreError::conflict_as("public key"))?;
                Ok(row.map(Into::into))
            }

            async fn memberships(&self, account: &AccountId) -> Result<Vec<Membership>, $crate::StoreError> {
                let rows: Vec<MembershipRow> = sqlx::query_as(
                    "SELECT p.id, p.name, p.public_key, p.created_at, m.role
                     FROM project_members m JOIN projects p ON p.id = m.project_id
                     WHERE m.account_id = $1 ORDER BY p.id",
                )
                .bind(account.as_str())
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn role(
                &self,
                account: &AccountId,
                project: &ProjectId,
            ) -> Result<Option<Role>, $crate::StoreError> {
                let row: Option<RoleRow> = sqlx::query_as(
                    "SELECT role FROM project_members WHERE account_id = $1 AND project_id = $2",
                )
                .bind(account.as_str())
                .bind(project.as_str())
                .fetch_optional(self.reader())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn members(&self, project: &ProjectId) -> Result<Vec<Member>, $crate::StoreError> {
                let rows: Vec<MemberRow> = sqlx::query_as(
                    "SELECT a.id AS account_id, a.email, m.role, m.created_at AS joined_at
                     FROM project_members m JOIN accounts a ON a.id = m.account_id
                     WHERE m.project_id = $1 ORDER BY m.created_at, a.id",
                )
                .bind(project.as_str())
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn change_password(
                &self,
                account: &AccountId,
                old: &str,
                new: &str,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.begin().await?;
                let changed =
                    sqlx::query("UPDATE accounts SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                        .bind(account.as_str())
                        .bind(old)
                        .bind(new)
                        .execute(&mut *tx)
                        .await?;
                if changed.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query("DELETE FROM sessions WHERE account_id = $1")
                    .bind(account.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn upgrade_password_hash(
                &self,
                account: &AccountId,
                old: &str,
                new: &str,
            ) -> Result<bool, $crate::StoreError> {
                let changed =
                    sqlx::query("UPDATE accounts SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                        .bind(account.as_str())
                        .bind(old)
                        .bind(new)
                        .execute(self.writer())
                        .await?;
                Ok(changed.rows_affected() == 1)
            }

            async fn remove_member(
                &self,
                project: &ProjectId,
                account: &AccountId,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.begin().await?;
                // The project's open invitations to their address go too: one sent while they
                // accepted an older link let them back in for its week (found by the accounts
                // review). The address as `join_by_invitation` matches it, as stored. First,
                // as an acceptance takes the invitation before the membership (the other
                // order could deadlock with one on PostgreSQL); rolled back if no member
                // was removed.
                sqlx::query(
                    "DELETE FROM invitations
                     WHERE project_id = $1 AND accepted_at IS NULL
                       AND email = (SELECT email FROM accounts WHERE id = $2)",
                )
                .bind(project.as_str())
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
                let removed = sqlx::query(
                    "DELETE FROM project_members
                     WHERE project_id = $1 AND account_id = $2 AND role = 'member'",
                )
                .bind(project.as_str())
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
                if removed.rows_affected() != 1 {
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn create_secret_key(
                &self,
                project: &ProjectId,
                name: &str,
                prefix: &str,
                key_hash: &str,
                created_by: &str,
                max_active: usize,
                once: Option<&uj_domain::idempotency::IdempotencyRecord>,
            ) -> Result<Option<SecretKey>, $crate::StoreError> {
                let mut tx = self.begin().await?;
                // A project's keys created one at a time (a no-op write holds its row on
                // PostgreSQL), so that the count sees those created at once.
                sqlx::query("UPDATE projects SET name = name WHERE id = $1")
                    .bind(project.as_str())
                    .execute(&mut *tx)
                    .await?;
                if !record_once(&mut tx, once).await? {
                    return Ok(None);
                }
                let id = once.map_or_else(SecretKeyId::generate, |once| {
                    SecretKeyId::from_string(&once.resource_id)
                });
                let active: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM secret_keys WHERE project_id = $1 AND revoked_at IS NULL",
                )
                .bind(project.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if active >= i64::try_from(max_active).unwrap_or(i64::MAX) {
                    return Ok(None);
                }
                let row: SecretKeyRow = sqlx::query_as(
                    "INSERT INTO secret_keys (id, project_id, name, prefix, key_hash, created_at, created_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     RETURNING id, project_id, name, prefix, created_at, last_used_at, revoked_at, created_by",
                )
                .bind(id.as_str())
                .bind(project.as_str())
                .bind(name)
                .bind(prefix)
                .bind(key_hash)
                .bind(Ts(crate::time::now()))
                .bind(created_by)
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::StoreError::conflict_as("secret key"))?;
                tx.commit().await?;
                Ok(Some(row.into()))
            }

            async fn secret_keys(
                &self,
                project: &ProjectId,
                page: &$crate::PageRequest,
            ) -> Result<$crate::Page<SecretKey>, $crate::StoreError> {
                let rows: Vec<SecretKeyRow> = sqlx::query_as(
                    "SELECT id, project_id, name, prefix, created_at, last_used_at, revoked_at, created_by
                     FROM secret_keys WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(project.as_str())
                .bind(page.starting_after.as_deref().unwrap_or(""))
                .bind(i64::from(page.limit) + 1)
                .fetch_all(self.reader())
                .await?;
                Ok(crate::shared::into_page(rows, page.limit))
            }

            async fn secret_key(
                &self,
                project: &ProjectId,
                id: &SecretKeyId,
            ) -> Result<Option<SecretKey>, $crate::StoreError> {
                let row: Option<SecretKeyRow> = sqlx::query_as(
                    "SELECT id, project_id, name, prefix, created_at, last_used_at, revoked_at, created_by
                     FROM secret_keys WHERE id = $1 AND project_id = $2",
                )
                .bind(id.as_str())
                .bind(project.as_str())
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn revoke_secret_key(
                &self,
                project: &ProjectId,
                id: &SecretKeyId,
            ) -> Result<Option<SecretKey>, $crate::StoreError> {
                let row: Option<SecretKeyRow> = sqlx::query_as(
                    "UPDATE secret_keys SET revoked_at = COALESCE(revoked_at, $3)
                     WHERE id = $1 AND project_id = $2
                     RETURNING id, project_id, name, prefix, created_at, last_used_at, revoked_at, created_by",
                )
                .bind(id.as_str())
                .bind(project.as_str())
                .bind(Ts(crate::time::now()))
                .fetch_optional(self.writer())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn active_secret_key(&self, key_hash: &str) -> Result<Option<SecretKey>, $crate::StoreError> {
                let row: Option<SecretKeyRow> = sqlx::query_as(
                    "SELECT id, project_id, name, prefix, created_at, last_used_at, revoked_at, created_by
                     FROM secret_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                )
                .bind(key_hash)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn touch_secret_key(&self, id: &SecretKeyId) -> Result<(), $crate::StoreError> {
                sqlx::query("UPDATE secret_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(Ts(crate::time::now()))
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn create_session(
                &self,
                token_hash: &str,
                account: &AccountId,
                expires_at: DateTime<Utc>,
                password_hash: &str,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.begin().await?;
                // Holds the account's row (a no-op write) while its hash is the one checked:
                // a password change waits for this session, then ends it.
                let held = sqlx::query(
                    "UPDATE accounts SET password_hash = password_hash
                     WHERE id = $1 AND password_hash = $2",
                )
                .bind(account.as_str())
                .bind(password_hash)
                .execute(&mut *tx)
                .await?;
                if held.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO sessions (token_hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(token_hash)
                .bind(account.as_str())
                .bind(Ts(crate::time::now()))
                .bind(Ts(expires_at))
                .execute(&mut *tx)
                .await
                .map_err($crate::StoreError::conflict_as("session"))?;
                // The newest `MAX_SESSIONS_PER_ACCOUNT` stay (found by the tenant abuse probe).
                sqlx::query(
                    "DELETE FROM sessions WHERE account_id = $1 AND created_at < (
                        SELECT created_at FROM sessions WHERE account_id = $1
                        ORDER BY created_at DESC LIMIT 1 OFFSET $2)",
                )
                .bind(account.as_str())
                .bind($crate::MAX_SESSIONS_PER_ACCOUNT - 1)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn session_account(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Account>, $crate::StoreError> {
                let row: Option<AccountRow> = sqlx::query_as(
                    "SELECT a.id, a.email, a.password_hash, a.created_at
                     FROM sessions s JOIN accounts a ON a.id = s.account_id
                     WHERE s.token_hash = $1 AND s.expires_at > $2",
                )
                .bind(token_hash)
                .bind(Ts(now))
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn delete_session(&self, token_hash: &str) -> Result<(), $crate::StoreError> {
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(Ts(now))
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn create_invitation(
                &self,
                new: $crate::NewInvitation,
                max_open: usize,
            ) -> Result<Option<Invitation>, $crate::StoreError> {
                let mut tx = self.begin().await?;
                // Invitations of one project one at a time (a no-op write holds its row on
                // PostgreSQL): two at once to one email would each delete before the other's
                // insert, and both links would stay open.
                sqlx::query("UPDATE projects SET name = name WHERE id = $1")
                    .bind(new.project_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "DELETE FROM invitations
                     WHERE project_id = $1 AND email = $2 AND accepted_at IS NULL",
                )
                .bind(new.project_id.as_str())
                .bind(&new.email)
                .execute(&mut *tx)
                .await?;
                let now = crate::time::now();
                let open: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM invitations
                     WHERE project_id = $1 AND accepted_at IS NULL AND expires_at > $2",
                )
                .bind(new.project_id.as_str())
                .bind(Ts(now))
                .fetch_one(&mut *tx)
                .await?;
                if open >= max_open as i64 {
                    return Ok(None);
                }
                let row: InvitationRow = sqlx::query_as(
                    "INSERT INTO invitations (id, project_id, email, token_hash, invited_by, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     RETURNING id, project_id, email, invited_by, created_at, expires_at, accepted_at",
                )
                .bind(InvitationId::generate().as_str())
                .bind(new.project_id.as_str())
                .bind(&new.email)
                .bind(&new.token_hash)
                .bind(new.invited_by.as_str())
                .bind(Ts(now))
                .bind(Ts(new.expires_at))
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::StoreError::conflict_as("invitation"))?;
                tx.commit().await?;
                Ok(Some(row.into()))
            }

            async fn open_invitations(
                &self,
                project: &ProjectId,
                now: DateTime<Utc>,
            ) -> Result<Vec<Invitation>, $crate::StoreError> {
                let rows: Vec<InvitationRow> = sqlx::query_as(
                    "SELECT id, project_id, email, invited_by, created_at, expires_at, accepted_at
                     FROM invitations WHERE project_id = $1 AND accepted_at IS NULL AND expires_at > $2
                     ORDER BY created_at DESC, id DESC LIMIT 100",
                )
                .bind(project.as_str())
                .bind(Ts(now))
                .fetch_all(self.reader())
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn withdraw_invitation(
                &self,
                project: &ProjectId,
                id: &str,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM invitations WHERE project_id = $1 AND id = $2 AND accepted_at IS NULL",
                )
                .bind(project.as_str())
                .bind(id)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn open_invitation(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Invitation>, $crate::StoreError> {
                let row: Option<InvitationRow> = sqlx::query_as(
                    "SELECT id, project_id, email, invited_by, created_at, expires_at, accepted_at
                     FROM invitations WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2",
                )
                .bind(token_hash)
                .bind(Ts(now))
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(Into::into))
            }

            async fn accept_invitation(
                &self,
                token_hash: &str,
                password_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Account>, $crate::StoreError> {
                let mut tx = self.begin().await?;
                // Claiming the invitation first makes a second, concurrent accept find nothing.
                let invitation: Option<InvitationRow> = sqlx::query_as(
                    "UPDATE invitations SET accepted_at = $2
                     WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2
                     RETURNING id, project_id, email, invited_by, created_at, expires_at, accepted_at",
                )
                .bind(token_hash)
                .bind(Ts(now))
                .fetch_optional(&mut *tx)
                .await?;
                let Some(invitation) = invitation.map(Invitation::from) else {
                    return Ok(None);
                };
                let account: AccountRow = sqlx::query_as(
                    "INSERT INTO accounts (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)
                     RETURNING id, email, password_hash, created_at",
                )
                .bind(AccountId::generate().as_str())
                .bind(&invitation.email)
                .bind(password_hash)
                .bind(Ts(crate::time::now()))
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::StoreError::conflict_as("account"))?;
                let account = Account::from(account);
                sqlx::query(
                    "INSERT INTO project_members (project_id, account_id, role, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(invitation.project_id.as_str())
                .bind(account.id.as_str())
                .bind(Role::Member.as_str())
                .bind(Ts(crate::time::now()))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(account))
            }

            async fn join_by_invitation(
                &self,
                token_hash: &str,
                account: &AccountId,
                now: DateTime<Utc>,
            ) -> Result<Option<ProjectId>, $crate::StoreError> {
                let mut tx = self.begin().await?;
                let project: Option<String> = sqlx::query_scalar(
                    "UPDATE invitations SET accepted_at = $2
                     WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2
                       AND email = (SELECT email FROM accounts WHERE id = $3)
                     RETURNING project_id",
                )
                .bind(token_hash)
                .bind(Ts(now))
                .bind(account.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(project) = project.map(ProjectId::from_string) else {
                    return Ok(None);
                };
                sqlx::query(
                    "INSERT INTO project_members (project_id, account_id, role, created_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, account_id) DO NOTHING",
                )
                .bind(project.as_str())
                .bind(account.as_str())
                .bind(Role::Member.as_str())
                .bind(Ts(crate::time::now()))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(project))
            }
        }

        async fn insert_project(
            tx: &mut sqlx::Transaction<'static, <$store as crate::shared::Dialect>::Db>,
            id: &ProjectId,
            owner: &AccountId,
            name: &str,
            public_key: &str,
            now: Ts,
        ) -> Result<Project, $crate::StoreError> {
            let project: ProjectRow = sqlx::query_as(
                "INSERT INTO projects (id, name, public_key, created_at) VALUES ($1, $2, $3, $4)
                 RETURNING id, name, public_key, created_at",
            )
            .bind(id.as_str())
            .bind(name)
            .bind(public_key)
            .bind(now)
            .fetch_one(&mut **tx)
            .await
            .map_err($crate::StoreError::conflict_as("public key"))?;
            let project = Project::from(project);
            sqlx::query(
                "INSERT INTO project_members (project_id, account_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(project.id.as_str())
            .bind(owner.as_str())
            .bind(Role::Owner.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Ok(project)
        }
    };
}

pub(crate) use impl_store;

/// Names the sqlx database a store type runs on.
pub(crate) trait Dialect {
    type Db: sqlx::Database;
    /// Whether writers take row locks (PostgreSQL), so that a write of many rows must take
    /// them in one order; SQLite has one writer at a time.
    const ROW_LOCKS: bool;
}

/// Like [`into_page`], for rows whose conversion can fail.
pub(crate) fn try_into_page<R, T: TryFrom<R, Error = crate::StoreError>>(
    mut rows: Vec<R>,
    limit: u32,
) -> Result<crate::Page<T>, crate::StoreError> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok(crate::Page {
        items: rows
            .into_iter()
            .map(T::try_from)
            .collect::<Result<_, _>>()?,
        has_more,
    })
}

/// Turns `limit + 1` fetched rows into a page and whether more follow.
pub(crate) fn into_page<R, T: From<R>>(mut rows: Vec<R>, limit: u32) -> crate::Page<T> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    crate::Page {
        items: rows.into_iter().map(T::from).collect(),
        has_more,
    }
}

/// Traits (or an invite's metadata) as stored: their JSON text, written straight from the map.
pub(crate) fn traits_json(traits: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::to_string(traits).expect("a JSON map always serialises")
}

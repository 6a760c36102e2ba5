use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uj_domain::accounts::{Account, Role};
use uj_domain::audiences::{
    Audience, AudienceMember, CohortSyncConfig, LedgerEntry, MembershipChange, StagedSession,
};
use uj_domain::cohort_sync::SyncedMember;
use uj_domain::idempotency::IdempotencyRecord;
use uj_domain::ids::{AccountId, AudienceId, LaunchRuleId, ProjectId, SecretKeyId, StudyId};
use uj_domain::invites::{AcceptOutcome, Invite};
use uj_domain::mixpanel::{
    CatalogEvent, ConnectAttempt, ConnectionStatus, MixpanelCohort, MixpanelConnection,
    StoredConnection,
};
use uj_domain::projects::{Invitation, Member, Membership, Project, SecretKey};
use uj_domain::studies::{LaunchRule, Study};

use crate::StoreError;

/// Held by [`Store::exclusive`]'s caller; dropping it lets the next one in.
pub struct Exclusive(#[allow(dead_code)] pub(crate) Box<dyn Send + Sync>);

/// An account to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub email: String,
    pub password_hash: String,
}

/// An invitation to create; the token is already hashed.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub project_id: ProjectId,
    pub email: String,
    pub token_hash: String,
    pub invited_by: AccountId,
    pub expires_at: DateTime<Utc>,
}

/// A page request for cursor pagination over id-ordered lists.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    /// Return items whose id sorts after this one.
    pub starting_after: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// Everything the server keeps. Every method that reads or changes a project's data takes
/// the `ProjectId` it is scoped to, so one tenant's request can never reach another's rows.
///
/// Creation times are set by the store; `now` parameters are only used for comparisons.
#[async_trait]
pub trait Store:
    MixpanelStore + CohortSyncStore + StudyStore + InviteStore + Send + Sync + 'static
{
    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Why opening a new connection to the database fails, if it does: the reason a pool's
    /// timeout hides (PostgreSQL refusing, unknown, or refusing our credentials). `None`
    /// when one opens, and always on SQLite.
    async fn connect_error(&self) -> Option<String>;
    /// What became of the database this server opened, if it is no longer at its path: a
    /// SQLite file deleted or replaced while the server runs (its open files keep the old
    /// one, which nothing reaches after this process ends). `None` while it is there, and
    /// always on PostgreSQL.
    fn file_lost(&self) -> Option<&'static str>;
    /// Writes a consistent copy of the database as this process has it open to a new file
    /// beside its path, and names it: SQLite's file lost from its path ([`Store::file_lost`]).
    async fn rescue(&self) -> Result<std::path::PathBuf, StoreError>;
    /// The fingerprint of the application key this database belongs to: the one recorded
    /// first, `fingerprint` when none was (this call records it).
    async fn claim_key_fingerprint(&self, fingerprint: &str) -> Result<String, StoreError>;
    /// The fingerprint of the application key this database belongs to, if one is recorded.
    async fn key_fingerprint(&self) -> Result<Option<String>, StoreError>;
    /// Records `fingerprint` as the database's key, replacing the one recorded (the old key
    /// is lost for good; `userjourneys admin adopt-key`).
    async fn adopt_key_fingerprint(&self, fingerprint: &str) -> Result<(), StoreError>;
    /// Waits until no other holder (in any process on this database) has it, and holds it
    /// until the guard drops: for admin commands that create what they find absent.
    async fn exclusive(&self) -> Result<Exclusive, StoreError>;

    // --- Accounts -------------------------------------------------------------------

    /// Whether first-run setup has happened.
    async fn is_set_up(&self) -> Result<bool, StoreError>;
    /// First-run setup: the owner account, the first project and its membership, atomically.
    /// `Conflict("installation")` when setup already happened.
    async fn set_up(
        &self,
        owner: NewAccount,
        project_name: &str,
        public_key: &str,
    ) -> Result<(Account, Project), StoreError>;
    /// `Conflict("account")` when the email is taken.
    async fn create_account(&self, account: NewAccount) -> Result<Account, StoreError>;
    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError>;

    // --- Projects and members ---------------------------------------------------------

    /// Creates a project owned by `owner`; `None`, and nothing written, when `owner` owns
    /// `max_owned` projects already (counted after those created at once, one at a time).
    /// `once`, the answer of the dashboard form that asks for it, is recorded in the same
    /// transaction, as the record of the project it names (`project_id`), which is the new
    /// project: `None` too, and nothing written, when `once`'s key has a record within the
    /// key's lifetime in a project `owner` belongs to (the same form, sent first: a new
    /// project has no records to look in; see
    /// [`account_idempotency_record`](StudyStore::account_idempotency_record)).
    async fn create_project(
        &self,
        owner: &AccountId,
        name: &str,
        public_key: &str,
        max_owned: usize,
        once: Option<&IdempotencyRecord>,
    ) -> Result<Option<Project>, StoreError>;
    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError>;
    async fn project_by_public_key(&self, key: &str) -> Result<Option<Project>, StoreError>;
    /// Replaces the public SDK key `replaced` by `key`; the old one stops working at once.
    /// `None`, and nothing written, when the project's key is not `replaced` (another
    /// rotation came first) or there is no such project.
    async fn set_public_key(
        &self,
        id: &ProjectId,
        replaced: &str,
        key: &str,
    ) -> Result<Option<Project>, StoreError>;
    /// The projects `account` belongs to, oldest first.
    async fn memberships(&self, account: &AccountId) -> Result<Vec<Membership>, StoreError>;
    async fn role(
        &self,
        account: &AccountId,
        project: &ProjectId,
    ) -> Result<Option<Role>, StoreError>;
    async fn members(&self, project: &ProjectId) -> Result<Vec<Member>, StoreError>;
    /// Replaces `account`'s password hash `old` (the one just checked) by `new` and ends
    /// every session it has, at once: false, and nothing changed, when `old` is no longer
    /// its hash (another change came first).
    async fn change_password(
        &self,
        account: &AccountId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
    /// Replaces `account`'s password hash `old` by `new`, a hash of the same password made
    /// with today's parameters: its sessions stay. False, and nothing changed, when `old`
    /// is no longer its hash.
    async fn upgrade_password_hash(
        &self,
        account: &AccountId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
    /// Removes `account` from `project` when it is a member (not an owner): whether it was.
    /// The project's open invitations to its address are withdrawn with it.
    async fn remove_member(
        &self,
        project: &ProjectId,
        account: &AccountId,
    ) -> Result<bool, StoreError>;

    // --- Secret keys --------------------------------------------------------------------

    /// Creates a key made by `created_by` (as [`SecretKey::created_by`] says it); `None`,
    /// and nothing written, when the project has `max_active` unrevoked keys (counted after
    /// those created at once, one at a time). `once`, the answer of the dashboard form that
    /// asks for it, is recorded in the same transaction, and the key made is the one it
    /// names (`resource_id`): `None` too, and nothing written, when the project's key has a
    /// record within the key's lifetime (the same form, sent first), as for
    /// [`create_study`](StudyStore::create_study).
    #[allow(clippy::too_many_arguments)]
    async fn create_secret_key(
        &self,
        project: &ProjectId,
        name: &str,
        prefix: &str,
        key_hash: &str,
        created_by: &str,
        max_active: usize,
        once: Option<&IdempotencyRecord>,
    ) -> Result<Option<SecretKey>, StoreError>;
    /// All of the project's keys, revoked ones included, oldest first.
    async fn secret_keys(
        &self,
        project: &ProjectId,
        page: &PageRequest,
    ) -> Result<Page<SecretKey>, StoreError>;
    /// One of the project's keys, revoked or not; `None` when it has no such key.
    async fn secret_key(
        &self,
        project: &ProjectId,
        id: &SecretKeyId,
    ) -> Result<Option<SecretKey>, StoreError>;
    /// Revokes a key (idempotently); `None` when the project has no such key.
    async fn revoke_secret_key(
        &self,
        project: &ProjectId,
        id: &SecretKeyId,
    ) -> Result<Option<SecretKey>, StoreError>;
    /// The unrevoked key with this hash.
    async fn active_secret_key(&self, key_hash: &str) -> Result<Option<SecretKey>, StoreError>;
    /// Records that a key was used now.
    async fn touch_secret_key(&self, id: &SecretKeyId) -> Result<(), StoreError>;

    // --- Sessions -----------------------------------------------------------------------

    /// Starts a session for `account` while its password hash is still `password_hash` (the
    /// one just checked): false, and no session, when a password change came first. A
    /// change waits for it, and ends it.
    async fn create_session(
        &self,
        token_hash: &str,
        account: &AccountId,
        expires_at: DateTime<Utc>,
        password_hash: &str,
    ) -> Result<bool, StoreError>;
    /// The account of an unexpired session.
    async fn session_account(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Account>, StoreError>;
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Removes expired sessions; returns how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    // --- Invitations --------------------------------------------------------------------

    /// Creates an invitation, withdrawing the project's open one to the same email (a new
    /// link replaces the earlier one, which may have leaked); `None`, and nothing written,
    /// when the project has `max_open` open invitations to other addresses (counted after
    /// those created at once, one at a time).
    async fn create_invitation(
        &self,
        invitation: NewInvitation,
        max_open: usize,
    ) -> Result<Option<Invitation>, StoreError>;
    /// The project's invitations neither accepted nor expired, newest first (100 at most).
    async fn open_invitations(
        &self,
        project: &ProjectId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError>;
    /// Withdraws an invitation not yet accepted: its link stops working. Whether there was.
    async fn withdraw_invitation(&self, project: &ProjectId, id: &str) -> Result<bool, StoreError>;
    /// An invitation that is neither accepted nor expired.
    async fn open_invitation(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Invitation>, StoreError>;
    /// Atomically accepts an open invitation by creating the invitee's account (with the
    /// invitation's email) and making it a member. `None` when the invitation is not open;
    /// `Conflict("account")` when the email got an account meanwhile.
    async fn accept_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Account>, StoreError>;
    /// Atomically accepts an open invitation for the existing `account` whose email it was
    /// sent to, making it a member (a member already stays one). `None` when the invitation
    /// is not open or is for another email.
    async fn join_by_invitation(
        &self,
        token_hash: &str,
        account: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<Option<ProjectId>, StoreError>;
}

/// A project's Mixpanel connection, pending connect attempts, the connected project's
/// cohorts and the event catalog. Every method is scoped by `ProjectId`.
#[async_trait]
pub trait MixpanelStore: Send + Sync {
    /// Creates the project's connection, or replaces one to the same Mixpanel project (new
    /// credentials); false, writing nothing, when it is connected to another Mixpanel
    /// project (moving takes a disconnect first). What was read through the connection it
    /// replaces (cohorts, the catalog's Mixpanel event names) goes with it.
    async fn save_mixpanel_connection(
        &self,
        connection: &MixpanelConnection,
        secret_ciphertext: &str,
    ) -> Result<bool, StoreError>;
    async fn mixpanel_connection(
        &self,
        project: &ProjectId,
    ) -> Result<Option<StoredConnection>, StoreError>;
    /// Every project's connection (for the background check).
    async fn mixpanel_connections(&self) -> Result<Vec<StoredConnection>, StoreError>;
    /// Records a check's result on the connection made at `connected_at`; `verified_at` is
    /// set when Mixpanel answered. False when the project has no connection, or one made
    /// since (a check that took a while must not mark new credentials rejected).
    async fn set_mixpanel_connection_status(
        &self,
        project: &ProjectId,
        connected_at: DateTime<Utc>,
        status: ConnectionStatus,
        detail: Option<&str>,
        verified_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError>;
    /// Removes the connection, its cohorts, the catalog's Mixpanel event names and pending
    /// attempts; false when there was none.
    async fn delete_mixpanel_connection(&self, project: &ProjectId) -> Result<bool, StoreError>;

    async fn save_connect_attempt(
        &self,
        token_hash: &str,
        attempt: &ConnectAttempt,
    ) -> Result<(), StoreError>;
    /// An unexpired attempt of this project.
    async fn connect_attempt(
        &self,
        project: &ProjectId,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ConnectAttempt>, StoreError>;
    /// Uses up an unexpired attempt of this project: `false` when there is none (expired,
    /// or taken by a request made at the same time).
    async fn take_connect_attempt(
        &self,
        project: &ProjectId,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn delete_connect_attempts(&self, project: &ProjectId) -> Result<(), StoreError>;

    /// Replaces the stored list of the connected project's cohorts, read through the
    /// connection made at `connected_at`. False, and nothing written, when that connection
    /// was removed or replaced since (a read that took a while must not bring back what a
    /// disconnect forgot, nor give a new connection the old project's cohorts). Nothing
    /// changes when a list read later than `read_at` is stored already (two refreshes at once
    /// may finish out of order).
    async fn replace_mixpanel_cohorts(
        &self,
        project: &ProjectId,
        connected_at: DateTime<Utc>,
        read_at: DateTime<Utc>,
        cohorts: &[MixpanelCohort],
    ) -> Result<bool, StoreError>;
    async fn mixpanel_cohorts(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<MixpanelCohort>, StoreError>;

    /// Replaces the event names read through the connection made at `connected_at`: those
    /// listed are seen in Mixpanel at `seen_at` (added to the catalog), those read before and
    /// not listed are no longer (and leave unless the app sent them). Nothing changes when a
    /// read later than `seen_at` is stored already (inferred from the names it marked: after
    /// a read that listed none, an older one still lands). False, and nothing written, as
    /// for [`Self::replace_mixpanel_cohorts`].
    async fn record_mixpanel_event_names(
        &self,
        project: &ProjectId,
        connected_at: DateTime<Utc>,
        names: &[String],
        seen_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Adds counted app events to the catalog: each `(project, name)` seen `count` times
    /// between `first` and `last`. A name new to a project that has
    /// [`MAX_APP_EVENT_NAMES`] names already is not added.
    async fn record_app_events(&self, events: &[AppEventCount]) -> Result<(), StoreError>;
    /// Forgets, in every project, the app's sightings of names it last sent before `before`:
    /// a name only the app sent leaves the catalog, one Mixpanel lists too stays as seen in
    /// Mixpanel. How many names were forgotten.
    async fn forget_old_app_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// The project's event catalog, by name.
    async fn event_catalog(&self, project: &ProjectId) -> Result<Vec<CatalogEvent>, StoreError>;
}

/// Cohort sync: the webhook configuration, audiences and their members, staged pages of
/// unfinished full syncs, and the ledger. Every method is scoped by project or by an
/// audience the caller has already resolved within its project.
#[async_trait]
pub trait CohortSyncStore: Send + Sync {
    /// Creates the project's configuration; `false` (nothing written) when it has one.
    async fn create_cohort_sync_config(
        &self,
        config: &CohortSyncConfig,
    ) -> Result<bool, StoreError>;
    /// Replaces the secret of the project's configuration; its webhook id, or `None` when
    /// the project has none (nothing written).
    async fn rotate_cohort_sync_secret(
        &self,
        project: &ProjectId,
        secret_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;
    async fn cohort_sync_config(
        &self,
        project: &ProjectId,
    ) -> Result<Option<CohortSyncConfig>, StoreError>;
    /// Everything a delivery to the webhook is checked against, in one read.
    async fn webhook_receiver(
        &self,
        webhook_id: &str,
    ) -> Result<Option<WebhookReceiver>, StoreError>;
    /// Turns the project's cohort sync off (its webhook and secret stay); `false` when the
    /// project has none.
    async fn disable_cohort_sync(&self, project: &ProjectId) -> Result<bool, StoreError>;
    /// Turns the project's cohort sync back on: its webhook id, or `None` when it has none
    /// or it is on (nothing written).
    async fn enable_cohort_sync(&self, project: &ProjectId) -> Result<Option<String>, StoreError>;

    /// Trait keys kept from synced members (JSON array in the project row).
    async fn trait_allowlist(&self, project: &ProjectId) -> Result<Vec<String>, StoreError>;
    /// Saves the settings `change` names, all or none (one transaction). When its allowlist
    /// no longer names a key the project's named, marks the project's trait erase due since
    /// `at` (those keys may be stored until an erase completes) and answers `Some(true)`;
    /// `Some(false)` when it names every key it named (an erase due before stays due) or
    /// leaves the allowlist; `None` for an unknown project.
    async fn change_settings(
        &self,
        project: &ProjectId,
        change: &SettingsChange<'_>,
        at: DateTime<Utc>,
    ) -> Result<Option<bool>, StoreError>;
    /// Saves the allowlist alone ([`change_settings`](Self::change_settings)): `true` when
    /// it dropped a key, so that an erase is due.
    async fn set_trait_allowlist(
        &self,
        project: &ProjectId,
        keys: &[String],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let change = SettingsChange {
            trait_allowlist: Some(keys),
            contact_limit_days: None,
        };
        Ok(self.change_settings(project, &change, at).await? == Some(true))
    }
    /// Since when the project's trait erase is due (the last save of its allowlist whose
    /// erase has not completed), or `None`.
    async fn trait_erase_due(
        &self,
        project: &ProjectId,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// The projects whose trait erase is due (a server stopped mid-erase).
    async fn trait_erases_due(&self) -> Result<Vec<ProjectId>, StoreError>;
    /// Marks the erase due since `due` done; `false` (nothing written) when a save since
    /// made another due.
    async fn trait_erase_done(
        &self,
        project: &ProjectId,
        due: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Erases, from the stored traits of `audience`'s members (current and past), the keys
    /// project `project`'s allowlist does not name: the next `limit` members with traits
    /// after provider member id `after`, read without holding the writer and rewritten in
    /// one short write that reads the allowlist itself (a key put back meanwhile is kept; a
    /// member a sync wrote since keeps what it wrote). Answers the last member read, `None`
    /// once none is left. Nothing is read of an audience of another project.
    async fn erase_member_traits(
        &self,
        project: &ProjectId,
        audience: &AudienceId,
        after: Option<String>,
        limit: i64,
    ) -> Result<Option<String>, StoreError>;
    /// [`erase_member_traits`](Self::erase_member_traits) for the members an unfinished
    /// full sync of `audience` staged (copied into the audience when it applies), after
    /// (session id, provider member id) `after`.
    async fn erase_staged_traits(
        &self,
        project: &ProjectId,
        audience: &AudienceId,
        after: Option<(String, String)>,
        limit: i64,
    ) -> Result<Option<(String, String)>, StoreError>;
    /// [`erase_member_traits`](Self::erase_member_traits) for the attribution records of
    /// project `project`'s invites: those of the next `users` app users after reference id
    /// `after` (a range of the invites' user index). Answers the last user read.
    async fn erase_invite_traits(
        &self,
        project: &ProjectId,
        after: Option<String>,
        users: i64,
    ) -> Result<Option<String>, StoreError>;
    /// The audience of a cohort, created on first delivery; name and description follow
    /// the cohort. Records the delivery time on the audience and the configuration.
    async fn upsert_audience(
        &self,
        project: &ProjectId,
        mixpanel_cohort_id: &str,
        name: &str,
        description: &str,
        at: DateTime<Utc>,
    ) -> Result<Audience, StoreError>;
    async fn audiences(
        &self,
        project: &ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Audience>, StoreError>;
    async fn audience(
        &self,
        project: &ProjectId,
        id: &AudienceId,
    ) -> Result<Option<Audience>, StoreError>;

    /// `add_members`: members enter (or stay, with fresh traits). Idempotent.
    async fn add_audience_members(
        &self,
        audience: &AudienceId,
        members: &[SyncedMember],
        at: DateTime<Utc>,
    ) -> Result<MembershipChange, StoreError>;
    /// `remove_members`: members exit (kept with `exited_at`). Idempotent.
    async fn remove_audience_members(
        &self,
        audience: &AudienceId,
        provider_member_ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<MembershipChange, StoreError>;

    /// Receives a diff in one transaction: upserts the cohort's audience (as
    /// [`CohortSyncStore::upsert_audience`]), lets `members` enter (as
    /// [`CohortSyncStore::add_audience_members`]) or, when `leaving`, exit (as
    /// [`CohortSyncStore::remove_audience_members`]), and records `entry` in the ledger with
    /// the change. Nothing of it stays when a part fails. Returns the entry as recorded.
    async fn receive_sync_diff(
        &self,
        project: &ProjectId,
        cohort: &SyncCohort<'_>,
        members: &[SyncedMember],
        leaving: bool,
        entry: LedgerEntry,
    ) -> Result<LedgerEntry, StoreError>;

    /// Receives one page of a full-sync session in one transaction: upserts the cohort's
    /// audience (as [`CohortSyncStore::upsert_audience`]), stages the page (dropping
    /// other sessions' unfinished pages of the audience: the newer session supersedes them),
    /// applies the session when this page completes it (members absent from it exit), and
    /// records `entry` (received at `entry.received_at`) in the ledger with the outcome and
    /// the change. A page already staged, or of the session already applied, is a
    /// duplicate. Returns the entry as recorded (with the audience's id).
    async fn receive_sync_page(
        &self,
        project: &ProjectId,
        cohort: &SyncCohort<'_>,
        page: &SyncPage<'_>,
        entry: LedgerEntry,
    ) -> Result<LedgerEntry, StoreError>;
    async fn staged_session(
        &self,
        audience: &AudienceId,
    ) -> Result<Option<StagedSession>, StoreError>;
    /// Drops staged pages received before `before`; returns how many.
    async fn delete_stale_staging(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Deletes ledger entries received before `before` (in batches); returns how many.
    async fn delete_old_ledger_entries(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Deletes the project's audience with its members, unfinished full syncs and sync
    /// history, unless a rule that is not archived targets it. Once begun no new rule may
    /// target it, and it is finished (by [`Self::finish_audience_deletions`] if this one
    /// stops); its members and history go a batch per transaction, so a big audience holds
    /// no writer for long. Another delete of it meanwhile finishes it too.
    async fn delete_audience(
        &self,
        project: &ProjectId,
        audience: &AudienceId,
    ) -> Result<AudienceDeletion, StoreError>;
    /// Finishes the deletions of audiences that a stopped process began; returns how many.
    async fn finish_audience_deletions(&self) -> Result<u64, StoreError>;

    /// Current members (with `include_exited`, past ones too), ordered by provider member id
    /// (the page cursor).
    async fn audience_members(
        &self,
        audience: &AudienceId,
        include_exited: bool,
        page: &PageRequest,
    ) -> Result<Page<AudienceMember>, StoreError>;
    /// The user's current memberships across the project's audiences: `(audience id,
    /// provider member id)` for each audience with a current member whose match key is
    /// `match_key`.
    async fn audience_memberships(
        &self,
        project: &ProjectId,
        match_key: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// One member of the audience by their provider id (current or past).
    async fn audience_member(
        &self,
        audience: &AudienceId,
        provider_member_id: &str,
    ) -> Result<Option<AudienceMember>, StoreError>;
    /// A page of the members whose provider id or match key equals `id`, by provider id, as
    /// [`Self::audience_members`] pages.
    async fn find_audience_members(
        &self,
        audience: &AudienceId,
        id: &str,
        include_exited: bool,
        page: &PageRequest,
    ) -> Result<Page<AudienceMember>, StoreError>;

    /// Writes a delivery's ledger entry. One that names no audience is tied to the audience
    /// of `mixpanel_cohort_id` when the project has one: a refused delivery then shows in
    /// that audience's history, and turns its sync state to `failing`.
    async fn record_sync(
        &self,
        project: &ProjectId,
        entry: &LedgerEntry,
        mixpanel_cohort_id: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Deliveries, newest first; only the audience's when given.
    async fn sync_ledger(
        &self,
        project: &ProjectId,
        audience: Option<&AudienceId>,
        page: &PageRequest,
    ) -> Result<Page<LedgerEntry>, StoreError>;
    /// The project's latest `limit` refused deliveries, newest first.
    async fn refused_deliveries(
        &self,
        project: &ProjectId,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError>;
}

/// A change to a project's settings ([`CohortSyncStore::change_settings`]): `None` leaves
/// a setting as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct SettingsChange<'a> {
    /// The trait allowlist, replaced whole.
    pub trait_allowlist: Option<&'a [String]>,
    /// The contact limit in days; `Some(None)` turns it off.
    pub contact_limit_days: Option<Option<i64>>,
}

/// What [`CohortSyncStore::delete_audience`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceDeletion {
    Deleted,
    /// The project has no such audience.
    NotFound,
    /// Kept: this many rules that are not archived target it.
    InUse(i64),
}

/// A webhook's configuration and what its deliveries are checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReceiver {
    pub config: CohortSyncConfig,
    /// The project's trait allowlist.
    pub trait_allowlist: Vec<String>,
    /// The Mixpanel project the project is connected to (id, name), if still connected.
    pub connected_project: Option<(String, String)>,
}

/// The Mixpanel cohort a delivery is for, as it names it.
#[derive(Debug, Clone, Copy)]
pub struct SyncCohort<'a> {
    /// The Mixpanel project the delivery came from; an audience of another one's cohort of
    /// the same id refuses it ([`StoreError::CohortOfAnotherProject`]). None (fixtures)
    /// takes the audience's.
    pub mixpanel_project_id: Option<&'a str>,
    pub mixpanel_cohort_id: &'a str,
    /// Empty keeps the audience's name.
    pub name: &'a str,
    /// None keeps the audience's description.
    pub description: Option<&'a str>,
    /// The hash of the webhook secret the delivery was accepted with: it is applied only
    /// while cohort sync is on with that secret and the project connected to
    /// `mixpanel_project_id`, as checked in its transaction ([`StoreError::Gone`]
    /// `"cohort sync settings"` otherwise; a delivery that waited for the writer was applied
    /// after a Disable, a Disconnect or a Regenerate secret had answered). None (fixtures)
    /// checks nothing.
    pub accepted_with: Option<&'a str>,
}

/// One page of a full-sync (`members`) session.
#[derive(Debug, Clone, Copy)]
pub struct SyncPage<'a> {
    pub session_id: &'a str,
    /// 1-based.
    pub page: i64,
    pub total_pages: i64,
    pub members: &'a [SyncedMember],
}

/// Studies and their launch rules, scoped by project.
#[async_trait]
pub trait StudyStore: Send + Sync {
    /// `Conflict("study code")` in the unlikely case the public code is taken. `once`, the
    /// answer of a create sent with an idempotency key, is recorded in the same
    /// transaction: `false`, and nothing written, when the project's key has a record made
    /// within the key's lifetime before `once`'s (a request with it came first); an older
    /// record of the key is replaced
    /// ([`KEY_LIFETIME`](uj_domain::idempotency::KEY_LIFETIME)).
    async fn create_study(
        &self,
        study: &Study,
        once: Option<&IdempotencyRecord>,
    ) -> Result<bool, StoreError>;
    /// Writes the study if it is as read (its stored `updated_at` is `read_at`); one that is
    /// no longer active withdraws its rules' open invites in the same transaction (expired
    /// ones stay expired). `false`
    /// (nothing written) when it changed meanwhile or is not the project's.
    async fn update_study(&self, study: &Study, read_at: DateTime<Utc>)
        -> Result<bool, StoreError>;
    async fn study(&self, project: &ProjectId, id: &StudyId) -> Result<Option<Study>, StoreError>;
    async fn studies(
        &self,
        project: &ProjectId,
        page: &PageRequest,
    ) -> Result<Page<Study>, StoreError>;

    /// `once` as for [`create_study`](Self::create_study).
    async fn create_launch_rule(
        &self,
        rule: &LaunchRule,
        once: Option<&IdempotencyRecord>,
    ) -> Result<bool, StoreError>;
    /// The project's record of `key` made within the key's lifetime before `now`
    /// ([`KEY_LIFETIME`](uj_domain::idempotency::KEY_LIFETIME)).
    async fn idempotency_record(
        &self,
        project: &ProjectId,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// The record of `key` made within the key's lifetime before `now` in any project
    /// `account` belongs to: a dashboard form's key is made at random for one page, so it
    /// names one record at most (the New project form's, kept in the project it made).
    async fn account_idempotency_record(
        &self,
        account: &AccountId,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Drops idempotency records made at or before `before`, of every project; how many.
    async fn delete_stale_idempotency_records(
        &self,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Writes the rule if it is as read (its stored `updated_at` is `read_at`); one that is
    /// no longer active withdraws its open invites in the same transaction (expired ones
    /// stay expired): how many it withdrew. `None` (nothing written) when it changed
    /// meanwhile or is not the project's.
    async fn update_launch_rule(
        &self,
        rule: &LaunchRule,
        read_at: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError>;
    async fn launch_rule(
        &self,
        project: &ProjectId,
        id: &LaunchRuleId,
    ) -> Result<Option<LaunchRule>, StoreError>;
    /// A page of a study's rules, oldest first (by id).
    async fn launch_rules_of_study(
        &self,
        project: &ProjectId,
        study: &StudyId,
        page: &PageRequest,
    ) -> Result<Page<LaunchRule>, StoreError>;
    /// Every rule of the project that is not archived, oldest first (for the engine).
    async fn live_launch_rules(&self, project: &ProjectId) -> Result<Vec<LaunchRule>, StoreError>;
    /// How many of the project's rules are not archived.
    async fn live_launch_rule_count(&self, project: &ProjectId) -> Result<i64, StoreError>;
    /// How many of the project's studies are not archived.
    async fn live_study_count(&self, project: &ProjectId) -> Result<i64, StoreError>;
    /// The starts the engine counts for the project's live rules (those
    /// [`live_launch_rules`](Self::live_launch_rules) reads), in two statements however many
    /// rules and studies there are.
    async fn live_starts(
        &self,
        project: &ProjectId,
        week: DateTime<Utc>,
        month: DateTime<Utc>,
    ) -> Result<LiveStarts, StoreError>;

    /// When the project's app first called the SDK API.
    async fn sdk_contacted_at(
        &self,
        project: &ProjectId,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Records the first SDK call (later calls change nothing).
    async fn mark_sdk_contact(
        &self,
        project: &ProjectId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The project contact limit in days (`None` = off).
    async fn contact_limit_days(&self, project: &ProjectId) -> Result<Option<i64>, StoreError>;
}

/// The starts of a project's live rules and of their studies ([`StudyStore::live_starts`]).
#[derive(Debug, Default)]
pub struct LiveStarts {
    /// Each live rule's starts, by rule id.
    pub rules: std::collections::HashMap<String, i64>,
    /// The studies of the live rules, each with its accepted invites since the week's
    /// start and since the month's.
    pub studies: Vec<(Study, i64, i64)>,
}

/// A user's invites, newest first, and what was read of their memberships with them
/// ([`InviteStore::user_history`]).
pub type UserHistory = (Vec<Invite>, MembershipsRead);

/// Which of a user's memberships [`InviteStore::user_history`] reads with their invites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithMemberships {
    No,
    All,
    /// All, unless the user has an invite pending at this moment from an audience: then
    /// only whether they are still in that audience (the store may read all anyway).
    UnlessPending(DateTime<Utc>),
}

/// What [`InviteStore::user_history`] read of a user's memberships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipsRead {
    NotRead,
    /// Every current membership, `(audience id, provider member id)`.
    All(Vec<(String, String)>),
    /// Whether the user is still in `audience`, their pending invite's; the rest unread.
    /// (A user in twenty audiences with an invite open, loading their config again, needs
    /// only this: twenty rows, each joined to its audience, were half the read's cost.)
    OfPendingInvite {
        audience: String,
        member: bool,
    },
}

/// Invites and the starts they reserve, scoped by project.
#[async_trait]
pub trait InviteStore: Send + Sync {
    /// A page of all the user's invites, newest first (by issue time, then code); a page
    /// after a code that is not one of them is empty.
    async fn user_invites_page(
        &self,
        project: &ProjectId,
        reference_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Invite>, StoreError>;
    /// A page of a rule's invites (its attribution records), newest first (by code, which
    /// sorts by issue time); a rule of another project has none.
    async fn rule_invites_page(
        &self,
        project: &ProjectId,
        rule: &LaunchRuleId,
        page: &PageRequest,
    ) -> Result<Page<Invite>, StoreError>;
    /// The user's invites, newest first (their history for the pacing engine), and the
    /// current memberships by `reference_id` that `with_memberships` asks for, as
    /// [`audience_memberships`](crate::CohortSyncStore::audience_memberships) gives them,
    /// read at the same moment (one round trip on PostgreSQL, one read transaction on
    /// SQLite).
    async fn user_history(
        &self,
        project: &ProjectId,
        reference_id: &str,
        with_memberships: WithMemberships,
    ) -> Result<UserHistory, StoreError>;
    /// Accepted invites of a study since `since`.
    async fn study_starts_since(
        &self,
        study: &StudyId,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError>;
    /// Accepted invites of a rule.
    async fn rule_starts(&self, rule: &LaunchRuleId) -> Result<i64, StoreError>;
    /// Issues an invite unless the user already has an issued one (expired ones are
    /// marked expired first); returns the user's pending invite either way.
    async fn issue_invite(&self, invite: &Invite, now: DateTime<Utc>)
        -> Result<Invite, StoreError>;
    /// Issues many invites in one statement, for users without an issued invite: for each,
    /// the stored invite, or `None` when its user already has one issued (then
    /// [`issue_invite`](Self::issue_invite) settles it). Group commit for busy SDK traffic.
    async fn issue_new_invites(
        &self,
        invites: &[Invite],
    ) -> Result<Vec<Option<Invite>>, StoreError>;
    async fn invite(&self, project: &ProjectId, code: &str) -> Result<Option<Invite>, StoreError>;
    /// An invite by its respondent code alone (browser routes carry no key).
    async fn invite_by_code(&self, code: &str) -> Result<Option<Invite>, StoreError>;
    /// A study by its public code (browser routes).
    async fn study_by_public_code(&self, code: &str) -> Result<Option<Study>, StoreError>;
    /// Accepts atomically: reserves one of the rule's starts, never more than its cap, nor
    /// past its study's weekly and monthly limits, nor a second start of the study for the
    /// user, nor while its rule or study is not active or the rule's schedule window does
    /// not hold `now` (`Refused` with the reason; the invite is then withdrawn).
    async fn accept_invite(
        &self,
        project: &ProjectId,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AcceptOutcome>, StoreError>;
    /// Records an invite accepted at once (a resolved direct link): reserves one of the
    /// rule's starts like [`accept_invite`](Self::accept_invite) and stores the invite as
    /// accepted (`Accepted`), or stores nothing (`Refused`: the rule's cap, the study's
    /// limits, the user's start of the study made meanwhile, the rule or study stopped or
    /// the schedule moved since the decision's snapshot was read, or the rule is no longer
    /// a direct link: `NotTriggered`).
    async fn start_invite(
        &self,
        invite: &Invite,
        now: DateTime<Utc>,
    ) -> Result<AcceptOutcome, StoreError>;
    /// Dismisses an open invite (issued, not expired at `now`; any other is left as it is);
    /// `None` when the project has no such invite.
    async fn dismiss_invite(
        &self,
        project: &ProjectId,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Invite>, StoreError>;
    /// Withdraws an open invite of the project (one that can no longer start); `false` when
    /// there is no such invite or it is no longer open at `now` (answered, or expired: it
    /// stays expired in the rule's stats).
    async fn withdraw_invite(
        &self,
        project: &ProjectId,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Adds counted pacing decisions: `(rule id, reason code, count)`. Rules deleted
    /// meanwhile are skipped.
    async fn add_suppressions(&self, counts: &[(String, String, i64)]) -> Result<(), StoreError>;
    /// A rule's invites per state (an open invite past its expiry counts as expired) and
    /// its suppression counters.
    async fn rule_stats(
        &self,
        rule: &LaunchRuleId,
        now: DateTime<Utc>,
    ) -> Result<RuleStats, StoreError>;
}

/// The most sessions an account keeps: signing in again past it ends the oldest.
pub const MAX_SESSIONS_PER_ACCOUNT: i64 = 50;

/// The most event names a project's catalog takes from its app (the SDK's public key sends
/// them; without a bound anyone holding it could grow the catalog without end).
pub const MAX_APP_EVENT_NAMES: usize = 1000;

/// App events counted in memory, added to the catalog in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEventCount {
    pub project: ProjectId,
    pub name: String,
    pub count: i64,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// What a launch rule has done: its invites per state and how often each reason stopped it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Every invite the rule issued, in any state now.
    pub issued: i64,
    /// Issued and still open.
    pub pending: i64,
    pub accepted: i64,
    pub dismissed: i64,
    pub expired: i64,
    pub withdrawn: i64,
    /// `(reason code, count)`, by reason.
    pub suppressions: Vec<(String, i64)>,
}

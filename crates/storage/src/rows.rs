//! Rows as the databases return them, and their conversion into domain records.

use uj_domain::accounts::{Account, Role};
use uj_domain::audiences::{
    Audience, AudienceMember, CohortSyncConfig, LedgerEntry, LedgerOutcome,
};
use uj_domain::idempotency::IdempotencyRecord;
use uj_domain::ids::{
    AccountId, AudienceId, InvitationId, LaunchRuleId, LedgerEntryId, ProjectId, SecretKeyId,
    StudyId,
};
use uj_domain::invites::{Invite, InviteState};
use uj_domain::mixpanel::{
    CatalogEvent, ConnectAttempt, ConnectionStatus, MixpanelCohort, MixpanelConnection,
    StoredConnection,
};
use uj_domain::pacing::{RuleStatus, StudyStatus, Trigger};
use uj_domain::projects::{Invitation, Member, Membership, Project, SecretKey};
use uj_domain::studies::{LaunchMode, LaunchRule, PromptCopy, Study, Surface};

use crate::time::Ts;
use crate::StoreError;

fn role(raw: &str) -> Result<Role, StoreError> {
    Role::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("unknown role {raw:?}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: String,
    email: String,
    password_hash: String,
    created_at: Ts,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Account {
            id: AccountId::from_string(row.id),
            email: row.email,
            password_hash: row.password_hash,
            created_at: row.created_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    id: String,
    name: String,
    public_key: String,
    created_at: Ts,
}

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Project {
            id: ProjectId::from_string(row.id),
            name: row.name,
            public_key: row.public_key,
            created_at: row.created_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MembershipRow {
    #[sqlx(flatten)]
    project: ProjectRow,
    role: String,
}

impl TryFrom<MembershipRow> for Membership {
    type Error = StoreError;
    fn try_from(row: MembershipRow) -> Result<Self, StoreError> {
        Ok(Membership {
            role: role(&row.role)?,
            project: row.project.into(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MemberRow {
    account_id: String,
    email: String,
    role: String,
    joined_at: Ts,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(row: MemberRow) -> Result<Self, StoreError> {
        Ok(Member {
            account_id: AccountId::from_string(row.account_id),
            email: row.email,
            role: role(&row.role)?,
            joined_at: row.joined_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RoleRow {
    pub role: String,
}

impl TryFrom<RoleRow> for Role {
    type Error = StoreError;
    fn try_from(row: RoleRow) -> Result<Self, StoreError> {
        role(&row.role)
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SecretKeyRow {
    id: String,
    project_id: String,
    name: String,
    prefix: String,
    created_at: Ts,
    last_used_at: Option<Ts>,
    revoked_at: Option<Ts>,
    created_by: Option<String>,
}

impl From<SecretKeyRow> for SecretKey {
    fn from(row: SecretKeyRow) -> Self {
        SecretKey {
            id: SecretKeyId::from_string(row.id),
            project_id: ProjectId::from_string(row.project_id),
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at.0,
            last_used_at: row.last_used_at.map(|t| t.0),
            revoked_at: row.revoked_at.map(|t| t.0),
            created_by: row.created_by,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InvitationRow {
    id: String,
    project_id: String,
    email: String,
    invited_by: String,
    created_at: Ts,
    expires_at: Ts,
    accepted_at: Option<Ts>,
}

impl From<InvitationRow> for Invitation {
    fn from(row: InvitationRow) -> Self {
        Invitation {
            id: InvitationId::from_string(row.id),
            project_id: ProjectId::from_string(row.project_id),
            email: row.email,
            invited_by: AccountId::from_string(row.invited_by),
            created_at: row.created_at.0,
            expires_at: row.expires_at.0,
            accepted_at: row.accepted_at.map(|t| t.0),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectionRow {
    project_id: String,
    username: String,
    secret_ciphertext: String,
    mixpanel_project_id: String,
    mixpanel_project_name: String,
    organization_name: String,
    region: String,
    timezone: String,
    workspace_id: Option<String>,
    status: String,
    status_detail: Option<String>,
    connected_at: Ts,
    last_verified_at: Ts,
}

/// The columns [`ConnectionRow`] reads, named: see `invite_columns!`.
macro_rules! connection_columns {
    () => {
        "project_id, username, secret_ciphertext, mixpanel_project_id, \
         mixpanel_project_name, organization_name, region, timezone, workspace_id, \
         status, status_detail, connected_at, last_verified_at"
    };
}
pub(crate) use connection_columns;

impl TryFrom<ConnectionRow> for StoredConnection {
    type Error = StoreError;
    fn try_from(row: ConnectionRow) -> Result<Self, StoreError> {
        let status = ConnectionStatus::parse(&row.status).ok_or_else(|| {
            StoreError::Corrupt(format!("unknown connection status {:?}", row.status))
        })?;
        Ok(StoredConnection {
            secret_ciphertext: row.secret_ciphertext,
            connection: MixpanelConnection {
                project_id: ProjectId::from_string(row.project_id),
                username: row.username,
                mixpanel_project_id: row.mixpanel_project_id,
                mixpanel_project_name: row.mixpanel_project_name,
                organization: row.organization_name,
                region: row.region,
                timezone: row.timezone,
                workspace_id: row.workspace_id,
                status,
                status_detail: row.status_detail,
                connected_at: row.connected_at.0,
                last_verified_at: row.last_verified_at.0,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectAttemptRow {
    project_id: String,
    username: String,
    secret_ciphertext: String,
    candidates: String,
    expires_at: Ts,
}

impl From<ConnectAttemptRow> for ConnectAttempt {
    fn from(row: ConnectAttemptRow) -> Self {
        ConnectAttempt {
            project_id: ProjectId::from_string(row.project_id),
            username: row.username,
            secret_ciphertext: row.secret_ciphertext,
            candidates: row.candidates,
            expires_at: row.expires_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CohortRow {
    cohort_id: String,
    name: String,
    description: String,
    member_count: i64,
    is_visible: bool,
    fetched_at: Ts,
}

impl From<CohortRow> for MixpanelCohort {
    fn from(row: CohortRow) -> Self {
        MixpanelCohort {
            cohort_id: row.cohort_id,
            name: row.name,
            description: row.description,
            member_count: row.member_count,
            is_visible: row.is_visible,
            fetched_at: row.fetched_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CatalogRow {
    name: String,
    seen_in_mixpanel_at: Option<Ts>,
    app_count: i64,
    app_first_seen_at: Option<Ts>,
    app_last_seen_at: Option<Ts>,
}

impl From<CatalogRow> for CatalogEvent {
    fn from(row: CatalogRow) -> Self {
        CatalogEvent {
            name: row.name,
            seen_in_mixpanel_at: row.seen_in_mixpanel_at.map(|t| t.0),
            app_count: row.app_count,
            app_first_seen_at: row.app_first_seen_at.map(|t| t.0),
            app_last_seen_at: row.app_last_seen_at.map(|t| t.0),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SyncConfigRow {
    project_id: String,
    webhook_id: String,
    username: String,
    secret_hash: String,
    created_at: Ts,
    secret_rotated_at: Ts,
    last_delivery_at: Option<Ts>,
    enabled: bool,
}

impl From<SyncConfigRow> for CohortSyncConfig {
    fn from(row: SyncConfigRow) -> Self {
        CohortSyncConfig {
            project_id: ProjectId::from_string(row.project_id),
            webhook_id: row.webhook_id,
            username: row.username,
            secret_hash: row.secret_hash,
            created_at: row.created_at.0,
            secret_rotated_at: row.secret_rotated_at.0,
            last_delivery_at: row.last_delivery_at.map(|t| t.0),
            enabled: row.enabled,
        }
    }
}

/// A webhook's configuration with its project's allowlist and connection.
#[derive(sqlx::FromRow)]
pub(crate) struct WebhookReceiverRow {
    #[sqlx(flatten)]
    config: SyncConfigRow,
    trait_allowlist: String,
    mixpanel_project_id: Option<String>,
    mixpanel_project_name: Option<String>,
}

impl TryFrom<WebhookReceiverRow> for crate::WebhookReceiver {
    type Error = StoreError;

    fn try_from(row: WebhookReceiverRow) -> Result<Self, StoreError> {
        Ok(crate::WebhookReceiver {
            config: row.config.into(),
            trait_allowlist: trait_allowlist(&row.trait_allowlist)?,
            connected_project: row.mixpanel_project_id.zip(row.mixpanel_project_name),
        })
    }
}

/// A project's trait allowlist as stored (a JSON array).
pub(crate) fn trait_allowlist(raw: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("trait allowlist: {e}")))
}

/// An audience and the full-sync session last applied to it.
#[derive(sqlx::FromRow)]
pub(crate) struct AudienceSessionRow {
    #[sqlx(flatten)]
    pub(crate) audience: AudienceRow,
    pub(crate) last_session_id: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AudienceRow {
    pub(crate) id: String,
    project_id: String,
    mixpanel_cohort_id: String,
    mixpanel_project_id: Option<String>,
    name: String,
    description: String,
    member_count: i64,
    created_at: Ts,
    last_delivery_at: Option<Ts>,
    last_synced_at: Option<Ts>,
}

/// The columns [`AudienceRow`] reads, named: see `invite_columns!`.
macro_rules! audience_columns {
    () => {
        "id, project_id, mixpanel_cohort_id, mixpanel_project_id, name, description, \
         member_count, created_at, last_delivery_at, last_synced_at"
    };
}
pub(crate) use audience_columns;

impl From<AudienceRow> for Audience {
    fn from(row: AudienceRow) -> Self {
        Audience {
            id: AudienceId::from_string(row.id),
            project_id: ProjectId::from_string(row.project_id),
            mixpanel_cohort_id: row.mixpanel_cohort_id,
            mixpanel_project_id: row.mixpanel_project_id,
            name: row.name,
            description: row.description,
            member_count: row.member_count,
            created_at: row.created_at.0,
            last_delivery_at: row.last_delivery_at.map(|t| t.0),
            last_synced_at: row.last_synced_at.map(|t| t.0),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AudienceMemberRow {
    pub(crate) provider_member_id: String,
    pub(crate) reference_id: Option<String>,
    pub(crate) traits: String,
    pub(crate) entered_at: Ts,
    pub(crate) exited_at: Option<Ts>,
}

impl TryFrom<AudienceMemberRow> for AudienceMember {
    type Error = StoreError;
    fn try_from(row: AudienceMemberRow) -> Result<Self, StoreError> {
        let traits = serde_json::from_str(&row.traits)
            .map_err(|e| StoreError::Corrupt(format!("member traits: {e}")))?;
        Ok(AudienceMember {
            provider_member_id: row.provider_member_id,
            reference_id: row.reference_id,
            traits,
            entered_at: row.entered_at.0,
            exited_at: row.exited_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LedgerRow {
    id: String,
    audience_id: Option<String>,
    action: String,
    session_id: Option<String>,
    page: Option<i64>,
    total_pages: Option<i64>,
    members: i64,
    added: i64,
    removed: i64,
    outcome: String,
    error: Option<String>,
    received_at: Ts,
    mixpanel_cohort_id: Option<String>,
    mixpanel_cohort_name: Option<String>,
}

impl TryFrom<LedgerRow> for LedgerEntry {
    type Error = StoreError;
    fn try_from(row: LedgerRow) -> Result<Self, StoreError> {
        let outcome = LedgerOutcome::parse(&row.outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("ledger outcome {:?}", row.outcome)))?;
        Ok(LedgerEntry {
            id: LedgerEntryId::from_string(row.id),
            audience_id: row.audience_id.map(AudienceId::from_string),
            action: row.action,
            session_id: row.session_id,
            page: row.page,
            total_pages: row.total_pages,
            members: row.members,
            added: row.added,
            removed: row.removed,
            outcome,
            error: row.error,
            received_at: row.received_at.0,
            mixpanel_cohort_id: row.mixpanel_cohort_id,
            mixpanel_cohort_name: row.mixpanel_cohort_name,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StudyRow {
    id: String,
    project_id: String,
    name: String,
    status: String,
    interview_url: String,
    launch_mode: String,
    weekly_limit: Option<i64>,
    monthly_limit: Option<i64>,
    public_code: String,
    public_link: bool,
    created_at: Ts,
    updated_at: Ts,
}

/// A study with its accepted invites since a week's and a month's start.
#[derive(sqlx::FromRow)]
pub(crate) struct StudyStartsRow {
    #[sqlx(flatten)]
    pub study: StudyRow,
    pub week_starts: i64,
    pub month_starts: i64,
}

/// The columns [`StudyRow`] reads, named: see `invite_columns!`.
macro_rules! study_columns {
    () => {
        "id, project_id, name, status, interview_url, launch_mode, weekly_limit, \
         monthly_limit, public_code, public_link, created_at, updated_at"
    };
}
pub(crate) use study_columns;

fn corrupt(error: uj_domain::ValidationError) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

impl TryFrom<StudyRow> for Study {
    type Error = StoreError;
    fn try_from(row: StudyRow) -> Result<Self, StoreError> {
        Ok(Study {
            id: StudyId::from_string(row.id),
            project_id: ProjectId::from_string(row.project_id),
            name: row.name,
            status: StudyStatus::parse(&row.status).map_err(corrupt)?,
            interview_url: row.interview_url,
            launch_mode: LaunchMode::parse(&row.launch_mode).map_err(corrupt)?,
            weekly_limit: row.weekly_limit,
            monthly_limit: row.monthly_limit,
            public_code: row.public_code,
            public_link: row.public_link,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    project_id: String,
    idempotency_key: String,
    fingerprint: String,
    resource_id: String,
    status: i64,
    body: Vec<u8>,
    created_at: Ts,
}

/// The columns [`IdempotencyRow`] reads, named: see `invite_columns!`.
macro_rules! idempotency_columns {
    () => {
        "project_id, idempotency_key, fingerprint, resource_id, status, body, \
         created_at"
    };
}
pub(crate) use idempotency_columns;

impl TryFrom<IdempotencyRow> for IdempotencyRecord {
    type Error = StoreError;
    fn try_from(row: IdempotencyRow) -> Result<Self, StoreError> {
        Ok(IdempotencyRecord {
            project_id: ProjectId::from_string(row.project_id),
            key: row.idempotency_key,
            fingerprint: row.fingerprint,
            resource_id: row.resource_id,
            status: u16::try_from(row.status)
                .map_err(|_| StoreError::Corrupt(format!("answer status {}", row.status)))?,
            body: row.body,
            created_at: row.created_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RuleRow {
    id: String,
    project_id: String,
    study_id: String,
    name: String,
    status: String,
    trigger_type: String,
    trigger_value: String,
    surface: String,
    prompt_title: String,
    prompt_message: String,
    prompt_start_label: String,
    prompt_dismiss_label: String,
    priority: i64,
    cooldown_seconds: i64,
    max_starts: Option<i64>,
    sampling_percent: i64,
    starts_at: Option<Ts>,
    ends_at: Option<Ts>,
    created_at: Ts,
    updated_at: Ts,
}

/// The columns [`RuleRow`] reads, named: see `invite_columns!`.
macro_rules! rule_columns {
    () => {
        "id, project_id, study_id, name, status, trigger_type, trigger_value, surface, \
         prompt_title, prompt_message, prompt_start_label, prompt_dismiss_label, \
         priority, cooldown_seconds, max_starts, sampling_percent, starts_at, ends_at, \
         created_at, updated_at"
    };
}
pub(crate) use rule_columns;

impl TryFrom<RuleRow> for LaunchRule {
    type Error = StoreError;
    fn try_from(row: RuleRow) -> Result<Self, StoreError> {
        let trigger = match row.trigger_type.as_str() {
            "app_event" => Trigger::AppEvent(row.trigger_value),
            "audience" => Trigger::Audience(row.trigger_value),
            other => return Err(StoreError::Corrupt(format!("trigger type {other:?}"))),
        };
        Ok(LaunchRule {
            id: LaunchRuleId::from_string(row.id),
            project_id: ProjectId::from_string(row.project_id),
            study_id: StudyId::from_string(row.study_id),
            name: row.name,
            status: RuleStatus::parse(&row.status).map_err(corrupt)?,
            trigger,
            surface: Surface::parse(&row.surface).map_err(corrupt)?,
            prompt: PromptCopy {
                title: row.prompt_title,
                message: row.prompt_message,
                start_label: row.prompt_start_label,
                dismiss_label: row.prompt_dismiss_label,
            },
            priority: row.priority,
            cooldown_seconds: row.cooldown_seconds,
            max_starts: row.max_starts,
            sampling_percent: row.sampling_percent,
            starts_at: row.starts_at.map(|t| t.0),
            ends_at: row.ends_at.map(|t| t.0),
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InviteRow {
    pub(crate) code: String,
    pub(crate) project_id: String,
    pub(crate) rule_id: String,
    pub(crate) study_id: String,
    pub(crate) reference_id: String,
    pub(crate) source: String,
    pub(crate) audience_id: Option<String>,
    pub(crate) audience_member_id: Option<String>,
    pub(crate) event_name: Option<String>,
    pub(crate) metadata: String,
    pub(crate) traits: String,
    pub(crate) state: String,
    pub(crate) issued_at: Ts,
    pub(crate) expires_at: Ts,
    pub(crate) accepted_at: Option<Ts>,
    pub(crate) dismissed_at: Option<Ts>,
    pub(crate) withdrawn_at: Option<Ts>,
}

/// The columns [`InviteRow`] reads, named and in the table's order. Statements name the
/// columns they read and return, never `*`: PostgreSQL refuses to run a prepared statement
/// whose result a migration changed ("cached plan must not change result type"), so a
/// column added by a newer release would break every `SELECT *` of the processes still
/// running the older one during a rolling upgrade. (The SDK's reads on SQLite take these by
/// position: rusqlite finds a column by name by walking the names before it.)
macro_rules! invite_columns {
    () => {
        "code, project_id, rule_id, study_id, reference_id, source, audience_id, \
         audience_member_id, event_name, metadata, traits, state, issued_at, expires_at, \
         accepted_at, dismissed_at, withdrawn_at"
    };
}
pub(crate) use invite_columns;

impl TryFrom<InviteRow> for Invite {
    type Error = StoreError;
    fn try_from(row: InviteRow) -> Result<Self, StoreError> {
        let json = |raw: &str| {
            serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("invite json: {e}")))
        };
        Ok(Invite {
            code: row.code,
            project_id: ProjectId::from_string(row.project_id),
            rule_id: LaunchRuleId::from_string(row.rule_id),
            study_id: StudyId::from_string(row.study_id),
            reference_id: row.reference_id,
            source: if row.source == "audience" {
                "audience"
            } else {
                "app_event"
            },
            audience_id: row.audience_id,
            audience_member_id: row.audience_member_id,
            event_name: row.event_name,
            metadata: json(&row.metadata)?,
            traits: json(&row.traits)?,
            state: InviteState::parse(&row.state)
                .ok_or_else(|| StoreError::Corrupt(format!("invite state {:?}", row.state)))?,
            issued_at: row.issued_at.0,
            expires_at: row.expires_at.0,
            accepted_at: row.accepted_at.map(|t| t.0),
            dismissed_at: row.dismissed_at.map(|t| t.0),
            withdrawn_at: row.withdrawn_at.map(|t| t.0),
        })
    }
}

//! Rows as the databases return them, and their conversion into domain records.

use uj_domain::accounts::{Account, Role};
use uj_domain::ids::{AccountId, InvitationId, ProjectId, SecretKeyId};
use uj_domain::projects::{Invitation, Member, Membership, Project, SecretKey};

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

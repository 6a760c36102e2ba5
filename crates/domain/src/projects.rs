//! Projects (tenants) and their API keys.

use chrono::{DateTime, Utc};

use crate::accounts::Role;
use crate::ids::{AccountId, InvitationId, ProjectId, SecretKeyId};
use crate::validation::name;
use crate::ValidationError;

/// A project's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        name("name", raw, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The label a customer gives a secret key ("CI", "backend").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        name("name", raw, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    /// The public SDK key `uj_pk_…`; not a secret.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

/// A project as one account sees it.
#[derive(Debug, Clone)]
pub struct Membership {
    pub project: Project,
    pub role: Role,
}

/// A project member as listed on the members page.
#[derive(Debug, Clone)]
pub struct Member {
    pub account_id: AccountId,
    pub email: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// A secret REST key as stored: never the key itself.
#[derive(Debug, Clone)]
pub struct SecretKey {
    pub id: SecretKeyId,
    pub project_id: ProjectId,
    pub name: String,
    /// The first characters of the key (`uj_live_AbC123`), to recognise it by.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who made it, as said when it was made: an account's address (the dashboard), the
    /// secret key that made it over REST, `admin bootstrap`; none for keys made before this
    /// was kept.
    pub created_by: Option<String>,
}

/// An open invitation for an email address to join a project.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: InvitationId,
    pub project_id: ProjectId,
    pub email: String,
    pub invited_by: AccountId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ProjectName::parse("  Shop  ").unwrap().as_str(), "Shop");
        assert_eq!(ProjectName::parse("   ").unwrap_err().field, "name");
        assert!(ProjectName::parse(&"x".repeat(101)).is_err());
        assert!(KeyName::parse("CI\u{0}").is_err());
    }
}

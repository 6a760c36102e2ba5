//! Audiences (synced Mixpanel cohorts), their members, the cohort-sync configuration and
//! the ledger of deliveries.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::ids::{AudienceId, LedgerEntryId, ProjectId};

/// The webhook Mixpanel delivers a project's cohorts to. The secret exists only as its
/// SHA-256 hash.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortSyncConfig {
    pub project_id: ProjectId,
    /// Random and public: it is in the webhook URL.
    pub webhook_id: String,
    pub username: String,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub secret_rotated_at: DateTime<Utc>,
    pub last_delivery_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    pub id: AudienceId,
    pub project_id: ProjectId,
    pub mixpanel_cohort_id: String,
    pub name: String,
    pub description: String,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// When membership last changed by a complete delivery (a diff, or a full session).
    pub last_synced_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudienceMember {
    /// Unique within its audience; members are listed in its order.
    pub provider_member_id: String,
    pub reference_id: Option<String>,
    pub traits: Map<String, Value>,
    pub entered_at: DateTime<Utc>,
    /// Set once the member left; kept for history.
    pub exited_at: Option<DateTime<Utc>>,
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerOutcome {
    /// Membership changed (a diff, or the page that completed a full session).
    Applied,
    /// A page of an unfinished full session, kept until the session completes.
    Staged,
    /// A page already received; nothing changed.
    Duplicate,
    /// Refused (wrong project, bad payload); `error` says why.
    Rejected,
}

impl LedgerOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerOutcome::Applied => "applied",
            LedgerOutcome::Staged => "staged",
            LedgerOutcome::Duplicate => "duplicate",
            LedgerOutcome::Rejected => "rejected",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "applied" => Some(LedgerOutcome::Applied),
            "staged" => Some(LedgerOutcome::Staged),
            "duplicate" => Some(LedgerOutcome::Duplicate),
            "rejected" => Some(LedgerOutcome::Rejected),
            _ => None,
        }
    }
}

/// One delivery as the sync history shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub id: LedgerEntryId,
    pub audience_id: Option<AudienceId>,
    pub action: String,
    pub session_id: Option<String>,
    pub page: Option<i64>,
    pub total_pages: Option<i64>,
    pub members: i64,
    pub added: i64,
    pub removed: i64,
    pub outcome: LedgerOutcome,
    pub error: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// An unfinished full-sync session of an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedSession {
    pub session_id: String,
    pub received_pages: Vec<i64>,
    pub total_pages: i64,
}

impl StagedSession {
    /// Page numbers not received yet.
    pub fn missing_pages(&self) -> Vec<i64> {
        (1..=self.total_pages)
            .filter(|p| !self.received_pages.contains(p))
            .collect()
    }
}

/// What a membership change did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipChange {
    pub added: i64,
    pub removed: i64,
    pub member_count: i64,
}

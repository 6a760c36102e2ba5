//! Audiences (synced Mixpanel cohorts), their members, the cohort-sync configuration and
//! the ledger of deliveries.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::ids::{AudienceId, LedgerEntryId, ProjectId};

/// How long the sync ledger keeps a delivery. Mixpanel retries a delivery within about a
/// minute and restarts an unfinished full sync within a day, so the ledger's other use, telling
/// late and repeated pages apart, needs far less.
pub const LEDGER_KEPT_FOR: chrono::TimeDelta = chrono::TimeDelta::days(90);

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
    /// Off, deliveries are refused; the webhook and its secret stay for when it is on again.
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    pub id: AudienceId,
    pub project_id: ProjectId,
    pub mixpanel_cohort_id: String,
    /// The Mixpanel project its cohort belongs to (`None`: written by a process older than
    /// migration 0024, beside newer ones, and not known).
    pub mixpanel_project_id: Option<String>,
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
    /// The cohort a refused delivery named, as read from its body (id, and name as a
    /// delivery's is read), whether or not it is one of the project's audiences; `None` for
    /// a delivery applied (its audience names it) and one a stranger sent (migration 0032).
    pub mixpanel_cohort_id: Option<String>,
    pub mixpanel_cohort_name: Option<String>,
}

/// An unfinished full-sync session of an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedSession {
    pub session_id: String,
    pub received_pages: Vec<i64>,
    pub total_pages: i64,
}

impl StagedSession {
    /// The first `at_most` page numbers not received yet, in order.
    pub fn missing_pages(&self, at_most: usize) -> Vec<i64> {
        let received = self.received();
        (1..=self.total_pages)
            .filter(|p| !received.contains(p))
            .take(at_most)
            .collect()
    }

    /// How many pages were not received yet.
    pub fn missing_page_count(&self) -> i64 {
        self.total_pages - self.received().len() as i64
    }

    /// The received pages within `1..=total_pages`, each once.
    fn received(&self) -> std::collections::HashSet<i64> {
        self.received_pages
            .iter()
            .copied()
            .filter(|p| (1..=self.total_pages).contains(p))
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

#[cfg(test)]
mod tests {
    use super::StagedSession;

    #[test]
    fn missing_pages_are_the_first_ones_not_received_and_counted_in_all() {
        // A session of 100,000 pages with every even one received: linear, not quadratic.
        let session = StagedSession {
            session_id: "s".into(),
            received_pages: (1..=100_000).filter(|p| p % 2 == 0).rev().collect(),
            total_pages: 100_000,
        };
        assert_eq!(session.missing_pages(3), [1, 3, 5]);
        assert_eq!(session.missing_page_count(), 50_000);
        let almost = StagedSession {
            session_id: "s".into(),
            received_pages: vec![2, 2, 1, 7],
            total_pages: 3,
        };
        assert_eq!(almost.missing_pages(100), [3]);
        assert_eq!(
            almost.missing_page_count(),
            1,
            "duplicates and strays count once or not at all"
        );
    }
}

//! A project's Mixpanel connection and what was read through it.

use chrono::{DateTime, Utc};

use crate::ids::ProjectId;

/// Whether Mixpanel accepted the stored credentials at the last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    CredentialsRejected,
    Unreachable,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::CredentialsRejected => "credentials_rejected",
            ConnectionStatus::Unreachable => "unreachable",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "connected" => Some(ConnectionStatus::Connected),
            "credentials_rejected" => Some(ConnectionStatus::CredentialsRejected),
            "unreachable" => Some(ConnectionStatus::Unreachable),
            _ => None,
        }
    }
}

/// A project's connection to one Mixpanel project through a service account. The secret
/// is not here: it lives encrypted in storage and is decrypted only to call Mixpanel.
#[derive(Debug, Clone, PartialEq)]
pub struct MixpanelConnection {
    pub project_id: ProjectId,
    pub username: String,
    pub mixpanel_project_id: String,
    pub mixpanel_project_name: String,
    pub organization: String,
    /// `us`, `eu` or `in`.
    pub region: String,
    pub timezone: String,
    pub workspace_id: Option<String>,
    pub status: ConnectionStatus,
    /// What the last failed check said, for the page.
    pub status_detail: Option<String>,
    pub connected_at: DateTime<Utc>,
    pub last_verified_at: DateTime<Utc>,
}

/// A connection with its encrypted secret, as storage holds it.
#[derive(Debug, Clone)]
pub struct StoredConnection {
    pub connection: MixpanelConnection,
    pub secret_ciphertext: String,
}

/// Credentials that found several projects, waiting for the customer to pick one.
#[derive(Debug, Clone)]
pub struct ConnectAttempt {
    pub project_id: ProjectId,
    pub username: String,
    pub secret_ciphertext: String,
    /// The discovered projects, as JSON.
    pub candidates: String,
    pub expires_at: DateTime<Utc>,
}

/// A cohort of the connected Mixpanel project, as last read.
#[derive(Debug, Clone, PartialEq)]
pub struct MixpanelCohort {
    pub cohort_id: String,
    pub name: String,
    pub description: String,
    pub member_count: i64,
    pub is_visible: bool,
    pub fetched_at: DateTime<Utc>,
}

/// How long the event catalog keeps a name the app stopped sending: names are suggestions
/// for rules, and the catalog takes at most 1,000 from the app, so one filled by a leaked
/// key or an app's made-up names frees itself.
pub const APP_EVENT_NAMES_KEPT_FOR: chrono::TimeDelta = chrono::TimeDelta::days(90);

/// An event name the project knows: seen in Mixpanel, sent by its app, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEvent {
    pub name: String,
    pub seen_in_mixpanel_at: Option<DateTime<Utc>>,
    pub app_count: i64,
    pub app_first_seen_at: Option<DateTime<Utc>>,
    pub app_last_seen_at: Option<DateTime<Utc>>,
}

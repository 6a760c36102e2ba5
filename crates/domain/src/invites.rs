//! Invites: a respondent code offered to one app user for one rule and study, with the
//! attribution of why they were chosen.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::ids::{LaunchRuleId, ProjectId, StudyId};

/// An app user's id as the SDK and the API take it: trimmed, 1–256 characters, no control
/// character, and no U+FFFD (what half of a UTF-16 pair is read as: two different broken
/// ids would be one user).
pub fn reference_id(raw: &str) -> Result<String, crate::ValidationError> {
    let id = crate::validation_text("reference_id", raw, 256)?;
    if id.contains('\u{FFFD}') {
        return Err(crate::ValidationError::new(
            "reference_id",
            "must not contain U+FFFD (half of a UTF-16 pair was sent, or bytes that are not UTF-8)",
        ));
    }
    Ok(id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteState {
    Issued,
    Accepted,
    Dismissed,
    Expired,
    /// The user left the audience before accepting.
    Withdrawn,
}

impl InviteState {
    pub fn as_str(self) -> &'static str {
        match self {
            InviteState::Issued => "issued",
            InviteState::Accepted => "accepted",
            InviteState::Dismissed => "dismissed",
            InviteState::Expired => "expired",
            InviteState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            InviteState::Issued,
            InviteState::Accepted,
            InviteState::Dismissed,
            InviteState::Expired,
            InviteState::Withdrawn,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// An invite and its attribution record.
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    /// The respondent code: unguessable, in links and URLs.
    pub code: String,
    pub project_id: ProjectId,
    pub rule_id: LaunchRuleId,
    pub study_id: StudyId,
    pub reference_id: String,
    /// `audience` or `app_event`.
    pub source: &'static str,
    pub audience_id: Option<String>,
    /// The audience member's Mixpanel distinct id.
    pub audience_member_id: Option<String>,
    pub event_name: Option<String>,
    pub metadata: Map<String, Value>,
    /// The member's allowlisted traits at the time of the invite.
    pub traits: Map<String, Value>,
    pub state: InviteState,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub dismissed_at: Option<DateTime<Utc>>,
    /// When it was withdrawn (unknown for invites withdrawn before this was recorded).
    pub withdrawn_at: Option<DateTime<Utc>>,
}

impl Invite {
    /// Issued and not expired at `now`.
    pub fn is_pending(&self, now: DateTime<Utc>) -> bool {
        self.state == InviteState::Issued && now < self.expires_at
    }
}

/// What accepting an invite did.
#[derive(Debug, Clone, PartialEq)]
pub enum AcceptOutcome {
    /// A start was reserved now.
    Accepted(Invite),
    /// It was accepted before: the same answer again.
    AlreadyAccepted(Invite),
    /// No start, checked as it would have been made: the rule's max starts
    /// (`max_starts_reached`), the study's weekly or monthly limit (`study_limit`) were
    /// reached meanwhile, or the user started the study meanwhile (`already_started`).
    Refused(Invite, crate::pacing::Reason),
    /// Dismissed, expired or withdrawn.
    NotPending(Invite),
}

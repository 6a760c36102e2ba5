//! What the pacing engine needs to know, read from the store: one user's audiences and
//! invite history, the rules' starts, their studies' starts this week and month, and the
//! project's contact limit. Config loads, app events, link resolution and "explain" all
//! decide from the same facts.

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde_json::Map;
use uj_domain::audiences::AudienceMember;
use uj_domain::ids::ProjectId;
use uj_domain::invites::{Invite, InviteState};
use uj_domain::keys::NewToken;
use uj_domain::pacing::{self, Decision, Moment, RuleFacts, StudyFacts, Trigger, UserFacts};
use uj_domain::studies::LaunchRule;

use super::snapshot::ProjectRules;
use super::ServiceError;
use crate::state::AppState;

/// How long an invite stays open.
pub const INVITE_TTL: Duration = Duration::hours(24);

/// The facts about one user and a set of rules at one moment.
pub struct Facts {
    pub user: UserFacts,
    /// The user's current membership in each rule audience they belong to.
    pub membership: Vec<(String, AudienceMember)>,
    pub rules: Vec<RuleFacts>,
    pub studies: Vec<StudyFacts>,
    pub contact_limit: Option<Duration>,
    pub now: DateTime<Utc>,
}

impl Facts {
    /// The moment of a config load (`event` = `None`), an app event, or an opened link.
    pub fn moment<'a>(&self, event: Option<&'a str>, link_opened: bool) -> Moment<'a> {
        Moment {
            now: self.now,
            event,
            contact_limit: self.contact_limit,
            link_opened,
        }
    }

    /// The engine's decision, its suppressions counted for the rules' stats.
    pub fn decide(&self, state: &AppState, moment: &Moment<'_>) -> Decision {
        let decision = pacing::decide(&self.rules, &self.studies, &self.user, moment);
        state.counters.suppressed(decision.suppressed());
        decision
    }
}

/// The rules of `snapshot` that `keep` selects, and the facts about them and the user (their
/// invite `history`, newest first): the user's memberships are read now (when an audience
/// rule is kept), the rest comes from the snapshot.
pub async fn gather(
    state: &AppState,
    project: &ProjectId,
    reference_id: &str,
    snapshot: &ProjectRules,
    history: &[Invite],
    keep: impl Fn(&LaunchRule) -> bool,
) -> Result<(Vec<LaunchRule>, Facts), ServiceError> {
    let store = state.store.as_ref();
    let mut rules = Vec::new();
    let mut facts = Vec::new();
    for (rule, f) in snapshot.rules.iter().zip(&snapshot.facts) {
        if keep(rule) {
            rules.push(rule.clone());
            facts.push(f.clone());
        }
    }
    let now = Utc::now();
    if rules.is_empty() {
        // Nothing to decide: no user facts to read.
        let user = UserFacts {
            reference_id: reference_id.to_owned(),
            ..UserFacts::default()
        };
        let facts = Facts {
            user,
            membership: Vec::new(),
            rules: Vec::new(),
            studies: snapshot.studies.clone(),
            contact_limit: snapshot.contact_limit,
            now,
        };
        return Ok((rules, facts));
    }
    let mut user = UserFacts {
        reference_id: reference_id.to_owned(),
        ..UserFacts::default()
    };
    let mut membership = Vec::new();
    if rules
        .iter()
        .any(|r| matches!(r.trigger, Trigger::Audience(_)))
    {
        // By match key: `reference_id` when the member has one, else the distinct id.
        for (audience, member) in store.audience_memberships(project, reference_id).await? {
            user.audiences.insert(audience.clone());
            membership.push((audience, member));
        }
    }
    for invite in history {
        user.last_invite_by_rule
            .entry(invite.rule_id.to_string())
            .or_insert(invite.issued_at);
        user.last_invite = user.last_invite.max(Some(invite.issued_at));
        if invite.state == InviteState::Accepted {
            user.started_studies.insert(invite.study_id.to_string());
        }
    }
    let facts = Facts {
        user,
        membership,
        rules: facts,
        studies: snapshot.studies.clone(),
        contact_limit: snapshot.contact_limit,
        now,
    };
    Ok((rules, facts))
}

/// A new invite of `rule` for the user, with its attribution: the audience member for an
/// audience rule, the event for an app-event rule, and the primitive metadata the app sent.
pub fn new_invite(
    facts: &Facts,
    project: &ProjectId,
    rule: &LaunchRule,
    metadata: Map<String, serde_json::Value>,
) -> Invite {
    let (source, audience_id, member, event_name) = match &rule.trigger {
        Trigger::Audience(id) => {
            let member = facts
                .membership
                .iter()
                .find(|(a, _)| a == id)
                .map(|(_, m)| m.clone());
            ("audience", Some(id.clone()), member, None)
        }
        Trigger::AppEvent(name) => ("app_event", None, None, Some(name.clone())),
    };
    Invite {
        code: NewToken::generate("").token.expose_secret()[..16].to_owned(),
        project_id: project.clone(),
        rule_id: rule.id.clone(),
        study_id: rule.study_id.clone(),
        reference_id: facts.user.reference_id.clone(),
        source,
        audience_id,
        audience_member_id: member.as_ref().map(|m| m.provider_member_id.clone()),
        event_name,
        metadata,
        traits: member.map(|m| m.traits).unwrap_or_default(),
        state: InviteState::Issued,
        issued_at: facts.now,
        expires_at: facts.now + INVITE_TTL,
        accepted_at: None,
        dismissed_at: None,
    }
}

/// The user's open invite in `history`.
pub fn pending(history: &[Invite], now: DateTime<Utc>) -> Option<&Invite> {
    history.iter().find(|i| i.is_pending(now))
}

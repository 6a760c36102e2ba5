//! What the pacing engine needs to know, read from the store: one user's audiences and
//! invite history, the rules' starts, their studies' starts this week and month, and the
//! project's contact limit. Config loads, app events, link resolution and "explain" all
//! decide from the same facts.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde_json::Map;
use uj_domain::audiences::AudienceMember;
use uj_domain::ids::{AudienceId, ProjectId};
use uj_domain::invites::{Invite, InviteState};
use uj_domain::keys::NewToken;
use uj_domain::pacing::{self, Decision, Moment, RuleFacts, StudyFacts, Trigger, UserFacts};
use uj_domain::studies::{LaunchRule, Study};

use super::studies::rule_facts;
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
        state.suppressions.record(decision.suppressed());
        decision
    }
}

/// Reads the facts for `reference_id` and `rules`.
pub async fn gather(
    state: &AppState,
    project: &ProjectId,
    reference_id: &str,
    rules: &[LaunchRule],
) -> Result<Facts, ServiceError> {
    let now = Utc::now();
    let store = state.store.as_ref();
    // Which of the rules' audiences the user is in, by match key.
    let mut audiences = HashSet::new();
    let mut membership = Vec::new();
    for rule in rules {
        if let Trigger::Audience(id) = &rule.trigger {
            if audiences.contains(id) {
                continue;
            }
            let members = store
                .find_audience_members(&AudienceId::from_string(id.as_str()), reference_id)
                .await?;
            let current = members.into_iter().find(|m| {
                m.exited_at.is_none()
                    && m.reference_id.as_deref().unwrap_or(&m.provider_member_id) == reference_id
            });
            if let Some(member) = current {
                audiences.insert(id.clone());
                membership.push((id.clone(), member));
            }
        }
    }
    let mut user = UserFacts {
        reference_id: reference_id.to_owned(),
        audiences,
        ..UserFacts::default()
    };
    for invite in store.invites_of_user(project, reference_id).await? {
        user.last_invite_by_rule
            .entry(invite.rule_id.to_string())
            .or_insert(invite.issued_at);
        user.last_invite = user.last_invite.max(Some(invite.issued_at));
        if invite.state == InviteState::Accepted {
            user.started_studies.insert(invite.study_id.to_string());
        }
    }
    let mut facts = Vec::new();
    let mut studies: Vec<StudyFacts> = Vec::new();
    for rule in rules {
        let mut f = rule_facts(rule);
        f.starts = count(store.rule_starts(&rule.id).await?);
        facts.push(f);
        if studies.iter().all(|s| s.id != rule.study_id.as_str()) {
            if let Some(study) = store.study(project, &rule.study_id).await? {
                studies.push(study_facts(state, &study, now).await?);
            }
        }
    }
    Ok(Facts {
        user,
        membership,
        rules: facts,
        studies,
        contact_limit: store.contact_limit_days(project).await?.map(Duration::days),
        now,
    })
}

fn count(n: i64) -> u32 {
    n.clamp(0, i64::from(u32::MAX)) as u32
}

async fn study_facts(
    state: &AppState,
    study: &Study,
    now: DateTime<Utc>,
) -> Result<StudyFacts, ServiceError> {
    let starts = |since| state.store.study_starts_since(&study.id, since);
    Ok(StudyFacts {
        id: study.id.to_string(),
        status: study.status,
        weekly_limit: study.weekly_limit.map(count),
        monthly_limit: study.monthly_limit.map(count),
        starts_this_week: count(starts(pacing::week_start(now)).await?),
        starts_this_month: count(starts(pacing::month_start(now)).await?),
    })
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

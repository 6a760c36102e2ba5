//! Invites for the SDK: the pending invite a config load returns (materialised through the
//! pacing engine for audience rules), accepting it (an atomic start reservation) with its
//! signed launch URL, and dismissing it.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde_json::Map;
use uj_domain::ids::{AudienceId, ProjectId};
use uj_domain::invites::{AcceptOutcome, Invite, InviteState};
use uj_domain::keys::NewToken;
use uj_domain::pacing::{self, Decision, Moment, StudyFacts, Trigger, UserFacts};
use uj_domain::studies::{LaunchMode, LaunchRule, Surface};

use super::studies::rule_facts;
use super::ServiceError;
use crate::state::AppState;

/// How long an invite stays open.
pub const INVITE_TTL: Duration = Duration::hours(24);
/// How long a signed launch URL works.
pub const LAUNCH_TTL: Duration = Duration::minutes(15);
const LAUNCH_PURPOSE: &str = "launch";

/// An app event the SDK reported.
pub struct AppEvent<'a> {
    pub name: &'a str,
    /// Primitive properties, kept in the attribution record.
    pub metadata: Map<String, serde_json::Value>,
}

/// What the pacing engine decided for one user now.
pub enum Evaluation {
    /// The user's invite: already pending, or issued now.
    Invite(Box<(Invite, LaunchRule)>),
    /// No invite; the reason of the first rule that considered the user (or
    /// `no_matching_rule`).
    None(&'static str),
}

/// The user's pending invite, or the one the pacing engine issues now: on a config load
/// (`event` = `None`) among active audience rules with an in-app prompt; on an app event
/// among active rules waiting for that event.
pub async fn evaluate(
    state: &AppState,
    project: &ProjectId,
    reference_id: &str,
    event: Option<AppEvent<'_>>,
) -> Result<Evaluation, ServiceError> {
    let now = Utc::now();
    let store = state.store.as_ref();
    if let Some(invite) = store.pending_invite(project, reference_id, now).await? {
        let rule = store
            .launch_rule(project, &invite.rule_id)
            .await?
            .ok_or(ServiceError::NotFound("launch_rule"))?;
        return Ok(Evaluation::Invite(Box::new((invite, rule))));
    }
    let event_name = event.as_ref().map(|e| e.name);
    let rules: Vec<LaunchRule> = store
        .live_launch_rules(project)
        .await?
        .into_iter()
        .filter(|r| match (&r.trigger, event_name) {
            (Trigger::Audience(_), None) => r.surface == Surface::SdkPrompt,
            (Trigger::AppEvent(name), Some(sent)) => name == sent,
            _ => false,
        })
        .collect();
    if rules.is_empty() {
        return Ok(Evaluation::None("no_matching_rule"));
    }
    // Which of the rules' audiences the user is in, by match key.
    let mut audiences = HashSet::new();
    let mut membership = Vec::new();
    for rule in &rules {
        if let Trigger::Audience(id) = &rule.trigger {
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
    let history = store.invites_of_user(project, reference_id).await?;
    let mut user = UserFacts {
        reference_id: reference_id.to_owned(),
        audiences,
        ..UserFacts::default()
    };
    for invite in &history {
        user.last_invite_by_rule
            .entry(invite.rule_id.to_string())
            .or_insert(invite.issued_at);
        user.last_invite = user.last_invite.max(Some(invite.issued_at));
        if invite.state == InviteState::Accepted {
            user.started_studies.insert(invite.study_id.to_string());
        }
    }
    let mut facts = Vec::new();
    let mut studies = Vec::new();
    for rule in &rules {
        let mut f = rule_facts(rule);
        f.starts = store
            .rule_starts(&rule.id)
            .await?
            .clamp(0, i64::from(u32::MAX)) as u32;
        facts.push(f);
        if studies
            .iter()
            .all(|s: &StudyFacts| s.id != rule.study_id.as_str())
        {
            if let Some(study) = store.study(project, &rule.study_id).await? {
                studies.push(study_facts(state, &study, now).await?);
            }
        }
    }
    let contact_limit = store.contact_limit_days(project).await?.map(Duration::days);
    let moment = Moment {
        now,
        event: event_name,
        contact_limit,
    };
    let rule_id = match pacing::decide(&facts, &studies, &user, &moment) {
        Decision::Invite { rule_id } => rule_id,
        Decision::NoInvite { reasons } => {
            return Ok(Evaluation::None(
                reasons
                    .first()
                    .map_or("no_matching_rule", |(_, reason)| reason.code()),
            ));
        }
    };
    let rule = rules
        .into_iter()
        .find(|r| r.id.as_str() == rule_id)
        .ok_or(ServiceError::NotFound("launch_rule"))?;
    let (source, audience_id, member, event_name, metadata) = match (&rule.trigger, event) {
        (Trigger::Audience(id), _) => {
            let member = membership
                .iter()
                .find(|(a, _)| a == id)
                .map(|(_, m)| m.clone());
            ("audience", Some(id.clone()), member, None, Map::new())
        }
        (Trigger::AppEvent(name), event) => (
            "app_event",
            None,
            None,
            Some(name.clone()),
            event.map(|e| e.metadata).unwrap_or_default(),
        ),
    };
    let invite = Invite {
        code: NewToken::generate("").token.expose_secret()[..16].to_owned(),
        project_id: project.clone(),
        rule_id: rule.id.clone(),
        study_id: rule.study_id.clone(),
        reference_id: reference_id.to_owned(),
        source,
        audience_id,
        audience_member_id: member.as_ref().map(|m| m.provider_member_id.clone()),
        event_name,
        metadata,
        traits: member.map(|m| m.traits).unwrap_or_default(),
        state: InviteState::Issued,
        issued_at: now,
        expires_at: now + INVITE_TTL,
        accepted_at: None,
        dismissed_at: None,
    };
    let issued = store.issue_invite(&invite, now).await?;
    let rule = if issued.rule_id == rule.id {
        rule
    } else {
        store
            .launch_rule(project, &issued.rule_id)
            .await?
            .ok_or(ServiceError::NotFound("launch_rule"))?
    };
    Ok(Evaluation::Invite(Box::new((issued, rule))))
}

/// The study's launch mode, for the SDK's `outcome`.
pub async fn opens_in_app(
    state: &AppState,
    project: &ProjectId,
    invite: &Invite,
) -> Result<bool, ServiceError> {
    let study = state
        .store
        .study(project, &invite.study_id)
        .await?
        .ok_or(ServiceError::NotFound("study"))?;
    Ok(study.launch_mode == LaunchMode::InApp)
}

async fn study_facts(
    state: &AppState,
    study: &uj_domain::studies::Study,
    now: DateTime<Utc>,
) -> Result<StudyFacts, ServiceError> {
    let count = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
    let limit = |l: Option<i64>| l.map(count);
    Ok(StudyFacts {
        id: study.id.to_string(),
        status: study.status,
        weekly_limit: limit(study.weekly_limit),
        monthly_limit: limit(study.monthly_limit),
        starts_this_week: count(
            state
                .store
                .study_starts_since(&study.id, pacing::week_start(now))
                .await?,
        ),
        starts_this_month: count(
            state
                .store
                .study_starts_since(&study.id, pacing::month_start(now))
                .await?,
        ),
    })
}

/// A signed, expiring launch URL for an accepted invite.
pub fn launch_url(state: &AppState, code: &str, now: DateTime<Utc>) -> String {
    let expires = (now + LAUNCH_TTL).timestamp();
    let signature = state
        .key
        .sign(LAUNCH_PURPOSE, format!("{code}.{expires}").as_bytes());
    format!(
        "{}/launch/{code}?exp={expires}&sig={signature}",
        state.public_url
    )
}

/// Checks a launch URL's signature and expiry.
pub fn launch_is_valid(
    state: &AppState,
    code: &str,
    expires: i64,
    signature: &str,
    now: DateTime<Utc>,
) -> bool {
    now.timestamp() <= expires
        && state.key.verify(
            LAUNCH_PURPOSE,
            format!("{code}.{expires}").as_bytes(),
            signature,
        )
}

/// What an accept answers the SDK.
pub enum Acceptance {
    /// Open this URL; `webview` when the app should open it in-app.
    Open { url: String, webview: bool },
    /// No start: the reason code.
    NotEligible(&'static str),
}

pub async fn accept(
    state: &AppState,
    project: &ProjectId,
    code: &str,
    reference_id: &str,
    supports_webview: bool,
) -> Result<Acceptance, ServiceError> {
    let now = Utc::now();
    let existing = state
        .store
        .invite(project, code)
        .await?
        .ok_or(ServiceError::NotFound("invite"))?;
    if existing.reference_id != reference_id {
        return Err(ServiceError::NotFound("invite"));
    }
    let outcome = state
        .store
        .accept_invite(project, code, now)
        .await?
        .ok_or(ServiceError::NotFound("invite"))?;
    let invite = match outcome {
        AcceptOutcome::Accepted(invite) | AcceptOutcome::AlreadyAccepted(invite) => invite,
        AcceptOutcome::CapReached(_) => return Ok(Acceptance::NotEligible("max_starts_reached")),
        AcceptOutcome::NotPending(invite) => {
            return Ok(Acceptance::NotEligible(match invite.state {
                InviteState::Dismissed => "invite_dismissed",
                InviteState::Withdrawn => "invite_withdrawn",
                _ => "invite_expired",
            }))
        }
    };
    let study = state
        .store
        .study(project, &invite.study_id)
        .await?
        .ok_or(ServiceError::NotFound("study"))?;
    let webview = study.launch_mode == LaunchMode::InApp && supports_webview;
    let url = if webview {
        launch_url(state, code, now)
    } else {
        format!("{}/interviews/{code}", state.public_url)
    };
    Ok(Acceptance::Open { url, webview })
}

pub async fn dismiss(
    state: &AppState,
    project: &ProjectId,
    code: &str,
) -> Result<(), ServiceError> {
    state
        .store
        .dismiss_invite(project, code, Utc::now())
        .await?
        .ok_or(ServiceError::NotFound("invite"))?;
    Ok(())
}

/// The interview URL an invite leads to, carrying the invite code and the user's id.
pub fn interview_url(interview_url: &str, code: &str, reference_id: &str) -> String {
    let separator = if interview_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let query = serde_urlencoded::to_string([("invite", code), ("reference_id", reference_id)])
        .unwrap_or_default();
    format!("{interview_url}{separator}{query}")
}

/// Where a browser route leads: a respondent code of an accepted invite, or a study's
/// public code. `None` for anything else.
pub async fn destination(state: &AppState, code: &str) -> Result<Option<String>, ServiceError> {
    if let Some(invite) = state.store.invite_by_code(code).await? {
        if invite.state != InviteState::Accepted {
            return Ok(None);
        }
        let study = state
            .store
            .study(&invite.project_id, &invite.study_id)
            .await?
            .ok_or(ServiceError::NotFound("study"))?;
        return Ok(Some(interview_url(
            &study.interview_url,
            &invite.code,
            &invite.reference_id,
        )));
    }
    Ok(state
        .store
        .study_by_public_code(code)
        .await?
        .map(|study| study.interview_url))
}

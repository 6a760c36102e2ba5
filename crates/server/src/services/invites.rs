//! Invites for the SDK: the pending invite a config load returns (materialised through the
//! pacing engine for audience rules), accepting it (an atomic start reservation) with its
//! signed launch URL, and dismissing it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Map;
use uj_domain::ids::ProjectId;
use uj_domain::invites::{AcceptOutcome, Invite, InviteState};
use uj_domain::pacing::{Decision, Reason, StudyStatus, Trigger};
use uj_domain::studies::{LaunchMode, LaunchRule, Study, Surface};

use super::pacing;
use super::snapshot::ProjectRules;
use super::ServiceError;
use crate::state::AppState;

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
    Invite(Box<(Invite, Arc<LaunchRule>)>),
    /// No invite; the reason of the rule that passed the most gates
    /// (`uj_domain::pacing::telling_reason`), or `no_matching_rule`.
    None(&'static str),
}

/// The user's pending invite, or the one the pacing engine issues now: on a config load
/// (`event` = `None`) among active audience rules with an in-app prompt; on an app event
/// among active rules waiting for that event.
pub async fn evaluate(
    state: &AppState,
    user: &mut pacing::UserView,
    event: Option<AppEvent<'_>>,
) -> Result<Evaluation, ServiceError> {
    let store = state.store.as_ref();
    let project = &user.project.clone();
    let event_name = event.as_ref().map(|e| e.name);
    // An app event shows the user's open invite again only when a prompt rule waiting for it
    // could invite now: an app reporting every event would otherwise show the card on each.
    let now = Utc::now();
    if let Some(invite) = user.pending(now).cloned() {
        if event_name.is_none() || could_invite_on(&user.snapshot, event_name, now) {
            if let Some(rule) = still_offered(state, user, &invite).await? {
                return Ok(Evaluation::Invite(Box::new((invite, rule))));
            }
            // Withdrawn: the user is decided afresh.
        } else if offered_by(user, &invite).is_none() {
            // Not shown on this event, but closed since it was issued (its rule's starts or
            // its study's limits used up, its window over): withdrawn now, as a config load
            // would, if a fresh look agrees. Only then: the look may read the database.
            still_offered(state, user, &invite).await?;
        }
    }
    // Prompts only: direct-link rules offer links (see `links`).
    let (rules, facts) = user
        .gather(state, |r| {
            r.surface == Surface::SdkPrompt && waits_for(r, event_name)
        })
        .await?;
    if rules.is_empty() {
        return Ok(Evaluation::None("no_matching_rule"));
    }
    let (rule_id, suppressed) = match facts.decide(&facts.moment(event_name, false)) {
        Decision::Invite {
            rule_id,
            suppressed,
        } => (rule_id, suppressed),
        Decision::NoInvite { reasons } => {
            state.counters.suppressed(&reasons);
            return Ok(Evaluation::None(
                uj_domain::pacing::telling_reason(&reasons)
                    .map_or("no_matching_rule", Reason::code),
            ));
        }
    };
    let rule = rules
        .into_iter()
        .find(|r| r.id.as_str() == rule_id)
        .ok_or(ServiceError::NotFound("launch_rule"))?;
    let metadata = event.map(|e| e.metadata).unwrap_or_default();
    let invite = pacing::new_invite(state, &facts, project, &rule, metadata).await?;
    let ours = invite.code.clone();
    let via = if event_name.is_some() {
        "event"
    } else {
        "config"
    };
    let suppressed: Vec<(String, Reason)> = suppressed
        .iter()
        .map(|(rule, reason)| ((*rule).to_owned(), *reason))
        .collect();
    let counting = state.clone();
    let count = move |issued: &Invite| {
        // Otherwise a request for the same user issued first: this one decided nothing.
        if issued.code == ours {
            let suppressed: Vec<(&str, Reason)> = suppressed
                .iter()
                .map(|(r, why)| (r.as_str(), *why))
                .collect();
            counting.counters.suppressed(&suppressed);
            counting.metrics.invite_issued(via);
        }
    };
    let issued = state
        .invite_writer
        .issue(invite, facts.now, Box::new(count))
        .await?;
    // The request's later decisions (its direct links) see the invite just issued.
    user.history.insert(0, issued.clone());
    let rule = if issued.rule_id == rule.id {
        rule
    } else {
        Arc::new(
            store
                .launch_rule(project, &issued.rule_id)
                .await?
                .ok_or(ServiceError::NotFound("launch_rule"))?,
        )
    };
    Ok(Evaluation::Invite(Box::new((issued, rule))))
}

/// The rule of the user's pending invite, when the invite may still be offered: it can
/// still become a start (`invite_closed_because`) and its user is still in the audience it
/// came from. Otherwise it is withdrawn, and `None`. Stopping a rule or study, and leaving
/// an audience, withdraw invites where they happen; this catches one issued meanwhile (from
/// a snapshot or a membership read a moment old), and those that used-up starts or limits,
/// an ended schedule or a start elsewhere closed. A verdict of "closed" from a snapshot read
/// before the invite was issued (or about then: `SNAPSHOT_TTL` covers the processes' clocks
/// differing) is read again from the database first: the invite may come from another
/// process whose snapshot is newer than this one's (a rule created or resumed there a moment
/// ago), and withdrawing it would also hold the user in the rule's cooldown.
async fn still_offered(
    state: &AppState,
    user: &mut pacing::UserView,
    invite: &Invite,
) -> Result<Option<Arc<LaunchRule>>, ServiceError> {
    let mut rule = offered_by(user, invite);
    let margin = Duration::from_std(super::snapshot::SNAPSHOT_TTL).unwrap_or_default();
    if rule.is_none() && user.snapshot.read_at < invite.issued_at + margin {
        user.snapshot = state
            .snapshots
            .reload(state.store.as_ref(), &user.project)
            .await?;
        rule = offered_by(user, invite);
    }
    if let Some(rule) = rule {
        if still_a_member(state, user, invite).await? {
            return Ok(Some(rule));
        }
    }
    let withdrawn = state
        .store
        .withdraw_invite(&user.project, &invite.code, Utc::now())
        .await?;
    // Not withdrawn: answered meanwhile (accepted, say), which the user's decision must see
    // (taken for withdrawn, the user was invited again to the study just started).
    let now_is = match withdrawn {
        true => None,
        false => state.store.invite(&user.project, &invite.code).await?,
    };
    if let Some(held) = user.history.iter_mut().find(|i| i.code == invite.code) {
        match now_is {
            Some(now_is) => *held = now_is,
            None => held.state = InviteState::Withdrawn,
        }
    }
    Ok(None)
}

/// Whether the user's pending `invite` is offered first (explain's `open_invite` gate): it
/// can still become a start and the user is still in its audience, as [`still_offered`]
/// judges, without withdrawing it.
pub async fn offerable(
    state: &AppState,
    user: &mut pacing::UserView,
    invite: &Invite,
) -> Result<bool, ServiceError> {
    Ok(offered_by(user, invite).is_some() && still_a_member(state, user, invite).await?)
}

/// The rule of the pending `invite`, if by the user's snapshot it can still become a start.
fn offered_by(user: &pacing::UserView, invite: &Invite) -> Option<Arc<LaunchRule>> {
    // The snapshot holds every rule not archived.
    let snapshot = &user.snapshot;
    let (rule, facts) = snapshot
        .rules
        .iter()
        .zip(&snapshot.facts)
        .find(|(rule, _)| rule.id == invite.rule_id)?;
    let study = snapshot
        .studies
        .iter()
        .find(|s| s.id == invite.study_id.as_str());
    let started = user.history.iter().any(|i| {
        i.state == InviteState::Accepted && i.study_id == invite.study_id && i.code != invite.code
    });
    // A rule that now opens by direct link shows no prompt.
    let open = rule.surface == Surface::SdkPrompt
        && uj_domain::pacing::invite_closed_because(facts, study, started, Utc::now()).is_none();
    open.then(|| Arc::clone(rule))
}

/// Whether the user is still a member of the audience their pending invite came from.
/// Leaving an audience withdraws its invites (cohort sync), but a decision that read the
/// membership before the removal committed issues one after.
async fn still_a_member(
    state: &AppState,
    user: &mut pacing::UserView,
    invite: &Invite,
) -> Result<bool, ServiceError> {
    let Some(audience) = &invite.audience_id else {
        return Ok(true);
    };
    user.is_member_of(state, audience).await
}

/// Whether a prompt rule waiting for `event` could invite at `now` by the snapshot: active,
/// its study active, inside its window, starts left.
fn could_invite_on(snapshot: &ProjectRules, event: Option<&str>, now: DateTime<Utc>) -> bool {
    snapshot
        .rules
        .iter()
        .zip(&snapshot.facts)
        .any(|(rule, facts)| {
            let study = snapshot
                .studies
                .iter()
                .find(|s| s.id == rule.study_id.as_str());
            rule.surface == Surface::SdkPrompt
                && waits_for(rule, event)
                && uj_domain::pacing::invite_closed_because(facts, study, false, now).is_none()
        })
}

/// Whether a rule considers this moment: audience rules on a config load (`event` =
/// `None`), app-event rules on their event.
pub fn waits_for(rule: &LaunchRule, event: Option<&str>) -> bool {
    match (&rule.trigger, event) {
        (Trigger::Audience(_), None) => true,
        (Trigger::AppEvent(name), Some(sent)) => name == sent,
        _ => false,
    }
}

/// The study's launch mode, for the SDK's `outcome`: from the user's snapshot of the
/// project, read from the store for a study no live rule leads to.
pub async fn opens_in_app(
    state: &AppState,
    user: &pacing::UserView,
    invite: &Invite,
) -> Result<bool, ServiceError> {
    let mode = match user.snapshot.study_records.get(invite.study_id.as_str()) {
        Some(study) => study.launch_mode,
        None => {
            state
                .store
                .study(&user.project, &invite.study_id)
                .await?
                .ok_or(ServiceError::NotFound("study"))?
                .launch_mode
        }
    };
    Ok(mode == LaunchMode::InApp)
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
    // A rule or study stopped, or a schedule moved, since the invite was issued: the
    // store refuses the start (and withdraws the invite) under the locks a pause takes.
    if existing.state == InviteState::Issued && existing.expires_at > now {
        // As in `still_a_member`: one issued as its user left the audience is withdrawn (one
        // expired meanwhile is answered as expired, below).
        if let Some(audience) = &existing.audience_id {
            let current = state
                .store
                .audience_memberships(project, reference_id)
                .await?;
            // Only when this withdrew it: one accepted meanwhile (the user's other device)
            // is answered as accepted, below.
            if !current.iter().any(|(a, _)| a == audience)
                && state.store.withdraw_invite(project, code, now).await?
            {
                return Ok(Acceptance::NotEligible(Reason::NotInAudience.code()));
            }
        }
    }
    let outcome = state
        .store
        .accept_invite(project, code, now)
        .await?
        .ok_or(ServiceError::NotFound("invite"))?;
    if matches!(outcome, AcceptOutcome::Accepted(_)) {
        // A start changes the rule's and the study's counts.
        state.snapshots.forget(project);
        state.metrics.started();
    }
    let invite = match outcome {
        AcceptOutcome::Accepted(invite) | AcceptOutcome::AlreadyAccepted(invite) => invite,
        AcceptOutcome::Refused(_, reason) => return Ok(Acceptance::NotEligible(reason.code())),
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
    Ok(open(state, &study, code, supports_webview, now))
}

/// Where an accepted invite opens: a signed launch URL in the app's webview for an in-app
/// study (when the app supports one), else the respondent link in the browser.
pub fn open(
    state: &AppState,
    study: &Study,
    code: &str,
    supports_webview: bool,
    now: DateTime<Utc>,
) -> Acceptance {
    let webview = study.launch_mode == LaunchMode::InApp && supports_webview;
    let url = if webview {
        launch_url(state, code, now)
    } else {
        format!("{}/interviews/{code}", state.public_url)
    };
    Acceptance::Open { url, webview }
}

/// Dismisses invite `code`; when the app names its user, another user's invite is not
/// found, as at accept (an invite's user never changes, so reading it first is enough).
pub async fn dismiss(
    state: &AppState,
    project: &ProjectId,
    code: &str,
    reference_id: Option<&str>,
) -> Result<(), ServiceError> {
    if let Some(reference_id) = reference_id {
        let invite = state.store.invite(project, code).await?;
        if invite.is_none_or(|invite| invite.reference_id != reference_id) {
            return Err(ServiceError::NotFound("invite"));
        }
    }
    state
        .store
        .dismiss_invite(project, code, Utc::now())
        .await?
        .ok_or(ServiceError::NotFound("invite"))?;
    Ok(())
}

/// The interview URL an invite leads to, carrying the invite code and the user's id: added
/// to the study URL's query (any `invite` or `reference_id` already there replaced), before
/// its fragment, which stays last (RFC 3986: the query ends at the first `#`).
pub fn interview_url(interview_url: &str, code: &str, reference_id: &str) -> String {
    let (rest, fragment) = match interview_url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (interview_url, None),
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let ours = serde_urlencoded::to_string([("invite", code), ("reference_id", reference_id)])
        .unwrap_or_default();
    let kept = query.split('&').filter(|pair| {
        let key = pair.split('=').next().unwrap_or_default();
        !key.is_empty() && key != "invite" && key != "reference_id"
    });
    let query: Vec<&str> = kept.chain([ours.as_str()]).collect();
    let mut url = format!("{path}?{}", query.join("&"));
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    url
}

/// Where a browser route leads: a respondent code of an accepted invite, or an active
/// study's public code. `None` for anything else.
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
    // A study's public link opens while the study is active, unless it is turned off (the
    // study reached only through its rules); a start already made (above) stays open.
    Ok(state
        .store
        .study_by_public_code(code)
        .await?
        .filter(|study| study.status == StudyStatus::Active && study.public_link)
        .map(|study| study.interview_url))
}

#[cfg(test)]
mod tests {
    use super::interview_url;

    #[test]
    fn the_code_and_user_join_the_query_before_any_fragment_replacing_stale_ones() {
        let cases = [
            (
                "https://r.example.com/i/trial?lang=en",
                "https://r.example.com/i/trial?lang=en&invite=C0DE&reference_id=u1%26x",
            ),
            (
                "https://r.example.com/b",
                "https://r.example.com/b?invite=C0DE&reference_id=u1%26x",
            ),
            (
                "https://r.example.com/s?lang=en&invite=OLD&reference_id=someone#step2",
                "https://r.example.com/s?lang=en&invite=C0DE&reference_id=u1%26x#step2",
            ),
            (
                "https://r.example.com/app#/interview?x=1",
                "https://r.example.com/app?invite=C0DE&reference_id=u1%26x#/interview?x=1",
            ),
            (
                "https://r.example.com/s?&a=%20b&&invite=",
                "https://r.example.com/s?a=%20b&invite=C0DE&reference_id=u1%26x",
            ),
        ];
        for (study_url, expected) in cases {
            assert_eq!(interview_url(study_url, "C0DE", "u1&x"), expected);
        }
    }
}

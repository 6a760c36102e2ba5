//! Direct links: rules with the `direct_link` surface do not prompt; they offer the user a
//! link to the study (`/i/{study code}`) that the app places where it likes. Opening it
//! through `POST /sdk/v1/links/resolve` decides through the pacing engine (the opened link
//! stands for an app-event rule's event), records the start with its attribution, and
//! answers where to open the interview. A respondent code (`/i/{code}`,
//! `/interviews/{code}`) resolves like accepting that invite.

use serde_json::Map;
use uj_domain::ids::ProjectId;
use uj_domain::invites::{AcceptOutcome, InviteState};
use uj_domain::pacing::{self as engine, Decision};
use uj_domain::studies::{LaunchRule, Surface};
use uj_domain::ValidationError;

use super::invites::{self, waits_for, Acceptance};
use super::{pacing, ServiceError};
use crate::state::AppState;

/// A link the app may show the user now.
pub struct DirectLink {
    pub url: String,
    pub rule: std::sync::Arc<LaunchRule>,
}

/// The direct links eligible for the user: audience rules on a config load (`event` =
/// `None`), the event's rules on an app event. Listing one issues nothing.
pub async fn eligible(
    state: &AppState,
    user: &mut pacing::UserView,
    event: Option<&str>,
) -> Result<Vec<DirectLink>, ServiceError> {
    let wanted = |r: &LaunchRule| r.surface == Surface::DirectLink && waits_for(r, event);
    if !user.snapshot.rules.iter().any(|r| wanted(r)) {
        return Ok(Vec::new());
    }
    let project = user.project.clone();
    let (rules, facts) = user.gather(state, wanted).await?;
    let moment = facts.moment(event, false);
    let mut links = Vec::new();
    for (rule, rule_facts) in rules.into_iter().zip(&facts.rules) {
        let study = facts.studies.iter().find(|s| s.id == rule_facts.study_id);
        if engine::first_failure(rule_facts, study, &facts.user, &moment).is_some() {
            continue;
        }
        let public_code = match user.snapshot.study_records.get(rule.study_id.as_str()) {
            Some(study) => Some(study.public_code.clone()),
            None => state
                .store
                .study(&project, &rule.study_id)
                .await?
                .map(|s| s.public_code),
        };
        if let Some(code) = public_code {
            links.push(DirectLink {
                url: format!("{}/i/{code}", state.public_url),
                rule,
            });
        }
    }
    links.sort_by_key(|l| std::cmp::Reverse(l.rule.priority));
    Ok(links)
}

/// The code of an interview link: `…/i/{code}` or `…/interviews/{code}`, absolute or a
/// path, query and fragment ignored; read as a browser opening it reads it (percent-decoded,
/// one slash after it allowed).
pub fn link_code(url: &str) -> Option<String> {
    // The query and fragment go first: either may hold a URL of its own.
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => url,
    };
    let path = path.strip_suffix('/').unwrap_or(path);
    let (prefix, code) = path.rsplit_once('/')?;
    let code = percent_encoding::percent_decode_str(code)
        .decode_utf8()
        .ok()?
        .into_owned();
    let valid = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (valid && (prefix.ends_with("/i") || prefix.ends_with("/interviews"))).then_some(code)
}

/// Resolves an interview link the user opened in the app.
pub async fn resolve(
    state: &AppState,
    project: &ProjectId,
    url: &str,
    reference_id: &str,
    metadata: Map<String, serde_json::Value>,
    supports_webview: bool,
) -> Result<Acceptance, ServiceError> {
    let code = link_code(url).ok_or_else(|| {
        ValidationError::new(
            "url",
            "is not an interview link: expected …/i/{code} or …/interviews/{code}",
        )
    })?;
    let code = code.as_str();
    let store = state.store.as_ref();
    if store.invite(project, code).await?.is_some() {
        return invites::accept(state, project, code, reference_id, supports_webview).await;
    }
    let study = store
        .study_by_public_code(code)
        .await?
        .filter(|s| &s.project_id == project)
        .ok_or(ServiceError::NotFound("link"))?;
    let links_here = |r: &LaunchRule| r.study_id == study.id && r.surface == Surface::DirectLink;
    let mut user = pacing::UserView::load(state, project, reference_id, links_here).await?;
    // Started already (through a link or a card): the link opens that start again, as
    // accepting its invite again does, so an app whose answer was lost can reopen it.
    let started = user
        .history
        .iter()
        .find(|i| i.study_id == study.id && i.state == InviteState::Accepted);
    if let Some(started) = started {
        let now = chrono::Utc::now();
        return Ok(invites::open(
            state,
            &study,
            &started.code,
            supports_webview,
            now,
        ));
    }
    // An invite of this study already waiting for the user: the link accepts it. One that
    // can no longer start (its rule's schedule ended, its cap reached) is withdrawn by the
    // refusal, and the link is decided as if it were not there: the server may have listed
    // the link to this user beside it.
    let mut refused = None;
    if let Some(pending) = user
        .pending(chrono::Utc::now())
        .filter(|i| i.study_id == study.id)
    {
        let code = pending.code.clone();
        match invites::accept(state, project, &code, reference_id, supports_webview).await? {
            Acceptance::NotEligible(reason) => refused = Some(reason),
            opened => return Ok(opened),
        }
    }
    let (rules, facts) = user.gather(state, links_here).await?;
    if rules.is_empty() {
        // No direct-link rule: the invite's "no" says more than no rule.
        return Ok(Acceptance::NotEligible(
            refused.unwrap_or("no_matching_rule"),
        ));
    }
    let decision = facts.decide(&facts.moment(None, true));
    // The rules a winner outranked are counted once it has started, as an invite's are
    // (`invites::decide`): a start refused leaves them unbeaten.
    let (rule_id, outranked) = match decision {
        Decision::Invite {
            rule_id,
            suppressed,
        } => (rule_id, suppressed),
        Decision::NoInvite { reasons } => {
            state.counters.suppressed(&reasons);
            return Ok(Acceptance::NotEligible(
                uj_domain::pacing::telling_reason(&reasons)
                    .map_or("no_matching_rule", uj_domain::pacing::Reason::code),
            ));
        }
    };
    let rule = rules
        .iter()
        .find(|r| r.id.as_str() == rule_id)
        .ok_or(ServiceError::NotFound("launch_rule"))?;
    let invite = pacing::new_invite(state, &facts, project, rule, metadata).await?;
    match store.start_invite(&invite, facts.now).await? {
        AcceptOutcome::Accepted(started) => {
            debug_assert_eq!(started.state, InviteState::Accepted);
            state.counters.suppressed(&outranked);
            state.snapshots.forget(project);
            state.metrics.invite_issued("link");
            state.metrics.started();
            Ok(invites::open(
                state,
                &study,
                &started.code,
                supports_webview,
                facts.now,
            ))
        }
        AcceptOutcome::Refused(_, reason) => {
            // The engine said yes from its snapshot; the start's own check said no (the
            // last starts taken meanwhile): the answer is this rule's "no".
            state.counters.suppressed(&[(rule.id.as_str(), reason)]);
            Ok(Acceptance::NotEligible(reason.code()))
        }
        AcceptOutcome::AlreadyAccepted(_) | AcceptOutcome::NotPending(_) => Err(anyhow::anyhow!(
            "a new invite was answered as accepted before or not pending"
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::link_code;

    #[test]
    fn a_link_s_code_is_read_from_its_path_alone() {
        for (url, code) in [
            ("https://app.example.com/i/abc123", Some("abc123")),
            (
                "https://app.example.com/interviews/r_x-1/?utm=1#top",
                Some("r_x-1"),
            ),
            ("/i/abc123", Some("abc123")),
            ("/i/abc123?next=https://example.com/y", Some("abc123")),
            ("/interviews/abc#https://example.com/z", Some("abc")),
            ("https://example.com?to=/i/abc", None),
            ("https://example.com", None),
            ("/x/abc", None),
            ("/i/", None),
            ("/i/a b", None),
            // As a browser opens them (found by the launch probe: the browser opened the
            // first, resolve refused it; resolve took the second, the browser's 404).
            ("/i/%5AEDldnZ6WN", Some("ZEDldnZ6WN")),
            ("/i/abc//", None),
            ("/i/%2Fabc", None),
            ("/i/%FF", None),
        ] {
            assert_eq!(link_code(url).as_deref(), code, "{url}");
        }
    }
}

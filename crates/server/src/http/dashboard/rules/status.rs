//! A rule's status changed from its page: activated or paused by its form, paused with its
//! open invites withdrawn once asked, archived once asked.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use uj_domain::pacing::RuleStatus;

use super::rerender;
use crate::http::dashboard::pages::{render, ConfirmForm, ConfirmPage, PageError};
use crate::http::dashboard::projects::ProjectContext;
use crate::http::dashboard::session::{
    CookieName, CsrfToken, CurrentUser, EmptyForm, VerifiedForm,
};
use crate::services::counters;
use crate::services::studies::{self, RuleChange};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{project_id}/rules/{rule_id}/status", post(set_status))
        .route("/p/{project_id}/rules/{rule_id}/pause", post(pause))
        .route(
            "/p/{project_id}/rules/{rule_id}/archive",
            get(confirm_archive).post(archive),
        )
}

#[derive(Deserialize)]
struct StatusForm {
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, rule_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<StatusForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let result = match RuleStatus::parse(&form.status) {
        // Its own button asks first (the service's refusal names the API's endpoint).
        Ok(RuleStatus::Archived) => Err(uj_domain::ValidationError::new(
            "status",
            "archive a rule with its Archive button",
        )
        .into()),
        Ok(status) => {
            let change = RuleChange {
                status: Some(status),
                ..RuleChange::default()
            };
            studies::update_rule(&state, &context.current.project.id, &rule_id, change).await
        }
        Err(invalid) => Err(invalid.into()),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/p/{project_id}/rules/{rule_id}")).into_response()),
        Err(error) => rerender(&state, &context, csrf.0, &rule_id, error, None).await,
    }
}

/// What pausing a rule with open invites does, asked before it is done.
pub(super) fn pause_question(open: i64) -> String {
    let invites = match open {
        1 => "its open invite is".to_owned(),
        n => format!("its {n} open invites are"),
    };
    format!(
        "Pause this rule? It stops inviting, and {invites} withdrawn: apps stop showing them. \
         Those users' cooldown still counts from their invite. You can activate it again."
    )
}

/// How many open invites a pause withdrew, told by the server to the rule's page it leads
/// to: in a cookie of that page alone, read once and only briefly kept. (The count was read
/// before pausing and carried in the address, where any link could write another.) Behind
/// HTTPS `__Secure-` named: a browser takes it only over HTTPS.
const PAUSED_COOKIE: CookieName = CookieName("uj_paused", "__Secure-uj_paused");

fn paused_cookie(state: &AppState, rule_path: &str, withdrawn: String) -> Cookie<'static> {
    Cookie::build((PAUSED_COOKIE.on(state), withdrawn))
        .path(rule_path.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.https)
        .max_age(cookie::time::Duration::minutes(1))
        .build()
}

/// What the pause that led to the rule's page at `rule_path` withdrew, if one did: taken
/// from `jar`, so the page says it once.
pub(super) fn take_paused(
    state: &AppState,
    jar: CookieJar,
    rule_path: &str,
) -> (CookieJar, Option<i64>) {
    let Some(told) = jar.get(PAUSED_COOKIE.on(state)) else {
        return (jar, None);
    };
    let withdrawn = told.value().parse().ok();
    (
        jar.remove(paused_cookie(state, rule_path, String::new())),
        withdrawn,
    )
}

/// Pauses a rule; one with open invites asks first (they are withdrawn), in the page's
/// dialog or, without JavaScript, on a confirmation page.
async fn pause(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    jar: CookieJar,
    Path((project_id, rule_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<ConfirmForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let project = &context.current.project.id;
    let rule = studies::rule(&state, project, &rule_id).await?;
    let (_, stats) = counters::rule_stats(&state, project, rule.id.as_str()).await?;
    let path = format!("/p/{project_id}/rules/{rule_id}");
    if stats.pending > 0 && !form.confirmed() {
        return Ok(render(&ConfirmPage {
            title: "Pause this rule?",
            nav: context.nav(),
            csrf_token: csrf.0,
            message: format!("“{}”: {}", rule.name, pause_question(stats.pending)),
            action: format!("{path}/pause"),
            button: "Pause rule",
            back: path,
        }));
    }
    let change = RuleChange {
        status: Some(RuleStatus::Paused),
        ..RuleChange::default()
    };
    match studies::update_rule(&state, project, &rule_id, change).await {
        // What the pause withdrew, not the count asked about: an invite accepted or issued
        // meanwhile is counted as it went.
        Ok(paused) => {
            let told = paused_cookie(&state, &path, paused.withdrawn.to_string());
            Ok((jar.add(told), Redirect::to(&path)).into_response())
        }
        Err(error) => rerender(&state, &context, csrf.0, &rule_id, error, None).await,
    }
}

async fn confirm_archive(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, rule_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let rule = studies::rule(&state, &context.current.project.id, &rule_id).await?;
    Ok(render(&ConfirmPage {
        title: "Archive this rule?",
        nav: context.nav(),
        csrf_token: csrf.0,
        message: format!(
            "“{}” stops inviting anyone and cannot be changed again. Its history stays.",
            rule.name
        ),
        action: format!("/p/{project_id}/rules/{rule_id}/archive"),
        button: "Archive rule",
        back: format!("/p/{project_id}/rules/{rule_id}"),
    }))
}

async fn archive(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((project_id, rule_id)): Path<(String, String)>,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    studies::archive_rule(&state, &context.current.project.id, &rule_id, None).await?;
    Ok(Redirect::to(&format!("/p/{project_id}/rules/{rule_id}")).into_response())
}

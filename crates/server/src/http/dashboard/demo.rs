//! The demo panel (`userjourneys demo` only): plays Mixpanel's part of cohort sync. Point a
//! simulated cohort at this server's webhook with the secret shown once, run a sync now,
//! change who is in a cohort and sync again to watch the diff arrive.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use mixpanel_emulator::scenario::{BasicAuth, Destination, Member};
use mixpanel_emulator::{Emulator, RunOutcome};
use serde::Deserialize;
use uj_domain::ids::ProjectId;

use super::pages::{render, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use crate::services::cohort_sync;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{project_id}/demo", get(show))
        .route("/p/{project_id}/demo/destinations", post(point))
        .route("/p/{project_id}/demo/sync", post(sync))
        .route("/p/{project_id}/demo/membership", post(change))
}

/// A simulated cohort with its destination's state.
struct CohortRow {
    key: String,
    project: String,
    name: String,
    members: usize,
    destination: Option<String>,
    status: String,
}

#[derive(Template)]
#[template(path = "demo.html")]
struct DemoPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    connected_project: String,
    cohorts: Vec<CohortRow>,
    webhook_url: String,
    username: String,
    message: Option<String>,
    error: Option<String>,
}

fn emulator(state: &AppState) -> Result<Arc<Emulator>, PageError> {
    state.demo.clone().ok_or(PageError::NotFound)
}

/// A project's destination for a cohort: each project of the demo syncs a cohort to its
/// own webhook, and its panel sees and runs only its own destinations.
fn destination_id(project: &ProjectId, cohort: u64) -> String {
    format!("{project}:cohort-{cohort}")
}

fn describe(outcome: &RunOutcome) -> String {
    let requests = |n: &usize| match n {
        1 => "1 request".to_owned(),
        n => format!("{n} requests"),
    };
    match outcome {
        // What Mixpanel sent: a full sync sends every member, whether new or not.
        RunOutcome::Synced {
            full: true,
            requests: n,
            added,
            ..
        } => format!(
            "Synced: the full cohort, {added} members, in {}.",
            requests(n)
        ),
        RunOutcome::Synced {
            full: false,
            requests: n,
            added,
            removed,
        } => format!(
            "Synced: the changes, {added} added and {removed} removed, in {}.",
            requests(n)
        ),
        RunOutcome::Paused { status, message } => {
            format!("Paused by UserJourneys ({status}): {message}")
        }
        RunOutcome::GaveUp { status, error } => match status {
            Some(status) => format!("Gave up after retries ({status}): {error}"),
            None => format!("Gave up after retries: {error}"),
        },
        RunOutcome::SkippedPaused => "Not sent: the sync is paused.".into(),
    }
}

/// Runs the destination's sync now (resuming it if an earlier run paused it) and says how
/// it went: a notice when it synced, an error when it was refused or could not run.
async fn run_now(emulator: &Emulator, destination: &str) -> Result<String, String> {
    emulator.resume_sync(destination);
    match emulator.run_sync(destination).await {
        Ok(outcome @ RunOutcome::Synced { .. }) => Ok(describe(&outcome)),
        Ok(outcome) => Err(describe(&outcome)),
        Err(error) => Err(format!("The sync could not run: {error}")),
    }
}

/// A run's notice or error, as the page shows them.
fn split(outcome: Result<String, String>) -> (Option<String>, Option<String>) {
    match outcome {
        Ok(message) => (Some(message), None),
        Err(error) => (None, Some(error)),
    }
}

async fn page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let emulator = emulator(state)?;
    let project = &context.current.project.id;
    let connected = state.store.mixpanel_connection(project).await?;
    let connected_id = connected
        .as_ref()
        .and_then(|c| c.connection.mixpanel_project_id.parse::<u64>().ok());
    let mut cohorts = Vec::new();
    for p in &emulator.scenario().projects {
        for c in &p.cohorts {
            let destination = destination_id(project, c.id);
            let state = emulator.sync_state(&destination);
            cohorts.push(CohortRow {
                key: format!("{}:{}", p.id, c.id),
                project: format!(
                    "{} ({}){}",
                    p.name,
                    p.id,
                    if connected_id == Some(p.id) {
                        ", connected"
                    } else {
                        ""
                    }
                ),
                name: c.name.clone(),
                members: emulator.members(p.id, c.id).map_or(0, |m| m.len()),
                status: state
                    .as_ref()
                    .and_then(|s| s.last_outcome.as_ref())
                    .map_or_else(|| "not synced yet".into(), describe),
                destination: state.map(|_| destination),
            });
        }
    }
    let sync = state.store.cohort_sync_config(project).await?;
    Ok(render(&DemoPage {
        title: "Demo: simulated Mixpanel",
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        connected_project: connected.map_or_else(
            || "none yet: connect Mixpanel first".into(),
            |c| {
                format!(
                    "{} ({})",
                    c.connection.mixpanel_project_name, c.connection.mixpanel_project_id
                )
            },
        ),
        cohorts,
        webhook_url: sync
            .as_ref()
            .map(|c| cohort_sync::webhook_url(&state.public_url, &c.webhook_id))
            .unwrap_or_default(),
        username: sync.map(|c| c.username).unwrap_or_default(),
        message,
        error,
    }))
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    page(&state, &context, csrf.0, None, None).await
}

/// What only owners do here: cohort sync is theirs elsewhere too (a member ran the owner's
/// syncs here: found by the demo review).
const DRIVING: &str = "drive the simulated Mixpanel's cohort syncs";

/// The page again with a form's refusal: 422, as the dashboard's other forms answer (it was
/// 200).
async fn refused(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    error: &str,
) -> Result<Response, PageError> {
    let mut response = page(state, context, csrf_token, None, Some(error.into())).await?;
    *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

/// `{mixpanel project}:{cohort}` from the cohort picker.
fn cohort_key(key: &str) -> Option<(u64, u64)> {
    let (project, cohort) = key.split_once(':')?;
    Some((project.parse().ok()?, cohort.parse().ok()?))
}

#[derive(Deserialize)]
struct PointForm {
    cohort: String,
    webhook_url: String,
    username: String,
    secret: String,
}

/// Mixpanel's "create a custom webhook destination and sync this cohort", then a first sync.
async fn point(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<PointForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load_as_owner(&state, &user, &project_id, DRIVING).await?;
    let emulator = emulator(&state)?;
    let Some((mixpanel_project, cohort)) =
        cohort_key(&form.cohort).filter(|(p, c)| emulator.members(*p, *c).is_some())
    else {
        return refused(&state, &context, csrf.0, "Choose a cohort.").await;
    };
    if form.webhook_url.trim().is_empty() || form.secret.trim().is_empty() {
        let error = "Paste the webhook URL and the secret from Mixpanel → Cohort sync (set it up there first).";
        return refused(&state, &context, csrf.0, error).await;
    }
    if !is_own_webhook(&state.public_url, form.webhook_url.trim()) {
        // The simulated Mixpanel posts from this server: it must not be pointed elsewhere.
        let error = "The demo sends cohorts only to this server's cohort-sync webhook: paste the webhook URL shown under Mixpanel → Cohort sync.";
        return refused(&state, &context, csrf.0, error).await;
    }
    let id = destination_id(&context.current.project.id, cohort);
    emulator.add_destination(Destination {
        id: id.clone(),
        project_id: mixpanel_project,
        cohort_id: cohort,
        url: form.webhook_url.trim().to_owned(),
        basic_auth: Some(BasicAuth {
            username: form.username.trim().to_owned(),
            password: form.secret.trim().to_owned(),
        }),
    });
    let (message, error) = split(run_now(&emulator, &id).await);
    page(&state, &context, csrf.0, message, error).await
}

/// A cohort-sync webhook URL of this server: `{public_url}/webhooks/mixpanel/` and an id.
fn is_own_webhook(public_url: &str, url: &str) -> bool {
    let prefix = cohort_sync::webhook_url(public_url, "");
    url.strip_prefix(prefix.as_str()).is_some_and(|id| {
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

#[derive(Deserialize)]
struct SyncForm {
    destination: String,
}

/// Mixpanel's scheduled sync, now.
async fn sync(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<SyncForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load_as_owner(&state, &user, &project_id, DRIVING).await?;
    let emulator = emulator(&state)?;
    let own = form
        .destination
        .strip_prefix(context.current.project.id.as_str())
        .is_some_and(|rest| rest.starts_with(":cohort-"));
    if !own || emulator.sync_state(&form.destination).is_none() {
        return refused(&state, &context, csrf.0, "That cohort is not synced yet.").await;
    }
    let (message, error) = split(run_now(&emulator, &form.destination).await);
    page(&state, &context, csrf.0, message, error).await
}

#[derive(Deserialize)]
struct MembershipForm {
    cohort: String,
    /// `add` or `remove`.
    change: String,
    count: String,
}

/// People enter or leave a cohort in Mixpanel; the next sync sends the difference.
async fn change(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<MembershipForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load_as_owner(&state, &user, &project_id, DRIVING).await?;
    let emulator = emulator(&state)?;
    let count = form
        .count
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=1000).contains(n));
    let (Some((p, c)), Some(count)) = (cohort_key(&form.cohort), count) else {
        let error = "Choose a cohort and a number of people between 1 and 1000.";
        return refused(&state, &context, csrf.0, error).await;
    };
    let Some(current) = emulator.members(p, c) else {
        return refused(&state, &context, csrf.0, "Choose a cohort.").await;
    };
    if !matches!(form.change.as_str(), "add" | "remove") {
        let error = "Choose whether people join or leave the cohort.";
        return refused(&state, &context, csrf.0, error).await;
    }
    let message = if form.change == "remove" {
        let leaving: Vec<&str> = current
            .iter()
            .take(count)
            .map(|m| m.distinct_id.as_str())
            .collect();
        let size = emulator.remove_members(p, c, &leaving).unwrap_or(0);
        format!(
            "{} left the cohort; it has {size} members now. Run a sync to send the change.",
            leaving.len()
        )
    } else {
        let stamp = chrono::Utc::now().timestamp_millis();
        let joining: Vec<Member> = (1..=count)
            .map(|n| {
                Member::new(format!("new_{stamp}_{n}"))
                    .with("reference_id", format!("new-{stamp}-{n}"))
                    .with("plan", "trial")
            })
            .collect();
        let size = emulator.add_members(p, c, joining).unwrap_or(0);
        format!("{count} joined the cohort (reference ids new-{stamp}-1…); it has {size} members now. Run a sync to send the change.")
    };
    page(&state, &context, csrf.0, Some(message), None).await
}

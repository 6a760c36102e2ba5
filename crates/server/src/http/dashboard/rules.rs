//! A targeting rule's page: the rule editor with a live prompt preview, its status
//! actions (pause, resume, archive), an overlap warning and "why (not)?" for a user.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use chrono::Utc;
use serde::Deserialize;
use uj_domain::ids::{LaunchRuleId, ProjectId};
use uj_domain::pacing::{Gate, RuleStatus, StudyStatus, Trigger};
use uj_domain::studies::{LaunchRule, Surface};

use super::forms::{self, form_error, form_version, invalid_input, is_changed_since, Unsaved};
use super::pages::{render, render_with, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use super::studies::{describe_trigger, SAVED};
use crate::services::studies;
use crate::services::ServiceError;
use crate::services::{audiences, counters};
use crate::state::AppState;

mod form;
mod status;
use form::RuleForm;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/p/{project_id}/rules/{rule_id}",
            get(show_rule).post(update_rule),
        )
        .merge(status::router())
}

struct RuleView {
    id: String,
    study_id: String,
    name: String,
    status: &'static str,
    trigger: String,
    direct_link: bool,
    prompt_title: String,
    prompt_message: String,
    prompt_start_label: String,
    prompt_dismiss_label: String,
    preview_title: String,
    preview_message: String,
    preview_start: String,
    preview_dismiss: String,
    priority: String,
    cooldown_hours: String,
    max_starts: String,
    sampling_percent: String,
    starts_at: String,
    ends_at: String,
    /// `updated_at` in microseconds: the version the editor sends back.
    version: i64,
}

impl RuleView {
    /// The preview card as the copy fields read (empty: the SDK's defaults).
    fn preview_copy(&mut self) {
        self.preview_title = or_default(&self.prompt_title, "Help us improve");
        self.preview_message = or_default(
            &self.prompt_message,
            "Would you answer a few questions about your experience?",
        );
        self.preview_start = or_default(&self.prompt_start_label, "Start");
        self.preview_dismiss = or_default(&self.prompt_dismiss_label, "Not now");
    }
}

fn or_default(text: &str, default: &str) -> String {
    if text.is_empty() {
        default.to_owned()
    } else {
        text.to_owned()
    }
}

struct Named {
    id: String,
    name: String,
}

struct StatusAction {
    value: &'static str,
    label: &'static str,
    /// Where its form posts, under the rule's path (`status`, or `pause`, which asks first
    /// when open invites would be withdrawn).
    path: &'static str,
    /// What the page's dialog asks first, if anything.
    confirm: Option<String>,
}

struct GateRow {
    gate: &'static str,
    passed: bool,
    /// The detail; when it names another rule, the text before that rule.
    detail: String,
    /// The other rule the detail names, shown by its name with a link, and the text after.
    other_rule: Option<(Named, String)>,
}

/// A gate as the page shows it: another rule its detail names by id (the winner on
/// priority, the rule of the open invite) is named by its name, linked to its page.
async fn gate_row(
    state: &AppState,
    project: &ProjectId,
    live: &[LaunchRule],
    gate: Gate,
) -> Result<GateRow, PageError> {
    let mut row = GateRow {
        gate: gate.gate,
        passed: gate.passed,
        detail: gate.detail,
        other_rule: None,
    };
    let Some(id) = gate.other_rule else {
        return Ok(row);
    };
    let name = match live.iter().find(|r| r.id.as_str() == id) {
        Some(rule) => Some(rule.name.clone()),
        None => state
            .store
            .launch_rule(project, &LaunchRuleId::from_string(&id))
            .await?
            .map(|rule| rule.name),
    };
    if let (Some(name), Some((before, after))) = (name, row.detail.split_once(id.as_str())) {
        let after = after.to_owned();
        row.detail = before.to_owned();
        row.other_rule = Some((Named { id, name }, after));
    }
    Ok(row)
}

#[derive(Template)]
#[template(path = "rule.html")]
struct RulePage {
    title: String,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    study_name: String,
    rule: RuleView,
    archived: bool,
    status_actions: Vec<StatusAction>,
    overlaps: Vec<Named>,
    /// Why its audience no longer changes, when it follows no connected cohort.
    detached: Option<String>,
    explain_for: String,
    gates: Vec<GateRow>,
    /// The gates' outcome in a sentence: passes every check, or which hold the user back.
    verdict: Option<String>,
    /// Why the user id given could not be explained (too long, a control character).
    explain_error: Option<String>,
    stats: uj_storage::RuleStats,
    /// Landed on after "Save rule": the page says it was saved.
    saved: bool,
    /// Landed on after "Pause": the page says so, and how many open invites it withdrew.
    paused: Option<i64>,
    error: Option<String>,
    /// The editor's field the error is about (`fields.html`).
    error_field: Option<&'static str>,
    /// What a save from an older page typed that the rule does not hold.
    unsaved: Vec<Unsaved>,
}

/// For a prompt rule, the active prompt rules with the same trigger (direct links are
/// decided apart), of an active study and not past their end, that outrank it (higher
/// priority, or equal and older): they reach the same users first.
async fn overlapping(
    state: &AppState,
    project: &ProjectId,
    rule: &LaunchRule,
    live: &[LaunchRule],
) -> Result<Vec<Named>, PageError> {
    // Every eligible direct link is offered, highest priority first: none keeps another
    // from anyone.
    if rule.surface == Surface::DirectLink {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let mut outranking = Vec::new();
    for other in live.iter().filter(|other| {
        other.id != rule.id
            && other.status == RuleStatus::Active
            && other.trigger == rule.trigger
            && other.surface == rule.surface
            && other.ends_at.is_none_or(|ends| ends > now)
            && (other.priority > rule.priority
                || (other.priority == rule.priority && other.created_at < rule.created_at))
    }) {
        let study = state.store.study(project, &other.study_id).await?;
        if study.is_some_and(|s| s.status == StudyStatus::Active) {
            outranking.push(Named {
                id: other.id.to_string(),
                name: other.name.clone(),
            });
        }
    }
    Ok(outranking)
}

async fn rule_page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    rule: LaunchRule,
    explain_for: String,
    error: Option<String>,
) -> Result<RulePage, PageError> {
    let project = &context.current.project.id;
    let study_name = state
        .store
        .study(project, &rule.study_id)
        .await?
        .map(|s| s.name)
        .unwrap_or_default();
    let live = state.store.live_launch_rules(project).await?;
    // Its own audience only (named in the trigger), and whether it still follows a cohort
    // of the connected Mixpanel project.
    let (audiences, detached) = match &rule.trigger {
        Trigger::Audience(id) => match state
            .store
            .audience(project, &uj_domain::ids::AudienceId::from_string(id))
            .await?
        {
            Some(audience) => {
                let connected = audiences::connected_project(state, project).await?;
                let health = audiences::health(state, &audience, connected.as_deref()).await?;
                let detached = (health.state == audiences::DETACHED)
                    .then_some(health.warning)
                    .flatten();
                let named = (
                    audience.id.into_string(),
                    audience.name,
                    audience.member_count,
                );
                (vec![named], detached)
            }
            None => (Vec::new(), None),
        },
        Trigger::AppEvent(_) => (Vec::new(), None),
    };
    let (_, stats) = counters::rule_stats(state, project, rule.id.as_str()).await?;
    let mut explain_error = None;
    let gates = if explain_for.trim().is_empty() {
        Vec::new()
    } else {
        match studies::explain(state, project, rule.id.as_str(), &explain_for).await {
            Ok((_, gates)) => {
                let mut rows = Vec::with_capacity(gates.len());
                for gate in gates {
                    rows.push(gate_row(state, project, &live, gate).await?);
                }
                rows
            }
            // An id no app could send: said beside the field, the rule's page still shown.
            Err(ServiceError::Invalid(invalid)) => {
                explain_error = Some(format!("User id: {}", invalid.message));
                Vec::new()
            }
            Err(other) => return Err(other.into()),
        }
    };
    let failed: Vec<&str> = gates.iter().filter(|g| !g.passed).map(|g| g.gate).collect();
    let verdict = match (gates.is_empty(), failed.as_slice()) {
        (true, _) => None,
        (false, []) => Some(format!(
            "{} passes every check of this rule now.",
            explain_for.trim()
        )),
        (false, failed) => Some(format!(
            "{} is held back now by: {}.",
            explain_for.trim(),
            failed.join(", ")
        )),
    };
    let status_actions = match rule.status {
        RuleStatus::Active => vec![StatusAction {
            value: "paused",
            label: "Pause",
            path: "pause",
            confirm: (stats.pending > 0).then(|| status::pause_question(stats.pending)),
        }],
        RuleStatus::Paused | RuleStatus::Draft => vec![StatusAction {
            value: "active",
            label: "Activate",
            path: "status",
            confirm: None,
        }],
        RuleStatus::Archived => Vec::new(),
    };
    let shown = RuleForm::shown(&rule);
    let mut view = RuleView {
        id: rule.id.to_string(),
        study_id: rule.study_id.to_string(),
        name: shown.name,
        status: rule.status.as_str(),
        trigger: describe_trigger(&rule.trigger, &audiences),
        direct_link: rule.surface == Surface::DirectLink,
        preview_title: String::new(),
        preview_message: String::new(),
        preview_start: String::new(),
        preview_dismiss: String::new(),
        prompt_title: shown.prompt_title,
        prompt_message: shown.prompt_message,
        prompt_start_label: shown.prompt_start_label,
        prompt_dismiss_label: shown.prompt_dismiss_label,
        priority: shown.priority,
        cooldown_hours: shown.cooldown_hours,
        max_starts: shown.max_starts,
        sampling_percent: shown.sampling_percent,
        starts_at: shown.starts_at,
        ends_at: shown.ends_at,
        version: rule.updated_at.timestamp_micros(),
    };
    view.preview_copy();
    Ok(RulePage {
        title: rule.name.clone(),
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        study_name,
        archived: rule.status == RuleStatus::Archived,
        status_actions,
        overlaps: overlapping(state, project, &rule, &live).await?,
        detached,
        rule: view,
        explain_for,
        explain_error,
        gates,
        verdict,
        paused: None,
        error_field: None,
        unsaved: Vec::new(),
        stats,
        saved: false,
        error,
    })
}

#[derive(Deserialize)]
struct RuleParams {
    reference_id: Option<String>,
    saved: Option<String>,
}

async fn show_rule(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, rule_id)): Path<(String, String)>,
    jar: CookieJar,
    Query(params): Query<RuleParams>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let rule = studies::rule(&state, &context.current.project.id, &rule_id).await?;
    let explain_for = params.reference_id.unwrap_or_default();
    let mut page = rule_page(&state, &context, csrf.0, rule, explain_for, None).await?;
    page.saved = params.saved.is_some();
    let (jar, paused) =
        status::take_paused(&state, jar, &format!("/p/{project_id}/rules/{rule_id}"));
    page.paused = paused;
    Ok((jar, render(&page)).into_response())
}

fn unsaved(entered: &RuleForm, now: &RuleView) -> Vec<Unsaved> {
    let surface = |direct_link: bool| match direct_link {
        true => "Direct link",
        false => "In-app prompt",
    };
    let typed_surface = surface(entered.surface == Surface::DirectLink.as_str());
    let fields = [
        ("Name", entered.name.as_str(), now.name.as_str()),
        ("Surface", typed_surface, surface(now.direct_link)),
        ("Title", &entered.prompt_title, &now.prompt_title),
        ("Message", &entered.prompt_message, &now.prompt_message),
        (
            "Start button",
            &entered.prompt_start_label,
            &now.prompt_start_label,
        ),
        (
            "Dismiss button",
            &entered.prompt_dismiss_label,
            &now.prompt_dismiss_label,
        ),
        ("Priority", &entered.priority, &now.priority),
        (
            "Cooldown per user (hours)",
            &entered.cooldown_hours,
            &now.cooldown_hours,
        ),
        ("Max starts", &entered.max_starts, &now.max_starts),
        (
            "Sampling (%)",
            &entered.sampling_percent,
            &now.sampling_percent,
        ),
        ("Starts", &entered.starts_at, &now.starts_at),
        ("Ends", &entered.ends_at, &now.ends_at),
    ];
    forms::unsaved(fields)
}

async fn rerender(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    rule_id: &str,
    error: ServiceError,
    entered: Option<RuleForm>,
) -> Result<Response, PageError> {
    let rule = studies::rule(state, &context.current.project.id, rule_id).await?;
    // Older than the rule the page is made from (saved meanwhile, even since the check):
    // answered as such, never with the typed fields under the newer version.
    let version = entered.as_ref().and_then(|e| form_version(&e.version));
    let error = forms::older_than(error, version, rule.updated_at);
    let field = invalid_input(&error);
    let changed_since = is_changed_since(&error);
    let (status, message) = form_error(error)?;
    let mut page = rule_page(
        state,
        context,
        csrf_token,
        rule,
        String::new(),
        Some(message),
    )
    .await?;
    page.error_field = field;
    if let (true, Some(entered)) = (changed_since, &entered) {
        page.unsaved = unsaved(entered, &page.rule);
        return Ok(render_with(status, &page));
    }
    if let Some(entered) = entered {
        let shown = &mut page.rule;
        shown.name = entered.name;
        shown.direct_link = entered.surface == Surface::DirectLink.as_str();
        shown.prompt_title = entered.prompt_title;
        shown.prompt_message = entered.prompt_message;
        shown.prompt_start_label = entered.prompt_start_label;
        shown.prompt_dismiss_label = entered.prompt_dismiss_label;
        // The card previews what the fields hold, as it does while typing.
        shown.preview_copy();
        shown.priority = entered.priority;
        shown.cooldown_hours = entered.cooldown_hours;
        shown.max_starts = entered.max_starts;
        shown.sampling_percent = entered.sampling_percent;
        shown.starts_at = entered.starts_at;
        shown.ends_at = entered.ends_at;
    }
    Ok(render_with(status, &page))
}

async fn update_rule(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, rule_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<RuleForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let form = form.with_plain_line_breaks();
    let entered = form.clone();
    let project = &context.current.project.id;
    let result = match studies::rule(&state, project, &rule_id).await {
        Ok(rule) => match form.change_over(&rule) {
            Ok(change) => studies::update_rule(&state, project, &rule_id, change).await,
            Err(invalid) => Err(invalid.into()),
        },
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => {
            Ok(Redirect::to(&format!("/p/{project_id}/rules/{rule_id}{SAVED}")).into_response())
        }
        // What was typed comes back to be corrected, unless the rule changed since the
        // page was opened: then the page shows the current version to start from, and
        // lists what was typed that it does not hold, so nothing typed is lost.
        Err(error) => rerender(&state, &context, csrf.0, &rule_id, error, Some(entered)).await,
    }
}

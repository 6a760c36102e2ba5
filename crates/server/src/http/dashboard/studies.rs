//! Studies and their targeting rules: the study list, a study's page with Configuration →
//! Targeting rules (SDK setup first while the app has not called, the rules, a new-rule
//! form with the event and audience pickers), and the rule editor with a live prompt
//! preview, status actions, an overlap warning and "why (not)?".

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::Deserialize;
use uj_domain::ids::{LaunchRuleId, ProjectId};
use uj_domain::pacing::{Gate, RuleStatus, StudyStatus, Trigger};
use uj_domain::studies::{LaunchMode, LaunchRule, PromptCopy, Study, Surface};
use uj_domain::ValidationError;
use uj_storage::PageRequest;

use super::new_rule::{NewRuleForm, NewRuleView};
use super::pages::{render, render_with, ConfirmForm, ConfirmPage, ListAfter, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser, EmptyForm, VerifiedForm};
use crate::services::studies::{self, NewRule, NewStudy, RuleChange, StudyChange};
use crate::services::ServiceError;
use crate::services::{audiences, counters};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{project_id}/studies", get(list).post(create_study))
        .route(
            "/p/{project_id}/studies/{study_id}",
            get(show_study).post(update_study),
        )
        .route(
            "/p/{project_id}/studies/{study_id}/rules",
            post(create_rule),
        )
        .route(
            "/p/{project_id}/rules/{rule_id}",
            get(show_rule).post(update_rule),
        )
        .route("/p/{project_id}/rules/{rule_id}/status", post(set_status))
        .route("/p/{project_id}/rules/{rule_id}/pause", post(pause))
        .route(
            "/p/{project_id}/rules/{rule_id}/archive",
            get(confirm_archive).post(archive),
        )
}

/// A form's validation problem shown on the page; anything else is an error page.
fn form_error(error: ServiceError) -> Result<String, PageError> {
    match error {
        ServiceError::Invalid(invalid) => Ok(field_error(&invalid)),
        ServiceError::Refused { message, .. } | ServiceError::Conflict { message, .. } => {
            Ok(message)
        }
        other => Err(other.into()),
    }
}

/// The form field a validation error is about, by the name of its input.
fn invalid_input(error: &ServiceError) -> Option<&'static str> {
    let ServiceError::Invalid(invalid) = error else {
        return None;
    };
    Some(match invalid.field {
        "prompt.title" => "prompt_title",
        "prompt.message" => "prompt_message",
        "prompt.start_label" => "prompt_start_label",
        "prompt.dismiss_label" => "prompt_dismiss_label",
        "cooldown_seconds" => "cooldown_hours",
        other => other,
    })
}

/// A validation error as the forms put it: the field by its label, in the form's units.
fn field_error(invalid: &ValidationError) -> String {
    let label = match invalid.field {
        "name" => "Name",
        "interview_url" => "Interview URL",
        "status" => "Status",
        "launch_mode" => "The interview opens",
        "public_link" => "Its public link",
        "weekly_limit" => "Weekly start limit",
        "monthly_limit" => "Monthly start limit",
        "surface" => "Surface",
        "prompt.title" => "Title",
        "prompt.message" => "Message",
        "prompt.start_label" => "Start button",
        "prompt.dismiss_label" => "Dismiss button",
        "priority" => "Priority",
        "cooldown_seconds" => "Cooldown per user",
        "max_starts" => "Max starts",
        "sampling_percent" => "Sampling",
        "starts_at" => "Starts",
        "ends_at" => "Ends",
        "trigger.type" => "Trigger",
        "trigger.event_name" => "Event name",
        "trigger.audience_id" | "audience_id" => "Audience",
        other => other,
    };
    let message = match invalid.field {
        // The form takes hours; the rule stores seconds.
        "cooldown_seconds" if invalid.message.starts_with("must be between") => {
            format!(
                "must be between 0 and {} hours",
                uj_domain::studies::MAX_COOLDOWN_SECONDS / 3600
            )
        }
        _ => invalid.message.replace("(or null ", "(or empty "),
    };
    format!("{label}: {message}")
}

struct StudyRow {
    id: String,
    name: String,
    status: &'static str,
    launch_mode: &'static str,
    public_code: String,
    /// Its public link opens the interview in a plain browser.
    public_link: bool,
    interview_url: String,
    weekly_limit: String,
    monthly_limit: String,
    /// `updated_at` in microseconds: the version an edit form sends back.
    version: i64,
}

impl From<Study> for StudyRow {
    fn from(s: Study) -> Self {
        Self {
            id: s.id.into_string(),
            name: s.name,
            status: s.status.as_str(),
            // As the forms name it.
            launch_mode: match s.launch_mode {
                LaunchMode::InApp => "in the app",
                LaunchMode::Browser => "in the browser",
            },
            public_code: s.public_code,
            public_link: s.public_link,
            interview_url: s.interview_url,
            weekly_limit: s.weekly_limit.map(|l| l.to_string()).unwrap_or_default(),
            monthly_limit: s.monthly_limit.map(|l| l.to_string()).unwrap_or_default(),
            version: s.updated_at.timestamp_micros(),
        }
    }
}

#[derive(Template)]
#[template(path = "studies.html")]
struct StudiesPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    studies: Vec<StudyRow>,
    /// The last study listed, when more follow (the next page starts after it).
    next: Option<String>,
    /// Not the first page.
    paged: bool,
    error: Option<String>,
    /// The new-study form as sent, shown again with its error.
    new_study: NewStudyForm,
}

/// Studies listed per page.
const STUDIES_SHOWN: u32 = 100;

async fn studies_page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    after: Option<String>,
    error: Option<String>,
) -> Result<StudiesPage, PageError> {
    let paged = after.is_some();
    let page = state
        .store
        .studies(
            &context.current.project.id,
            &PageRequest {
                limit: STUDIES_SHOWN,
                starting_after: after,
            },
        )
        .await?;
    let next = page
        .has_more
        .then(|| page.items.last().map(|s| s.id.to_string()))
        .flatten();
    Ok(StudiesPage {
        title: "Studies",
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        studies: page.items.into_iter().map(Into::into).collect(),
        next,
        paged,
        error,
        new_study: NewStudyForm::default(),
    })
}

async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    Query(ListAfter { after }): Query<ListAfter>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    Ok(render(
        &studies_page(&state, &context, csrf.0, after, None).await?,
    ))
}

#[derive(Deserialize, Default)]
struct NewStudyForm {
    name: String,
    interview_url: String,
    launch_mode: String,
}

async fn create_study(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<NewStudyForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let created = match LaunchMode::parse(&form.launch_mode) {
        Ok(mode) => {
            let new = NewStudy {
                name: form.name.clone(),
                interview_url: form.interview_url.clone(),
                status: None,
                launch_mode: Some(mode),
                weekly_limit: None,
                monthly_limit: None,
                public_link: None,
            };
            studies::create_study(&state, &context.current.project.id, new).await
        }
        Err(invalid) => Err(invalid.into()),
    };
    match created {
        Ok(study) => {
            Ok(Redirect::to(&format!("/p/{project_id}/studies/{}", study.id)).into_response())
        }
        Err(error) => {
            let message = form_error(error)?;
            let mut page = studies_page(&state, &context, csrf.0, None, Some(message)).await?;
            page.new_study = form;
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

struct StatusOption {
    value: &'static str,
    selected: bool,
}

struct LaunchModeOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct RuleRow {
    id: String,
    name: String,
    trigger: String,
    surface: &'static str,
    priority: i64,
    status: &'static str,
    invites: i64,
    starts: i64,
}

fn describe_trigger(trigger: &Trigger, audiences: &[(String, String, i64)]) -> String {
    match trigger {
        Trigger::AppEvent(name) => format!("app event “{name}”"),
        Trigger::Audience(id) => {
            let name = audiences
                .iter()
                .find(|(a, _, _)| a == id)
                .map_or(id.as_str(), |(_, n, _)| n.as_str());
            format!("audience “{name}”")
        }
    }
}

struct EventOption {
    name: String,
    label: &'static str,
}

struct AudienceOption {
    id: String,
    name: String,
    member_count: i64,
}

/// How many rules a study's page lists; the API pages through all of them.
const RULES_SHOWN: u32 = 200;

#[derive(Template)]
#[template(path = "study.html")]
struct StudyPage {
    title: String,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    study: StudyRow,
    status_options: Vec<StatusOption>,
    launch_mode_options: Vec<LaunchModeOption>,
    rules: Vec<RuleRow>,
    /// The rules table's next page starts after this rule.
    next_rules: Option<String>,
    /// The rules table is not on its first page.
    rules_paged: bool,
    events: Vec<EventOption>,
    audiences: Vec<AudienceOption>,
    new_rule: NewRuleView,
    /// The public key while the app has not called the SDK API yet.
    sdk_setup: Option<String>,
    api_url: String,
    /// Landed on after "Save study": the page says it was saved.
    saved: bool,
    error: Option<String>,
    /// The study form's field the error is about (`fields.html`).
    error_field: Option<&'static str>,
}

/// The project's audiences by name, as the rule form's picker lists them (they came in the
/// order cohorts were first synced: among hundreds, one was hard to find).
async fn audience_list(
    state: &AppState,
    context: &ProjectContext,
) -> Result<Vec<(String, String, i64)>, PageError> {
    let mut audiences: Vec<_> = audiences::all(state, &context.current.project.id)
        .await?
        .into_iter()
        .map(|a| (a.id.into_string(), a.name, a.member_count))
        .collect();
    audiences.sort_by_cached_key(|(id, name, _)| (name.to_lowercase(), id.clone()));
    Ok(audiences)
}

async fn study_page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    study: Study,
    error: Option<String>,
) -> Result<StudyPage, PageError> {
    study_page_from(state, context, csrf_token, study, error, None).await
}

/// The study's page, its rules table listing those after `rules_after` (from the first).
async fn study_page_from(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    study: Study,
    error: Option<String>,
    rules_after: Option<String>,
) -> Result<StudyPage, PageError> {
    let project = &context.current.project;
    // Each row reads its rule's stats: a page lists RULES_SHOWN, the next ones a link away
    // (it listed the first 200 only, archived ones among them, so a study's live rules could
    // all be out of reach; found by the scale probe).
    let listed = PageRequest {
        limit: RULES_SHOWN,
        starting_after: rules_after.clone(),
    };
    let rules = state
        .store
        .launch_rules_of_study(&project.id, &study.id, &listed)
        .await?;
    let next_rules = rules
        .has_more
        .then(|| rules.items.last().map(|r| r.id.to_string()))
        .flatten();
    let rules = rules.items;
    let audiences = audience_list(state, context).await?;
    let events = counters::event_catalog(state, &project.id)
        .await?
        .into_iter()
        // Only names a rule takes: one stored before a bound (an invisible character) read
        // as a lookalike of another and was refused when picked.
        .filter(|e| uj_domain::sendable_event(&e.name))
        .map(|e| EventOption {
            label: match (e.app_count > 0, e.seen_in_mixpanel_at.is_some()) {
                (true, true) => "seen in app and Mixpanel",
                (true, false) => "seen in app",
                _ => "seen in Mixpanel",
            },
            name: e.name,
        })
        .collect();
    let contacted = state.store.sdk_contacted_at(&project.id).await?.is_some();
    let current = study.status;
    let mut rows = Vec::with_capacity(rules.len());
    for r in &rules {
        let stats = state.store.rule_stats(&r.id, chrono::Utc::now()).await?;
        rows.push(RuleRow {
            id: r.id.to_string(),
            name: r.name.clone(),
            trigger: describe_trigger(&r.trigger, &audiences),
            surface: match r.surface {
                Surface::SdkPrompt => "In-app prompt",
                Surface::DirectLink => "Direct link",
            },
            priority: r.priority,
            status: r.status.as_str(),
            invites: stats.issued,
            starts: stats.accepted,
        });
    }
    Ok(StudyPage {
        title: study.name.clone(),
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        status_options: [
            StudyStatus::Active,
            StudyStatus::Paused,
            StudyStatus::Archived,
        ]
        .into_iter()
        .map(|s| StatusOption {
            value: s.as_str(),
            selected: s == current,
        })
        .collect(),
        launch_mode_options: [
            (
                LaunchMode::InApp,
                "in the app (a webview, when the app can open one)",
            ),
            (LaunchMode::Browser, "in the browser"),
        ]
        .into_iter()
        .map(|(mode, label)| LaunchModeOption {
            value: mode.as_str(),
            label,
            selected: mode == study.launch_mode,
        })
        .collect(),
        rules: rows,
        next_rules,
        rules_paged: rules_after.is_some(),
        events,
        audiences: audiences
            .into_iter()
            .map(|(id, name, member_count)| AudienceOption {
                id,
                name,
                member_count,
            })
            .collect(),
        new_rule: NewRuleView::default(),
        sdk_setup: (!contacted).then(|| project.public_key.clone()),
        api_url: state.public_url.clone(),
        study: study.into(),
        saved: false,
        error,
        error_field: None,
    })
}

/// A page's address after a save: the page says it was saved.
const SAVED: &str = "?saved=1";

#[derive(Deserialize)]
struct SavedParams {
    saved: Option<String>,
    /// The rules listed start after this one (the rules table's next page).
    rules_after: Option<String>,
}

async fn show_study(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, study_id)): Path<(String, String)>,
    Query(params): Query<SavedParams>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let study = studies::study(&state, &context.current.project.id, &study_id).await?;
    let rules_after = params.rules_after.filter(|after| !after.is_empty());
    let mut page = study_page_from(&state, &context, csrf.0, study, None, rules_after).await?;
    page.saved = params.saved.is_some();
    Ok(render(&page))
}

fn optional_number(field: &'static str, raw: &str) -> Result<Option<i64>, ValidationError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|_| ValidationError::new(field, "must be a whole number"))
}

#[derive(Deserialize, Clone)]
struct StudyForm {
    name: String,
    interview_url: String,
    status: String,
    weekly_limit: String,
    monthly_limit: String,
    /// Empty (a page without the field) changes nothing.
    #[serde(default)]
    launch_mode: String,
    /// `open` or `app_only`; empty (a page without the field) changes nothing.
    #[serde(default)]
    public_link: String,
    /// The study's version the page showed (`updated_at` in microseconds).
    #[serde(default)]
    version: String,
}

/// The study form's public link choice: `open`, `app_only`, or none from a page without it.
fn public_link_choice(raw: &str) -> Result<Option<bool>, ValidationError> {
    match raw.trim() {
        "" => Ok(None),
        "open" => Ok(Some(true)),
        "app_only" => Ok(Some(false)),
        _ => Err(ValidationError::new(
            "public_link",
            "must be open or app_only",
        )),
    }
}

/// A form's `version` (the row's `updated_at` in microseconds, as the page wrote it); none
/// from a page that carried none.
fn form_version(raw: &str) -> Option<DateTime<Utc>> {
    raw.trim()
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
}

async fn update_study(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, study_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<StudyForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let project = &context.current.project.id;
    let entered = form.clone();
    let change = (|| -> Result<StudyChange, ValidationError> {
        Ok(StudyChange {
            name: Some(form.name),
            interview_url: Some(form.interview_url),
            status: Some(StudyStatus::parse(&form.status)?),
            launch_mode: match form.launch_mode.trim() {
                "" => None,
                mode => Some(LaunchMode::parse(mode)?),
            },
            public_link: public_link_choice(&form.public_link)?,
            weekly_limit: Some(optional_number("weekly_limit", &form.weekly_limit)?),
            monthly_limit: Some(optional_number("monthly_limit", &form.monthly_limit)?),
            version: form_version(&form.version),
        })
    })();
    let result = match change {
        Ok(change) => studies::update_study(&state, project, &study_id, change).await,
        Err(invalid) => Err(invalid.into()),
    };
    match result {
        Ok(_) => {
            Ok(Redirect::to(&format!("/p/{project_id}/studies/{study_id}{SAVED}")).into_response())
        }
        Err(error) => {
            let changed_since = is_changed_since(&error);
            let field = invalid_input(&error);
            let message = form_error(error)?;
            let study = studies::study(&state, project, &study_id).await?;
            let mut page = study_page(&state, &context, csrf.0, study, Some(message)).await?;
            page.error_field = field;
            // What was typed comes back to be corrected, unless the study changed since the
            // page was opened: then the page shows the current version to start from.
            if !changed_since {
                page.study.name = entered.name;
                page.study.interview_url = entered.interview_url;
                page.study.weekly_limit = entered.weekly_limit;
                page.study.monthly_limit = entered.monthly_limit;
                for option in &mut page.status_options {
                    option.selected = option.value == entered.status;
                }
                if let Ok(Some(open)) = public_link_choice(&entered.public_link) {
                    page.study.public_link = open;
                }
                // A page without the launch mode field sent none: the stored one stays.
                if !entered.launch_mode.trim().is_empty() {
                    for option in &mut page.launch_mode_options {
                        option.selected = option.value == entered.launch_mode.trim();
                    }
                }
            }
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
}

/// A change refused because the row changed after its page was opened.
fn is_changed_since(error: &ServiceError) -> bool {
    matches!(
        error,
        ServiceError::Conflict {
            code: "changed_meanwhile",
            ..
        }
    )
}

async fn create_rule(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, study_id)): Path<(String, String)>,
    VerifiedForm(form): VerifiedForm<NewRuleForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let project = &context.current.project.id;
    let result = match form.trigger().and_then(|t| Ok((t, form.surface()?))) {
        Ok((trigger, surface)) => {
            let new = NewRule {
                name: form.name.clone(),
                trigger,
                surface,
                status: None,
                prompt: PromptCopy::default(),
                priority: None,
                cooldown_seconds: None,
                max_starts: None,
                sampling_percent: None,
                starts_at: None,
                ends_at: None,
            };
            studies::create_rule(&state, project, &study_id, new).await
        }
        Err(invalid) => Err(invalid.into()),
    };
    match result {
        Ok(rule) => Ok(Redirect::to(&format!("/p/{project_id}/rules/{}", rule.id)).into_response()),
        // What was entered comes back to be corrected.
        Err(error) => {
            let message = form_error(error)?;
            let study = studies::study(&state, project, &study_id).await?;
            let mut page = study_page(&state, &context, csrf.0, study, Some(message)).await?;
            page.new_rule = form.into();
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
    }
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

/// A schedule time as the editor's `datetime-local` input shows it: to the minute, or to the
/// second when it has seconds (set over REST), so that saving the form keeps them.
fn local(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| match t.second() {
        0 => t.format("%Y-%m-%dT%H:%M").to_string(),
        _ => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
    })
    .unwrap_or_default()
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

/// Active rules with the same trigger that outrank `rule` (higher priority, or equal and
/// older): they reach the same users first.
fn overlapping(rule: &LaunchRule, live: &[LaunchRule]) -> Vec<Named> {
    live.iter()
        .filter(|other| {
            other.id != rule.id
                && other.status == RuleStatus::Active
                && other.trigger == rule.trigger
        })
        .filter(|other| {
            other.priority > rule.priority
                || (other.priority == rule.priority && other.created_at < rule.created_at)
        })
        .map(|other| Named {
            id: other.id.to_string(),
            name: other.name.clone(),
        })
        .collect()
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
            confirm: (stats.pending > 0).then(|| pause_question(stats.pending)),
        }],
        RuleStatus::Paused | RuleStatus::Draft => vec![StatusAction {
            value: "active",
            label: "Activate",
            path: "status",
            confirm: None,
        }],
        RuleStatus::Archived => Vec::new(),
    };
    let p = &rule.prompt;
    let mut view = RuleView {
        id: rule.id.to_string(),
        study_id: rule.study_id.to_string(),
        name: rule.name.clone(),
        status: rule.status.as_str(),
        trigger: describe_trigger(&rule.trigger, &audiences),
        direct_link: rule.surface == Surface::DirectLink,
        preview_title: String::new(),
        preview_message: String::new(),
        preview_start: String::new(),
        preview_dismiss: String::new(),
        prompt_title: p.title.clone(),
        prompt_message: p.message.clone(),
        prompt_start_label: p.start_label.clone(),
        prompt_dismiss_label: p.dismiss_label.clone(),
        priority: rule.priority.to_string(),
        cooldown_hours: format!("{}", rule.cooldown_seconds as f64 / 3600.0),
        max_starts: rule.max_starts.map(|m| m.to_string()).unwrap_or_default(),
        sampling_percent: rule.sampling_percent.to_string(),
        starts_at: local(rule.starts_at),
        ends_at: local(rule.ends_at),
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
        overlaps: overlapping(&rule, &live),
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
    /// Landed on after pausing: how many open invites that withdrew.
    paused: Option<i64>,
}

async fn show_rule(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path((project_id, rule_id)): Path<(String, String)>,
    Query(params): Query<RuleParams>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let rule = studies::rule(&state, &context.current.project.id, &rule_id).await?;
    let explain_for = params.reference_id.unwrap_or_default();
    let mut page = rule_page(&state, &context, csrf.0, rule, explain_for, None).await?;
    page.saved = params.saved.is_some();
    page.paused = params.paused;
    Ok(render(&page))
}

#[derive(Deserialize, Clone)]
struct RuleForm {
    name: String,
    surface: String,
    prompt_title: String,
    prompt_message: String,
    prompt_start_label: String,
    prompt_dismiss_label: String,
    priority: String,
    cooldown_hours: String,
    max_starts: String,
    sampling_percent: String,
    starts_at: String,
    ends_at: String,
    /// The rule's version the page showed (`updated_at` in microseconds).
    #[serde(default)]
    version: String,
}

fn utc_minute(field: &'static str, raw: &str) -> Result<Option<DateTime<Utc>>, ValidationError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .map(|t| Some(Utc.from_utc_datetime(&t)))
        .map_err(|_| ValidationError::new(field, "must be a date and time"))
}

impl RuleForm {
    /// The copy's line breaks as the app gets them: browsers send a text area's as CRLF.
    fn with_plain_line_breaks(mut self) -> Self {
        for text in [
            &mut self.prompt_title,
            &mut self.prompt_message,
            &mut self.prompt_start_label,
            &mut self.prompt_dismiss_label,
        ] {
            if text.contains('\r') {
                *text = text.replace("\r\n", "\n");
            }
        }
        self
    }

    fn change(self) -> Result<RuleChange, ValidationError> {
        let number = |field: &'static str, raw: &str| -> Result<i64, ValidationError> {
            raw.trim()
                .parse()
                .map_err(|_| ValidationError::new(field, "must be a whole number"))
        };
        let hours: f64 = self
            .cooldown_hours
            .trim()
            .parse()
            .ok()
            .filter(|h: &f64| h.is_finite())
            .ok_or_else(|| ValidationError::new("cooldown_seconds", "must be a number of hours"))?;
        let cooldown_seconds = (hours * 3600.0).round() as i64;
        // A cooldown under half a second (either way) would be stored as none at all.
        if hours != 0.0 && cooldown_seconds == 0 {
            return Err(ValidationError::new(
                "cooldown_seconds",
                "must be at least one second (0.0003 hours), or 0 for none",
            ));
        }
        Ok(RuleChange {
            name: Some(self.name),
            surface: Some(Surface::parse(&self.surface)?),
            prompt_title: Some(self.prompt_title),
            prompt_message: Some(self.prompt_message),
            prompt_start_label: Some(self.prompt_start_label),
            prompt_dismiss_label: Some(self.prompt_dismiss_label),
            priority: Some(number("priority", &self.priority)?),
            cooldown_seconds: Some(cooldown_seconds),
            max_starts: Some(optional_number("max_starts", &self.max_starts)?),
            sampling_percent: Some(number("sampling_percent", &self.sampling_percent)?),
            starts_at: Some(utc_minute("starts_at", &self.starts_at)?),
            ends_at: Some(utc_minute("ends_at", &self.ends_at)?),
            version: form_version(&self.version),
            ..RuleChange::default()
        })
    }
}

/// A field typed on an editor page older than the rule, that the rule now holds otherwise:
/// shown beside the current version so that the change can be made again.
struct Unsaved {
    label: &'static str,
    typed: String,
    now: String,
}

fn unsaved(entered: &RuleForm, now: &RuleView) -> Vec<Unsaved> {
    let surface = |direct_link: bool| match direct_link {
        true => "Direct link",
        false => "In-app prompt",
    };
    let typed_surface = surface(entered.surface == Surface::DirectLink.as_str());
    [
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
    ]
    .into_iter()
    .filter(|(_, typed, now)| typed.trim() != now.trim())
    .map(|(label, typed, now)| Unsaved {
        label,
        typed: typed.to_owned(),
        now: now.to_owned(),
    })
    .collect()
}

async fn rerender(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    rule_id: &str,
    error: ServiceError,
    entered: Option<RuleForm>,
) -> Result<Response, PageError> {
    let field = invalid_input(&error);
    let changed_since = is_changed_since(&error);
    let message = form_error(error)?;
    let rule = studies::rule(state, &context.current.project.id, rule_id).await?;
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
        return Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page));
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
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
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
    let result = match form.change() {
        Ok(change) => {
            studies::update_rule(&state, &context.current.project.id, &rule_id, change).await
        }
        Err(invalid) => Err(invalid.into()),
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
fn pause_question(open: i64) -> String {
    let invites = match open {
        1 => "its open invite is".to_owned(),
        n => format!("its {n} open invites are"),
    };
    format!(
        "Pause this rule? It stops inviting, and {invites} withdrawn: apps stop showing them. \
         Those users' cooldown still counts from their invite. You can activate it again."
    )
}

/// Pauses a rule; one with open invites asks first (they are withdrawn), in the page's
/// dialog or, without JavaScript, on a confirmation page.
async fn pause(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
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
        Ok(_) => Ok(Redirect::to(&format!("{path}?paused={}", stats.pending)).into_response()),
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
    studies::archive_rule(&state, &context.current.project.id, &rule_id).await?;
    Ok(Redirect::to(&format!("/p/{project_id}/rules/{rule_id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule time goes through the editor unchanged: to the minute, or with the seconds
    /// a time set over REST has (saving the form cut them, and a window of seconds closed).
    #[test]
    fn schedule_times_go_through_the_editor_unchanged() {
        for raw in ["2027-01-01T10:00:00Z", "2027-01-01T10:00:30Z"] {
            let at: DateTime<Utc> = raw.parse().unwrap();
            let shown = local(Some(at));
            assert_eq!(
                utc_minute("starts_at", &shown).unwrap(),
                Some(at),
                "{shown}"
            );
        }
        assert_eq!(
            local(Some("2027-01-01T10:00:00Z".parse().unwrap())),
            "2027-01-01T10:00"
        );
        assert_eq!(utc_minute("ends_at", " ").unwrap(), None);
        assert!(utc_minute("ends_at", "tomorrow").is_err());
    }
}

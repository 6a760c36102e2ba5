//! Studies: the study list and a study's page with Configuration → Targeting rules (SDK
//! setup first while the app has not called, the rules, a new-rule form with the event and
//! audience pickers). A rule's own page is `rules.rs`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use uj_domain::pacing::{StudyStatus, Trigger};
use uj_domain::studies::{LaunchMode, LaunchRule, PromptCopy, Study, Surface};
use uj_domain::ValidationError;
use uj_storage::PageRequest;

use super::forms::{
    self, form_error, form_version, invalid_input, is_changed_since, optional_number, Unsaved,
};
use super::new_rule::{NewRuleForm, NewRuleView};
use super::pages::{render, render_with, ListAfter, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use crate::services::studies::{self, NewRule, NewStudy, StudyChange};
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
        new_study: NewStudyForm {
            form_key: forms::new_form_key(),
            ..NewStudyForm::default()
        },
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
    /// The form's key (`forms::new_form_key`); none from a page without it.
    #[serde(default)]
    form_key: String,
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
            let keyed = forms::keyed_form(
                &form.form_key,
                "/p/{project_id}/studies",
                &[],
                &[&form.name, &form.interview_url, &form.launch_mode],
            );
            let answer =
                |study: &Study| forms::see_other(format!("/p/{project_id}/studies/{}", study.id));
            let project = &context.current.project.id;
            studies::create_study_answered(&state, project, new, keyed.as_ref(), answer)
                .await
                .map_err(forms::reused_form)
        }
        Err(invalid) => Err(invalid.into()),
    };
    match created {
        Ok(answer) => Ok(forms::redirect_of(&answer)),
        Err(error) => {
            let (status, message) = form_error(error)?;
            let mut page = studies_page(&state, &context, csrf.0, None, Some(message)).await?;
            page.new_study = form;
            page.new_study.form_key = forms::new_form_key();
            Ok(render_with(status, &page))
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

pub(super) fn describe_trigger(trigger: &Trigger, audiences: &[(String, String, i64)]) -> String {
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
    /// What was typed on an older page, not saved.
    unsaved: Vec<Unsaved>,
    /// Why the new rule's form was refused.
    new_rule_error: Option<String>,
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
        new_rule: NewRuleView {
            form_key: forms::new_form_key(),
            ..NewRuleView::default()
        },
        sdk_setup: (!contacted).then(|| project.public_key.clone()),
        api_url: state.public_url.clone(),
        study: study.into(),
        saved: false,
        error,
        error_field: None,
        unsaved: Vec::new(),
        new_rule_error: None,
    })
}

/// A page's address after a save: the page says it was saved.
pub(super) const SAVED: &str = "?saved=1";

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
    let version = form_version(&form.version);
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
            let study = studies::study(&state, project, &study_id).await?;
            // Older than the study the page is made from (saved meanwhile, even since the
            // check): answered as such, never with the typed fields under the newer version.
            let error = forms::older_than(error, version, study.updated_at);
            let changed_since = is_changed_since(&error);
            let field = invalid_input(&error);
            let (status, message) = form_error(error)?;
            let mut page = study_page(&state, &context, csrf.0, study, Some(message)).await?;
            page.error_field = field;
            // What was typed comes back to be corrected, unless the study changed since the
            // page was opened: then the page shows the current version to start from, and
            // lists what was typed that it does not hold, so that nothing typed is lost.
            if changed_since {
                page.unsaved = unsaved_study(&entered, &page);
            } else {
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
            Ok(render_with(status, &page))
        }
    }
}

/// The study form's fields typed on an older page that the study now holds otherwise.
fn unsaved_study(entered: &StudyForm, page: &StudyPage) -> Vec<Unsaved> {
    let now = &page.study;
    let selected =
        |options: &[StatusOption]| options.iter().find(|o| o.selected).map_or("", |o| o.value);
    let mode_label = |value: &str| {
        page.launch_mode_options
            .iter()
            .find(|o| o.value == value.trim())
            .map_or(String::new(), |o| o.label.to_owned())
    };
    let now_mode = page
        .launch_mode_options
        .iter()
        .find(|o| o.selected)
        .map_or("", |o| o.value);
    let link = |open: bool| match open {
        true => "open to anyone who has it",
        false => "opens nothing",
    };
    let typed_link = match public_link_choice(&entered.public_link) {
        Ok(Some(open)) => link(open),
        _ => link(now.public_link),
    };
    // A page without the launch mode field sent none: nothing typed there.
    let typed_mode = match entered.launch_mode.trim() {
        "" => mode_label(now_mode),
        typed => mode_label(typed),
    };
    let now_mode = mode_label(now_mode);
    forms::unsaved([
        ("Name", entered.name.as_str(), now.name.as_str()),
        ("Interview URL", &entered.interview_url, &now.interview_url),
        ("Status", &entered.status, selected(&page.status_options)),
        ("The interview opens", &typed_mode, &now_mode),
        ("Its public link", typed_link, link(now.public_link)),
        (
            "Weekly start limit",
            &entered.weekly_limit,
            &now.weekly_limit,
        ),
        (
            "Monthly start limit",
            &entered.monthly_limit,
            &now.monthly_limit,
        ),
    ])
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
            let keyed = forms::keyed_form(
                &form.form_key,
                "/p/{project_id}/studies/{study_id}/rules",
                &[&study_id],
                &[
                    &form.name,
                    &form.trigger_type,
                    &form.event_name,
                    &form.audience_id,
                    &form.surface,
                ],
            );
            let answer =
                |rule: &LaunchRule| forms::see_other(format!("/p/{project_id}/rules/{}", rule.id));
            studies::create_rule_answered(&state, project, &study_id, new, keyed.as_ref(), answer)
                .await
                .map_err(forms::reused_form)
        }
        Err(invalid) => Err(invalid.into()),
    };
    match result {
        Ok(answer) => Ok(forms::redirect_of(&answer)),
        // What was entered comes back to be corrected.
        Err(error) => {
            // Said in the new rule's form, which the page opens on (it was said at the top,
            // above the study's form, as if about the study).
            let (status, message) = form_error(error)?;
            let study = studies::study(&state, project, &study_id).await?;
            let mut page = study_page(&state, &context, csrf.0, study, None).await?;
            page.new_rule = form.into();
            page.new_rule_error = Some(message);
            Ok(render_with(status, &page))
        }
    }
}

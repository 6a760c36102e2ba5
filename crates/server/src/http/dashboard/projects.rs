//! A project's overview, the project switcher's target, and creating projects.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use uj_domain::ids::ProjectId;
use uj_domain::projects::Membership;

use super::forms;
use super::pages::{render, render_with, Nav, PageError};
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use crate::services::{accounts, settings, ServiceError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{project_id}", get(overview))
        .route(
            "/p/{project_id}/contact-limit",
            axum::routing::post(set_contact_limit),
        )
        .route("/projects/new", get(new))
        .route("/projects", axum::routing::post(create))
}

/// The project a dashboard page is about, checked against the signed-in account: a
/// project the account does not belong to is "not found", like one that does not exist.
pub struct ProjectContext {
    pub current: Membership,
    memberships: Vec<Membership>,
    email: String,
    demo: bool,
}

impl ProjectContext {
    pub async fn load(
        state: &AppState,
        user: &CurrentUser,
        project_id: &str,
    ) -> Result<Self, PageError> {
        let memberships = state.store.memberships(&user.account.id).await?;
        let current = memberships
            .iter()
            .find(|m| m.project.id.as_str() == project_id)
            .cloned()
            .ok_or(PageError::NotFound)?;
        Ok(Self {
            current,
            memberships,
            email: user.account.email.clone(),
            demo: state.demo.is_some(),
        })
    }

    /// [`Self::load`], for what only the project's owners may do (its keys, its Mixpanel
    /// credentials and cohort sync, its people): a member is told so.
    pub async fn load_as_owner(
        state: &AppState,
        user: &CurrentUser,
        project_id: &str,
        doing: &str,
    ) -> Result<Self, PageError> {
        let context = Self::load(state, user, project_id).await?;
        if context.current.role != uj_domain::accounts::Role::Owner {
            return Err(PageError::Forbidden(format!(
                "Only the project's owners can {doing}. Ask one of them."
            )));
        }
        Ok(context)
    }

    pub fn nav(&self) -> Option<Nav> {
        let mut nav = Nav::new(&self.email, &self.memberships, Some(&self.current));
        nav.demo = self.demo;
        Some(nav)
    }

    pub fn project_id(&self) -> String {
        self.current.project.id.to_string()
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    title: String,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    project_name: String,
    public_key: String,
    api_url: String,
    /// The contact limit in days, as the form shows it (empty: off).
    contact_limit_days: String,
    error: Option<String>,
}

async fn overview_page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    error: Option<String>,
) -> Result<OverviewPage, PageError> {
    let project = &context.current.project;
    let days = state.store.contact_limit_days(&project.id).await?;
    Ok(OverviewPage {
        title: project.name.clone(),
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        project_name: project.name.clone(),
        public_key: project.public_key.clone(),
        api_url: state.public_url.clone(),
        contact_limit_days: days.map(|d| d.to_string()).unwrap_or_default(),
        error,
    })
}

async fn overview(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    Ok(render(
        &overview_page(&state, &context, csrf.0, None).await?,
    ))
}

#[derive(Deserialize)]
struct ContactLimitForm {
    days: String,
}

async fn set_contact_limit(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<ContactLimitForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let project = &context.current.project.id;
    let days = match form.days.trim() {
        "" => Ok(None),
        raw => raw.parse().map(Some).map_err(|_| {
            ServiceError::from(uj_domain::ValidationError::new(
                "contact_limit_days",
                "must be a whole number of days",
            ))
        }),
    };
    let result = match days {
        Ok(days) => settings::set_contact_limit(&state, project, days).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/p/{project_id}")).into_response()),
        Err(ServiceError::Invalid(invalid)) => {
            let message = format!("Contact limit: {}", invalid.message);
            let mut page = overview_page(&state, &context, csrf.0, Some(message)).await?;
            page.contact_limit_days = form.days;
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "new_project.html")]
struct NewProjectPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    error: Option<String>,
    name: String,
    /// The form's key (`forms::new_form_key`): a new one each time the page is shown.
    form_key: String,
}

#[derive(Deserialize)]
struct NewProjectForm {
    name: String,
    /// The form's key (`forms::new_form_key`); none from a page without it.
    #[serde(default)]
    form_key: String,
}

async fn nav_for(state: &AppState, user: &CurrentUser) -> Result<Option<Nav>, PageError> {
    let memberships = state.store.memberships(&user.account.id).await?;
    Ok(Some(Nav::new(&user.account.email, &memberships, None)))
}

async fn new(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    Ok(render(&NewProjectPage {
        title: "New project",
        nav: nav_for(&state, &user).await?,
        csrf_token: csrf.0,
        error: None,
        name: String::new(),
        form_key: forms::new_form_key(),
    }))
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    VerifiedForm(form): VerifiedForm<NewProjectForm>,
) -> Result<Response, PageError> {
    // The form's record is kept in the project it makes, found among the account's own
    // (a project has its records; a new one has none before it).
    let keyed = forms::keyed_form(&form.form_key, "/projects", &[], &[&form.name]);
    let answer = |project: &ProjectId| forms::see_other(format!("/p/{project}"));
    let created = accounts::create_project_answered(
        state.store.as_ref(),
        &user.account.id,
        &form.name,
        keyed.as_ref(),
        answer,
    )
    .await
    .map_err(forms::reused_form);
    match created {
        Ok(answer) => Ok(forms::redirect_of(&answer)),
        // Both say what to fix (`Invalid` is transparent, `Refused` its message).
        Err(error @ (ServiceError::Invalid(_) | ServiceError::Refused { .. })) => Ok(render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewProjectPage {
                title: "New project",
                nav: nav_for(&state, &user).await?,
                csrf_token: csrf.0,
                error: Some(error.to_string()),
                name: form.name,
                form_key: forms::new_form_key(),
            },
        )),
        Err(other) => Err(other.into()),
    }
}

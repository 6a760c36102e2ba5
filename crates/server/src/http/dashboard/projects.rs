//! A project's overview, the project switcher's target, and creating projects.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use uj_domain::projects::Membership;

use super::pages::{render, render_with, Nav, PageError};
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use crate::services::{accounts, ServiceError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/p/{project_id}", get(overview))
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
}

async fn overview(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let project = &context.current.project;
    Ok(render(&OverviewPage {
        title: project.name.clone(),
        nav: context.nav(),
        csrf_token: csrf.0,
        project_id: context.project_id(),
        project_name: project.name.clone(),
        public_key: project.public_key.clone(),
        api_url: state.public_url.clone(),
    }))
}

#[derive(Template)]
#[template(path = "new_project.html")]
struct NewProjectPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    error: Option<String>,
    name: String,
}

#[derive(Deserialize)]
struct NewProjectForm {
    name: String,
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
    }))
}

async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    VerifiedForm(form): VerifiedForm<NewProjectForm>,
) -> Result<Response, PageError> {
    match accounts::create_project(state.store.as_ref(), &user.account.id, &form.name).await {
        Ok(project) => Ok(Redirect::to(&format!("/p/{}", project.id)).into_response()),
        Err(ServiceError::Invalid(invalid)) => Ok(render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewProjectPage {
                title: "New project",
                nav: nav_for(&state, &user).await?,
                csrf_token: csrf.0,
                error: Some(invalid.to_string()),
                name: form.name,
            },
        )),
        Err(other) => Err(other.into()),
    }
}

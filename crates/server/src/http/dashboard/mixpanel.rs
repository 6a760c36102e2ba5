//! Integrations → Mixpanel: the connection form with a short guide, the project picker,
//! the connected state (test, replace credentials, disconnect) and the project's cohorts.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Deserialize;
use uj_domain::mixpanel::{ConnectionStatus, MixpanelCohort, MixpanelConnection};
use uj_mixpanel::DiscoveredProject;

use super::pages::{render, render_with, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser, VerifiedForm};
use crate::services::mixpanel::{self, ConnectOutcome};
use crate::services::ServiceError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/p/{project_id}/integrations/mixpanel",
            get(show).post(connect),
        )
        .route(
            "/p/{project_id}/integrations/mixpanel/project",
            post(choose_project),
        )
        .route("/p/{project_id}/integrations/mixpanel/verify", post(verify))
        .route(
            "/p/{project_id}/integrations/mixpanel/disconnect",
            get(confirm_disconnect).post(disconnect),
        )
}

fn when(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

struct ConnectionView {
    project_name: String,
    mixpanel_project_id: String,
    region: String,
    organization: String,
    timezone: String,
    username: String,
    status: &'static str,
    status_label: &'static str,
    status_detail: Option<String>,
    connected_at: String,
    last_verified_at: String,
}

impl From<MixpanelConnection> for ConnectionView {
    fn from(c: MixpanelConnection) -> Self {
        let status_label = match c.status {
            ConnectionStatus::Connected => "Connected: Mixpanel accepts the credentials.",
            ConnectionStatus::CredentialsRejected => {
                "Mixpanel now rejects these credentials. Replace them below."
            }
            ConnectionStatus::Unreachable => "Mixpanel could not be reached at the last check.",
        };
        Self {
            project_name: c.mixpanel_project_name,
            mixpanel_project_id: c.mixpanel_project_id,
            region: c.region.to_uppercase(),
            organization: c.organization,
            timezone: c.timezone,
            username: c.username,
            status: c.status.as_str(),
            status_label,
            status_detail: c.status_detail,
            connected_at: when(c.connected_at),
            last_verified_at: when(c.last_verified_at),
        }
    }
}

struct CohortView {
    id: String,
    name: String,
    description: String,
    members: i64,
    fetched_at: String,
}

impl From<MixpanelCohort> for CohortView {
    fn from(c: MixpanelCohort) -> Self {
        Self {
            id: c.cohort_id,
            name: c.name,
            description: c.description,
            members: c.member_count,
            fetched_at: when(c.fetched_at),
        }
    }
}

struct PickerView {
    token: String,
    projects: Vec<PickerRow>,
}

struct PickerRow {
    id: String,
    name: String,
    region: String,
    organization: String,
    timezone: String,
    selectable: bool,
    reason: Option<String>,
}

impl From<DiscoveredProject> for PickerRow {
    fn from(p: DiscoveredProject) -> Self {
        Self {
            id: p.id,
            name: p.name,
            region: p.region.as_str().to_uppercase(),
            organization: p.organization,
            timezone: p.timezone,
            selectable: p.selectable,
            reason: p.reason,
        }
    }
}

#[derive(Template)]
#[template(path = "mixpanel.html")]
struct MixpanelPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    connection: Option<ConnectionView>,
    cohorts: Vec<CohortView>,
    picker: Option<PickerView>,
    show_form: bool,
    error: Option<String>,
    notice: Option<String>,
}

async fn page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    replace: bool,
) -> Result<MixpanelPage, PageError> {
    let status = mixpanel::status(state, &context.current.project.id).await?;
    let (connection, cohorts) = match status {
        Some((connection, cohorts)) => (
            Some(connection.into()),
            cohorts.into_iter().map(Into::into).collect(),
        ),
        None => (None, Vec::new()),
    };
    Ok(MixpanelPage {
        title: "Mixpanel",
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        show_form: connection.is_none() || replace,
        connection,
        cohorts,
        picker: None,
        error: None,
        notice: None,
    })
}

#[derive(Deserialize)]
struct ShowParams {
    replace: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    Query(params): Query<ShowParams>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let page = page(&state, &context, csrf.0, params.replace.is_some()).await?;
    Ok(render(&page))
}

/// Renders the page again with a plain-sentence error about what to fix.
async fn with_error(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    error: ServiceError,
) -> Result<Response, PageError> {
    let (status, message) = match error {
        ServiceError::Mixpanel(problem) => (StatusCode::UNPROCESSABLE_ENTITY, problem.message()),
        ServiceError::Invalid(invalid) => (StatusCode::UNPROCESSABLE_ENTITY, invalid.to_string()),
        ServiceError::NotFound("connect_token") => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The project choice expired. Enter the service account again.".to_owned(),
        ),
        ServiceError::NotFound("mixpanel_project") => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Pick one of the listed projects.".to_owned(),
        ),
        other => return Err(other.into()),
    };
    let mut page = page(state, context, csrf_token, true).await?;
    page.error = Some(message);
    Ok(render_with(status, &page))
}

#[derive(Deserialize)]
struct ConnectForm {
    username: String,
    secret: String,
}

async fn connect(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<ConnectForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    match mixpanel::connect(
        &state,
        &context.current.project.id,
        &form.username,
        &form.secret,
    )
    .await
    {
        Ok(ConnectOutcome::Connected(_)) => {
            Ok(Redirect::to(&format!("/p/{project_id}/integrations/mixpanel")).into_response())
        }
        Ok(ConnectOutcome::ChooseProject { token, projects }) => {
            let mut page = page(&state, &context, csrf.0, false).await?;
            page.show_form = false;
            page.picker = Some(PickerView {
                token: token.expose_secret().to_owned(),
                projects: projects.into_iter().map(Into::into).collect(),
            });
            let mut response = render(&page);
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            Ok(response)
        }
        Err(error) => with_error(&state, &context, csrf.0, error).await,
    }
}

#[derive(Deserialize)]
struct ChooseForm {
    connect_token: String,
    project_id: Option<String>,
}

async fn choose_project(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<ChooseForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let chosen = form.project_id.unwrap_or_default();
    match mixpanel::choose_project(
        &state,
        &context.current.project.id,
        &form.connect_token,
        &chosen,
    )
    .await
    {
        Ok(_) => {
            Ok(Redirect::to(&format!("/p/{project_id}/integrations/mixpanel")).into_response())
        }
        Err(error) => with_error(&state, &context, csrf.0, error).await,
    }
}

#[derive(Deserialize)]
struct EmptyForm {}

async fn verify(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let project = &context.current.project.id;
    let connection = mixpanel::verify(&state, project).await?;
    let mut notice = None;
    if connection.status == ConnectionStatus::Connected {
        notice = Some(match mixpanel::refresh(&state, project).await {
            Ok((cohorts, events)) => format!("Mixpanel accepts the credentials. Read {cohorts} cohorts and {events} event names."),
            Err(error) => format!("Mixpanel accepts the credentials, but cohorts could not be read: {error}"),
        });
    }
    let mut page = page(&state, &context, csrf.0, false).await?;
    page.notice = notice;
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "mixpanel_disconnect.html")]
struct DisconnectPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    project_name: String,
}

async fn confirm_disconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let (connection, _) = mixpanel::status(&state, &context.current.project.id)
        .await?
        .ok_or(PageError::NotFound)?;
    Ok(render(&DisconnectPage {
        title: "Disconnect Mixpanel",
        nav: context.nav(),
        csrf_token: csrf.0,
        project_id: context.project_id(),
        project_name: connection.mixpanel_project_name,
    }))
}

async fn disconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project_id): Path<String>,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    mixpanel::disconnect(&state, &context.current.project.id).await?;
    Ok(Redirect::to(&format!("/p/{project_id}/integrations/mixpanel")).into_response())
}

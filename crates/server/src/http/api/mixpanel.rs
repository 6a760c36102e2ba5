//! `/api/v1/integrations/mixpanel`: connect with a service account (picking a project
//! when several), status, re-check, cohorts, disconnect. The secret is accepted once and
//! never returned.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uj_domain::mixpanel::{MixpanelCohort, MixpanelConnection};
use uj_mixpanel::DiscoveredProject;

use super::ListResponse;
use crate::http::auth::SecretKeyAuth;
use crate::http::extract::{ApiJson, ApiQuery, ListParams};
use crate::http::ApiError;
use crate::services::mixpanel::{self, ConnectOutcome};
use crate::services::ServiceError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, disconnect))
        .routes(routes!(connect))
        .routes(routes!(choose_project))
        .routes(routes!(verify))
        .routes(routes!(refresh))
        .routes(routes!(cohorts))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    #[schema(min_length = 1, max_length = 255)]
    username: String,
    #[schema(min_length = 1, max_length = 1024)]
    secret: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChooseProjectRequest {
    connect_token: String,
    project_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionResponse {
    object: &'static str,
    mixpanel_project_id: String,
    project_name: String,
    organization: String,
    region: String,
    timezone: String,
    username: String,
    status: &'static str,
    #[schema(required = true)]
    status_detail: Option<String>,
    connected_at: DateTime<Utc>,
    last_verified_at: DateTime<Utc>,
    /// `{enabled, webhook_url, username, secret_rotated_at, last_delivery_at}` once cohort
    /// sync is set up, else null.
    #[schema(required = true)]
    cohort_sync: Option<Value>,
}

impl ConnectionResponse {
    /// The connection with its cohort-sync settings (never the secret).
    async fn load(state: &AppState, c: MixpanelConnection) -> Result<Self, ApiError> {
        let sync = state.store.cohort_sync_config(&c.project_id).await?;
        let mut response = Self::from(c);
        response.cohort_sync = sync.map(|config| {
            json!({
                "enabled": config.enabled,
                "webhook_url": crate::services::cohort_sync::webhook_url(&state.public_url, &config.webhook_id),
                "username": config.username,
                "secret_rotated_at": config.secret_rotated_at,
                "last_delivery_at": config.last_delivery_at,
            })
        });
        Ok(response)
    }
}

impl From<MixpanelConnection> for ConnectionResponse {
    fn from(c: MixpanelConnection) -> Self {
        Self {
            object: "mixpanel_connection",
            mixpanel_project_id: c.mixpanel_project_id,
            project_name: c.mixpanel_project_name,
            organization: c.organization,
            region: c.region,
            timezone: c.timezone,
            username: c.username,
            status: c.status.as_str(),
            status_detail: c.status_detail,
            connected_at: c.connected_at,
            last_verified_at: c.last_verified_at,
            cohort_sync: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PickerEntry {
    id: String,
    name: String,
    region: &'static str,
    organization: String,
    timezone: String,
    selectable: bool,
    #[schema(required = true)]
    reason: Option<String>,
}

impl From<DiscoveredProject> for PickerEntry {
    fn from(p: DiscoveredProject) -> Self {
        Self {
            id: p.id,
            name: p.name,
            region: p.region.as_str(),
            organization: p.organization,
            timezone: p.timezone,
            selectable: p.selectable,
            reason: p.reason,
        }
    }
}

async fn connected(
    state: &AppState,
    connection: MixpanelConnection,
) -> Result<Json<ConnectResponse>, ApiError> {
    let connection = ConnectionResponse::load(state, connection).await?;
    Ok(Json(ConnectResponse {
        status: "connected",
        connection: Some(connection),
        connect_token: None,
        projects: None,
    }))
}

/// What a connect led to: `connected` with the connection, or `choose_project` with a
/// token and the projects to pick from (`POST …/connect/project`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectResponse {
    /// `connected` or `choose_project`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<ConnectionResponse>,
    /// Valid for 15 minutes, once.
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_token: Option<String>,
    /// Those the account cannot read are listed with the reason and cannot be picked.
    #[serde(skip_serializing_if = "Option::is_none")]
    projects: Option<Vec<PickerEntry>>,
}

#[utoipa::path(
    post,
    path = "/integrations/mixpanel/connect",
    operation_id = "connect_mixpanel",
    tag = "Mixpanel",
    summary = "Connect with a service account (the project is found; a picker when several)",
    request_body = ConnectRequest,
    responses((status = 200, description = "`connected` with the connection, or `choose_project` with a connect token and the projects", body = ConnectResponse))
)]
async fn connect(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiJson(request): ApiJson<ConnectRequest>,
) -> Result<Json<ConnectResponse>, ApiError> {
    let outcome =
        mixpanel::connect(&state, &auth.project.id, &request.username, &request.secret).await?;
    Ok(match outcome {
        ConnectOutcome::Connected(connection) => connected(&state, *connection).await?,
        ConnectOutcome::ChooseProject { token, projects } => Json(ConnectResponse {
            status: "choose_project",
            connection: None,
            connect_token: Some(token.expose_secret().to_owned()),
            projects: Some(projects.into_iter().map(PickerEntry::from).collect()),
        }),
    })
}

#[utoipa::path(
    post,
    path = "/integrations/mixpanel/connect/project",
    operation_id = "choose_mixpanel_project",
    tag = "Mixpanel",
    summary = "Pick the project after `choose_project`",
    request_body = ChooseProjectRequest,
    responses((status = 200, description = "`connected` with the connection", body = ConnectResponse))
)]
async fn choose_project(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiJson(request): ApiJson<ChooseProjectRequest>,
) -> Result<Json<ConnectResponse>, ApiError> {
    let connection = mixpanel::choose_project(
        &state,
        &auth.project.id,
        &request.connect_token,
        &request.project_id,
    )
    .await
    .map_err(|error| match error {
        ServiceError::NotFound("connect_token") => ApiError::not_found(
            "connect_token",
            "No such connect token: it was used, it expired (15 minutes), or another connection \
             was made since. Connect again with the service account for a new one.",
        ),
        other => other.into(),
    })?;
    connected(&state, connection).await
}

fn not_connected() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_connected",
        "This project has no Mixpanel connection; connect one first.",
    )
}

#[utoipa::path(
    get,
    path = "/integrations/mixpanel",
    operation_id = "show_mixpanel_connection",
    tag = "Mixpanel",
    summary = "The Mixpanel connection",
    responses((status = 200, description = "The connection", body = ConnectionResponse))
)]
async fn show(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<Json<ConnectionResponse>, ApiError> {
    let (connection, _) = mixpanel::status(&state, &auth.project.id)
        .await?
        .ok_or_else(not_connected)?;
    Ok(Json(ConnectionResponse::load(&state, connection).await?))
}

#[utoipa::path(
    post,
    path = "/integrations/mixpanel/verify",
    operation_id = "verify_mixpanel_connection",
    tag = "Mixpanel",
    summary = "Test the connection now",
    responses((status = 200, description = "The connection and its status", body = ConnectionResponse))
)]
async fn verify(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<Json<ConnectionResponse>, ApiError> {
    match mixpanel::verify(&state, &auth.project.id).await {
        Ok(connection) => Ok(Json(ConnectionResponse::load(&state, connection).await?)),
        Err(crate::services::ServiceError::NotFound(_)) => Err(not_connected()),
        Err(other) => Err(other.into()),
    }
}

/// What a refresh read.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RefreshResponse {
    object: &'static str,
    /// Cohorts the connected project has now.
    cohorts: usize,
    /// Its top event names now in the event catalog (names Mixpanel no longer lists left it,
    /// unless the app sent them).
    event_names: usize,
}

#[utoipa::path(
    post,
    path = "/integrations/mixpanel/refresh",
    operation_id = "refresh_mixpanel_reads",
    tag = "Mixpanel",
    summary = "Read the connected project's cohorts and top event names again now",
    responses((status = 200, description = "How many were read", body = RefreshResponse))
)]
async fn refresh(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<Json<RefreshResponse>, ApiError> {
    match mixpanel::refresh(&state, &auth.project.id).await {
        Ok((cohorts, event_names)) => Ok(Json(RefreshResponse {
            object: "mixpanel_refresh",
            cohorts,
            event_names,
        })),
        Err(crate::services::ServiceError::NotFound(_)) => Err(not_connected()),
        Err(other) => Err(other.into()),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CohortResponse {
    object: &'static str,
    id: String,
    name: String,
    description: String,
    member_count: i64,
    is_visible: bool,
    fetched_at: DateTime<Utc>,
}

impl From<MixpanelCohort> for CohortResponse {
    fn from(c: MixpanelCohort) -> Self {
        Self {
            object: "mixpanel_cohort",
            id: c.cohort_id,
            name: c.name,
            description: c.description,
            member_count: c.member_count,
            is_visible: c.is_visible,
            fetched_at: c.fetched_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/integrations/mixpanel/cohorts",
    operation_id = "list_mixpanel_cohorts",
    tag = "Mixpanel",
    summary = "The connected project's cohorts, by name",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last id of the previous page")),
    responses((status = 200, description = "A list of cohorts", body = ListResponse<CohortResponse>))
)]
async fn cohorts(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<CohortResponse>>, ApiError> {
    let page = params.page()?;
    let (_, cohorts) = mixpanel::status(&state, &auth.project.id)
        .await?
        .ok_or_else(not_connected)?;
    // Read whole from the connection's copy (one row per cohort of the Mixpanel project),
    // listed by name: a page starts after the cohort named.
    let start = match &page.starting_after {
        None => 0,
        Some(after) => {
            let at = cohorts
                .iter()
                .position(|c| c.cohort_id == *after)
                .ok_or_else(|| {
                    let mut error = ApiError::bad_request(
                        "invalid_request",
                        "starting_after is not the id of one of these cohorts",
                    );
                    error.field = Some("starting_after".into());
                    error
                })?;
            at + 1
        }
    };
    let limit = page.limit as usize;
    let has_more = cohorts.len() > start + limit;
    let data: Vec<CohortResponse> = cohorts
        .into_iter()
        .skip(start)
        .take(limit)
        .map(Into::into)
        .collect();
    Ok(ListResponse::of(data, has_more))
}

#[utoipa::path(
    delete,
    path = "/integrations/mixpanel",
    operation_id = "disconnect_mixpanel",
    tag = "Mixpanel",
    summary = "Disconnect Mixpanel",
    responses((status = 204, description = "Disconnected"))
)]
async fn disconnect(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<StatusCode, ApiError> {
    match mixpanel::disconnect(&state, &auth.project.id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(crate::services::ServiceError::NotFound(_)) => Err(not_connected()),
        Err(other) => Err(other.into()),
    }
}

//! `GET /api/v1/project`: the key's project, so a client can check its key;
//! `PATCH` changes its settings (the trait allowlist).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uj_domain::projects::Project;

use crate::http::auth::SecretKeyAuth;
use crate::http::extract::ApiJson;
use crate::http::ApiError;
use crate::services::settings;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, update))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    // Described by its schema, `trait_allowlist()`.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(schema_with = trait_allowlist)]
    trait_allowlist: Option<Vec<String>>,
    /// At most one invite per user per this many days across all rules; `null` turns it off.
    #[serde(default, deserialize_with = "crate::http::extract::nullable")]
    #[schema(minimum = 1, maximum = 365)]
    contact_limit_days: Option<Option<i64>>,
}

/// The allowlist's schema, with the bounds the server holds it to
/// ([`settings::trait_keys`]): utoipa bounds the items of a field's list only through a
/// schema of its own.
fn trait_allowlist() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(100));
    ArrayBuilder::new()
        .description(Some(
            "Member properties kept from synced cohorts (primitives only). Contact fields such \
             as `email` are kept only when listed here. At most 50 keys of 1 to 100 characters.",
        ))
        .items(key)
        .max_items(Some(settings::MAX_TRAITS))
        .build()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectResponse {
    object: &'static str,
    id: String,
    name: String,
    created_at: DateTime<Utc>,
    trait_allowlist: Vec<String>,
    #[schema(required = true)]
    contact_limit_days: Option<i64>,
}

async fn response(state: &AppState, project: Project) -> Result<ProjectResponse, ApiError> {
    let trait_allowlist = state.store.trait_allowlist(&project.id).await?;
    let contact_limit_days = state.store.contact_limit_days(&project.id).await?;
    Ok(ProjectResponse {
        contact_limit_days,
        object: "project",
        id: project.id.into_string(),
        name: project.name,
        created_at: project.created_at,
        trait_allowlist,
    })
}

#[utoipa::path(
    get,
    path = "/project",
    operation_id = "show_project",
    tag = "Project",
    summary = "The key's project and its settings",
    responses((status = 200, description = "The project", body = ProjectResponse))
)]
async fn show(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<Json<ProjectResponse>, ApiError> {
    Ok(Json(response(&state, auth.project).await?))
}

#[utoipa::path(
    patch,
    path = "/project",
    operation_id = "update_project",
    tag = "Project",
    summary = "Change settings (trait allowlist, contact limit)",
    request_body = UpdateProjectRequest,
    responses((status = 200, description = "The project", body = ProjectResponse))
)]
async fn update(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiJson(request): ApiJson<UpdateProjectRequest>,
) -> Result<Json<ProjectResponse>, ApiError> {
    // Checked whole and written together: a refused or failed body changes nothing.
    settings::change_settings(
        &state,
        &auth.project.id,
        request.trait_allowlist,
        request.contact_limit_days,
    )
    .await?;
    Ok(Json(response(&state, auth.project).await?))
}

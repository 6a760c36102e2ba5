//! `/api/v1/integrations/mixpanel/cohort-sync`: set up (201, the secret shown once),
//! regenerate the secret (the old one stops working at once), disable.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::http::auth::SecretKeyAuth;
use crate::http::ApiError;
use crate::services::cohort_sync::{self, SyncCredentials};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_up, disable))
        .routes(routes!(regenerate))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CredentialsResponse {
    object: &'static str,
    webhook_url: String,
    username: String,
    /// Shown only in this response; `null` when cohort sync was turned on again (its current
    /// secret, the last one shown, works again).
    #[schema(required)]
    secret: Option<String>,
}

impl From<SyncCredentials> for CredentialsResponse {
    fn from(c: SyncCredentials) -> Self {
        Self {
            object: "cohort_sync_credentials",
            webhook_url: c.webhook_url,
            username: c.username,
            secret: c.secret.map(|s| s.expose_secret().to_owned()),
        }
    }
}

#[utoipa::path(
    post,
    path = "/integrations/mixpanel/cohort-sync",
    operation_id = "set_up_cohort_sync",
    tag = "Cohort sync",
    summary = "Set up cohort sync: the webhook URL, username and secret (shown once); or turn it on again",
    responses(
        (status = 201, description = "Set up: the credentials for Mixpanel", body = CredentialsResponse),
        (status = 200, description = "Turned on again: the same webhook URL and username, `secret` null (its current secret, the last one shown, works again)", body = CredentialsResponse)
    )
)]
async fn set_up(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<(StatusCode, Json<CredentialsResponse>), ApiError> {
    let credentials = cohort_sync::set_up(&state, &auth.project.id).await?;
    let status = match credentials.secret {
        Some(_) => StatusCode::CREATED,
        None => StatusCode::OK,
    };
    Ok((status, Json(credentials.into())))
}

#[utoipa::path(
    post,
    path = "/integrations/mixpanel/cohort-sync/regenerate-secret",
    operation_id = "regenerate_cohort_sync_secret",
    tag = "Cohort sync",
    summary = "Regenerate the secret (the old one stops working at once)",
    responses((status = 200, description = "The new credentials", body = CredentialsResponse))
)]
async fn regenerate(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<Json<CredentialsResponse>, ApiError> {
    let credentials = cohort_sync::regenerate_secret(&state, &auth.project.id).await?;
    Ok(Json(credentials.into()))
}

#[utoipa::path(
    delete,
    path = "/integrations/mixpanel/cohort-sync",
    operation_id = "disable_cohort_sync",
    tag = "Cohort sync",
    summary = "Turn cohort sync off (its webhook URL and secret stay for when it is turned on again)",
    responses((status = 204, description = "Turned off"))
)]
async fn disable(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<StatusCode, ApiError> {
    cohort_sync::disable(&state, &auth.project.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

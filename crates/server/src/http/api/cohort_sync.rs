//! `/api/v1/integrations/mixpanel/cohort-sync`: set up (201, the secret shown once),
//! regenerate the secret (the old one stops working at once), disable.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::http::auth::SecretKeyAuth;
use crate::http::ApiError;
use crate::services::cohort_sync::{self, SyncCredentials};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/integrations/mixpanel/cohort-sync",
            post(set_up).delete(disable),
        )
        .route(
            "/integrations/mixpanel/cohort-sync/regenerate-secret",
            post(regenerate),
        )
}

#[derive(Serialize)]
pub struct CredentialsResponse {
    object: &'static str,
    webhook_url: String,
    username: String,
    /// Shown only in this response.
    secret: String,
}

impl From<SyncCredentials> for CredentialsResponse {
    fn from(c: SyncCredentials) -> Self {
        Self {
            object: "cohort_sync_credentials",
            webhook_url: c.webhook_url,
            username: c.username,
            secret: c.secret.expose_secret().to_owned(),
        }
    }
}

async fn set_up(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<(StatusCode, Json<CredentialsResponse>), ApiError> {
    let credentials = cohort_sync::set_up(&state, &auth.project.id).await?;
    Ok((StatusCode::CREATED, Json(credentials.into())))
}

async fn regenerate(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<Json<CredentialsResponse>, ApiError> {
    let credentials = cohort_sync::regenerate_secret(&state, &auth.project.id).await?;
    Ok(Json(credentials.into()))
}

async fn disable(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<StatusCode, ApiError> {
    cohort_sync::disable(&state, &auth.project.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

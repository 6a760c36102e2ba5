//! API keys over REST: the public SDK key (read, rotate) and named secret keys (create,
//! list, revoke). A secret key's value appears only in the response that creates it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uj_domain::projects::SecretKey;

use crate::http::auth::SecretKeyAuth;
use crate::http::extract::{ApiJson, ApiQuery, ListParams};
use crate::http::ApiError;
use crate::services::api_keys;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api-keys", get(list).post(create))
        .route("/api-keys/{id}", delete(revoke))
        .route("/public-key", get(show_public_key))
        .route("/public-key/rotate", post(rotate_public_key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    name: String,
}

#[derive(Serialize)]
pub struct ApiKeyResponse {
    object: &'static str,
    id: String,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    /// Only in the response to creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<SecretKey> for ApiKeyResponse {
    fn from(key: SecretKey) -> Self {
        Self {
            object: "api_key",
            id: key.id.into_string(),
            name: key.name,
            prefix: key.prefix,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            secret: None,
        }
    }
}

#[derive(Serialize)]
pub struct ListResponse<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
}

#[derive(Serialize)]
pub struct PublicKeyResponse {
    object: &'static str,
    public_key: String,
}

async fn list(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<ApiKeyResponse>>, ApiError> {
    let page = state
        .store
        .secret_keys(&auth.project.id, &params.page()?)
        .await?;
    Ok(Json(ListResponse {
        object: "list",
        data: page.items.into_iter().map(Into::into).collect(),
        has_more: page.has_more,
    }))
}

async fn create(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyResponse>), ApiError> {
    let created =
        api_keys::create_secret_key(state.store.as_ref(), &auth.project.id, &request.name).await?;
    let mut response = ApiKeyResponse::from(created.key);
    response.secret = Some(created.secret.expose_secret().to_owned());
    Ok((StatusCode::CREATED, Json(response)))
}

async fn revoke(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let key = api_keys::revoke_secret_key(state.store.as_ref(), &auth.project.id, &id).await?;
    Ok(Json(key.into()))
}

async fn show_public_key(auth: SecretKeyAuth) -> Json<PublicKeyResponse> {
    Json(PublicKeyResponse {
        object: "public_key",
        public_key: auth.project.public_key,
    })
}

async fn rotate_public_key(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<Json<PublicKeyResponse>, ApiError> {
    let project = api_keys::rotate_public_key(&state, &auth.project.id).await?;
    Ok(Json(PublicKeyResponse {
        object: "public_key",
        public_key: project.public_key,
    }))
}

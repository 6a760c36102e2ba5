//! API keys over REST: the public SDK key (read, rotate) and named secret keys (create,
//! list, revoke). A secret key's value appears only in the response that creates it.

use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderName, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uj_domain::projects::SecretKey;

use super::ListResponse;
use crate::http::auth::SecretKeyAuth;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::http::ApiError;
use crate::services::api_keys;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, revoke))
        .routes(routes!(show_public_key))
        .routes(routes!(rotate_public_key))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyResponse {
    object: &'static str,
    id: String,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    #[schema(required = true)]
    last_used_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    revoked_at: Option<DateTime<Utc>>,
    /// Who made it, as said when it was made: an account's address (the dashboard), `API key
    /// “name” (uj_live_…)` (over REST), `admin bootstrap`; `null` for keys made before this
    /// was kept. After a leak, the keys the leaked one made are revoked too.
    #[schema(required = true)]
    created_by: Option<String>,
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
            created_by: key.created_by,
            secret: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicKeyResponse {
    object: &'static str,
    public_key: String,
}

#[utoipa::path(
    get,
    path = "/api-keys",
    operation_id = "list_api_keys",
    tag = "API keys",
    summary = "List secret keys (by prefix; never the secret)",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last id of the previous page")),
    responses((status = 200, description = "The keys", body = ListResponse<ApiKeyResponse>))
)]
async fn list(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<ApiKeyResponse>>, ApiError> {
    let page = state
        .store
        .secret_keys(&auth.project.id, &params.page()?)
        .await?;
    let data = page.items.into_iter().map(Into::into).collect();
    Ok(ListResponse::of(data, page.has_more))
}

#[utoipa::path(
    post,
    path = "/api-keys",
    operation_id = "create_api_key",
    tag = "API keys",
    summary = "Create a secret key (shown once)",
    request_body = CreateApiKeyRequest,
    responses((status = 201, description = "The key, with its secret this once; `Location` is its address", body = ApiKeyResponse))
)]
async fn create(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, [(HeaderName, String); 1], Json<ApiKeyResponse>), ApiError> {
    let created = api_keys::create_secret_key(
        state.store.as_ref(),
        &auth.project.id,
        &request.name,
        api_keys::Maker::Key(&auth.key),
    )
    .await?;
    let location = format!("/api/v1/api-keys/{}", created.key.id.as_str());
    let mut response = ApiKeyResponse::from(created.key);
    response.secret = Some(created.secret.expose_secret().to_owned());
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(response)))
}

#[utoipa::path(
    get,
    path = "/api-keys/{id}",
    operation_id = "get_api_key",
    tag = "API keys",
    summary = "Get a secret key (by prefix; never the secret)",
    params(("id" = String, Path, description = "The key id")),
    responses((status = 200, description = "The key", body = ApiKeyResponse))
)]
async fn show(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let key = api_keys::secret_key(state.store.as_ref(), &auth.project.id, &id).await?;
    Ok(Json(key.into()))
}

#[utoipa::path(
    delete,
    path = "/api-keys/{id}",
    operation_id = "revoke_api_key",
    tag = "API keys",
    summary = "Revoke a secret key",
    params(("id" = String, Path, description = "The key id")),
    responses((status = 200, description = "The revoked key", body = ApiKeyResponse))
)]
async fn revoke(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    let key = api_keys::revoke_secret_key(state.store.as_ref(), &auth.project.id, &id).await?;
    Ok(Json(key.into()))
}

#[utoipa::path(
    get,
    path = "/public-key",
    operation_id = "show_public_key",
    tag = "API keys",
    summary = "The public SDK key",
    responses((status = 200, description = "The public key", body = PublicKeyResponse))
)]
async fn show_public_key(auth: SecretKeyAuth) -> Json<PublicKeyResponse> {
    Json(PublicKeyResponse {
        object: "public_key",
        public_key: auth.project.public_key,
    })
}

#[utoipa::path(
    post,
    path = "/public-key/rotate",
    operation_id = "rotate_public_key",
    tag = "API keys",
    summary = "Rotate the public SDK key (the old one stops working)",
    description = "Replaces the key the project had when the request arrived. Of rotations sent at once, one answers the new key and the others `409 public_key_rotated_meanwhile`: read the key again (`GET /public-key`).",
    responses((status = 200, description = "The new public key", body = PublicKeyResponse))
)]
async fn rotate_public_key(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
) -> Result<Json<PublicKeyResponse>, ApiError> {
    let project = api_keys::rotate_public_key(&state, &auth.project).await?;
    Ok(Json(PublicKeyResponse {
        object: "public_key",
        public_key: project.public_key,
    }))
}

//! `POST /sdk/v1/invites/{code}/accept` and `/dismiss`: the app user takes or declines an
//! invite. Accepting reserves a start atomically and answers where to open the interview.
//! `POST /sdk/v1/links/resolve`: the user opened an interview link in the app; it answers
//! the same way.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::auth::PublicKeyAuth;
use crate::http::extract::{ApiJson, ApiPath, OptionalApiJson};
use crate::http::ApiError;
use crate::services::invites::{self, Acceptance};
use crate::services::links;
use crate::services::ServiceError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accept))
        .routes(routes!(dismiss))
        .routes(routes!(resolve))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    #[schema(min_length = 1, max_length = 256)]
    reference_id: String,
    #[serde(default)]
    supports_webview: bool,
}

#[utoipa::path(
    post,
    path = "/sdk/v1/invites/{code}/accept",
    operation_id = "sdk_accept_invite",
    tag = "SDK",
    summary = "Accept an invite: a start, and the URL to open",
    params(("code" = String, Path, description = "The invite code")),
    request_body = AcceptRequest,
    responses((status = 200, description = "Where to open the interview, or why not", body = AcceptanceResponse))
)]
async fn accept(
    State(state): State<AppState>,
    auth: PublicKeyAuth,
    ApiPath(code): ApiPath<String>,
    ApiJson(request): ApiJson<AcceptRequest>,
) -> Result<Json<AcceptanceResponse>, ApiError> {
    // Validated as config and events validate it: an id no app could send is named, not
    // answered "no such invite".
    let reference_id =
        uj_domain::invites::reference_id(&request.reference_id).map_err(ServiceError::Invalid)?;
    let outcome = invites::accept(
        &state,
        &auth.project.id,
        &code,
        &reference_id,
        request.supports_webview,
    )
    .await?;
    Ok(Json(acceptance_json(outcome)))
}

/// What an accept or a resolved link answers.
// Keys in alphabetical order, as they always were.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AcceptanceResponse {
    /// `webview` (open `url` in an in-app webview), `external_browser` (open it in the
    /// browser), or `not_eligible`.
    outcome: &'static str,
    /// Why not, with `not_eligible`: `invite_dismissed`, `invite_withdrawn`,
    /// `invite_expired`, `max_starts_reached`, `study_limit`, `already_started`,
    /// `not_in_audience`, `rule_paused`, `study_paused`, `no_matching_rule`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// Where to open the interview (a signed webview URL lasts 15 minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

fn acceptance_json(outcome: Acceptance) -> AcceptanceResponse {
    match outcome {
        Acceptance::Open { url, webview } => AcceptanceResponse {
            outcome: if webview {
                "webview"
            } else {
                "external_browser"
            },
            reason: None,
            url: Some(url),
        },
        Acceptance::NotEligible(reason) => AcceptanceResponse {
            outcome: "not_eligible",
            reason: Some(reason),
            url: None,
        },
    }
}

/// The body of a dismiss, which may be left out.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissRequest {
    /// The app user's id: when sent, another user's invite is not found (404), as at
    /// accept. Without it, the code alone names the invite.
    #[schema(min_length = 1, max_length = 256)]
    reference_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/sdk/v1/invites/{code}/dismiss",
    operation_id = "sdk_dismiss_invite",
    tag = "SDK",
    summary = "Dismiss an invite",
    params(("code" = String, Path, description = "The invite code")),
    request_body(content = Option<DismissRequest>, description = "Optional: the app user's id, checked against the invite's"),
    responses((status = 204, description = "Dismissed"))
)]
async fn dismiss(
    State(state): State<AppState>,
    auth: PublicKeyAuth,
    ApiPath(code): ApiPath<String>,
    OptionalApiJson(request): OptionalApiJson<DismissRequest>,
) -> Result<StatusCode, ApiError> {
    let reference_id = request
        .and_then(|r| r.reference_id)
        .map(|id| uj_domain::invites::reference_id(&id))
        .transpose()
        .map_err(ServiceError::Invalid)?;
    invites::dismiss(&state, &auth.project.id, &code, reference_id.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    url: String,
    #[schema(min_length = 1, max_length = 256)]
    reference_id: String,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
    /// Whether the app can open an in-app study in a webview; yes unless it says not.
    #[serde(default = "yes")]
    supports_webview: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(
    post,
    path = "/sdk/v1/links/resolve",
    operation_id = "sdk_resolve_link",
    tag = "SDK",
    summary = "Open an interview link (a direct link or a respondent link)",
    request_body = ResolveRequest,
    responses((status = 200, description = "Where to open the interview, or why not", body = AcceptanceResponse))
)]
async fn resolve(
    State(state): State<AppState>,
    auth: PublicKeyAuth,
    ApiJson(request): ApiJson<ResolveRequest>,
) -> Result<Json<AcceptanceResponse>, ApiError> {
    let reference_id =
        uj_domain::invites::reference_id(&request.reference_id).map_err(ServiceError::Invalid)?;
    let url =
        uj_domain::validation_text("url", &request.url, 2048).map_err(ServiceError::Invalid)?;
    let outcome = links::resolve(
        &state,
        &auth.project.id,
        &url,
        &reference_id,
        super::events::primitives(request.metadata),
        request.supports_webview,
    )
    .await?;
    Ok(Json(acceptance_json(outcome)))
}

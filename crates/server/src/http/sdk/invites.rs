//! `POST /sdk/v1/invites/{code}/accept` and `/dismiss`: the app user takes or declines an
//! invite. Accepting reserves a start atomically and answers where to open the interview.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::auth::PublicKeyAuth;
use crate::http::extract::ApiJson;
use crate::http::ApiError;
use crate::services::invites::{self, Acceptance};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/invites/{code}/accept", post(accept))
        .route("/invites/{code}/dismiss", post(dismiss))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    reference_id: String,
    #[serde(default)]
    supports_webview: bool,
}

async fn accept(
    State(state): State<AppState>,
    auth: PublicKeyAuth,
    Path(code): Path<String>,
    ApiJson(request): ApiJson<AcceptRequest>,
) -> Result<Json<Value>, ApiError> {
    let outcome = invites::accept(
        &state,
        &auth.project.id,
        &code,
        request.reference_id.trim(),
        request.supports_webview,
    )
    .await?;
    Ok(Json(match outcome {
        Acceptance::Open { url, webview } => json!({
            "outcome": if webview { "webview" } else { "external_browser" },
            "url": url,
        }),
        Acceptance::NotEligible(reason) => json!({ "outcome": "not_eligible", "reason": reason }),
    }))
}

async fn dismiss(
    State(state): State<AppState>,
    auth: PublicKeyAuth,
    Path(code): Path<String>,
) -> Result<StatusCode, ApiError> {
    invites::dismiss(&state, &auth.project.id, &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

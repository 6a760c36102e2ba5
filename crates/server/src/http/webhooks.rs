//! `POST /webhooks/mixpanel/{webhook_id}`: Mixpanel's cohort-sync deliveries (SPEC §4).
//! The reply is Mixpanel's format, `{"action", "status": "success"}` or `"failure"` with
//! `{"error": {"message", "code"}}`, and the HTTP status equals the code.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::services::cohort_sync;
use crate::state::AppState;

/// 1000 members with a few dozen properties each fit with room to spare.
pub const MAX_DELIVERY_BODY: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/mixpanel/{webhook_id}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_DELIVERY_BODY))
}

/// The action named in a body we may not be able to parse, to echo it back. Read alone: the
/// rest is skipped, not built into a tree (refusals come before authentication, and a
/// body of a few MiB of small values would take tens of MiB as one).
fn action_of(body: &[u8]) -> Value {
    #[derive(serde::Deserialize)]
    struct Named {
        action: Option<String>,
    }
    serde_json::from_slice::<Named>(body)
        .ok()
        .and_then(|named| named.action)
        .map_or(Value::Null, Value::String)
}

fn failure(status: u16, action: Value, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "action": action,
        "status": "failure",
        "error": { "message": message, "code": status },
    });
    (code, Json(body)).into_response()
}

async fn receive(
    State(state): State<AppState>,
    Path(webhook_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return failure(
                413,
                Value::Null,
                &format!("The delivery is larger than the {} MiB UserJourneys accepts; sync pages of at most 1000 members.", MAX_DELIVERY_BODY / 1024 / 1024),
            )
        }
        Err(_) => return failure(400, Value::Null, "The request body could not be read."),
    };
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    match cohort_sync::receive(&state, &webhook_id, authorization, &body).await {
        Ok(action) => {
            Json(json!({ "action": action.as_str(), "status": "success" })).into_response()
        }
        Err(refusal) => failure(refusal.status, action_of(&body), &refusal.message),
    }
}

//! `POST /sdk/v1/events`: the app reports an event. It joins the event catalog, and the
//! rules waiting for it decide through the pacing engine whether the user is invited.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uj_domain::validation_text;

use super::config::invite_json;
use crate::http::auth::PublicKeyAuth;
use crate::http::extract::ApiJson;
use crate::http::ApiError;
use crate::services::invites::{self, AppEvent, Evaluation};
use crate::services::ServiceError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", post(record))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    event_name: String,
    reference_id: String,
    #[serde(default)]
    metadata: Map<String, Value>,
}

async fn record(
    State(state): State<AppState>,
    auth: PublicKeyAuth,
    ApiJson(request): ApiJson<EventRequest>,
) -> Result<Json<Value>, ApiError> {
    let project = &auth.project.id;
    let name =
        validation_text("event_name", &request.event_name, 255).map_err(ServiceError::Invalid)?;
    let reference_id = validation_text("reference_id", &request.reference_id, 256)
        .map_err(ServiceError::Invalid)?;
    // Only primitives are kept for attribution.
    let metadata: Map<String, Value> = request
        .metadata
        .into_iter()
        .filter(|(_, v)| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)))
        .take(50)
        .collect();
    state
        .store
        .record_app_event(project, &name, Utc::now())
        .await?;
    let evaluation = invites::evaluate(
        &state,
        project,
        &reference_id,
        Some(AppEvent {
            name: &name,
            metadata,
        }),
    )
    .await?;
    Ok(Json(match evaluation {
        Evaluation::Invite(found) => {
            let (invite, rule) = *found;
            let in_app = invites::opens_in_app(&state, project, &invite).await?;
            json!({
                "outcome": if in_app { "webview" } else { "external_browser" },
                "pending_invite": invite_json(&invite, &rule),
            })
        }
        Evaluation::None(reason) => json!({ "outcome": "not_eligible", "reason": reason }),
    }))
}

//! `POST /sdk/v1/events`: the app reports an event. It joins the event catalog, and the
//! rules waiting for it decide through the pacing engine whether the user is invited (a
//! prompt), and which direct links it opens.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uj_domain::validation_text;

use super::config::{invite_json, link_json};
use crate::http::auth::PublicKeyAuth;
use crate::http::extract::ApiJson;
use crate::http::ApiError;
use crate::services::invites::{self, AppEvent, Evaluation};
use crate::services::links;
use crate::services::pacing::UserView;
use crate::services::ServiceError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(record))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    event_name: String,
    reference_id: String,
    #[serde(default)]
    metadata: Map<String, Value>,
}

#[utoipa::path(
    post,
    path = "/events",
    tag = "SDK",
    summary = "Report an app event: the rules waiting for it decide",
    request_body = EventRequest,
    responses((status = 200, description = "`{outcome: webview|external_browser|not_eligible, reason?, pending_invite?, direct_links?}`", body = Value))
)]
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
    let metadata = primitives(request.metadata);
    // Counted in memory, saved in batches (services::counters).
    state.counters.app_event(project, &name, Utc::now());
    let mut user = UserView::load(&state, project, &reference_id).await?;
    let evaluation = invites::evaluate(
        &state,
        &mut user,
        Some(AppEvent {
            name: &name,
            metadata,
        }),
    )
    .await?;
    let mut body = match evaluation {
        Evaluation::Invite(found) => {
            let (invite, rule) = *found;
            let in_app = invites::opens_in_app(&state, &user, &invite).await?;
            json!({
                "outcome": if in_app { "webview" } else { "external_browser" },
                "pending_invite": invite_json(&invite, &rule),
            })
        }
        Evaluation::None(reason) => json!({ "outcome": "not_eligible", "reason": reason }),
    };
    // Direct-link rules waiting for this event offer their links.
    let direct = links::eligible(&state, &mut user, Some(&name)).await?;
    if !direct.is_empty() {
        body["direct_links"] = direct.iter().map(link_json).collect();
    }
    Ok(Json(body))
}

/// The primitive properties of `metadata` (at most 50), kept for attribution.
pub(super) fn primitives(metadata: Map<String, Value>) -> Map<String, Value> {
    metadata
        .into_iter()
        .filter(|(_, v)| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)))
        .take(50)
        .collect()
}

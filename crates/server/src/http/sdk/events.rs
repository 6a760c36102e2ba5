//! `POST /sdk/v1/events`: the app reports an event. It joins the event catalog, and the
//! rules waiting for it decide through the pacing engine whether the user is invited (a
//! prompt), and which direct links it opens.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uj_domain::validation_name;

use super::config::{invite_json, link_json, InviteJson, LinkJson};
use super::FromPlayground;
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
    #[schema(min_length = 1, max_length = 255)]
    event_name: String,
    #[schema(min_length = 1, max_length = 256)]
    reference_id: String,
    #[serde(default)]
    metadata: Map<String, Value>,
}

#[utoipa::path(
    post,
    path = "/sdk/v1/events",
    operation_id = "sdk_record_event",
    tag = "SDK",
    summary = "Report an app event: the rules waiting for it decide",
    request_body = EventRequest,
    responses((status = 200, description = "What the rules waiting for the event decided", body = EventResponse))
)]
async fn record(
    State(state): State<AppState>,
    auth: PublicKeyAuth,
    FromPlayground(from_playground): FromPlayground,
    ApiJson(request): ApiJson<EventRequest>,
) -> Result<Response, ApiError> {
    let project = &auth.project.id;
    let name =
        validation_name("event_name", &request.event_name, 255).map_err(ServiceError::Invalid)?;
    let reference_id =
        uj_domain::invites::reference_id(&request.reference_id).map_err(ServiceError::Invalid)?;
    let metadata = primitives(request.metadata);
    let received = Utc::now();
    let event_rules = |r: &uj_domain::studies::LaunchRule| invites::waits_for(r, Some(&name));
    let mut user = UserView::load(&state, project, &reference_id, event_rules).await?;
    // An app that reports events before it loads config has called too.
    if !from_playground {
        user.note_sdk_contact(&state).await;
    }
    let evaluation = invites::evaluate(
        &state,
        &mut user,
        Some(AppEvent {
            name: &name,
            metadata,
        }),
    )
    .await?;
    let (outcome, reason, found) = match evaluation {
        Evaluation::Invite(found) => {
            let in_app = invites::opens_in_app(&state, &user, &found.0).await?;
            let outcome = if in_app {
                "webview"
            } else {
                "external_browser"
            };
            (outcome, None, Some(*found))
        }
        Evaluation::None(reason) => ("not_eligible", Some(reason), None),
    };
    // Direct-link rules waiting for this event offer their links.
    let direct = links::eligible(&state, &mut user, Some(&name)).await?;
    // Counted in memory, saved in batches (services::counters); only once answered, so an
    // event answered 503 and sent again counts once.
    state.counters.app_event(project, &name, received);
    Ok(Json(EventResponse {
        direct_links: direct.iter().map(link_json).collect(),
        outcome,
        pending_invite: found
            .as_ref()
            .map(|(invite, rule)| invite_json(invite, rule)),
        reason,
    })
    .into_response())
}

/// What an event answers.
// Keys in alphabetical order, as they always were.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventResponse<'a> {
    /// Links to studies the user may open now, offered by direct-link rules waiting for
    /// this event (left out when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    direct_links: Vec<LinkJson<'a>>,
    /// `webview` or `external_browser` (where the card's study opens once accepted), or
    /// `not_eligible`.
    outcome: &'static str,
    /// The card to show now, with `webview` or `external_browser`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_invite: Option<InviteJson<'a>>,
    /// Why not, with `not_eligible`: `no_matching_rule`, `cooldown`, `contact_limit`,
    /// `max_starts_reached`, `study_limit`, `already_started`, `not_in_audience`,
    /// `outside_schedule`, `sampled_out`, `lost_on_priority`, … (docs/launch-rules.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// The primitive properties of `metadata` kept for attribution: at most 50, keys of at most
/// 64 characters, text of at most 256, and 4 KiB in all (keys and values as UTF-8, the
/// first by name); others are dropped, so that what a public key (it ships in apps) can
/// store per invite stays a few kilobytes.
pub(super) fn primitives(metadata: Map<String, Value>) -> Map<String, Value> {
    let short = |text: &str, most: usize| text.chars().count() <= most;
    let mut room = METADATA_BYTES;
    metadata
        .into_iter()
        .filter(|(key, value)| {
            let size = match value {
                Value::String(text) if short(text, 256) => text.len(),
                Value::Number(number) => number.to_string().len(),
                Value::Bool(_) => 5,
                _ => return false,
            };
            let size = key.len() + size;
            let fits = short(key, 64) && size <= room;
            if fits {
                room -= size;
            }
            fits
        })
        .take(50)
        .collect()
}

/// The most metadata kept per invite, keys and values together.
const METADATA_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    /// However the characters are chosen (four bytes each here), what is kept of an event's
    /// metadata stays within 4 KiB: the 64 KiB a body may hold once was stored whole.
    #[test]
    fn metadata_kept_is_at_most_four_kibibytes() {
        let key = |i: usize| format!("{i:02}{}", "😀".repeat(62));
        let metadata: Map<String, Value> =
            (0..50).map(|i| (key(i), json!("😀".repeat(256)))).collect();
        let kept = super::primitives(metadata);
        let bytes: usize = kept
            .iter()
            .map(|(k, v)| k.len() + v.as_str().unwrap().len())
            .sum();
        assert!(
            !kept.is_empty() && bytes <= 4096,
            "{} kept, {bytes} bytes",
            kept.len()
        );
        let small: Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(super::primitives(small).len(), 50, "small values all fit");
    }
}

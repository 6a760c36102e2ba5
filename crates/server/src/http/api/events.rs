//! `GET /api/v1/events`: the project's event catalog — names seen in Mixpanel through the
//! connection, and (once the SDK sends them) names the app sent.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uj_domain::mixpanel::CatalogEvent;

use super::ListResponse;
use crate::http::auth::SecretKeyAuth;
use crate::http::extract::{ApiQuery, ListParams};
use crate::http::ApiError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventResponse {
    object: &'static str,
    name: String,
    seen_in_mixpanel: bool,
    #[schema(required = true)]
    seen_in_mixpanel_at: Option<DateTime<Utc>>,
    seen_in_app: bool,
    app_count: i64,
    #[schema(required = true)]
    app_first_seen_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    app_last_seen_at: Option<DateTime<Utc>>,
}

impl From<CatalogEvent> for EventResponse {
    fn from(e: CatalogEvent) -> Self {
        Self {
            object: "event",
            seen_in_mixpanel: e.seen_in_mixpanel_at.is_some(),
            seen_in_app: e.app_count > 0,
            name: e.name,
            seen_in_mixpanel_at: e.seen_in_mixpanel_at,
            app_count: e.app_count,
            app_first_seen_at: e.app_first_seen_at,
            app_last_seen_at: e.app_last_seen_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/events",
    operation_id = "list_events",
    tag = "Events",
    summary = "The event catalog: seen in the app and in Mixpanel",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last name of the previous page")),
    responses((status = 200, description = "A list of events, by name", body = ListResponse<EventResponse>))
)]
async fn list(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<EventResponse>>, ApiError> {
    let page = params.page()?;
    // The catalog is bounded (`MAX_APP_EVENT_NAMES` from the
    // app, plus Mixpanel's names), so it is paged here.
    let mut events = crate::services::counters::event_catalog(&state, &auth.project.id).await?;
    // In byte order whatever the database's collation, as `starting_after` compares.
    events.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let mut rest = events
        .into_iter()
        .skip_while(|e| {
            page.starting_after
                .as_ref()
                .is_some_and(|after| e.name <= *after)
        })
        .map(EventResponse::from);
    let data: Vec<EventResponse> = rest.by_ref().take(page.limit as usize).collect();
    let has_more = rest.next().is_some();
    Ok(ListResponse::of(data, has_more))
}

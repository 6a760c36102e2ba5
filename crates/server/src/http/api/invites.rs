//! `GET /api/v1/invites?reference_id=…`, `GET /api/v1/launch-rules/{id}/invites` and
//! `GET /api/v1/invites/{code}`: the attribution records of materialised invites (SPEC §2):
//! which rule, study, audience member or event made each, the allowlisted traits at the time,
//! and what became of it.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uj_domain::invites::{Invite, InviteState};

use super::ListResponse;
use crate::http::auth::SecretKeyAuth;
use crate::http::extract::{ApiPath, ApiQuery, ListParams};
use crate::http::ApiError;
use crate::services::{settings, ServiceError};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(of_rule))
        .routes(routes!(show))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteResponse {
    object: &'static str,
    /// The respondent code.
    code: String,
    rule_id: String,
    study_id: String,
    reference_id: String,
    /// `audience` or `app_event`.
    source: &'static str,
    #[schema(required = true)]
    audience_id: Option<String>,
    /// The audience member's Mixpanel distinct id (audience rules).
    #[schema(required = true)]
    audience_member_id: Option<String>,
    /// The event that made it (app-event rules), with its primitive metadata.
    #[schema(required = true)]
    event_name: Option<String>,
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
    /// The member's allowlisted traits when it was issued.
    #[schema(value_type = Object)]
    traits: Map<String, Value>,
    /// `issued`, `accepted`, `dismissed`, `expired` or `withdrawn` (it could no longer
    /// become a start: its user left the audience, its rule or study stopped, or its start
    /// was refused).
    state: &'static str,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    #[schema(required = true)]
    accepted_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    dismissed_at: Option<DateTime<Utc>>,
    /// Null for invites withdrawn before the time was recorded (migration 0020).
    #[schema(required = true)]
    withdrawn_at: Option<DateTime<Utc>>,
}

impl InviteResponse {
    /// `invite` as at `now`, with the traits `allowlist` names. An issued invite past its
    /// expiry is reported as expired, as the SDK treats it.
    fn new(invite: Invite, now: DateTime<Utc>, allowlist: &[String]) -> Self {
        let state = match invite.state {
            InviteState::Issued if !invite.is_pending(now) => InviteState::Expired,
            state => state,
        };
        Self {
            object: "invite",
            code: invite.code,
            rule_id: invite.rule_id.into_string(),
            study_id: invite.study_id.into_string(),
            reference_id: invite.reference_id,
            source: invite.source,
            audience_id: invite.audience_id,
            audience_member_id: invite.audience_member_id,
            event_name: invite.event_name,
            metadata: invite.metadata,
            traits: settings::allowlisted(invite.traits, allowlist),
            state: state.as_str(),
            issued_at: invite.issued_at,
            expires_at: invite.expires_at,
            accepted_at: invite.accepted_at,
            dismissed_at: invite.dismissed_at,
            withdrawn_at: invite.withdrawn_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInvitesParams {
    reference_id: Option<String>,
    limit: Option<u32>,
    starting_after: Option<String>,
}

#[utoipa::path(
    get,
    path = "/invites",
    operation_id = "list_invites",
    tag = "Invites",
    summary = "An app user's invites with their attribution, newest first",
    params(("reference_id" = String, Query, min_length = 1, max_length = 256, description = "The app user's id (1–256 characters)"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last code of the previous page")),
    responses((status = 200, description = "A list of invites", body = ListResponse<InviteResponse>))
)]
async fn list(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiQuery(params): ApiQuery<ListInvitesParams>,
) -> Result<Json<ListResponse<InviteResponse>>, ApiError> {
    let Some(reference_id) = params.reference_id else {
        let mut error = ApiError::bad_request(
            "invalid_request",
            "reference_id is required: the app user's id whose invites to list.",
        );
        error.field = Some("reference_id".into());
        return Err(error);
    };
    let reference_id =
        uj_domain::invites::reference_id(&reference_id).map_err(ServiceError::Invalid)?;
    let page = ListParams {
        limit: params.limit,
        starting_after: params.starting_after,
    }
    .page()?;
    let invites = state
        .store
        .user_invites_page(&auth.project.id, &reference_id, &page)
        .await?;
    let now = Utc::now();
    let allowlist = state.store.trait_allowlist(&auth.project.id).await?;
    let data: Vec<InviteResponse> = invites
        .items
        .into_iter()
        .map(|i| InviteResponse::new(i, now, &allowlist))
        .collect();
    let has_more = invites.has_more;
    Ok(ListResponse::of(data, has_more))
}

/// Every invite a rule issued, a page at a time: its attribution records, to export.
#[utoipa::path(
    get,
    path = "/launch-rules/{id}/invites",
    operation_id = "list_rule_invites",
    tag = "Invites",
    summary = "A rule's invites with their attribution, newest first",
    params(("id" = String, Path, description = "The rule id"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last code of the previous page")),
    responses((status = 200, description = "A list of invites", body = ListResponse<InviteResponse>))
)]
async fn of_rule(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<InviteResponse>>, ApiError> {
    let page = params.page()?;
    let rule = crate::services::studies::rule(&state, &auth.project.id, &id).await?;
    let invites = state
        .store
        .rule_invites_page(&auth.project.id, &rule.id, &page)
        .await?;
    let now = Utc::now();
    let allowlist = state.store.trait_allowlist(&auth.project.id).await?;
    let data = invites
        .items
        .into_iter()
        .map(|i| InviteResponse::new(i, now, &allowlist))
        .collect();
    Ok(ListResponse::of(data, invites.has_more))
}

#[utoipa::path(
    get,
    path = "/invites/{code}",
    operation_id = "show_invite",
    tag = "Invites",
    summary = "An invite with its attribution, by its respondent code",
    params(("code" = String, Path, description = "The respondent code")),
    responses((status = 200, description = "The invite", body = InviteResponse))
)]
async fn show(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<InviteResponse>, ApiError> {
    let invite = state
        .store
        .invite(&auth.project.id, &code)
        .await?
        .ok_or_else(|| ApiError::not_found("invite", "No invite of this project has that code."))?;
    let allowlist = state.store.trait_allowlist(&auth.project.id).await?;
    Ok(Json(InviteResponse::new(invite, Utc::now(), &allowlist)))
}

//! `/api/v1/audiences`: synced cohorts, their members and their sync history.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uj_domain::audiences::{Audience, AudienceMember, LedgerEntry};
use uj_domain::ids::AudienceId;

use super::ListResponse;
use crate::http::auth::SecretKeyAuth;
use crate::http::extract::{ApiPath, ApiQuery, ListParams};
use crate::http::ApiError;
use crate::services::{audiences, settings};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, delete))
        .routes(routes!(members))
        .routes(routes!(syncs))
        .routes(routes!(all_syncs))
}

fn sync_state() -> utoipa::openapi::schema::Object {
    super::one_of(audiences::STATES.iter().copied())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AudienceResponse {
    object: &'static str,
    id: String,
    name: String,
    description: String,
    provider: &'static str,
    mixpanel_cohort_id: String,
    /// The Mixpanel project the cohort is in (null: not known, for an audience written by
    /// an older server version).
    #[schema(required = true)]
    mixpanel_project_id: Option<String>,
    member_count: i64,
    #[schema(required = true)]
    last_synced_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    last_delivery_at: Option<DateTime<Utc>>,
    #[schema(schema_with = sync_state)]
    sync_state: &'static str,
    /// The first 100 pages not yet received of an unfinished full sync.
    missing_pages: Vec<i64>,
    /// How many pages it misses in all.
    missing_page_count: i64,
    created_at: DateTime<Utc>,
}

async fn describe(
    state: &AppState,
    audience: Audience,
    connected: Option<&str>,
) -> Result<AudienceResponse, ApiError> {
    let health = audiences::health(state, &audience, connected).await?;
    Ok(AudienceResponse {
        object: "audience",
        sync_state: health.state,
        missing_pages: health.missing_pages,
        missing_page_count: health.missing_page_count,
        id: audience.id.into_string(),
        name: audience.name,
        description: audience.description,
        provider: "mixpanel",
        mixpanel_cohort_id: audience.mixpanel_cohort_id,
        mixpanel_project_id: audience.mixpanel_project_id,
        member_count: audience.member_count,
        last_synced_at: audience.last_synced_at,
        last_delivery_at: audience.last_delivery_at,
        created_at: audience.created_at,
    })
}

#[utoipa::path(
    get,
    path = "/audiences",
    operation_id = "list_audiences",
    tag = "Audiences",
    summary = "List audiences",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last id of the previous page")),
    responses((status = 200, description = "A list of audiences", body = ListResponse<AudienceResponse>))
)]
async fn list(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<AudienceResponse>>, ApiError> {
    let page = state
        .store
        .audiences(&auth.project.id, &params.page()?)
        .await?;
    let connected = audiences::connected_project(&state, &auth.project.id).await?;
    let mut data = Vec::new();
    for audience in page.items {
        data.push(describe(&state, audience, connected.as_deref()).await?);
    }
    Ok(ListResponse::of(data, page.has_more))
}

async fn find(state: &AppState, auth: &SecretKeyAuth, id: String) -> Result<Audience, ApiError> {
    state
        .store
        .audience(&auth.project.id, &AudienceId::from_string(id))
        .await?
        .ok_or_else(|| ApiError::not_found("audience", "No such audience."))
}

#[utoipa::path(
    get,
    path = "/audiences/{id}",
    operation_id = "show_audience",
    tag = "Audiences",
    summary = "An audience",
    params(("id" = String, Path, description = "The audience id")),
    responses((status = 200, description = "The audience", body = AudienceResponse))
)]
async fn show(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AudienceResponse>, ApiError> {
    let audience = find(&state, &auth, id).await?;
    let connected = audiences::connected_project(&state, &auth.project.id).await?;
    Ok(Json(
        describe(&state, audience, connected.as_deref()).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/audiences/{id}",
    operation_id = "delete_audience",
    tag = "Audiences",
    summary = "Delete an audience with its members and sync history",
    description = "Refused (409 `audience_in_use`) while rules that are not archived target it. A cohort Mixpanel still syncs comes back as a new audience at its next delivery: remove the sync in Mixpanel first.",
    params(("id" = String, Path, description = "The audience id")),
    responses((status = 204, description = "Deleted"))
)]
async fn delete(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    audiences::delete(&state, &auth.project.id, &id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberResponse {
    object: &'static str,
    id: String,
    provider_member_id: String,
    #[schema(required = true)]
    reference_id: Option<String>,
    /// The member's properties the project's trait allowlist names.
    #[schema(value_type = Object)]
    traits: Map<String, Value>,
    entered_at: DateTime<Utc>,
    #[schema(required = true)]
    exited_at: Option<DateTime<Utc>>,
}

impl MemberResponse {
    /// `m` with the traits `allowlist` names.
    fn new(m: AudienceMember, allowlist: &[String]) -> Self {
        Self {
            object: "audience_member",
            // Unique within the audience: the member's id and its list cursor.
            id: m.provider_member_id.clone(),
            provider_member_id: m.provider_member_id,
            reference_id: m.reference_id,
            traits: settings::allowlisted(m.traits, allowlist),
            entered_at: m.entered_at,
            exited_at: m.exited_at,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberParams {
    limit: Option<u32>,
    starting_after: Option<String>,
    include_exited: Option<bool>,
    /// Look a member up by provider id or reference id.
    member_id: Option<String>,
    /// `member_id`'s former name (the path's audience id is also called `id`): still read.
    id: Option<String>,
}

impl MemberParams {
    /// The member looked up, by either name, not both, and the name it was sent as.
    fn lookup(&mut self) -> Result<Option<(String, &'static str)>, ApiError> {
        match (self.member_id.take(), self.id.take()) {
            (Some(_), Some(_)) => {
                let mut error = ApiError::bad_request(
                    "invalid_request",
                    "Send the member looked up as member_id alone: id is its former name.",
                );
                error.field = Some("id".into());
                Err(error)
            }
            (Some(named), None) => Ok(Some((named, "member_id"))),
            (None, Some(former)) => Ok(Some((former, "id"))),
            (None, None) => Ok(None),
        }
    }
}

#[utoipa::path(
    get,
    path = "/audiences/{id}/members",
    operation_id = "list_audience_members",
    tag = "Audiences",
    summary = "List current members (`include_exited=true` adds past ones)",
    params(("id" = String, Path, description = "The audience id"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last id of the previous page"), ("include_exited" = Option<bool>, Query, description = "Also members who left"), ("member_id" = Option<String>, Query, description = "Only the member with this provider id or reference id (also read as `id`, its former name)")),
    responses((status = 200, description = "A list of members", body = ListResponse<MemberResponse>))
)]
async fn members(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(mut params): ApiQuery<MemberParams>,
) -> Result<Json<ListResponse<MemberResponse>>, ApiError> {
    let lookup = params.lookup()?;
    let audience = find(&state, &auth, id).await?;
    let page = ListParams {
        limit: params.limit,
        starting_after: params.starting_after,
    }
    .page()?;
    let allowlist = state.store.trait_allowlist(&auth.project.id).await?;
    // Members who left only when asked for, a lookup's as the list's; a lookup pages too (a
    // cohort can list any number of distinct ids under one reference id).
    let with_exited = params.include_exited.unwrap_or(false);
    let members = match lookup {
        Some((lookup, sent_as)) => {
            let lookup = lookup.trim();
            if lookup.is_empty() {
                let mut error = ApiError::bad_request(
                    "invalid_request",
                    format!("{sent_as} is empty: send the provider id or reference id to look up, or leave it out to list the members."),
                );
                error.field = Some(sent_as.into());
                return Err(error);
            }
            state
                .store
                .find_audience_members(&audience.id, lookup, with_exited, &page)
                .await?
        }
        None => {
            state
                .store
                .audience_members(&audience.id, with_exited, &page)
                .await?
        }
    };
    let data: Vec<MemberResponse> = members
        .items
        .into_iter()
        .map(|member| MemberResponse::new(member, &allowlist))
        .collect();
    Ok(ListResponse::of(data, members.has_more))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LedgerResponse {
    object: &'static str,
    id: String,
    #[schema(required = true)]
    audience_id: Option<String>,
    action: String,
    #[schema(required = true)]
    session_id: Option<String>,
    #[schema(required = true)]
    page: Option<i64>,
    #[schema(required = true)]
    total_pages: Option<i64>,
    members: i64,
    added: i64,
    removed: i64,
    outcome: &'static str,
    #[schema(required = true)]
    error: Option<String>,
    received_at: DateTime<Utc>,
    /// The cohort a refused delivery named, as its body said it (null for a delivery
    /// applied, whose `audience_id` names it, and for one without the right credentials).
    #[schema(required = true)]
    mixpanel_cohort_id: Option<String>,
    /// That cohort's name, on one line (null when it named none).
    #[schema(required = true)]
    mixpanel_cohort_name: Option<String>,
}

impl From<LedgerEntry> for LedgerResponse {
    fn from(e: LedgerEntry) -> Self {
        Self {
            object: "sync",
            id: e.id.into_string(),
            audience_id: e.audience_id.map(AudienceId::into_string),
            action: e.action,
            session_id: e.session_id,
            page: e.page,
            total_pages: e.total_pages,
            members: e.members,
            added: e.added,
            removed: e.removed,
            outcome: e.outcome.as_str(),
            error: e.error,
            received_at: e.received_at,
            mixpanel_cohort_id: e.mixpanel_cohort_id,
            mixpanel_cohort_name: e.mixpanel_cohort_name,
        }
    }
}

async fn ledger(
    state: &AppState,
    auth: &SecretKeyAuth,
    audience: Option<&AudienceId>,
    params: ListParams,
) -> Result<Json<ListResponse<LedgerResponse>>, ApiError> {
    let page = state
        .store
        .sync_ledger(&auth.project.id, audience, &params.page()?)
        .await?;
    let data: Vec<LedgerResponse> = page.items.into_iter().map(Into::into).collect();
    Ok(ListResponse::of(data, page.has_more))
}

#[utoipa::path(
    get,
    path = "/audiences/{id}/syncs",
    operation_id = "list_audience_syncs",
    tag = "Audiences",
    summary = "An audience's sync ledger, newest first",
    params(("id" = String, Path, description = "The audience id"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last id of the previous page")),
    responses((status = 200, description = "A list of ledger entries", body = ListResponse<LedgerResponse>))
)]
async fn syncs(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<LedgerResponse>>, ApiError> {
    let audience = find(&state, &auth, id).await?;
    ledger(&state, &auth, Some(&audience.id), params).await
}

/// Every delivery of the project, rejected ones (which belong to no audience) included.
#[utoipa::path(
    get,
    path = "/syncs",
    operation_id = "list_syncs",
    tag = "Audiences",
    summary = "The project's sync ledger (rejected deliveries included), newest first",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last id of the previous page")),
    responses((status = 200, description = "A list of ledger entries", body = ListResponse<LedgerResponse>))
)]
async fn all_syncs(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<LedgerResponse>>, ApiError> {
    ledger(&state, &auth, None, params).await
}

//! `/api/v1/studies`: studies, their interview URL, launch mode and start limits. Their
//! launch rules are in `launch_rules`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uj_domain::pacing::StudyStatus;
use uj_domain::studies::{LaunchMode, Study};

use super::{IfMatch, ListResponse, Versioned};
use crate::http::auth::SecretKeyAuth;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::http::idempotency::{created, KeyedJson, Located, IDEMPOTENCY_KEY_DOC};
use crate::http::ApiError;
use crate::services::studies::{self, NewStudy, StudyChange};
use crate::services::ServiceError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_studies, create_study))
        .routes(routes!(show_study, update_study))
}

/// `raw` parsed by `parse` when present; a value it refuses is a 422 naming its field.
pub(super) fn parsed<T>(
    raw: Option<String>,
    parse: fn(&str) -> Result<T, uj_domain::ValidationError>,
) -> Result<Option<T>, ApiError> {
    raw.map(|r| parse(&r))
        .transpose()
        .map_err(|e| ServiceError::Invalid(e).into())
}

fn study_status() -> utoipa::openapi::schema::Object {
    super::one_of(StudyStatus::NAMES.iter().copied())
}

fn launch_mode() -> utoipa::openapi::schema::Object {
    super::one_of(LaunchMode::NAMES.iter().copied())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StudyResponse {
    object: &'static str,
    id: String,
    name: String,
    #[schema(schema_with = study_status)]
    status: &'static str,
    interview_url: String,
    #[schema(schema_with = launch_mode)]
    launch_mode: &'static str,
    #[schema(required = true)]
    weekly_limit: Option<i64>,
    #[schema(required = true)]
    monthly_limit: Option<i64>,
    public_code: String,
    /// Whether `/i/{public_code}` opens the interview in a plain browser, for anyone who has
    /// it; off, the study is reached only through its rules (direct links resolved by the SDK).
    public_link: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Study> for StudyResponse {
    fn from(s: Study) -> Self {
        Self {
            object: "study",
            id: s.id.into_string(),
            name: s.name,
            status: s.status.as_str(),
            interview_url: s.interview_url,
            launch_mode: s.launch_mode.as_str(),
            weekly_limit: s.weekly_limit,
            monthly_limit: s.monthly_limit,
            public_code: s.public_code,
            public_link: s.public_link,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStudyRequest {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[schema(max_length = 2000)]
    interview_url: String,
    // Absent takes the default; `null` is refused, as a PATCH refuses it.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(schema_with = study_status)]
    status: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(schema_with = launch_mode)]
    launch_mode: Option<String>,
    /// Absent or `null`: no limit.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    weekly_limit: Option<i64>,
    /// Absent or `null`: no limit.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    monthly_limit: Option<i64>,
    /// Default `true`.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false)]
    public_link: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStudyRequest {
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, max_length = 2000)]
    interview_url: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(schema_with = study_status)]
    status: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(schema_with = launch_mode)]
    launch_mode: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::nullable")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    weekly_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::extract::nullable")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    monthly_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false)]
    public_link: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/studies",
    operation_id = "create_study",
    tag = "Studies",
    summary = "Create a study",
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = IDEMPOTENCY_KEY_DOC)),
    request_body = CreateStudyRequest,
    responses((status = 201, description = "The study", body = StudyResponse, headers(("Location" = String, description = "The created resource's address"), ("ETag" = String, description = "Its version, for `If-Match` on a change"), ("Idempotent-Replayed" = String, description = "`true` on the replayed answer of an earlier request with the same Idempotency-Key"))))
)]
async fn create_study(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    KeyedJson { body: r, keyed }: KeyedJson<CreateStudyRequest>,
) -> Result<Located, ApiError> {
    let new = NewStudy {
        name: r.name,
        interview_url: r.interview_url,
        status: parsed(r.status, StudyStatus::parse)?,
        launch_mode: parsed(r.launch_mode, LaunchMode::parse)?,
        weekly_limit: r.weekly_limit,
        monthly_limit: r.monthly_limit,
        public_link: r.public_link,
    };
    let answer = |study: &Study| created(StudyResponse::from(study.clone()));
    let project = &auth.project.id;
    Ok(Located(
        studies::create_study_answered(&state, project, new, keyed.as_ref(), answer).await?,
        "/api/v1/studies",
    ))
}

#[utoipa::path(
    get,
    path = "/studies",
    operation_id = "list_studies",
    tag = "Studies",
    summary = "List studies",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last id of the previous page")),
    responses((status = 200, description = "A list of studies", body = ListResponse<StudyResponse>))
)]
async fn list_studies(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<StudyResponse>>, ApiError> {
    let page = state
        .store
        .studies(&auth.project.id, &params.page()?)
        .await?;
    let data: Vec<StudyResponse> = page.items.into_iter().map(Into::into).collect();
    Ok(ListResponse::of(data, page.has_more))
}

#[utoipa::path(
    get,
    path = "/studies/{id}",
    operation_id = "show_study",
    tag = "Studies",
    summary = "A study",
    params(("id" = String, Path, description = "The study id")),
    responses((status = 200, description = "The study", body = StudyResponse, headers(("ETag" = String, description = "Its version, for `If-Match` on a change"))))
)]
async fn show_study(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Versioned<StudyResponse>, ApiError> {
    let study = studies::study(&state, &auth.project.id, &id).await?;
    Ok(Versioned(study.updated_at, study.into()))
}

#[utoipa::path(
    patch,
    path = "/studies/{id}",
    operation_id = "update_study",
    tag = "Studies",
    summary = "Change a study (any subset)",
    params(("id" = String, Path, description = "The study id"), ("If-Match" = Option<String>, Header, description = "Change only the version with this ETag (else 412 precondition_failed)")),
    request_body = UpdateStudyRequest,
    responses((status = 200, description = "The study", body = StudyResponse, headers(("ETag" = String, description = "Its version, for `If-Match` on a change"))))
)]
async fn update_study(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
    if_match: IfMatch,
    ApiJson(r): ApiJson<UpdateStudyRequest>,
) -> Result<Versioned<StudyResponse>, ApiError> {
    let change = StudyChange {
        name: r.name,
        interview_url: r.interview_url,
        status: parsed(r.status, StudyStatus::parse)?,
        launch_mode: parsed(r.launch_mode, LaunchMode::parse)?,
        public_link: r.public_link,
        weekly_limit: r.weekly_limit,
        monthly_limit: r.monthly_limit,
        version: if_match.version(),
    };
    let study = studies::update_study(&state, &auth.project.id, &id, change)
        .await
        .map_err(|error| if_match.refusal(error))?;
    Ok(Versioned(study.updated_at, study.into()))
}

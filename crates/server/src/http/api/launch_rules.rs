//! `/api/v1/studies/{id}/launch-rules` and `/api/v1/launch-rules`: a study's launch rules,
//! archiving, `explain` (every gate and its verdict for one user now) and `stats`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uj_domain::pacing::{RuleStatus, Trigger};
use uj_domain::studies::{LaunchRule, PromptCopy, Surface};

use super::studies::parsed;
use super::{IfMatch, ListResponse, Versioned};
use crate::http::auth::SecretKeyAuth;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, ListParams};
use crate::http::idempotency::{created, KeyedJson, Located, IDEMPOTENCY_KEY_DOC};
use crate::http::ApiError;
use crate::services::studies::{self, NewRule, RuleChange};
use crate::services::ServiceError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(show_rule, update_rule))
        .routes(routes!(archive_rule))
        .routes(routes!(explain))
        .routes(routes!(stats))
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    deny_unknown_fields,
    try_from = "TriggerFields"
)]
pub enum TriggerBody {
    AppEvent { event_name: String },
    Audience { audience_id: String },
}

/// A trigger as sent, read as a plain object so that a field of the wrong type is named
/// with its path (`trigger.event_name`): a tagged enum is read whole first, and its errors
/// named `trigger` alone (found by the fuzz probe).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerFields {
    #[serde(rename = "type")]
    kind: TriggerKind,
    // Absent is `None`; present, text (`null` is no name, nor a field to leave out).
    #[serde(default, deserialize_with = "text")]
    event_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    audience_id: Option<String>,
}

fn text<'de, D: serde::Deserializer<'de>>(sent: D) -> Result<Option<String>, D::Error> {
    String::deserialize(sent).map(Some)
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum TriggerKind {
    AppEvent,
    Audience,
}

impl TryFrom<TriggerFields> for TriggerBody {
    type Error = &'static str;

    fn try_from(sent: TriggerFields) -> Result<Self, Self::Error> {
        match (sent.kind, sent.event_name, sent.audience_id) {
            (TriggerKind::AppEvent, Some(event_name), None) => Ok(Self::AppEvent { event_name }),
            (TriggerKind::Audience, None, Some(audience_id)) => Ok(Self::Audience { audience_id }),
            (TriggerKind::AppEvent, None, _) => Err("missing field `event_name`"),
            (TriggerKind::AppEvent, Some(_), Some(_)) => {
                Err("unknown field `audience_id` for an app_event trigger, expected `event_name`")
            }
            (TriggerKind::Audience, _, None) => Err("missing field `audience_id`"),
            (TriggerKind::Audience, Some(_), Some(_)) => {
                Err("unknown field `event_name` for an audience trigger, expected `audience_id`")
            }
        }
    }
}

/// Written by hand: utoipa cannot close the variants of a tagged enum
/// (`additionalProperties: false`, as `deny_unknown_fields` holds them).
impl utoipa::PartialSchema for TriggerBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let variant = |tag: &str, field: &str, max_length: Option<usize>| {
            let text = ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(max_length);
            let tag = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([tag]));
            ObjectBuilder::new()
                .property("type", tag)
                .property(field, text)
                .required(field)
                .required("type")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(variant("app_event", "event_name", Some(255)))
            .item(variant("audience", "audience_id", None))
            .into()
    }
}

impl utoipa::ToSchema for TriggerBody {}

impl From<TriggerBody> for Trigger {
    fn from(t: TriggerBody) -> Self {
        match t {
            TriggerBody::AppEvent { event_name } => Trigger::AppEvent(event_name),
            TriggerBody::Audience { audience_id } => Trigger::Audience(audience_id),
        }
    }
}

impl From<Trigger> for TriggerBody {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::AppEvent(event_name) => TriggerBody::AppEvent { event_name },
            Trigger::Audience(audience_id) => TriggerBody::Audience { audience_id },
        }
    }
}

#[derive(Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptBody {
    #[serde(default)]
    #[schema(max_length = 120)]
    title: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    message: String,
    #[serde(default)]
    #[schema(max_length = 40)]
    start_label: String,
    #[serde(default)]
    #[schema(max_length = 40)]
    dismiss_label: String,
}

/// A rule's copy as stored; empty means the SDK's default.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PromptResponse {
    title: String,
    message: String,
    start_label: String,
    dismiss_label: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptChange {
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, max_length = 120)]
    title: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, max_length = 500)]
    message: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, max_length = 40)]
    start_label: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, max_length = 40)]
    dismiss_label: Option<String>,
}

fn rule_status() -> utoipa::openapi::schema::Object {
    super::one_of(RuleStatus::NAMES.iter().copied())
}

/// A rule is archived through its own route, never by a status written.
fn settable_rule_status() -> utoipa::openapi::schema::Object {
    super::one_of(
        RuleStatus::NAMES
            .iter()
            .copied()
            .filter(|name| *name != RuleStatus::Archived.as_str()),
    )
}

fn surface() -> utoipa::openapi::schema::Object {
    super::one_of(Surface::NAMES.iter().copied())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RuleResponse {
    object: &'static str,
    id: String,
    study_id: String,
    name: String,
    #[schema(schema_with = rule_status)]
    status: &'static str,
    trigger: TriggerBody,
    #[schema(schema_with = surface)]
    surface: &'static str,
    prompt: PromptResponse,
    priority: i64,
    cooldown_seconds: i64,
    #[schema(required = true)]
    max_starts: Option<i64>,
    sampling_percent: i64,
    #[schema(required = true)]
    starts_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    ends_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<LaunchRule> for RuleResponse {
    fn from(r: LaunchRule) -> Self {
        Self {
            object: "launch_rule",
            id: r.id.into_string(),
            study_id: r.study_id.into_string(),
            name: r.name,
            status: r.status.as_str(),
            trigger: r.trigger.into(),
            surface: r.surface.as_str(),
            prompt: PromptResponse {
                title: r.prompt.title,
                message: r.prompt.message,
                start_label: r.prompt.start_label,
                dismiss_label: r.prompt.dismiss_label,
            },
            priority: r.priority,
            cooldown_seconds: r.cooldown_seconds,
            max_starts: r.max_starts,
            sampling_percent: r.sampling_percent,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRuleRequest {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    trigger: TriggerBody,
    #[schema(schema_with = surface)]
    surface: String,
    // Absent takes the default; `null` is refused, as a PATCH refuses it.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(schema_with = settable_rule_status)]
    status: Option<String>,
    #[serde(default)]
    prompt: PromptBody,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, minimum = -1000, maximum = 1000)]
    priority: Option<i64>,
    /// Seconds, at most ten years.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, minimum = 0, maximum = 316_224_000)]
    cooldown_seconds: Option<i64>,
    /// Absent or `null`: no cap.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    max_starts: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, minimum = 0, maximum = 100)]
    sampling_percent: Option<i64>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRuleRequest {
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false)]
    trigger: Option<TriggerBody>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(schema_with = surface)]
    surface: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(schema_with = settable_rule_status)]
    status: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false)]
    prompt: Option<PromptChange>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, minimum = -1000, maximum = 1000)]
    priority: Option<i64>,
    /// Seconds, at most ten years.
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, minimum = 0, maximum = 316_224_000)]
    cooldown_seconds: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::extract::nullable")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    max_starts: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::http::extract::present")]
    #[schema(nullable = false, minimum = 0, maximum = 100)]
    sampling_percent: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::extract::nullable")]
    starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "crate::http::extract::nullable")]
    ends_at: Option<Option<DateTime<Utc>>>,
}

#[utoipa::path(
    post,
    path = "/studies/{id}/launch-rules",
    operation_id = "create_rule",
    tag = "Studies",
    summary = "Create a launch rule (draft unless a status is given)",
    params(("id" = String, Path, description = "The study id"), ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = IDEMPOTENCY_KEY_DOC)),
    request_body = CreateRuleRequest,
    responses((status = 201, description = "The rule", body = RuleResponse, headers(("Location" = String, description = "The created resource's address"), ("ETag" = String, description = "Its version, for `If-Match` on a change"), ("Idempotent-Replayed" = String, description = "`true` on the replayed answer of an earlier request with the same Idempotency-Key"))))
)]
async fn create_rule(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(study_id): ApiPath<String>,
    KeyedJson { body: r, keyed }: KeyedJson<CreateRuleRequest>,
) -> Result<Located, ApiError> {
    let new = NewRule {
        name: r.name,
        trigger: r.trigger.into(),
        surface: Surface::parse(&r.surface).map_err(ServiceError::Invalid)?,
        status: parsed(r.status, RuleStatus::parse)?,
        prompt: PromptCopy {
            title: r.prompt.title,
            message: r.prompt.message,
            start_label: r.prompt.start_label,
            dismiss_label: r.prompt.dismiss_label,
        },
        priority: r.priority,
        cooldown_seconds: r.cooldown_seconds,
        max_starts: r.max_starts,
        sampling_percent: r.sampling_percent,
        starts_at: r.starts_at,
        ends_at: r.ends_at,
    };
    let answer = |rule: &LaunchRule| created(RuleResponse::from(rule.clone()));
    let project = &auth.project.id;
    let keyed = keyed.as_ref();
    Ok(Located(
        studies::create_rule_answered(&state, project, &study_id, new, keyed, answer).await?,
        "/api/v1/launch-rules",
    ))
}

#[utoipa::path(
    get,
    path = "/studies/{id}/launch-rules",
    operation_id = "list_rules",
    tag = "Studies",
    summary = "A study's launch rules",
    params(("id" = String, Path, description = "The study id"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"), ("starting_after" = Option<String>, Query, max_length = 1024, description = "The last id of the previous page")),
    responses((status = 200, description = "A list of rules, oldest first", body = ListResponse<RuleResponse>))
)]
async fn list_rules(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(study_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListResponse<RuleResponse>>, ApiError> {
    let page = params.page()?;
    let study = studies::study(&state, &auth.project.id, &study_id).await?;
    let rules = state
        .store
        .launch_rules_of_study(&auth.project.id, &study.id, &page)
        .await?;
    let data: Vec<RuleResponse> = rules.items.into_iter().map(Into::into).collect();
    Ok(ListResponse::of(data, rules.has_more))
}

#[utoipa::path(
    get,
    path = "/launch-rules/{id}",
    operation_id = "show_rule",
    tag = "Studies",
    summary = "A launch rule",
    params(("id" = String, Path, description = "The rule id")),
    responses((status = 200, description = "The rule", body = RuleResponse, headers(("ETag" = String, description = "Its version, for `If-Match` on a change"))))
)]
async fn show_rule(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Versioned<RuleResponse>, ApiError> {
    let rule = studies::rule(&state, &auth.project.id, &id).await?;
    Ok(Versioned(rule.updated_at, rule.into()))
}

#[utoipa::path(
    patch,
    path = "/launch-rules/{id}",
    operation_id = "update_rule",
    tag = "Studies",
    summary = "Change a rule (any subset; the trigger is fixed: 422 trigger_immutable)",
    params(("id" = String, Path, description = "The rule id"), ("If-Match" = Option<String>, Header, description = "Change only the version with this ETag (else 412 precondition_failed)")),
    request_body = UpdateRuleRequest,
    responses((status = 200, description = "The rule", body = RuleResponse, headers(("ETag" = String, description = "Its version, for `If-Match` on a change"))))
)]
async fn update_rule(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
    if_match: IfMatch,
    ApiJson(r): ApiJson<UpdateRuleRequest>,
) -> Result<Versioned<RuleResponse>, ApiError> {
    let prompt = r.prompt;
    let change = RuleChange {
        name: r.name,
        trigger: r.trigger.map(Into::into),
        surface: parsed(r.surface, Surface::parse)?,
        status: parsed(r.status, RuleStatus::parse)?,
        prompt_title: prompt.as_ref().and_then(|p| p.title.clone()),
        prompt_message: prompt.as_ref().and_then(|p| p.message.clone()),
        prompt_start_label: prompt.as_ref().and_then(|p| p.start_label.clone()),
        prompt_dismiss_label: prompt.as_ref().and_then(|p| p.dismiss_label.clone()),
        priority: r.priority,
        cooldown_seconds: r.cooldown_seconds,
        max_starts: r.max_starts,
        sampling_percent: r.sampling_percent,
        starts_at: r.starts_at,
        ends_at: r.ends_at,
        version: if_match.version(),
    };
    let rule = studies::update_rule(&state, &auth.project.id, &id, change)
        .await
        .map_err(|error| if_match.refusal(error))?
        .rule;
    Ok(Versioned(rule.updated_at, rule.into()))
}

#[utoipa::path(
    post,
    path = "/launch-rules/{id}/archive",
    operation_id = "archive_rule",
    tag = "Studies",
    summary = "Archive a rule (final)",
    params(("id" = String, Path, description = "The rule id"), ("If-Match" = Option<String>, Header, description = "Archive only the version with this ETag (else 412 precondition_failed)")),
    responses((status = 200, description = "The archived rule", body = RuleResponse, headers(("ETag" = String, description = "Its version, for `If-Match` on a change"))))
)]
async fn archive_rule(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
    if_match: IfMatch,
) -> Result<Versioned<RuleResponse>, ApiError> {
    // Its version, as every other answer of a rule (found by the studies review).
    let rule = studies::archive_rule(&state, &auth.project.id, &id, if_match.version())
        .await
        .map_err(|error| if_match.refusal(error))?;
    Ok(Versioned(rule.updated_at, rule.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainParams {
    reference_id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/launch-rules/{id}/explain",
    operation_id = "explain_rule",
    tag = "Studies",
    summary = "Every pacing gate and its verdict for one user now",
    params(("id" = String, Path, description = "The rule id"), ("reference_id" = String, Query, min_length = 1, max_length = 256, description = "The app user's id (1–256 characters)")),
    responses((status = 200, description = "Each gate and its verdict", body = ExplanationResponse))
)]
async fn explain(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExplainParams>,
) -> Result<Json<ExplanationResponse>, ApiError> {
    let Some(reference_id) = params.reference_id else {
        let mut error = ApiError::bad_request(
            "invalid_request",
            "reference_id is required: the app user's id to explain the rule for.",
        );
        error.field = Some("reference_id".into());
        return Err(error);
    };
    let (rule, gates) = studies::explain(&state, &auth.project.id, &id, &reference_id).await?;
    Ok(Json(ExplanationResponse {
        object: "explanation",
        rule_id: rule.id.into_string(),
        reference_id: reference_id.trim().to_owned(),
        eligible: gates.iter().all(|g| g.passed),
        gates: gates
            .into_iter()
            .map(|g| GateResponse {
                reason: (!g.passed).then_some(g.reason.code()),
                gate: g.gate,
                passed: g.passed,
                detail: g.detail,
            })
            .collect(),
    }))
}

/// Whether a rule would invite a user now, gate by gate.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExplanationResponse {
    object: &'static str,
    rule_id: String,
    reference_id: String,
    /// Every gate passed.
    eligible: bool,
    /// In the order the engine checks them.
    gates: Vec<GateResponse>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct GateResponse {
    /// `rule_status`, `study_status`, `schedule`, `audience`, `cooldown`, … (docs/launch-rules.md).
    gate: &'static str,
    passed: bool,
    /// In words, for a person.
    detail: String,
    /// The reason an app would get (`cooldown`, `max_starts_reached`, …); null when passed.
    #[schema(required = true)]
    reason: Option<&'static str>,
}

/// What a rule has done.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsResponse {
    object: &'static str,
    rule_id: String,
    invites: InviteCounts,
    /// Its pacing decisions that said no, by reason (`cooldown`, `lost_on_priority`, …).
    suppressions: std::collections::BTreeMap<String, i64>,
}

/// A rule's invites by state (`issued` counts them all).
#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteCounts {
    issued: i64,
    pending: i64,
    accepted: i64,
    dismissed: i64,
    expired: i64,
    withdrawn: i64,
}

/// What the rule has done: invites per state and its pacing decisions that said no, per
/// reason (`lost_on_priority` included).
#[utoipa::path(
    get,
    path = "/launch-rules/{id}/stats",
    operation_id = "rule_stats",
    tag = "Studies",
    summary = "Invites per state and suppressions per reason",
    params(("id" = String, Path, description = "The rule id")),
    responses((status = 200, description = "Invites per state and suppressions per reason", body = StatsResponse))
)]
async fn stats(
    State(state): State<AppState>,
    auth: SecretKeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StatsResponse>, ApiError> {
    let (rule, stats) =
        crate::services::counters::rule_stats(&state, &auth.project.id, &id).await?;
    Ok(Json(StatsResponse {
        object: "launch_rule_stats",
        rule_id: rule.id.into_string(),
        invites: InviteCounts {
            issued: stats.issued,
            pending: stats.pending,
            accepted: stats.accepted,
            dismissed: stats.dismissed,
            expired: stats.expired,
            withdrawn: stats.withdrawn,
        },
        suppressions: stats.suppressions.into_iter().collect(),
    }))
}

//! `GET /sdk/v1/config?reference_id=…`: what the app should listen for and show.
//!
//! The user's pending audience invite (issued now through the pacing engine when an active
//! audience rule selects the user; the same one again on later loads until it is accepted,
//! dismissed or expires), the app-event triggers to report, and the direct links the user
//! may open now. The first call marks the project as having contacted the SDK API.

use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::FromPlayground;
use crate::http::auth::PublicKeyAuth;
use crate::http::extract::ApiQuery;
use crate::http::ApiError;
use crate::services::invites;
use crate::services::links::{self, DirectLink};
use crate::services::pacing::UserView;
use crate::services::ServiceError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long an app may cache the configuration before asking again.
const TTL_SECONDS: u32 = 300;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigParams {
    reference_id: Option<String>,
}

/// What a config load answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConfigResponse<'a> {
    /// How long the app may use this answer before loading it again.
    ttl_seconds: u32,
    /// The app events worth reporting: `[{"event_name": …}, …]` (serialised once per rule
    /// snapshot).
    #[schema(value_type = Vec<Object>)]
    triggers: &'a serde_json::value::RawValue,
    /// The card to show the user now, if any.
    #[schema(required = true)]
    pending_invite: Option<InviteJson<'a>>,
    /// Links to studies the user may open now.
    direct_links: Vec<LinkJson<'a>>,
}

#[utoipa::path(
    get,
    path = "/sdk/v1/config",
    operation_id = "sdk_config",
    tag = "SDK",
    summary = "The app user's configuration: triggers, pending invite, direct links",
    params(("reference_id" = String, Query, min_length = 1, max_length = 256, description = "The app user's id (1–256 characters)"), ("If-None-Match" = Option<String>, Header, description = "The ETag of the previous answer")),
    responses((status = 200, description = "The user's configuration, with an `ETag`", body = ConfigResponse, headers(("ETag" = String, description = "Send it back as If-None-Match"))), (status = 304, description = "Unchanged since the ETag sent in If-None-Match"))
)]
async fn show(
    State(state): State<AppState>,
    auth: PublicKeyAuth,
    FromPlayground(from_playground): FromPlayground,
    IfNoneMatch(if_none_match): IfNoneMatch,
    ApiQuery(params): ApiQuery<ConfigParams>,
) -> Result<Response, ApiError> {
    let Some(reference_id) = params.reference_id else {
        let mut error = ApiError::bad_request(
            "invalid_request",
            "reference_id is required: the app user's id, at most 256 characters.",
        );
        error.field = Some("reference_id".into());
        return Err(error);
    };
    // Validated as `POST /sdk/v1/events` validates it, so both accept the same ids.
    let reference_id =
        uj_domain::invites::reference_id(&reference_id).map_err(ServiceError::Invalid)?;
    tracing::debug!(project_id = %auth.project.id, "SDK configuration served");
    let project = &auth.project.id;
    // A config load considers audience rules (its prompt and its direct links).
    let audience_rules = |r: &uj_domain::studies::LaunchRule| invites::waits_for(r, None);
    let mut user = UserView::load(&state, project, &reference_id, audience_rules).await?;
    if !from_playground {
        user.note_sdk_contact(&state).await;
    }
    let pending = match invites::evaluate(&state, &mut user, None).await? {
        invites::Evaluation::Invite(found) => Some(*found),
        invites::Evaluation::None(_) => None,
    };
    let links = links::eligible(&state, &mut user, None).await?;
    let body = ConfigResponse {
        ttl_seconds: TTL_SECONDS,
        triggers: &user.snapshot.triggers_json,
        pending_invite: pending
            .as_ref()
            .map(|(invite, rule)| invite_json(invite, rule)),
        direct_links: links.iter().map(link_json).collect(),
    };
    // An ETag of the body: an app that sends it back gets 304 while nothing changed.
    let bytes =
        serde_json::to_vec(&body).map_err(|e| ApiError::internal(anyhow::Error::from(e)))?;
    let etag = format!("\"{}\"", &uj_domain::keys::bytes_hash(&bytes)[..32]);
    // Compared weakly (RFC 9110 §13.1.2: `W/` ignored), and `*` matches any answer.
    // Header lines sent apart are one list (RFC 9110 §5.3).
    let cached = if_none_match
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    let mut response = if cached {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    // Per user (it may carry their invite): no shared cache keeps it, and an HTTP cache
    // reuses it only after asking with its ETag (`ttl_seconds` says when the app should).
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(response)
}

/// The request's `If-None-Match`, taken alone (axum's `HeaderMap` extractor copies every
/// header of every request).
pub struct IfNoneMatch(Vec<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let lines = parts.headers.get_all(header::IF_NONE_MATCH);
        Ok(Self(lines.iter().cloned().collect()))
    }
}

/// An invite: the card to show.
// Keys in alphabetical order, as they always were.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteJson<'a> {
    /// The invite's code, to accept or dismiss it.
    code: &'a str,
    expires_at: chrono::DateTime<chrono::Utc>,
    prompt: PromptJson<'a>,
    rule_id: &'a str,
    /// `audience` or `app_event`.
    source: &'a str,
    study_id: &'a str,
}

pub fn invite_json<'a>(
    invite: &'a uj_domain::invites::Invite,
    rule: &'a uj_domain::studies::LaunchRule,
) -> InviteJson<'a> {
    InviteJson {
        code: &invite.code,
        expires_at: invite.expires_at,
        prompt: prompt_json(&rule.prompt),
        rule_id: invite.rule_id.as_str(),
        source: invite.source,
        study_id: invite.study_id.as_str(),
    }
}

/// A direct link as the SDK shows it: the rule's copy and the link to open through
/// `POST /sdk/v1/links/resolve`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LinkJson<'a> {
    prompt: PromptJson<'a>,
    rule_id: &'a str,
    study_id: &'a str,
    url: &'a str,
}

pub fn link_json(link: &DirectLink) -> LinkJson<'_> {
    LinkJson {
        prompt: prompt_json(&link.rule.prompt),
        rule_id: link.rule.id.as_str(),
        study_id: link.rule.study_id.as_str(),
        url: &link.url,
    }
}

/// The rule's copy; empty strings mean the SDK's defaults.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PromptJson<'a> {
    dismiss_label: &'a str,
    message: &'a str,
    start_label: &'a str,
    title: &'a str,
}

fn prompt_json(prompt: &uj_domain::studies::PromptCopy) -> PromptJson<'_> {
    PromptJson {
        dismiss_label: &prompt.dismiss_label,
        message: &prompt.message,
        start_label: &prompt.start_label,
        title: &prompt.title,
    }
}

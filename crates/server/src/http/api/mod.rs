//! The REST API under `/api/v1`, authenticated with a live secret key.

mod api_keys;
mod audiences;
mod cohort_sync;
mod events;
mod invites;
mod launch_rules;
mod mixpanel;
mod project;
mod studies;

use crate::http::ApiError;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;

use super::extract::MAX_JSON_BODY;
use crate::state::AppState;

/// A page of a list, as every list answers: `{"object": "list", "data", "has_more"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
}

/// A study or rule answered with its version as an entity tag (`ETag`), for a change made
/// only over it (`If-Match`).
pub struct Versioned<T>(pub chrono::DateTime<chrono::Utc>, pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Versioned<T> {
    fn into_response(self) -> axum::response::Response {
        let tag = HeaderValue::from_str(&entity_tag(self.0)).expect("digits and quotes");
        ([(header::ETAG, tag)], axum::Json(self.1)).into_response()
    }
}

/// A version as a strong entity tag: its `updated_at`, in microseconds.
pub(crate) fn entity_tag(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("\"{}\"", at.timestamp_micros())
}

/// `If-Match` on a change: the version (entity tag) the change must be made over, so that
/// one client's read-modify-write never undoes another's. Absent or `*`: any version.
pub struct IfMatch(Option<chrono::DateTime<chrono::Utc>>);

impl IfMatch {
    pub fn version(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0
    }

    /// A change refused for being made over another version is `412 precondition_failed`
    /// when the client named one.
    pub fn refusal(&self, error: crate::services::ServiceError) -> ApiError {
        use crate::services::ServiceError;
        match error {
            ServiceError::Conflict { code: "changed_meanwhile", .. } if self.0.is_some() => {
                ApiError::new(
                    axum::http::StatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    "It changed since the version named in If-Match: read it again (its ETag) and make the change over that.",
                )
            }
            other => other.into(),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        let mut tags = Vec::new();
        let mut sent = false;
        for value in parts.headers.get_all(header::IF_MATCH) {
            sent = true;
            let text = value.to_str().map_err(|_| bad_if_match())?;
            tags.extend(text.split(',').map(str::trim).filter(|t| !t.is_empty()));
        }
        match tags.as_slice() {
            // An empty one is no condition to drop silently.
            [] if sent => Err(bad_if_match()),
            [] => Ok(Self(None)),
            ["*"] => Ok(Self(None)),
            // Ours are strong tags of digits; any other (a weak one) matches no version.
            [tag] => Ok(Self(Some(
                tag.strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(|t| t.parse::<i64>().ok())
                    .and_then(chrono::DateTime::from_timestamp_micros)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
            ))),
            _ => Err(bad_if_match()),
        }
    }
}

fn bad_if_match() -> ApiError {
    let mut error = ApiError::bad_request(
        "invalid_request",
        "If-Match takes one entity tag, as an ETag answered it, or *.",
    );
    error.field = Some("If-Match".into());
    error
}

impl<T> ListResponse<T> {
    pub fn of(data: Vec<T>, has_more: bool) -> axum::Json<Self> {
        axum::Json(Self {
            object: "list",
            data,
            has_more,
        })
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(project::router())
        .merge(api_keys::router())
        .merge(audiences::router())
        .merge(cohort_sync::router())
        .merge(events::router())
        .merge(invites::router())
        .merge(launch_rules::router())
        .merge(mixpanel::router())
        .merge(studies::router())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        // Answers show secrets once (keys, the webhook secret, a connect token) and private
        // data: no cache keeps them.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// A string that is one of `names`, for the OpenAPI document. The handlers parse such
/// fields themselves, so that a wrong value is a 422 naming its field.
fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
}

//! Request extractors whose rejections speak the API's error format.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uj_storage::PageRequest;

use super::ApiError;

/// Largest JSON body the REST and SDK APIs accept.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// `Json<T>` whose failures are `400 malformed_json` / `400 invalid_request` (naming the
/// field), `413 payload_too_large` or `415 unsupported_media_type`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => {
            // serde_path_to_error's text names the field: "name: invalid type: …".
            let detail = error.body_text();
            let detail = detail
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&detail);
            ApiError::bad_request("invalid_request", format!("Invalid request body: {detail}"))
        }
        JsonRejection::JsonSyntaxError(error) => ApiError::bad_request(
            "malformed_json",
            format!(
                "The body is not valid JSON: {}",
                error.body_text().rsplit(": ").next().unwrap_or_default()
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        other => ApiError::bad_request("invalid_request", other.body_text()),
    }
}

pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "The body is larger than the {} KiB this endpoint accepts.",
            MAX_JSON_BODY / 1024
        ),
    )
}

/// For PATCH bodies: tells a field sent as `null` (`Some(None)`, clear it) from one not
/// sent (`None`, leave it). Use as `#[serde(default, deserialize_with = "…::nullable")]`.
pub fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `Query<T>` whose failure is `400 invalid_request` naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                Err(ApiError::bad_request(
                    "invalid_request",
                    format!(
                        "Invalid query parameter: {}",
                        error.body_text().rsplit(": ").next().unwrap_or_default()
                    ),
                ))
            }
            Err(other) => Err(ApiError::bad_request("invalid_request", other.body_text())),
        }
    }
}

/// `Path<T>` whose failure is `400 invalid_request` naming the segment (one that is not
/// UTF-8 once percent-decoded, say).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(error))
                if error.status() == StatusCode::BAD_REQUEST =>
            {
                Err(ApiError::bad_request(
                    "invalid_request",
                    format!("Invalid path: {}", error.kind()),
                ))
            }
            // The route and the handler disagree: our bug, not the client's.
            Err(other) => Err(ApiError::internal(other)),
        }
    }
}

/// `?limit=&starting_after=` of list endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<u32>,
    pub starting_after: Option<String>,
}

impl ListParams {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 100;

    pub fn page(self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            let mut error = ApiError::bad_request(
                "invalid_request",
                format!("limit must be between 1 and {}", Self::MAX_LIMIT),
            );
            error.field = Some("limit".into());
            return Err(error);
        }
        Ok(PageRequest {
            limit,
            starting_after: self.starting_after,
        })
    }
}

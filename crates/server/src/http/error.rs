//! The one error type of the JSON APIs: `{"error": {"code", "message"}}` with a stable
//! snake_case code and an HTTP status that matches it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use uj_storage::StoreError;

use crate::http::middleware::current_request_id;
use crate::services::ServiceError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// Logged for server errors, never shown.
    source: Option<anyhow::Error>,
    /// Whole seconds to wait, for a `429`'s or a `503`'s `Retry-After`.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            source: None,
            retry_after: None,
        }
    }

    /// A budget spent (`RateLimiter`) by `whose` requests: `429 rate_limited`, with when to
    /// retry.
    pub fn rate_limited(wait: std::time::Duration, whose: &str) -> Self {
        Self {
            retry_after: Some(retry_after_seconds(wait)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("Too many requests by {whose}; retry after the time in Retry-After."),
            )
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for an unknown id, or one belonging to another project: both look the same.
    pub fn not_found(what: &str, message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::NOT_FOUND, "not_found", message);
        error.field = Some(what.to_owned());
        error
    }

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong on our side.",
            )
        }
    }

    /// A request that outlasted the request deadline: either the database or Mixpanel kept it.
    pub fn timed_out(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timed_out",
            format!(
                "No answer within {} s: the database or Mixpanel was too slow to answer. Retry shortly.",
                limit.as_secs()
            ),
        )
    }

    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "The database is unavailable right now; retry shortly.",
            )
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApiError::unavailable(error),
            StoreError::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("That {what} already exists."),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(invalid) => {
                let mut api = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    format!("{}: {}", invalid.field, invalid.message),
                );
                api.field = Some(invalid.field.to_owned());
                api
            }
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::NotFound(what) => {
                ApiError::not_found(what, format!("No such {}.", what.replace('_', " ")))
            }
            ServiceError::Refused { code, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ServiceError::Busy(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
            }
            ServiceError::Mixpanel(problem) => {
                use crate::services::mixpanel::MixpanelProblem;
                let status = mixpanel_status(&problem);
                let retry_after = match problem {
                    MixpanelProblem::RateLimited(wait) => wait.map(retry_after_seconds),
                    _ => None,
                };
                ApiError {
                    retry_after,
                    ..ApiError::new(status, problem.code(), problem.message())
                }
            }
            ServiceError::Store(store) => store.into(),
            ServiceError::Internal(source) => ApiError::internal(source),
        }
    }
}

/// A Mixpanel problem's status, on the API and the dashboard alike: Mixpanel failing is a bad
/// gateway, its budget spent a 503, a refusal the customer can fix a 422.
pub(crate) fn mixpanel_status(problem: &crate::services::mixpanel::MixpanelProblem) -> StatusCode {
    use crate::services::mixpanel::MixpanelProblem;
    match problem {
        MixpanelProblem::Unreachable | MixpanelProblem::UnexpectedAnswer(_) => {
            StatusCode::BAD_GATEWAY
        }
        MixpanelProblem::RateLimited(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// When a Mixpanel problem may be retried (its budget spent), on the dashboard as the API
/// says it: the wait Mixpanel gave, else a minute.
pub(crate) fn mixpanel_retry_after(
    problem: &crate::services::mixpanel::MixpanelProblem,
) -> Option<HeaderValue> {
    use crate::services::mixpanel::MixpanelProblem;
    match problem {
        MixpanelProblem::RateLimited(Some(wait)) => {
            Some(HeaderValue::from(retry_after_seconds(*wait)))
        }
        MixpanelProblem::RateLimited(None) => Some(retry_after(problem.code())),
        _ => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        let mut message = self.message;
        if self.status.is_server_error() {
            // Logged once here, with the cause chain; the client gets the id to quote.
            match &self.source {
                Some(source) => tracing::error!(
                    code = self.code,
                    error = crate::telemetry::causes(source),
                    "request failed"
                ),
                None => tracing::error!(code = self.code, "request failed"),
            }
            if let Some(id) = &request_id {
                message = format!("{message} (request id {id})");
            }
        }
        let mut error = json!({ "code": self.code, "message": message });
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        // A 401 names the scheme to use (RFC 9110 §11.6.1); a key sent and refused is an
        // invalid token (RFC 6750 §3.1).
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = match self.code {
                "missing_api_key" => r#"Bearer realm="userjourneys""#,
                _ => r#"Bearer realm="userjourneys", error="invalid_token""#,
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.code == "unsupported_content_encoding" {
            // The coding the body may come in (RFC 9110 §12.5.3): none.
            response.headers_mut().insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after(self.code));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `wait` in whole seconds for `Retry-After`, rounded up (a client that waits that long gets
/// through), at least one.
fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// When a 503 may be retried, in seconds, unless the error knows better: Mixpanel's rate
/// limits count per hour (60 queries), so a minute; a database outage, a lock held or a
/// deadline passed, a few seconds.
fn retry_after(code: &str) -> HeaderValue {
    match code {
        "mixpanel_rate_limited" => HeaderValue::from_static("60"),
        _ => HeaderValue::from_static("5"),
    }
}

#[cfg(test)]
mod tests {
    use super::retry_after_seconds;
    use std::time::Duration;

    /// A wait is said in whole seconds rounded up, at least one: a client that waits that
    /// long gets through, and none is told to retry at once (found by the mutation audit).
    #[test]
    fn retry_after_is_the_wait_rounded_up_to_whole_seconds_and_at_least_one() {
        for (wait, seconds) in [
            (Duration::from_millis(1500), 2),
            (Duration::from_millis(1), 1),
            (Duration::ZERO, 1),
            (Duration::from_secs(3), 3),
        ] {
            assert_eq!(retry_after_seconds(wait), seconds, "{wait:?}");
        }
    }
}

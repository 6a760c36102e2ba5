//! What the dashboard's forms share: reading their fields as the services take them, and
//! saying a refusal beside the field it is about, in the form's words and units.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use uj_domain::idempotency::IdempotencyKey;
use uj_domain::ValidationError;

use super::pages::PageError;
use crate::services::idempotency::{Answer, KeyedRequest};
use crate::services::ServiceError;

/// A form's problem shown on its page, with the status the API answers it with: what was
/// typed is refused (422), or the state of what it changes stands in the way (409: changed
/// since the page was opened, archived meanwhile); anything else is an error page.
pub(super) fn form_error(error: ServiceError) -> Result<(StatusCode, String), PageError> {
    match error {
        ServiceError::Invalid(invalid) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, field_error(&invalid)))
        }
        ServiceError::Refused { message, .. } => Ok((StatusCode::UNPROCESSABLE_ENTITY, message)),
        ServiceError::Conflict { message, .. } => Ok((StatusCode::CONFLICT, message)),
        other => Err(other.into()),
    }
}

/// The form field a validation error is about, by the name of its input.
pub(super) fn invalid_input(error: &ServiceError) -> Option<&'static str> {
    let ServiceError::Invalid(invalid) = error else {
        return None;
    };
    Some(match invalid.field {
        "prompt.title" => "prompt_title",
        "prompt.message" => "prompt_message",
        "prompt.start_label" => "prompt_start_label",
        "prompt.dismiss_label" => "prompt_dismiss_label",
        "cooldown_seconds" => "cooldown_hours",
        other => other,
    })
}

/// A validation error as the forms put it: the field by its label, in the form's units.
fn field_error(invalid: &ValidationError) -> String {
    let label = match invalid.field {
        "name" => "Name",
        "interview_url" => "Interview URL",
        "status" => "Status",
        "launch_mode" => "The interview opens",
        "public_link" => "Its public link",
        "weekly_limit" => "Weekly start limit",
        "monthly_limit" => "Monthly start limit",
        "surface" => "Surface",
        "prompt.title" => "Title",
        "prompt.message" => "Message",
        "prompt.start_label" => "Start button",
        "prompt.dismiss_label" => "Dismiss button",
        "priority" => "Priority",
        "cooldown_seconds" => "Cooldown per user",
        "max_starts" => "Max starts",
        "sampling_percent" => "Sampling",
        "starts_at" => "Starts",
        "ends_at" => "Ends",
        "trigger.type" => "Trigger",
        "trigger.event_name" => "Event name",
        "trigger.audience_id" | "audience_id" => "Audience",
        other => other,
    };
    let message = match invalid.field {
        // The form takes hours; the rule stores seconds.
        "cooldown_seconds" if invalid.message.starts_with("must be between") => {
            format!(
                "must be between 0 and {} hours",
                uj_domain::studies::MAX_COOLDOWN_SECONDS / 3600
            )
        }
        _ => invalid.message.replace("(or null ", "(or empty "),
    };
    format!("{label}: {message}")
}

pub(super) fn optional_number(
    field: &'static str,
    raw: &str,
) -> Result<Option<i64>, ValidationError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    whole_number(field, raw).map(Some)
}

/// A number field's whole number, written as the REST API takes one too (`5.0`, `1e2`: it
/// refused what the API took; found by the studies review). One too large for any field is
/// read as the largest (or smallest) there is, for the field's own bound to refuse saying
/// what it is (it was "must be a whole number", which it was).
pub(super) fn whole_number(field: &'static str, raw: &str) -> Result<i64, ValidationError> {
    use std::num::IntErrorKind;
    let raw = raw.trim();
    match raw.parse::<i64>() {
        Ok(number) => Ok(number),
        Err(error) => match error.kind() {
            IntErrorKind::PosOverflow => Ok(i64::MAX),
            IntErrorKind::NegOverflow => Ok(i64::MIN),
            _ => match raw.parse::<f64>() {
                Ok(float) if float.is_finite() && float.fract() == 0.0 => Ok(
                    uj_domain::json::whole_number(float).unwrap_or(if float > 0.0 {
                        i64::MAX
                    } else {
                        i64::MIN
                    }),
                ),
                _ => Err(ValidationError::new(field, "must be a whole number")),
            },
        },
    }
}

/// A form's `version` (the row's `updated_at` in microseconds, as the page wrote it); none
/// from a page that carried none.
pub(super) fn form_version(raw: &str) -> Option<DateTime<Utc>> {
    raw.trim()
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
}

/// `error`, a form's value refused, as "changed since" when the form was made on another
/// version than `now` (the one its page is shown again from): shown again to be corrected,
/// it would hold the older page's fields under the newer version, and its next save would
/// carry them over the change made meanwhile.
pub(super) fn older_than(
    error: ServiceError,
    version: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ServiceError {
    match error {
        ServiceError::Invalid(_) if version.is_some_and(|v| v != now) => {
            crate::services::studies::changed_since()
        }
        other => other,
    }
}

/// A change refused because the row changed after its page was opened.
pub(super) fn is_changed_since(error: &ServiceError) -> bool {
    matches!(
        error,
        ServiceError::Conflict {
            code: "changed_meanwhile",
            ..
        }
    )
}

/// A field typed on a page older than what it edits, that the row now holds otherwise: shown
/// beside the current version so that the change can be made again.
pub(super) struct Unsaved {
    pub(super) label: &'static str,
    pub(super) typed: String,
    pub(super) now: String,
}

/// The fields (label, typed, now) whose typed value differs from the current one.
pub(super) fn unsaved<'a>(
    fields: impl IntoIterator<Item = (&'static str, &'a str, &'a str)>,
) -> Vec<Unsaved> {
    fields
        .into_iter()
        .filter(|(_, typed, now)| typed.trim() != now.trim())
        .map(|(label, typed, now)| Unsaved {
            label,
            typed: typed.to_owned(),
            now: now.to_owned(),
        })
        .collect()
}

/// A create form's key, made with its page: the same form sent twice (a double click, a
/// slow answer clicked again) makes one thing, and the second is answered as the first
/// (`services::idempotency`, as the API's `Idempotency-Key`).
pub(super) fn new_form_key() -> String {
    format!("form_{}", uj_domain::keys::random_code(24))
}

/// The keyed request of a create form sent with `form_key` to `route` (`path_ids` the ids
/// in its path), told from another by its `fields`; none from a page without a key.
pub(super) fn keyed_form(
    form_key: &str,
    route: &str,
    path_ids: &[&str],
    fields: &[&str],
) -> Option<KeyedRequest> {
    let key = IdempotencyKey::of_form(form_key.trim().as_bytes())?;
    let mut body = Vec::new();
    for field in fields {
        body.extend_from_slice(&(field.len() as u64).to_be_bytes());
        body.extend_from_slice(field.as_bytes());
    }
    Some(KeyedRequest::new(key, "POST", route, path_ids, &body))
}

/// A create form's answer: to the page of what it made.
pub(super) fn see_other(location: String) -> Answer {
    Answer {
        status: 303,
        body: location.into_bytes(),
        replayed: false,
    }
}

/// The redirect of a create form's answer, made now or replayed.
pub(super) fn redirect_of(answer: &Answer) -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::response::Redirect::to(&String::from_utf8_lossy(&answer.body)).into_response()
}

/// A form's key used for another create than the first it was sent with (the page gone
/// back to after a create, edited and sent again): said as the dashboard, not the API.
pub(super) fn reused_form(error: ServiceError) -> ServiceError {
    match error {
        ServiceError::Refused {
            code: "idempotency_key_reused",
            ..
        } => ServiceError::Refused {
            code: "idempotency_key_reused",
            message: "This form was sent already and made what it asked for; reload the page to create another.".into(),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::whole_number;

    #[test]
    fn a_whole_number_is_read_as_the_rest_api_reads_one() {
        for (raw, number) in [
            ("5", 5),
            (" 5.0 ", 5),
            ("1e2", 100),
            ("-3.0", -3),
            ("99999999999999999999", i64::MAX),
            ("1e20", i64::MAX),
            ("-1e20", i64::MIN),
        ] {
            assert_eq!(whole_number("f", raw).unwrap(), number, "{raw}");
        }
        for raw in ["5.5", "", "five", "inf", "NaN", "1e400", "0x10"] {
            assert_eq!(whole_number("f", raw).unwrap_err().field, "f", "{raw}");
        }
    }
}

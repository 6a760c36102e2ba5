//! Request extractors whose rejections speak the API's error format, and who a request's
//! client is.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uj_storage::PageRequest;

use super::ApiError;

/// Largest JSON body the REST and SDK APIs accept.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Whether the request's `Content-Length` announces more than `limit` bytes.
pub fn announces_more_than(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length > limit as u64)
}

/// Reads and drops what is left of a refused request's body (at most `limit` bytes; the
/// body deadline bounds the time), keeping its first `keep` bytes, so that a client still
/// sending it reads the answer rather than a reset. Whether it was read to its end: when
/// not (too long, stalled, or a client waiting for `100 Continue`, whose body is not asked
/// for), the answer should close the connection. A body announced longer than `limit` is
/// read only as far as `keep`.
pub async fn discard_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
    keep: usize,
) -> (Bytes, bool) {
    use http_body_util::BodyExt;
    if headers.contains_key(header::EXPECT) {
        return (Bytes::new(), false);
    }
    // Read past `limit`, or as far as `keep` when the body is announced longer.
    let stop_at = match announces_more_than(headers, limit) {
        true => keep,
        false => limit + 1,
    };
    let (mut body, mut read, mut kept) = (body, 0, Vec::new());
    while read < stop_at {
        let Some(frame) = body.frame().await else {
            return (kept.into(), true);
        };
        let Ok(frame) = frame else {
            return (kept.into(), false);
        };
        if let Some(data) = frame.data_ref() {
            let room = keep.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..room.min(data.len())]);
            read += data.len();
        }
    }
    (kept.into(), false)
}

/// `Json<T>` whose failures are `400 malformed_json` / `400 invalid_request` (naming the
/// field), `413 payload_too_large` or `415 unsupported_media_type`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        json_and_bytes(request, state)
            .await
            .map(|(value, _)| ApiJson(value))
    }
}

/// [`ApiJson`]'s value, and the body's bytes it was read from.
pub async fn json_and_bytes<S: Send + Sync, T: DeserializeOwned>(
    request: Request,
    state: &S,
) -> Result<(T, Bytes), ApiError> {
    if !is_json(request.headers()) {
        return Err(unsupported_media_type());
    }
    let compressed = is_compressed(request.headers());
    let body = body_bytes(request, state).await?;
    if compressed {
        return Err(unsupported_content_encoding());
    }
    json_body(&body).map(|value| (value, body))
}

/// Whether the body is sent in a coding (RFC 9110 §8.4): the APIs read bodies as sent, so
/// one would be read as something it is not (compressed, it is not JSON; with a coding
/// named wrongly, it was read as if it had none).
fn is_compressed(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|coding| {
            let coding = coding.to_str().unwrap_or("?").trim();
            !coding.is_empty() && !coding.eq_ignore_ascii_case("identity")
        })
}

/// 415 for a body sent in a coding (with `Accept-Encoding: identity`, RFC 9110 §15.5.16).
fn unsupported_content_encoding() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_encoding",
        "Send the body uncompressed, without Content-Encoding.",
    )
}

/// [`ApiJson`] for a body that may be left out: `None` for an empty body (or whitespace, or
/// `null`), and for a body that is not JSON by its `Content-Type` (ignored, as such bodies
/// always were where the body is optional: `fetch` sends `text/plain` unless told).
pub struct OptionalApiJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // Two lines are refused as where a body is required: read as "no body", the one
        // a proxy in front may have judged decided nothing.
        if request
            .headers()
            .get_all(header::CONTENT_TYPE)
            .iter()
            .nth(1)
            .is_some()
        {
            return Err(unsupported_media_type());
        }
        let json = is_json(request.headers());
        let compressed = is_compressed(request.headers());
        let body = body_bytes(request, state).await?;
        if !json || body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
            return Ok(Self(None));
        }
        if compressed {
            return Err(unsupported_content_encoding());
        }
        json_body(&body).map(|value| Self(Some(value)))
    }
}

/// The request's body, at most the route's limit.
async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
            _ => ApiError::bad_request("invalid_request", rejection.body_text()),
        })
}

/// A JSON body parsed, or why not.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Request bodies are objects: serde would also read an array as the fields in order,
    // and describe anything else in its own terms ("expected struct EventRequest").
    let kind = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Some("an array"),
        Some(b'n') => Some("null"),
        Some(b'"') => Some("a string"),
        Some(b't' | b'f') => Some("true or false"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        _ => None,
    };
    // Only what parses as that value: a body cut short or mistyped is malformed JSON.
    if let Some(kind) =
        kind.filter(|_| serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok())
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("Invalid request body: send a JSON object, not {kind}."),
        ));
    }
    if holds_nul(body) {
        let mut error = ApiError::bad_request(
            "invalid_request",
            "Text in the body must not contain NUL characters (\\u0000).",
        );
        error.field = serde_json::from_slice(body)
            .ok()
            .and_then(|value| nul_field(&value, String::new()));
        return Err(error);
    }
    match axum::Json::<T>::from_bytes(body) {
        Ok(axum::Json(value)) => Ok(value),
        // Half an emoji (an app's text cut in the middle of one) is read as U+FFFD, as a
        // browser's encoder writes it: the event is not lost over one character.
        Err(rejection) => match uj_domain::json::repair_lone_surrogates(body) {
            Some(repaired) => json_body(&repaired),
            // Read again as it was read the first time, so that the second reading refuses
            // all the first one does: read as a tree, a body lost a field given twice (the
            // last was taken; found by the REST review).
            None if rejection
                .body_text()
                .contains("invalid type: floating point") =>
            {
                match whole_numbers(body) {
                    Some(rewritten) => axum::Json::<T>::from_bytes(&rewritten)
                        .map(|axum::Json(value)| value)
                        .map_err(json_rejection),
                    None => Err(json_rejection(rejection)),
                }
            }
            None => Err(json_rejection(rejection)),
        },
    }
}

/// `body` with each whole number written as a float (`5.0`, `1e2`) written as the integer
/// it is, as JSON Schema's `integer` counts it, followed by spaces to the length it had;
/// `None` for a body that is not JSON or holds no such number. Only after a body fails to
/// parse, so a body read the first time costs nothing more.
fn whole_numbers(body: &[u8]) -> Option<Vec<u8>> {
    // Valid JSON, so each number outside a string is one of JSON's, and a string ends at
    // its first quote not escaped.
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    let mut rewritten = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut at = 0;
    while at < body.len() {
        let start = at;
        match body[at] {
            b'"' => {
                at += 1;
                while body[at] != b'"' {
                    at += if body[at] == b'\\' { 2 } else { 1 };
                }
                at += 1;
            }
            b'-' | b'0'..=b'9' => {
                while at < body.len()
                    && matches!(body[at], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    at += 1;
                }
                let number = &body[start..at];
                let whole = number
                    .iter()
                    .any(|b| matches!(b, b'.' | b'e' | b'E'))
                    .then(|| std::str::from_utf8(number).ok()?.parse::<f64>().ok())
                    .flatten()
                    .and_then(uj_domain::json::whole_number);
                if let Some(whole) = whole {
                    // Padded to its length, so that the positions an error names are the
                    // client's (but for one written shorter than its digits, as `1e20`).
                    let whole = whole.to_string();
                    rewritten.extend_from_slice(whole.as_bytes());
                    rewritten.resize(
                        rewritten.len() + number.len().saturating_sub(whole.len()),
                        b' ',
                    );
                    changed = true;
                    continue;
                }
            }
            _ => at += 1,
        }
        rewritten.extend_from_slice(&body[start..at]);
    }
    changed.then_some(rewritten)
}

/// Where in a JSON value a NUL is, named as serde names a field at fault (`prompt.title`,
/// `metadata.k[1]`); a key holding one is named by its object. `None` for the body itself.
fn nul_field(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let within = |path: &str, part: &str| match (path, part.starts_with('[')) {
        ("", _) | (_, true) => format!("{path}{part}"),
        _ => format!("{path}.{part}"),
    };
    match value {
        Value::String(text) if text.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_field(item, within(&path, &format!("[{i}]")))),
        Value::Object(fields) => fields
            .iter()
            .find_map(|(key, item)| match key.contains('\0') {
                true => Some(path.clone()),
                false => nul_field(item, within(&path, key)),
            }),
        _ => None,
    }
    .filter(|path| !path.is_empty())
}

/// `Content-Type: application/json` or `application/…+json`, as `axum::Json` requires, in
/// one line: with two, which one a proxy in front judged is not known.
fn is_json(headers: &HeaderMap) -> bool {
    let mut lines = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (lines.next().and_then(|v| v.to_str().ok()), lines.next()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5
                && subtype.is_char_boundary(subtype.len() - 5)
                && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Whether a JSON text holds a NUL character, which can only be written `\u0000` (raw
/// control characters are not JSON). No id, name or code may hold one: PostgreSQL cannot
/// store it in text, so it is refused here for both databases alike.
fn holds_nul(json: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = json
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\\'))
    {
        let escape = from + at + 1;
        if json.get(escape..escape + 5) == Some(&b"u0000"[..]) {
            return true;
        }
        // Past the escaped character, so the second backslash of `\\` starts nothing.
        from = escape + 1;
    }
    false
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => {
            // serde_path_to_error's text names the field: "name: invalid type: …".
            let detail = error.body_text();
            let detail = detail
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&detail);
            let mut error = ApiError::bad_request(
                "invalid_request",
                format!("Invalid request body: {}", in_plain_words(detail)),
            );
            error.field = field_of(detail);
            error
        }
        JsonRejection::JsonSyntaxError(error) => ApiError::bad_request(
            "malformed_json",
            format!(
                "The body is not valid JSON: {}",
                error.body_text().rsplit(": ").next().unwrap_or_default()
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        other => ApiError::bad_request("invalid_request", other.body_text()),
    }
}

/// serde's message with the Rust type it expected in plain words ("expected i64" said
/// nothing to a client of another language), and without the value sent: "invalid type:
/// integer `918273645`, expected a string" quoted a secret sent in the wrong shape back to
/// the caller and into every log of the answer. The field and the type it had stay named.
fn in_plain_words(detail: &str) -> std::borrow::Cow<'_, str> {
    let detail = without_value(detail);
    const TYPES: [(&str, &str); 4] = [
        (
            "expected i64",
            "expected a whole number from -2^63 to 2^63-1",
        ),
        ("expected u64", "expected a whole number from 0 to 2^64-1"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u16", "expected a whole number from 0 to 65535"),
    ];
    // chrono's words for a time it could not read ("premature end of input" for one
    // without its offset) say nothing of what it wants.
    const TIMES: [&str; 5] = [
        "premature end of input",
        "input contains invalid characters",
        "trailing input",
        "input is out of range",
        "input is not enough for unique date and time",
    ];
    let detail = match TIMES.iter().find(|words| detail.contains(*words)) {
        Some(words) => detail
            .replacen(
                words,
                &format!(
                    "{words}: send a time in RFC 3339 with its offset, as 2027-01-01T10:00:00Z"
                ),
                1,
            )
            .into(),
        None => detail,
    };
    match TYPES.iter().find(|(rust, _)| detail.contains(rust)) {
        Some((rust, plain)) => detail.replacen(rust, plain, 1).into(),
        None => detail,
    }
}

/// serde's "invalid type: string \"…\", expected …", "invalid value: integer `…`, …" and
/// "unknown variant `…`, …" with the quoted value left out.
fn without_value(detail: &str) -> std::borrow::Cow<'_, str> {
    // The first of them: a value may hold another's words.
    let Some(after) = ["invalid type: ", "invalid value: ", "unknown variant "]
        .iter()
        .filter_map(|lead| detail.find(lead).map(|at| at + lead.len()))
        .min()
    else {
        return detail.into();
    };
    // The value is quoted between the kind ("integer", "string") and the last
    // ", expected", which serde writes after it (a string value may hold one too).
    let Some(expected) = detail.rfind(", expected").filter(|&at| at >= after) else {
        return detail.into();
    };
    let sent = &detail[after..expected];
    let Some(quote) = sent.find(['`', '"']) else {
        return detail.into();
    };
    let kind = sent[..quote].trim_end();
    let head = detail[..after].trim_end();
    let tail = &detail[expected..];
    match kind {
        "" => format!("{head}{tail}"),
        kind => format!("{head} {kind}{tail}"),
    }
    .into()
}

/// The field a deserialization error is about: the path serde_path_to_error puts first
/// ("weekly_limit: invalid type…", "prompt.title: …", ending with the field when it is
/// unknown), with the field serde names added when it is missing ("missing field `name`").
fn field_of(detail: &str) -> Option<String> {
    let (path, message) = match detail.split_once(": ") {
        Some((path, message)) if !path.contains(' ') && path != "." => (Some(path), message),
        _ => (None, detail),
    };
    let named = |prefix: &str| message.strip_prefix(prefix)?.split('`').next();
    let unknown = named("unknown field `").or_else(|| named("duplicate field `"));
    match (path, named("missing field `"), unknown) {
        (Some(path), Some(missing), _) => Some(format!("{path}.{missing}")),
        (None, Some(missing), _) => Some(missing.to_owned()),
        (None, None, Some(unknown)) => Some(unknown.to_owned()),
        (path, None, _) => path.map(str::to_owned),
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the body as JSON with Content-Type: application/json.",
    )
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

/// For fields that cannot be null (a PATCH's that cannot be cleared, a create's that take a
/// default when absent): one sent as `null` is refused (`400 invalid_request` naming it)
/// instead of read as not sent. Use as
/// `#[serde(default, deserialize_with = "…::present")]` on an `Option<T>`, with
/// `#[schema(nullable = false)]`: utoipa documents every `Option` as nullable otherwise.
pub fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `Query<T>` whose failure is `400 invalid_request` naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // axum decodes what is not UTF-8 lossily (as U+FFFD), which would make different
        // ids one. Separators are ASCII, so the whole query decodes iff each part does.
        let query = parts.uri.query().unwrap_or_default();
        let utf8 = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .is_ok()
        };
        if !utf8(query) {
            // Named by the first parameter whose value does not decode, when its name does.
            let field = query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, value)| name.len() <= 64 && utf8(name) && !utf8(value))
                .map(|(name, _)| percent_encoding::percent_decode_str(name).decode_utf8_lossy());
            let mut error = ApiError::bad_request(
                "invalid_request",
                match &field {
                    Some(name) => format!(
                        "Invalid query parameter: {name} is not UTF-8 once percent-decoded."
                    ),
                    None => "Invalid query parameter: a value is not UTF-8 once percent-decoded."
                        .to_owned(),
                },
            );
            error.field = field.map(|name| name.into_owned());
            return Err(error);
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                // serde_path_to_error's text names the parameter: "limit: invalid digit …".
                let detail = error.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail);
                let mut error = ApiError::bad_request(
                    "invalid_request",
                    format!("Invalid query parameter: {}", in_plain_words(detail)),
                );
                error.field = field_of(detail);
                Err(error)
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
    pub const MAX_CURSOR_CHARS: usize = 1024;

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
        // A list's last id, name or code: none is longer.
        if self
            .starting_after
            .as_ref()
            .is_some_and(|after| after.chars().count() > Self::MAX_CURSOR_CHARS)
        {
            let mut error = ApiError::bad_request(
                "invalid_request",
                format!(
                    "starting_after must be the last id of the previous page (at most {} characters)",
                    Self::MAX_CURSOR_CHARS
                ),
            );
            error.field = Some("starting_after".into());
            return Err(error);
        }
        Ok(PageRequest {
            limit,
            // An empty cursor is none, on every list: a client sending `starting_after=` for
            // its first page got the first page of most lists, an empty page of a rule's or
            // a user's invites and a 400 of Mixpanel's cohorts (found by the REST review).
            starting_after: self.starting_after.filter(|after| !after.is_empty()),
        })
    }
}

/// The client's address as the outermost of `trusted` proxies saw it: the `trusted`-th
/// `X-Forwarded-For` entry from the right (each proxy appends the address it was reached
/// from; entries further left may be written by the client itself), read as an address
/// with or without a port (some load balancers append one). Without trusted proxies, without
/// the header, or when that entry is no address, the connecting address: text there would
/// be a new client on every request, and its log line's field.
pub(crate) fn client_address(headers: &HeaderMap, peer: IpAddr, trusted: u8) -> IpAddr {
    if trusted == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    let entry = forwarded
        .iter()
        .rev()
        .nth(usize::from(trusted) - 1)
        .or(forwarded.first());
    entry
        .and_then(|entry| {
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            bare.parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<SocketAddr>().ok().map(|at| at.ip()))
        })
        .map_or(peer, |client| client.to_canonical())
}

#[cfg(test)]
mod whole_number_tests {
    use super::whole_numbers;

    #[test]
    fn whole_numbers_are_rewritten_outside_strings_only() {
        for (json, rewritten) in [
            (
                r#"{"a": 5.0, "b": [1e2, -3.0, 0.5]}"#,
                Some(r#"{"a": 5  , "b": [100, -3  , 0.5]}"#),
            ),
            (r#"{"a":1E+2,"a":2}"#, Some(r#"{"a":100 ,"a":2}"#)),
            (
                r#"{"5.0": "x \" 5.0", "n": 5.0}"#,
                Some(r#"{"5.0": "x \" 5.0", "n": 5  }"#),
            ),
            (r#"{"a": "\\", "n": 2.0}"#, Some(r#"{"a": "\\", "n": 2  }"#)),
            (r#"{"a": 1e15}"#, Some(r#"{"a": 1000000000000000}"#)),
            (r#"{"a": 5, "b": 0.5, "c": 1e300, "d": "5.0"}"#, None),
            (r#"{"a": 5.0"#, None),
            ("5.0", Some("5  ")),
        ] {
            assert_eq!(
                whole_numbers(json.as_bytes()),
                rewritten.map(|r| r.as_bytes().to_vec()),
                "{json}"
            );
        }
    }
}

#[cfg(test)]
mod nul_tests {
    use super::{holds_nul, is_json};
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn a_nul_is_found_only_where_json_escapes_one() {
        for (json, nul) in [
            (r#"{"a": "x\u0000y"}"#, true),
            (r#"{"a\u0000": 1}"#, true),
            (r#"{"a": "\\\u0000"}"#, true),
            (r#"{"a": "\\u0000"}"#, false),
            (r#"{"a": "\\\\u0000"}"#, false),
            (r#"{"a": "\u00001"}"#, true),
            (r#"{"a": "\u0001"}"#, false),
            (r#"{"a": "\"u0000"}"#, false),
            (r#"{"a": "u0000"}"#, false),
            ("\\", false),
            ("", false),
        ] {
            assert_eq!(holds_nul(json.as_bytes()), nul, "{json}");
        }
    }

    #[test]
    fn json_content_types_are_recognised_as_axum_does() {
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("application/+json", false),
            ("text/json", false),
            ("application/jsonx", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&headers), json, "{value}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn serdes_messages_lose_the_value_sent() {
        for (detail, plain) in [
            (
                "secret: invalid type: integer `918273645`, expected a string at line 1 column 19",
                "secret: invalid type: integer, expected a string at line 1 column 19",
            ),
            (
                "limit: invalid type: string \"a, expected b\", expected u32",
                "limit: invalid type: string, expected a whole number from 0 to 4294967295",
            ),
            (
                "status: unknown variant `hunter2`, expected `active` or `paused`",
                "status: unknown variant, expected `active` or `paused`",
            ),
            (
                "status: unknown variant `invalid type: x`, expected `active`",
                "status: unknown variant, expected `active`",
            ),
            (
                "limit: invalid value: integer `-1`, expected u32",
                "limit: invalid value: integer, expected a whole number from 0 to 4294967295",
            ),
            (
                "name: invalid type: map, expected a string",
                "name: invalid type: map, expected a string",
            ),
            (
                "colour: unknown field `colour`, expected `name`",
                "colour: unknown field `colour`, expected `name`",
            ),
        ] {
            assert_eq!(super::in_plain_words(detail), plain, "{detail}");
        }
    }

    #[test]
    fn the_field_is_read_off_serde_path_to_errors_text() {
        for (detail, field) in [
            (
                "weekly_limit: invalid type: string \"x\", expected i64",
                Some("weekly_limit"),
            ),
            ("missing field `name` at line 1 column 2", Some("name")),
            (
                "name: missing field `name` at line 1 column 12",
                Some("name.name"),
            ),
            (
                "colour: unknown field `colour`, expected `name`",
                Some("colour"),
            ),
            ("members[1]: missing field `id`", Some("members[1].id")),
            ("invalid type: map, expected a string", None),
        ] {
            assert_eq!(super::field_of(detail).as_deref(), field, "{detail}");
        }
    }
}

#[cfg(test)]
mod client_tests {
    use super::client_address;
    use axum::http::{HeaderMap, HeaderValue};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn the_client_is_who_the_outermost_trusted_proxy_saw() {
        let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.9"));
        // Not trusted: the connecting address, whatever the header says.
        let client =
            |headers: &HeaderMap, trusted| client_address(headers, proxy, trusted).to_string();
        assert_eq!(client(&headers, 0), "10.0.0.2");
        // One load balancer: the address it appended, not the one the client wrote.
        assert_eq!(client(&headers, 1), "10.0.0.9");
        assert_eq!(client(&headers, 2), "1.2.3.4");
        assert_eq!(client(&headers, 9), "6.6.6.6");
        assert_eq!(client(&HeaderMap::new(), 1), "10.0.0.2");
    }

    /// An entry with a port is its address (each connection was a new client: found by the
    /// accounts probe); one that is no address is the proxy's (it was counted, and logged,
    /// as the text sent: found by the telemetry review).
    #[test]
    fn a_forwarded_entry_is_read_as_an_address() {
        let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let client = |entry: &'static str| {
            let mut headers = HeaderMap::new();
            headers.append("x-forwarded-for", HeaderValue::from_static(entry));
            client_address(&headers, proxy, 1).to_string()
        };
        assert_eq!(client("9.9.9.9:51234"), "9.9.9.9");
        assert_eq!(client("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(client("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(client("::ffff:9.9.9.9"), "9.9.9.9");
        assert_eq!(client("6.6.6.6 sign-in=ok user=admin"), "10.0.0.2");
        assert_eq!(client("not-an-ip"), "10.0.0.2");
    }
}

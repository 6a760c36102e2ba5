//! `Idempotency-Key` on the REST API's creates of studies and launch rules: the header
//! read with the body it keys, and a create's answer sent as recorded
//! (`services::idempotency` decides).

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uj_domain::idempotency::IdempotencyKey;

use super::extract::json_and_bytes;
use super::ApiError;
use crate::services::idempotency::{Answer, KeyedRequest};

/// The request header a client names its create with.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The header's description in the OpenAPI document.
pub const IDEMPOTENCY_KEY_DOC: &str = "Makes a retry safe: a request with a key used by this project in the last 24 hours is answered as the first one was (`Idempotent-Replayed: true`), creating nothing; a different request with it is 422 `idempotency_key_reused`. A create refused (4xx) records nothing. Any 1–255 printable ASCII characters, e.g. a UUID.";
/// The answer header that marks a replayed answer (as Stripe's).
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// A create's JSON body (read as [`ApiJson`](super::extract::ApiJson) reads it) and, when
/// the request carries an `Idempotency-Key`, the keyed request: the key and the
/// fingerprint of the method, the route, the ids in the path and the body's bytes.
pub struct KeyedJson<T> {
    pub body: T,
    pub keyed: Option<KeyedRequest>,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for KeyedJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Some(key) = idempotency_key(request.headers())? else {
            let (body, _) = json_and_bytes(request, state).await?;
            return Ok(Self { body, keyed: None });
        };
        let (mut parts, body) = request.into_parts();
        let route = match parts.extensions.get::<MatchedPath>() {
            Some(route) => route.as_str().to_owned(),
            None => parts.uri.path().to_owned(),
        };
        let ids: Vec<String> = match RawPathParams::from_request_parts(&mut parts, state).await {
            Ok(params) => params.iter().map(|(_, id)| id.to_owned()).collect(),
            Err(rejection) => {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    format!("Invalid path: {}", rejection.body_text()),
                ))
            }
        };
        let method = parts.method.clone();
        let (body, bytes) = json_and_bytes(Request::from_parts(parts, body), state).await?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let keyed = KeyedRequest::new(key, method.as_str(), &route, &ids, &bytes);
        Ok(Self {
            body,
            keyed: Some(keyed),
        })
    }
}

/// The request's `Idempotency-Key`, if it sends one: one header of 1–255 printable ASCII
/// characters, else 400 `invalid_request` naming the header.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    match IdempotencyKey::parse(value.as_bytes()) {
        Some(key) if values.next().is_none() => Ok(Some(key)),
        _ => {
            let mut error = ApiError::bad_request(
                "invalid_request",
                "Idempotency-Key must be one header of 1 to 255 printable ASCII characters (no spaces).",
            );
            error.field = Some(IDEMPOTENCY_KEY.to_owned());
            Err(error)
        }
    }
}

/// The answer of a create just made: 201 and the resource's JSON, as it will be replayed.
pub fn created(resource: impl Serialize) -> Answer {
    Answer {
        status: StatusCode::CREATED.as_u16(),
        body: serde_json::to_vec(&resource).expect("a response body always serialises"),
        replayed: false,
    }
}

/// A create's answer with `Location`: the created resource's address, `base` and the `id`
/// of the answered body (on a replay too); and with its version as an `ETag`, the
/// `updated_at` of the answered body, as every other answer of a study or rule (the creates
/// answered none; found by the REST review). A replay's is the version it shows, as
/// created: a change sent over it after another is refused, as over any older version.
pub struct Located(pub Answer, pub &'static str);

impl IntoResponse for Located {
    fn into_response(self) -> Response {
        let Located(answer, base) = self;
        let body = (answer.status == StatusCode::CREATED.as_u16())
            .then(|| serde_json::from_slice::<serde_json::Value>(&answer.body).ok())
            .flatten();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|body| body[name].as_str().map(str::to_owned))
        };
        let (id, version) = (field("id"), field("updated_at"));
        let mut response = answer.into_response();
        if let Some(location) =
            id.and_then(|id| HeaderValue::from_str(&format!("{base}/{id}")).ok())
        {
            response.headers_mut().insert(header::LOCATION, location);
        }
        if let Some(tag) = version
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
            .and_then(|at| {
                HeaderValue::from_str(&super::api::entity_tag(at.with_timezone(&chrono::Utc))).ok()
            })
        {
            response.headers_mut().insert(header::ETAG, tag);
        }
        response
    }
}

/// Sent byte for byte as recorded; a replay says so in `Idempotent-Replayed: true`.
impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::CREATED);
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body,
        )
            .into_response();
        if self.replayed {
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}

//! `POST /webhooks/mixpanel/{webhook_id}`: Mixpanel's cohort-sync deliveries (SPEC §4).
//! The reply is Mixpanel's format, `{"action", "status": "success"}` or `"failure"` with
//! `{"error": {"message", "code"}}`, and the HTTP status equals the code.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH,
    RETRY_AFTER,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::extract::{announces_more_than, discard_body};
use crate::services::cohort_sync;
use crate::state::AppState;
use uj_domain::ids::ProjectId;

/// 1000 members with a few dozen properties each fit with room to spare.
pub const MAX_DELIVERY_BODY: usize = 4 * 1024 * 1024;
/// How far into a refused delivery its action is looked for (Mixpanel sends it first).
const ACTION_WITHIN: usize = 4096;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/mixpanel/{webhook_id}", post(receive))
        // As pasted with a slash after it.
        .route("/webhooks/mixpanel/{webhook_id}/", post(receive))
        // Any other address under it answers in Mixpanel's format, for its destination page.
        .route("/webhooks/{*rest}", any(unknown))
        // And so does a method a webhook does not take.
        .layer(axum::middleware::map_response(wrong_method))
}

async fn wrong_method(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(ALLOW).cloned();
    let mut answer = failure(
        405,
        Value::Null,
        "A webhook URL takes Mixpanel's deliveries, sent with POST.",
    );
    if let Some(allow) = allow {
        answer.headers_mut().insert(ALLOW, allow);
    }
    answer
}

/// How a delivery's body is coded (RFC 9110 §8.4.1): as is, gzip, or deflate (zlib), named
/// in any case (`x-gzip` too). A compressing proxy in front, or Mixpanel, may send either.
#[derive(Clone, Copy)]
enum Coding {
    Identity,
    Gzip,
    Deflate,
}

/// Why a body did not unpack, with the beginning of what it unpacked to (for its action).
enum Undecodable {
    TooLarge(Bytes),
    Invalid(std::io::Error, Bytes),
}

/// Why a delivery's body was not read whole.
enum Unread {
    TooLarge,
    Cut,
}

/// At most the first [`ACTION_WITHIN`] bytes of `bytes`.
fn beginning(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(&bytes[..bytes.len().min(ACTION_WITHIN)])
}

/// The delivery's body, at most [`MAX_DELIVERY_BODY`] bytes; or why not, with its first
/// bytes (for the action to echo). `announced`: its `Content-Length`, if any.
async fn read_body(body: Body, announced: Option<usize>) -> Result<Bytes, (Unread, Bytes)> {
    use http_body_util::BodyExt;
    let mut body = body;
    // Sized by what is announced up to a point: a sender that announces 4 MiB and stalls
    // holds no more than it sent beyond that.
    let mut read = Vec::with_capacity(announced.unwrap_or(0).min(256 * 1024));
    while let Some(frame) = body.frame().await {
        // Stalled past the body deadline, or cut.
        let Ok(frame) = frame else {
            return Err((Unread::Cut, beginning(&read)));
        };
        if let Some(data) = frame.data_ref() {
            if read.len() + data.len() > MAX_DELIVERY_BODY {
                read.extend_from_slice(
                    &data[..ACTION_WITHIN.saturating_sub(read.len()).min(data.len())],
                );
                return Err((Unread::TooLarge, beginning(&read)));
            }
            read.extend_from_slice(data);
        }
    }
    Ok(read.into())
}

impl Coding {
    /// The body's coding, or the one named that is none of these.
    fn of(headers: &HeaderMap) -> Result<Self, String> {
        let Some(named) = headers.get(CONTENT_ENCODING) else {
            return Ok(Coding::Identity);
        };
        let named = String::from_utf8_lossy(named.as_bytes())
            .trim()
            .to_ascii_lowercase();
        match named.as_str() {
            "" | "identity" => Ok(Coding::Identity),
            "gzip" | "x-gzip" => Ok(Coding::Gzip),
            "deflate" => Ok(Coding::Deflate),
            _ => Err(named),
        }
    }

    /// `body` unpacked, at most [`MAX_DELIVERY_BODY`] bytes of it (a small body may unpack
    /// to any size).
    fn decode(self, body: Bytes) -> Result<Bytes, Undecodable> {
        use std::io::Read;
        let reader: Box<dyn Read + '_> = match self {
            Coding::Identity => return Ok(body),
            // All its members: a gzip body may be several, one after the other (RFC 1952).
            Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
            Coding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        };
        let mut unpacked = Vec::new();
        let read = reader
            .take(MAX_DELIVERY_BODY as u64 + 1)
            .read_to_end(&mut unpacked);
        // What was unpacked before an error stays in `unpacked`.
        if let Err(error) = read {
            return Err(Undecodable::Invalid(error, beginning(&unpacked)));
        }
        match unpacked.len() > MAX_DELIVERY_BODY {
            true => Err(Undecodable::TooLarge(beginning(&unpacked))),
            false => Ok(unpacked.into()),
        }
    }
}

impl std::fmt::Display for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        })
    }
}

pub(super) async fn unknown() -> Response {
    failure(404, Value::Null, cohort_sync::UNKNOWN_WEBHOOK)
}

/// The action named in a body we may not be able to parse, or in its first bytes, to echo
/// it back. Read alone: the rest is skipped, not built into a tree (a body of a few MiB of
/// small values would take tens of MiB as one).
fn action_of(body: &[u8]) -> Value {
    #[derive(serde::Deserialize)]
    struct Named {
        action: Option<String>,
    }
    if let Ok(named) = serde_json::from_slice::<Named>(body) {
        return named.action.map_or(Value::Null, Value::String);
    }
    // A beginning only: Mixpanel sends the action first.
    let text = String::from_utf8_lossy(body);
    let value = text.find("\"action\"").and_then(|at| {
        let rest = text[at + "\"action\"".len()..]
            .trim_start()
            .strip_prefix(':')?;
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<String>();
        values.next()?.ok()
    });
    value.map_or(Value::Null, Value::String)
}

pub(super) fn failure(status: u16, action: Value, message: &str) -> Response {
    // Why, for the operator (the customer reads it in Mixpanel and the sync history): the
    // request's own line says only its status. Our text, quoting of the sender's at most an
    // action or a coding, escaped (`{:?}`).
    match status {
        500.. => tracing::warn!(status, reason = message, "cohort sync delivery refused"),
        _ => tracing::info!(status, reason = message, "cohort sync delivery refused"),
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "action": action,
        "status": "failure",
        "error": { "message": message, "code": status },
    });
    let mut response = (code, Json(body)).into_response();
    if code == StatusCode::UNAUTHORIZED {
        // The scheme the destination must use (RFC 9110 §11.6.1).
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="userjourneys cohort sync""#),
        );
    }
    if code == StatusCode::SERVICE_UNAVAILABLE {
        // As every 503 of the APIs: when to try again (Mixpanel keeps its own backoff).
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

// No span field of the webhook id: decoded, it is a stranger's text (a `%0a` in it would
// begin a log line); the request's span logs the path, percent-encoded.
async fn receive(
    State(state): State<AppState>,
    webhook_id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // An id that does not decode (`%ff`) is no webhook of ours; said in Mixpanel's format.
    let Ok(Path(webhook_id)) = webhook_id else {
        return failure(404, Value::Null, cohort_sync::UNKNOWN_WEBHOOK);
    };
    // One credential: with two, none (which one a proxy in front judged is not known).
    let mut sent = headers.get_all(AUTHORIZATION).iter();
    let authorization = match (sent.next(), sent.next()) {
        (Some(one), None) => one.to_str().ok(),
        _ => None,
    };
    // Before the body is read, so a stranger's body is never taken in.
    let project = match cohort_sync::authenticate(&state, &webhook_id, authorization).await {
        Ok(receiver) => receiver.config.project_id,
        Err(refusal) => return refuse_unread(&state, &refusal, &headers, body).await,
    };
    // Held until the delivery is applied, even when the sender stops waiting for it.
    let slot = match state.deliveries_in_flight.take(&project) {
        Ok(slot) => slot,
        // Overloaded on our side: a 503 (SPEC §4), which Mixpanel retries as it does a 429.
        Err(message) => {
            let refusal = cohort_sync::Refusal::unread(503, message, &project);
            return refuse_unread(&state, &refusal, &headers, body).await;
        }
    };
    let too_large = format!("The delivery is larger than the {} MiB UserJourneys accepts; export fewer user properties with the cohort.", MAX_DELIVERY_BODY / 1024 / 1024);
    // One announced too long is not waited for (its action unread: a sender may hold the
    // rest until answered). Either way the rest is not read, so the connection closes.
    if announces_more_than(&headers, MAX_DELIVERY_BODY) {
        return refuse_body(&state, &project, 413, &[], &too_large, false).await;
    }
    let coding = match Coding::of(&headers) {
        Ok(coding) => coding,
        Err(named) => {
            let message = format!("UserJourneys reads deliveries uncompressed, or compressed with gzip or deflate; this one came with Content-Encoding: {named}.");
            let mut response = refuse_body(&state, &project, 415, &[], &message, false).await;
            response
                .headers_mut()
                .insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate"));
            return response;
        }
    };
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = match read_body(body, announced).await {
        Ok(body) => body,
        Err((Unread::TooLarge, beginning)) => {
            return refuse_body(&state, &project, 413, &beginning, &too_large, false).await
        }
        // Stalled past the body deadline, or cut: a transient problem, so a 5xx, which
        // Mixpanel retries (a 400 would pause the customer's sync).
        Err((Unread::Cut, beginning)) => {
            let message = "The delivery's body did not arrive whole in time; it will be retried.";
            return refuse_body(&state, &project, 503, &beginning, message, false).await;
        }
    };
    let body = match coding.decode(body.clone()) {
        Ok(body) => body,
        Err(Undecodable::TooLarge(unpacked)) => {
            return refuse_body(&state, &project, 413, &unpacked, &too_large, true).await
        }
        // Not what it says it is: no retry makes it so. Its action, if it says one: as
        // unpacked so far, or as sent (a body marked compressed that is not).
        Err(Undecodable::Invalid(error, unpacked)) => {
            let message = format!(
                "The delivery's body is not the {coding} data its Content-Encoding says: {error}."
            );
            let named = match unpacked.is_empty() {
                true => beginning(&body),
                false => unpacked,
            };
            return refuse_body(&state, &project, 400, &named, &message, true).await;
        }
    };
    // A place among the deliveries applied in all projects, once this one's body is in.
    let applying = match state.deliveries_in_flight.apply(&project).await {
        Ok(applying) => applying,
        Err(message) => {
            let refusal = cohort_sync::Refusal::unread(503, message, &project);
            let action = action_of(&body);
            cohort_sync::note_refusal(&state, &refusal, action.as_str(), &body).await;
            return failure(503, action, message);
        }
    };
    // Checked again now that the body is in and it may be applied: a secret regenerated,
    // sync turned off or Mixpanel disconnected while it arrived or waited refuses it, as it
    // refuses the next delivery.
    let receiver = match cohort_sync::authenticate(&state, &webhook_id, authorization).await {
        Ok(now) => now,
        Err(refusal) => {
            let action = action_of(&body);
            cohort_sync::note_refusal(&state, &refusal, action.as_str(), &body).await;
            return failure(refusal.status, action, &refusal.message);
        }
    };
    // Mixpanel stops waiting after a while (how long is not documented) and closes the
    // connection, which drops this handler: an apply cut there was rolled back, and started
    // over (and cut again) at every retry, so a big snapshot never landed. It runs to its end
    // in a task of its own; a retry finds it applied, or waits its turn behind it.
    let delivery = body.clone();
    // In the request's span, so that what it logs names the request.
    let applied = tokio::spawn(tracing::Instrument::in_current_span(async move {
        let _slots = (slot, applying);
        cohort_sync::receive(&state, receiver, &delivery).await
    }));
    match applied.await {
        Ok(Ok(action)) => {
            Json(json!({ "action": action.as_str(), "status": "success" })).into_response()
        }
        Ok(Err(refusal)) => failure(refusal.status, action_of(&body), &refusal.message),
        Err(panicked) => {
            tracing::error!(error = %panicked, "a cohort-sync delivery failed");
            failure(
                500,
                action_of(&body),
                "Something went wrong on our side; the delivery will be retried.",
            )
        }
    }
}

/// Refuses a delivery before its body is read: never taken in, read past (its beginning
/// kept for the action echoed back), or the connection closed when it does not end in time.
async fn refuse_unread(
    state: &AppState,
    refusal: &cohort_sync::Refusal,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let (beginning, whole) = discard_body(headers, body, MAX_DELIVERY_BODY, ACTION_WITHIN).await;
    let action = action_of(&beginning);
    cohort_sync::note_refusal(state, refusal, action.as_str(), &beginning).await;
    let mut response = failure(refusal.status, action, &refusal.message);
    if !whole {
        close(&mut response);
    }
    response
}

/// Refuses an authenticated delivery whose body is not one UserJourneys reads: recorded in
/// the project's sync history as the customer's sender named it (a 4xx pauses the sync, and
/// the customer looks there to see why), its action echoed back when `beginning` names it.
/// `whole`: the body was read to its end; when not, the connection closes.
async fn refuse_body(
    state: &AppState,
    project: &ProjectId,
    status: u16,
    beginning: &[u8],
    message: &str,
    whole: bool,
) -> Response {
    let action = action_of(beginning);
    let refusal = cohort_sync::Refusal::unread(status, message, project);
    cohort_sync::note_refusal(state, &refusal, action.as_str(), beginning).await;
    let mut response = failure(status, action, message);
    if !whole {
        close(&mut response);
    }
    response
}

fn close(response: &mut Response) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
}

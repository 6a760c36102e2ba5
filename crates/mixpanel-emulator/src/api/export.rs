//! Raw Event Export: `GET /api/2.0/export` on the data hosts, JSONL streamed line by line
//! once past 1400 bytes (gzip when asked and over 1400 bytes), with Mixpanel's parameter
//! validation.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use chrono::NaiveDate;
use futures_util::stream;
use serde_json::{json, Value};

use super::{admit, authorize_project, query_error};
use crate::faults::TruncateMode;
use crate::limits::Api;
use crate::state::Shared;
use crate::Region;

const MAX_LIMIT: u64 = 100_000;
/// Mixpanel gzips exports larger than this (when asked to).
pub const GZIP_ABOVE_BYTES: u16 = 1400;

fn date(params: &HashMap<String, String>, name: &str, path: &str) -> Result<NaiveDate, Response> {
    let Some(raw) = params.get(name) else {
        return Err(query_error(
            StatusCode::BAD_REQUEST,
            path,
            &format!("{name} is required"),
        ));
    };
    // Exactly YYYY-MM-DD: chrono alone would also take 2026-1-1.
    let well_formed = raw.len() == 10 && raw.as_bytes()[4] == b'-' && raw.as_bytes()[7] == b'-';
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| well_formed)
        .ok_or_else(|| {
            query_error(
                StatusCode::BAD_REQUEST,
                path,
                &format!("{name} must be a date in the format YYYY-MM-DD, got {raw:?}"),
            )
        })
}

pub async fn export(
    State(shared): State<Arc<Shared>>,
    Extension(region): Extension<Region>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let path = uri.path();
    let params: HashMap<String, String> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let access = match authorize_project(&shared, region, &headers, path, &params) {
        Ok(access) => access,
        Err(response) => return response,
    };
    let (from, to) = match (
        date(&params, "from_date", path),
        date(&params, "to_date", path),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    if to > chrono::Utc::now().date_naive() {
        return query_error(
            StatusCode::BAD_REQUEST,
            path,
            "to_date cannot be later than today",
        );
    }
    if from > to {
        return query_error(
            StatusCode::BAD_REQUEST,
            path,
            "from_date cannot be later than to_date",
        );
    }
    let names: Option<Vec<String>> = match params.get("event") {
        None => None,
        Some(raw) => match serde_json::from_str(raw) {
            Ok(names) => Some(names),
            Err(_) => {
                return query_error(
                    StatusCode::BAD_REQUEST,
                    path,
                    "event must be a JSON array of event names",
                )
            }
        },
    };
    let limit = match params.get("limit").map(|l| l.parse::<u64>()) {
        None => MAX_LIMIT,
        Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
        Some(_) => {
            return query_error(
                StatusCode::BAD_REQUEST,
                path,
                "limit must be an integer between 1 and 100000",
            )
        }
    };
    if params.get("where").is_some_and(|w| !w.is_empty()) {
        return query_error(
            StatusCode::BAD_REQUEST,
            path,
            "where expressions are not supported by the emulator",
        );
    }
    let time_in_ms = params.get("time_in_ms").is_some_and(|v| v == "true");
    let permit = match admit(&shared, path, access.project.id, Api::Export).await {
        Ok(permit) => permit,
        Err(response) => return response,
    };

    let mut events: Vec<_> = access
        .project
        .events
        .iter()
        .filter(|e| {
            let day = chrono::DateTime::from_timestamp(e.time(), 0).map(|t| t.date_naive());
            day.is_some_and(|d| d >= from && d <= to)
        })
        .filter(|e| names.as_ref().is_none_or(|n| n.contains(&e.event)))
        .cloned()
        .collect();
    events.sort_by_key(|e| e.time());
    events.truncate(limit as usize);

    let truncate = {
        let faults = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults
            .truncate_export
            .clone()
            .filter(|_| faults.applies_to(region))
    };
    let lines = events.into_iter().map(move |mut event| {
        if time_in_ms {
            let ms = event.time() * 1000;
            event.properties.insert("time".into(), json!(ms));
        }
        let line: Value = json!({ "event": event.event, "properties": event.properties });
        Ok::<_, std::io::Error>(Bytes::from(format!("{line}\n")))
    });
    let mut body: Box<dyn Iterator<Item = Result<Bytes, std::io::Error>> + Send> = match truncate {
        None => Box::new(lines),
        Some(cut) => {
            let head = lines.take(cut.after_lines);
            match cut.mode {
                TruncateMode::TerminatedEarly => Box::new(head.chain(std::iter::once(Ok(
                    Bytes::from_static(b"terminated early\n"),
                )))),
                TruncateMode::Reset => {
                    Box::new(head.chain(std::iter::once(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "fault injected: export cut off",
                    )))))
                }
            }
        }
    };
    // The compression layer gzips any stream, whose size it cannot know: an export that ends
    // within the threshold is answered whole, with its size, so that it goes out plain.
    let mut head = Vec::new();
    let mut size = 0;
    let mut cut = None;
    while size <= usize::from(GZIP_ABOVE_BYTES) {
        match body.next() {
            Some(Ok(line)) => {
                size += line.len();
                head.push(line);
            }
            Some(Err(error)) => {
                cut = Some(error);
                break;
            }
            None => return jsonl(Body::from(head.concat())),
        }
    }
    let body = head.into_iter().map(Ok).chain(cut.map(Err)).chain(body);
    // The permit travels with the stream: the request counts as running until it ends.
    let stream = stream::iter(body.inspect(move |_| {
        let _held = &permit;
    }));
    jsonl(Body::from_stream(stream))
}

/// A 200 of JSONL, served as `text/plain` as Mixpanel serves it.
fn jsonl(body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .expect("static response parts are valid")
}

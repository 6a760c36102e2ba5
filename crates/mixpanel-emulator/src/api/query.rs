//! Query API: cohorts list, Engage (cohort members, paged) and top event names. Every
//! call, every Engage page included, spends from the project's Query budget.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::{admit, authorize_project, query_error};
use crate::limits::Api;
use crate::scenario::Member;
use crate::state::Shared;
use crate::Region;

/// Query-string parameters, overridden by form-body parameters (POST).
fn params(uri: &Uri, body: &[u8]) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    if let Ok(form) = serde_urlencoded::from_bytes::<HashMap<String, String>>(body) {
        params.extend(form);
    }
    params
}

pub async fn cohorts(
    State(shared): State<Arc<Shared>>,
    Extension(region): Extension<Region>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = params(&uri, &body);
    let path = uri.path();
    let access = match authorize_project(&shared, region, &headers, path, &params) {
        Ok(access) => access,
        Err(response) => return response,
    };
    let _permit = match admit(&shared, path, access.project.id, Api::Query).await {
        Ok(permit) => permit,
        Err(response) => return response,
    };
    let cohorts: Vec<Value> = access
        .project
        .cohorts
        .iter()
        .map(|cohort| {
            json!({
                "id": cohort.id,
                "name": cohort.name,
                "description": cohort.description,
                "count": shared.member_count(access.project.id, cohort.id),
                "is_visible": u8::from(cohort.is_visible),
                "created": cohort.created,
                "project_id": access.project.id,
            })
        })
        .collect();
    Json(cohorts).into_response()
}

/// `{"id": 51234}` or `{"id": "51234"}`.
fn cohort_filter(raw: &str) -> Option<u64> {
    let value: Value = serde_json::from_str(raw).ok()?;
    match value.get("id")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn truthy(raw: Option<&String>, default: bool) -> bool {
    raw.map_or(default, |v| !matches!(v.as_str(), "false" | "0" | "False"))
}

fn profile(member: &Member, output: Option<&[String]>) -> Value {
    let properties: Map<String, Value> = match output {
        Some(keys) => member
            .properties
            .iter()
            .filter(|(k, _)| keys.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => member.properties.clone(),
    };
    json!({ "$distinct_id": member.distinct_id, "$properties": properties })
}

pub async fn engage(
    State(shared): State<Arc<Shared>>,
    Extension(region): Extension<Region>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = params(&uri, &body);
    let path = uri.path();
    let access = match authorize_project(&shared, region, &headers, path, &params) {
        Ok(access) => access,
        Err(response) => return response,
    };
    let project_id = access.project.id;
    let page: usize = match params.get("page").map(|p| p.parse()) {
        None => 0,
        Some(Ok(page)) => page,
        Some(Err(_)) => {
            return query_error(
                StatusCode::BAD_REQUEST,
                path,
                "page must be a non-negative integer",
            )
        }
    };
    let output: Option<Vec<String>> = match params.get("output_properties") {
        None => None,
        Some(raw) => match serde_json::from_str(raw) {
            Ok(keys) => Some(keys),
            Err(_) => {
                return query_error(
                    StatusCode::BAD_REQUEST,
                    path,
                    "output_properties must be a JSON array of strings",
                )
            }
        },
    };
    let _permit = match admit(&shared, path, project_id, Api::Query).await {
        Ok(permit) => permit,
        Err(response) => return response,
    };

    let (session_id, members) = if page == 0 {
        let members = match params.get("filter_by_cohort") {
            Some(raw) => {
                let Some(cohort_id) = cohort_filter(raw) else {
                    return query_error(
                        StatusCode::BAD_REQUEST,
                        path,
                        "filter_by_cohort must be a JSON object like {\"id\": 123}",
                    );
                };
                match shared.members(project_id, cohort_id) {
                    Some(members) => members,
                    None => return query_error(StatusCode::BAD_REQUEST, path, "Cohort not found"),
                }
            }
            None => shared.project_profiles(project_id),
        };
        let include_all = truthy(params.get("include_all_users"), true);
        let members = members
            .into_iter()
            .filter(|m| include_all || m.has_profile)
            .collect();
        shared.start_engage_session(project_id, members)
    } else {
        let Some(session_id) = params.get("session_id") else {
            return query_error(
                StatusCode::BAD_REQUEST,
                path,
                "session_id is required when page > 0",
            );
        };
        match shared.engage_session(session_id) {
            Some((owner, members)) if owner == project_id => (session_id.clone(), members),
            _ => {
                return query_error(
                    StatusCode::BAD_REQUEST,
                    path,
                    "Invalid or expired session_id",
                )
            }
        }
    };

    let page_size = shared.limiter.limits().engage_page_size.max(1);
    let results: Vec<Value> = members
        .iter()
        .skip(page * page_size)
        .take(page_size)
        .map(|m| profile(m, output.as_deref()))
        .collect();
    let mut body = json!({
        "status": "ok",
        "session_id": session_id,
        "page": page,
        "page_size": page_size,
        "results": results,
    });
    // Mixpanel sends the total on the first page only.
    if page == 0 {
        body["total"] = json!(members.len());
    }
    Json(body).into_response()
}

pub async fn event_names(
    State(shared): State<Arc<Shared>>,
    Extension(region): Extension<Region>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let params = params(&uri, &[]);
    let path = uri.path();
    let access = match authorize_project(&shared, region, &headers, path, &params) {
        Ok(access) => access,
        Err(response) => return response,
    };
    match params.get("type").map(String::as_str) {
        Some("general" | "unique" | "average") => {}
        _ => {
            return query_error(
                StatusCode::BAD_REQUEST,
                path,
                "type must be one of general, unique, average",
            )
        }
    }
    let limit: usize = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => 255,
        Some(Ok(limit)) => limit.min(5000),
        Some(Err(_)) => {
            return query_error(StatusCode::BAD_REQUEST, path, "limit must be an integer")
        }
    };
    let _permit = match admit(&shared, path, access.project.id, Api::Query).await {
        Ok(permit) => permit,
        Err(response) => return response,
    };
    // The most common events of the last 31 days, most frequent first.
    let since = chrono::Utc::now().timestamp() - 31 * 24 * 3600;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for event in access.project.events.iter().filter(|e| e.time() >= since) {
        *counts.entry(event.event.as_str()).or_default() += 1;
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let names: Vec<&str> = names
        .into_iter()
        .take(limit)
        .map(|(name, _)| name)
        .collect();
    Json(names).into_response()
}

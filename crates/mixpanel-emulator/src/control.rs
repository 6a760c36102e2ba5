//! The control surface under `/_emulator/`: what tests and the demo panel use to change
//! the world between requests. Not part of Mixpanel's API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::faults::Faults;
use crate::scenario::{Destination, Member};
use crate::state::{ApiRequest, Shared};

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator", get(overview))
        .route(
            "/_emulator/projects/{project_id}/cohorts/{cohort_id}/members",
            get(members).post(change_members),
        )
        .route(
            "/_emulator/destinations",
            get(destinations).post(add_destination),
        )
        .route("/_emulator/destinations/{id}", get(destination))
        .route("/_emulator/destinations/{id}/run", post(run_sync))
        .route("/_emulator/destinations/{id}/resume", post(resume))
        .route(
            "/_emulator/destinations/{id}/expire-snapshot",
            post(expire_snapshot),
        )
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/faults", get(faults).put(set_faults))
        .route("/_emulator/limits/reset", post(reset_limits))
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no such {what}") })),
    )
        .into_response()
}

/// A destination as shown: the Basic Auth password never leaves the emulator.
fn redacted(mut destination: Destination) -> Destination {
    if let Some(auth) = destination.basic_auth.as_mut() {
        auth.password = "********".into();
    }
    destination
}

async fn overview(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let projects: Vec<_> = shared
        .scenario
        .projects
        .iter()
        .map(|p| {
            let cohorts: Vec<_> = p
                .cohorts
                .iter()
                .map(|c| json!({ "id": c.id, "name": c.name, "members": shared.member_count(p.id, c.id) }))
                .collect();
            json!({ "id": p.id, "name": p.name, "region": p.region, "cohorts": cohorts })
        })
        .collect();
    let destinations: Vec<_> = shared
        .sender
        .destinations()
        .into_iter()
        .map(redacted)
        .collect();
    Json(json!({ "projects": projects, "destinations": destinations }))
}

async fn members(
    State(shared): State<Arc<Shared>>,
    Path((project_id, cohort_id)): Path<(u64, u64)>,
) -> Response {
    match shared.members(project_id, cohort_id) {
        Some(members) => Json(members).into_response(),
        None => not_found("cohort"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipChange {
    #[serde(default)]
    add: Vec<Member>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn change_members(
    State(shared): State<Arc<Shared>>,
    Path((project_id, cohort_id)): Path<(u64, u64)>,
    Json(change): Json<MembershipChange>,
) -> Response {
    match shared.change_members(project_id, cohort_id, change.add, &change.remove) {
        Some(count) => Json(json!({ "members": count })).into_response(),
        None => not_found("cohort"),
    }
}

async fn destinations(State(shared): State<Arc<Shared>>) -> Json<Vec<Destination>> {
    Json(
        shared
            .sender
            .destinations()
            .into_iter()
            .map(redacted)
            .collect(),
    )
}

async fn add_destination(
    State(shared): State<Arc<Shared>>,
    Json(destination): Json<Destination>,
) -> Response {
    if !shared.has_cohort(destination.project_id, destination.cohort_id) {
        return not_found("cohort");
    }
    shared.sender.add_destination(destination.clone());
    (StatusCode::CREATED, Json(redacted(destination))).into_response()
}

async fn destination(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Some(destination) = shared.sender.destination(&id) else {
        return not_found("destination");
    };
    let deliveries = shared.sender.deliveries(&id);
    let recent = &deliveries[deliveries.len().saturating_sub(100)..];
    Json(json!({
        "destination": redacted(destination),
        "state": shared.sender.state(&id),
        "deliveries": recent,
    }))
    .into_response()
}

async fn run_sync(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match crate::run_sync(&shared, &id).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(_) => not_found("destination"),
    }
}

async fn resume(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if shared.sender.resume(&id) {
        Json(shared.sender.state(&id)).into_response()
    } else {
        not_found("destination")
    }
}

async fn expire_snapshot(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if shared.sender.destination(&id).is_none() {
        return not_found("destination");
    }
    let expired = shared.sender.expire_snapshot(&id);
    Json(json!({ "expired": expired })).into_response()
}

async fn requests(State(shared): State<Arc<Shared>>) -> Json<Vec<ApiRequest>> {
    Json(shared.requests())
}

async fn faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(
        shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    )
}

async fn set_faults(State(shared): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Json<Faults> {
    *shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults.clone();
    Json(faults)
}

async fn reset_limits(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.limiter.reset();
    StatusCode::NO_CONTENT
}

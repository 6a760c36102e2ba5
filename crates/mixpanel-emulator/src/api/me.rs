//! `GET /api/app/me`: who the service account is and what it can reach.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::auth::authenticate;
use crate::state::Shared;
use crate::Region;

/// `include_workspace_users` is accepted and changes nothing: the emulator has no
/// workspace users to include.
pub async fn show(
    State(shared): State<Arc<Shared>>,
    Extension(region): Extension<Region>,
    headers: HeaderMap,
) -> Response {
    let account = match authenticate(&shared, region, &headers) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let scenario = &shared.scenario;
    let mut organizations = BTreeMap::new();
    if let Some(org) = scenario.organization(account.organization_id) {
        organizations.insert(
            org.id.to_string(),
            json!({ "id": org.id, "name": org.name, "role": "member", "permissions": [] }),
        );
    }
    let mut projects = BTreeMap::new();
    let mut workspaces = BTreeMap::new();
    for grant in &account.grants {
        let Some(project) = scenario.project(grant.project_id) else {
            continue;
        };
        projects.insert(
            project.id.to_string(),
            json!({
                "name": project.name,
                "organization_id": project.organization_id,
                "timezone": project.timezone,
                "domain": project.domain(),
                "type": project.kind,
                "has_workspaces": !project.data_views.is_empty(),
                "permissions": grant.permissions(),
                "role": { "id": grant.role as u8 + 1, "name": grant.role.display_name() },
            }),
        );
        for view in &project.data_views {
            workspaces.insert(
                view.id.to_string(),
                json!({
                    "id": view.id, "name": view.name, "project_id": project.id,
                    "is_default": view.is_default, "is_global": view.is_global,
                    "is_restricted": false, "is_visible": true,
                    "description": "", "creator_name": "",
                }),
            );
        }
    }
    let email = format!("{}@serviceaccount.mixpanel.com", account.username);
    let name = account
        .username
        .split('.')
        .next()
        .unwrap_or(&account.username);
    Json(json!({
        "status": "ok",
        "results": {
            "user_id": account.user_id,
            "user_email": email,
            "user_name": name,
            "organizations": organizations,
            "projects": projects,
            "workspaces": workspaces,
        }
    }))
    .into_response()
}

//! Service-account authentication (HTTP Basic, bound to the account's home cluster) and
//! the `project_id` rule of the Query and Export APIs.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;

use super::{app_error, query_error};
use crate::scenario::{Grant, Project, ServiceAccount};
use crate::state::Shared;
use crate::Region;

/// A service account allowed to query one project.
pub struct ProjectAccess<'a> {
    pub project: &'a Project,
}

fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?.trim();
    // Mixpanel also accepts the colon-joined credentials without base64.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| encoded.to_owned());
    let (user, secret) = decoded.split_once(':')?;
    Some((user.to_owned(), secret.to_owned()))
}

/// The service account making this request on `region`'s hosts, or the 401 Mixpanel
/// answers (the same for unknown, wrong, expired and wrong-cluster credentials).
pub fn authenticate<'a>(
    shared: &'a Shared,
    region: Region,
    headers: &HeaderMap,
) -> Result<&'a ServiceAccount, Response> {
    let Some((username, secret)) = credentials(headers) else {
        return Err(app_error(
            StatusCode::UNAUTHORIZED,
            "Authentication required",
        ));
    };
    let account = shared
        .scenario
        .service_accounts
        .iter()
        .find(|a| a.username == username && a.secret == secret)
        .filter(|a| a.valid_in(region))
        .filter(|a| a.expires_at.is_none_or(|at| at > chrono::Utc::now()));
    account.ok_or_else(|| app_error(StatusCode::UNAUTHORIZED, "Invalid username or secret"))
}

/// The older Query paths (`/api/2.0/engage`, `/api/2.0/cohorts/list`), which have been seen
/// refusing credentials with 400 "Unable to authenticate request" rather than 401
/// (reference §2.3). Raw Export, also under `/api/2.0/`, is documented with 401.
fn is_legacy_query(path: &str) -> bool {
    path.starts_with("/api/2.0/") && !path.starts_with("/api/2.0/export")
}

/// Authenticates, then checks `project_id` (required with a service account), the
/// account's grant and permission on it, that it lives on this cluster, and `workspace_id`.
pub fn authorize_project<'a>(
    shared: &'a Shared,
    region: Region,
    headers: &HeaderMap,
    path: &str,
    params: &std::collections::HashMap<String, String>,
) -> Result<ProjectAccess<'a>, Response> {
    let project_id = params.get("project_id").map(String::as_str);
    let workspace_id = params.get("workspace_id").map(String::as_str);
    let account = authenticate(shared, region, headers).map_err(|refused| {
        if is_legacy_query(path) {
            query_error(
                StatusCode::BAD_REQUEST,
                path,
                "Unable to authenticate request",
            )
        } else {
            refused
        }
    })?;
    let Some(raw) = project_id.filter(|p| !p.is_empty()) else {
        return Err(query_error(
            StatusCode::BAD_REQUEST,
            path,
            "project_id is required when authenticating with a service account",
        ));
    };
    let Ok(project_id) = raw.parse::<u64>() else {
        return Err(query_error(
            StatusCode::BAD_REQUEST,
            path,
            "project_id must be an integer",
        ));
    };
    let grant: Option<&Grant> = account.grants.iter().find(|g| g.project_id == project_id);
    let project = shared.scenario.project(project_id);
    let (Some(grant), Some(project)) = (grant, project) else {
        return Err(app_error(
            StatusCode::FORBIDDEN,
            "You do not have access to this project",
        ));
    };
    if !grant.can_query() {
        return Err(app_error(
            StatusCode::FORBIDDEN,
            "Your role does not have permission to query this project",
        ));
    }
    if project.region != region {
        return Err(app_error(
            StatusCode::NOT_FOUND,
            "Project not found on this cluster",
        ));
    }
    if let Some(workspace) = workspace_id.filter(|w| !w.is_empty()) {
        let known = workspace
            .parse::<u64>()
            .ok()
            .is_some_and(|id| project.data_views.iter().any(|v| v.id == id));
        if !known {
            return Err(query_error(
                StatusCode::BAD_REQUEST,
                path,
                "Invalid workspace_id",
            ));
        }
    }
    Ok(ProjectAccess { project })
}

//! `GET /api/v1/project`: the key's project, so a client can check its key.

use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uj_domain::projects::Project;

use crate::http::auth::SecretKeyAuth;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/project", get(show))
}

#[derive(Serialize)]
pub struct ProjectResponse {
    object: &'static str,
    id: String,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<Project> for ProjectResponse {
    fn from(project: Project) -> Self {
        Self {
            object: "project",
            id: project.id.into_string(),
            name: project.name,
            created_at: project.created_at,
        }
    }
}

async fn show(auth: SecretKeyAuth) -> Json<ProjectResponse> {
    Json(auth.project.into())
}

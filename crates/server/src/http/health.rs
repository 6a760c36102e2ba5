//! `/healthz`: the process is up. `/readyz`: and its database answers.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Answers within `sdk_timeout` too: a database that stops answering is not ready.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    tokio::time::timeout(state.sdk_timeout, state.store.ping())
        .await
        .map_err(|_| ApiError::unavailable(anyhow::anyhow!("no answer from the database")))?
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({ "status": "ok", "database": "ok" })))
}

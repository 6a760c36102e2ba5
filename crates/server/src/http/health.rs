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

/// Answers within `sdk_timeout` too: a database that stops answering is not ready. Not
/// ready, it logs why a new connection fails, if one does (the requests failing meanwhile
/// log only that none came in time).
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let failure = match tokio::time::timeout(state.sdk_timeout, state.store.ping()).await {
        Ok(Ok(())) => return Ok(Json(json!({ "status": "ok", "database": "ok" }))),
        Ok(Err(error)) => anyhow::Error::from(error),
        Err(_) => anyhow::anyhow!("no answer from the database"),
    };
    Err(ApiError::unavailable(
        match state.store.connect_error().await {
            Some(why) => anyhow::anyhow!(
                "{} (a new connection fails: {why})",
                crate::telemetry::causes(&failure)
            ),
            None => failure,
        },
    ))
}

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
    let failure = match tokio::time::timeout(state.sdk_timeout, state.store.ping()).await {
        Ok(Ok(())) => return Ok(Json(json!({ "status": "ok", "database": "ok" }))),
        Ok(Err(error)) => anyhow::Error::from(error),
        Err(_) => anyhow::anyhow!("no answer from the database"),
    };
    log_why_no_connection_opens(&state);
    Err(ApiError::unavailable(failure))
}

/// Beside a readiness that failed, logs why a new connection to the database fails, if one
/// does (refused, unknown host, a wrong password, connections not allowed): the requests
/// failing meanwhile log only that none came in time. In the background, so that readyz
/// still answers within its deadline; one attempt at a time, and a warning once a minute at
/// most in a process.
fn log_why_no_connection_opens(state: &AppState) {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    static TRYING: AtomicBool = AtomicBool::new(false);
    static LAST_SAID: AtomicI64 = AtomicI64::new(0);
    let now = || chrono::Utc::now().timestamp();
    if now() - LAST_SAID.load(Ordering::Relaxed) < 60 || TRYING.swap(true, Ordering::AcqRel) {
        return;
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Some(why) = store.connect_error().await {
            LAST_SAID.store(now(), Ordering::Relaxed);
            tracing::warn!(error = %why, "not ready: a new connection to the database fails");
        }
        TRYING.store(false, Ordering::Release);
    });
}

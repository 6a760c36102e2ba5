//! The SDK API under `/sdk/v1`, authenticated with the project's public key. It serves
//! apps, so it answers browsers' CORS requests too (added with the web SDK endpoints).

mod config;
mod events;
mod invites;

use axum::extract::DefaultBodyLimit;
use axum::Router;

use super::extract::MAX_JSON_BODY;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(config::router())
        .merge(events::router())
        .merge(invites::router())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
}

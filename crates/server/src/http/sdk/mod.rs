//! The SDK API under `/sdk/v1`, authenticated with the project's public key. It serves apps
//! and web apps alike: any origin may call it (the key is public; it reaches nothing but the
//! caller's own config and invites), and each key is rate limited.

mod config;
mod events;
mod invites;
mod rate_limit;

pub(crate) use rate_limit::SdkRateLimiter;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, Method};
use axum::middleware::from_fn_with_state;
use tower_http::cors::{Any, CorsLayer};
use utoipa_axum::router::OpenApiRouter;

use super::extract::MAX_JSON_BODY;
use super::middleware::REQUEST_ID;
use crate::state::AppState;

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(config::router())
        .merge(events::router())
        .merge(invites::router())
        .layer(from_fn_with_state(state, rate_limit::per_key))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
}

/// Any origin may call the SDK API. Applied around the whole router, not the SDK routes
/// alone: the answers made outside them (a wrong method, an unknown `/sdk/` path, a
/// damaged URL) reach web apps too, and preflight requests are answered before routing.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            REQUEST_ID,
        ])
        .expose_headers([header::ETAG, REQUEST_ID, header::RETRY_AFTER])
}

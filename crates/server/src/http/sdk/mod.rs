//! The SDK API under `/sdk/v1`, authenticated with the project's public key. It serves apps
//! and web apps alike: any origin may call it (the key is public; it reaches nothing but the
//! caller's own config and invites), and each key is rate limited.

mod config;
mod events;
mod invites;
mod rate_limit;

pub(crate) use rate_limit::SdkRateLimiter;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Method};
use axum::middleware::from_fn_with_state;
use tower_http::cors::{Any, CorsLayer};
use utoipa_axum::router::OpenApiRouter;

use super::extract::MAX_JSON_BODY;
use crate::state::AppState;

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([
            header::ETAG,
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
        ]);
    OpenApiRouter::new()
        .merge(config::router())
        .merge(events::router())
        .merge(invites::router())
        .layer(from_fn_with_state(state, rate_limit::per_key))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(cors)
}

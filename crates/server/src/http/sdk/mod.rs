//! The SDK API under `/sdk/v1`, authenticated with the project's public key. It serves apps
//! and web apps alike: any origin may call it (the key is public; it reaches nothing but the
//! caller's own config and invites), and each key is rate limited.

mod config;
mod events;
mod invites;
mod rate_limit;

pub(crate) use rate_limit::RateLimiter;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, Method};
use axum::middleware::from_fn_with_state;
use tower_http::cors::{AllowHeaders, Any, CorsLayer};
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

/// A call sent by the dashboard's SDK playground (its `X-UserJourneys-Playground` header):
/// it acts as an app's would, but is not the app's first call, so the dashboard keeps
/// leading with the SDK's setup until the app itself calls (the playground hid that notice:
/// found by the demo review).
pub struct FromPlayground(pub bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for FromPlayground {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts.headers.contains_key("x-userjourneys-playground"),
        ))
    }
}

/// Any origin may call the SDK API. Applied around the whole router, not the SDK routes
/// alone: the answers made outside them (a wrong method, an unknown `/sdk/` path, a
/// damaged URL) reach web apps too, and preflight requests are answered before routing.
/// Any request header is allowed (no credentials ride on these requests, only the public
/// key): a header a fixed list left out (`Cache-Control`, a tracing SDK's `sentry-trace`)
/// failed the whole request as a bare network error. Browsers keep a preflight's answer
/// for an hour rather than asking before every call. Every header an answer or its message
/// points at can be read by the app's script.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            header::ETAG,
            REQUEST_ID,
            header::RETRY_AFTER,
            header::ALLOW,
            header::ACCEPT_ENCODING,
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

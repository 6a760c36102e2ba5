//! The HTTP layer, read as a table of contents: health checks, the REST API for
//! customers' backends, the SDK API for their apps, and the dashboard for people.

mod api;
mod auth;
mod dashboard;
mod error;
mod extract;
mod health;
mod launch;
mod middleware;
pub(crate) mod openapi;
mod sdk;
mod webhooks;

use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::state::AppState;
pub(crate) use error::ApiError;
pub(crate) use sdk::SdkRateLimiter;

pub fn router(state: AppState) -> Router {
    let (apis, document) = apis(&state);
    let routes = Router::new()
        .merge(health::router())
        .merge(apis)
        .merge(openapi::router(openapi::Rendered::new(&document)))
        .merge(webhooks::router())
        .merge(launch::router())
        .merge(dashboard::router(state.clone()))
        .fallback(not_found);
    middleware::wrap(routes).with_state(state)
}

/// The REST and SDK APIs, and their OpenAPI document gathered from the same routes.
fn apis(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    let (routes, mut document) =
        utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
            .nest("/api/v1", api::router())
            // Merged at its full paths, not nested: a nested router strips its prefix
            // (a new URI) and routes again, on every SDK request.
            .merge(sdk::router(state.clone()))
            .split_for_parts();
    openapi::complete(&mut document);
    (routes, document)
}

/// Unknown paths: JSON under the APIs, a page everywhere else.
async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path.starts_with("/sdk/") || path.starts_with("/webhooks/") {
        ApiError::not_found("route", "No such endpoint; see the API reference.").into_response()
    } else {
        dashboard::not_found_page().into_response()
    }
}

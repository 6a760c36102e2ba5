//! The dashboard: server-rendered pages that work without JavaScript, signed-in with a
//! session cookie, every form CSRF-protected.

mod api_keys;
mod assets;
mod audiences;
mod demo;
mod invitations;
mod login;
mod members;
mod mixpanel;
mod pages;
mod playground;
mod projects;
mod session;
mod setup;
mod studies;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::Router;

use crate::state::AppState;

/// Forms are small; anything bigger is refused with 413.
const MAX_FORM_BODY: usize = 16 * 1024;

pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .merge(setup::router())
        .merge(login::router())
        .merge(projects::router())
        .merge(api_keys::router())
        .merge(audiences::router())
        .merge(members::router())
        .merge(mixpanel::router())
        .merge(invitations::router())
        .merge(studies::router())
        .merge(demo::router())
        .merge(playground::router())
        .layer(from_fn_with_state(state, session::csrf_binding))
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .layer(axum::middleware::map_response(rejections_as_pages));
    Router::new().merge(pages).merge(assets::router())
}

/// axum's own rejections (a path segment or query that does not decode, a form that does
/// not parse) are plain text: the dashboard answers them with its page, the text escaped.
async fn rejections_as_pages(response: axum::response::Response) -> axum::response::Response {
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain || !response.status().is_client_error() {
        return response;
    }
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    pages::message(status, "Bad request", &String::from_utf8_lossy(&text))
}

/// The page for an unknown dashboard path.
pub fn not_found_page() -> impl IntoResponse {
    pages::PageError::NotFound
}

/// A plain page with a title and a sentence (the browser routes' answers).
pub fn message_page(
    status: axum::http::StatusCode,
    title: &'static str,
    message: &'static str,
) -> axum::response::Response {
    pages::message(status, title, message)
}

/// The page for an error outside the dashboard's own handlers.
pub fn page_error(error: pages::PageError) -> axum::response::Response {
    error.into_response()
}

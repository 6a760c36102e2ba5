//! The dashboard: server-rendered pages that work without JavaScript, signed-in with a
//! session cookie, every form CSRF-protected.

mod account;
mod api_keys;
mod assets;
mod audiences;
mod demo;
mod forms;
mod invitations;
mod login;
mod members;
mod mixpanel;
mod new_rule;
mod pages;
mod playground;
mod projects;
mod rules;
mod session;
mod setup;
mod studies;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::Router;

use crate::state::AppState;

/// Forms are small; anything bigger is refused with 413. The API's bound for a JSON body:
/// a long paste into a field (20,000 characters of a message) is answered on its form, by
/// the field's own bound, as the API answers it (it was a bare "too large" page, the form
/// and what was typed gone).
const MAX_FORM_BODY: usize = crate::http::extract::MAX_JSON_BODY;

pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .merge(setup::router())
        .merge(login::router())
        .merge(account::router())
        .merge(projects::router())
        .merge(api_keys::router())
        .merge(audiences::router())
        .merge(members::router())
        .merge(mixpanel::router())
        .merge(invitations::router())
        .merge(studies::router())
        .merge(rules::router())
        .merge(demo::router())
        .merge(playground::router())
        .layer(from_fn_with_state(state, session::csrf_binding))
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .layer(axum::middleware::map_response(rejections_as_pages))
        // Pages show private data and, once, secrets: no cache keeps them, and the browser's
        // Back button shows none of them again after signing out.
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ));
    Router::new().merge(pages).merge(assets::router())
}

/// axum's own rejections (a path segment or query that does not decode, a form that does
/// not parse) are plain text: the dashboard answers them with its page, the text escaped.
pub async fn rejections_as_pages(response: axum::response::Response) -> axum::response::Response {
    // A page asked with a method it does not take (a bookmarked form action, a link posted
    // to): axum answers an empty 405, which a browser shows as a blank page.
    if response.status() == axum::http::StatusCode::METHOD_NOT_ALLOWED
        && !response
            .headers()
            .contains_key(axum::http::header::CONTENT_TYPE)
    {
        let allow = response.headers().get(axum::http::header::ALLOW).cloned();
        let mut page = pages::message(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "Nothing to show here",
            "This address does not take that kind of request. Go back, and follow a link or use a button.",
        );
        if let Some(allow) = allow {
            page.headers_mut().insert(axum::http::header::ALLOW, allow);
        }
        return page;
    }
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

/// Adds to `router` (the pages people open: the dashboard, the interview links) an answer
/// for a handler that panics: the error page, with the request id to report. Without it
/// the common layers' catch answers the API's JSON error.
pub fn pages_catch_panics<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |_: Box<dyn std::any::Any + Send + 'static>| {
            pages::PageError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        },
    ))
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

/// [`message_page`] for a respondent who followed an interview link.
pub fn respondent_page(
    status: axum::http::StatusCode,
    title: &'static str,
    message: &'static str,
) -> axum::response::Response {
    pages::respondent_message(status, title, message)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_page_whose_handler_panics_answers_the_error_page() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let boom = Router::new().route("/boom", get(boom));
        let router = crate::http::middleware::wrap(super::pages_catch_panics(boom), false);
        let response = router
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let page = String::from_utf8_lossy(&body);
        assert!(page.contains("Something went wrong"), "{page}");
        assert!(page.contains("report request id"), "{page}");
    }
}

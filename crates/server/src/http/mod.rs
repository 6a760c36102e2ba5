//! The HTTP layer, read as a table of contents: health checks, the REST API for
//! customers' backends, the SDK API for their apps, and the dashboard for people.

mod api;
mod auth;
mod dashboard;
mod error;
mod extract;
mod health;
mod idempotency;
mod launch;
pub(crate) mod metrics;
mod middleware;
pub(crate) mod openapi;
mod sdk;
mod webhooks;

pub use middleware::with_body_deadline;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::state::AppState;
pub(crate) use error::ApiError;
pub(crate) use sdk::RateLimiter;

pub fn router(state: AppState) -> Router {
    let (apis, document) = apis(&state);
    // The JSON surfaces answer a wrong method in their error format too.
    let json_routes = apis
        .merge(openapi::router(openapi::Rendered::new(&document)))
        .merge(health::router())
        .layer(axum::middleware::map_response(method_not_allowed));
    // The interview links answer a wrong method with a page, as the dashboard does. Their
    // redirects carry a user's id and respondent code: no cache keeps them.
    let links = launch::router()
        .layer(axum::middleware::map_response(
            dashboard::rejections_as_pages,
        ))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ));
    let routes = Router::new()
        .merge(json_routes)
        // In Mixpanel's format, wrong methods too.
        .merge(webhooks::router())
        .merge(dashboard::pages_catch_panics(
            links.merge(dashboard::router(state.clone())),
        ))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        // Outside the request's deadline: a client's slow upload has the body's own
        // deadline, and is not answered as the database or Mixpanel being slow.
        .layer(axum::middleware::from_fn(|request, next| {
            middleware::body_first(request, next, extract::MAX_JSON_BODY)
        }))
        .layer(axum::middleware::from_fn(refuse_malformed_head));
    // Outermost, so that even the answer to a panic carries CORS and is counted.
    middleware::wrap(routes, state.https)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state, outermost))
}

/// Around everything that may answer: each answer counted in the metrics (refusals by the
/// layers inside too), and CORS for the SDK API (`sdk::cors`) on `/sdk/` paths. One layer
/// for both: each layer costs every request a little.
async fn outermost(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tower::{Layer, Service};
    static CORS: std::sync::LazyLock<tower_http::cors::CorsLayer> =
        std::sync::LazyLock::new(sdk::cors);
    let path = request.uri().path();
    // `//sdk/…` too: its 404 reaches the web app that joined a base URL ending in a slash.
    let cors = without_extra_slashes(path).1.starts_with("/sdk/");
    let (api, cors) = (metrics::Api::of(request.method(), path), cors);
    let started = std::time::Instant::now();
    // Counted as 499 when the client closes its connection before the answer (hyper drops
    // this future then, and nothing after the await runs).
    let unanswered = Unanswered {
        metrics: &state.metrics,
        api,
        started,
    };
    let response = match cors {
        false => next.run(request).await,
        true => {
            let sent_id = middleware::safe_request_id(request.headers());
            let mut response = match CORS.layer(next).call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            // A preflight is answered here, before the layers that give a request its id:
            // every answer carries one (`docs/api.md`), the client's own when it is safe.
            if !response.headers().contains_key(&middleware::REQUEST_ID) {
                let id = sent_id.unwrap_or_else(middleware::new_request_id);
                response.headers_mut().insert(middleware::REQUEST_ID, id);
            }
            response
        }
    };
    std::mem::forget(unanswered);
    state
        .metrics
        .observe(api, response.status().as_u16(), started);
    response
}

/// Counts a request whose answer never came (`outermost`).
struct Unanswered<'a> {
    metrics: &'a metrics::Metrics,
    api: metrics::Api,
    started: std::time::Instant,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        self.metrics
            .observe(self.api, middleware::CLIENT_CLOSED, self.started);
    }
}

/// The answer to every request but `/healthz` once the SQLite file was deleted or replaced
/// under the server (`startup::watch_database_file`).
fn database_lost(path: &str, what: &str) -> Response {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let message = format!(
        "The database file was {what} while the server ran; it stopped serving so that \
         nothing more is lost. Its operator must restart it (the server's log says how)."
    );
    if is_webhook_path(path) {
        webhooks::failure(503, serde_json::Value::Null, &message)
    } else if is_api_path(path) || path == "/readyz" {
        ApiError::new(status, "storage_unavailable", message).into_response()
    } else if launch::is_link_path(path) {
        dashboard::respondent_page(
            status,
            "Not available right now",
            "This interview link cannot be opened right now. Try again later.",
        )
    } else {
        dashboard::message_page(
            status,
            "Not available",
            "The database file was deleted or replaced while the server ran, so it stopped \
             serving to keep anything more from being lost. Its operator must restart it (the \
             server's log says how).",
        )
    }
}

/// REST requests and dashboard pages end after `request_timeout` with a 503 `timed_out`: a
/// database that stops answering (a lock held, a frozen server), or Mixpanel, would
/// otherwise hold them for the whole outage. The SDK and `/readyz` have a shorter deadline of their own; a webhook
/// delivery is not cut (Mixpanel would send its page again, and the apply start over).
async fn request_deadline(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    // Here, inside the layers that give every answer its request id, log line and headers
    // (and CORS, and the webhook's format), as any other 503.
    if let Some(what) = state.database_lost.get().filter(|_| path != "/healthz") {
        return database_lost(path, what);
    }
    if path.starts_with("/sdk/") || is_webhook_path(path) || path == "/readyz" {
        return next.run(request).await;
    }
    let (api, link) = (is_api_path(path), launch::is_link_path(path));
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if api => ApiError::timed_out(state.request_timeout).into_response(),
        Err(_) if link => dashboard::respondent_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not available right now",
            "This interview link cannot be opened right now. Try again in a moment.",
        ),
        Err(_) => dashboard::message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not available right now",
            "The database or Mixpanel did not answer in time. Try again in a moment.",
        ),
    }
}

/// A head no route should read: a NUL character (`%00`) in the path or query (no id, code
/// or name holds one, and PostgreSQL cannot store it in text), or an HTTP/1.1 request
/// without exactly one `Host` line (RFC 9112 §3.2; hyper takes either). Refused before any
/// handler reads it, on both databases alike. A NUL in a body is refused by the body's
/// extractor.
async fn refuse_malformed_head(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request.uri();
    let nul = |text: &str| text.contains("%00");
    // hyper undoes `chunked` alone, and handed a body sent `gzip, chunked` on still
    // compressed, refused as JSON it could not read. RFC 9112 §6.1 suggests 501 for a
    // transfer coding not understood; a 400 keeps the client's mistake out of the server
    // errors operators alert on, and says what to send.
    // Exactly one `chunked` and nothing else (empty list elements aside, RFC 9110 §5.6.1):
    // hyper undoes one, and `chunked, chunked` left the body chunked once more (found by the
    // second review).
    let codings: Vec<&str> = request
        .headers()
        .get_all(axum::http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|coding| !coding.is_empty())
        .collect();
    let other_coding = match codings[..] {
        [] => false,
        [one] => !one.eq_ignore_ascii_case("chunked"),
        _ => true,
    };
    let (problem, title, page) = if nul(uri.path()) || uri.query().is_some_and(nul) {
        (
            "The URL contains a NUL character (%00); no id or parameter may hold one.",
            "This link is damaged",
            "It contains a character no link of ours holds. Check that it was copied whole.",
        )
    } else if other_coding {
        let problem = "The body's Transfer-Encoding is one this server does not read: send it chunked or with a Content-Length (a compressed body says so with Content-Encoding).";
        (problem, "Bad request", problem)
    } else if request.version() == axum::http::Version::HTTP_11
        && request
            .headers()
            .get_all(axum::http::header::HOST)
            .iter()
            .count()
            != 1
    {
        let problem = "An HTTP/1.1 request must carry exactly one Host header.";
        (problem, "Bad request", problem)
    } else {
        return next.run(request).await;
    };
    let path = uri.path();
    let mut response = if is_webhook_path(path) {
        // In Mixpanel's format, which its UI shows the customer.
        webhooks::failure(400, serde_json::Value::Null, problem)
    } else if is_api_path(path) {
        let code = match other_coding {
            true => "unsupported_transfer_encoding",
            false => "invalid_request",
        };
        ApiError::bad_request(code, problem).into_response()
    } else if launch::is_link_path(path) {
        dashboard::respondent_page(StatusCode::BAD_REQUEST, title, page)
    } else {
        dashboard::message_page(StatusCode::BAD_REQUEST, title, page)
    };
    if other_coding {
        // Its body unread: the connection cannot carry another request.
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// `path` split after its extra leading slashes (`//sdk/x` is `/` and `/sdk/x`): a base URL
/// ending in a slash joined to a path beginning with one.
pub(crate) fn without_extra_slashes(path: &str) -> (&str, &str) {
    let slashes = path.len() - path.trim_start_matches('/').len();
    path.split_at(slashes.saturating_sub(1))
}

/// Webhook addresses, answered in Mixpanel's format whatever happens (its UI shows the
/// customer what we answered): `/webhooks` and under it, however many slashes lead.
pub(crate) fn is_webhook_path(path: &str) -> bool {
    without_extra_slashes(path)
        .1
        .strip_prefix("/webhooks")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn is_api_path(path: &str) -> bool {
    ["/api", "/sdk", "/webhooks"].iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
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

/// axum answers a known path asked with a method it does not serve with an empty 405 (and
/// adds `Allow` on the way out); the JSON surfaces answer it in their error format.
async fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut answer = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not accept that method; see the Allow header and the API reference.",
    )
    .into_response();
    if let Some(allow) = allow {
        answer
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    answer
}

/// Unknown paths: JSON under the APIs, a page everywhere else.
async fn not_found(uri: Uri) -> Response {
    // A base URL ending in a slash joined to a path beginning with one: still an API's.
    let doubled = uri.path().starts_with("//");
    if is_webhook_path(uri.path()) && doubled {
        let message = "This webhook URL begins with two slashes: copy the webhook URL shown in \
                       UserJourneys (Mixpanel → Cohort sync) as it is, and check the server's \
                       public URL (UJ_PUBLIC_URL) does not end in a slash.";
        webhooks::failure(404, serde_json::Value::Null, message)
    } else if is_webhook_path(uri.path()) {
        webhooks::unknown().await
    } else if doubled && is_api_path(without_extra_slashes(uri.path()).1) {
        let message = "No such endpoint: the address begins with two slashes; check the base URL.";
        ApiError::not_found("route", message).into_response()
    } else if is_api_path(uri.path()) {
        ApiError::not_found("route", "No such endpoint; see the API reference.").into_response()
    } else if launch::is_link_path(uri.path()) {
        // A respondent's link with something added or cut (`/i/{code}/more`, `/i/`): their
        // page, not the dashboard's, which sent them to sign in (web SDK probe).
        launch::not_found()
    } else {
        dashboard::not_found_page().into_response()
    }
}

//! Mixpanel's HTTP APIs, one set per region: the App and Query APIs under the region's API
//! prefix (`/us`, `/eu`, `/in`), the Raw Export API under its data prefix (`/data-us`, …).

// Handlers here short-circuit with the finished `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod auth;
mod export;
mod me;
mod query;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use futures_util::StreamExt;
use serde_json::json;
use tower_http::compression::predicate::SizeAbove;
use tower_http::compression::CompressionLayer;

use crate::faults::Action;
use crate::state::{ApiRequest, Shared};
use crate::Region;

pub(crate) use auth::authorize_project;

pub fn router(shared: Arc<Shared>) -> Router<Arc<Shared>> {
    let mut router = Router::new();
    for region in Region::ALL {
        router = router
            .nest(region.api_prefix(), api_host(&shared, region))
            .nest(region.data_prefix(), data_host(&shared, region));
    }
    router.layer(from_fn_with_state(shared, log_request))
}

/// Records every API request's method and path, whatever the answer.
async fn log_request(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    shared.record_request(ApiRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    });
    next.run(request).await
}

fn api_host(shared: &Arc<Shared>, region: Region) -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/app/me", get(me::show))
        .route("/api/app/me/", get(me::show))
        .route(
            "/api/query/cohorts/list",
            get(query::cohorts).post(query::cohorts),
        )
        .route(
            "/api/2.0/cohorts/list",
            get(query::cohorts).post(query::cohorts),
        )
        .route("/api/query/engage", get(query::engage).post(query::engage))
        .route("/api/2.0/engage", get(query::engage).post(query::engage))
        .route("/api/query/events/names", get(query::event_names))
        .fallback(invalid_endpoint)
        .layer(from_fn_with_state(shared.clone(), inject_faults))
        .layer(Extension(region))
}

fn data_host(shared: &Arc<Shared>, region: Region) -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/2.0/export", get(export::export))
        .route("/api/2.0/export/", get(export::export))
        .fallback(invalid_endpoint)
        .layer(
            CompressionLayer::new()
                .gzip(true)
                // SizeAbove compresses from its size on; Mixpanel only above it.
                .compress_when(SizeAbove::new(export::GZIP_ABOVE_BYTES + 1)),
        )
        .layer(from_fn_with_state(shared.clone(), inject_faults))
        .layer(Extension(region))
}

async fn invalid_endpoint(request: Request) -> Response {
    query_error(
        StatusCode::NOT_FOUND,
        request.uri().path(),
        "Invalid API endpoint",
    )
}

/// App API error body: `{"error": "…", "status": "error"}`.
pub fn app_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message, "status": "error" }))).into_response()
}

/// Query and Export API error body: `{"request": "/api/…", "error": "…"}`.
pub fn query_error(status: StatusCode, path: &str, message: &str) -> Response {
    (status, Json(json!({ "request": path, "error": message }))).into_response()
}

/// 429 as Mixpanel sends it: a plain JSON error, `Retry-After` only when the scenario asks.
pub fn rate_limited(shared: &Shared, path: &str, message: &str) -> Response {
    let mut response = query_error(StatusCode::TOO_MANY_REQUESTS, path, message);
    if let Some(seconds) = shared.limiter.limits().retry_after_seconds {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// Counts a Query or Export request against the project's limits (429 when over), then
/// spends the injected latency while holding the slot, as a slow Mixpanel query would.
pub async fn admit(
    shared: &Shared,
    path: &str,
    project: u64,
    api: crate::limits::Api,
) -> Result<crate::limits::Permit, Response> {
    let permit = shared
        .limiter
        .acquire(project, api)
        .map_err(|limited| rate_limited(shared, path, limited.0))?;
    spend_latency().await;
    Ok(permit)
}

/// A response whose body fails at once: the client sees the connection drop.
pub fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault injected: connection reset",
        ))
    });
    Response::new(Body::from_stream(failing))
}

tokio::task_local! {
    /// The injected latency, in milliseconds, that the request being answered has still to
    /// spend: [`inject_faults`] sets it, [`admit`] spends it inside the rate-limit slot, and
    /// what a handler leaves is spent once the handler has answered.
    static LATENCY_DUE: Arc<AtomicU64>;
}

/// Spends what is left of the request's injected latency: at most once per request.
async fn spend_latency() {
    let due = LATENCY_DUE
        .try_with(|due| due.swap(0, Ordering::Relaxed))
        .unwrap_or(0);
    sleep_ms(due).await;
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Gives one API request its injected faults: the latency, spent once (see [`LATENCY_DUE`]),
/// and the next queued failure, if any.
async fn inject_faults(
    State(shared): State<Arc<Shared>>,
    Extension(region): Extension<Region>,
    request: Request,
    next: Next,
) -> Response {
    let (latency, action) = {
        let mut faults = shared.faults.lock().unwrap_or_else(|e| e.into_inner());
        let latency = if faults.applies_to(region) {
            faults.latency_ms
        } else {
            0
        };
        (latency, faults.next_action(region))
    };
    let due = Arc::new(AtomicU64::new(latency));
    let response = match action {
        Action::Pass => LATENCY_DUE.scope(due.clone(), next.run(request)).await,
        Action::Fail(status) => app_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "Internal server error (fault injected)",
        ),
        Action::Reset => dropped_connection(),
        Action::Endless => endless_answer(),
    };
    sleep_ms(due.swap(0, Ordering::Relaxed)).await;
    response
}

/// `[` and then spaces for as long as the client reads.
fn endless_answer() -> Response {
    let spaces = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
    let body = futures_util::stream::once(async { Ok(axum::body::Bytes::from_static(b"[")) })
        .chain(futures_util::stream::repeat(spaces).map(Ok::<_, std::io::Error>));
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

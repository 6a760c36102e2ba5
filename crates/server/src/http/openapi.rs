//! The OpenAPI document of the REST and SDK APIs, generated from the handlers' annotations
//! and the routes they are registered on (utoipa-axum: a handler is documented exactly when
//! it is routed), served at `/api/openapi.json` and rendered at `/api/reference`.

use std::sync::Arc;

use askama::Template;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "UserJourneys API",
        description = "The REST API (`/api/v1`, a secret key `uj_live_…`) for your backend, and the SDK API (`/sdk/v1`, the public key `uj_pk_…`) for your apps. Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`; lists are `{\"object\": \"list\", \"data\", \"has_more\"}` paged with `limit` and `starting_after`.",
    ),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "Project", description = "The project the key belongs to and its settings"),
        (name = "API keys", description = "Secret keys and the public SDK key"),
        (name = "Mixpanel", description = "Connect Mixpanel with a service account"),
        (name = "Cohort sync", description = "The webhook Mixpanel syncs cohorts to"),
        (name = "Audiences", description = "Synced cohorts, their members and sync history"),
        (name = "Events", description = "The event catalog"),
        (name = "Studies", description = "Studies and their launch rules"),
        (name = "Invites", description = "Invites and their attribution: why each was made, what became of it"),
        (name = "SDK", description = "For apps, with the public key"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, format, description) in [
            ("secret_key", "uj_live_…", "A live secret key (REST API)"),
            (
                "public_key",
                "uj_pk_…",
                "The project's public key (SDK API)",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format(format)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// What every operation shares, added once instead of on each handler: the key it takes
/// (the public key under `/sdk/`, a secret key elsewhere) and the error answers, the
/// client's (`4XX`) and the server's (`5XX`: any request can meet an unavailable database
/// or the request deadline, so a client generated from the document needs both).
pub fn complete(document: &mut Document) {
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let client_error = error("A precise error: code, message, field");
    let server_error = error(
        "A server error: 503 `storage_unavailable` (the database is unreachable or busy), \
         `timed_out` (no answer within the request deadline) or `mixpanel_rate_limited`, and \
         502 `mixpanel_unreachable` or `mixpanel_unexpected_answer`, all worth a retry; 500 \
         `internal_error` (quote the request id the message carries)",
    );
    for (path, item) in document.paths.paths.iter_mut() {
        let key = if path.starts_with("/sdk/") {
            "public_key"
        } else {
            "secret_key"
        };
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(key, [])]);
            let responses = &mut operation.responses.responses;
            responses.insert("4XX".into(), client_error.clone().into());
            responses.insert("5XX".into(), server_error.clone().into());
        }
    }
}

/// Every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: `invalid_api_key`, `validation_failed`, `not_found`, …
    code: String,
    /// For people: what happened and what to do.
    message: String,
    /// The request field at fault, when there is one.
    field: Option<String>,
}

/// The document, rendered once.
#[derive(Clone)]
pub struct Rendered {
    json: Arc<String>,
    operations: Arc<Vec<Operation>>,
}

struct Operation {
    method: String,
    path: String,
    tag: String,
    summary: String,
    auth: &'static str,
}

impl Rendered {
    pub fn new(document: &Document) -> Self {
        let json = document
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let mut operations = Vec::new();
        for (path, item) in &document.paths.paths {
            let methods = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ];
            for (method, operation) in methods {
                let Some(operation) = operation else { continue };
                operations.push(Operation {
                    method: method.into(),
                    path: path.clone(),
                    tag: operation
                        .tags
                        .as_ref()
                        .and_then(|t| t.first().cloned())
                        .unwrap_or_default(),
                    summary: operation.summary.clone().unwrap_or_default(),
                    auth: if path.starts_with("/sdk/") {
                        "public key"
                    } else {
                        "secret key"
                    },
                });
            }
        }
        operations.sort_by(|a, b| (&a.tag, &a.path).cmp(&(&b.tag, &b.path)));
        Self {
            json: Arc::new(json),
            operations: Arc::new(operations),
        }
    }
}

pub fn router(rendered: Rendered) -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(json))
        .route("/api/reference", get(reference))
        .layer(Extension(rendered))
}

async fn json(Extension(rendered): Extension<Rendered>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        rendered.json.as_str().to_owned(),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "reference.html")]
struct ReferencePage<'a> {
    operations: &'a [Operation],
}

async fn reference(Extension(rendered): Extension<Rendered>) -> Response {
    match (ReferencePage {
        operations: &rendered.operations,
    })
    .render()
    {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "the API reference did not render");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

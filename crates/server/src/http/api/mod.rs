//! The REST API under `/api/v1`, authenticated with a live secret key.

mod api_keys;
mod audiences;
mod cohort_sync;
mod events;
mod invites;
mod launch_rules;
mod mixpanel;
mod project;
mod studies;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;

use super::extract::MAX_JSON_BODY;
use crate::state::AppState;

/// A page of a list, as every list answers: `{"object": "list", "data", "has_more"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    object: &'static str,
    data: Vec<T>,
    has_more: bool,
}

impl<T> ListResponse<T> {
    pub fn of(data: Vec<T>, has_more: bool) -> axum::Json<Self> {
        axum::Json(Self {
            object: "list",
            data,
            has_more,
        })
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(project::router())
        .merge(api_keys::router())
        .merge(audiences::router())
        .merge(cohort_sync::router())
        .merge(events::router())
        .merge(invites::router())
        .merge(launch_rules::router())
        .merge(mixpanel::router())
        .merge(studies::router())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        // Answers show secrets once (keys, the webhook secret, a connect token) and private
        // data: no cache keeps them.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// A string that is one of `names`, for the OpenAPI document. The handlers parse such
/// fields themselves, so that a wrong value is a 422 naming its field.
fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
}

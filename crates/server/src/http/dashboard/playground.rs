//! The SDK playground: the dashboard page where you play your app. It calls the real SDK API
//! from the browser with the project's public key, as an app would (`static/playground.js`):
//! load the configuration for a user id, send an event, see the prompt card as the rule's
//! copy renders it, accept or dismiss, open a direct link, follow the launch URL.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::pages::{render, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CsrfToken, CurrentUser};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/p/{project_id}/playground", get(show))
}

#[derive(Template)]
#[template(path = "playground.html")]
struct PlaygroundPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    public_key: String,
    /// The user id the form starts with: a member of the demo's cohorts in the demo, none
    /// elsewhere (a real project has no `ref_2`).
    sample_user: &'static str,
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    Ok(render(&PlaygroundPage {
        title: "SDK playground",
        nav: context.nav(),
        csrf_token: csrf.0,
        public_key: context.current.project.public_key.clone(),
        sample_user: match state.demo {
            Some(_) => "ref_2",
            None => "",
        },
    }))
}

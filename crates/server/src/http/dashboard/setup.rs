//! First-run setup: the first visit creates the owner account and the first project.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::pages::{render, render_with, Nav, PageError};
use super::session::{sign_in, CsrfToken, VerifiedForm};
use crate::services::{accounts, ServiceError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/setup", get(show).post(submit))
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    error: Option<String>,
    /// The field the error is about, by its form name.
    error_field: Option<&'static str>,
    email: String,
    project_name: String,
}

#[derive(Deserialize)]
struct SetupForm {
    email: String,
    password: String,
    project_name: String,
}

async fn show(State(state): State<AppState>, csrf: CsrfToken) -> Result<Response, PageError> {
    // Set up already: home, which is the project for who is signed in, else sign-in.
    if state.store.is_set_up().await? {
        return Ok(Redirect::to("/").into_response());
    }
    Ok(render(&SetupPage {
        title: "Set up",
        nav: None,
        csrf_token: csrf.0,
        error: None,
        error_field: None,
        email: String::new(),
        project_name: String::new(),
    }))
}

async fn submit(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: CsrfToken,
    VerifiedForm(form): VerifiedForm<SetupForm>,
) -> Result<Response, PageError> {
    let store = state.store.as_ref();
    match accounts::set_up(store, &form.email, &form.password, &form.project_name).await {
        Ok((owner, project)) => {
            let jar = sign_in(&state, jar, &owner).await?;
            Ok((jar, Redirect::to(&format!("/p/{}", project.id))).into_response())
        }
        Err(ServiceError::Conflict { .. }) => Ok(Redirect::to("/login").into_response()),
        // Said by the field's label, and beside it.
        Err(ServiceError::Invalid(invalid)) => {
            let (field, label) = match invalid.field {
                "email" => ("email", "Your email"),
                "password" => ("password", "Password"),
                _ => ("project_name", "Project name"),
            };
            Ok(render_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                &SetupPage {
                    title: "Set up",
                    nav: None,
                    csrf_token: csrf.0,
                    error: Some(format!("{label}: {}", invalid.message)),
                    error_field: Some(field),
                    email: form.email,
                    project_name: form.project_name,
                },
            ))
        }
        Err(other) => Err(other.into()),
    }
}

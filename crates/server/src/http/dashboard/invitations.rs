//! `/invitations/{token}`: an invited person chooses a password and joins the project.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::pages::{render, render_with, Nav, PageError};
use super::session::{session_cookie, CsrfToken, VerifiedForm};
use crate::services::{accounts, ServiceError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/invitations/{token}", get(show).post(accept))
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    token: String,
    email: String,
    project_name: String,
    error: Option<String>,
}

fn invalid_link() -> PageError {
    PageError::BadRequest(
        "This invitation link is invalid, already used or expired. Ask the project's owner for a new one."
            .into(),
    )
}

async fn load(
    state: &AppState,
    token: &str,
    csrf_token: String,
) -> Result<InvitationPage, PageError> {
    let (invitation, project) = accounts::open_invitation(state.store.as_ref(), token)
        .await?
        .ok_or_else(invalid_link)?;
    Ok(InvitationPage {
        title: "Join a project",
        nav: None,
        csrf_token,
        token: token.to_owned(),
        email: invitation.email,
        project_name: project.name,
        error: None,
    })
}

async fn show(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    Ok(render(&load(&state, &token, csrf.0).await?))
}

#[derive(Deserialize)]
struct AcceptForm {
    password: String,
}

async fn accept(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: CsrfToken,
    Path(token): Path<String>,
    VerifiedForm(form): VerifiedForm<AcceptForm>,
) -> Result<Response, PageError> {
    let store = state.store.as_ref();
    match accounts::accept_invitation(store, &token, &form.password).await {
        Ok(account) => {
            let session = accounts::start_session(store, &account.id).await?;
            let jar = jar.add(session_cookie(&state, session.expose_secret().to_owned()));
            Ok((jar, Redirect::to("/")).into_response())
        }
        Err(ServiceError::Invalid(invalid)) => {
            let mut page = load(&state, &token, csrf.0).await?;
            page.error = Some(invalid.to_string());
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(ServiceError::NotFound(_)) => Err(invalid_link()),
        Err(other) => Err(other.into()),
    }
}

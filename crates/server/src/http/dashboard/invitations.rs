//! `/invitations/{token}`: an invited person joins the project: a new person by choosing a
//! password, someone with an account by accepting while signed in as it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::pages::{render, render_with, Nav, PageError};
use super::session::{sign_in, signed_in, CsrfToken, VerifiedForm};
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
    /// The invited email has an account: it joins by signing in, not with a new password.
    has_account: bool,
    /// The email of the account signed in on this browser, if any.
    signed_in_as: Option<String>,
    error: Option<String>,
}

impl InvitationPage {
    /// The signed-in account is the invited one: it may join with a click.
    fn can_join(&self) -> bool {
        self.has_account && self.signed_in_as.as_deref() == Some(self.email.as_str())
    }
}

fn invalid_link() -> PageError {
    PageError::Refused {
        title: "Invitation link not valid",
        message: "This invitation link is invalid, already used or expired. Ask the project's owner for a new one.",
    }
}

async fn load(
    state: &AppState,
    jar: &CookieJar,
    token: &str,
    csrf_token: String,
) -> Result<InvitationPage, PageError> {
    let (invitation, project) = accounts::open_invitation(state.store.as_ref(), token)
        .await?
        .ok_or_else(invalid_link)?;
    let has_account = accounts::account_for(state.store.as_ref(), &invitation.email)
        .await?
        .is_some();
    let signed_in_as = signed_in(state, jar).await?.map(|account| account.email);
    Ok(InvitationPage {
        title: "Join a project",
        nav: None,
        csrf_token,
        token: token.to_owned(),
        email: invitation.email,
        project_name: project.name,
        has_account,
        signed_in_as,
        error: None,
    })
}

async fn show(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    Ok(render(&load(&state, &jar, &token, csrf.0).await?))
}

#[derive(Deserialize)]
struct AcceptForm {
    /// A new account's password; absent when an existing account joins.
    password: Option<String>,
}

async fn accept(
    State(state): State<AppState>,
    jar: CookieJar,
    csrf: CsrfToken,
    Path(token): Path<String>,
    VerifiedForm(form): VerifiedForm<AcceptForm>,
) -> Result<Response, PageError> {
    let store = state.store.as_ref();
    let Some(password) = form.password else {
        // An existing account joins: only when signed in as the invited email.
        let Some(account) = signed_in(&state, &jar).await? else {
            return Ok(render(&load(&state, &jar, &token, csrf.0).await?));
        };
        return match accounts::join_invitation(store, &token, &account).await {
            Ok(project) => Ok(Redirect::to(&format!("/p/{project}")).into_response()),
            Err(ServiceError::NotFound(_)) => {
                // Not open, or for another account: the page says which.
                let page = load(&state, &jar, &token, csrf.0).await?;
                Ok(render_with(StatusCode::FORBIDDEN, &page))
            }
            Err(other) => Err(other.into()),
        };
    };
    match accounts::accept_invitation(store, &token, &password).await {
        Ok(account) => {
            let jar = sign_in(&state, jar, &account).await?;
            Ok((jar, Redirect::to("/")).into_response())
        }
        Err(ServiceError::Invalid(invalid)) => {
            let mut page = load(&state, &jar, &token, csrf.0).await?;
            page.error = Some(invalid.to_string());
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(ServiceError::Conflict { .. }) => {
            // The email has an account: the page now asks to sign in as it.
            let page = load(&state, &jar, &token, csrf.0).await?;
            Ok(render_with(StatusCode::CONFLICT, &page))
        }
        Err(ServiceError::NotFound(_)) => Err(invalid_link()),
        Err(other) => Err(other.into()),
    }
}

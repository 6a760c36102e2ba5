//! Signing in and out, and the dashboard's front door.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::pages::{render, render_with, Nav, PageError};
use super::session::{
    expired_session_cookie, sign_in, CsrfToken, CurrentUser, EmptyForm, VerifiedForm,
    SESSION_COOKIE,
};
use crate::services::accounts;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(show).post(submit))
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    error: Option<String>,
    email: String,
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

/// `/`: the first project of a signed-in account (or a form to create one).
async fn home(State(state): State<AppState>, user: CurrentUser) -> Result<Redirect, PageError> {
    let memberships = state.store.memberships(&user.account.id).await?;
    Ok(match memberships.first() {
        Some(first) => Redirect::to(&format!("/p/{}", first.project.id)),
        None => Redirect::to("/projects/new"),
    })
}

async fn show(State(state): State<AppState>, csrf: CsrfToken) -> Result<Response, PageError> {
    if !state.store.is_set_up().await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok(render(&LoginPage {
        title: "Sign in",
        nav: None,
        csrf_token: csrf.0,
        error: None,
        email: String::new(),
    }))
}

async fn submit(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    csrf: CsrfToken,
    VerifiedForm(form): VerifiedForm<LoginForm>,
) -> Result<Response, PageError> {
    let client = client.ip().to_string();
    if let Err(wait) = state.login_throttle.attempt(&form.email, &client) {
        return Err(PageError::TooManyAttempts {
            minutes: wait.as_secs().div_ceil(60),
        });
    }
    let store = state.store.as_ref();
    let Some(account) = accounts::authenticate(store, &form.email, &form.password).await? else {
        // One message for unknown emails and wrong passwords: nothing to enumerate.
        return Ok(render_with(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                title: "Sign in",
                nav: None,
                csrf_token: csrf.0,
                error: Some("That email and password do not match an account.".into()),
                email: form.email,
            },
        ));
    };
    state.login_throttle.succeeded(&form.email, &client);
    let jar = sign_in(&state, jar, &account.id).await?;
    Ok((jar, Redirect::to("/")).into_response())
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    if let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) {
        accounts::end_session(state.store.as_ref(), &token).await?;
    }
    let jar = jar.add(expired_session_cookie(&state));
    Ok((jar, Redirect::to("/login")).into_response())
}

//! Signing in and out, and the dashboard's front door.

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::pages::{render, render_with, Nav, PageError};
use super::session::{
    expired_session_cookie, known_device, sign_in, CsrfToken, CurrentUser, EmptyForm, VerifiedForm,
    SESSION_COOKIE,
};
use crate::http::extract::client_address;
use crate::services::accounts;
use crate::services::login_throttle::{Attempt, Counted};
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
    headers: HeaderMap,
    jar: CookieJar,
    csrf: CsrfToken,
    VerifiedForm(form): VerifiedForm<LoginForm>,
) -> Result<Response, PageError> {
    let client = client_address(&headers, client.ip(), state.trusted_proxies);
    // Read before the attempt is counted: a database that stalls here counts nothing.
    let named = accounts::accounts_for(state.store.as_ref(), &form.email).await?;
    // A known device has a window of its own only where the address names one account: its
    // password is tried against that account alone (two spellings stored before, one device
    // cookie each, tried each other's passwords on a window of their own: found by the
    // second review).
    let device = match &named[..] {
        [one] => known_device(&state, &jar, one),
        _ => None,
    };
    let attempt = match &device {
        Some(device) => Attempt::KnownDevice { device },
        None => Attempt::Email {
            email: &form.email,
            client,
        },
    };
    let counted = count(&state, attempt, client, "sign-in")?;
    // From here on the attempt stays counted however its request ends (a client that cut
    // its sign-ins once their hash began made hashes without end: found by the second
    // review), unless the server fails it (`undecided`).
    let checked = match accounts::authenticate(named, &form.password).await {
        Ok(checked) => checked,
        Err(error) => {
            counted.undecided();
            return Err(error.into());
        }
    };
    // One answer for unknown emails and wrong passwords: nothing to enumerate.
    let no_match = |csrf_token: String| {
        tracing::info!(client = %client, "sign-in failed: no account with that email and password");
        let mut response = render_with(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                title: "Sign in",
                nav: None,
                csrf_token,
                error: Some("That email and password do not match an account.".into()),
                email: form.email.clone(),
            },
        );
        // Every 401 names a scheme (RFC 9110 §11.6.1). This one is the form on the page: a
        // scheme of our own, which browsers show the page for (Basic would open their
        // credentials dialog, and no header names a form).
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Form realm="userjourneys dashboard""#),
        );
        response
    };
    let Some(account) = checked else {
        counted.failed();
        return Ok(no_match(csrf.0));
    };
    let account =
        accounts::upgrade_password_hash(state.store.as_ref(), account, &form.password).await;
    match sign_in(&state, jar, &account).await {
        Ok(jar) => {
            counted.succeeded();
            Ok((jar, Redirect::to("/")).into_response())
        }
        // The password changed between its check and the session: it is no longer the
        // account's, and is answered as any other (a 409 told its sender it had been right a
        // moment ago; found by the accounts probe).
        Err(PageError::Conflict(_)) => {
            counted.failed();
            Ok(no_match(csrf.0))
        }
        Err(other) => {
            counted.undecided();
            Err(other)
        }
    }
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    if let Some(token) = jar
        .get(SESSION_COOKIE.on(&state))
        .map(|c| c.value().to_owned())
    {
        accounts::end_session(state.store.as_ref(), &token).await?;
    }
    let jar = jar.add(expired_session_cookie(&state));
    Ok((jar, Redirect::to("/login")).into_response())
}

/// Counts a password `attempt` (`what`: a sign-in or a password change), or refuses it
/// past its windows with how long to wait, logged with the client, not the address (the log
/// is no list of accounts).
pub(super) fn count<'a>(
    state: &'a AppState,
    attempt: Attempt<'a>,
    client: IpAddr,
    what: &'static str,
) -> Result<Counted<'a>, PageError> {
    state.login_throttle.count(attempt).map_err(|wait| {
        tracing::warn!(
            client = %client,
            retry_after_secs = wait.as_secs(),
            "{what} refused: too many failed attempts for this address or account, or from this client"
        );
        PageError::TooManyAttempts {
            seconds: wait.as_secs(),
        }
    })
}

//! The signed-in person's account: changing the password (which signs out every other
//! browser, a stolen session included).

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::pages::{render_with, Nav, PageError};
use super::session::{sign_in, CsrfToken, CurrentUser, VerifiedForm};
use crate::http::extract::client_address;
use crate::services::login_throttle::Attempt;
use crate::services::{accounts, ServiceError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/account", get(show).post(change_password))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    email: String,
    notice: Option<&'static str>,
    error: Option<String>,
    /// The field the error is about, by its form name.
    error_field: Option<&'static str>,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    csrf_token: String,
) -> Result<AccountPage, PageError> {
    let memberships = state.store.memberships(&user.account.id).await?;
    Ok(AccountPage {
        title: "Account",
        nav: Some(Nav::new(&user.account.email, &memberships, None)),
        csrf_token,
        email: user.account.email.clone(),
        notice: None,
        error: None,
        error_field: None,
    })
}

#[derive(Deserialize)]
struct Shown {
    changed: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(shown): Query<Shown>,
) -> Result<Response, PageError> {
    let mut page = page(&state, &user, csrf.0).await?;
    if shown.changed.is_some() {
        page.notice = Some("Password changed. Every other browser was signed out.");
    }
    Ok(render_with(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    user: CurrentUser,
    csrf: CsrfToken,
    VerifiedForm(form): VerifiedForm<PasswordForm>,
) -> Result<Response, PageError> {
    // Guessing the current password here is slowed as at sign-in, on the account's own
    // window: failures at sign-in from elsewhere do not keep its owner from changing it.
    let client = client_address(&headers, client.ip(), state.trusted_proxies);
    let attempt = Attempt::SignedIn {
        account: user.account.id.as_str(),
        client,
    };
    let counted = super::login::count(&state, attempt, client, "password change")?;
    let changed = accounts::change_password(
        state.store.as_ref(),
        &user.account,
        &form.current_password,
        &form.new_password,
    )
    .await;
    match changed {
        Ok(account) => {
            counted.succeeded();
            let jar = sign_in(&state, jar, &account).await?;
            Ok((jar, Redirect::to("/account?changed=1")).into_response())
        }
        Err(ServiceError::Invalid(invalid)) => {
            match invalid.field {
                // The current password was right: not a guess.
                "new_password" => counted.succeeded(),
                _ => counted.failed(),
            }
            let (field, label) = match invalid.field {
                "current_password" => ("current_password", "Current password"),
                _ => ("new_password", "New password"),
            };
            let mut page = page(&state, &user, csrf.0).await?;
            page.error = Some(format!("{label}: {}", invalid.message));
            page.error_field = Some(field);
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        // Another change came first: the password given was the one this session read, so
        // no wrong guess, nor a right one for the password as it is now.
        Err(ServiceError::Conflict {
            code: "password_changed",
            message,
        }) => {
            counted.undecided();
            let mut page = page(&state, &user, csrf.0).await?;
            page.error = Some(format!("Current password: {message}"));
            page.error_field = Some("current_password");
            Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(other) => {
            counted.undecided();
            Err(other.into())
        }
    }
}

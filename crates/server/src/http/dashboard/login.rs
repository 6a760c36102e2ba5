//! Signing in and out, and the dashboard's front door.

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
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
        render_with(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                title: "Sign in",
                nav: None,
                csrf_token,
                error: Some("That email and password do not match an account.".into()),
                email: form.email.clone(),
            },
        )
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

/// The client's address as the outermost of `trusted` proxies saw it: the `trusted`-th
/// `X-Forwarded-For` entry from the right (each proxy appends the address it was reached
/// from; entries further left may be written by the client itself), read as an address
/// with or without a port (some load balancers append one). Without trusted proxies, without
/// the header, or when that entry is no address, the connecting address: text there would
/// be a new client on every request, and its log line's field.
pub(super) fn client_address(headers: &HeaderMap, peer: IpAddr, trusted: u8) -> IpAddr {
    if trusted == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    let entry = forwarded
        .iter()
        .rev()
        .nth(usize::from(trusted) - 1)
        .or(forwarded.first());
    entry
        .and_then(|entry| {
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            bare.parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<SocketAddr>().ok().map(|at| at.ip()))
        })
        .map_or(peer, |client| client.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::client_address;
    use axum::http::{HeaderMap, HeaderValue};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn the_client_is_who_the_outermost_trusted_proxy_saw() {
        let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.9"));
        // Not trusted: the connecting address, whatever the header says.
        let client =
            |headers: &HeaderMap, trusted| client_address(headers, proxy, trusted).to_string();
        assert_eq!(client(&headers, 0), "10.0.0.2");
        // One load balancer: the address it appended, not the one the client wrote.
        assert_eq!(client(&headers, 1), "10.0.0.9");
        assert_eq!(client(&headers, 2), "1.2.3.4");
        assert_eq!(client(&headers, 9), "6.6.6.6");
        assert_eq!(client(&HeaderMap::new(), 1), "10.0.0.2");
    }

    /// An entry with a port is its address (each connection was a new client: found by the
    /// accounts probe); one that is no address is the proxy's (it was counted, and logged,
    /// as the text sent: found by the telemetry review).
    #[test]
    fn a_forwarded_entry_is_read_as_an_address() {
        let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let client = |entry: &'static str| {
            let mut headers = HeaderMap::new();
            headers.append("x-forwarded-for", HeaderValue::from_static(entry));
            client_address(&headers, proxy, 1).to_string()
        };
        assert_eq!(client("9.9.9.9:51234"), "9.9.9.9");
        assert_eq!(client("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(client("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(client("::ffff:9.9.9.9"), "9.9.9.9");
        assert_eq!(client("6.6.6.6 sign-in=ok user=admin"), "10.0.0.2");
        assert_eq!(client("not-an-ip"), "10.0.0.2");
    }
}

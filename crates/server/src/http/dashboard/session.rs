//! Dashboard sessions and CSRF protection.
//!
//! A session is a random token in an HttpOnly, SameSite=Lax cookie (Secure and `__Host-`
//! named behind HTTPS); only its hash is stored. Every form carries a CSRF token: an HMAC,
//! under the application key, of the session token, or before sign-in of a random `uj_csrf`
//! cookie. A form from another site cannot know it, and a token minted for one browser fails
//! in another.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uj_domain::accounts::Account;
use uj_domain::keys::NewToken;

use super::pages::PageError;
use crate::services::accounts::{self, SESSION_TTL};
use crate::state::AppState;

pub const SESSION_COOKIE: CookieName = CookieName("uj_session", "__Host-uj_session");
const CSRF_COOKIE: CookieName = CookieName("uj_csrf", "__Host-uj_csrf");
const CSRF_PURPOSE: &str = "csrf";
/// Marks a browser that signed in to an address: its sign-ins are throttled on their own
/// (`login_throttle::Attempt::KnownDevice`), so strangers' failures cannot lock it out.
const DEVICE_COOKIE: CookieName = CookieName("uj_device", "__Host-uj_device");
const DEVICE_PURPOSE: &str = "device";
/// How long a browser stays known after its last sign-in there.
const DEVICE_TTL_DAYS: i64 = 365;

/// A cookie's name over plain http and behind HTTPS. Browsers take a `__Host-` cookie only
/// from this very host (`Secure`, `Path=/`, no `Domain`), so a sibling subdomain cannot plant
/// a session or a CSRF binding of its choosing; plain http (local development) cannot use
/// the prefix.
pub struct CookieName(pub &'static str, pub &'static str);

impl CookieName {
    pub fn on(&self, state: &AppState) -> &'static str {
        match state.https {
            true => self.1,
            false => self.0,
        }
    }
}

/// What this request's CSRF token is bound to (set by [`csrf_binding`]).
#[derive(Clone)]
struct CsrfBinding(String);

fn cookie(state: &AppState, name: &CookieName, value: String) -> Cookie<'static> {
    Cookie::build((name.on(state), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.https)
        .build()
}

/// Signs `account` in on this browser: a new session, its cookie added to `jar`. The
/// session the browser held before (another account's, say) is ended on the server, not
/// just no longer sent, once the new one is made: a sign-in refused (the password changed
/// meanwhile) leaves the browser signed in as it was (found by the accounts review).
pub async fn sign_in(
    state: &AppState,
    jar: CookieJar,
    account: &uj_domain::accounts::Account,
) -> Result<CookieJar, PageError> {
    let store = state.store.as_ref();
    let token = accounts::start_session(store, account).await?;
    if let Some(previous) = jar.get(SESSION_COOKIE.on(state)) {
        accounts::end_session(store, previous.value()).await?;
    }
    Ok(jar
        .add(session_cookie(state, token.expose_secret().to_owned()))
        .add(device_cookie(state, account)))
}

/// The device cookie naming this browser as one that signed in to `account` with its
/// current password: a random nonce and an HMAC under the application key binding it to the
/// account and its password hash (the cookie says neither). A password change ends every
/// such cookie: someone who once knew the password keeps no guesses of their own (found by
/// the session's review: cookies gathered before a change gave five guesses each after it).
fn device_cookie(state: &AppState, account: &Account) -> Cookie<'static> {
    let nonce = NewToken::generate("").token.expose_secret().to_owned();
    let tag = state
        .key
        .sign(DEVICE_PURPOSE, device_message(&nonce, account).as_bytes());
    let mut cookie = cookie(state, &DEVICE_COOKIE, format!("{nonce}.{tag}"));
    cookie.set_max_age(cookie::time::Duration::days(DEVICE_TTL_DAYS));
    cookie
}

fn device_message(nonce: &str, account: &Account) -> String {
    format!(
        "{nonce}\n{}\n{}",
        account.id.as_str(),
        account.password_hash
    )
}

/// This browser's device nonce when its device cookie was made for `account` with its
/// current password: its sign-in is counted on its own.
pub fn known_device(state: &AppState, jar: &CookieJar, account: &Account) -> Option<String> {
    let (nonce, tag) = jar.get(DEVICE_COOKIE.on(state))?.value().split_once('.')?;
    let message = device_message(nonce, account);
    state
        .key
        .verify(DEVICE_PURPOSE, message.as_bytes(), tag)
        .then(|| nonce.to_owned())
}

/// The session cookie for a new session.
fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    let mut cookie = cookie(state, &SESSION_COOKIE, token);
    cookie.set_max_age(cookie::time::Duration::seconds(SESSION_TTL.num_seconds()));
    cookie
}

/// A cookie that removes the session cookie.
pub fn expired_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = cookie(state, &SESSION_COOKIE, String::new());
    cookie.make_removal();
    cookie
}

/// Middleware for dashboard routes: works out the CSRF binding and, for a browser with
/// neither a session nor a `uj_csrf` cookie yet, issues one.
pub async fn csrf_binding(
    State(state): State<AppState>,
    jar: CookieJar,
    mut request: Request,
    next: Next,
) -> Response {
    // An empty cookie (cleared by something else) binds nothing: the next one is used.
    let existing = [SESSION_COOKIE, CSRF_COOKIE]
        .into_iter()
        .filter_map(|name| jar.get(name.on(&state)))
        .map(|c| c.value())
        .find(|v| !v.is_empty())
        .map(str::to_owned);
    let (binding, issued) = match existing {
        Some(binding) => (binding, None),
        None => {
            let value = NewToken::generate("").token.expose_secret().to_owned();
            (value.clone(), Some(cookie(&state, &CSRF_COOKIE, value)))
        }
    };
    request.extensions_mut().insert(CsrfBinding(binding));
    let response = next.run(request).await;
    match issued {
        Some(cookie) => (jar.add(cookie), response).into_response(),
        None => response,
    }
}

/// The CSRF token to embed in this request's forms.
pub struct CsrfToken(pub String);

impl FromRequestParts<AppState> for CsrfToken {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let binding = parts
            .extensions
            .get::<CsrfBinding>()
            .ok_or_else(|| PageError::Internal(anyhow::anyhow!("csrf middleware missing")))?;
        Ok(CsrfToken(
            state.key.sign(CSRF_PURPOSE, binding.0.as_bytes()),
        ))
    }
}

#[derive(Deserialize)]
struct CsrfField {
    csrf_token: Option<String>,
}

/// The body of a form that carries nothing but its CSRF token (a button).
#[derive(Deserialize)]
pub struct EmptyForm {}

/// A form body whose CSRF token checked out.
pub struct VerifiedForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for VerifiedForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let binding = request
            .extensions()
            .get::<CsrfBinding>()
            .cloned()
            .ok_or_else(|| PageError::Internal(anyhow::anyhow!("csrf middleware missing")))?;
        // What a page's form sends; anything else (JSON, multipart) is no form of ours, and
        // was refused as an expired one.
        let urlencoded = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !urlencoded {
            return Err(PageError::NotAForm);
        }
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => PageError::TooLarge,
                _ => PageError::BadRequest("The form could not be read.".into()),
            })?;
        // A NUL (`%00`, or the raw byte) is in no field of ours; PostgreSQL cannot store
        // one in text.
        if body.contains(&0) || body.windows(3).any(|w| w == b"%00") {
            return Err(PageError::BadRequest(
                "The form contains a NUL character (%00), which no field accepts.".into(),
            ));
        }
        // Read lossily, bytes that are not UTF-8 (a script posting Latin-1) would be stored as
        // U+FFFD; a browser sends a page's forms as UTF-8. (Separators are ASCII: the whole
        // body decodes as UTF-8 exactly when each field does.)
        if percent_encoding::percent_decode(&body)
            .decode_utf8()
            .is_err()
        {
            return Err(PageError::BadRequest(
                "The form is not UTF-8 (the encoding the dashboard's pages send).".into(),
            ));
        }
        let field: CsrfField = serde_urlencoded::from_bytes(&body)
            .map_err(|_| PageError::BadRequest("The form could not be read.".into()))?;
        let valid = field
            .csrf_token
            .is_some_and(|token| state.key.verify(CSRF_PURPOSE, binding.0.as_bytes(), &token));
        if !valid {
            return Err(PageError::CsrfFailed);
        }
        serde_urlencoded::from_bytes(&body)
            .map(VerifiedForm)
            .map_err(|error| PageError::BadRequest(format!("The form is incomplete: {error}.")))
    }
}

/// The signed-in account. Without a valid session the request is sent to sign in (or to
/// first-run setup when there is no account yet).
pub struct CurrentUser {
    pub account: Account,
}

/// The account this request's session cookie signs in, if any (pages anyone may open).
pub async fn signed_in(state: &AppState, jar: &CookieJar) -> Result<Option<Account>, PageError> {
    match jar.get(SESSION_COOKIE.on(state)) {
        Some(token) => Ok(accounts::session_account(state.store.as_ref(), token.value()).await?),
        None => Ok(None),
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        match signed_in(state, &jar).await {
            Ok(Some(account)) => return Ok(CurrentUser { account }),
            Ok(None) => {}
            Err(error) => return Err(error.into_response()),
        }
        match state.store.is_set_up().await {
            Ok(false) => Err(Redirect::to("/setup").into_response()),
            Ok(true) => Err(Redirect::to("/login").into_response()),
            Err(error) => Err(PageError::from(error).into_response()),
        }
    }
}

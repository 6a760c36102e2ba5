//! Browser routes that open an interview: the signed, expiring `/launch/{code}` an app opens
//! in a webview, and `/interviews/{code}` and `/i/{code}` (a respondent code of an accepted
//! invite, or a study's public code). Anything invalid gets a friendly page, never a trace.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use serde::Deserialize;

use uj_storage::StoreError;

use super::dashboard::respondent_page;
use crate::services::{invites, ServiceError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/launch/{code}", get(launch))
        .route("/interviews/{code}", get(open))
        .route("/i/{code}", get(open))
        // As pasted with a slash after them (`POST /sdk/v1/links/resolve` reads them so).
        .route("/interviews/{code}/", get(open))
        .route("/i/{code}/", get(open))
}

/// Whether `path` is one of the links respondents follow (their pages lead back to the app,
/// not to the dashboard).
pub fn is_link_path(path: &str) -> bool {
    ["/i/", "/interviews/", "/launch/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

pub fn not_found() -> Response {
    respondent_page(
        StatusCode::NOT_FOUND,
        "Link not found",
        "This interview link is not valid. Ask for a new one in the app.",
    )
}

fn expired() -> Response {
    respondent_page(
        StatusCode::FORBIDDEN,
        "Link expired",
        "This interview link has expired or is not valid. Go back to the app and start the interview again.",
    )
}

/// The link's `{code}`; one that does not decode is no code we issued: not found.
struct LinkCode(String);

impl<S: Send + Sync> FromRequestParts<S> for LinkCode {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(code)) => Ok(Self(code)),
            Err(_) => Err(not_found()),
        }
    }
}

async fn open(State(state): State<AppState>, LinkCode(code): LinkCode) -> Response {
    match invites::destination(&state, &code).await {
        Ok(Some(url)) => Redirect::to(&location(&url)).into_response(),
        Ok(None) => not_found(),
        Err(ServiceError::NotFound(_)) => not_found(),
        Err(ServiceError::Store(StoreError::Unavailable(error))) => {
            tracing::warn!(error = %error, "an interview link could not be looked up");
            respondent_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not available right now",
                "This interview link cannot be opened right now. Try again in a moment.",
            )
        }
        Err(error) => {
            tracing::error!(
                error = crate::telemetry::causes(&anyhow::Error::from(error)),
                "an interview link failed"
            );
            respondent_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "This interview link cannot be opened right now. Try again later.",
            )
        }
    }
}

/// What no URI holds (RFC 3986 §2, appendix A) besides bytes beyond ASCII: controls, space
/// and ``"<>\^`{|}``.
const NOT_IN_A_URI: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `url` as a `Location` may carry it: a URI (RFC 9110 §10.2.2), so what a study's URL may
/// hold beyond one (`https://r.example.com/ü`, quotes, angle brackets) is percent-encoded,
/// as UTF-8, and so is a `%` that starts no escape (`100%`); everything else, existing
/// escapes, reserved characters and the fragment included, is left as it is.
fn location(url: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(url, NOT_IN_A_URI).to_string();
    let bytes = encoded.as_bytes();
    let mut location = String::with_capacity(encoded.len());
    for (at, c) in encoded.char_indices() {
        let escape = bytes.get(at + 1..at + 3);
        match c == '%' && !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
            true => location.push_str("%25"),
            false => location.push(c),
        }
    }
    location
}

#[derive(Deserialize)]
struct Signature {
    exp: Option<i64>,
    sig: Option<String>,
}

async fn launch(
    State(state): State<AppState>,
    LinkCode(code): LinkCode,
    signature: Result<Query<Signature>, QueryRejection>,
) -> Response {
    // A signature that does not parse (a doubled or non-numeric parameter) was tampered with.
    let Ok(Query(signature)) = signature else {
        return expired();
    };
    let (Some(expires), Some(sig)) = (signature.exp, signature.sig) else {
        return not_found();
    };
    if !invites::launch_is_valid(&state, &code, expires, &sig, Utc::now()) {
        return expired();
    }
    open(State(state), LinkCode(code)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_location_is_ascii_with_the_url_s_own_escapes_kept() {
        assert_eq!(
            super::location("https://r.example.com/ü?x=é&y=%20#ß"),
            "https://r.example.com/%C3%BC?x=%C3%A9&y=%20#%C3%9F"
        );
        let ascii = "https://r.example.com/i/c?lang=en&invite=C0DE&reference_id=u1%26x#/step?x=1";
        assert_eq!(super::location(ascii), ascii);
    }

    /// Characters no URI holds are escaped, so a study's URL cannot write markup or quotes
    /// into `Location` (it was copied there raw: `http://x"><script>…`); the URL's reserved
    /// characters, its escapes and its fragment are kept.
    #[test]
    fn a_location_escapes_what_no_uri_holds() {
        assert_eq!(
            super::location(r#"http://x"><script>alert(1)</script>"#),
            "http://x%22%3E%3Cscript%3Ealert(1)%3C/script%3E"
        );
        assert_eq!(
            super::location("https://r.example.com/a b\\c^d`e{f|g}h\u{7f}"),
            "https://r.example.com/a%20b%5Cc%5Ed%60e%7Bf%7Cg%7Dh%7F"
        );
        let reserved = "https://u@[::1]:8443/p;q=1,2/*!$'()+?a=%2F&b=~._-#f:/?@[]";
        assert_eq!(super::location(reserved), reserved);
        assert_eq!(
            super::location("https://r.example.com/100%?a=%2f%zz%"),
            "https://r.example.com/100%25?a=%2f%25zz%25"
        );
    }
}

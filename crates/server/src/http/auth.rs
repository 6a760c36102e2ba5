//! Who is calling the JSON APIs. The REST API takes only a live secret key
//! (`uj_live_…`), the SDK API only a public key (`uj_pk_…`), each as
//! `Authorization: Bearer`. The dashboard has its own session extractor.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::SecretString;
use uj_domain::keys::{classify, is_public_key_shaped, KeyKind};
use uj_domain::projects::{Project, SecretKey};

use super::extract::client_address;
use super::ApiError;
use crate::services::api_keys;
use crate::services::snapshot::PublicKey;
use crate::state::AppState;

/// The token of an `Authorization` value of the `Bearer` scheme, named in any case (RFC 9110
/// §11.1); `None` for another scheme or an empty token.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let mut headers = parts.headers.get_all(AUTHORIZATION).iter();
    let header = headers.next().ok_or_else(|| {
        ApiError::unauthorized(
            "missing_api_key",
            "Send your key as `Authorization: Bearer <key>`.",
        )
    })?;
    // One credential (RFC 9110 §11.6.2): with two, which one a proxy in front judged is
    // not known.
    if headers.next().is_some() {
        return Err(ApiError::unauthorized(
            "invalid_authorization",
            "Send one Authorization header, reading `Bearer <key>`.",
        ));
    }
    header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
        ApiError::unauthorized(
            "invalid_authorization",
            "The Authorization header must read `Bearer <key>`.",
        )
    })
}

fn invalid_key() -> ApiError {
    ApiError::unauthorized(
        "invalid_api_key",
        "This key is unknown or has been revoked.",
    )
}

/// A REST request made with a live secret key; carries the key's project.
pub struct SecretKeyAuth {
    pub project: Project,
    /// The key the request was made with.
    pub key: SecretKey,
}

impl FromRequestParts<AppState> for SecretKeyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        match classify(token) {
            KeyKind::Secret => {}
            KeyKind::Public => return Err(ApiError::unauthorized(
                "wrong_key_type",
                "This is a public SDK key (uj_pk_…); the REST API needs a secret key (uj_live_…).",
            )),
            KeyKind::Unknown => return Err(invalid_key()),
        }
        let token = SecretString::from(token.to_owned());
        let key = api_keys::authenticate_secret_key(state.store.as_ref(), &token)
            .await?
            .ok_or_else(invalid_key)?;
        // Per project, not per key: a project may make any number of keys. Before the
        // project is read: a request past the budget costs no more than its key's check.
        state
            .api_limiter
            .check(key.project_id.as_str())
            .map_err(|wait| ApiError::rate_limited(wait, "this project (whichever of its keys)"))?;
        let project = state
            .store
            .project(&key.project_id)
            .await?
            .ok_or_else(invalid_key)?;
        Ok(Self { project, key })
    }
}

/// An SDK request made with a project's public key.
pub struct PublicKeyAuth {
    pub project: Project,
}

impl FromRequestParts<AppState> for PublicKeyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        match classify(token) {
            KeyKind::Public if is_public_key_shaped(token) => {}
            KeyKind::Public => return Err(invalid_key()),
            KeyKind::Secret => {
                return Err(ApiError::unauthorized(
                    "wrong_key_type",
                    "This is a secret key (uj_live_…); apps must use the public SDK key (uj_pk_…). Never ship a secret key in an app.",
                ))
            }
            KeyKind::Unknown => return Err(invalid_key()),
        }
        // The accept loop gives every connection its address.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| peer.0.ip());
        let client = client_address(&parts.headers, peer, state.trusted_proxies);
        let found = state
            .snapshots
            .project_by_public_key(state.store.as_ref(), token, &state.unknown_keys, client)
            .await?;
        let result = match &found {
            PublicKey::Project {
                looked_up: false, ..
            } => None,
            PublicKey::Project { .. } => Some("found"),
            PublicKey::Unknown { looked_up: false } => None,
            PublicKey::Unknown { .. } => Some("unknown"),
            PublicKey::Throttled(_) => Some("throttled"),
        };
        if let Some(result) = result {
            state.metrics.key_lookup(result);
        }
        match found {
            PublicKey::Project { project, .. } => Ok(Self { project }),
            PublicKey::Unknown { .. } => Err(invalid_key()),
            PublicKey::Throttled(wait) => {
                tracing::debug!(
                    client = %client,
                    "SDK key refused without a lookup: too many unknown keys from this client"
                );
                Err(ApiError::rate_limited(
                    wait,
                    "this client with keys that are no project's",
                ))
            }
        }
    }
}

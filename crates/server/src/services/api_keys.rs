//! The project's public SDK key and its named secret REST keys.

use chrono::{Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use uj_domain::ids::{ProjectId, SecretKeyId};
use uj_domain::keys::{generate_public_key, token_hash, NewSecretKey};
use uj_domain::projects::{KeyName, Project, SecretKey};
use uj_storage::Store;

use super::idempotency::{self, Answer, KeyedRequest};
use super::ServiceError;
use crate::state::AppState;

/// `last_used_at` is refreshed at most this often, so reads stay reads.
const TOUCH_INTERVAL: Duration = Duration::seconds(60);

/// A new secret key and its value, which exists nowhere else once this is dropped.
pub struct CreatedSecretKey {
    pub key: SecretKey,
    pub secret: SecretString,
}

/// The most unrevoked secret keys a project's people may have (the dashboard, the REST API).
pub const MAX_ACTIVE_SECRET_KEYS: usize = 100;

/// Who made a key, as a key lists it ([`SecretKey::created_by`]).
pub enum Maker<'a> {
    /// A person, in the dashboard.
    Account(&'a str),
    /// A secret key, over REST.
    Key(&'a SecretKey),
}

impl Maker<'_> {
    fn said(&self) -> String {
        match self {
            Maker::Account(email) => (*email).to_owned(),
            Maker::Key(key) => format!("API key “{}” ({}…)", key.name, key.prefix),
        }
    }
}

/// A new key made through the dashboard or the REST API by `maker`, unless the project has
/// [`MAX_ACTIVE_SECRET_KEYS`] unrevoked ones (counted in the creating transaction).
pub async fn create_secret_key(
    store: &dyn Store,
    project: &ProjectId,
    name: &str,
    maker: Maker<'_>,
) -> Result<CreatedSecretKey, ServiceError> {
    let said = maker.said();
    match mint(store, project, name, &said, MAX_ACTIVE_SECRET_KEYS, None).await? {
        Some(created) => Ok(created),
        None => Err(key_limit_reached(store, project).await?),
    }
}

/// What the dashboard's form to create a secret key did.
pub enum FormKey {
    /// Made a key, whose secret is shown this once.
    Made(CreatedSecretKey),
    /// Found the key the same form made when it was sent first (a reload of the page that
    /// showed its secret, a double click): its secret is kept nowhere, so it cannot be shown
    /// again.
    MadeAlready(SecretKey),
}

/// [`create_secret_key`] from the dashboard's form, sent with `request`: a form sent again
/// makes no second key. Its record keeps no secret, only the key's id.
pub async fn create_secret_key_once(
    store: &dyn Store,
    project: &ProjectId,
    name: &str,
    maker: Maker<'_>,
    request: Option<&KeyedRequest>,
) -> Result<FormKey, ServiceError> {
    if let Some(made) = made_already(store, project, request).await? {
        return Ok(FormKey::MadeAlready(made));
    }
    let said = maker.said();
    match mint(store, project, name, &said, MAX_ACTIVE_SECRET_KEYS, request).await? {
        Some(created) => Ok(FormKey::Made(created)),
        // The same form sent first landed meanwhile, or the project has the most keys.
        None => match made_already(store, project, request).await? {
            Some(made) => Ok(FormKey::MadeAlready(made)),
            None => Err(key_limit_reached(store, project).await?),
        },
    }
}

/// The key the form sent with `request` made when it was sent first.
async fn made_already(
    store: &dyn Store,
    project: &ProjectId,
    request: Option<&KeyedRequest>,
) -> Result<Option<SecretKey>, ServiceError> {
    match idempotency::made_by(store, project, request).await? {
        Some(id) => secret_key(store, project, &id).await.map(Some),
        None => Ok(None),
    }
}

/// The refusal of a key the project has no room for.
async fn key_limit_reached(
    store: &dyn Store,
    project: &ProjectId,
) -> Result<ServiceError, ServiceError> {
    // Counted as they are: an operator's keys may take a project past the cap, and the
    // message said 100 with 103 to revoke from (found by the API keys review).
    let active = active_secret_keys(store, project)
        .await?
        .max(MAX_ACTIVE_SECRET_KEYS);
    let revoke = active + 1 - MAX_ACTIVE_SECRET_KEYS;
    let ones = if revoke == 1 {
        "one".to_owned()
    } else {
        revoke.to_string()
    };
    Ok(ServiceError::Refused {
        code: "api_key_limit_reached",
        message: format!(
            "This project has {active} unrevoked secret keys, and may have \
             {MAX_ACTIVE_SECRET_KEYS}: revoke {ones} no longer used, then create one again."
        ),
    })
}

/// A new key made by the server's operator (`admin bootstrap`): not held to the cap.
pub async fn create_operator_key(
    store: &dyn Store,
    project: &ProjectId,
    name: &str,
) -> Result<CreatedSecretKey, ServiceError> {
    mint(store, project, name, "admin bootstrap", usize::MAX, None)
        .await?
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("no cap refuses an operator's key")))
}

/// How many of the project's secret keys are not revoked.
pub async fn active_secret_keys(
    store: &dyn Store,
    project: &ProjectId,
) -> Result<usize, ServiceError> {
    let mut page = uj_storage::PageRequest {
        limit: 100,
        starting_after: None,
    };
    let mut active = 0;
    loop {
        let keys = store.secret_keys(project, &page).await?;
        active += keys.items.iter().filter(|k| k.revoked_at.is_none()).count();
        if !keys.has_more {
            return Ok(active);
        }
        page.starting_after = keys.items.last().map(|k| k.id.as_str().to_owned());
    }
}

async fn mint(
    store: &dyn Store,
    project: &ProjectId,
    name: &str,
    created_by: &str,
    max_active: usize,
    request: Option<&KeyedRequest>,
) -> Result<Option<CreatedSecretKey>, ServiceError> {
    let name = KeyName::parse(name)?;
    let minted = NewSecretKey::generate();
    // The form's answer, the page with the secret, is not kept: the record names the key
    // it makes.
    let kept = Answer {
        status: 201,
        body: Vec::new(),
        replayed: false,
    };
    let record = request.map(|r| {
        let id = SecretKeyId::generate();
        r.record(project, id.as_str(), &kept, uj_domain::now())
    });
    let key = store
        .create_secret_key(
            project,
            name.as_str(),
            &minted.shown_prefix,
            &minted.hash,
            created_by,
            max_active,
            record.as_ref(),
        )
        .await?;
    Ok(key.map(|key| CreatedSecretKey {
        key,
        secret: minted.token,
    }))
}

pub async fn secret_key(
    store: &dyn Store,
    project: &ProjectId,
    id: &str,
) -> Result<SecretKey, ServiceError> {
    store
        .secret_key(project, &SecretKeyId::from_string(id))
        .await?
        .ok_or(ServiceError::NotFound("api_key"))
}

pub async fn revoke_secret_key(
    store: &dyn Store,
    project: &ProjectId,
    id: &str,
) -> Result<SecretKey, ServiceError> {
    store
        .revoke_secret_key(project, &SecretKeyId::from_string(id))
        .await?
        .ok_or(ServiceError::NotFound("api_key"))
}

/// Replaces the public SDK key `project` was read with; apps holding the old one stop
/// working at once. Refused ([`ROTATED_MEANWHILE`]) when another rotation replaced that key
/// first: of rotations at once, one makes the new key, and none answers a key already
/// replaced (each answered its own and only the last written worked).
pub async fn rotate_public_key(
    state: &AppState,
    project: &Project,
) -> Result<Project, ServiceError> {
    let rotated = state
        .store
        .set_public_key(&project.id, &project.public_key, &generate_public_key())
        .await?
        .ok_or_else(|| ServiceError::Conflict {
            code: ROTATED_MEANWHILE,
            message: "The public key was rotated by another request at the same moment, so this \
                      one rotated nothing: read the key again (GET /api/v1/public-key); that \
                      one works."
                .into(),
        })?;
    state.snapshots.forget_key(&project.id);
    Ok(rotated)
}

/// The code of a rotation that lost to another ([`rotate_public_key`]).
pub const ROTATED_MEANWHILE: &str = "public_key_rotated_meanwhile";

/// The live secret key a bearer token stands for, if any.
pub async fn authenticate_secret_key(
    store: &dyn Store,
    token: &SecretString,
) -> Result<Option<SecretKey>, ServiceError> {
    let Some(key) = store
        .active_secret_key(&token_hash(token.expose_secret()))
        .await?
    else {
        return Ok(None);
    };
    let stale = key
        .last_used_at
        .is_none_or(|used| Utc::now() - used > TOUCH_INTERVAL);
    if stale {
        if let Err(error) = store.touch_secret_key(&key.id).await {
            tracing::warn!(error = %error, key_id = %key.id, "could not record key use");
        }
    }
    Ok(Some(key))
}

//! `userjourneys admin bootstrap`: headless setup for automation and tests.

use secrecy::ExposeSecret;
use serde::Serialize;
use uj_domain::accounts::Email;
use uj_domain::ids::ProjectId;
use uj_domain::password::Password;
use uj_domain::projects::ProjectName;
use uj_domain::projects::SecretKey;
use uj_storage::{NewAccount, PageRequest, Store};

use super::{accounts, api_keys, blocking, ServiceError};

#[derive(Debug, Serialize)]
pub struct BootstrapOutput {
    pub project_id: String,
    pub public_key: String,
    pub secret_key: String,
    /// The prefix of the bootstrap key revoked to make room for this one, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_key: Option<String>,
}

/// The name of the keys this command makes.
const KEY_NAME: &str = "bootstrap";

/// Ensures the account and the project exist (creating them, and completing first-run
/// setup, when absent) and mints a new secret key named "bootstrap". A project that has as
/// many keys as it may have gets room by revoking the bootstrap key used least recently
/// (one never used first): deployments run this on every start, and would otherwise stop
/// starting after a hundred.
///
/// Whoever can run this can read the database anyway, so an existing account's password
/// is not checked; it is only used when the account is created.
pub async fn run(
    store: &dyn Store,
    email: &str,
    password: &str,
    project_name: &str,
) -> Result<BootstrapOutput, ServiceError> {
    let email = Email::parse(email)?;
    let project_name = ProjectName::parse(project_name)?;
    // Runs at once (replicas provisioning together) take turns: each finds what the one
    // before it made, instead of all making the account and the project.
    let _turn = store.exclusive().await?;
    let account = match store.account_by_email(email.as_str()).await? {
        Some(account) => account,
        None if !store.is_set_up().await? => {
            let (account, _) =
                accounts::set_up(store, email.as_str(), password, project_name.as_str()).await?;
            account
        }
        None => {
            let password = Password::parse(password)?;
            let password_hash = blocking(move || password.hash()).await?;
            store
                .create_account(NewAccount {
                    email: email.as_str().to_owned(),
                    password_hash,
                })
                .await?
        }
    };
    let existing = store
        .memberships(&account.id)
        .await?
        .into_iter()
        .map(|m| m.project)
        .find(|p| p.name == project_name.as_str());
    let project = match existing {
        Some(project) => project,
        None => accounts::create_project(store, &account.id, project_name.as_str()).await?,
    };
    let (created, revoked_key) =
        match api_keys::create_secret_key(store, &project.id, KEY_NAME).await {
            Err(ServiceError::Refused { code, message }) => {
                let Some(stale) = least_used_bootstrap_key(store, &project.id).await? else {
                    return Err(ServiceError::Refused { code, message });
                };
                api_keys::revoke_secret_key(store, &project.id, stale.id.as_str()).await?;
                let created = api_keys::create_secret_key(store, &project.id, KEY_NAME).await?;
                (created, Some(stale.prefix))
            }
            created => (created?, None),
        };
    Ok(BootstrapOutput {
        project_id: project.id.into_string(),
        public_key: project.public_key,
        secret_key: created.secret.expose_secret().to_owned(),
        revoked_key,
    })
}

/// The project's unrevoked bootstrap key used least recently, one never used first, then
/// the oldest.
async fn least_used_bootstrap_key(
    store: &dyn Store,
    project: &ProjectId,
) -> Result<Option<SecretKey>, ServiceError> {
    let mut least_used: Option<SecretKey> = None;
    let mut page = PageRequest {
        limit: 100,
        starting_after: None,
    };
    loop {
        let keys = store.secret_keys(project, &page).await?;
        page.starting_after = keys.items.last().map(|key| key.id.as_str().to_owned());
        for key in keys.items {
            if key.name != KEY_NAME || key.revoked_at.is_some() {
                continue;
            }
            let order = |key: &SecretKey| (key.last_used_at, key.created_at);
            if least_used
                .as_ref()
                .is_none_or(|best| order(&key) < order(best))
            {
                least_used = Some(key);
            }
        }
        if !keys.has_more {
            return Ok(least_used);
        }
    }
}

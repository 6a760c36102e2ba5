//! `userjourneys admin bootstrap`: headless setup for automation and tests.

use secrecy::ExposeSecret;
use serde::Serialize;
use uj_domain::accounts::Email;
use uj_domain::password::Password;
use uj_domain::projects::ProjectName;
use uj_storage::{NewAccount, Store};

use super::{accounts, api_keys, blocking, ServiceError};

#[derive(Debug, Serialize)]
pub struct BootstrapOutput {
    pub project_id: String,
    pub public_key: String,
    pub secret_key: String,
}

/// Ensures the account and the project exist (creating them, and completing first-run
/// setup, when absent) and mints a new secret key named "bootstrap".
///
/// Whoever can run this can read the database anyway, so an existing account's password
/// is not checked; it is only used when the account is created.
pub async fn run(
    store: &dyn Store,
    email: &str,
    password: &str,
    project_name: &str,
) -> Result<BootstrapOutput, ServiceError> {
    let typed = email;
    let project_name = ProjectName::parse(project_name)?;
    // Runs at once (replicas provisioning together) take turns: each finds what the one
    // before it made, instead of all making the account and the project.
    let _turn = store.exclusive().await?;
    // Found as typed before the address is judged (one stored before addresses were put in
    // their compatibility form may hold a spelling that form refuses).
    let account = match accounts::account_for(store, typed).await? {
        Some(account) => account,
        None if !store.is_set_up().await? => {
            let email = Email::parse(typed)?;
            let (account, _) =
                accounts::set_up(store, email.as_str(), password, project_name.as_str()).await?;
            account
        }
        None => {
            let email = Email::parse(typed)?;
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
    // An operator's command (whoever runs it can read the database): not held to the cap a
    // tenant's keys are, so a deployment that runs it on every start keeps starting. Each run
    // adds a key; revoke the old ones.
    let created = api_keys::create_operator_key(store, &project.id, "bootstrap").await?;
    let active = api_keys::active_secret_keys(store, &project.id).await?;
    if active > api_keys::MAX_ACTIVE_SECRET_KEYS {
        tracing::warn!(
            active,
            "the project has more unrevoked secret keys than its people may make ({}): revoke \
             those of past deployments (the API keys page, or DELETE /api/v1/api-keys/{{id}})",
            api_keys::MAX_ACTIVE_SECRET_KEYS
        );
    }
    Ok(BootstrapOutput {
        project_id: project.id.into_string(),
        public_key: project.public_key,
        secret_key: created.secret.expose_secret().to_owned(),
    })
}

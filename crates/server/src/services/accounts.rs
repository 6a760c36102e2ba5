//! First-run setup, sign-in, sessions, projects and invitations.

use chrono::{Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use uj_domain::accounts::{Account, Email, Role};
use uj_domain::ids::{AccountId, ProjectId};
use uj_domain::keys::{generate_public_key, token_hash, NewToken};
use uj_domain::password::{self, Password};
use uj_domain::projects::{Project, ProjectName};
use uj_domain::ValidationError;
use uj_storage::{NewAccount, NewInvitation, Store, StoreError};

use super::idempotency::{self, Answer, KeyedRequest};
use super::{blocking, ServiceError};

/// How long a dashboard session lasts.
pub const SESSION_TTL: Duration = Duration::days(14);
/// How long an invitation link stays valid.
pub const INVITATION_TTL: Duration = Duration::days(7);

/// Creates the owner account and the first project. Fails with `already_set_up` once done.
pub async fn set_up(
    store: &dyn Store,
    email: &str,
    password: &str,
    project_name: &str,
) -> Result<(Account, Project), ServiceError> {
    let email = Email::parse(email)?;
    let project_name = ProjectName::parse(project_name)?;
    let password = Password::parse(password)?;
    let already_set_up = || ServiceError::Conflict {
        code: "already_set_up",
        message: "This server is already set up; sign in instead.".into(),
    };
    // Looked at before hashing: the form needs no account to send.
    if store.is_set_up().await? {
        return Err(already_set_up());
    }
    let password_hash = blocking(move || password.hash()).await?;
    let owner = NewAccount {
        email: email.as_str().to_owned(),
        password_hash,
    };
    store
        .set_up(owner, project_name.as_str(), &generate_public_key())
        .await
        .map_err(|error| match error {
            StoreError::Conflict(_) => already_set_up(),
            other => other.into(),
        })
}

/// The accounts an address typed as `email` may sign in to: one stored before addresses
/// were put in their compatibility form (NFKC) under this very spelling, then the one of
/// that form (`ﬁona@` beside `fiona@`, say, or an address that form refuses: found by the
/// session's review and the upgrade probe).
pub async fn accounts_for(store: &dyn Store, email: &str) -> Result<Vec<Account>, ServiceError> {
    let mut found = Vec::new();
    if let Some(before) = Email::stored_before_nfkc(email) {
        found.extend(store.account_by_email(&before).await?);
    }
    if let Ok(email) = Email::lookup(email) {
        found.extend(store.account_by_email(email.as_str()).await?);
    }
    Ok(found)
}

/// The account an address typed as `email` names, if any ([`accounts_for`]'s first).
pub async fn account_for(store: &dyn Store, email: &str) -> Result<Option<Account>, ServiceError> {
    Ok(accounts_for(store, email).await?.into_iter().next())
}

/// The one of `accounts` (those the address typed names, [`accounts_for`]) this password
/// is, or `None`. Takes the same time whether or not the address names an account (one hash;
/// a second only for an address stored in two spellings, docs/security.md).
pub async fn authenticate(
    accounts: Vec<Account>,
    password: &str,
) -> Result<Option<Account>, ServiceError> {
    let hashes: Vec<String> = accounts.iter().map(|a| a.password_hash.clone()).collect();
    let candidate = SecretString::from(password.to_owned());
    let valid = blocking(move || {
        if hashes.is_empty() {
            password::verify(None, candidate.expose_secret());
            return None;
        }
        hashes
            .iter()
            .position(|hash| password::verify(Some(hash), candidate.expose_secret()))
    })
    .await?;
    Ok(valid.map(|at| accounts[at].clone()))
}

/// `account` with its password hash made anew with today's parameters when it was made
/// with others ([`password::is_current`]), given the password just checked against it. Best
/// effort: when the hash cannot be made or stored, or another change came first, `account`
/// is answered as it was (its sign-in goes on as before). Its sessions stay; the device
/// cookies of its other browsers end, as bound to the hash (docs/security.md).
pub async fn upgrade_password_hash(store: &dyn Store, account: Account, password: &str) -> Account {
    if password::is_current(&account.password_hash) {
        return account;
    }
    let password = Password::verified(password);
    let new = match blocking(move || password.hash()).await {
        Ok(new) => new,
        Err(_) => return account,
    };
    match store
        .upgrade_password_hash(&account.id, &account.password_hash, &new)
        .await
    {
        Ok(true) => Account {
            password_hash: new,
            ..account
        },
        Ok(false) => account,
        Err(error) => {
            tracing::warn!(error = %error, "a password hash was not made anew");
            account
        }
    }
}

/// Changes `account`'s password, given its current one: `current_password` is named when
/// it is wrong, `new_password` when it is not a valid password, and `password_changed`
/// (a conflict) when another change came first. Every session of the account ends (a stolen
/// one included); returns the account as it is now, for the caller to sign this browser in
/// again.
pub async fn change_password(
    store: &dyn Store,
    account: &Account,
    current: &str,
    new: &str,
) -> Result<Account, ServiceError> {
    if !password_is(&account.password_hash, current).await? {
        return Err(
            ValidationError::new("current_password", "is not your current password").into(),
        );
    }
    let new = Password::parse(new)
        .map_err(|invalid| ValidationError::new("new_password", invalid.message))?;
    let hash = blocking(move || new.hash()).await?;
    if store
        .change_password(&account.id, &account.password_hash, &hash)
        .await?
    {
        return Ok(Account {
            password_hash: hash,
            ..account.clone()
        });
    }
    // A sign-in elsewhere may have hashed the same password anew meanwhile (today's
    // parameters, [`upgrade_password_hash`]): the password is the same, so it is checked
    // against the hash now stored and the change made on that, once (it was refused as
    // changed, and counted as a wrong guess: found by the accounts review).
    let changed_meanwhile = || ServiceError::Conflict {
        code: "password_changed",
        message: "was changed meanwhile (in another browser); sign in with the new one".into(),
    };
    let Some(now) = store
        .account_by_email(&account.email)
        .await?
        .filter(|now| now.id == account.id)
    else {
        return Err(changed_meanwhile());
    };
    if !password_is(&now.password_hash, current).await?
        || !store
            .change_password(&now.id, &now.password_hash, &hash)
            .await?
    {
        return Err(changed_meanwhile());
    }
    Ok(Account {
        password_hash: hash,
        ..now
    })
}

/// Whether `password` is the one `stored` is a hash of (one hash's time).
async fn password_is(stored: &str, password: &str) -> Result<bool, ServiceError> {
    let stored = stored.to_owned();
    let candidate = SecretString::from(password.to_owned());
    blocking(move || password::verify(Some(&stored), candidate.expose_secret())).await
}

/// Starts a session for `account` as it was read (its password just checked); returns the
/// token for the cookie (only its hash is stored). Refused when the password was changed
/// meanwhile: a sign-in with the old one never outlives the change.
pub async fn start_session(
    store: &dyn Store,
    account: &Account,
) -> Result<SecretString, ServiceError> {
    let session = NewToken::generate("");
    let expires_at = Utc::now() + SESSION_TTL;
    if !store
        .create_session(
            &session.hash,
            &account.id,
            expires_at,
            &account.password_hash,
        )
        .await?
    {
        return Err(ServiceError::Conflict {
            code: "password_changed",
            message: "The password was changed meanwhile. Sign in with the new one.".into(),
        });
    }
    Ok(session.token)
}

pub async fn session_account(
    store: &dyn Store,
    token: &str,
) -> Result<Option<Account>, ServiceError> {
    Ok(store
        .session_account(&token_hash(token), Utc::now())
        .await?)
}

pub async fn end_session(store: &dyn Store, token: &str) -> Result<(), ServiceError> {
    Ok(store.delete_session(&token_hash(token)).await?)
}

/// The most projects an account may own.
pub const MAX_OWNED_PROJECTS: usize = 100;

/// The most invitations a project may have open (the members page lists them all).
pub const MAX_OPEN_INVITATIONS: usize = 100;

pub async fn create_project(
    store: &dyn Store,
    owner: &AccountId,
    name: &str,
) -> Result<Project, ServiceError> {
    let name = ProjectName::parse(name)?;
    store
        .create_project(
            owner,
            name.as_str(),
            &generate_public_key(),
            MAX_OWNED_PROJECTS,
            None,
        )
        .await?
        .ok_or_else(project_limit_reached)
}

/// [`create_project`] from the dashboard's New project form, sent with `request`: `answer`
/// (the new project's page) for the project made, or the answer of the same form sent first
/// (a double click, a reload), which made one. Its record is kept in the project it made,
/// found among `owner`'s projects; `owner`'s creates are one at a time, so the same form
/// sent twice at once makes one project.
pub async fn create_project_answered(
    store: &dyn Store,
    owner: &AccountId,
    name: &str,
    request: Option<&KeyedRequest>,
    answer: impl FnOnce(&ProjectId) -> Answer,
) -> Result<Answer, ServiceError> {
    let Some(request) = request else {
        let project = create_project(store, owner, name).await?;
        return Ok(answer(&project.id));
    };
    if let Some(replayed) = idempotency::replay_of_account(store, owner, Some(request)).await? {
        return Ok(replayed);
    }
    let name = ProjectName::parse(name)?;
    // The record names the project to make, whose page the answer is.
    let id = ProjectId::generate();
    let answer = answer(&id);
    let record = request.record(&id, id.as_str(), &answer, uj_domain::now());
    let created = store
        .create_project(
            owner,
            name.as_str(),
            &generate_public_key(),
            MAX_OWNED_PROJECTS,
            Some(&record),
        )
        .await?;
    match created {
        Some(_) => Ok(answer),
        // The same form sent first landed meanwhile, or the account owns the most it may.
        None => match idempotency::replay_of_account(store, owner, Some(request)).await? {
            Some(replayed) => Ok(replayed),
            None => Err(project_limit_reached()),
        },
    }
}

/// Each project has bounds of its own (rules, studies, app event names); without this one an
/// account could multiply them.
fn project_limit_reached() -> ServiceError {
    ServiceError::Refused {
        code: "project_limit_reached",
        message: format!(
            "You own {MAX_OWNED_PROJECTS} projects, the most an account may own. Use one of \
             them, or ask the server's operator for a server of your own."
        ),
    }
}

/// What inviting an email address did.
pub enum InviteOutcome {
    /// The address already was a member.
    AlreadyMember { email: String },
    /// This link (shown once, for the owner to send) lets them join: a new person chooses a
    /// password; one who has an account (`has_account`) signs in and accepts. An account is
    /// never added without its own consent: anyone may create an account for any address
    /// through an invitation of their own project, so having one proves nothing.
    Invited {
        email: String,
        link: SecretString,
        has_account: bool,
    },
}

/// Invites `email` to `project`. Only the project's owner may invite.
pub async fn invite(
    store: &dyn Store,
    public_url: &str,
    project: &ProjectId,
    inviter: &AccountId,
    email: &str,
) -> Result<InviteOutcome, ServiceError> {
    if store.role(inviter, project).await? != Some(Role::Owner) {
        return Err(ServiceError::Conflict {
            code: "owner_only",
            message: "Only the project's owner can invite people.".into(),
        });
    }
    // An account is found as typed before the address is judged: one stored before addresses
    // were put in their compatibility form may hold a spelling that form refuses (found by
    // the second review).
    let existing = account_for(store, email).await?;
    if let Some(account) = &existing {
        if store.role(&account.id, project).await?.is_some() {
            return Ok(InviteOutcome::AlreadyMember {
                email: account.email.clone(),
            });
        }
    }
    // To an account's address as it is stored (one made before addresses were put in their
    // compatibility form keeps its spelling then), so the link finds that account.
    let address = match &existing {
        Some(account) => account.email.clone(),
        None => Email::parse(email)?.as_str().to_owned(),
    };
    let token = NewToken::generate("");
    let created = store
        .create_invitation(
            NewInvitation {
                project_id: project.clone(),
                email: address.clone(),
                token_hash: token.hash,
                invited_by: inviter.clone(),
                expires_at: Utc::now() + INVITATION_TTL,
            },
            MAX_OPEN_INVITATIONS,
        )
        .await?;
    // A new invitation to an address invited before replaces that one, so is never refused.
    if created.is_none() {
        return Err(ServiceError::Refused {
            code: "invitation_limit_reached",
            message: format!(
                "This project has {MAX_OPEN_INVITATIONS} open invitations, the most it may \
                 have: withdraw the ones no longer needed, then invite again."
            ),
        });
    }
    let link = format!("{public_url}/invitations/{}", token.token.expose_secret());
    Ok(InviteOutcome::Invited {
        email: address,
        link: SecretString::from(link),
        has_account: existing.is_some(),
    })
}

/// The open invitation behind a link, with its project's name.
pub async fn open_invitation(
    store: &dyn Store,
    token: &str,
) -> Result<Option<(uj_domain::projects::Invitation, Project)>, ServiceError> {
    let Some(invitation) = store
        .open_invitation(&token_hash(token), Utc::now())
        .await?
    else {
        return Ok(None);
    };
    let project = store
        .project(&invitation.project_id)
        .await?
        .ok_or(ServiceError::NotFound("project"))?;
    Ok(Some((invitation, project)))
}

/// Accepts an invitation: creates the account with the chosen password and joins it.
pub async fn accept_invitation(
    store: &dyn Store,
    token: &str,
    password: &str,
) -> Result<Account, ServiceError> {
    let password = Password::parse(password)?;
    // Looked at before hashing: the form needs no account to send.
    let invitation = store
        .open_invitation(&token_hash(token), Utc::now())
        .await?
        .ok_or(ServiceError::NotFound("invitation"))?;
    // One sent before invisible characters were refused would make an account no one can
    // tell from another: the owner invites the address again.
    Email::parse(&invitation.email).map_err(|_| {
        ServiceError::Invalid(uj_domain::ValidationError::new(
            "email",
            "this invitation's address holds an invisible character, which no account may hold now: ask the project's owner to invite you again",
        ))
    })?;
    if account_for(store, &invitation.email).await?.is_some() {
        return Err(account_exists());
    }
    let password_hash = blocking(move || password.hash()).await?;
    match store
        .accept_invitation(&token_hash(token), &password_hash, Utc::now())
        .await
    {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(ServiceError::NotFound("invitation")),
        Err(StoreError::Conflict(_)) => Err(account_exists()),
        Err(other) => Err(other.into()),
    }
}

fn account_exists() -> ServiceError {
    ServiceError::Conflict {
        code: "account_exists",
        message: "An account with this email exists already: sign in as it, then open the invitation link again.".into(),
    }
}

/// Accepts an invitation for the signed-in `account`, which must be the one it was sent
/// to; the project it joined.
pub async fn join_invitation(
    store: &dyn Store,
    token: &str,
    account: &Account,
) -> Result<ProjectId, ServiceError> {
    store
        .join_by_invitation(&token_hash(token), &account.id, Utc::now())
        .await?
        .ok_or(ServiceError::NotFound("invitation"))
}

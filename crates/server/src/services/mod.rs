//! Application services: what a request, a page or a CLI command asks the product to do,
//! validated and carried out against the store. Handlers stay thin by calling these.

pub mod accounts;
pub mod api_keys;
pub mod audiences;
pub mod bootstrap;
pub mod cohort_sync;
pub mod counters;
pub mod idempotency;
pub mod invite_writer;
pub mod invites;
pub mod links;
pub mod login_throttle;
pub mod mixpanel;
pub mod pacing;
pub mod settings;
pub mod snapshot;
pub mod studies;

use uj_domain::ValidationError;
use uj_storage::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The request clashes with existing state; the message says how, for the user.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A well-formed request the product refuses (422), e.g. changing a fixed trigger.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// Mixpanel refused or could not be reached; the problem says what to fix.
    #[error("{}", .0.message())]
    Mixpanel(mixpanel::MixpanelProblem),
    /// Too much of this work is under way at once; the message says to retry (503).
    #[error("{0}")]
    Busy(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Password hashes computed at once, at most: each takes ~19 MiB and a core for a moment,
/// and the forms that ask for one (sign-in, setup, invitations) need no account to send.
const PASSWORD_SLOTS: usize = 4;
static PASSWORD_WORK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PASSWORD_SLOTS);
/// How long a password check waits for a slot before the answer is "busy, retry".
const PASSWORD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs password hashing or checking off the async threads, a few at a time: a burst of
/// forms queues briefly, then is answered `Busy` instead of using up memory and threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let slot = tokio::time::timeout(PASSWORD_WAIT, PASSWORD_WORK.acquire())
        .await
        .map_err(|_| ServiceError::Busy("Too many sign-ins at once. Try again in a moment."))?
        .map_err(|error| ServiceError::Internal(error.into()))?;
    // Held by the work itself: a request cut meanwhile leaves it running, and its slot
    // taken until it ends (the slot was given back at once, and more hashes ran than slots).
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|error| ServiceError::Internal(anyhow::anyhow!("blocking task failed: {error}")))
}

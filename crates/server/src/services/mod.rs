//! Application services: what a request, a page or a CLI command asks the product to do,
//! validated and carried out against the store. Handlers stay thin by calling these.

pub mod accounts;
pub mod api_keys;
pub mod audiences;
pub mod bootstrap;
pub mod cohort_sync;
pub mod counters;
pub mod invite_writer;
pub mod invites;
pub mod links;
pub mod login_throttle;
pub mod mixpanel;
pub mod pacing;
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Runs CPU-heavy work (password hashing) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ServiceError::Internal(anyhow::anyhow!("blocking task failed: {error}")))
}

//! A project's settings: the trait allowlist (what an invite's attribution may carry from
//! an audience member) and the contact limit (the pacing engine's cap across all rules).
//! Each is checked whole before anything is written; new decisions follow a change at once.

use uj_domain::ids::ProjectId;
use uj_domain::ValidationError;

use super::ServiceError;
use crate::state::AppState;

/// Trait keys an allowlist may hold, at most.
pub const MAX_TRAITS: usize = 50;

/// A trait allowlist as it is kept: trimmed, sorted, each key once; at most [`MAX_TRAITS`]
/// non-empty keys of at most 100 characters, or refused whole.
pub fn trait_keys(keys: Vec<String>) -> Result<Vec<String>, ServiceError> {
    let mut keys: Vec<String> = keys.into_iter().map(|k| k.trim().to_owned()).collect();
    keys.sort();
    keys.dedup();
    if keys.len() > MAX_TRAITS || keys.iter().any(|k| k.is_empty() || k.chars().count() > 100) {
        return Err(ValidationError::new(
            "trait_allowlist",
            format!("at most {MAX_TRAITS} non-empty keys of at most 100 characters"),
        )
        .into());
    }
    Ok(keys)
}

/// A contact limit in days (at most one invite per user per that many days across all
/// rules), 1 to 365; `None` turns it off.
pub fn contact_limit(days: Option<i64>) -> Result<Option<i64>, ServiceError> {
    if days.is_some_and(|d| !(1..=365).contains(&d)) {
        return Err(ValidationError::new(
            "contact_limit_days",
            "must be between 1 and 365 (or none, to turn it off)",
        )
        .into());
    }
    Ok(days)
}

/// Sets the project's trait allowlist ([`trait_keys`]); returns it as kept.
pub async fn set_trait_allowlist(
    state: &AppState,
    project: &ProjectId,
    keys: Vec<String>,
) -> Result<Vec<String>, ServiceError> {
    let keys = trait_keys(keys)?;
    state.store.set_trait_allowlist(project, &keys).await?;
    state.snapshots.forget(project);
    Ok(keys)
}

/// Sets the project's contact limit ([`contact_limit`]).
pub async fn set_contact_limit(
    state: &AppState,
    project: &ProjectId,
    days: Option<i64>,
) -> Result<(), ServiceError> {
    let days = contact_limit(days)?;
    state.store.set_contact_limit_days(project, days).await?;
    state.snapshots.forget(project);
    Ok(())
}

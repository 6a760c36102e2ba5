//! A project's settings: the trait allowlist (what an invite's attribution may carry from
//! an audience member) and the contact limit (the pacing engine's cap across all rules).
//! Each is checked whole before anything is written; new decisions follow a change at once.

use std::sync::Arc;

use serde_json::{Map, Value};
use uj_domain::cohort_sync::keep_allowlisted;
use uj_domain::ids::ProjectId;
use uj_domain::ValidationError;
use uj_storage::{PageRequest, Store, StoreError};

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
    erase_traits_off_the_allowlist(state.store.clone(), project.clone());
    Ok(keys)
}

/// Members (or users' invites) read per batch of the erase of traits off the allowlist.
const ERASE_BATCH: i64 = 500;

/// How long after a save the erase runs once more: a delivery being received as the
/// allowlist changed (its body may take `UJ_BODY_TIMEOUT_SECS`, 30 s by default) was read
/// with the allowlist before.
const ERASE_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_secs(90);

/// Erases, in the background, every trait key the project's allowlist does not name from
/// its stored members (current, past, and staged by an unfinished full sync) and its
/// invites' attribution records; then once more [`ERASE_AGAIN_AFTER`] later. Each batch
/// reads the allowlist afresh, so a key put back meanwhile is kept. Until it is done, reads
/// filter what they serve by the allowlist ([`allowlisted`]). Run at every save of the
/// allowlist, so saving it again resumes an erase the database or a restart cut short.
fn erase_traits_off_the_allowlist(store: Arc<dyn Store>, project: ProjectId) {
    tokio::spawn(async move {
        for pass in [std::time::Duration::ZERO, ERASE_AGAIN_AFTER] {
            tokio::time::sleep(pass).await;
            match erase_pass(store.as_ref(), &project).await {
                Ok(()) => tracing::info!(project = %project, "traits off the allowlist are erased"),
                Err(error) => {
                    tracing::warn!(
                        project = %project,
                        error = %error,
                        "erasing traits off the allowlist stopped; saving the allowlist again resumes it"
                    );
                    return;
                }
            }
        }
    });
}

async fn erase_pass(store: &dyn Store, project: &ProjectId) -> Result<(), StoreError> {
    let mut page = PageRequest {
        limit: 100,
        starting_after: None,
    };
    loop {
        let audiences = store.audiences(project, &page).await?;
        for audience in &audiences.items {
            let mut after = None;
            while let Some(last) = store
                .erase_member_traits(project, &audience.id, after, ERASE_BATCH)
                .await?
            {
                after = Some(last);
            }
            let mut after = None;
            while let Some(last) = store
                .erase_staged_traits(project, &audience.id, after, ERASE_BATCH)
                .await?
            {
                after = Some(last);
            }
        }
        match (audiences.has_more, audiences.items.last()) {
            (true, Some(last)) => page.starting_after = Some(last.id.to_string()),
            _ => break,
        }
    }
    let mut after = None;
    while let Some(last) = store
        .erase_invite_traits(project, after, ERASE_BATCH)
        .await?
    {
        after = Some(last);
    }
    Ok(())
}

/// `traits` with only the keys `allowlist` names, as every read serves them.
pub fn allowlisted(mut traits: Map<String, Value>, allowlist: &[String]) -> Map<String, Value> {
    keep_allowlisted(&mut traits, allowlist);
    traits
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

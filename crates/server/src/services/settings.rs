//! A project's settings: the trait allowlist (what an invite's attribution may carry from
//! an audience member) and the contact limit (the pacing engine's cap across all rules).
//! Each is checked whole before anything is written; new decisions follow a change at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use uj_domain::cohort_sync::keep_allowlisted;
use uj_domain::ids::ProjectId;
use uj_domain::ValidationError;
use uj_storage::{PageRequest, SettingsChange, Store, StoreError};

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
    // As names and ids are held: no control character, no bidirectional override (a key is
    // shown on pages and in every member's traits).
    for key in &keys {
        if let Err(refused) = uj_domain::validation_text("trait_allowlist", key, 100) {
            let said = format!("the key {key:?} {}", refused.message);
            return Err(ValidationError::new("trait_allowlist", said).into());
        }
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
    change_settings(state, project, Some(keys.clone()), None).await?;
    Ok(keys)
}

/// Sets the settings given (`None` leaves one), each checked ([`trait_keys`],
/// [`contact_limit`]) before any is written, and written together: both or neither.
pub async fn change_settings(
    state: &AppState,
    project: &ProjectId,
    trait_allowlist: Option<Vec<String>>,
    contact_limit_days: Option<Option<i64>>,
) -> Result<(), ServiceError> {
    let keys = trait_allowlist.map(trait_keys).transpose()?;
    let contact_limit_days = contact_limit_days.map(contact_limit).transpose()?;
    if keys.is_none() && contact_limit_days.is_none() {
        return Ok(());
    }
    let change = SettingsChange {
        trait_allowlist: keys.as_deref(),
        contact_limit_days,
    };
    let dropped = state
        .store
        .change_settings(project, &change, uj_domain::now())
        .await?
        == Some(true);
    state.snapshots.forget(project);
    // A save that drops no key erases nothing, unless an erase cut short is still due (a
    // save resumes it).
    if keys.is_some()
        && (dropped || !matches!(state.store.trait_erase_due(project).await, Ok(None)))
    {
        state.trait_erasures.request(&state.store, project, true);
    }
    Ok(())
}

/// Members (or users' invites) read per batch of the erase of traits off the allowlist.
const ERASE_BATCH: i64 = 500;

/// How long after an erase starts it runs once more: a delivery being received as the
/// allowlist changed (its body may take `UJ_BODY_TIMEOUT_SECS`, 30 s by default) was read
/// with the allowlist before.
const ERASE_AGAIN_AFTER: Duration = Duration::from_secs(90);

/// The erases of traits off the allowlist, one task per project at most. Each save of an
/// allowlist that drops a key asks for one ([`request`](Self::request)): a pass over the project's stored
/// members (current, past, and staged by an unfinished full sync) and its invites'
/// attribution records, erasing every key the allowlist does not name, then a second pass
/// [`ERASE_AGAIN_AFTER`] later. Saves made while a pass runs are served by one more pass
/// after it, however many they are. Each batch reads the allowlist afresh, so a key put back
/// meanwhile is kept. Until an erase is done, reads filter what they serve by the allowlist
/// ([`allowlisted`]). The last pass, once complete, marks the erase done in the project's
/// row; a server stopped before that resumes it at its next start with one pass
/// ([`resume_trait_erasures`]: no delivery read before the save is still in flight then),
/// and a pass the database cut short is tried again by the next.
#[derive(Default)]
pub struct TraitErasures {
    projects: Mutex<HashMap<ProjectId, Wanted>>,
}

/// What a project's erase task has still to do.
#[derive(Default)]
struct Wanted {
    /// A pass, as soon as the one running (if any) is done.
    now: bool,
    /// The pass asked for is to be followed by a second one.
    twice: bool,
    /// The second pass, at this time.
    again_at: Option<Instant>,
    /// Wakes the task from its wait for the second pass when a pass is asked for.
    wake: Arc<Notify>,
}

/// The next step of a project's erase task.
#[derive(Debug, PartialEq)]
enum Step {
    /// A pass; `last` when no other follows it (it marks the erase done).
    Pass {
        last: bool,
    },
    Wait(Instant),
    Stop,
}

impl Wanted {
    /// Asks for a pass, followed by a second one when `twice`.
    fn ask(&mut self, twice: bool) {
        self.now = true;
        self.twice |= twice;
        self.wake.notify_one();
    }

    /// The next step at `now`.
    fn next(&mut self, now: Instant) -> Step {
        if self.now {
            self.now = false;
            if std::mem::take(&mut self.twice) {
                self.again_at = Some(now + ERASE_AGAIN_AFTER);
            }
            return Step::Pass {
                last: self.again_at.is_none(),
            };
        }
        match self.again_at {
            Some(at) if at <= now => {
                self.again_at = None;
                Step::Pass { last: true }
            }
            Some(at) => Step::Wait(at),
            None => Step::Stop,
        }
    }
}

impl TraitErasures {
    /// Asks for an erase of the project's traits off its allowlist: two passes after a
    /// save, one at a start (see [`TraitErasures`]).
    pub fn request(self: &Arc<Self>, store: &Arc<dyn Store>, project: &ProjectId, twice: bool) {
        let mut projects = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wanted) = projects.get_mut(project) {
            wanted.ask(twice);
            return;
        }
        let mut wanted = Wanted::default();
        wanted.ask(twice);
        projects.insert(project.clone(), wanted);
        let (erasures, store, project) = (Arc::clone(self), Arc::clone(store), project.clone());
        tokio::spawn(async move { erasures.run(store.as_ref(), &project).await });
    }

    async fn run(&self, store: &dyn Store, project: &ProjectId) {
        loop {
            // Decided under the lock `request` takes: a request is either seen here or
            // starts a task of its own once this one has forgotten the project.
            let (step, wake) = {
                let mut projects = self.projects.lock().unwrap_or_else(|e| e.into_inner());
                let Some(wanted) = projects.get_mut(project) else {
                    return;
                };
                let step = wanted.next(Instant::now());
                let wake = Arc::clone(&wanted.wake);
                if step == Step::Stop {
                    projects.remove(project);
                }
                (step, wake)
            };
            match step {
                Step::Pass { last } => erase(store, project, last).await,
                Step::Wait(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = wake.notified() => {}
                    }
                }
                Step::Stop => return,
            }
        }
    }
}

/// Starts the erases a stopped server left due ([`TraitErasures`]).
pub async fn resume_trait_erasures(state: &AppState) -> Result<(), StoreError> {
    for project in state.store.trait_erases_due().await? {
        tracing::info!(project = %project, "resuming the erase of traits off the allowlist");
        state.trait_erasures.request(&state.store, &project, false);
    }
    Ok(())
}

/// One pass of a project's erase; the `last` marks it done when it completes.
async fn erase(store: &dyn Store, project: &ProjectId, last: bool) {
    let erased = async {
        let due = store.trait_erase_due(project).await?;
        erase_pass(store, project).await?;
        if let (true, Some(due)) = (last, due) {
            store.trait_erase_done(project, due).await?;
        }
        Ok::<_, StoreError>(())
    };
    match erased.await {
        Ok(()) => tracing::info!(project = %project, "traits off the allowlist are erased"),
        Err(error) => tracing::warn!(
            project = %project,
            error = %error,
            "erasing traits off the allowlist stopped; the next pass, save or start resumes it"
        ),
    }
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
    change_settings(state, project, None, Some(days)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_asks_for_two_passes_and_saves_meanwhile_for_one_more() {
        let t0 = Instant::now();
        let mut wanted = Wanted::default();
        wanted.ask(true);
        assert_eq!(wanted.next(t0), Step::Pass { last: false });
        // Three saves while the first pass runs: one pass more, after it.
        for _ in 0..3 {
            wanted.ask(true);
        }
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(wanted.next(t1), Step::Pass { last: false });
        // The second pass waits from the last pass asked for by a save.
        let again = t1 + ERASE_AGAIN_AFTER;
        assert_eq!(wanted.next(t1), Step::Wait(again));
        assert_eq!(wanted.next(again), Step::Pass { last: true });
        assert_eq!(wanted.next(again), Step::Stop);
    }

    #[test]
    fn a_start_asks_for_one_pass_unless_a_save_wants_two() {
        let t0 = Instant::now();
        let mut wanted = Wanted::default();
        wanted.ask(false);
        assert_eq!(wanted.next(t0), Step::Pass { last: true });
        assert_eq!(wanted.next(t0), Step::Stop);

        wanted.ask(false);
        wanted.ask(true);
        assert_eq!(wanted.next(t0), Step::Pass { last: false });
        // A start's pass during the wait for the second is not the last.
        wanted.ask(false);
        assert_eq!(wanted.next(t0), Step::Pass { last: false });
        assert_eq!(wanted.next(t0), Step::Wait(t0 + ERASE_AGAIN_AFTER));
    }
}

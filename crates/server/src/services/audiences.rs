//! How an audience's sync is doing, as both the REST API and the dashboard report it, and
//! deleting one.

use chrono::{DateTime, Duration, Utc};
use uj_domain::audiences::{Audience, LedgerEntry, LedgerOutcome};
use uj_storage::PageRequest;

use super::ServiceError;
use crate::state::AppState;

/// Deletes the project's audience `id` with its members, unfinished full syncs and sync
/// history: a cohort no longer synced leaves its members' data behind otherwise. Refused while
/// rules that are not archived target it (they would go on inviting no one, silently).
pub async fn delete(
    state: &AppState,
    project: &uj_domain::ids::ProjectId,
    id: &str,
) -> Result<(), ServiceError> {
    use uj_storage::AudienceDeletion;
    let audience = uj_domain::ids::AudienceId::from_string(id.to_owned());
    // In a task of its own: a big audience takes a while, and a request dropped meanwhile
    // (a closed tab, the request deadline) would leave it part-way until the hourly
    // housekeeping, its cohort's deliveries refused.
    let deletion = tokio::spawn({
        let (store, project) = (state.store.clone(), project.clone());
        async move { store.delete_audience(&project, &audience).await }
    });
    let deleted = deletion
        .await
        .map_err(|failed| ServiceError::Internal(anyhow::anyhow!("audience deletion: {failed}")))?;
    match deleted? {
        AudienceDeletion::Deleted => Ok(()),
        AudienceDeletion::NotFound => Err(ServiceError::NotFound("audience")),
        AudienceDeletion::InUse(rules) => Err(ServiceError::Conflict {
            code: "audience_in_use",
            message: match rules {
                1 => "A rule that is not archived targets this audience: archive it, then delete the audience.".into(),
                n => format!("{n} rules that are not archived target this audience: archive them, then delete the audience."),
            },
        }),
    }
}

/// Mixpanel resends a full snapshot only after three days of failures; warn well before.
pub const STALE_AFTER: Duration = Duration::hours(24);

/// How many missing page numbers an audience lists (a sync may announce 100,000 pages).
pub const MISSING_PAGES_SHOWN: usize = 100;

/// An audience's sync health.
pub struct SyncHealth {
    /// `ok`, `syncing` (a full sync is part-way), `stale` (no successful sync for a day),
    /// `failing` (the last delivery was refused) or `detached` (its cohort is not in the
    /// connected Mixpanel project, or none is connected: its members no longer change).
    pub state: &'static str,
    /// The first [`MISSING_PAGES_SHOWN`] pages not yet received of an unfinished full sync.
    pub missing_pages: Vec<i64>,
    /// How many pages it misses in all.
    pub missing_page_count: i64,
    /// A sentence for the dashboard when something needs attention.
    pub warning: Option<String>,
}

fn state_of(
    audience: &Audience,
    syncing: bool,
    last: Option<&LedgerEntry>,
    now: DateTime<Utc>,
) -> &'static str {
    if last.is_some_and(|e| e.outcome == LedgerOutcome::Rejected) {
        "failing"
    } else if syncing {
        "syncing"
    } else if audience
        .last_synced_at
        .is_none_or(|at| now - at > STALE_AFTER)
    {
        "stale"
    } else {
        "ok"
    }
}

/// Every audience of the project, oldest first, read a thousand at a time (a page of a
/// thousand left the dashboard's pickers without the newer ones; found by the scale probe).
pub async fn all(
    state: &AppState,
    project: &uj_domain::ids::ProjectId,
) -> Result<Vec<Audience>, ServiceError> {
    let mut all = Vec::new();
    let mut starting_after = None;
    loop {
        let page = state
            .store
            .audiences(
                project,
                &PageRequest {
                    limit: 1000,
                    starting_after,
                },
            )
            .await?;
        starting_after = page.items.last().map(|a| a.id.to_string());
        all.extend(page.items);
        if !page.has_more {
            return Ok(all);
        }
    }
}

/// "…waiting for pages [2, 5]." with at most ten page numbers named.
fn waiting_for(missing: &[i64], count: i64) -> String {
    const NAMED: usize = 10;
    let named = &missing[..missing.len().min(NAMED)];
    if count as usize > named.len() {
        format!("A full sync is in progress; waiting for {count} pages, the first {named:?}.")
    } else {
        format!("A full sync is in progress; waiting for pages {named:?}.")
    }
}

/// The state of an audience whose cohort is not in the connected Mixpanel project.
pub const DETACHED: &str = "detached";

/// Every state [`SyncHealth::state`] takes.
pub const STATES: [&str; 5] = ["ok", "syncing", "stale", "failing", DETACHED];

/// The Mixpanel project connected to `project`, as [`health`] takes it (read once for a
/// list of audiences).
pub async fn connected_project(
    state: &AppState,
    project: &uj_domain::ids::ProjectId,
) -> Result<Option<String>, ServiceError> {
    Ok(state
        .store
        .mixpanel_connection(project)
        .await?
        .map(|c| c.connection.mixpanel_project_id))
}

/// How the audience's sync is doing, with `connected` the project's Mixpanel project
/// ([`connected_project`]).
pub async fn health(
    state: &AppState,
    audience: &Audience,
    connected: Option<&str>,
) -> Result<SyncHealth, ServiceError> {
    // Unknown (written by a process older than migration 0024): judged by its deliveries.
    if let Some(from) = audience
        .mixpanel_project_id
        .as_deref()
        .filter(|from| connected != Some(*from))
    {
        let why = match connected {
            None => format!(
                "Mixpanel is not connected (connect project {from} again to resume its sync)"
            ),
            Some(other) => format!(
                "Its cohort is in Mixpanel project {from}, not in the connected one ({other})"
            ),
        };
        return Ok(SyncHealth {
            state: DETACHED,
            missing_pages: Vec::new(),
            missing_page_count: 0,
            warning: Some(format!("{why}: its members no longer change, and rules on it go on inviting the members it had. Pause those rules, or target an audience of the connected project.")),
        });
    }
    let staged = state.store.staged_session(&audience.id).await?;
    let last = state
        .store
        .sync_ledger(
            &audience.project_id,
            Some(&audience.id),
            &PageRequest {
                limit: 1,
                starting_after: None,
            },
        )
        .await?
        .items
        .pop();
    let state_name = state_of(audience, staged.is_some(), last.as_ref(), Utc::now());
    let (missing_pages, missing_page_count) = staged
        .map(|s| (s.missing_pages(MISSING_PAGES_SHOWN), s.missing_page_count()))
        .unwrap_or_default();
    let warning = match state_name {
        "failing" => last.and_then(|e| e.error).map(|e| format!("The last delivery was refused: {e}")),
        "stale" => Some("No successful sync for over a day. Check the sync in Mixpanel (Data → Destinations): after three days of failures Mixpanel resends the whole cohort.".to_owned()),
        "syncing" => Some(waiting_for(&missing_pages, missing_page_count)),
        _ => None,
    };
    Ok(SyncHealth {
        state: state_name,
        missing_pages,
        missing_page_count,
        warning,
    })
}

//! How an audience's sync is doing, as both the REST API and the dashboard report it.

use chrono::{DateTime, Duration, Utc};
use uj_domain::audiences::{Audience, LedgerEntry, LedgerOutcome};
use uj_storage::PageRequest;

use super::ServiceError;
use crate::state::AppState;

/// Mixpanel resends a full snapshot only after three days of failures; warn well before.
pub const STALE_AFTER: Duration = Duration::hours(24);

/// How many missing page numbers an audience lists (a sync may announce 100,000 pages).
pub const MISSING_PAGES_SHOWN: usize = 100;

/// An audience's sync health.
pub struct SyncHealth {
    /// `ok`, `syncing` (a full sync is part-way), `stale` (no successful sync for a day) or
    /// `failing` (the last delivery was refused).
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

pub async fn health(state: &AppState, audience: &Audience) -> Result<SyncHealth, ServiceError> {
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

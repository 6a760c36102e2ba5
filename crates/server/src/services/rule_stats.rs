//! Per-rule statistics: invites per state (from the invites themselves) and how often each
//! reason stopped a rule. Every pacing decision counts its suppressions in memory; a
//! background task adds them to the database every few seconds, and at shutdown, so the SDK
//! path never writes a counter row. A crash loses at most the last interval's counts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use uj_domain::ids::ProjectId;
use uj_domain::pacing::Reason;
use uj_domain::studies::LaunchRule;
use uj_storage::{RuleStats, Store};

use super::ServiceError;
use crate::state::AppState;

/// How often counted decisions reach the database.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Suppressions counted since the last flush, by rule and reason.
#[derive(Default)]
pub struct SuppressionCounter {
    pending: Mutex<HashMap<(String, &'static str), i64>>,
}

impl SuppressionCounter {
    pub fn record(&self, suppressed: &[(String, Reason)]) {
        if suppressed.is_empty() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (rule, reason) in suppressed {
            *pending.entry((rule.clone(), reason.code())).or_default() += 1;
        }
    }

    /// Adds the counts to the database; on failure they are kept for the next try.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), uj_storage::StoreError> {
        let batch: Vec<((String, &'static str), i64)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        let rows: Vec<(String, String, i64)> = batch
            .iter()
            .map(|((rule, reason), n)| (rule.clone(), (*reason).to_owned(), *n))
            .collect();
        if let Err(error) = store.add_suppressions(&rows).await {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (key, n) in batch {
                *pending.entry(key).or_default() += n;
            }
            return Err(error);
        }
        Ok(())
    }

    /// Counts not yet flushed for one rule.
    fn unflushed(&self, rule: &str) -> Vec<(&'static str, i64)> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .iter()
            .filter(|((r, _), _)| r == rule)
            .map(|((_, reason), n)| (*reason, *n))
            .collect()
    }
}

/// Flushes the counters every [`FLUSH_INTERVAL`] for as long as the server runs.
pub async fn flush_every(state: AppState) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(error) = state.suppressions.flush(state.store.as_ref()).await {
            tracing::warn!(error = %error, "could not save rule statistics; retrying");
        }
    }
}

/// A rule's statistics, including this process's counts not yet flushed.
pub async fn of_rule(
    state: &AppState,
    project: &ProjectId,
    id: &str,
) -> Result<(LaunchRule, RuleStats), ServiceError> {
    let rule = super::studies::rule(state, project, id).await?;
    let mut stats = state.store.rule_stats(&rule.id, Utc::now()).await?;
    for (reason, n) in state.suppressions.unflushed(rule.id.as_str()) {
        match stats.suppressions.iter_mut().find(|(r, _)| r == reason) {
            Some((_, count)) => *count += n,
            None => stats.suppressions.push((reason.to_owned(), n)),
        }
    }
    stats.suppressions.sort();
    Ok((rule, stats))
}

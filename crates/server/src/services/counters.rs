//! Counts the SDK path makes without writing to the database on each request: how often
//! each reason held back a rule (its stats) and the app events the catalog counts. They add
//! up in memory; a background task adds them to the database every few seconds, and at
//! shutdown. Reading stats or the catalog adds this process's counts first; other
//! processes' counts arrive within [`FLUSH_INTERVAL`]. A crash loses at most the last
//! interval's counts, never an invite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use uj_domain::ids::ProjectId;
use uj_domain::mixpanel::CatalogEvent;
use uj_domain::pacing::Reason;
use uj_domain::studies::LaunchRule;
use uj_storage::{AppEventCount, RuleStats, Store, StoreError};

use super::ServiceError;
use crate::state::AppState;

/// How often counts reach the database.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// An event's count with its first and last time seen.
type Seen = (i64, DateTime<Utc>, DateTime<Utc>);

/// A rule's counts, one per [`Reason`] at `reason as usize`.
type ByReason = [i64; Reason::ALL.len()];

#[derive(Default)]
struct Pending {
    /// By rule (looked up by `&str`: no allocation per counted rule), then reason. Every
    /// decision counts each rule it held back, so this is one lookup per rule with a fast
    /// hash (rule ids are ours, not the caller's).
    suppressions: FxHashMap<String, ByReason>,
    /// By project and event name: count, first and last seen.
    events: HashMap<(String, String), Seen>,
}

/// Counts not yet in the database.
#[derive(Default)]
pub struct Counters {
    pending: Mutex<Pending>,
    /// Held by the flush in progress: flushes run one at a time.
    flushing: tokio::sync::Mutex<()>,
}

impl Counters {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the rules a pacing decision held back, with their reasons.
    pub fn suppressed(&self, suppressed: &[(&str, Reason)]) {
        if suppressed.is_empty() {
            return;
        }
        let mut pending = self.lock();
        for (rule, reason) in suppressed {
            let by_reason = match pending.suppressions.get_mut(*rule) {
                Some(by_reason) => by_reason,
                None => pending.suppressions.entry((*rule).to_owned()).or_default(),
            };
            by_reason[*reason as usize] += 1;
        }
    }

    /// Counts one event the project's app sent.
    pub fn app_event(&self, project: &ProjectId, name: &str, at: DateTime<Utc>) {
        let mut pending = self.lock();
        let entry = pending
            .events
            .entry((project.to_string(), name.to_owned()))
            .or_insert((0, at, at));
        entry.0 += 1;
        entry.1 = entry.1.min(at);
        entry.2 = entry.2.max(at);
    }

    /// Adds the counts to the database; on failure they are kept for the next try. The
    /// flush runs to its end in a task of its own even when the caller stops waiting (a
    /// request given up, the flusher stopped at shutdown): counts it took are saved or put
    /// back, never dropped. Flushes run one at a time, so a read that flushes first sees
    /// every count taken before it.
    pub async fn flush(self: &Arc<Self>, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        let (counters, store) = (Arc::clone(self), Arc::clone(store));
        let flushing = tokio::spawn(async move { counters.flush_in_turn(store.as_ref()).await });
        match flushing.await {
            Ok(saved) => saved,
            // Cancelled only as the runtime shuts down, when no one waits any more.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    async fn flush_in_turn(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _in_turn = self.flushing.lock().await;
        let taken = std::mem::take(&mut *self.lock());
        let suppressions: Vec<(String, String, i64)> = taken
            .suppressions
            .iter()
            .flat_map(|(rule, by_reason)| {
                Reason::ALL
                    .iter()
                    .zip(by_reason)
                    .filter(|(_, n)| **n != 0)
                    .map(|(reason, n)| (rule.clone(), reason.code().to_owned(), *n))
            })
            .collect();
        let events: Vec<AppEventCount> = taken
            .events
            .iter()
            .map(|((project, name), (count, first, last))| AppEventCount {
                project: ProjectId::from_string(project),
                name: name.clone(),
                count: *count,
                first: *first,
                last: *last,
            })
            .collect();
        let suppressions_saved = store.add_suppressions(&suppressions).await;
        let events_saved = store.record_app_events(&events).await;
        if suppressions_saved.is_ok() && events_saved.is_ok() {
            return Ok(());
        }
        // What was not saved goes back for the next flush; what was saved is not added twice.
        let mut pending = self.lock();
        if suppressions_saved.is_err() {
            for (rule, by_reason) in taken.suppressions {
                let kept = pending.suppressions.entry(rule).or_default();
                for (kept, n) in kept.iter_mut().zip(by_reason) {
                    *kept += n;
                }
            }
        }
        if events_saved.is_err() {
            for (key, (count, first, last)) in taken.events {
                let entry = pending.events.entry(key).or_insert((0, first, last));
                entry.0 += count;
                entry.1 = entry.1.min(first);
                entry.2 = entry.2.max(last);
            }
        }
        suppressions_saved.and(events_saved)
    }
}

/// Flushes the counters every [`FLUSH_INTERVAL`] for as long as the server runs.
pub async fn flush_every(state: AppState) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(error) = state.counters.flush(&state.store).await {
            tracing::warn!(error = %error, "could not save counts; retrying");
        }
    }
}

/// A rule's statistics, this process's latest counts included.
pub async fn rule_stats(
    state: &AppState,
    project: &ProjectId,
    id: &str,
) -> Result<(LaunchRule, RuleStats), ServiceError> {
    let rule = super::studies::rule(state, project, id).await?;
    state.counters.flush(&state.store).await?;
    let stats = state.store.rule_stats(&rule.id, Utc::now()).await?;
    Ok((rule, stats))
}

/// The project's event catalog, this process's latest counts included.
pub async fn event_catalog(
    state: &AppState,
    project: &ProjectId,
) -> Result<Vec<CatalogEvent>, ServiceError> {
    state.counters.flush(&state.store).await?;
    Ok(state.store.event_catalog(project).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uj_storage::testing::TestDatabase;
    use uj_storage::{NewAccount, SqliteStore};

    /// A SQLite store holding one project.
    async fn store_with_project(db: &TestDatabase) -> (SqliteStore, ProjectId) {
        let store = SqliteStore::connect(&db.url).await.unwrap();
        let owner = store
            .create_account(NewAccount {
                email: "ada@example.com".into(),
                password_hash: "$argon2id$fake".into(),
            })
            .await
            .unwrap();
        let project = store
            .create_project(&owner.id, "Shop", "uj_pk_counters", 100, None)
            .await
            .unwrap()
            .expect("under the cap")
            .id;
        (store, project)
    }

    /// Counts a failed flush could not save are saved by the next one, added to what came
    /// in between, never twice.
    #[tokio::test]
    async fn counts_a_flush_could_not_save_wait_for_the_next() {
        let db = TestDatabase::sqlite();
        let (store, project) = store_with_project(&db).await;
        // Whole seconds: as the databases keep them.
        let t0 = chrono::DurationRound::duration_trunc(Utc::now(), chrono::Duration::seconds(1))
            .unwrap();
        let counters = Arc::new(Counters::default());
        counters.suppressed(&[("r1", Reason::Cooldown), ("r1", Reason::NotInAudience)]);
        counters.suppressed(&[("r1", Reason::Cooldown), ("r2", Reason::Cooldown)]);
        counters.app_event(&project, "Checkout", t0);
        counters.app_event(&project, "Checkout", t0 + chrono::Duration::seconds(1));
        let closed = SqliteStore::connect(&db.url).await.unwrap();
        closed.close().await;
        let closed: Arc<dyn Store> = Arc::new(closed);
        assert!(counters.flush(&closed).await.is_err());
        counters.suppressed(&[("r1", Reason::Cooldown)]);
        {
            let kept = &counters.lock().suppressions;
            let count = |rule: &str, reason: Reason| kept[rule][reason as usize];
            assert_eq!(count("r1", Reason::Cooldown), 3);
            assert_eq!(count("r1", Reason::NotInAudience), 1);
            assert_eq!(count("r2", Reason::Cooldown), 1);
            assert_eq!(kept["r1"].iter().sum::<i64>(), 4);
        }
        counters.app_event(&project, "Checkout", t0 + chrono::Duration::seconds(2));
        counters.app_event(&project, "Signup", t0);
        let store: Arc<dyn Store> = Arc::new(store);
        counters.flush(&store).await.unwrap();
        counters.flush(&store).await.unwrap();
        let mut catalog: Vec<_> = store
            .event_catalog(&project)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.app_count, e.app_first_seen_at, e.app_last_seen_at))
            .collect();
        catalog.sort();
        let last = t0 + chrono::Duration::seconds(2);
        assert_eq!(
            catalog,
            [
                ("Checkout".to_owned(), 3, Some(t0), Some(last)),
                ("Signup".to_owned(), 1, Some(t0), Some(t0))
            ]
        );
    }

    /// A caller that stops waiting for its flush (a stats request given up, the flusher
    /// stopped at shutdown) loses no count: the flush carries on, and the next one waits
    /// for it.
    #[tokio::test]
    async fn a_flush_no_one_waits_for_still_saves_its_counts() {
        let db = TestDatabase::sqlite();
        let (store, project) = store_with_project(&db).await;
        let store: Arc<dyn Store> = Arc::new(store);
        let counters = Arc::new(Counters::default());
        counters.suppressed(&[("r1", Reason::Cooldown)]);
        counters.app_event(&project, "Checkout", Utc::now());
        tokio::select! {
            biased;
            _ = counters.flush(&store) => {}
            () = std::future::ready(()) => {}
        }
        counters.flush(&store).await.unwrap();
        let catalog = store.event_catalog(&project).await.unwrap();
        assert_eq!(catalog.len(), 1, "{catalog:?}");
        assert_eq!(catalog[0].app_count, 1);
    }

    /// An event's last-seen time is the latest time it was seen, not the last one counted:
    /// events counted out of order (requests finishing in another order than they came)
    /// keep the later time (found by the mutation audit).
    #[tokio::test]
    async fn an_event_counted_out_of_order_keeps_its_latest_time() {
        let db = TestDatabase::sqlite();
        let (store, project) = store_with_project(&db).await;
        // Whole seconds: as the databases keep them.
        let t0 = chrono::DurationRound::duration_trunc(Utc::now(), chrono::Duration::seconds(1))
            .unwrap();
        let later = t0 + chrono::Duration::seconds(1);
        let counters = Arc::new(Counters::default());
        counters.app_event(&project, "Checkout", later);
        counters.app_event(&project, "Checkout", t0);
        let store: Arc<dyn Store> = Arc::new(store);
        counters.flush(&store).await.unwrap();
        let catalog: Vec<_> = store
            .event_catalog(&project)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.app_count, e.app_first_seen_at, e.app_last_seen_at))
            .collect();
        assert_eq!(catalog, [("Checkout".to_owned(), 2, Some(t0), Some(later))]);
    }
}

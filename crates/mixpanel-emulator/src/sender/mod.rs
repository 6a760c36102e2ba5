//! The cohort-sync sender: behaves like Mixpanel's custom webhook destination (reference §7).
//!
//! Each [`Sender::run`] is one scheduled sync of one destination: a full `members` sync when
//! there is no fresh snapshot of a successful run, otherwise `add_members` then
//! `remove_members` batches diffed against that snapshot. Failures follow §7.5: 429, 5xx and
//! network errors are retried with exponential backoff and then abandoned until the next run;
//! other 4xx pause the sync until [`Sender::resume`]. Only a fully delivered run advances the
//! snapshot, so the next run recomputes everything from the last success.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;

mod payload;
mod plan;

use payload::{MemberPayload, PageInfo, SyncParameters, SyncRequest, WireId};
use plan::{new_session_id, Batch, Plan};

use crate::scenario::{Destination, Member, SenderSettings};

/// Deliveries kept per destination; older ones are dropped.
const DELIVERY_LOG_CAPACITY: usize = 10_000;
/// Longest receiver message kept in a [`Pause`] or an error.
const MESSAGE_LIMIT: usize = 500;

/// The cohort as it is now, handed to [`Sender::run`].
#[derive(Debug, Clone)]
pub struct CohortSnapshot {
    pub project_id: u64,
    pub cohort_id: u64,
    pub name: String,
    pub description: String,
    /// Shared with the emulator's state: a run copies pointers, not profiles.
    pub members: Vec<Arc<Member>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("no destination {0}")]
    UnknownDestination(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pause {
    pub status: u16,
    /// The receiver's `error.message`, or the body text when it sent no JSON error.
    pub message: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every request succeeded; the snapshot advanced.
    Synced {
        full: bool,
        requests: usize,
        added: usize,
        removed: usize,
    },
    /// A 400/401/403/404: the sync is paused until resumed.
    Paused { status: u16, message: String },
    /// 429/5xx/network errors outlasted the retries; the snapshot did not advance.
    GaveUp { status: Option<u16>, error: String },
    /// The sync was paused before this run; nothing was sent.
    SkippedPaused,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncState {
    pub destination_id: String,
    pub paused: Option<Pause>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Members in the last successful snapshot.
    pub snapshot_members: Option<usize>,
    pub runs: u64,
    pub last_outcome: Option<RunOutcome>,
}

/// One HTTP attempt, as the delivery log records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub action: String,
    pub session_id: String,
    pub page_count: usize,
    pub total_pages: usize,
    pub members: usize,
    /// 0 for the first try, 1..=retries for retries.
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
    /// From sending the request to the receiver's answer.
    pub duration_ms: f64,
}

/// Mixpanel's webhook destinations: registered destinations, their snapshots, pauses and
/// delivery logs, and the HTTP client that delivers cohort syncs to them.
pub struct Sender {
    settings: SenderSettings,
    client: reqwest::Client,
    destinations: Mutex<BTreeMap<String, Arc<Slot>>>,
}

/// A registered destination and what the sender remembers about it.
struct Slot {
    destination: Destination,
    /// Serializes runs. Kept when `add_destination` replaces the destination, so a run of the
    /// old configuration finishes before one of the new configuration starts.
    run_lock: Arc<tokio::sync::Mutex<()>>,
    state: Mutex<DestinationState>,
}

#[derive(Default)]
struct DestinationState {
    paused: Option<Pause>,
    snapshot: Option<Snapshot>,
    runs: u64,
    last_outcome: Option<RunOutcome>,
    deliveries: VecDeque<Delivery>,
}

/// The membership Mixpanel remembers after a successful sync, to diff the next run against.
struct Snapshot {
    /// Sorted by distinct id, each once.
    members: Vec<Arc<Member>>,
    taken_at: DateTime<Utc>,
    /// Set by [`Sender::expire_snapshot`]: counts as older than the TTL.
    expired: bool,
}

impl Snapshot {
    fn is_stale(&self, ttl_hours: u64, now: DateTime<Utc>) -> bool {
        let ttl = i64::try_from(ttl_hours).ok().and_then(TimeDelta::try_hours);
        self.expired || ttl.is_some_and(|ttl| now - self.taken_at > ttl)
    }
}

impl Sender {
    /// A sender with no destinations; requests time out after `settings.request_timeout_ms`.
    pub fn new(settings: SenderSettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            // A redirected POST would arrive as a bodiless GET; treat 3xx as a failed delivery.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client without TLS always builds");
        Self {
            settings,
            client,
            destinations: Mutex::default(),
        }
    }

    /// Registers a destination, or replaces the one with the same id and forgets its snapshot,
    /// pause and delivery log.
    pub fn add_destination(&self, destination: Destination) {
        let mut destinations = lock(&self.destinations);
        let run_lock = destinations
            .get(&destination.id)
            .map(|slot| Arc::clone(&slot.run_lock))
            .unwrap_or_default();
        let slot = Slot {
            destination,
            run_lock,
            state: Mutex::default(),
        };
        destinations.insert(slot.destination.id.clone(), Arc::new(slot));
    }

    /// Every destination, sorted by id.
    pub fn destinations(&self) -> Vec<Destination> {
        lock(&self.destinations)
            .values()
            .map(|slot| slot.destination.clone())
            .collect()
    }

    pub fn destination(&self, id: &str) -> Option<Destination> {
        self.slot(id).map(|slot| slot.destination.clone())
    }

    /// One scheduled sync of `cohort` to the destination. Runs of one destination wait for
    /// each other, as Mixpanel runs the syncs of one connection sequentially.
    #[tracing::instrument(skip_all, fields(destination = destination_id))]
    pub async fn run(
        &self,
        destination_id: &str,
        cohort: CohortSnapshot,
    ) -> Result<RunOutcome, SenderError> {
        let slot = self
            .slot(destination_id)
            .ok_or_else(|| SenderError::UnknownDestination(destination_id.to_owned()))?;
        let _running = slot.run_lock.lock().await;
        let plan = {
            let state = lock(&slot.state);
            let now = Utc::now();
            let fresh = state
                .snapshot
                .as_ref()
                .filter(|snapshot| !snapshot.is_stale(self.settings.snapshot_ttl_hours, now));
            state.paused.is_none().then(|| {
                Plan::new(
                    &cohort.members,
                    fresh.map(|s| &s.members[..]),
                    self.settings.page_size,
                )
            })
        };
        let outcome = match plan {
            Some(plan) => self.deliver(&slot, &cohort, plan).await,
            None => RunOutcome::SkippedPaused,
        };
        let mut state = lock(&slot.state);
        state.runs += 1;
        state.last_outcome = Some(outcome.clone());
        Ok(outcome)
    }

    pub fn state(&self, destination_id: &str) -> Option<SyncState> {
        let slot = self.slot(destination_id)?;
        let state = lock(&slot.state);
        Some(SyncState {
            destination_id: destination_id.to_owned(),
            paused: state.paused.clone(),
            last_success_at: state.snapshot.as_ref().map(|s| s.taken_at),
            snapshot_members: state.snapshot.as_ref().map(|s| s.members.len()),
            runs: state.runs,
            last_outcome: state.last_outcome.clone(),
        })
    }

    /// The destination's HTTP attempts, oldest first (the last 10 000); empty when unknown.
    pub fn deliveries(&self, destination_id: &str) -> Vec<Delivery> {
        self.slot(destination_id)
            .map(|slot| lock(&slot.state).deliveries.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Clears the pause, as the customer does in Mixpanel's UI. False for an unknown id.
    pub fn resume(&self, destination_id: &str) -> bool {
        let Some(slot) = self.slot(destination_id) else {
            return false;
        };
        lock(&slot.state).paused = None;
        true
    }

    /// Makes the snapshot count as older than the TTL, so the next run is a full sync.
    /// False when there is no snapshot (or no such destination).
    pub fn expire_snapshot(&self, destination_id: &str) -> bool {
        let Some(slot) = self.slot(destination_id) else {
            return false;
        };
        let mut state = lock(&slot.state);
        let Some(snapshot) = state.snapshot.as_mut() else {
            return false;
        };
        snapshot.expired = true;
        true
    }

    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        lock(&self.destinations).get(id).cloned()
    }

    /// Sends the plan's batches in order under one session id, stopping at the first failure.
    async fn deliver(&self, slot: &Slot, cohort: &CohortSnapshot, plan: Plan) -> RunOutcome {
        let session_id = new_session_id(cohort.cohort_id);
        let encode = |batch: &Batch| self.encode(cohort, &session_id, batch);
        let mut next = plan.batches.first().map(encode);
        for (index, batch) in plan.batches.iter().enumerate() {
            let body = next.take().unwrap_or_default();
            // The next page is written while this one is in flight, as a real sender's
            // work would not hold up the receiver's.
            let (sent, following) = tokio::join!(
                self.send_with_retries(slot, &session_id, batch, &body),
                async { plan.batches.get(index + 1).map(encode) }
            );
            if let Err(failure) = sent {
                return slot.fail(failure);
            }
            next = following;
        }
        let (added, removed) = (plan.added, plan.removed);
        tracing::info!(full = plan.full, added, removed, "cohort synced");
        lock(&slot.state).snapshot = Some(Snapshot {
            members: plan.current,
            taken_at: Utc::now(),
            expired: false,
        });
        RunOutcome::Synced {
            full: plan.full,
            requests: plan.batches.len(),
            added,
            removed,
        }
    }

    /// Sends one batch, retrying transient failures; every attempt goes to the delivery log.
    async fn send_with_retries(
        &self,
        slot: &Slot,
        session_id: &str,
        batch: &Batch,
        body: &[u8],
    ) -> Result<(), Failure> {
        let mut attempt = 0;
        loop {
            let at = Utc::now();
            let started = std::time::Instant::now();
            let result = self.send_once(&slot.destination, body).await;
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            slot.record(Delivery {
                action: batch.action.as_str().to_owned(),
                session_id: session_id.to_owned(),
                page_count: batch.page_count,
                total_pages: batch.total_pages,
                members: batch.members.len(),
                attempt,
                status: match &result {
                    Ok(status) => Some(*status),
                    Err(failure) => failure.status(),
                },
                error: result.as_ref().err().map(|f| f.message().to_owned()),
                at,
                duration_ms,
            });
            match result {
                Ok(_) => return Ok(()),
                Err(Failure::Transient { .. }) if attempt < self.settings.retries => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    /// One POST; the 2xx status on success.
    async fn send_once(&self, destination: &Destination, body: &[u8]) -> Result<u16, Failure> {
        let mut request = self
            .client
            .post(&destination.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(auth) = &destination.basic_auth {
            request = request.basic_auth(&auth.username, Some(&auth.password));
        }
        let response = request.send().await.map_err(|error| Failure::Transient {
            status: None,
            error: self.describe(error),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let message = receiver_message(status, &response.text().await.unwrap_or_default());
        Err(Failure::classify(status, message))
    }

    /// The request body of one batch, as JSON.
    fn encode(&self, cohort: &CohortSnapshot, session_id: &str, batch: &Batch) -> Vec<u8> {
        serde_json::to_vec(&self.request_body(cohort, session_id, batch))
            .expect("a request body of strings and JSON values always serializes")
    }

    fn request_body<'a>(
        &self,
        cohort: &'a CohortSnapshot,
        session_id: &'a str,
        batch: &'a Batch,
    ) -> SyncRequest<'a> {
        let id = |id: u64| {
            if self.settings.ids_as_numbers {
                WireId::Number(id)
            } else {
                WireId::Text(id.to_string())
            }
        };
        SyncRequest {
            action: batch.action.as_str(),
            parameters: SyncParameters {
                mixpanel_project_id: id(cohort.project_id),
                mixpanel_cohort_id: id(cohort.cohort_id),
                mixpanel_cohort_name: &cohort.name,
                mixpanel_cohort_description: &cohort.description,
                mixpanel_session_id: session_id,
                page_info: PageInfo {
                    total_pages: batch.total_pages,
                    page_count: batch.page_count,
                },
                members: batch.members.iter().map(|m| MemberPayload(m)).collect(),
            },
        }
    }

    /// The wait before retry `attempt + 1`: the initial backoff, doubled per earlier retry.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u64.checked_shl(attempt).unwrap_or(u64::MAX);
        Duration::from_millis(self.settings.backoff_initial_ms.saturating_mul(factor))
    }

    /// A network error as the delivery log shows it: without the URL, which may carry secrets.
    fn describe(&self, error: reqwest::Error) -> String {
        let error = error.without_url();
        if error.is_timeout() {
            return format!("timed out after {} ms", self.settings.request_timeout_ms);
        }
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

impl fmt::Debug for Sender {
    /// Lists destination ids only: destinations carry Basic Auth passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = lock(&self.destinations).keys().cloned().collect();
        f.debug_struct("Sender")
            .field("settings", &self.settings)
            .field("destinations", &ids)
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// Ends a run at its first failed request: pauses on a rejection, else just gives up.
    fn fail(&self, failure: Failure) -> RunOutcome {
        match failure {
            Failure::Rejected { status, message } => {
                // `reason`: a field named `message` would clash with the event's own in JSON logs.
                tracing::warn!(status, reason = %message, "receiver rejected the sync; pausing it");
                lock(&self.state).paused = Some(Pause {
                    status,
                    message: message.clone(),
                    at: Utc::now(),
                });
                RunOutcome::Paused { status, message }
            }
            Failure::Transient { status, error } => {
                tracing::warn!(?status, %error, "retries exhausted; abandoning the run");
                RunOutcome::GaveUp { status, error }
            }
        }
    }

    fn record(&self, delivery: Delivery) {
        let mut state = lock(&self.state);
        if state.deliveries.len() == DELIVERY_LOG_CAPACITY {
            state.deliveries.pop_front();
        }
        state.deliveries.push_back(delivery);
    }
}

/// Why a request failed for good (after its retries, if any).
enum Failure {
    /// A 4xx other than 429: a human must fix the receiver or the destination.
    Rejected { status: u16, message: String },
    /// A 429, 5xx, unexpected 1xx/3xx, network error or timeout: worth retrying.
    Transient { status: Option<u16>, error: String },
}

impl Failure {
    /// Mixpanel documents 400, 401, 403 and 404 as pausing the sync and 429/5xx as retried;
    /// it says nothing of other 4xx (413, 422, …). We pause on every 4xx but 429, since those
    /// also say the request itself is wrong and resending it cannot help.
    fn classify(status: StatusCode, message: String) -> Self {
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            Failure::Rejected {
                status: status.as_u16(),
                message,
            }
        } else {
            Failure::Transient {
                status: Some(status.as_u16()),
                error: message,
            }
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            Failure::Rejected { status, .. } => Some(*status),
            Failure::Transient { status, .. } => *status,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Rejected { message, .. } => message,
            Failure::Transient { error, .. } => error,
        }
    }
}

/// The receiver's `error.message` (§7.3), else its body text, else the status line.
fn receiver_message(status: StatusCode, body: &str) -> String {
    let json_message = serde_json::from_str::<Value>(body).ok().and_then(|json| {
        json.pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let message = json_message.unwrap_or_else(|| body.trim().to_owned());
    if message.is_empty() {
        status.to_string()
    } else {
        message.chars().take(MESSAGE_LIMIT).collect()
    }
}

/// Identifies one run's requests, like Mixpanel's `mixpanel_session_id`.
/// Locks plain state; a panic elsewhere must not wedge the emulator.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scenario;

    /// Mixpanel retries a 429 or 5xx 5 times over about a minute with exponential backoff
    /// (reference §7.5): a scenario that says nothing gets 2, 4, 8, 16 and 32 seconds.
    #[test]
    fn by_default_a_failed_request_is_retried_five_times_over_about_a_minute() {
        let settings = Scenario::from_json("{}").unwrap().sender;
        assert_eq!(settings.retries, 5);
        let retries = settings.retries;
        let sender = Sender::new(settings);
        let waits: Vec<u64> = (0..retries)
            .map(|attempt| sender.backoff(attempt).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32]);
    }
}

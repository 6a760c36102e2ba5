//! The cohort-sync sender: behaves like Mixpanel's custom webhook destination.
//! (Interface fixed; implementation in progress.)

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::scenario::{Destination, Member, SenderSettings};

/// The cohort as it is now, handed to [`Sender::run`].
#[derive(Debug, Clone)]
pub struct CohortSnapshot {
    pub project_id: u64,
    pub cohort_id: u64,
    pub name: String,
    pub description: String,
    pub members: Vec<Member>,
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("no destination {0}")]
    UnknownDestination(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Pause {
    pub status: u16,
    /// The receiver's `error.message`, or the body text when it sent no JSON error.
    pub message: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every request succeeded; the snapshot advanced.
    Synced { full: bool, requests: usize, added: usize, removed: usize },
    /// A 400/401/403/404: the sync is paused until resumed.
    Paused { status: u16, message: String },
    /// 429/5xx/network errors outlasted the retries; the snapshot did not advance.
    GaveUp { status: Option<u16>, error: String },
    /// The sync was paused before this run; nothing was sent.
    SkippedPaused,
}

#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
}

pub struct Sender {
    _settings: SenderSettings,
}

impl Sender {
    pub fn new(settings: SenderSettings) -> Self {
        Self { _settings: settings }
    }

    pub fn add_destination(&self, _destination: Destination) {
        todo!()
    }

    pub fn destinations(&self) -> Vec<Destination> {
        todo!()
    }

    pub fn destination(&self, _id: &str) -> Option<Destination> {
        todo!()
    }

    pub async fn run(
        &self,
        _destination_id: &str,
        _cohort: CohortSnapshot,
    ) -> Result<RunOutcome, SenderError> {
        todo!()
    }

    pub fn state(&self, _destination_id: &str) -> Option<SyncState> {
        todo!()
    }

    pub fn deliveries(&self, _destination_id: &str) -> Vec<Delivery> {
        todo!()
    }

    pub fn resume(&self, _destination_id: &str) -> bool {
        todo!()
    }

    pub fn expire_snapshot(&self, _destination_id: &str) -> bool {
        todo!()
    }
}

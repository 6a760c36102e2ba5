//! A local Mixpanel for tests, demos and benchmarks: the App, Query and Raw Export APIs of
//! all three regions, Mixpanel's rate limits and error bodies, injectable faults, and a
//! cohort-sync sender that delivers cohorts to a webhook the way Mixpanel does.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mixpanel_emulator::{Emulator, Region, Scenario};
//! let scenario = Scenario::from_json(&std::fs::read_to_string("scenario.json")?)?;
//! let emulator = Emulator::start(scenario).await?;
//! let eu_api = emulator.api_url(Region::Eu); // e.g. http://127.0.0.1:41234/eu
//! # Ok(()) }
//! ```
//!
//! Never needed in production: the server only ever talks to the base URLs it is given.

#![forbid(unsafe_code)]

mod api;
mod control;
pub mod faults;
mod limits;
mod region;
pub mod scenario;
pub mod sender;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{Faults, Truncate, TruncateMode};
pub use region::Region;
pub use scenario::{Member, Scenario};
pub use sender::{CohortSnapshot, Delivery, RunOutcome, SenderError, SyncState};
pub use state::ApiRequest;

use state::Shared;

/// A running emulator. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The emulator's HTTP surface: Mixpanel's APIs, and the `/_emulator/` controls when
/// `controls`.
fn app(shared: Arc<Shared>, controls: bool) -> axum::Router {
    let router = api::router(shared.clone());
    let router = match controls {
        true => router.merge(control::router()),
        false => router,
    };
    router.with_state(shared)
}

pub(crate) async fn run_sync(
    shared: &Shared,
    destination_id: &str,
) -> Result<RunOutcome, SenderError> {
    let destination = shared
        .sender
        .destination(destination_id)
        .ok_or_else(|| SenderError::UnknownDestination(destination_id.to_owned()))?;
    let snapshot = shared
        .cohort_snapshot(destination.project_id, destination.cohort_id)
        .ok_or_else(|| SenderError::UnknownDestination(destination_id.to_owned()))?;
    shared.sender.run(destination_id, snapshot).await
}

impl Emulator {
    /// Starts on a random loopback port.
    pub async fn start(scenario: Scenario) -> std::io::Result<Self> {
        Self::start_on(scenario, "127.0.0.1:0").await
    }

    pub async fn start_on(scenario: Scenario, bind: &str) -> std::io::Result<Self> {
        Self::serve(scenario, bind, true).await
    }

    /// Starts on a random loopback port serving Mixpanel's APIs alone: not the
    /// `/_emulator/` controls, which anyone reaching the port could use to send a cohort to
    /// any address. The process that embeds it drives it through this handle (the demo).
    pub async fn start_without_controls(scenario: Scenario) -> std::io::Result<Self> {
        Self::serve(scenario, "127.0.0.1:0", false).await
    }

    async fn serve(scenario: Scenario, bind: &str, controls: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(scenario));
        let router = app(shared.clone(), controls);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%error, "emulator server stopped");
            }
        });
        Ok(Self {
            shared,
            addr,
            server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL of `region`'s App and Query API host (stands in for `https://mixpanel.com`,
    /// `https://eu.mixpanel.com`, `https://in.mixpanel.com`).
    pub fn api_url(&self, region: Region) -> String {
        format!("{}{}", self.base_url(), region.api_prefix())
    }

    /// Base URL of `region`'s Raw Export host (stands in for `https://data.mixpanel.com`, …).
    pub fn data_url(&self, region: Region) -> String {
        format!("{}{}", self.base_url(), region.data_prefix())
    }

    pub fn scenario(&self) -> &Scenario {
        &self.shared.scenario
    }

    /// Current members of a cohort, ordered by distinct id.
    pub fn members(&self, project_id: u64, cohort_id: u64) -> Option<Vec<Member>> {
        self.shared.members(project_id, cohort_id)
    }

    /// Adds or updates members; returns the new size (`None`: unknown cohort).
    pub fn add_members(
        &self,
        project_id: u64,
        cohort_id: u64,
        members: Vec<Member>,
    ) -> Option<usize> {
        self.shared
            .change_members(project_id, cohort_id, members, &[])
    }

    pub fn remove_members(
        &self,
        project_id: u64,
        cohort_id: u64,
        distinct_ids: &[&str],
    ) -> Option<usize> {
        let ids: Vec<String> = distinct_ids.iter().map(|s| (*s).to_owned()).collect();
        self.shared
            .change_members(project_id, cohort_id, Vec::new(), &ids)
    }

    pub fn add_destination(&self, destination: scenario::Destination) {
        self.shared.sender.add_destination(destination);
    }

    /// Runs one cohort sync to the destination now, as Mixpanel's schedule would.
    pub async fn run_sync(&self, destination_id: &str) -> Result<RunOutcome, SenderError> {
        run_sync(&self.shared, destination_id).await
    }

    pub fn sync_state(&self, destination_id: &str) -> Option<SyncState> {
        self.shared.sender.state(destination_id)
    }

    pub fn deliveries(&self, destination_id: &str) -> Vec<Delivery> {
        self.shared.sender.deliveries(destination_id)
    }

    pub fn resume_sync(&self, destination_id: &str) -> bool {
        self.shared.sender.resume(destination_id)
    }

    pub fn expire_snapshot(&self, destination_id: &str) -> bool {
        self.shared.sender.expire_snapshot(destination_id)
    }

    /// The last 1000 requests to Mixpanel's APIs (not the `/_emulator/` controls), oldest
    /// first: which method and path a client used.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.shared.requests()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    pub fn reset_limits(&self) {
        self.shared.limiter.reset();
    }

    /// Runs every destination's sync each `interval`, like Mixpanel's 30-minute schedule.
    pub fn schedule_syncs(&self, interval: std::time::Duration) -> JoinHandle<()> {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                for destination in shared.sender.destinations() {
                    match run_sync(&shared, &destination.id).await {
                        Ok(outcome) => {
                            tracing::info!(destination = %destination.id, ?outcome, "scheduled sync")
                        }
                        Err(error) => {
                            tracing::warn!(destination = %destination.id, %error, "scheduled sync failed")
                        }
                    }
                }
            }
        })
    }
}

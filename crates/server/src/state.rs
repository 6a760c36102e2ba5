use std::sync::Arc;

use uj_storage::Store;

use crate::app_key::AppKey;
use crate::http::RateLimiter;
use crate::services::counters::Counters;
use crate::services::login_throttle::LoginThrottle;
use crate::services::snapshot::Snapshots;

/// What every request handler can reach. Routers clone it for every request and layer, so
/// it is one shared pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// The state to change before serving starts (nothing else holds it yet).
    pub fn before_serving(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.0).expect("the state is changed only before serving")
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub key: AppKey,
    pub public_url: String,
    /// Whether browsers reach us over HTTPS (`Config::https`).
    pub https: bool,
    /// How many proxies' `X-Forwarded-For` entries to trust (`Config::trusted_proxies`).
    pub trusted_proxies: u8,
    pub login_throttle: Arc<LoginThrottle>,
    /// Each client's SDK lookups of public keys that are no project's
    /// (`LoginThrottle::for_public_keys`).
    pub unknown_keys: Arc<LoginThrottle>,
    pub mixpanel: uj_mixpanel::Client,
    /// How long an SDK request (and `/readyz`) may take (`sdk_timeout_secs`).
    pub sdk_timeout: std::time::Duration,
    /// How long a REST request or a dashboard page may take (`request_timeout_secs`).
    pub request_timeout: std::time::Duration,
    /// Each public key's request budget (`sdk_requests_per_minute`).
    pub sdk_limiter: Arc<RateLimiter>,
    /// Each project's REST request budget (`api_requests_per_minute`).
    pub api_limiter: Arc<RateLimiter>,
    /// Suppressions and app events counted in memory, flushed in the background.
    pub counters: Arc<Counters>,
    /// Each project's rules as the SDK path reads them, kept for a second.
    pub snapshots: Arc<Snapshots>,
    /// One user's SDK decisions one after the other (`services::pacing::UserTurns`).
    pub user_turns: crate::services::pacing::UserTurns,
    /// The erases of trait keys taken off an allowlist, running in the background.
    pub trait_erasures: Arc<crate::services::settings::TraitErasures>,
    /// Request counts and latencies (`UJ_METRICS_BIND`).
    pub metrics: crate::http::metrics::Metrics,
    /// Issues invites in groups (one statement for all waiting at once).
    pub invite_writer: Arc<crate::services::invite_writer::InviteWriter>,
    /// One refused, unread webhook delivery a minute per project and status is recorded
    /// (`cohort_sync::note_refusal`); keyed by `project:status`.
    pub refusal_notes: governor::DefaultKeyedRateLimiter<String>,
    /// Each project's webhook deliveries being received (`cohort_sync::DELIVERIES_AT_ONCE`).
    pub deliveries_in_flight: Arc<crate::services::cohort_sync::DeliveriesInFlight>,
    /// What became of a SQLite file deleted or replaced under the server, once it was seen
    /// (`startup::watch_database_file`): every request but `/healthz` is then refused.
    pub database_lost: std::sync::OnceLock<&'static str>,
    /// Work a request started behind its answer (the reads after a Mixpanel connect): a
    /// stop waits a few seconds for it.
    pub background: tokio_util::task::TaskTracker,
    /// The simulated Mixpanel of `userjourneys demo` (its panel); `None` otherwise.
    pub demo: Option<Arc<mixpanel_emulator::Emulator>>,
}

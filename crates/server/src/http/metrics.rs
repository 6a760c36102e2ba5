//! Request counts and latencies in the OpenMetrics text format, for Prometheus: counted for
//! every answer of the server (`super::outermost`), served on a listener of their own
//! (`UJ_METRICS_BIND`, off by default) that only the operator's network should reach.

use std::time::Instant;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// Which part of the server a request reached.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Api {
    /// `/sdk/…`, the apps' calls.
    sdk,
    /// `OPTIONS /sdk/…`: a web app's CORS preflights, answered before any key is read.
    /// Apart from `sdk`, whose rate they would double and whose latencies they would halve.
    sdk_preflight,
    /// `/api/…`, the REST API and its reference.
    rest,
    /// `/webhooks/…`, Mixpanel's cohort sync deliveries.
    webhook,
    /// `/i/…`, `/interviews/…`, `/launch/…`: respondents opening interviews.
    link,
    /// `/healthz`, `/readyz`.
    health,
    /// Everything else: the dashboard's pages and assets, unknown addresses.
    dashboard,
}

impl Api {
    pub fn of(method: &Method, path: &str) -> Self {
        // `//sdk/…` is answered by its API, as `/sdk/…` is (an app's base URL ending in a
        // slash), and counted so too. (`//i/…` is the dashboard's unknown page.)
        let (_, api_path) = super::without_extra_slashes(path);
        let under = |root: &str| {
            api_path
                .strip_prefix(root)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/sdk") {
            // As `outermost` answers them: every `OPTIONS` below `/sdk/` is a preflight.
            match *method == Method::OPTIONS && api_path.starts_with("/sdk/") {
                true => Api::sdk_preflight,
                false => Api::sdk,
            }
        } else if under("/api") {
            Api::rest
        } else if under("/webhooks") {
            Api::webhook
        } else if super::launch::is_link_path(path) {
            Api::link
        } else if path == "/healthz" || path == "/readyz" {
            Api::health
        } else {
            Api::dashboard
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    api: Api,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reached {
    api: Api,
}

type Latencies = Family<Reached, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Issued {
    /// `config` (a config load's audience prompt), `event` (an app event's prompt) or
    /// `link` (a direct link, started at once).
    via: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Delivered {
    action: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Moved {
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Unreadable {
    /// `malformed` (answered 400) or `too_large` (431 for headers, 414 for an address).
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Looked {
    /// `found`, `unknown` (no project's), or `throttled` (not looked up: its client's
    /// unknown keys are spent).
    result: &'static str,
}

/// The server's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<Answered, Counter>,
    durations: Latencies,
    invites: Family<Issued, Counter>,
    starts: Counter,
    deliveries: Family<Delivered, Counter>,
    members: Family<Moved, Counter>,
    unreadable: Family<Unreadable, Counter>,
    key_lookups: Family<Looked, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("uj");
        let requests = Family::<Answered, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by part of the server and HTTP status",
            requests.clone(),
        );
        // 0.5 ms to about 8 s, doubling.
        let durations: Latencies =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 18)));
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's headers to its answer's, by part of the server",
            durations.clone(),
        );
        let invites = Family::<Issued, Counter>::default();
        registry.register(
            "invites_issued",
            "Invites issued, by the call that issued them",
            invites.clone(),
        );
        let starts = Counter::default();
        registry.register(
            "starts",
            "Interviews started (invites accepted, links opened)",
            starts.clone(),
        );
        let deliveries = Family::<Delivered, Counter>::default();
        registry.register(
            "cohort_sync_deliveries",
            "Cohort sync deliveries read, by action and outcome (as in the sync history)",
            deliveries.clone(),
        );
        let members = Family::<Moved, Counter>::default();
        registry.register(
            "cohort_sync_members",
            "Audience members that entered or left with a delivery",
            members.clone(),
        );
        let unreadable = Family::<Unreadable, Counter>::default();
        registry.register(
            "http_unreadable_requests",
            "Requests the HTTP layer refused before the server read them, by reason",
            unreadable.clone(),
        );
        let key_lookups = Family::<Looked, Counter>::default();
        registry.register(
            "sdk_key_lookups",
            "SDK public keys looked up in the database (not those found in the last second), by result; throttled ones were not",
            key_lookups.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            invites,
            starts,
            deliveries,
            members,
            unreadable,
            key_lookups,
        }
    }
}

impl Metrics {
    /// One answer of `api` with `status`, to a request whose headers came at `started`.
    pub fn observe(&self, api: Api, status: u16, started: Instant) {
        self.requests.get_or_create(&Answered { api, status }).inc();
        self.durations
            .get_or_create(&Reached { api })
            .observe(started.elapsed().as_secs_f64());
    }

    /// An invite issued `via` a config load, an app event or a link ([`Issued`]).
    pub fn invite_issued(&self, via: &'static str) {
        self.invites.get_or_create(&Issued { via }).inc();
    }

    /// An interview started.
    pub fn started(&self) {
        self.starts.inc();
    }

    /// A cohort sync delivery read and recorded in the sync history.
    pub fn delivery(&self, action: &'static str, outcome: &'static str, added: i64, removed: i64) {
        self.deliveries
            .get_or_create(&Delivered { action, outcome })
            .inc();
        for (change, count) in [("added", added), ("removed", removed)] {
            if let Ok(count @ 1..) = u64::try_from(count) {
                self.members.get_or_create(&Moved { change }).inc_by(count);
            }
        }
    }

    /// A request the HTTP layer refused before it reached the server's code
    /// ([`Unreadable`]).
    pub fn unreadable(&self, reason: &'static str) {
        self.unreadable.get_or_create(&Unreadable { reason }).inc();
    }

    /// An SDK request's public key looked up, or refused unread ([`Looked`]).
    pub fn key_lookup(&self, result: &'static str) {
        self.key_lookups.get_or_create(&Looked { result }).inc();
    }

    /// Every metric, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The metrics listener's one route: `GET /metrics`.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(serve))
        .with_state(state)
}

async fn serve(State(state): State<AppState>) -> Response {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_counts_for_its_part_of_the_server() {
        for (path, api) in [
            ("/sdk/v1/config", Api::sdk),
            ("/api/v1/studies", Api::rest),
            ("/api/openapi.json", Api::rest),
            ("/webhooks/mixpanel/abc", Api::webhook),
            ("/i/abc", Api::link),
            ("/interviews/abc", Api::link),
            ("/launch/abc", Api::link),
            ("/healthz", Api::health),
            ("/readyz", Api::health),
            ("/", Api::dashboard),
            ("/images/x", Api::dashboard),
            ("/sdkx", Api::dashboard),
            ("/apis", Api::dashboard),
        ] {
            assert_eq!(Api::of(&Method::GET, path), api, "{path}");
        }
        assert_eq!(
            Api::of(&Method::OPTIONS, "/sdk/v1/config"),
            Api::sdk_preflight
        );
        assert_eq!(Api::of(&Method::OPTIONS, "/api/v1/studies"), Api::rest);
    }
}

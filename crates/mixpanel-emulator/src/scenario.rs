//! The scenario: everything the emulated Mixpanel knows at start. Loaded from a JSON file
//! (see `scenarios/example.json` and the README) or built in code by tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Region;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub organizations: Vec<Organization>,
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccount>,
    #[serde(default)]
    pub projects: Vec<Project>,
    /// Cohort-sync webhook destinations configured at start (more can be added at run time).
    #[serde(default)]
    pub destinations: Vec<Destination>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub sender: SenderSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// e.g. `acme-connector.3fa2c1.mp-service-account`
    pub username: String,
    pub secret: String,
    #[serde(default = "default_user_id")]
    pub user_id: u64,
    pub organization_id: u64,
    /// The cluster the account authenticates against; other clusters answer 401.
    pub home_region: Region,
    /// Further clusters where the account is also accepted (Mixpanel's behaviour here is
    /// unconfirmed; by default an account is bound to its home cluster).
    #[serde(default)]
    pub also_valid_in: Vec<Region>,
    /// After this instant every request with the account is refused with 401.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub grants: Vec<Grant>,
}

fn default_user_id() -> u64 {
    4_417_001
}

impl ServiceAccount {
    pub fn valid_in(&self, region: Region) -> bool {
        self.home_region == region || self.also_valid_in.contains(&region)
    }
}

/// A project role given to a service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Analyst,
    Consumer,
}

impl Role {
    pub fn display_name(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
            Role::Analyst => "Analyst",
            Role::Consumer => "Consumer",
        }
    }

    /// The project permissions `/api/app/me` lists for this role.
    pub fn default_permissions(self) -> Vec<String> {
        let mut permissions = vec!["view_base_reports"];
        if self != Role::Consumer {
            permissions.push("export_data");
        }
        if matches!(self, Role::Owner | Role::Admin) {
            permissions.push("manage_project");
        }
        permissions.into_iter().map(String::from).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub project_id: u64,
    pub role: Role,
    /// Replaces the role's default permissions (e.g. `[]` for a project the account can see
    /// but not query).
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

impl Grant {
    pub fn permissions(&self) -> Vec<String> {
        self.permissions
            .clone()
            .unwrap_or_else(|| self.role.default_permissions())
    }

    pub fn can_query(&self) -> bool {
        self.permissions().iter().any(|p| p == "view_base_reports")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub id: u64,
    pub name: String,
    pub organization_id: u64,
    pub region: Region,
    #[serde(default = "utc")]
    pub timezone: String,
    /// What `/api/app/me` reports as `domain`; defaults to the region's host. `""`
    /// reproduces projects whose domain is empty.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default = "project_type", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data_views: Vec<DataView>,
    #[serde(default)]
    pub cohorts: Vec<Cohort>,
    /// Events served by the Raw Export API and counted by `/events/names`.
    #[serde(default)]
    pub events: Vec<Event>,
}

fn utc() -> String {
    "UTC".into()
}

fn project_type() -> String {
    "PROJECT".into()
}

impl Project {
    pub fn domain(&self) -> String {
        self.domain
            .clone()
            .unwrap_or_else(|| self.region.domain().to_owned())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataView {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub is_global: bool,
    #[serde(default)]
    pub is_default: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cohort {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub is_visible: bool,
    /// `YYYY-MM-DD HH:MM:SS`, as Mixpanel lists it.
    #[serde(default = "created")]
    pub created: String,
    #[serde(default)]
    pub members: Vec<Member>,
    /// Adds generated members (`{prefix}{n}`), for large cohorts in demos and benchmarks.
    #[serde(default)]
    pub generate: Option<GeneratedMembers>,
}

fn yes() -> bool {
    true
}

fn created() -> String {
    "2026-01-05 09:30:00".into()
}

impl Cohort {
    /// Explicit members followed by generated ones.
    pub fn all_members(&self) -> Vec<Member> {
        let mut members = self.members.clone();
        if let Some(generated) = &self.generate {
            members.extend(generated.members());
        }
        members
    }
}

/// A cohort member: a distinct id and its profile properties (`$email`, `$first_name`,
/// `$last_name`, `$phone`, `reference_id`, anything else).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub distinct_id: String,
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Whether the member has a user profile (`include_all_users=false` hides those without).
    #[serde(default = "yes")]
    pub has_profile: bool,
}

impl Member {
    pub fn new(distinct_id: impl Into<String>) -> Self {
        Self {
            distinct_id: distinct_id.into(),
            properties: Map::new(),
            has_profile: true,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratedMembers {
    pub count: usize,
    #[serde(default = "member_prefix")]
    pub prefix: String,
    /// Every n-th generated member gets a `reference_id` (`ref_{n}`); none when absent.
    #[serde(default)]
    pub reference_id_every: Option<usize>,
}

fn member_prefix() -> String {
    "user_".into()
}

impl GeneratedMembers {
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        (1..=self.count).map(move |n| {
            let mut member = Member::new(format!("{}{n}", self.prefix))
                .with("$email", format!("{}{n}@example.com", self.prefix))
                .with("plan", if n % 3 == 0 { "pro" } else { "free" });
            if self
                .reference_id_every
                .is_some_and(|every| every > 0 && n % every == 0)
            {
                member = member.with("reference_id", format!("ref_{n}"));
            }
            member
        })
    }
}

/// An event as the Raw Export API returns it: `{"event", "properties": {"time", "distinct_id", …}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub event: String,
    pub properties: Map<String, Value>,
}

impl Event {
    /// The event's time in seconds since the epoch (`properties.time`).
    pub fn time(&self) -> i64 {
        self.properties
            .get("time")
            .and_then(Value::as_i64)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub id: String,
    pub project_id: u64,
    pub cohort_id: u64,
    pub url: String,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// Mixpanel's documented limits, per project. Lower them in a scenario to provoke 429s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub query_per_hour: u32,
    pub query_concurrent: u32,
    pub export_per_hour: u32,
    pub export_per_second: u32,
    pub export_concurrent: u32,
    /// Results per Engage page.
    pub engage_page_size: usize,
    /// Sent as `Retry-After` on 429 when set (Mixpanel does not reliably send it).
    pub retry_after_seconds: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            query_per_hour: 60,
            query_concurrent: 5,
            export_per_hour: 60,
            export_per_second: 3,
            export_concurrent: 100,
            engage_page_size: 1000,
            retry_after_seconds: None,
        }
    }
}

/// How the cohort-sync sender behaves; defaults follow Mixpanel's documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenderSettings {
    /// Members per `members` page and per `add_members`/`remove_members` batch.
    pub page_size: usize,
    /// Retries after a 429, 5xx or network error, before the run is abandoned.
    pub retries: u32,
    /// First backoff; doubles on each retry (2 s gives 2+4+8+16+32 ≈ a minute).
    pub backoff_initial_ms: u64,
    /// A snapshot older than this forces a full `members` sync.
    pub snapshot_ttl_hours: u64,
    pub request_timeout_ms: u64,
    /// Send `mixpanel_project_id` and `mixpanel_cohort_id` as JSON numbers instead of strings.
    pub ids_as_numbers: bool,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            page_size: 1000,
            retries: 5,
            backoff_initial_ms: 2000,
            snapshot_ttl_hours: 72,
            request_timeout_ms: 30_000,
            ids_as_numbers: false,
        }
    }
}

/// Why a scenario file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid JSON scenario: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path} is not a valid TOML scenario: {source}")]
    Toml {
        path: String,
        source: toml::de::Error,
    },
}

impl Scenario {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Loads a scenario file: TOML when it ends in `.toml`, JSON otherwise.
    pub fn load(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        if path.extension().is_some_and(|ext| ext == "toml") {
            Self::from_toml(&text).map_err(|source| ScenarioError::Toml {
                path: shown,
                source,
            })
        } else {
            Self::from_json(&text).map_err(|source| ScenarioError::Json {
                path: shown,
                source,
            })
        }
    }

    pub fn project(&self, id: u64) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    pub fn organization(&self, id: u64) -> Option<&Organization> {
        self.organizations.iter().find(|o| o.id == id)
    }

    /// Members of every cohort, keyed by (project id, cohort id).
    pub(crate) fn initial_memberships(&self) -> BTreeMap<(u64, u64), Vec<Member>> {
        self.projects
            .iter()
            .flat_map(|p| {
                p.cohorts
                    .iter()
                    .map(move |c| ((p.id, c.id), c.all_members()))
            })
            .collect()
    }
}

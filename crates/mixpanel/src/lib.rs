//! UserJourneys' client for Mixpanel's APIs with a service account: project and region
//! discovery (`/api/app/me` on every cluster), cohorts, and top event names.
//!
//! Base URLs are configuration, so tests and the demo point it at the Mixpanel emulator.
//! Credentials are `SecretString`s: never logged, never in error messages.

#![forbid(unsafe_code)]

mod budget;
mod discovery;
mod error;
mod query;
mod region;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub use budget::{QUERIES_AT_ONCE, QUERY_BURST, QUERY_EVERY};
pub use discovery::{DiscoveredProject, Discovery};
pub use error::MixpanelError;
pub use query::{Cohort, ProjectRef};
pub use region::Region;

/// Where each cluster's App/Query API and Raw Export API live.
#[derive(Debug, Clone)]
pub struct BaseUrls {
    pub us_api: String,
    pub eu_api: String,
    pub in_api: String,
    pub us_data: String,
    pub eu_data: String,
    pub in_data: String,
}

impl Default for BaseUrls {
    /// Mixpanel's production hosts.
    fn default() -> Self {
        Self {
            us_api: "https://mixpanel.com".into(),
            eu_api: "https://eu.mixpanel.com".into(),
            in_api: "https://in.mixpanel.com".into(),
            us_data: "https://data.mixpanel.com".into(),
            eu_data: "https://data-eu.mixpanel.com".into(),
            in_data: "https://data-in.mixpanel.com".into(),
        }
    }
}

impl BaseUrls {
    pub fn api(&self, region: Region) -> &str {
        let url = match region {
            Region::Us => &self.us_api,
            Region::Eu => &self.eu_api,
            Region::In => &self.in_api,
        };
        url.trim_end_matches('/')
    }

    pub fn data(&self, region: Region) -> &str {
        let url = match region {
            Region::Us => &self.us_data,
            Region::Eu => &self.eu_data,
            Region::In => &self.in_data,
        };
        url.trim_end_matches('/')
    }
}

/// A service account's username and secret.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub secret: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The most of one answer the client reads. `/api/app/me` of a large organisation and a
/// project's cohort list stay far below; an answer past it is a fault, not data.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Reads `response`'s body, refusing one longer than `limit` bytes as soon as it says so
/// or grows past it, so a broken answer cannot fill the server's memory.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, MixpanelError> {
    let status = response.status().as_u16();
    let too_large = || MixpanelError::Unexpected {
        status,
        detail: format!("an answer longer than {} MiB", limit >> 20),
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(MixpanelError::from_transport)?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How the client waits and retries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Per request, connection included.
    pub timeout: Duration,
    /// Retries after a 429, a 5xx or a dropped connection before giving up with
    /// `RateLimited` / `Unreachable`.
    pub retries: u32,
    /// First backoff when Mixpanel sends no `Retry-After`; doubles per retry.
    pub backoff: Duration,
    /// The longest `Retry-After` honoured inside one call; longer waits are reported.
    pub max_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    urls: BaseUrls,
    settings: Settings,
    /// Shared by the client's clones: one budget per process.
    query_budget: std::sync::Arc<budget::QueryBudget>,
}

impl Client {
    pub fn new(urls: BaseUrls, settings: Settings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("UserJourneys/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with static settings");
        Self {
            http,
            urls,
            settings,
            query_budget: Default::default(),
        }
    }

    pub fn urls(&self) -> &BaseUrls {
        &self.urls
    }

    /// Reads a successful answer as JSON, at most [`MAX_ANSWER_BYTES`] of it.
    async fn json(response: reqwest::Response) -> Result<serde_json::Value, MixpanelError> {
        let status = response.status().as_u16();
        let body = read_capped(response, MAX_ANSWER_BYTES).await?;
        serde_json::from_slice(&body).map_err(|e| MixpanelError::Unexpected {
            status,
            detail: format!("not JSON: {e}"),
        })
    }

    /// Sends `request` with the service account, retrying 429, 5xx and connections dropped
    /// before the answer as Mixpanel asks. A Query API call's first attempt was paid for by
    /// its caller; each retry spends one more from the `budget` of its project (Mixpanel
    /// counts retries too), and one the budget refuses ends with the failure it retried.
    async fn send(
        &self,
        credentials: &Credentials,
        budget: Option<&str>,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, MixpanelError> {
        let mut backoff = self.settings.backoff;
        let mut attempt = 0;
        let mut retrying: Option<MixpanelError> = None;
        loop {
            if let (Some(project), Some(failure)) = (budget, retrying.take()) {
                if self.query_budget.spend(project, 1).is_err() {
                    return Err(failure);
                }
            }
            let sent = request()
                .basic_auth(
                    &credentials.username,
                    Some(credentials.secret.expose_secret()),
                )
                .header("accept", "application/json")
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                // A connection refused or dropped before the answer (a reset, a cluster
                // restarting) is retried as a 5xx is (reference §8); every call of ours only
                // reads. A timeout is not: it has waited its whole time already.
                Err(error)
                    if (error.is_connect() || error.is_request())
                        && !error.is_timeout()
                        && attempt < self.settings.retries =>
                {
                    tracing::debug!(%error, wait_ms = backoff.as_millis() as u64, "Mixpanel's connection failed; retrying");
                    retrying = Some(MixpanelError::Unreachable("connection failed".into()));
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                    backoff *= 2;
                    continue;
                }
                Err(error) => return Err(MixpanelError::from_transport(error)),
            };
            let status = response.status();
            let retryable = status.as_u16() == 429 || status.is_server_error();
            if !retryable {
                return Ok(response);
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let wait = retry_after.unwrap_or(backoff);
            let failure = if status.as_u16() == 429 {
                MixpanelError::RateLimited { retry_after }
            } else {
                MixpanelError::Unreachable(format!("Mixpanel answered {status}"))
            };
            if attempt >= self.settings.retries || wait > self.settings.max_wait {
                return Err(failure);
            }
            tracing::debug!(%status, wait_ms = wait.as_millis() as u64, "Mixpanel asked us to retry");
            retrying = Some(failure);
            tokio::time::sleep(wait).await;
            attempt += 1;
            backoff *= 2;
        }
    }
}

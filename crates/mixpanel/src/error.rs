use std::time::Duration;

/// What went wrong talking to Mixpanel, in the terms a customer can act on.
#[derive(Debug, thiserror::Error)]
pub enum MixpanelError {
    /// Wrong username or secret, an expired account, or (on one cluster) an account that
    /// lives on another.
    #[error("Mixpanel rejected the service account credentials")]
    InvalidCredentials,
    /// The credentials work but lack access to what was asked.
    #[error("the service account lacks permission: {0}")]
    MissingPermission(String),
    /// 402: the project's plan does not include what was asked.
    #[error("the project's Mixpanel plan does not allow this: {0}")]
    PlanLimited(String),
    #[error("Mixpanel's rate limit was reached")]
    RateLimited { retry_after: Option<Duration> },
    /// Network failure, timeout, or Mixpanel failing on its side.
    #[error("Mixpanel could not be reached: {0}")]
    Unreachable(String),
    /// An answer we do not understand (a bug on one side or the other).
    #[error("unexpected answer from Mixpanel ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

impl MixpanelError {
    pub(crate) fn from_transport(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        // Why, for the operator (a wrong base URL, DNS, TLS, a proxy): the error and its
        // causes. reqwest's message names the URL, never the credentials (sent in a header).
        let mut cause = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            cause.push_str(": ");
            cause.push_str(&inner.to_string());
            source = inner.source();
        }
        tracing::warn!(%cause, "Mixpanel could not be reached ({kind})");
        MixpanelError::Unreachable(kind.to_owned())
    }

    /// Maps a non-success answer of a Query or App API call.
    pub(crate) async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        // Only the start of an error's text is kept; a longer one is read no further.
        let body = crate::read_capped(response, 64 << 10)
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let detail: String = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(body)
            .chars()
            .take(300)
            .collect();
        match status {
            401 => MixpanelError::InvalidCredentials,
            400 if detail.contains("Unable to authenticate request") => {
                MixpanelError::InvalidCredentials
            }
            402 => MixpanelError::PlanLimited(detail),
            403 => MixpanelError::MissingPermission(detail),
            429 => MixpanelError::RateLimited { retry_after: None },
            500..=599 => MixpanelError::Unreachable(format!("Mixpanel answered {status}")),
            _ => MixpanelError::Unexpected { status, detail },
        }
    }
}

#[cfg(test)]
mod tests {
    use mixpanel_emulator::{Emulator, Region, Scenario};
    use serde_json::json;

    use super::MixpanelError;

    /// Older Query endpoints refuse bad or expired credentials with a 400 that says "Unable
    /// to authenticate request" (reference §2.3; the emulator answers so on its legacy
    /// `/api/2.0/` paths): that is invalid credentials, while any other 400 is not.
    #[tokio::test]
    async fn a_400_unable_to_authenticate_request_is_invalid_credentials() {
        let scenario = json!({
            "organizations": [{"id": 1, "name": "Acme"}],
            "service_accounts": [{"username": "acme", "secret": "s", "organization_id": 1,
                                  "home_region": "eu", "grants": [{"project_id": 10, "role": "analyst"}]}],
            "projects": [{"id": 10, "name": "Shop", "organization_id": 1, "region": "eu"}]
        });
        let emulator = Emulator::start(Scenario::from_json(&scenario.to_string()).unwrap())
            .await
            .unwrap();
        let url = format!("{}/api/2.0/cohorts/list", emulator.api_url(Region::Eu));
        let http = reqwest::Client::new();
        let refused = http
            .post(&url)
            .query(&[("project_id", "10")])
            .basic_auth("acme", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 400);
        let error = MixpanelError::from_response(refused).await;
        assert!(
            matches!(error, MixpanelError::InvalidCredentials),
            "{error:?}"
        );

        let no_project = http
            .post(&url)
            .basic_auth("acme", Some("s"))
            .send()
            .await
            .unwrap();
        let error = MixpanelError::from_response(no_project).await;
        assert!(
            matches!(&error, MixpanelError::Unexpected { status: 400, detail } if detail.contains("project_id")),
            "{error:?}"
        );
    }
}

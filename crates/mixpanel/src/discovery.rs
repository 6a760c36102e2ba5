//! Finding the service account's projects and their regions without asking the customer:
//! `/api/app/me` on all three clusters at once, merged (reference §2.4).

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Client, Credentials, MixpanelError, Region};

/// A project the service account can see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredProject {
    /// Mixpanel's project id (digits).
    pub id: String,
    pub name: String,
    pub region: Region,
    pub organization: String,
    pub timezone: String,
    /// The global (or default) data view, for projects that use data views.
    pub workspace_id: Option<String>,
    /// Whether UserJourneys can work with it; when not, `reason` says what to fix.
    pub selectable: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Discovery {
    /// De-duplicated by id, ordered by name.
    pub projects: Vec<DiscoveredProject>,
}

impl Discovery {
    pub fn selectable(&self) -> impl Iterator<Item = &DiscoveredProject> {
        self.projects.iter().filter(|p| p.selectable)
    }
}

fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The projects of one cluster's `/me` answer.
fn projects_of(body: &Value, answered_by: Region) -> Vec<DiscoveredProject> {
    let results = &body["results"];
    let Some(projects) = results["projects"].as_object() else {
        return Vec::new();
    };
    let workspaces: Vec<&Value> = results["workspaces"]
        .as_object()
        .map(|w| w.values().collect())
        .unwrap_or_default();
    projects
        .iter()
        .map(|(id, project)| {
            let region = project["domain"]
                .as_str()
                .and_then(Region::from_domain)
                .unwrap_or(answered_by);
            let organization = id_of(&project["organization_id"])
                .and_then(|org| results["organizations"][&org]["name"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let views: Vec<&&Value> = workspaces
                .iter()
                .filter(|w| id_of(&w["project_id"]).as_deref() == Some(id))
                .collect();
            let workspace_id = views
                .iter()
                .find(|w| w["is_global"] == true)
                .or_else(|| views.iter().find(|w| w["is_default"] == true))
                .and_then(|w| id_of(&w["id"]));
            let can_view = project["permissions"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p == "view_base_reports"));
            let rollup = project["type"].as_str() == Some("ROLLUP");
            let reason = if rollup {
                Some("Roll-up projects cannot be connected; pick the project itself.".to_owned())
            } else if !can_view {
                Some("The service account cannot read reports in this project: give it the Analyst role there.".to_owned())
            } else {
                None
            };
            DiscoveredProject {
                id: id.clone(),
                name: project["name"].as_str().unwrap_or(id).to_owned(),
                region,
                organization,
                timezone: project["timezone"].as_str().unwrap_or("UTC").to_owned(),
                workspace_id,
                selectable: reason.is_none(),
                reason,
            }
        })
        .collect()
}

/// Why a project on `region` cannot be read with an account that cluster refuses (no
/// final stop: a problem's message goes on after it).
fn not_accepted_in(region: Region) -> String {
    format!(
        "Mixpanel's {region} servers, where this project's data lives, do not accept this service account; use one that works in the {region} region"
    )
}

impl Client {
    /// `GET /api/app/me` on one cluster.
    async fn me(&self, credentials: &Credentials, region: Region) -> Result<Value, MixpanelError> {
        let url = format!("{}/api/app/me", self.urls.api(region));
        let response = self
            .send(credentials, || {
                self.http
                    .get(&url)
                    .query(&[("include_workspace_users", "false")])
            })
            .await?;
        if !response.status().is_success() {
            return Err(MixpanelError::from_response(response).await);
        }
        Self::json(response).await
    }

    /// Asks every cluster at once and merges the answers. A 401 from some clusters is
    /// normal (an account lives on one); only when none answers is it an error:
    /// any 403 → missing permission, any network failure → unreachable, else invalid
    /// credentials.
    pub async fn discover(&self, credentials: &Credentials) -> Result<Discovery, MixpanelError> {
        let answers = join_all(
            Region::ALL.map(|region| async move { (region, self.me(credentials, region).await) }),
        )
        .await;
        let mut projects: Vec<DiscoveredProject> = Vec::new();
        let mut errors = Vec::new();
        let mut answered = false;
        let mut refused_by = Vec::new();
        for (region, answer) in answers {
            match answer {
                Ok(body) => {
                    answered = true;
                    for project in projects_of(&body, region) {
                        if !projects.iter().any(|p| p.id == project.id) {
                            projects.push(project);
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(region = region.as_str(), %error, "no discovery answer");
                    if matches!(error, MixpanelError::InvalidCredentials) {
                        refused_by.push(region);
                    }
                    errors.push(error);
                }
            }
        }
        if !answered {
            let forbidden = errors.iter().position(|e| {
                matches!(
                    e,
                    MixpanelError::MissingPermission(_) | MixpanelError::PlanLimited(_)
                )
            });
            let unreachable = errors.iter().position(|e| {
                matches!(
                    e,
                    MixpanelError::Unreachable(_) | MixpanelError::RateLimited { .. }
                )
            });
            let chosen = forbidden.or(unreachable);
            return Err(match chosen {
                Some(index) => errors.swap_remove(index),
                None if errors
                    .iter()
                    .all(|e| matches!(e, MixpanelError::InvalidCredentials)) =>
                {
                    MixpanelError::InvalidCredentials
                }
                None => errors.swap_remove(0),
            });
        }
        // Listed by one cluster, living on another that refuses the account: it can be seen
        // but not read (every later call goes to the project's own cluster).
        for project in &mut projects {
            if project.selectable && refused_by.contains(&project.region) {
                project.selectable = false;
                project.reason = Some(format!("{}.", not_accepted_in(project.region)));
            }
        }
        projects.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(Discovery { projects })
    }

    /// Checks that the project's own cluster accepts the account and lists the project: what
    /// connecting it needs (discovery may have seen it through another cluster).
    pub async fn confirm(
        &self,
        credentials: &Credentials,
        region: Region,
        project_id: &str,
    ) -> Result<(), MixpanelError> {
        match self.verify(credentials, region, project_id).await {
            Err(MixpanelError::InvalidCredentials) => {
                Err(MixpanelError::MissingPermission(not_accepted_in(region)))
            }
            other => other,
        }
    }

    /// Re-checks credentials on the connected project's cluster: Ok when the project is
    /// still listed for this account.
    pub async fn verify(
        &self,
        credentials: &Credentials,
        region: Region,
        project_id: &str,
    ) -> Result<(), MixpanelError> {
        let body = self.me(credentials, region).await?;
        if body["results"]["projects"].get(project_id).is_some() {
            Ok(())
        } else {
            Err(MixpanelError::MissingPermission(
                "the service account no longer has access to the connected project".into(),
            ))
        }
    }
}

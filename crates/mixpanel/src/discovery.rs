//! Finding the service account's projects and their regions without asking the customer:
//! `/api/app/me` on all three clusters at once, merged (reference §2.4).

use std::collections::HashMap;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use uj_domain::cohort_sync::NAME_CHARS;

use crate::query::shown;
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
    /// Other clusters that list it without naming its cluster (no `domain`) as the one that
    /// gave `region` did: which one holds its data is found when it is connected
    /// ([`Client::confirm`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsure_regions: Vec<Region>,
}

#[derive(Debug)]
pub struct Discovery {
    /// De-duplicated by id, ordered by name.
    pub projects: Vec<DiscoveredProject>,
    /// Why a cluster that may accept the account did not answer (a failure, not a
    /// refusal), when one did not: `projects` may then be short of what the account sees.
    pub incomplete: Option<MixpanelError>,
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

/// The projects of one cluster's `/me` answer, each with whether its `domain` named its
/// cluster (else it is the one that answered).
fn projects_of(body: &Value, answered_by: Region) -> Vec<(DiscoveredProject, bool)> {
    let results = &body["results"];
    let Some(projects) = results["projects"].as_object() else {
        return Vec::new();
    };
    // Each project's data views, gathered in one pass: an account may see thousands.
    let mut views_of: HashMap<String, Vec<&Value>> = HashMap::new();
    for view in results["workspaces"]
        .as_object()
        .into_iter()
        .flat_map(|w| w.values())
    {
        if let Some(project) = id_of(&view["project_id"]) {
            views_of.entry(project).or_default().push(view);
        }
    }
    projects
        .iter()
        .map(|(id, project)| {
            let named = project["domain"].as_str().and_then(Region::from_domain);
            let region = named.unwrap_or(answered_by);
            let organization = id_of(&project["organization_id"])
                .and_then(|org| shown(&results["organizations"][&org]["name"], NAME_CHARS))
                .unwrap_or_default();
            let views = views_of.get(id).map_or(&[][..], Vec::as_slice);
            let workspace_id = views
                .iter()
                .find(|w| w["is_global"] == true)
                .or_else(|| views.iter().find(|w| w["is_default"] == true))
                .and_then(|w| id_of(&w["id"]));
            // Only a list of permissions without the one reports need rules a project out:
            // `/me`'s schema is not published, and an answer without the list (or with it in
            // another shape) says nothing against the account; reading its cohorts will.
            let can_view = project["permissions"]
                .as_array()
                .is_none_or(|p| p.iter().any(|p| p == "view_base_reports"));
            let rollup = project["type"].as_str() == Some("ROLLUP");
            let reason = if rollup {
                Some("Roll-up projects cannot be connected; pick the project itself.".to_owned())
            } else if !can_view {
                Some("The service account cannot read reports in this project: give it the Analyst role there.".to_owned())
            } else {
                None
            };
            let project = DiscoveredProject {
                id: id.clone(),
                name: shown(&project["name"], NAME_CHARS).unwrap_or_else(|| id.clone()),
                region,
                organization,
                timezone: shown(&project["timezone"], NAME_CHARS).unwrap_or_else(|| "UTC".into()),
                workspace_id,
                selectable: reason.is_none(),
                reason,
                unsure_regions: Vec::new(),
            };
            (project, named.is_some())
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
            .send(credentials, None, || {
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
    /// any 403 → missing permission, any network failure → unreachable, any other answer
    /// than a refusal → that answer, else invalid credentials.
    pub async fn discover(&self, credentials: &Credentials) -> Result<Discovery, MixpanelError> {
        let answers = join_all(
            Region::ALL.map(|region| async move { (region, self.me(credentials, region).await) }),
        )
        .await;
        let mut projects: Vec<DiscoveredProject> = Vec::new();
        // Each project's place in `projects`, and whether its `domain` named its cluster.
        let mut seen: HashMap<String, (usize, bool)> = HashMap::new();
        let mut errors = Vec::new();
        let mut answered = false;
        let mut refused_by = Vec::new();
        for (region, answer) in answers {
            match answer {
                Ok(body) => {
                    answered = true;
                    // Clusters answer US first: without a `domain`, a project is taken for
                    // the US one's, as Mixpanel's "treat as US" says, until connecting it
                    // finds its data elsewhere.
                    for (project, named) in projects_of(&body, region) {
                        match seen.get_mut(&project.id) {
                            None => {
                                seen.insert(project.id.clone(), (projects.len(), named));
                                projects.push(project);
                            }
                            // A `domain` is surer than the cluster that listed it.
                            Some((at, known @ false)) if named => {
                                *known = true;
                                projects[*at] = project;
                            }
                            Some((at, false)) => {
                                let listed = &mut projects[*at];
                                if listed.region != region
                                    && !listed.unsure_regions.contains(&region)
                                {
                                    listed.unsure_regions.push(region);
                                }
                            }
                            Some((_, true)) => {}
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
                // Refused everywhere; or some cluster (the account's own, as the others
                // refuse it) answered something else, which is then the error.
                None => match errors
                    .iter()
                    .position(|e| !matches!(e, MixpanelError::InvalidCredentials))
                {
                    Some(index) => errors.swap_remove(index),
                    None => MixpanelError::InvalidCredentials,
                },
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
        let incomplete = errors
            .into_iter()
            .find(|e| !matches!(e, MixpanelError::InvalidCredentials));
        Ok(Discovery {
            projects,
            incomplete,
        })
    }

    /// Checks that the project's own cluster accepts the account and lists the project: what
    /// connecting it needs (discovery may have seen it through another cluster). The
    /// project's cluster: for one listed without a `domain` by several, the first (US
    /// first) whose Query API reads its cohorts (one query of the project's budget each):
    /// every cluster listed it, and what one that does not hold it answers is not
    /// documented (the emulator's is 404), so any refusal moves on to the next; a rate
    /// limit or a failure ends the search, and when none reads, the first cluster's
    /// answer is the error.
    pub async fn confirm(
        &self,
        credentials: &Credentials,
        project: &DiscoveredProject,
    ) -> Result<Region, MixpanelError> {
        let region = project.region;
        match self.verify(credentials, region, &project.id).await {
            Err(MixpanelError::InvalidCredentials) => {
                return Err(MixpanelError::MissingPermission(not_accepted_in(region)))
            }
            other => other?,
        }
        if project.unsure_regions.is_empty() {
            return Ok(region);
        }
        let mut first_refusal = None;
        for region in std::iter::once(region).chain(project.unsure_regions.iter().copied()) {
            let at = crate::ProjectRef {
                id: &project.id,
                region,
                workspace_id: project.workspace_id.as_deref(),
            };
            match self.cohorts(credentials, &at).await {
                Ok(_) => return Ok(region),
                Err(
                    error @ (MixpanelError::RateLimited { .. } | MixpanelError::Unreachable(_)),
                ) => return Err(error),
                Err(refused) => {
                    first_refusal.get_or_insert(refused);
                }
            }
        }
        Err(first_refusal.expect("at least one cluster was asked"))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::projects_of;
    use crate::Region;

    /// A project is ruled out for a missing permission only when `/me` lists its
    /// permissions: without the list (its schema is not published), every project was
    /// shown as needing the Analyst role.
    #[test]
    fn a_project_without_a_permissions_list_can_be_picked() {
        let body = json!({"results": {"projects": {
            "1": {"name": "Listed", "permissions": ["view_base_reports"]},
            "2": {"name": "Without", "permissions": ["view_events"]},
            "3": {"name": "Unlisted"},
            "4": {"name": "Odd", "permissions": "view_base_reports"}
        }}});
        let mut found: Vec<_> = projects_of(&body, Region::Eu)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        let selectable: Vec<_> = found
            .iter()
            .map(|p| (p.name.as_str(), p.selectable))
            .collect();
        assert_eq!(
            selectable,
            [
                ("Listed", true),
                ("Without", false),
                ("Unlisted", true),
                ("Odd", true)
            ]
        );
    }

    /// Each project gets its own global data view, however many projects and views the
    /// account sees (views are grouped by project once, not searched per project).
    #[test]
    fn each_project_gets_its_own_data_view_among_thousands() {
        const PROJECTS: u64 = 5_000;
        let mut projects = serde_json::Map::new();
        let mut workspaces = serde_json::Map::new();
        for id in 1..=PROJECTS {
            projects.insert(
                id.to_string(),
                json!({"name": format!("P{id}"), "permissions": ["view_base_reports"]}),
            );
            for (n, global) in [(0, false), (1, true), (2, false)] {
                let view = id * 10 + n;
                // Project ids as numbers and as strings, as Mixpanel sends either.
                let project = if id % 2 == 0 {
                    json!(id)
                } else {
                    json!(id.to_string())
                };
                workspaces.insert(
                    view.to_string(),
                    json!({"id": view, "project_id": project, "is_global": global}),
                );
            }
        }
        let body = json!({"results": {"projects": projects, "workspaces": workspaces}});
        let found = projects_of(&body, Region::Us);
        assert_eq!(found.len(), PROJECTS as usize);
        for (project, _) in found {
            let id: u64 = project.id.parse().unwrap();
            assert_eq!(project.workspace_id, Some((id * 10 + 1).to_string()));
        }
    }
}

//! Query API reads: the project's cohorts and its top event names. Each call spends from
//! the project's budget of 60 queries an hour.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use uj_domain::cohort_sync::{DESCRIPTION_CHARS, NAME_CHARS};

use crate::{Client, Credentials, MixpanelError, Region};

/// A cohort as `/api/query/cohorts/list` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    pub id: String,
    pub name: String,
    pub description: String,
    pub count: i64,
    pub is_visible: bool,
}

/// The project a query is about.
pub struct ProjectRef<'a> {
    pub id: &'a str,
    pub region: Region,
    pub workspace_id: Option<&'a str>,
}

impl ProjectRef<'_> {
    /// Whose Query budget a call spends: the Mixpanel project, in its region.
    fn budget(&self) -> String {
        format!("{}:{}", self.region.as_str(), self.id)
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![("project_id", self.id.to_owned())];
        if let Some(workspace) = self.workspace_id {
            params.push(("workspace_id", workspace.to_owned()));
        }
        params
    }
}

impl Client {
    /// Calls a Query API endpoint of `project` with `method`, the parameters in the query
    /// string, as its budget allows (`budget.rs`): its first attempt `paid` for already, or
    /// paid here.
    async fn query_json(
        &self,
        credentials: &Credentials,
        project: &ProjectRef<'_>,
        paid: bool,
        method: Method,
        url: String,
        params: Vec<(&'static str, String)>,
    ) -> Result<Value, MixpanelError> {
        let budget = project.budget();
        if !paid {
            // Before waiting for a place: a budget spent is said at once.
            self.query_budget.spend(&budget, 1)?;
        }
        let _place = self.query_budget.place(&budget).await;
        let response = self
            .send(credentials, Some(&budget), || {
                self.http.request(method.clone(), &url).query(&params)
            })
            .await?;
        if !response.status().is_success() {
            return Err(MixpanelError::from_response(response).await);
        }
        Self::json(response).await
    }

    /// The project's cohorts and its `limit` most common event names of the last 31 days:
    /// two queries, paid from its budget together or refused before either is asked.
    pub async fn cohorts_and_event_names(
        &self,
        credentials: &Credentials,
        project: &ProjectRef<'_>,
        limit: u32,
    ) -> Result<(Vec<Cohort>, Vec<String>), MixpanelError> {
        self.query_budget.spend(&project.budget(), 2)?;
        let cohorts = self.read_cohorts(credentials, project, true).await?;
        let names = self
            .read_event_names(credentials, project, limit, true)
            .await?;
        Ok((cohorts, names))
    }

    pub async fn cohorts(
        &self,
        credentials: &Credentials,
        project: &ProjectRef<'_>,
    ) -> Result<Vec<Cohort>, MixpanelError> {
        self.read_cohorts(credentials, project, false).await
    }

    async fn read_cohorts(
        &self,
        credentials: &Credentials,
        project: &ProjectRef<'_>,
        paid: bool,
    ) -> Result<Vec<Cohort>, MixpanelError> {
        let url = format!("{}/api/query/cohorts/list", self.urls.api(project.region));
        // POST as Mixpanel documents it (reference §5.1); GET is only seen to work.
        let body = self
            .query_json(
                credentials,
                project,
                paid,
                Method::POST,
                url,
                project.params(),
            )
            .await?;
        let Some(list) = body.as_array() else {
            return Err(MixpanelError::Unexpected {
                status: 200,
                detail: "cohorts/list is not a list".into(),
            });
        };
        Ok(list
            .iter()
            .filter_map(|c| {
                let id = match &c["id"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return None,
                };
                Some(Cohort {
                    id,
                    name: shown(&c["name"], NAME_CHARS).unwrap_or_default(),
                    description: shown(&c["description"], DESCRIPTION_CHARS).unwrap_or_default(),
                    count: c["count"].as_i64().unwrap_or_default(),
                    is_visible: c["is_visible"].as_i64().is_none_or(|v| v != 0),
                })
            })
            .collect())
    }

    /// The project's most common event names of the last 31 days.
    pub async fn top_event_names(
        &self,
        credentials: &Credentials,
        project: &ProjectRef<'_>,
        limit: u32,
    ) -> Result<Vec<String>, MixpanelError> {
        self.read_event_names(credentials, project, limit, false)
            .await
    }

    async fn read_event_names(
        &self,
        credentials: &Credentials,
        project: &ProjectRef<'_>,
        limit: u32,
        paid: bool,
    ) -> Result<Vec<String>, MixpanelError> {
        let url = format!("{}/api/query/events/names", self.urls.api(project.region));
        let mut params = project.params();
        params.push(("type", "general".into()));
        params.push(("limit", limit.to_string()));
        let body = self
            .query_json(credentials, project, paid, Method::GET, url, params)
            .await?;
        // Only names a rule can wait for, as a rule and an app's event have them (trimmed):
        // the event picker offered names every rule refused, a NUL failed PostgreSQL's whole
        // catalog write, and " Padded" was an entry of its own no app event ever counted.
        let usable = |name: &str| uj_domain::validation_name("event_name", name, 255).ok();
        // Anything but a list is no answer: read as "no names", it emptied the catalog.
        let Some(list) = body.as_array() else {
            return Err(MixpanelError::Unexpected {
                status: 200,
                detail: "events/names is not a list".into(),
            });
        };
        let mut names: Vec<String> = Vec::new();
        for name in list.iter().filter_map(Value::as_str) {
            if let Some(name) = usable(name).filter(|name| !names.contains(name)) {
                names.push(name);
            }
        }
        Ok(names)
    }
}

/// A name Mixpanel sends, as it is shown: on one line, bounded ([`uj_domain::one_line`]);
/// none when it is blank or not text.
pub(crate) fn shown(text: &Value, most: usize) -> Option<String> {
    text.as_str()
        .and_then(|text| uj_domain::one_line(text, most))
}

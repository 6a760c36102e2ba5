//! The emulator's run-time state: the scenario, current cohort memberships (which the
//! control surface changes), rate limits, faults, Engage paging sessions, the log of API
//! requests and the sender.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::faults::Faults;
use crate::limits::RateLimiter;
use crate::scenario::{Member, Scenario};
use crate::sender::{CohortSnapshot, Sender};

/// How long an Engage `session_id` stays valid.
const ENGAGE_SESSION_TTL: Duration = Duration::from_secs(3600);
/// API requests kept for [`Shared::requests`]; older ones are dropped.
const REQUEST_LOG_CAPACITY: usize = 1000;

pub struct Shared {
    pub scenario: Scenario,
    /// Members are shared with the sender's runs and snapshots: a run of a million-member
    /// cohort copies pointers, not profiles.
    memberships: Mutex<BTreeMap<(u64, u64), Cohort>>,
    pub limiter: RateLimiter,
    pub faults: Mutex<Faults>,
    engage_sessions: Mutex<HashMap<String, EngageSession>>,
    requests: Mutex<VecDeque<ApiRequest>>,
    pub sender: Sender,
}

/// One request to Mixpanel's APIs as the emulator received it, so tests can see how a
/// client called (Mixpanel accepts some calls with either method, as the emulator does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiRequest {
    pub method: String,
    /// With the host's prefix: `/eu/api/query/cohorts/list`, `/data-eu/api/2.0/export`.
    pub path: String,
}

/// A cohort's members by distinct id.
type Cohort = BTreeMap<String, Arc<Member>>;

/// An Engage query's result list, frozen at page 0 so later pages stay consistent.
pub struct EngageSession {
    pub project_id: u64,
    pub members: Arc<Vec<Member>>,
    created: Instant,
}

impl Shared {
    pub fn new(scenario: Scenario) -> Self {
        let memberships = scenario
            .initial_memberships()
            .into_iter()
            .map(|(key, members)| {
                let by_id = members
                    .into_iter()
                    .map(|m| (m.distinct_id.clone(), Arc::new(m)))
                    .collect();
                (key, by_id)
            })
            .collect();
        let sender = Sender::new(scenario.sender.clone());
        for destination in &scenario.destinations {
            sender.add_destination(destination.clone());
        }
        Self {
            limiter: RateLimiter::new(scenario.limits.clone()),
            memberships: Mutex::new(memberships),
            faults: Mutex::default(),
            engage_sessions: Mutex::default(),
            requests: Mutex::default(),
            sender,
            scenario,
        }
    }

    /// Current members of a cohort, ordered by distinct id; `None` for an unknown cohort.
    pub fn members(&self, project_id: u64, cohort_id: u64) -> Option<Vec<Member>> {
        let memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
        memberships
            .get(&(project_id, cohort_id))
            .map(|m| m.values().map(|member| Member::clone(member)).collect())
    }

    /// Whether the project has the cohort.
    pub fn has_cohort(&self, project_id: u64, cohort_id: u64) -> bool {
        let memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
        memberships.contains_key(&(project_id, cohort_id))
    }

    pub fn member_count(&self, project_id: u64, cohort_id: u64) -> usize {
        let memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
        memberships
            .get(&(project_id, cohort_id))
            .map_or(0, BTreeMap::len)
    }

    /// Every member of any cohort of the project (Engage without a cohort filter).
    pub fn project_profiles(&self, project_id: u64) -> Vec<Member> {
        let memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = BTreeMap::new();
        for ((project, _), members) in memberships.iter() {
            if *project == project_id {
                for (id, member) in members {
                    all.entry(id.clone())
                        .or_insert_with(|| Member::clone(member));
                }
            }
        }
        all.into_values().collect()
    }

    /// Adds (or updates) and removes members; returns the new size, `None` for an
    /// unknown cohort.
    pub fn change_members(
        &self,
        project_id: u64,
        cohort_id: u64,
        add: Vec<Member>,
        remove: &[String],
    ) -> Option<usize> {
        let mut memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
        let cohort = memberships.get_mut(&(project_id, cohort_id))?;
        for member in add {
            cohort.insert(member.distinct_id.clone(), Arc::new(member));
        }
        for id in remove {
            cohort.remove(id);
        }
        Some(cohort.len())
    }

    /// The cohort as the sender needs it for one run.
    pub fn cohort_snapshot(&self, project_id: u64, cohort_id: u64) -> Option<CohortSnapshot> {
        let cohort = self
            .scenario
            .project(project_id)?
            .cohorts
            .iter()
            .find(|c| c.id == cohort_id)?;
        Some(CohortSnapshot {
            project_id,
            cohort_id,
            name: cohort.name.clone(),
            description: cohort.description.clone(),
            members: {
                let memberships = self.memberships.lock().unwrap_or_else(|e| e.into_inner());
                memberships
                    .get(&(project_id, cohort_id))?
                    .values()
                    .cloned()
                    .collect()
            },
        })
    }

    pub fn start_engage_session(
        &self,
        project_id: u64,
        members: Vec<Member>,
    ) -> (String, Arc<Vec<Member>>) {
        use rand::Rng;
        let id = format!(
            "{}-{:08x}",
            chrono::Utc::now().timestamp(),
            rand::thread_rng().gen::<u32>()
        );
        let members = Arc::new(members);
        let mut sessions = self
            .engage_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.created.elapsed() < ENGAGE_SESSION_TTL);
        sessions.insert(
            id.clone(),
            EngageSession {
                project_id,
                members: members.clone(),
                created: Instant::now(),
            },
        );
        (id, members)
    }

    pub fn engage_session(&self, id: &str) -> Option<(u64, Arc<Vec<Member>>)> {
        let sessions = self
            .engage_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        sessions
            .get(id)
            .filter(|s| s.created.elapsed() < ENGAGE_SESSION_TTL)
            .map(|s| (s.project_id, s.members.clone()))
    }

    pub fn record_request(&self, request: ApiRequest) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if requests.len() == REQUEST_LOG_CAPACITY {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    /// The last 1000 API requests, oldest first.
    pub fn requests(&self) -> Vec<ApiRequest> {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_log_keeps_the_last_thousand_requests() {
        let shared = Shared::new(Scenario::default());
        for n in 0..=REQUEST_LOG_CAPACITY {
            shared.record_request(ApiRequest {
                method: "GET".into(),
                path: format!("/eu/{n}"),
            });
        }
        let requests = shared.requests();
        assert_eq!(requests.len(), REQUEST_LOG_CAPACITY);
        assert_eq!(requests[0].path, "/eu/1");
        assert_eq!(requests[REQUEST_LOG_CAPACITY - 1].path, "/eu/1000");
    }
}

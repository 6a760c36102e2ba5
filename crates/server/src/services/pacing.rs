//! What the pacing engine needs to know, read from the store: one user's audiences and
//! invite history, the rules' starts, their studies' starts this week and month, and the
//! project's contact limit. Config loads, app events, link resolution and "explain" all
//! decide from the same facts.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Map;
use uj_domain::ids::{AudienceId, ProjectId};
use uj_domain::invites::{Invite, InviteState};
use uj_domain::pacing::{self, Decision, Moment, RuleFacts, StudyFacts, Trigger, UserFacts};
use uj_domain::studies::LaunchRule;
use uj_storage::{MembershipsRead, WithMemberships};

use super::snapshot::ProjectRules;
use super::ServiceError;
use crate::state::AppState;

/// How long an invite stays open.
pub const INVITE_TTL: Duration = Duration::hours(24);

/// The facts about one user and a set of rules at one moment.
pub struct Facts {
    pub user: UserFacts,
    /// The user's current memberships in the project's audiences: `(audience id, provider
    /// member id)`.
    pub membership: Arc<Vec<(String, String)>>,
    pub rules: Vec<Arc<RuleFacts>>,
    pub studies: Arc<[StudyFacts]>,
    pub contact_limit: Option<Duration>,
    /// The project's trait allowlist: what an attribution record may carry.
    pub trait_allowlist: Arc<[String]>,
    pub now: DateTime<Utc>,
}

impl Facts {
    /// The moment of a config load (`event` = `None`), an app event, or an opened link.
    pub fn moment<'a>(&self, event: Option<&'a str>, link_opened: bool) -> Moment<'a> {
        Moment {
            now: self.now,
            event,
            contact_limit: self.contact_limit,
            link_opened,
        }
    }

    /// The engine's decision. Its suppressions count in the rules' stats once it stands
    /// (`Counters::suppressed`): an invite another request issued first makes it none.
    pub fn decide(&self, moment: &Moment<'_>) -> Decision<'_> {
        pacing::decide(
            self.rules.iter().map(|r| &**r),
            &self.studies,
            &self.user,
            moment,
        )
    }
}

/// One user's facts for one request, read once and shared by the request's decisions (its
/// prompt and its direct links): the project's snapshot, the user's invites (newest first),
/// and, when a decision involves an audience rule, their memberships.
pub struct UserView {
    pub project: ProjectId,
    pub reference_id: String,
    pub snapshot: Arc<ProjectRules>,
    pub history: Vec<Invite>,
    memberships: Option<Arc<Vec<(String, String)>>>,
    /// Whether the user is in the audience of the invite pending when they were loaded,
    /// when only that was read (`memberships` is then read in full when first needed).
    pending_membership: Option<(String, bool)>,
    /// This user's turn ([`UserTurns`]), held by the SDK path until its answer.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// Locks that make one user's SDK decisions in this process one after the other: a decision
/// reads the user's invites, decides, then writes its invite, and one made on a history
/// read before another request's invite was issued (and dismissed, or accepted, at once)
/// would invite again within the cooldown, past the contact limit, or to a study just
/// started (found by a soak test: an app loading its config twice at once, its user
/// answering the first card). Striped: a user's turn is one of [`USER_TURNS`] locks, by
/// hash, so memory stays fixed however many users; two users sharing a lock only wait for
/// each other's decision (tens of microseconds, or an invite's commit).
pub struct UserTurns(Box<[Arc<tokio::sync::Mutex<()>>]>);

/// How many locks [`UserTurns`] stripes users over.
const USER_TURNS: usize = 4096;

impl Default for UserTurns {
    fn default() -> Self {
        Self((0..USER_TURNS).map(|_| Arc::default()).collect())
    }
}

impl UserTurns {
    /// Waits for the user's turn; it lasts as long as the guard.
    pub async fn take(
        &self,
        project: &ProjectId,
        reference_id: &str,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        use std::hash::BuildHasher;
        let hash = rustc_hash::FxBuildHasher.hash_one((project.as_str(), reference_id));
        let stripe = (hash % self.0.len() as u64) as usize;
        Arc::clone(&self.0[stripe]).lock_owned().await
    }
}

impl UserView {
    /// Records the project's first SDK call (a config load or an event): the dashboard
    /// leads with the SDK setup steps until the app has called once. Best effort: the call
    /// is answered whether it is written or not (the next call tries again).
    pub async fn note_sdk_contact(&self, state: &AppState) {
        if self.snapshot.sdk_contacted {
            return;
        }
        match state
            .store
            .mark_sdk_contact(&self.project, chrono::Utc::now())
            .await
        {
            Ok(()) => state.snapshots.forget(&self.project),
            Err(error) => tracing::warn!(error = %error, "could not record the first SDK call"),
        }
    }

    /// The user seen through this process's snapshot of the project (the SDK path).
    /// `considers` says which rules the request may decide on (as `gather` will be asked).
    pub async fn load(
        state: &AppState,
        project: &ProjectId,
        reference_id: &str,
        considers: impl Fn(&LaunchRule) -> bool,
    ) -> Result<Self, ServiceError> {
        // Taken before the user's invites are read, so the read sees every invite an
        // earlier decision for the user issued (and what became of it).
        let turn = state.user_turns.take(project, reference_id).await;
        let snapshot = state.snapshots.get(state.store.as_ref(), project).await?;
        let mut view = Self::with(state, project, reference_id, snapshot, considers).await?;
        view._turn = Some(turn);
        Ok(view)
    }

    /// The user seen through `snapshot` (explain reads one now). When a rule the request
    /// `considers` targets an audience, the memberships are read with the invites (one round
    /// trip on PostgreSQL, one read transaction on SQLite), or, where the store can tell
    /// that the user has an invite pending from an audience, only whether they are still in
    /// it: what offering it again needs. Otherwise they are read when first needed.
    pub async fn with(
        state: &AppState,
        project: &ProjectId,
        reference_id: &str,
        snapshot: Arc<ProjectRules>,
        considers: impl Fn(&LaunchRule) -> bool,
    ) -> Result<Self, ServiceError> {
        let audiences = snapshot
            .rules
            .iter()
            .any(|r| matches!(r.trigger, Trigger::Audience(_)) && considers(r));
        let wanted = match audiences {
            true => WithMemberships::UnlessPending(Utc::now()),
            false => WithMemberships::No,
        };
        let (history, read) = state
            .store
            .user_history(project, reference_id, wanted)
            .await?;
        let (memberships, pending_membership) = match read {
            MembershipsRead::NotRead => (None, None),
            MembershipsRead::All(all) => (Some(Arc::new(all)), None),
            MembershipsRead::OfPendingInvite { audience, member } => {
                (None, Some((audience, member)))
            }
        };
        Ok(Self {
            project: project.clone(),
            reference_id: reference_id.to_owned(),
            snapshot,
            history,
            memberships,
            pending_membership,
            _turn: None,
        })
    }

    /// The user's open invite.
    pub fn pending(&self, now: DateTime<Utc>) -> Option<&Invite> {
        self.history.iter().find(|i| i.is_pending(now))
    }

    /// Whether the user is in `audience` now, from what was read of their memberships
    /// (reading them all if that does not tell).
    pub async fn is_member_of(
        &mut self,
        state: &AppState,
        audience: &str,
    ) -> Result<bool, ServiceError> {
        if let Some((of, member)) = &self.pending_membership {
            if of == audience {
                return Ok(*member);
            }
        }
        Ok(self
            .memberships(state)
            .await?
            .iter()
            .any(|(a, _)| a == audience))
    }

    /// The user's current memberships: `(audience id, provider member id)`, read once.
    pub async fn memberships(
        &mut self,
        state: &AppState,
    ) -> Result<Arc<Vec<(String, String)>>, ServiceError> {
        if let Some(all) = &self.memberships {
            return Ok(Arc::clone(all));
        }
        // By match key: `reference_id` when the member has one, else the distinct id.
        let all = Arc::new(
            state
                .store
                .audience_memberships(&self.project, &self.reference_id)
                .await?,
        );
        self.memberships = Some(Arc::clone(&all));
        Ok(all)
    }

    /// The snapshot's rules that `keep` selects, and the facts about them and the user.
    /// Memberships are read (once) only when a kept rule targets an audience.
    pub async fn gather(
        &mut self,
        state: &AppState,
        keep: impl Fn(&LaunchRule) -> bool,
    ) -> Result<(Vec<Arc<LaunchRule>>, Facts), ServiceError> {
        let mut rules = Vec::new();
        let mut facts = Vec::new();
        for (rule, f) in self.snapshot.rules.iter().zip(&self.snapshot.facts) {
            if keep(rule) {
                rules.push(Arc::clone(rule));
                facts.push(Arc::clone(f));
            }
        }
        let mut user = UserFacts {
            reference_id: self.reference_id.clone(),
            ..UserFacts::default()
        };
        let audience_rules = rules
            .iter()
            .any(|r| matches!(r.trigger, Trigger::Audience(_)));
        let membership = match audience_rules {
            true => self.memberships(state).await?,
            false => Arc::default(),
        };
        user.audiences = membership.iter().map(|(a, _)| a.clone()).collect();
        for invite in &self.history {
            user.last_invite_by_rule
                .entry(invite.rule_id.to_string())
                .or_insert(invite.issued_at);
            user.last_invite = user.last_invite.max(Some(invite.issued_at));
            if invite.state == InviteState::Accepted {
                user.started_studies.insert(invite.study_id.to_string());
            }
        }
        let facts = Facts {
            user,
            membership,
            rules: facts,
            studies: Arc::clone(&self.snapshot.studies),
            contact_limit: self.snapshot.contact_limit,
            trait_allowlist: Arc::clone(&self.snapshot.trait_allowlist),
            now: Utc::now(),
        };
        Ok((rules, facts))
    }
}

/// A new invite of `rule` for the user, with its attribution: for an audience rule the
/// audience member and their traits the allowlist names now (read from the member's row;
/// with an empty allowlist there is nothing to read), for an app-event rule the event; and
/// the primitive metadata the app sent.
pub async fn new_invite(
    state: &AppState,
    facts: &Facts,
    project: &ProjectId,
    rule: &LaunchRule,
    metadata: Map<String, serde_json::Value>,
) -> Result<Invite, ServiceError> {
    let (source, audience_id, member_id, event_name) = match &rule.trigger {
        Trigger::Audience(id) => {
            // A user listed under several distinct ids (one `reference_id`) is attributed to
            // the first by id, whatever order the database read them in.
            let member_id = facts
                .membership
                .iter()
                .filter(|(a, _)| a == id)
                .map(|(_, m)| m)
                .min()
                .cloned();
            ("audience", Some(id.clone()), member_id, None)
        }
        Trigger::AppEvent(name) => ("app_event", None, None, Some(name.clone())),
    };
    let mut traits = Map::new();
    if let (Some(audience), Some(member_id), false) =
        (&audience_id, &member_id, facts.trait_allowlist.is_empty())
    {
        let audience = AudienceId::from_string(audience.clone());
        if let Some(member) = state.store.audience_member(&audience, member_id).await? {
            traits = member.traits;
            uj_domain::cohort_sync::keep_allowlisted(&mut traits, &facts.trait_allowlist);
        }
    }
    Ok(Invite {
        code: uj_domain::keys::time_ordered_code(facts.now, 16),
        project_id: project.clone(),
        rule_id: rule.id.clone(),
        study_id: rule.study_id.clone(),
        reference_id: facts.user.reference_id.clone(),
        source,
        audience_id,
        audience_member_id: member_id,
        event_name,
        metadata,
        traits,
        state: InviteState::Issued,
        issued_at: facts.now,
        expires_at: facts.now + INVITE_TTL,
        accepted_at: None,
        dismissed_at: None,
        withdrawn_at: None,
    })
}

//! Studies and their launch rules: creation, changes (the trigger is fixed), archiving,
//! and "why (not)?" for one user through the pacing engine.

use chrono::{DateTime, Duration, Utc};
use uj_domain::ids::{AudienceId, LaunchRuleId, ProjectId, StudyId};
use uj_domain::pacing::{self, Gate, RuleFacts, RuleStatus, StudyStatus, Trigger};
use uj_domain::studies::{prompt_text, LaunchMode, LaunchRule, PromptCopy, Study, Surface};
use uj_domain::ValidationError;

use super::idempotency::{self, Answer, KeyedRequest};
use super::ServiceError;
use crate::state::AppState;

/// Fields of a new study; absent ones take defaults.
pub struct NewStudy {
    pub name: String,
    pub interview_url: String,
    pub status: Option<StudyStatus>,
    pub launch_mode: Option<LaunchMode>,
    pub weekly_limit: Option<i64>,
    pub monthly_limit: Option<i64>,
    /// Whether its public link opens in a plain browser (default: yes).
    pub public_link: Option<bool>,
}

/// A change to a study: `None` leaves a field, `Some(None)` clears a limit.
#[derive(Default, PartialEq)]
pub struct StudyChange {
    pub name: Option<String>,
    pub interview_url: Option<String>,
    pub status: Option<StudyStatus>,
    pub launch_mode: Option<LaunchMode>,
    pub public_link: Option<bool>,
    pub weekly_limit: Option<Option<i64>>,
    pub monthly_limit: Option<Option<i64>>,
    /// The study as the change was made on (its `updated_at`, a form's): refused if it has
    /// changed since, rather than applied over what changed.
    pub version: Option<DateTime<Utc>>,
}

impl StudyChange {
    /// Whether it changes no field (its version aside).
    fn asks_nothing(&self) -> bool {
        *self
            == Self {
                version: self.version,
                ..Self::default()
            }
    }
}

/// The most studies a project may have that are not archived.
pub const MAX_LIVE_STUDIES: i64 = 1000;

/// Creates a study, answered as `answer` renders it, and, sent with a key (`request`), at
/// most once (see `services::idempotency`): a retry is answered as the first request was,
/// whatever became of the study since.
pub async fn create_study_answered(
    state: &AppState,
    project: &ProjectId,
    new: NewStudy,
    request: Option<&KeyedRequest>,
    answer: impl FnOnce(&Study) -> Answer,
) -> Result<Answer, ServiceError> {
    if let Some(replayed) = idempotency::replay(state, project, request).await? {
        return Ok(replayed);
    }
    let study = match new_study(state, project, new).await {
        Ok(study) => study,
        Err(refused) => return idempotency::replay_or(state, project, request, refused).await,
    };
    let answer = answer(&study);
    let record = request.map(|r| r.record(project, study.id.as_str(), &answer, study.created_at));
    let landed = state.store.create_study(&study, record.as_ref()).await?;
    if let (false, Some(request)) = (landed, request) {
        return idempotency::replay_winner(state, project, request).await;
    }
    state.snapshots.forget(project);
    Ok(answer)
}

/// Refused when the project has [`MAX_LIVE_STUDIES`] studies that are not archived: a bound as
/// on rules (a hostile owner's studies are rows every list and page of the project reads).
/// Checked before a study is created or brought back from the archive: requests at once may
/// pass it by a few.
async fn room_for_a_live_study(
    state: &AppState,
    project: &ProjectId,
    then: &str,
) -> Result<(), ServiceError> {
    if state.store.live_study_count(project).await? >= MAX_LIVE_STUDIES {
        return Err(ServiceError::Refused {
            code: "study_limit_reached",
            message: format!(
                "This project has {MAX_LIVE_STUDIES} studies that are not archived, the most it \
                 may have: archive the studies it no longer runs, then {then}."
            ),
        });
    }
    Ok(())
}

/// A new study of `project` from `new`, validated.
async fn new_study(
    state: &AppState,
    project: &ProjectId,
    new: NewStudy,
) -> Result<Study, ServiceError> {
    if new.status != Some(StudyStatus::Archived) {
        room_for_a_live_study(state, project, "create this one").await?;
    }
    let now = uj_domain::now();
    let study = Study {
        id: StudyId::generate(),
        project_id: project.clone(),
        name: new.name.trim().to_owned(),
        status: new.status.unwrap_or(StudyStatus::Active),
        interview_url: new.interview_url.trim().to_owned(),
        launch_mode: new.launch_mode.unwrap_or(LaunchMode::InApp),
        weekly_limit: new.weekly_limit,
        monthly_limit: new.monthly_limit,
        // Public and short: it is typed into `/i/{code}` links.
        public_code: uj_domain::keys::random_code(10),
        public_link: new.public_link.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    study.validate()?;
    Ok(study)
}

pub async fn study(state: &AppState, project: &ProjectId, id: &str) -> Result<Study, ServiceError> {
    state
        .store
        .study(project, &StudyId::from_string(id))
        .await?
        .ok_or(ServiceError::NotFound("study"))
}

pub async fn update_study(
    state: &AppState,
    project: &ProjectId,
    id: &str,
    change: StudyChange,
) -> Result<Study, ServiceError> {
    for _ in 0..WRITE_ATTEMPTS {
        let mut study = self::study(state, project, id).await?;
        let read_at = study.updated_at;
        let before = study.clone();
        if let Some(name) = &change.name {
            study.name = name.trim().to_owned();
        }
        if let Some(url) = &change.interview_url {
            study.interview_url = url.trim().to_owned();
        }
        if let Some(status) = change.status {
            study.status = status;
        }
        if let Some(mode) = change.launch_mode {
            study.launch_mode = mode;
        }
        if let Some(open) = change.public_link {
            study.public_link = open;
        }
        if let Some(limit) = change.weekly_limit {
            study.weekly_limit = limit;
        }
        if let Some(limit) = change.monthly_limit {
            study.monthly_limit = limit;
        }
        // Nothing changed, nothing written: `updated_at` tells a change. Whatever version the
        // change was made on, what it asks for is there (a form sent twice); one that asks
        // for nothing is held to its version (`If-Match`), as RFC 9110 §13.1.1 has it.
        if study == before {
            if change.asks_nothing() && change.version.is_some_and(|v| v != read_at) {
                return Err(changed_since());
            }
            return Ok(study);
        }
        // Older than the row, refused before its values are judged: what it holds the row
        // may hold otherwise now, and a form sent back to correct a value would then carry
        // the old ones over the new.
        if change.version.is_some_and(|v| v != read_at) {
            return Err(changed_since());
        }
        study.updated_at = next_version(read_at);
        study.validate_change_from(&before)?;
        if before.status == StudyStatus::Archived && study.status != StudyStatus::Archived {
            room_for_a_live_study(state, project, "bring this one back").await?;
        }
        if state.store.update_study(&study, read_at).await? {
            state.snapshots.forget(project);
            return Ok(study);
        }
    }
    Err(changed_meanwhile())
}

/// The `updated_at` of the version after one read at `read_at`: now, and always later than
/// it, so that each version of a row has its own (an `If-Match` names one by it) even when the
/// clock steps back or two processes' clocks differ.
fn next_version(read_at: DateTime<Utc>) -> DateTime<Utc> {
    uj_domain::now().max(read_at + chrono::Duration::microseconds(1))
}

/// Changes are written only over the row they were read from (`updated_at`); a change that
/// lost a race is applied again to the new row, this many times at most. Each loss is
/// another change landing, so up to this many clients writing one row at once all land.
const WRITE_ATTEMPTS: usize = 20;

/// A change made on a version that is no longer the current one (a page open in two tabs).
pub(crate) fn changed_since() -> ServiceError {
    ServiceError::Conflict {
        code: "changed_meanwhile",
        message: "It was changed after this page was opened (in another tab, or by someone else); this is the current version. Make your change again.".into(),
    }
}

fn changed_meanwhile() -> ServiceError {
    ServiceError::Conflict {
        code: "changed_meanwhile",
        message: "It kept changing while this change was written; read it again and retry.".into(),
    }
}

/// Fields of a new rule; only name, trigger and surface are required.
pub struct NewRule {
    pub name: String,
    pub trigger: Trigger,
    pub surface: Surface,
    pub status: Option<RuleStatus>,
    pub prompt: PromptCopy,
    pub priority: Option<i64>,
    pub cooldown_seconds: Option<i64>,
    pub max_starts: Option<i64>,
    pub sampling_percent: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// A change to a rule; `Some(None)` clears a nullable field. A trigger, when given, must
/// equal the rule's.
#[derive(Default, PartialEq)]
pub struct RuleChange {
    pub name: Option<String>,
    pub trigger: Option<Trigger>,
    pub surface: Option<Surface>,
    pub status: Option<RuleStatus>,
    pub prompt_title: Option<String>,
    pub prompt_message: Option<String>,
    pub prompt_start_label: Option<String>,
    pub prompt_dismiss_label: Option<String>,
    pub priority: Option<i64>,
    pub cooldown_seconds: Option<i64>,
    pub max_starts: Option<Option<i64>>,
    pub sampling_percent: Option<i64>,
    pub starts_at: Option<Option<DateTime<Utc>>>,
    pub ends_at: Option<Option<DateTime<Utc>>>,
    /// The rule as the change was made on (its `updated_at`, a form's): refused if it has
    /// changed since, rather than applied over what changed.
    pub version: Option<DateTime<Utc>>,
}

impl RuleChange {
    /// Whether it changes no field (its version aside).
    pub fn asks_nothing(&self) -> bool {
        *self
            == Self {
                version: self.version,
                ..Self::default()
            }
    }
}

async fn check_audience(
    state: &AppState,
    project: &ProjectId,
    trigger: &Trigger,
) -> Result<(), ServiceError> {
    if let Trigger::Audience(id) = trigger {
        if state
            .store
            .audience(project, &AudienceId::from_string(id.as_str()))
            .await?
            .is_none()
        {
            return Err(ValidationError::new(
                "trigger.audience_id",
                "is not an audience of this project",
            )
            .into());
        }
    }
    Ok(())
}

/// The most rules a project may have that are not archived.
pub const MAX_LIVE_RULES: i64 = 1000;

/// A rule's audience deleted between its check and the rule's write: as if it had been
/// deleted before.
fn audience_gone(error: uj_storage::StoreError) -> ServiceError {
    match error {
        uj_storage::StoreError::Gone("audience") => {
            ValidationError::new("trigger.audience_id", "is not an audience of this project").into()
        }
        other => other.into(),
    }
}

/// Creates a rule of the project's study `study_id`, answered and keyed as
/// [`create_study_answered`].
pub async fn create_rule_answered(
    state: &AppState,
    project: &ProjectId,
    study_id: &str,
    new: NewRule,
    request: Option<&KeyedRequest>,
    answer: impl FnOnce(&LaunchRule) -> Answer,
) -> Result<Answer, ServiceError> {
    if let Some(replayed) = idempotency::replay(state, project, request).await? {
        return Ok(replayed);
    }
    let rule = match new_rule(state, project, study_id, new).await {
        Ok(rule) => rule,
        Err(refused) => return idempotency::replay_or(state, project, request, refused).await,
    };
    let answer = answer(&rule);
    let record = request.map(|r| r.record(project, rule.id.as_str(), &answer, rule.created_at));
    let landed = state
        .store
        .create_launch_rule(&rule, record.as_ref())
        .await
        .map_err(audience_gone)?;
    if let (false, Some(request)) = (landed, request) {
        return idempotency::replay_winner(state, project, request).await;
    }
    state.snapshots.forget(project);
    Ok(answer)
}

/// A new rule of the project's study `study_id` from `new`, validated.
async fn new_rule(
    state: &AppState,
    project: &ProjectId,
    study_id: &str,
    new: NewRule,
) -> Result<LaunchRule, ServiceError> {
    let study = self::study(state, project, study_id).await?;
    if new.status == Some(RuleStatus::Archived) {
        return Err(ValidationError::new("status", "a new rule cannot be archived").into());
    }
    // The SDK path reads every live rule of the project each second; without a bound one
    // project's rules could take the server's time from every other's (found by the scale
    // probe: 1,000 rules took a reload to 15 ms). Checked as each is created: rules created
    // at once may pass it by a few.
    if state.store.live_launch_rule_count(project).await? >= MAX_LIVE_RULES {
        return Err(ServiceError::Refused {
            code: "rule_limit_reached",
            message: format!(
                "This project has {MAX_LIVE_RULES} rules that are not archived, the most it may \
                 have: archive the rules it no longer uses, then create this one."
            ),
        });
    }
    let now = uj_domain::now();
    let rule = LaunchRule {
        id: LaunchRuleId::generate(),
        project_id: project.clone(),
        study_id: study.id,
        name: new.name.trim().to_owned(),
        status: new.status.unwrap_or(RuleStatus::Draft),
        trigger: new.trigger.trimmed(),
        surface: new.surface,
        prompt: PromptCopy {
            title: prompt_text(&new.prompt.title, false),
            message: prompt_text(&new.prompt.message, false),
            start_label: prompt_text(&new.prompt.start_label, true),
            dismiss_label: prompt_text(&new.prompt.dismiss_label, true),
        },
        priority: new.priority.unwrap_or(0),
        cooldown_seconds: new.cooldown_seconds.unwrap_or(7 * 24 * 3600),
        max_starts: new.max_starts,
        sampling_percent: new.sampling_percent.unwrap_or(100),
        starts_at: new.starts_at.map(uj_domain::stored),
        ends_at: new.ends_at.map(uj_domain::stored),
        created_at: now,
        updated_at: now,
    };
    rule.validate()?;
    check_audience(state, project, &rule.trigger).await?;
    Ok(rule)
}

pub async fn rule(
    state: &AppState,
    project: &ProjectId,
    id: &str,
) -> Result<LaunchRule, ServiceError> {
    state
        .store
        .launch_rule(project, &LaunchRuleId::from_string(id))
        .await?
        .ok_or(ServiceError::NotFound("launch_rule"))
}

/// A rule as a change left it, and how many open invites the change withdrew (a rule that
/// stops prompting takes back those it offered).
pub struct RuleUpdated {
    pub rule: LaunchRule,
    pub withdrawn: u64,
}

pub async fn update_rule(
    state: &AppState,
    project: &ProjectId,
    id: &str,
    change: RuleChange,
) -> Result<RuleUpdated, ServiceError> {
    for _ in 0..WRITE_ATTEMPTS {
        let mut rule = self::rule(state, project, id).await?;
        let read_at = rule.updated_at;
        let before = rule.clone();
        // Refused as it would be on any version (archived since: no version can change).
        apply(&mut rule, &change)?;
        // Nothing changed, nothing written: `updated_at` tells a change. Whatever version the
        // change was made on, what it asks for is there (a form sent twice); one that asks
        // for nothing is held to its version (`If-Match`), as RFC 9110 §13.1.1 has it.
        if rule == before {
            if change.asks_nothing() && change.version.is_some_and(|v| v != read_at) {
                return Err(changed_since());
            }
            return Ok(RuleUpdated { rule, withdrawn: 0 });
        }
        // Older than the row, refused before its values are judged: what it holds the row
        // may hold otherwise now, and a form sent back to correct a value would then carry
        // the old ones over the new.
        if change.version.is_some_and(|v| v != read_at) {
            return Err(changed_since());
        }
        rule.updated_at = next_version(read_at);
        rule.validate_change_from(&before)?;
        if let Some(withdrawn) = state.store.update_launch_rule(&rule, read_at).await? {
            state.snapshots.forget(project);
            return Ok(RuleUpdated { rule, withdrawn });
        }
    }
    Err(changed_meanwhile())
}

/// Applies `change` to `rule`, or refuses it.
fn apply(rule: &mut LaunchRule, change: &RuleChange) -> Result<(), ServiceError> {
    if rule.status == RuleStatus::Archived {
        return Err(ServiceError::Conflict {
            code: "rule_archived",
            message: "An archived rule cannot change; create a new one.".into(),
        });
    }
    let trigger = change.trigger.clone().map(Trigger::trimmed);
    if trigger.is_some_and(|t| t != rule.trigger) {
        return Err(ServiceError::Refused {
            code: "trigger_immutable",
            message:
                "A rule's trigger is fixed at creation; create a new rule for another trigger."
                    .into(),
        });
    }
    if change.status == Some(RuleStatus::Archived) {
        return Err(ValidationError::new(
            "status",
            "archive a rule with POST /api/v1/launch-rules/{id}/archive",
        )
        .into());
    }
    if let Some(name) = &change.name {
        rule.name = name.trim().to_owned();
    }
    if let Some(surface) = change.surface {
        rule.surface = surface;
    }
    if let Some(status) = change.status {
        rule.status = status;
    }
    for (field, value, label) in [
        (&mut rule.prompt.title, &change.prompt_title, false),
        (&mut rule.prompt.message, &change.prompt_message, false),
        (
            &mut rule.prompt.start_label,
            &change.prompt_start_label,
            true,
        ),
        (
            &mut rule.prompt.dismiss_label,
            &change.prompt_dismiss_label,
            true,
        ),
    ] {
        if let Some(value) = value {
            *field = prompt_text(value, label);
        }
    }
    if let Some(priority) = change.priority {
        rule.priority = priority;
    }
    if let Some(cooldown) = change.cooldown_seconds {
        rule.cooldown_seconds = cooldown;
    }
    if let Some(max) = change.max_starts {
        rule.max_starts = max;
    }
    if let Some(sampling) = change.sampling_percent {
        rule.sampling_percent = sampling;
    }
    if let Some(at) = change.starts_at {
        rule.starts_at = at.map(uj_domain::stored);
    }
    if let Some(at) = change.ends_at {
        rule.ends_at = at.map(uj_domain::stored);
    }
    Ok(())
}

/// Archives a rule; with a `version` (`If-Match`), only that version, as
/// [`update_rule`] changes only the one named.
pub async fn archive_rule(
    state: &AppState,
    project: &ProjectId,
    id: &str,
    version: Option<DateTime<Utc>>,
) -> Result<LaunchRule, ServiceError> {
    for _ in 0..WRITE_ATTEMPTS {
        let mut rule = self::rule(state, project, id).await?;
        // What it asks for is there (an archive sent again): whatever version it was made on.
        if rule.status == RuleStatus::Archived {
            return Ok(rule);
        }
        let read_at = rule.updated_at;
        if version.is_some_and(|v| v != read_at) {
            return Err(changed_since());
        }
        rule.status = RuleStatus::Archived;
        rule.updated_at = next_version(read_at);
        if state
            .store
            .update_launch_rule(&rule, read_at)
            .await?
            .is_some()
        {
            state.snapshots.forget(project);
            return Ok(rule);
        }
    }
    Err(changed_meanwhile())
}

/// The engine's view of a rule.
pub fn rule_facts(rule: &LaunchRule) -> RuleFacts {
    RuleFacts {
        id: rule.id.to_string(),
        study_id: rule.study_id.to_string(),
        status: rule.status,
        trigger: rule.trigger.clone(),
        priority: rule
            .priority
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        // Clamped: a rule stored before cooldowns were bounded must not overflow.
        cooldown: Duration::seconds(
            rule.cooldown_seconds
                .clamp(0, uj_domain::studies::MAX_COOLDOWN_SECONDS),
        ),
        max_starts: rule.max_starts.map(super::snapshot::count),
        // Read from the store where a decision needs it (`services::pacing`).
        starts: 0,
        sampling_percent: rule.sampling_percent.clamp(0, 100) as u8,
        starts_at: rule.starts_at,
        ends_at: rule.ends_at,
        created_at: rule.created_at,
    }
}

/// Every gate of a rule for one user now, from the same facts the SDK's decisions use. For
/// an app-event rule, as if the app sent the rule's event at this moment.
pub async fn explain(
    state: &AppState,
    project: &ProjectId,
    id: &str,
    reference_id: &str,
) -> Result<(LaunchRule, Vec<Gate>), ServiceError> {
    // As the SDK takes it: at most 256 characters, no control characters.
    let reference_id = &uj_domain::invites::reference_id(reference_id)?;
    let rule = self::rule(state, project, id).await?;
    // Read now, not from the SDK path's snapshot: explain answers for this moment.
    let snapshot = super::snapshot::ProjectRules::load(state.store.as_ref(), project).await?;
    let this_rule = |r: &LaunchRule| r.id == rule.id;
    let snapshot = std::sync::Arc::new(snapshot);
    let mut user =
        super::pacing::UserView::with(state, project, reference_id, snapshot, this_rule).await?;
    let (_, mut facts) = user.gather(state, this_rule).await?;
    if facts.rules.is_empty() {
        // Archived: not among the live rules; its status gate says so. Its starts and its
        // study (which no live rule may hold) are read for the other gates.
        let store = state.store.as_ref();
        facts.rules.push(
            super::snapshot::counted_rule_facts(store, &rule)
                .await?
                .into(),
        );
        if matches!(rule.trigger, Trigger::Audience(_)) {
            // Read only for live audience rules by `gather`.
            let membership = user.memberships(state).await?;
            facts.user.audiences = membership.iter().map(|(a, _)| a.clone()).collect();
            facts.membership = membership;
        }
        let held = facts.studies.iter().any(|s| s.id == rule.study_id.as_str());
        if let (false, Some(study)) = (held, store.study(project, &rule.study_id).await?) {
            let mut studies = facts.studies.to_vec();
            studies.push(super::snapshot::study_facts(store, &study, facts.now).await?);
            facts.studies = studies.into();
        }
    }
    let event = match &rule.trigger {
        Trigger::AppEvent(name) => Some(name.as_str()),
        Trigger::Audience(_) => None,
    };
    // Stored before its characters were refused in names: no app can send it.
    let unsendable = event.filter(|name| !uj_domain::sendable_event(name));
    let mut gates = pacing::gates(
        &facts.rules[0],
        facts
            .studies
            .iter()
            .find(|s| s.id == rule.study_id.as_str()),
        &facts.user,
        &facts.moment(event.filter(|_| unsendable.is_none()), false),
    );
    if let Some(name) = unsendable {
        if let Some(trigger) = gates.iter_mut().find(|g| g.gate == "trigger") {
            trigger.detail = format!("waits for {name:?}, which no app can send: the SDK refuses event names with invisible or control characters. Give the rule the event name the app sends.");
        }
    }
    if rule.surface == Surface::SdkPrompt && gates.iter().all(|g| g.passed) {
        // As the SDK decides a prompt: the user's open invite first, then priority among
        // the prompt rules waiting for the same moment. (Direct links are all listed.)
        // An invite that can no longer start is withdrawn by the SDK's next look, not offered.
        let open = match user.pending(facts.now).cloned() {
            Some(i) if super::invites::offerable(state, &mut user, &i).await? => {
                Some(i.rule_id.to_string())
            }
            _ => None,
        };
        let (_, rivals) = user
            .gather(state, |r| {
                r.surface == Surface::SdkPrompt && super::invites::waits_for(r, event)
            })
            .await?;
        let rivals_facts: Vec<&RuleFacts> = rivals.rules.iter().map(|r| &**r).collect();
        let decision = pacing::decide(
            rivals_facts.iter().copied(),
            &rivals.studies,
            &rivals.user,
            &rivals.moment(event, false),
        );
        gates.extend(pacing::contest_gates(
            &facts.rules[0],
            open.as_deref(),
            &rivals_facts,
            &decision,
        ));
    }
    Ok((rule, gates))
}

//! The pacing engine (SPEC §3): given the launch rules of a project, one user's history and
//! the moment, decide which rule (if any) invites the user, or say for every rule why not.
//!
//! Pure: storage supplies the counts and history, this decides. The same gates answer
//! "why not?" in the explain endpoint.

use rustc_hash::{FxHashMap, FxHashSet};

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use sha2::{Digest, Sha256};

/// A rule's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleStatus {
    Draft,
    Active,
    Paused,
    Archived,
}

/// A study's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyStatus {
    Active,
    Paused,
    Archived,
}

/// What makes a rule consider a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The app sent this event.
    AppEvent(String),
    /// The user is a current member of this audience.
    Audience(String),
}

impl Trigger {
    /// As a rule stores it: an app event's name or an audience's id without surrounding
    /// spaces, as every name and id is taken (an audience id pasted with a line break was
    /// "not an audience of this project", and sent again with a space a changed trigger;
    /// found by the REST review).
    pub fn trimmed(self) -> Self {
        match self {
            Trigger::AppEvent(name) => Trigger::AppEvent(name.trim().to_owned()),
            Trigger::Audience(id) => Trigger::Audience(id.trim().to_owned()),
        }
    }
}

/// A rule as the engine sees it.
#[derive(Debug, Clone)]
pub struct RuleFacts {
    pub id: String,
    pub study_id: String,
    pub status: RuleStatus,
    pub trigger: Trigger,
    /// Higher wins; ties go to the older rule (earlier `created_at`).
    pub priority: i32,
    pub cooldown: Duration,
    /// Total accepted invites allowed; `None` = no cap.
    pub max_starts: Option<u64>,
    /// Accepted invites so far.
    pub starts: u64,
    /// 0–100; sticky per user and rule.
    pub sampling_percent: u8,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A study as the engine sees it, with its starts this week and month.
#[derive(Debug, Clone)]
pub struct StudyFacts {
    pub id: String,
    pub status: StudyStatus,
    pub weekly_limit: Option<u64>,
    pub monthly_limit: Option<u64>,
    pub starts_this_week: u64,
    pub starts_this_month: u64,
}

/// What is known about one user.
#[derive(Debug, Clone, Default)]
pub struct UserFacts {
    pub reference_id: String,
    /// When each rule last issued this user an invite. (These sets are looked up once per
    /// rule per decision, so with a fast hash; their keys are our own ids.)
    pub last_invite_by_rule: FxHashMap<String, DateTime<Utc>>,
    /// When any rule last issued this user an invite.
    pub last_invite: Option<DateTime<Utc>>,
    /// Studies the user started (accepted an invite to).
    pub started_studies: FxHashSet<String>,
    /// Audiences the user currently belongs to.
    pub audiences: FxHashSet<String>,
}

/// The moment of the decision.
#[derive(Debug, Clone)]
pub struct Moment<'a> {
    pub now: DateTime<Utc>,
    /// The app event being handled, for app-event rules; `None` on a config load.
    pub event: Option<&'a str>,
    /// The project's contact limit: at most one invite per user per this period.
    pub contact_limit: Option<Duration>,
    /// The user opened a direct link: it stands for a direct-link rule's app event.
    pub link_opened: bool,
}

/// Why a rule does not invite a user now. Codes are stable: the explain endpoint and the
/// per-rule counters report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    RuleDraft,
    RulePaused,
    RuleArchived,
    StudyPaused,
    StudyArchived,
    OutsideSchedule,
    NotTriggered,
    NotInAudience,
    SampledOut,
    AlreadyStarted,
    Cooldown,
    MaxStartsReached,
    StudyLimit,
    ContactLimit,
    LostOnPriority,
    /// The user has an open invite from another rule (one at a time): explain's reason.
    OpenInvite,
}

impl Reason {
    /// Every reason, each at its own index (`reason as usize`).
    pub const ALL: [Reason; 16] = [
        Reason::RuleDraft,
        Reason::RulePaused,
        Reason::RuleArchived,
        Reason::StudyPaused,
        Reason::StudyArchived,
        Reason::OutsideSchedule,
        Reason::NotTriggered,
        Reason::NotInAudience,
        Reason::SampledOut,
        Reason::AlreadyStarted,
        Reason::Cooldown,
        Reason::MaxStartsReached,
        Reason::StudyLimit,
        Reason::ContactLimit,
        Reason::LostOnPriority,
        Reason::OpenInvite,
    ];

    /// The gate that fails with this reason, numbered in the order [`gates`] checks them:
    /// a reason of a later gate was found by a rule that passed more of them.
    pub fn gate(self) -> u8 {
        match self {
            Reason::RuleDraft | Reason::RulePaused | Reason::RuleArchived => 0,
            Reason::StudyPaused | Reason::StudyArchived => 1,
            Reason::OutsideSchedule => 2,
            Reason::NotTriggered | Reason::NotInAudience => 3,
            Reason::SampledOut => 4,
            Reason::AlreadyStarted => 5,
            Reason::Cooldown => 6,
            Reason::MaxStartsReached => 7,
            Reason::StudyLimit => 8,
            Reason::ContactLimit => 9,
            Reason::OpenInvite => 10,
            Reason::LostOnPriority => 11,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Reason::RuleDraft => "rule_draft",
            Reason::RulePaused => "rule_paused",
            Reason::RuleArchived => "rule_archived",
            Reason::StudyPaused => "study_paused",
            Reason::StudyArchived => "study_archived",
            Reason::OutsideSchedule => "outside_schedule",
            Reason::NotTriggered => "not_triggered",
            Reason::NotInAudience => "not_in_audience",
            Reason::SampledOut => "sampled_out",
            Reason::AlreadyStarted => "already_started",
            Reason::Cooldown => "cooldown",
            Reason::MaxStartsReached => "max_starts_reached",
            Reason::StudyLimit => "study_limit",
            Reason::ContactLimit => "contact_limit",
            Reason::LostOnPriority => "lost_on_priority",
            Reason::OpenInvite => "open_invite",
        }
    }
}

/// One gate of one rule for one user, as "explain" shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    pub gate: &'static str,
    pub passed: bool,
    pub detail: String,
    /// The reason reported when this gate fails.
    pub reason: Reason,
    /// Another rule the detail names by its id (the rule of the user's open invite, the one
    /// that wins on priority), for a page to show by name.
    pub other_rule: Option<String>,
}

/// The engine's answer for one user at one moment.
/// Rule ids are borrowed from the rules decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'r> {
    /// This rule invites the user; every other rule with the reason it did not
    /// (`lost_on_priority` for the eligible ones it outranked).
    Invite {
        rule_id: &'r str,
        suppressed: Vec<(&'r str, Reason)>,
    },
    /// No rule does; for each rule, the first gate it failed.
    NoInvite { reasons: Vec<(&'r str, Reason)> },
}

impl<'r> Decision<'r> {
    /// Each rule that did not invite, with its reason: what the per-rule counters count.
    pub fn suppressed(&self) -> &[(&'r str, Reason)] {
        match self {
            Decision::Invite { suppressed, .. } => suppressed,
            Decision::NoInvite { reasons } => reasons,
        }
    }
}

/// The sticky sampling bucket of a user for a rule, in 0..10000.
pub fn sampling_bucket(rule_id: &str, reference_id: &str) -> u32 {
    let digest = Sha256::digest(format!("{rule_id}\u{0}{reference_id}").as_bytes());
    let value = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (value % 10_000) as u32
}

/// Monday 00:00 UTC of `now`'s week: weekly limits reset then.
pub fn week_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let days = i64::from(now.weekday().num_days_from_monday());
    let date = now.date_naive() - Duration::days(days);
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

/// The first of `now`'s month, 00:00 UTC: monthly limits reset then.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let date = now.date_naive().with_day(1).expect("day 1 exists");
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

/// Every gate of `rule` for `user` now, in order (priority against other rules aside).
pub fn gates(
    rule: &RuleFacts,
    study: Option<&StudyFacts>,
    user: &UserFacts,
    moment: &Moment<'_>,
) -> Vec<Gate> {
    check(rule, study, user, moment, true).list
}

/// The gates that set a prompt rule against the others, for explain after the rule's own
/// (`gates`) all pass: the user's open invite (`open_invite`, its rule's id: a user has one
/// at a time, offered until answered) and priority among the rules decided with it at this
/// moment (`decision`, over all of `rivals`, this rule among them).
pub fn contest_gates(
    rule: &RuleFacts,
    open_invite: Option<&str>,
    rivals: &[&RuleFacts],
    decision: &Decision<'_>,
) -> [Gate; 2] {
    let open = Gate {
        gate: "open_invite",
        passed: open_invite.is_none_or(|id| id == rule.id),
        detail: match open_invite {
            None => "the user has no open invite".into(),
            Some(id) if id == rule.id => "the user's open invite is from this rule".into(),
            Some(id) => format!("the user's open invite from rule {id} is offered until answered"),
        },
        reason: Reason::OpenInvite,
        other_rule: open_invite.filter(|id| *id != rule.id).map(str::to_owned),
    };
    let winner = match decision {
        Decision::Invite { rule_id, .. } => rivals.iter().find(|r| r.id == *rule_id),
        Decision::NoInvite { .. } => None,
    };
    let priority = Gate {
        gate: "priority",
        passed: winner.is_none_or(|w| w.id == rule.id),
        detail: match winner {
            Some(w) if w.id != rule.id => format!(
                "rule {} (priority {}) outranks it (priority {})",
                w.id, w.priority, rule.priority
            ),
            _ => format!(
                "highest priority (priority {}) among {} rules decided together",
                rule.priority,
                rivals.len()
            ),
        },
        reason: Reason::LostOnPriority,
        other_rule: winner.filter(|w| w.id != rule.id).map(|w| w.id.clone()),
    };
    [open, priority]
}

/// The first gate `rule` fails for `user` now, if any: what a decision needs, without the
/// details explain shows (the SDK path asks this of every rule on every request).
pub fn first_failure(
    rule: &RuleFacts,
    study: Option<&StudyFacts>,
    user: &UserFacts,
    moment: &Moment<'_>,
) -> Option<Reason> {
    check(rule, study, user, moment, false).failed
}

/// Gates in the order they are checked: all of them with details (explain), or only the
/// first failing one's reason, checking no further (and allocating nothing).
struct Checked {
    explain: bool,
    list: Vec<Gate>,
    failed: Option<Reason>,
}

impl Checked {
    /// Records a gate; `false` when checking stops here.
    fn push<D: Into<String>>(
        &mut self,
        gate: &'static str,
        passed: bool,
        reason: Reason,
        detail: impl FnOnce() -> D,
    ) -> bool {
        if self.explain {
            self.list.push(Gate {
                gate,
                passed,
                detail: detail().into(),
                reason,
                other_rule: None,
            });
            return true;
        }
        if !passed {
            self.failed = Some(reason);
        }
        passed
    }
}

/// Why a rule cannot start anyone now because it or its study (`None`: gone) is not
/// active; `None` when both are. What an invite it issued earlier answers when accepted.
pub fn closed_because(rule: RuleStatus, study: Option<StudyStatus>) -> Option<Reason> {
    match (rule, study) {
        (RuleStatus::Draft, _) => Some(Reason::RuleDraft),
        (RuleStatus::Paused, _) => Some(Reason::RulePaused),
        (RuleStatus::Archived, _) => Some(Reason::RuleArchived),
        (RuleStatus::Active, Some(StudyStatus::Active)) => None,
        (RuleStatus::Active, Some(StudyStatus::Paused)) => Some(Reason::StudyPaused),
        (RuleStatus::Active, Some(StudyStatus::Archived) | None) => Some(Reason::StudyArchived),
    }
}

/// Why an invite `rule` issued earlier can no longer become a start: the rule or its study
/// stopped (`closed_because`), the rule's schedule window does not hold `now` (ended, or
/// moved to start later), its starts or its study's
/// limits are used up, or the user started the study meanwhile (`started_study`). `None`
/// while it still can. Config loads withdraw such an invite rather than offer a prompt that
/// accepting would refuse; it would also hold the user's one open invite until it expired.
pub fn invite_closed_because(
    rule: &RuleFacts,
    study: Option<&StudyFacts>,
    started_study: bool,
    now: DateTime<Utc>,
) -> Option<Reason> {
    if let Some(reason) = closed_because(rule.status, study.map(|s| s.status)) {
        return Some(reason);
    }
    let outside = rule.starts_at.is_some_and(|start| now < start)
        || rule.ends_at.is_some_and(|end| now >= end);
    if outside {
        return Some(Reason::OutsideSchedule);
    }
    if started_study {
        return Some(Reason::AlreadyStarted);
    }
    if rule.max_starts.is_some_and(|max| rule.starts >= max) {
        return Some(Reason::MaxStartsReached);
    }
    let study_capped = study.is_some_and(|s| {
        s.weekly_limit.is_some_and(|l| s.starts_this_week >= l)
            || s.monthly_limit.is_some_and(|l| s.starts_this_month >= l)
    });
    study_capped.then_some(Reason::StudyLimit)
}

fn check(
    rule: &RuleFacts,
    study: Option<&StudyFacts>,
    user: &UserFacts,
    moment: &Moment<'_>,
    explain: bool,
) -> Checked {
    let now = moment.now;
    let mut c = Checked {
        explain,
        list: Vec::new(),
        failed: None,
    };
    let (status_ok, status_reason, status_detail) = match rule.status {
        RuleStatus::Active => (true, Reason::RulePaused, "the rule is active"),
        RuleStatus::Draft => (false, Reason::RuleDraft, "the rule is a draft"),
        RuleStatus::Paused => (false, Reason::RulePaused, "the rule is paused"),
        RuleStatus::Archived => (false, Reason::RuleArchived, "the rule is archived"),
    };
    if !c.push("rule_status", status_ok, status_reason, || status_detail) {
        return c;
    }
    let (study_ok, study_reason, study_detail) = match study.map(|s| s.status) {
        Some(StudyStatus::Active) => (true, Reason::StudyPaused, "the study is active"),
        Some(StudyStatus::Paused) => (false, Reason::StudyPaused, "the study is paused"),
        Some(StudyStatus::Archived) | None => {
            (false, Reason::StudyArchived, "the study is archived")
        }
    };
    if !c.push("study_status", study_ok, study_reason, || study_detail) {
        return c;
    }
    let scheduled = rule.starts_at.is_none_or(|s| now >= s) && rule.ends_at.is_none_or(|e| now < e);
    if !c.push("schedule", scheduled, Reason::OutsideSchedule, || {
        if scheduled {
            "inside the schedule window"
        } else {
            "outside the schedule window"
        }
    }) {
        return c;
    }
    match &rule.trigger {
        Trigger::AppEvent(name) => {
            let fired = moment.event == Some(name.as_str()) || moment.link_opened;
            if !c.push("trigger", fired, Reason::NotTriggered, || {
                match moment.event {
                    _ if moment.link_opened => "the user opened the study's link".into(),
                    Some(event) if fired => format!("the app sent {event:?}"),
                    Some(event) => format!("the app sent {event:?}, the rule waits for {name:?}"),
                    None => format!("waiting for the app to send {name:?}"),
                }
            }) {
                return c;
            }
        }
        Trigger::Audience(audience) => {
            let member = user.audiences.contains(audience);
            if !c.push("audience", member, Reason::NotInAudience, || {
                if member {
                    "the user is in the audience"
                } else {
                    "the user is not in the audience"
                }
            }) {
                return c;
            }
        }
    }
    // A rule that samples everyone needs no bucket, unless explain shows it.
    let percent = u32::from(rule.sampling_percent.min(100));
    let bucket =
        (percent < 100 || c.explain).then(|| sampling_bucket(&rule.id, &user.reference_id));
    let sampled = bucket.is_none_or(|b| b < percent * 100);
    if !c.push("sampling", sampled, Reason::SampledOut, || {
        format!(
            "bucket {:.2}% against {}%",
            f64::from(bucket.unwrap_or_default()) / 100.0,
            rule.sampling_percent
        )
    }) {
        return c;
    }
    let started = user.started_studies.contains(&rule.study_id);
    if !c.push("already_started", !started, Reason::AlreadyStarted, || {
        if started {
            "the user already started this study"
        } else {
            "the user has not started this study"
        }
    }) {
        return c;
    }
    let cooling = user
        .last_invite_by_rule
        .get(&rule.id)
        .filter(|at| now < **at + rule.cooldown);
    if !c.push(
        "cooldown",
        cooling.is_none(),
        Reason::Cooldown,
        || match cooling {
            Some(at) => format!("invited at {at}; cooldown ends at {}", *at + rule.cooldown),
            None => "no invite from this rule within the cooldown".into(),
        },
    ) {
        return c;
    }
    let capped = rule.max_starts.is_some_and(|max| rule.starts >= max);
    if !c.push(
        "max_starts",
        !capped,
        Reason::MaxStartsReached,
        || match rule.max_starts {
            Some(max) => format!("{} of {max} starts", rule.starts),
            None => format!("{} starts, no cap", rule.starts),
        },
    ) {
        return c;
    }
    let study_capped = study.is_some_and(|s| {
        s.weekly_limit.is_some_and(|l| s.starts_this_week >= l)
            || s.monthly_limit.is_some_and(|l| s.starts_this_month >= l)
    });
    if !c.push(
        "study_limit",
        !study_capped,
        Reason::StudyLimit,
        || match study {
            Some(s) => format!(
                "{} starts this week (limit {}), {} this month (limit {})",
                s.starts_this_week,
                limit_text(s.weekly_limit),
                s.starts_this_month,
                limit_text(s.monthly_limit)
            ),
            None => "no study".into(),
        },
    ) {
        return c;
    }
    let contacted = moment
        .contact_limit
        .zip(user.last_invite)
        .filter(|(period, last)| now < *last + *period);
    if !c.push(
        "contact_limit",
        contacted.is_none(),
        Reason::ContactLimit,
        || match contacted {
            Some((period, last)) => format!(
                "invited at {last}; the project allows one invite per {} days",
                period.num_days()
            ),
            None => "within the project's contact limit".into(),
        },
    ) {
        return c;
    }
    c
}

fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(|| "none".into(), |l| l.to_string())
}

/// The reason to tell an app that no rule invites its user: that of the rule that passed the
/// most gates ([`Reason::gate`]), the first listed of those on a tie. The first rule's was
/// told: an archived study's rule said `study_archived` while a live rule of another study
/// was at its limit.
pub fn telling_reason(reasons: &[(&str, Reason)]) -> Option<Reason> {
    reasons
        .iter()
        .map(|(_, reason)| *reason)
        .reduce(|told, reason| {
            if reason.gate() > told.gate() {
                reason
            } else {
                told
            }
        })
}

/// Decides which rule, if any, invites `user` now: the eligible rule with the highest
/// priority (ties to the older rule) across all studies; one invite at most.
pub fn decide<'r>(
    rules: impl IntoIterator<Item = &'r RuleFacts>,
    studies: &[StudyFacts],
    user: &UserFacts,
    moment: &Moment<'_>,
) -> Decision<'r> {
    let mut eligible: Vec<&RuleFacts> = Vec::new();
    let mut reasons = Vec::new();
    for rule in rules {
        let study = studies.iter().find(|s| s.id == rule.study_id);
        match first_failure(rule, study, user, moment) {
            Some(reason) => reasons.push((rule.id.as_str(), reason)),
            None => eligible.push(rule),
        }
    }
    let winner = eligible
        .iter()
        .max_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then(b.created_at.cmp(&a.created_at))
                .then(b.id.cmp(&a.id))
        })
        .map(|w| w.id.as_str());
    match winner {
        Some(rule_id) => {
            reasons.extend(
                eligible
                    .iter()
                    .filter(|r| r.id != rule_id)
                    .map(|r| (r.id.as_str(), Reason::LostOnPriority)),
            );
            Decision::Invite {
                rule_id,
                suppressed: reasons,
            }
        }
        None => Decision::NoInvite { reasons },
    }
}

//! The pacing engine's promises, over random rules, users and histories.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use uj_domain::ids::{LaunchRuleId, ProjectId, StudyId};
use uj_domain::invites::{Invite, InviteState};
use uj_domain::pacing::{
    decide, first_failure, gates, invite_closed_because, month_start, sampling_bucket, week_start,
    Decision, Moment, Reason, RuleFacts, RuleStatus, StudyFacts, StudyStatus, Trigger, UserFacts,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn rule_strategy(index: usize) -> impl Strategy<Value = RuleFacts> {
    (
        prop_oneof![
            Just(RuleStatus::Active),
            Just(RuleStatus::Active),
            Just(RuleStatus::Paused),
            Just(RuleStatus::Draft)
        ],
        0usize..3,
        prop_oneof![
            Just(None),
            Just(Some("Order Completed")),
            Just(Some("App Opened"))
        ],
        -5i32..5,
        0i64..5,
        proptest::option::of(0u64..4),
        prop_oneof![Just(100u8), 0u8..=100],
        0i64..100,
    )
        .prop_map(
            move |(status, study, event, priority, cooldown_hours, max_starts, sampling, age)| {
                RuleFacts {
                    id: format!("rule_{index}"),
                    study_id: format!("study_{study}"),
                    status,
                    trigger: match event {
                        Some(name) => Trigger::AppEvent(name.to_owned()),
                        None => Trigger::Audience("aud_1".into()),
                    },
                    priority,
                    cooldown: Duration::hours(cooldown_hours),
                    max_starts,
                    starts: 0,
                    sampling_percent: sampling,
                    starts_at: None,
                    ends_at: None,
                    created_at: t0() - Duration::days(age),
                }
            },
        )
}

fn rules_strategy() -> impl Strategy<Value = Vec<RuleFacts>> {
    (1usize..6).prop_flat_map(|n| (0..n).map(rule_strategy).collect::<Vec<_>>())
}

fn studies(weekly: Option<u64>) -> Vec<StudyFacts> {
    (0..3)
        .map(|i| StudyFacts {
            id: format!("study_{i}"),
            status: if i == 2 {
                StudyStatus::Paused
            } else {
                StudyStatus::Active
            },
            weekly_limit: weekly,
            monthly_limit: None,
            starts_this_week: 0,
            starts_this_month: 0,
        })
        .collect()
}

fn user(reference: &str, in_audience: bool) -> UserFacts {
    UserFacts {
        reference_id: reference.into(),
        audiences: if in_audience {
            ["aud_1".to_owned()].into_iter().collect()
        } else {
            Default::default()
        },
        ..UserFacts::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_chosen_rule_is_eligible_and_has_the_highest_priority(
        rules in rules_strategy(),
        in_audience in any::<bool>(),
        event in prop_oneof![Just(None), Just(Some("Order Completed")), Just(Some("App Opened"))],
        reference in "[a-z0-9]{1,12}",
    ) {
        let studies = studies(None);
        let user = user(&reference, in_audience);
        let moment = Moment { now: t0(), event, contact_limit: None, link_opened: false };
        let eligible: Vec<&RuleFacts> = rules
            .iter()
            .filter(|r| gates(r, studies.iter().find(|s| s.id == r.study_id), &user, &moment).iter().all(|g| g.passed))
            .collect();
        match decide(&rules, &studies, &user, &moment) {
            Decision::Invite { rule_id, suppressed } => {
                let chosen = rules.iter().find(|r| r.id == rule_id).unwrap();
                prop_assert_eq!(suppressed.len(), rules.len() - 1, "every other rule has its reason");
                for (id, reason) in &suppressed {
                    prop_assert_eq!(
                        *reason == Reason::LostOnPriority,
                        eligible.iter().any(|r| r.id == *id),
                        "lost_on_priority exactly for the eligible rules that lost"
                    );
                }
                prop_assert!(eligible.iter().any(|r| r.id == rule_id), "the chosen rule passes every gate");
                for other in &eligible {
                    prop_assert!(
                        other.priority < chosen.priority
                            || (other.priority == chosen.priority && other.created_at >= chosen.created_at),
                        "no eligible rule outranks the chosen one"
                    );
                }
            }
            Decision::NoInvite { reasons } => {
                prop_assert!(eligible.is_empty());
                prop_assert_eq!(reasons.len(), rules.len(), "every rule has its reason");
            }
        }
    }

    #[test]
    fn cooldown_max_starts_started_studies_and_limits_hold_over_any_history(
        mut rules in rules_strategy(),
        steps in proptest::collection::vec((0i64..48, any::<bool>(), prop_oneof![Just(None), Just(Some("Order Completed")), Just(Some("App Opened"))]), 1..40),
        contact_days in proptest::option::of(0i64..3),
        weekly in proptest::option::of(1u64..3),
    ) {
        let mut studies = studies(weekly);
        let mut user = user("u-1", true);
        let contact_limit = contact_days.map(Duration::days);
        let mut now = t0();
        let mut invites: Vec<(String, DateTime<Utc>)> = Vec::new();
        for (hours, accept, event) in steps {
            now += Duration::hours(hours);
            for study in &mut studies {
                if week_start(now) > week_start(now - Duration::hours(hours)) {
                    study.starts_this_week = 0;
                }
            }
            let moment = Moment { now, event, contact_limit, link_opened: false };
            if let Decision::Invite { rule_id, .. } = decide(&rules, &studies, &user, &moment) {
                let rule_id = rule_id.to_owned();
                let rule = rules.iter_mut().find(|r| r.id == rule_id).unwrap();
                // The promises, checked against what we recorded ourselves.
                if let Some((_, last)) = invites.iter().rev().find(|(id, _)| *id == rule_id) {
                    prop_assert!(now >= *last + rule.cooldown, "cooldown respected");
                }
                if let (Some(period), Some((_, last))) = (contact_limit, invites.last()) {
                    prop_assert!(now >= *last + period, "contact limit respected");
                }
                prop_assert!(!user.started_studies.contains(&rule.study_id), "never invited to a started study");
                prop_assert!(rule.max_starts.is_none_or(|max| rule.starts < max), "never past max starts");
                let study = studies.iter_mut().find(|s| s.id == rule.study_id).unwrap();
                prop_assert!(study.weekly_limit.is_none_or(|l| study.starts_this_week < l), "study limit respected");
                invites.push((rule_id.clone(), now));
                user.last_invite_by_rule.insert(rule_id.clone(), now);
                user.last_invite = Some(now);
                if accept {
                    rule.starts += 1;
                    study.starts_this_week += 1;
                    study.starts_this_month += 1;
                    user.started_studies.insert(rule.study_id.clone());
                }
            }
        }
    }
}

#[test]
fn sampling_is_sticky_and_near_its_percentage() {
    let rule = "rule_01";
    for reference in ["a", "bb", "user-123"] {
        assert_eq!(
            sampling_bucket(rule, reference),
            sampling_bucket(rule, reference)
        );
    }
    let users: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
    for percent in [10u32, 50, 90] {
        let inside = users
            .iter()
            .filter(|u| sampling_bucket(rule, u) < percent * 100)
            .count();
        let share = inside as f64 / users.len() as f64 * 100.0;
        assert!(
            (share - f64::from(percent)).abs() < 1.5,
            "{percent}% sampled {share:.2}%"
        );
    }
    // Another rule samples other users.
    let overlap = users
        .iter()
        .filter(|u| {
            (sampling_bucket("rule_01", u) < 5000) == (sampling_bucket("rule_02", u) < 5000)
        })
        .count();
    assert!((overlap as f64 / users.len() as f64 - 0.5).abs() < 0.02);
}

#[test]
fn explain_shows_the_bucket_even_when_the_rule_samples_everyone() {
    let rule = RuleFacts {
        id: "rule_01".into(),
        study_id: "study_0".into(),
        status: RuleStatus::Active,
        trigger: Trigger::AppEvent("Order Completed".into()),
        priority: 0,
        cooldown: Duration::hours(24),
        max_starts: None,
        starts: 0,
        sampling_percent: 100,
        starts_at: None,
        ends_at: None,
        created_at: t0(),
    };
    let moment = Moment {
        now: t0(),
        event: Some("Order Completed"),
        contact_limit: None,
        link_opened: false,
    };
    let user = user("user-123", false);
    let studies = studies(None);
    let sampling = gates(&rule, studies.first(), &user, &moment)
        .into_iter()
        .find(|g| g.gate == "sampling")
        .expect("a sampling gate");
    let bucket = f64::from(sampling_bucket("rule_01", "user-123")) / 100.0;
    assert!(sampling.passed);
    assert_eq!(sampling.detail, format!("bucket {bucket:.2}% against 100%"));
}

#[test]
fn weeks_start_on_monday_and_months_on_the_first_in_utc() {
    let wednesday = Utc.with_ymd_and_hms(2026, 11, 25, 23, 59, 0).unwrap();
    assert_eq!(
        week_start(wednesday),
        Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
    );
    let monday = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
    assert_eq!(week_start(monday), monday);
    assert_eq!(
        week_start(monday - Duration::nanoseconds(1)),
        monday - Duration::weeks(1),
        "Sunday's last instant is the week before"
    );
    assert_eq!(
        month_start(wednesday),
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    );
    // A week across a month's end starts in November; its days in December count in
    // December's month.
    let december_2 = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
    assert_eq!(
        week_start(december_2),
        Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap()
    );
    assert_eq!(
        month_start(december_2),
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
    );
}

/// An active rule of `study_0` waiting for "E", an hour's cooldown, created a day before
/// `t0`.
fn active_rule(id: &str) -> RuleFacts {
    RuleFacts {
        id: id.into(),
        study_id: "study_0".into(),
        status: RuleStatus::Active,
        trigger: Trigger::AppEvent("E".into()),
        priority: 0,
        cooldown: Duration::hours(1),
        max_starts: None,
        starts: 0,
        sampling_percent: 100,
        starts_at: None,
        ends_at: None,
        created_at: t0() - Duration::days(1),
    }
}

/// The moment "E" happens at `now`.
fn event_at(now: DateTime<Utc>) -> Moment<'static> {
    Moment {
        now,
        event: Some("E"),
        contact_limit: None,
        link_opened: false,
    }
}

#[test]
fn the_cooldown_and_the_contact_limit_end_the_instant_they_have_passed() {
    let rule = active_rule("r");
    let studies = studies(None);
    let invited = UserFacts {
        last_invite_by_rule: [("r".to_owned(), t0())].into_iter().collect(),
        ..user("u", false)
    };
    let end = t0() + Duration::hours(1);
    let us = Duration::microseconds(1);
    let reason = |now| first_failure(&rule, studies.first(), &invited, &event_at(now));
    assert_eq!(reason(end - us), Some(Reason::Cooldown));
    assert_eq!(reason(end), None);

    let other_rule = UserFacts {
        last_invite: Some(t0()),
        ..user("u", false)
    };
    let end = t0() + Duration::days(7);
    let reason = |now| {
        let moment = Moment {
            contact_limit: Some(Duration::days(7)),
            ..event_at(now)
        };
        first_failure(&rule, studies.first(), &other_rule, &moment)
    };
    assert_eq!(reason(end - us), Some(Reason::ContactLimit));
    assert_eq!(reason(end), None);
}

/// A decision and an open invite agree on the schedule: open from `starts_at`, closed from
/// `ends_at` on.
#[test]
fn the_schedule_window_is_half_open_for_decisions_and_open_invites_alike() {
    let end = t0() + Duration::hours(1);
    let rule = RuleFacts {
        starts_at: Some(t0()),
        ends_at: Some(end),
        ..active_rule("r")
    };
    let studies = studies(None);
    let user = user("u", false);
    let us = Duration::microseconds(1);
    for (now, open) in [
        (t0() - us, false),
        (t0(), true),
        (end - us, true),
        (end, false),
    ] {
        let decided = first_failure(&rule, studies.first(), &user, &event_at(now)).is_none();
        let offered = invite_closed_because(&rule, studies.first(), false, now).is_none();
        assert_eq!((decided, offered), (open, open), "{now}");
    }
}

#[test]
fn an_invite_stops_being_pending_at_its_expiry() {
    let invite = Invite {
        code: "c".into(),
        project_id: ProjectId::generate(),
        rule_id: LaunchRuleId::generate(),
        study_id: StudyId::generate(),
        reference_id: "u".into(),
        source: "app_event",
        audience_id: None,
        audience_member_id: None,
        event_name: None,
        metadata: Default::default(),
        traits: Default::default(),
        state: InviteState::Issued,
        issued_at: t0(),
        expires_at: t0() + Duration::hours(24),
        accepted_at: None,
        dismissed_at: None,
        withdrawn_at: None,
    };
    assert!(invite.is_pending(invite.expires_at - Duration::microseconds(1)));
    assert!(!invite.is_pending(invite.expires_at));
}

/// Equal priorities go to the older rule, then (created at the same instant) to the smaller
/// id, whatever order the rules come in.
#[test]
fn priority_ties_go_to_the_older_rule_then_the_smaller_id_in_any_order() {
    let older = RuleFacts {
        priority: 5,
        created_at: t0() - Duration::days(2),
        ..active_rule("b_older")
    };
    let newer = RuleFacts {
        priority: 5,
        ..active_rule("a_newer")
    };
    let twin = RuleFacts {
        priority: 5,
        ..active_rule("c_twin")
    };
    let studies = studies(None);
    let user = user("u", false);
    for (rules, winner) in [
        ([older.clone(), newer.clone()], "b_older"),
        ([newer.clone(), older], "b_older"),
        ([newer.clone(), twin.clone()], "a_newer"),
        ([twin, newer], "a_newer"),
    ] {
        match decide(&rules, &studies, &user, &event_at(t0())) {
            Decision::Invite { rule_id, .. } => assert_eq!(rule_id, winner),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_no_has_its_reason() {
    let base = RuleFacts {
        id: "r".into(),
        study_id: "study_0".into(),
        status: RuleStatus::Active,
        trigger: Trigger::AppEvent("Order Completed".into()),
        priority: 0,
        cooldown: Duration::hours(24),
        max_starts: Some(1),
        starts: 0,
        sampling_percent: 100,
        starts_at: None,
        ends_at: None,
        created_at: t0(),
    };
    let studies = studies(None);
    let moment = Moment {
        now: t0(),
        event: Some("Order Completed"),
        contact_limit: None,
        link_opened: false,
    };
    let first_failure = |rule: &RuleFacts, user: &UserFacts, moment: &Moment| {
        gates(
            rule,
            studies.iter().find(|s| s.id == rule.study_id),
            user,
            moment,
        )
        .into_iter()
        .find(|g| !g.passed)
        .map(|g| g.reason)
    };
    let u = user("u", false);
    assert_eq!(first_failure(&base, &u, &moment), None);
    assert_eq!(
        first_failure(
            &RuleFacts {
                status: RuleStatus::Paused,
                ..base.clone()
            },
            &u,
            &moment
        ),
        Some(Reason::RulePaused)
    );
    assert_eq!(
        first_failure(
            &RuleFacts {
                study_id: "study_2".into(),
                ..base.clone()
            },
            &u,
            &moment
        ),
        Some(Reason::StudyPaused)
    );
    assert_eq!(
        first_failure(
            &RuleFacts {
                ends_at: Some(t0()),
                ..base.clone()
            },
            &u,
            &moment
        ),
        Some(Reason::OutsideSchedule)
    );
    assert_eq!(
        first_failure(
            &base,
            &u,
            &Moment {
                event: Some("Other"),
                ..moment.clone()
            }
        ),
        Some(Reason::NotTriggered)
    );
    assert_eq!(
        first_failure(
            &base,
            &u,
            &Moment {
                event: None,
                link_opened: true,
                ..moment.clone()
            }
        ),
        None,
        "an opened direct link stands for the app event"
    );
    assert_eq!(
        first_failure(
            &RuleFacts {
                trigger: Trigger::Audience("aud_1".into()),
                ..base.clone()
            },
            &u,
            &moment
        ),
        Some(Reason::NotInAudience)
    );
    assert_eq!(
        first_failure(
            &RuleFacts {
                sampling_percent: 0,
                ..base.clone()
            },
            &u,
            &moment
        ),
        Some(Reason::SampledOut)
    );
    assert_eq!(
        first_failure(
            &RuleFacts {
                starts: 1,
                ..base.clone()
            },
            &u,
            &moment
        ),
        Some(Reason::MaxStartsReached)
    );
    let invited = UserFacts {
        last_invite_by_rule: [("r".to_owned(), t0() - Duration::hours(1))]
            .into_iter()
            .collect(),
        last_invite: Some(t0() - Duration::hours(1)),
        ..u.clone()
    };
    assert_eq!(
        first_failure(&base, &invited, &moment),
        Some(Reason::Cooldown)
    );
    let other_rule = UserFacts {
        last_invite: Some(t0() - Duration::hours(1)),
        ..u.clone()
    };
    assert_eq!(
        first_failure(
            &base,
            &other_rule,
            &Moment {
                contact_limit: Some(Duration::days(1)),
                ..moment.clone()
            }
        ),
        Some(Reason::ContactLimit)
    );
    let started = UserFacts {
        started_studies: ["study_0".to_owned()].into_iter().collect(),
        ..u.clone()
    };
    assert_eq!(
        first_failure(&base, &started, &moment),
        Some(Reason::AlreadyStarted)
    );
    let full_study = StudyFacts {
        weekly_limit: Some(2),
        starts_this_week: 2,
        ..studies[0].clone()
    };
    assert_eq!(
        gates(&base, Some(&full_study), &u, &moment)
            .into_iter()
            .find(|g| !g.passed)
            .map(|g| g.reason),
        Some(Reason::StudyLimit)
    );
    for reason in [Reason::RulePaused, Reason::Cooldown, Reason::LostOnPriority] {
        assert!(reason
            .code()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_'));
    }
}

#[test]
fn an_eligible_rule_outranked_by_another_lost_on_priority() {
    let rule = |id: &str, priority: i32, age_days: i64| RuleFacts {
        id: id.into(),
        study_id: "study_0".into(),
        status: RuleStatus::Active,
        trigger: Trigger::Audience("aud_1".into()),
        priority,
        cooldown: Duration::zero(),
        max_starts: None,
        starts: 0,
        sampling_percent: 100,
        starts_at: None,
        ends_at: None,
        created_at: t0() - Duration::days(age_days),
    };
    let rules = [
        rule("low", 1, 9),
        rule("high", 5, 1),
        rule("tie_newer", 5, 0),
    ];
    let moment = Moment {
        now: t0(),
        event: None,
        contact_limit: None,
        link_opened: false,
    };
    let user = user("u", true);
    assert_eq!(
        decide(&rules, &studies(None), &user, &moment),
        Decision::Invite {
            rule_id: "high",
            suppressed: vec![
                ("low", Reason::LostOnPriority),
                ("tie_newer", Reason::LostOnPriority)
            ],
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Decisions use the fast check; explain lists every gate. They never disagree.
    #[test]
    fn the_fast_check_fails_on_the_first_gate_explain_fails(
        rules in rules_strategy(),
        in_audience in any::<bool>(),
        event in prop_oneof![Just(None), Just(Some("Order Completed")), Just(Some("App Opened"))],
        link_opened in any::<bool>(),
        contact_days in proptest::option::of(0i64..3),
        weekly in proptest::option::of(0u64..2),
        hours_since_invite in proptest::option::of(0i64..72),
        reference in "[a-z0-9]{1,12}",
    ) {
        let studies = studies(weekly);
        let mut user = user(&reference, in_audience);
        if let Some(hours) = hours_since_invite {
            let at = t0() - Duration::hours(hours);
            user.last_invite = Some(at);
            for rule in &rules {
                user.last_invite_by_rule.insert(rule.id.clone(), at);
            }
        }
        let moment = Moment { now: t0(), event, contact_limit: contact_days.map(Duration::days), link_opened };
        for rule in &rules {
            let study = studies.iter().find(|s| s.id == rule.study_id);
            let explained = gates(rule, study, &user, &moment).into_iter().find(|g| !g.passed).map(|g| g.reason);
            prop_assert_eq!(uj_domain::pacing::first_failure(rule, study, &user, &moment), explained);
        }
    }
}

/// The per-rule counters count each reason at `reason as usize`: every reason is listed
/// once, at its own index, with its own code.
#[test]
fn every_reason_is_listed_at_its_own_index() {
    let codes: HashSet<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), Reason::ALL.len());
    for (index, reason) in Reason::ALL.iter().enumerate() {
        assert_eq!(*reason as usize, index, "{reason:?}");
    }
}

#[test]
fn an_invite_of_a_rule_or_study_that_stopped_is_refused_with_its_reason() {
    use uj_domain::pacing::{closed_because, RuleStatus as R, StudyStatus as S};
    let cases = [
        (R::Active, Some(S::Active), None),
        (R::Draft, Some(S::Active), Some("rule_draft")),
        (R::Paused, Some(S::Active), Some("rule_paused")),
        (R::Archived, Some(S::Paused), Some("rule_archived")),
        (R::Active, Some(S::Paused), Some("study_paused")),
        (R::Active, Some(S::Archived), Some("study_archived")),
        (R::Active, None, Some("study_archived")),
    ];
    for (rule, study, expected) in cases {
        assert_eq!(
            closed_because(rule, study).map(|r| r.code()),
            expected,
            "{rule:?} {study:?}"
        );
    }
}

#[test]
fn a_pending_invite_closes_when_it_could_no_longer_start() {
    use uj_domain::pacing::invite_closed_because;
    let rule = RuleFacts {
        id: "rule_0".into(),
        study_id: "study_0".into(),
        status: RuleStatus::Active,
        trigger: Trigger::Audience("aud_1".into()),
        priority: 0,
        cooldown: Duration::hours(1),
        max_starts: Some(3),
        starts: 2,
        sampling_percent: 100,
        starts_at: None,
        ends_at: Some(t0() + Duration::hours(1)),
        created_at: t0() - Duration::days(1),
    };
    let study = StudyFacts {
        weekly_limit: Some(5),
        starts_this_week: 4,
        ..studies(None).remove(0)
    };
    let closed = |rule: &RuleFacts, study: Option<&StudyFacts>, started: bool, at| {
        invite_closed_because(rule, study, started, at).map(Reason::code)
    };
    assert_eq!(closed(&rule, Some(&study), false, t0()), None);
    // Cooldown, sampling and the contact limit concern issuing, not an issued invite.
    let paused = RuleFacts {
        status: RuleStatus::Paused,
        ..rule.clone()
    };
    assert_eq!(
        closed(&paused, Some(&study), false, t0()),
        Some("rule_paused")
    );
    assert_eq!(closed(&rule, None, false, t0()), Some("study_archived"));
    let later = t0() + Duration::hours(1);
    assert_eq!(
        closed(&rule, Some(&study), false, later),
        Some("outside_schedule")
    );
    assert_eq!(
        closed(&rule, Some(&study), true, t0()),
        Some("already_started")
    );
    let full = RuleFacts {
        starts: 3,
        ..rule.clone()
    };
    assert_eq!(
        closed(&full, Some(&study), false, t0()),
        Some("max_starts_reached")
    );
    let week = StudyFacts {
        starts_this_week: 5,
        ..study.clone()
    };
    assert_eq!(closed(&rule, Some(&week), false, t0()), Some("study_limit"));
    let month = StudyFacts {
        monthly_limit: Some(9),
        starts_this_month: 9,
        ..study
    };
    assert_eq!(
        closed(&rule, Some(&month), false, t0()),
        Some("study_limit")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// `Reason::gate` numbers the gates as they are checked (`telling_reason` relies on it):
    /// a gate added out of its place fails here.
    #[test]
    fn gates_are_checked_in_the_order_their_reasons_are_numbered(
        rules in rules_strategy(),
        in_audience in any::<bool>(),
        event in prop_oneof![Just(None), Just(Some("Order Completed")), Just(Some("App Opened"))],
        reference in "[a-z0-9]{1,12}",
    ) {
        let studies = studies(Some(1));
        let user = user(&reference, in_audience);
        let moment = Moment { now: t0(), event, contact_limit: Some(chrono::TimeDelta::days(1)), link_opened: false };
        for rule in &rules {
            let listed = gates(rule, studies.iter().find(|s| s.id == rule.study_id), &user, &moment);
            let numbers: Vec<u8> = listed.iter().map(|g| g.reason.gate()).collect();
            prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{:?}", listed);
        }
    }
}

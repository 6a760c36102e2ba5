//! Behaviour that mutation testing (cargo-mutants) found no test would catch: boundaries of
//! the pacing gates, explain's contest gates, the limits a study or rule may hold, and the
//! page bounds of a cohort sync.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use uj_domain::cohort_sync::{parse_delivery, SyncedMember};
use uj_domain::ids::{LaunchRuleId, ProjectId, StudyId};
use uj_domain::pacing::{
    contest_gates, decide, first_failure, sampling_bucket, Decision, Moment, Reason, RuleFacts,
    RuleStatus, StudyFacts, StudyStatus, Trigger, UserFacts,
};
use uj_domain::studies::{
    LaunchMode, LaunchRule, PromptCopy, Study, Surface, MAX_COOLDOWN_SECONDS, MAX_STARTS,
};
use uj_domain::{one_line, sendable_event, validation_text};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn active_rule(id: &str, priority: i32) -> RuleFacts {
    RuleFacts {
        id: id.into(),
        study_id: "study_0".into(),
        status: RuleStatus::Active,
        trigger: Trigger::AppEvent("Order Completed".into()),
        priority,
        cooldown: Duration::hours(1),
        max_starts: None,
        starts: 0,
        sampling_percent: 100,
        starts_at: None,
        ends_at: None,
        created_at: t0() - Duration::days(1),
    }
}

fn study() -> StudyFacts {
    StudyFacts {
        id: "study_0".into(),
        status: StudyStatus::Active,
        weekly_limit: None,
        monthly_limit: None,
        starts_this_week: 0,
        starts_this_month: 0,
    }
}

fn user(reference: &str) -> UserFacts {
    UserFacts {
        reference_id: reference.into(),
        ..UserFacts::default()
    }
}

fn moment() -> Moment<'static> {
    Moment {
        now: t0(),
        event: Some("Order Completed"),
        contact_limit: None,
        link_opened: false,
    }
}

/// Explain's last two gates: the user's open invite (passes for none or this rule's own) and
/// priority (passes unless another rule won), each naming the other rule it blames.
#[test]
fn contest_gates_blame_the_other_rule_and_pass_for_this_one() {
    let high = active_rule("r_high", 5);
    let low = active_rule("r_low", 1);
    let rivals = [&high, &low];
    let decision = decide([&high, &low], &[study()], &user("u"), &moment());
    assert!(matches!(
        decision,
        Decision::Invite {
            rule_id: "r_high",
            ..
        }
    ));

    let [open, priority] = contest_gates(&high, None, &rivals, &decision);
    assert!(open.passed, "{open:?}");
    assert_eq!(open.other_rule, None);
    assert_eq!(open.detail, "the user has no open invite");
    assert!(priority.passed, "{priority:?}");
    assert_eq!(priority.other_rule, None);
    assert!(
        priority.detail.starts_with("highest priority (priority 5)"),
        "{priority:?}"
    );

    let [open, priority] = contest_gates(&low, None, &rivals, &decision);
    assert!(open.passed);
    assert!(!priority.passed);
    assert_eq!(priority.reason, Reason::LostOnPriority);
    assert_eq!(priority.other_rule.as_deref(), Some("r_high"));
    assert_eq!(
        priority.detail,
        "rule r_high (priority 5) outranks it (priority 1)"
    );

    // An open invite from another rule holds this one back, naming it.
    let [open, _] = contest_gates(&low, Some("r_high"), &rivals, &decision);
    assert!(!open.passed);
    assert_eq!(open.reason, Reason::OpenInvite);
    assert_eq!(open.other_rule.as_deref(), Some("r_high"));
    assert!(open.detail.contains("from rule r_high"), "{open:?}");

    // Its own open invite does not.
    let [open, _] = contest_gates(&high, Some("r_high"), &rivals, &decision);
    assert!(open.passed);
    assert_eq!(open.other_rule, None);
    assert_eq!(open.detail, "the user's open invite is from this rule");

    // No rule invites: nobody won on priority.
    let none = Decision::NoInvite {
        reasons: vec![("r_high", Reason::Cooldown), ("r_low", Reason::Cooldown)],
    };
    let [_, priority] = contest_gates(&low, None, &rivals, &none);
    assert!(priority.passed);
    assert_eq!(priority.other_rule, None);
}

/// The per-rule counters count what `suppressed` lists: every rule that did not invite.
#[test]
fn suppressed_lists_every_rule_that_did_not_invite() {
    let high = active_rule("r_high", 5);
    let low = active_rule("r_low", 1);
    let paused = RuleFacts {
        status: RuleStatus::Paused,
        ..active_rule("r_paused", 9)
    };
    let decision = decide([&high, &low, &paused], &[study()], &user("u"), &moment());
    let mut suppressed = decision.suppressed().to_vec();
    suppressed.sort_by_key(|(id, _)| *id);
    assert_eq!(
        suppressed,
        [
            ("r_low", Reason::LostOnPriority),
            ("r_paused", Reason::RulePaused)
        ]
    );
    let none = decide([&paused], &[study()], &user("u"), &moment());
    assert_eq!(none.suppressed(), [("r_paused", Reason::RulePaused)]);
}

/// A user in bucket `b` (of 10000) is sampled in at `p`% exactly when `b < p * 100`: at 0%
/// nobody, and a bucket on the boundary is out.
#[test]
fn sampling_excludes_the_bucket_on_the_boundary() {
    let rule = active_rule("r_sample", 0);
    let reference = (0..)
        .map(|i| format!("user_{i}"))
        .find(|r| {
            let bucket = sampling_bucket(&rule.id, r);
            bucket.is_multiple_of(100) && bucket < 9_900
        })
        .unwrap();
    let percent = (sampling_bucket(&rule.id, &reference) / 100) as u8;
    let at = |sampling_percent: u8| {
        first_failure(
            &RuleFacts {
                sampling_percent,
                ..rule.clone()
            },
            Some(&study()),
            &user(&reference),
            &moment(),
        )
    };
    assert_eq!(at(percent), Some(Reason::SampledOut), "{reference}");
    assert_eq!(at(percent + 1), None, "{reference}");

    let bucket_zero = (0..)
        .map(|i| format!("user_{i}"))
        .find(|r| sampling_bucket(&rule.id, r) == 0)
        .unwrap();
    assert_eq!(
        first_failure(
            &RuleFacts {
                sampling_percent: 0,
                ..rule.clone()
            },
            Some(&study()),
            &user(&bucket_zero),
            &moment(),
        ),
        Some(Reason::SampledOut),
        "0% samples nobody, bucket 0 included"
    );
}

/// A study's monthly limit stops its rules at the cap, not before.
#[test]
fn the_monthly_limit_stops_rules_at_the_cap() {
    let rule = active_rule("r", 0);
    let at = |starts_this_month: u64| {
        let study = StudyFacts {
            monthly_limit: Some(3),
            starts_this_month,
            ..study()
        };
        first_failure(&rule, Some(&study), &user("u"), &moment())
    };
    assert_eq!(at(2), None);
    assert_eq!(at(3), Some(Reason::StudyLimit));
    assert_eq!(at(4), Some(Reason::StudyLimit));
}

fn a_study() -> Study {
    let now = Utc::now();
    Study {
        id: StudyId::generate(),
        project_id: ProjectId::generate(),
        name: "S".into(),
        status: StudyStatus::Active,
        interview_url: "https://r.example.com/i".into(),
        launch_mode: LaunchMode::InApp,
        weekly_limit: None,
        monthly_limit: None,
        public_code: "p".into(),
        public_link: true,
        created_at: now,
        updated_at: now,
    }
}

/// Limits are at least 1, and a monthly limit is at least the weekly one (equal is fine).
#[test]
fn study_limits_are_positive_and_monthly_at_least_weekly() {
    let with = |weekly: Option<i64>, monthly: Option<i64>| Study {
        weekly_limit: weekly,
        monthly_limit: monthly,
        ..a_study()
    };
    let field = |s: Study| s.validate().err().map(|e| e.field);
    assert_eq!(field(with(Some(1), Some(1))), None);
    assert_eq!(field(with(Some(5), Some(5))), None);
    assert_eq!(field(with(Some(5), Some(6))), None);
    assert_eq!(field(with(Some(0), None)), Some("weekly_limit"));
    assert_eq!(field(with(None, Some(0))), Some("monthly_limit"));
    assert_eq!(field(with(Some(-1), None)), Some("weekly_limit"));
    assert_eq!(field(with(Some(6), Some(5))), Some("monthly_limit"));
    assert_eq!(field(with(Some(MAX_STARTS), None)), None);
    assert_eq!(
        field(with(Some(MAX_STARTS + 1), None)),
        Some("weekly_limit")
    );
}

/// A study stored before a bound can be paused; only the fields a change sets are checked.
#[test]
fn a_study_stored_before_a_bound_can_still_be_paused() {
    let stored_variants = [
        Study {
            name: "Order\u{200B}Study".into(),
            ..a_study()
        },
        Study {
            weekly_limit: Some(0),
            ..a_study()
        },
        Study {
            monthly_limit: Some(0),
            ..a_study()
        },
        Study {
            weekly_limit: Some(10),
            monthly_limit: Some(5),
            ..a_study()
        },
    ];
    for stored in stored_variants {
        assert!(stored.validate().is_err(), "{stored:?}");
        let paused = Study {
            status: StudyStatus::Paused,
            ..stored.clone()
        };
        assert_eq!(paused.validate_change_from(&stored), Ok(()), "{stored:?}");
    }
    let stored = a_study();
    let lowered = Study {
        weekly_limit: Some(0),
        ..stored.clone()
    };
    assert_eq!(
        lowered.validate_change_from(&stored).unwrap_err().field,
        "weekly_limit"
    );
}

fn a_rule() -> LaunchRule {
    let now = Utc::now();
    LaunchRule {
        id: LaunchRuleId::generate(),
        project_id: ProjectId::generate(),
        study_id: StudyId::generate(),
        name: "Checkout".into(),
        status: RuleStatus::Active,
        trigger: Trigger::AppEvent("Order Completed".into()),
        surface: Surface::SdkPrompt,
        prompt: PromptCopy::default(),
        priority: 0,
        cooldown_seconds: 0,
        max_starts: None,
        sampling_percent: 100,
        starts_at: None,
        ends_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// A prompt is offered while its rule is an active SDK-prompt rule inside its half-open
/// schedule window.
#[test]
fn prompts_are_offered_by_active_prompt_rules_inside_their_window() {
    let now = t0();
    assert!(a_rule().offers_prompts_at(now));
    for status in [RuleStatus::Draft, RuleStatus::Paused, RuleStatus::Archived] {
        let rule = LaunchRule { status, ..a_rule() };
        assert!(!rule.offers_prompts_at(now), "{status:?}");
    }
    let link = LaunchRule {
        surface: Surface::DirectLink,
        ..a_rule()
    };
    assert!(!link.offers_prompts_at(now));
    let window = |starts_at: Option<DateTime<Utc>>, ends_at: Option<DateTime<Utc>>| {
        LaunchRule {
            starts_at,
            ends_at,
            ..a_rule()
        }
        .offers_prompts_at(now)
    };
    assert!(window(Some(now), None), "starts at now: inside");
    assert!(!window(Some(now + Duration::seconds(1)), None));
    assert!(window(None, Some(now + Duration::seconds(1))));
    assert!(!window(None, Some(now)), "ends at now: outside");
    assert!(!window(None, Some(now - Duration::seconds(1))));
}

/// The bounds a rule is held to, at their edges.
#[test]
fn rule_bounds_hold_at_their_edges() {
    let field = |rule: LaunchRule| rule.validate().err().map(|e| e.field);
    assert_eq!(
        MAX_COOLDOWN_SECONDS, 316_224_000,
        "ten years, as the message says"
    );
    assert_eq!(
        field(LaunchRule {
            cooldown_seconds: 316_224_000,
            ..a_rule()
        }),
        None
    );
    assert_eq!(
        field(LaunchRule {
            cooldown_seconds: 316_224_001,
            ..a_rule()
        }),
        Some("cooldown_seconds")
    );
    assert_eq!(
        field(LaunchRule {
            max_starts: Some(1),
            ..a_rule()
        }),
        None
    );
    assert_eq!(
        field(LaunchRule {
            max_starts: Some(MAX_STARTS),
            ..a_rule()
        }),
        None
    );
    assert_eq!(
        field(LaunchRule {
            trigger: Trigger::Audience("aud_1".into()),
            ..a_rule()
        }),
        None,
        "an audience rule naming an audience"
    );
    let prompt = |prompt: PromptCopy| field(LaunchRule { prompt, ..a_rule() });
    assert_eq!(
        prompt(PromptCopy {
            title: "x".repeat(120),
            message: "Two lines\nand a\ttab".into(),
            start_label: "s".repeat(40),
            dismiss_label: "Later".into(),
        }),
        None
    );
    assert_eq!(
        prompt(PromptCopy {
            message: "bell\u{7}".into(),
            ..PromptCopy::default()
        }),
        Some("prompt.message")
    );
    assert_eq!(
        prompt(PromptCopy {
            title: "nul\u{0}".into(),
            ..PromptCopy::default()
        }),
        Some("prompt.title")
    );
}

/// A rule stored before a bound can be paused: each field is checked only when changed.
#[test]
fn a_rule_stored_before_a_bound_can_still_be_paused() {
    let long = |n: usize| "x".repeat(n);
    let stored_variants = [
        LaunchRule {
            trigger: Trigger::AppEvent("Order\u{200B}Completed".into()),
            ..a_rule()
        },
        LaunchRule {
            prompt: PromptCopy {
                title: long(121),
                ..PromptCopy::default()
            },
            ..a_rule()
        },
        LaunchRule {
            prompt: PromptCopy {
                message: long(501),
                ..PromptCopy::default()
            },
            ..a_rule()
        },
        LaunchRule {
            prompt: PromptCopy {
                start_label: long(41),
                ..PromptCopy::default()
            },
            ..a_rule()
        },
        LaunchRule {
            prompt: PromptCopy {
                dismiss_label: long(41),
                ..PromptCopy::default()
            },
            ..a_rule()
        },
        LaunchRule {
            sampling_percent: 101,
            ..a_rule()
        },
        LaunchRule {
            starts_at: Some(Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap()),
            ..a_rule()
        },
        LaunchRule {
            ends_at: Some(Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap()),
            ..a_rule()
        },
        LaunchRule {
            starts_at: Some(t0()),
            ends_at: Some(t0() - Duration::days(1)),
            ..a_rule()
        },
    ];
    for stored in stored_variants {
        assert!(stored.validate().is_err(), "{stored:?}");
        let paused = LaunchRule {
            status: RuleStatus::Paused,
            ..stored.clone()
        };
        assert_eq!(paused.validate_change_from(&stored), Ok(()), "{stored:?}");
    }
}

/// Text of exactly the most characters allowed is kept; blank text from elsewhere is none;
/// an app can send a plain event name and not a blank or invisible one.
#[test]
fn text_bounds_and_blank_names() {
    assert_eq!(validation_text("name", "abc", 3).as_deref(), Ok("abc"));
    assert!(validation_text("name", "abcd", 3).is_err());
    assert_eq!(one_line(" \n\t ", 10), None);
    assert_eq!(one_line("", 10), None);
    assert!(sendable_event("Order Completed"));
    assert!(!sendable_event("  "));
    assert!(!sendable_event("Order\u{200B}Completed"));
}

fn members_page(page_info: serde_json::Value, session: Option<&str>) -> Vec<u8> {
    json!({"action": "members", "parameters": {
        "mixpanel_project_id": 1, "mixpanel_cohort_id": 2,
        "mixpanel_session_id": session, "page_info": page_info,
        "members": [{"mixpanel_distinct_id": "a"}]}})
    .to_string()
    .into_bytes()
}

/// A snapshot's pages count from 1 up to its total (at most 100,000); one of several pages
/// needs a session id.
#[test]
fn snapshot_pages_count_from_one_to_their_total() {
    let parsed = |info: serde_json::Value, session: Option<&str>| {
        parse_delivery(&members_page(info, session), &[]).map(|d| (d.page, d.total_pages))
    };
    assert_eq!(
        parsed(json!({"page_count": 2, "total_pages": 2}), Some("s")),
        Ok((2, 2))
    );
    assert_eq!(
        parsed(
            json!({"page_count": 100_000, "total_pages": 100_000}),
            Some("s")
        ),
        Ok((100_000, 100_000))
    );
    for (page, total) in [(3, 2), (0, 2), (1, 0), (1, 100_001)] {
        let error =
            parsed(json!({"page_count": page, "total_pages": total}), Some("s")).unwrap_err();
        assert!(
            error.0.contains("page_info says page"),
            "{page}/{total}: {error}"
        );
    }
    let error = parsed(json!({"page_count": 1, "total_pages": 2}), None).unwrap_err();
    assert!(
        error.0.contains("needs parameters.mixpanel_session_id"),
        "{error}"
    );
    assert_eq!(
        parsed(json!({"page_count": 1, "total_pages": 1}), None),
        Ok((1, 1)),
        "one page needs no session"
    );
}

/// An id of exactly 1024 bytes is kept; one byte more is refused.
#[test]
fn ids_of_at_most_1024_bytes_are_kept() {
    let body = |id: &str| {
        json!({"action": "add_members", "parameters": {
            "mixpanel_project_id": 1, "mixpanel_cohort_id": 2,
            "members": [{"mixpanel_distinct_id": id}]}})
        .to_string()
    };
    let id = "i".repeat(1024);
    let delivery = parse_delivery(body(&id).as_bytes(), &[]).unwrap();
    assert_eq!(delivery.members[0].provider_member_id, id);
    assert!(parse_delivery(body(&"i".repeat(1025)).as_bytes(), &[]).is_err());
}

/// Only members whose id no app can send are noted, counted one by one.
#[test]
fn the_note_counts_only_members_no_app_can_name() {
    let body = json!({"action": "add_members", "parameters": {
        "mixpanel_project_id": 1, "mixpanel_cohort_id": 2, "members": [
            {"mixpanel_distinct_id": "ok"},
            {"mixpanel_distinct_id": "fine"},
            {"mixpanel_distinct_id": "r".repeat(300)}]}});
    let delivery = parse_delivery(body.to_string().as_bytes(), &[]).unwrap();
    let note = delivery.skipped_note().unwrap();
    assert!(note.starts_with("1 member's id"), "{note}");
    let plain = json!({"action": "add_members", "parameters": {
        "mixpanel_project_id": 1, "mixpanel_cohort_id": 2, "members": [
            {"mixpanel_distinct_id": "ok"}]}});
    let delivery = parse_delivery(plain.to_string().as_bytes(), &[]).unwrap();
    assert_eq!(delivery.skipped_note(), None);
}

/// Taking a key off the allowlist drops it, and says whether anything was dropped.
#[test]
fn keep_allowlisted_keeps_listed_keys_and_says_if_any_went() {
    use uj_domain::cohort_sync::keep_allowlisted;
    let mut traits = serde_json::Map::new();
    traits.insert("plan".into(), json!("pro"));
    traits.insert("email".into(), json!("a@example.com"));
    assert!(!keep_allowlisted(
        &mut traits.clone(),
        &["plan".into(), "email".into()]
    ));
    assert!(keep_allowlisted(&mut traits, &["plan".into()]));
    assert_eq!(traits.keys().collect::<Vec<_>>(), ["plan"]);
}

/// A diff's members digest is the same for the same ids in the same order, and another for
/// other ids.
#[test]
fn members_digest_tells_member_lists_apart() {
    use uj_domain::cohort_sync::members_digest;
    let member = |id: &str, reference: Option<&str>| SyncedMember {
        provider_member_id: id.into(),
        reference_id: reference.map(str::to_owned),
        traits: serde_json::Map::new(),
    };
    let a = [member("a", None), member("b", Some("r"))];
    let digest = members_digest(&a);
    assert_eq!(digest.len(), 64);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(digest, members_digest(&a.clone()));
    assert_ne!(digest, members_digest(&[member("a", None)]));
    assert_ne!(
        digest,
        members_digest(&[member("a", None), member("b", None)])
    );
}

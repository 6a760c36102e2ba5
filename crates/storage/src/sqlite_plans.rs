//! The plans SQLite chooses for queries whose cost must not grow with the rest of the data:
//! read on an empty database, as SQLite plans without statistics (no `ANALYZE` runs here),
//! so the plan is the one every database of this schema gets.

use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

/// The query plan's steps for `sql`, as `EXPLAIN QUERY PLAN` words them.
async fn plan(sql: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("plans.db").display()
    );
    let mut db = SqliteConnection::connect(&url).await.unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut db)
        .await
        .unwrap();
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(&mut db)
        .await
        .unwrap();
    rows.into_iter().map(|row| row.3).collect()
}

#[tokio::test]
async fn a_member_is_found_by_two_seeks_never_by_walking_the_audience() {
    let steps = plan(crate::shared_cohort_sync::FIND_AUDIENCE_MEMBERS).await;
    let members: Vec<_> = steps
        .iter()
        .filter(|s| s.contains("audience_members"))
        .collect();
    assert_eq!(members.len(), 2, "{steps:#?}");
    assert!(
        members
            .iter()
            .all(|s| s.ends_with("(audience_id=? AND provider_member_id=?)")
                || s.ends_with("(match_key=? AND audience_id=?)")),
        "{steps:#?}"
    );
}

#[tokio::test]
async fn an_audience_s_sync_history_is_read_from_its_own_index_in_order() {
    let steps = plan(crate::shared_cohort_sync::AUDIENCE_LEDGER_PAGE).await;
    assert!(
        steps
            .iter()
            .any(|s| s.contains("USING INDEX sync_ledger_by_audience (audience_id=?)")),
        "{steps:#?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("TEMP B-TREE")),
        "{steps:#?}"
    );
    let steps = plan(crate::shared_cohort_sync::PROJECT_LEDGER_PAGE).await;
    assert!(
        steps
            .iter()
            .any(|s| s.contains("USING INDEX sync_ledger_by_project (project_id=?)")),
        "{steps:#?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("TEMP B-TREE")),
        "{steps:#?}"
    );
}

#[tokio::test]
async fn a_rule_s_invites_are_counted_from_its_index_alone() {
    let steps = plan(crate::shared_invites::RULE_INVITES_BY_STATE).await;
    assert!(
        steps
            .iter()
            .any(|s| s.contains("USING COVERING INDEX invites_by_rule (rule_id=?)")),
        "{steps:#?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("TEMP B-TREE")),
        "{steps:#?}"
    );
}

/// A rule's attribution records page by their own index, in its order: no sort of all the
/// rule's invites for each page.
#[tokio::test]
async fn a_rule_s_invites_page_from_its_index_in_order() {
    for (sql, seek) in [
        (crate::shared_invites::RULE_INVITES_FIRST, "(rule_id=?)"),
        (
            crate::shared_invites::RULE_INVITES_AFTER,
            "(rule_id=? AND code<?)",
        ),
    ] {
        let steps = plan(sql).await;
        let by_index = format!("invites USING INDEX invites_by_rule_code {seek}");
        assert!(steps.iter().any(|s| s.ends_with(&by_index)), "{steps:#?}");
        assert!(
            !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{steps:#?}"
        );
    }
}

/// The erase of traits off the allowlist reads each batch from where the last one ended:
/// one seek, never the audience or the project's invites from their start (which made the
/// erase quadratic: 99 s of reads for a million members).
#[tokio::test]
async fn the_trait_erase_seeks_each_batch() {
    for (sql, seek) in [
        (
            crate::shared_cohort_sync::ERASE_MEMBERS_PAGE,
            "audience_members USING PRIMARY KEY (audience_id=? AND provider_member_id>?)",
        ),
        (
            crate::shared_cohort_sync::ERASE_STAGED_PAGE,
            "sync_staged_members USING INDEX sqlite_autoindex_sync_staged_members_1 (audience_id=? AND (session_id,provider_member_id)>(?,?))",
        ),
        (
            crate::shared_cohort_sync::ERASE_NEXT_USERS,
            "invites USING COVERING INDEX invites_by_user (project_id=? AND reference_id>?)",
        ),
        (
            crate::shared_cohort_sync::ERASE_USERS_INVITES,
            "invites USING INDEX invites_by_user (project_id=? AND reference_id>? AND reference_id<?)",
        ),
    ] {
        let steps = plan(sql).await;
        assert!(steps.iter().any(|s| s.ends_with(seek)), "{seek}: {steps:#?}");
        assert!(
            !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{steps:#?}"
        );
    }
}

/// A removal's withdrawal checks each open invite of the audience by a seek of its user's
/// rows, never by walking the audience's members.
#[tokio::test]
async fn a_removal_checks_each_open_invite_by_its_user_s_rows() {
    let sql = format!(
        "UPDATE invites SET state = 'withdrawn', withdrawn_at = $2 WHERE {}",
        crate::shared_cohort_sync::LEFT_MEMBERS_INVITES
    );
    let steps = plan(&sql).await;
    let members: Vec<_> = steps
        .iter()
        .filter(|s| s.contains(" m ") || s.contains(" c "))
        .collect();
    assert_eq!(
        members,
        [
            "SEARCH m USING COVERING INDEX audience_members_by_match_key (match_key=? AND audience_id=? AND exited_at=?)",
            "SEARCH c USING PRIMARY KEY (audience_id=? AND provider_member_id=?)",
        ],
        "{steps:#?}"
    );
}

/// An accept's "started before" check seeks the user's invites, never the study's starts.
#[tokio::test]
async fn an_accept_checks_the_user_s_invites_not_the_study_s_starts() {
    let steps = plan(crate::shared_invites::STARTED_BEFORE).await;
    assert!(
        steps
            .iter()
            .any(|s| s
                .contains("invites USING INDEX invites_by_user (project_id=? AND reference_id=?")),
        "{steps:#?}"
    );
}

/// A project's live rules and studies are found in the partial indexes of the live ones,
/// never by walking its archived rules (unbounded: the live limit does not count them), and
/// the rules come in their order, unsorted.
#[tokio::test]
async fn live_rules_and_studies_are_read_from_their_own_index() {
    for (sql, seek) in [
        (
            crate::shared_studies::LIVE_RULES,
            "launch_rules_live (project_id=?)",
        ),
        (
            crate::shared_studies::LIVE_RULE_COUNT,
            "launch_rules_live (project_id=?)",
        ),
        (
            crate::shared_studies::LIVE_RULE_STARTS,
            "launch_rules_live (project_id=?)",
        ),
        (
            crate::shared_studies::LIVE_STUDY_STARTS,
            "launch_rules_live (project_id=?)",
        ),
        (
            crate::shared_cohort_sync::RULES_TARGETING,
            "launch_rules_live (project_id=?)",
        ),
        (
            crate::shared_studies::LIVE_STUDY_COUNT,
            "studies_live (project_id=?)",
        ),
    ] {
        let steps = plan(sql).await;
        assert!(steps.iter().any(|s| s.ends_with(seek)), "{sql}: {steps:#?}");
        assert!(
            !steps
                .iter()
                .any(|s| s.contains("_by_project (project_id=?)")),
            "{sql}: {steps:#?}"
        );
        assert!(
            !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{sql}: {steps:#?}"
        );
    }
}

#[tokio::test]
async fn a_user_s_membership_of_one_audience_is_one_seek_in_the_match_key_index() {
    let steps = plan(crate::shared_cohort_sync::USER_MEMBERSHIP_OF).await;
    assert!(
        steps.iter().any(|s| s.contains(
            "USING COVERING INDEX audience_members_by_match_key (match_key=? AND audience_id=?"
        )),
        "{steps:#?}"
    );
}

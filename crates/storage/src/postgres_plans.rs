//! The plans PostgreSQL chooses, once it has statistics (autovacuum's `ANALYZE`), for
//! queries whose cost must not grow with the rest of the data. Unlike SQLite, PostgreSQL
//! plans by the data, so each test loads the shape that misled it. Skipped without a
//! PostgreSQL server unless `UJ_REQUIRE_POSTGRES` is set.

use sqlx::postgres::PgConnection;
use sqlx::Connection;

use crate::testing::TestDatabase;

#[tokio::test]
async fn a_quiet_audience_s_sync_history_is_read_from_its_own_index() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    crate::connect(&db.url).await.expect("migrated");
    let mut pg = PgConnection::connect(&db.url).await.unwrap();
    // A busy audience got 40,000 deliveries since the quiet one's two.
    sqlx::raw_sql(
        "INSERT INTO projects (id, name, public_key, created_at) VALUES ('p', 'Shop', 'pk', now());
         INSERT INTO audiences (id, project_id, mixpanel_cohort_id, name, description, created_at)
         VALUES ('quiet', 'p', '1', 'Quiet', '', now()), ('busy', 'p', '2', 'Busy', '', now());
         INSERT INTO sync_ledger (id, project_id, audience_id, action, members, added, removed, outcome, received_at)
         SELECT 'l' || lpad(i::text, 6, '0'), 'p', CASE WHEN i <= 2 THEN 'quiet' ELSE 'busy' END,
                'add_members', 1, 1, 0, 'applied', now()
         FROM generate_series(1, 40000) AS i;
         ANALYZE;",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    let explain = format!(
        "EXPLAIN (FORMAT JSON) {}",
        crate::shared_cohort_sync::AUDIENCE_LEDGER_PAGE
    );
    let plan: serde_json::Value = sqlx::query_scalar(&explain)
        .persistent(false)
        .bind("p")
        .bind("")
        .bind(2_i64)
        .bind("quiet")
        .fetch_one(&mut pg)
        .await
        .unwrap();
    let plan = plan.to_string();
    assert!(plan.contains("sync_ledger_by_audience"), "{plan}");
    assert!(!plan.contains("sync_ledger_pkey"), "{plan}");
}

/// A quiet rule's attribution records page by `invites_by_rule_code` (a seek to the cursor,
/// in order), not by walking back through the busy rules' invites (for a busy rule, walking
/// the codes and skipping the few others' is as good, and PostgreSQL may).
#[tokio::test]
async fn a_rule_s_invites_page_from_its_own_index() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    crate::connect(&db.url).await.expect("migrated");
    let mut pg = PgConnection::connect(&db.url).await.unwrap();
    // A busy rule issued 40,000 invites since the quiet one's three.
    sqlx::raw_sql(
        "INSERT INTO projects (id, name, public_key, created_at) VALUES ('p', 'Shop', 'pk', now());
         INSERT INTO studies (id, project_id, name, status, interview_url, launch_mode, public_code, created_at, updated_at)
         VALUES ('s', 'p', 'S', 'active', 'https://x.example', 'in_app', 'pc', now(), now());
         INSERT INTO launch_rules (id, project_id, study_id, name, status, trigger_type, trigger_value, surface,
             prompt_title, prompt_message, prompt_start_label, prompt_dismiss_label, priority, cooldown_seconds,
             sampling_percent, created_at, updated_at)
         SELECT r, 'p', 's', r, 'active', 'app_event', 'E', 'sdk_prompt', '', '', '', '', 0, 0, 100, now(), now()
         FROM unnest(ARRAY['quiet', 'busy']) AS r;
         INSERT INTO invites (code, project_id, rule_id, study_id, reference_id, source, event_name, metadata,
             traits, state, issued_at, expires_at)
         SELECT 'c' || lpad(i::text, 6, '0'), 'p', CASE WHEN i <= 3 THEN 'quiet' ELSE 'busy' END, 's',
                'u' || i, 'app_event', 'E', '{}', '{}', 'expired', now(), now()
         FROM generate_series(1, 40000) AS i;
         ANALYZE;",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    let explain = format!(
        "EXPLAIN (FORMAT JSON) {}",
        crate::shared_invites::RULE_INVITES_AFTER
    );
    let plan: serde_json::Value = sqlx::query_scalar(&explain)
        .persistent(false)
        .bind("quiet")
        .bind("p")
        .bind("c000003")
        .bind(21_i64)
        .fetch_one(&mut pg)
        .await
        .unwrap();
    let plan = plan.to_string();
    assert!(plan.contains("invites_by_rule_code"), "{plan}");
    assert!(!plan.contains("\"Sort\""), "{plan}");
}

/// A project's live rules and studies are found in the partial indexes of the live ones,
/// never by walking its archived rules (unbounded: the live limit does not count them),
/// whether PostgreSQL plans for the project or keeps a generic plan.
#[tokio::test]
async fn live_rules_and_studies_are_read_from_their_own_index() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    crate::connect(&db.url).await.expect("migrated");
    let mut pg = PgConnection::connect(&db.url).await.unwrap();
    // Each of 20 projects archived 1,000 studies and 5,000 rules; p1 has 3 of each live.
    sqlx::raw_sql(
        "INSERT INTO projects (id, name, public_key, created_at)
         SELECT 'p' || i, 'Shop', 'pk' || i, now() FROM generate_series(1, 20) AS i;
         INSERT INTO studies (id, project_id, name, status, interview_url, launch_mode, public_code, created_at, updated_at)
         SELECT 's' || i, 'p' || (i % 20 + 1), 'S', CASE WHEN i <= 60 AND i % 20 = 0 THEN 'active' ELSE 'archived' END,
                'https://x.example', 'in_app', 'pc' || i, now(), now()
         FROM generate_series(1, 20000) AS i;
         INSERT INTO launch_rules (id, project_id, study_id, name, status, trigger_type, trigger_value, surface,
             prompt_title, prompt_message, prompt_start_label, prompt_dismiss_label, priority, cooldown_seconds,
             sampling_percent, created_at, updated_at)
         SELECT 'r' || i, 'p' || (i % 20 + 1), 's' || (i % 20000 + 1), 'R',
                CASE WHEN i <= 60 AND i % 20 = 0 THEN 'active' ELSE 'archived' END,
                'audience', 'a', 'sdk_prompt', '', '', '', '', 0, 0, 100, now(), now()
         FROM generate_series(1, 100000) AS i;
         ANALYZE;",
    )
    .execute(&mut pg)
    .await
    .unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut pg)
            .await
            .unwrap();
        for (sql, index) in [
            (crate::shared_studies::LIVE_RULES, "launch_rules_live"),
            (crate::shared_studies::LIVE_RULE_COUNT, "launch_rules_live"),
            (crate::shared_studies::LIVE_RULE_STARTS, "launch_rules_live"),
            (
                crate::shared_studies::LIVE_STUDY_STARTS,
                "launch_rules_live",
            ),
            (
                crate::shared_cohort_sync::RULES_TARGETING,
                "launch_rules_live",
            ),
            (crate::shared_studies::LIVE_STUDY_COUNT, "studies_live"),
        ] {
            // Prepared, as the store runs it, with the values it binds.
            let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
            let mut query = sqlx::query_scalar::<_, serde_json::Value>(&explain).bind("p1");
            if sql.contains("$3") {
                query = query.bind(chrono::Utc::now()).bind(chrono::Utc::now());
            } else if sql.contains("$2") {
                query = query.bind("a");
            }
            let plan = query.fetch_one(&mut pg).await.unwrap();
            // Every read of the table is of its live index.
            let table = index.trim_end_matches("_live");
            let mut reads = Vec::new();
            scans_of(&plan, table, &mut reads);
            assert!(
                !reads.is_empty() && reads.iter().all(|read| read == index),
                "{mode}: {sql}: {plan}"
            );
        }
    }
}

/// The index each node of `plan` reading `table` reads (empty for a scan of the table).
fn scans_of(plan: &serde_json::Value, table: &str, found: &mut Vec<String>) {
    match plan {
        serde_json::Value::Object(node) => {
            let node_type = node.get("Node Type").and_then(|v| v.as_str());
            // A bitmap heap scan's index is its child's.
            if node.get("Relation Name").and_then(|v| v.as_str()) == Some(table)
                && node_type != Some("Bitmap Heap Scan")
            {
                let index = node.get("Index Name").and_then(|v| v.as_str());
                found.push(index.unwrap_or_default().to_owned());
            }
            if node_type == Some("Bitmap Index Scan") {
                let index = node
                    .get("Index Name")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                if index.starts_with(table) {
                    found.push(index.to_owned());
                }
            }
            node.values().for_each(|v| scans_of(v, table, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| scans_of(v, table, found)),
        _ => {}
    }
}

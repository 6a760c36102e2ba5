//! SQLite migrations that rebuild a table keep its rows and its rules.

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

static MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The migrations up to `version`.
fn up_to(version: i64) -> Migrator {
    Migrator {
        migrations: MIGRATIONS
            .migrations
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..Migrator::DEFAULT
    }
}

const INSERT: &str =
    "INSERT INTO invites (code, project_id, rule_id, study_id, reference_id, source,
    audience_id, audience_member_id, event_name, metadata, traits, state, issued_at, expires_at,
    accepted_at, dismissed_at)
    VALUES ($1, 'p', 'r', 's', 'ref-1', 'audience', 'a', 'm', NULL, '{}', '{\"plan\":\"pro\"}', $2,
    '2026-11-01T00:00:00.000000Z', '2026-11-08T00:00:00.000000Z', $3, NULL)";

/// One invite of user `ref-1`, in `state`.
async fn insert(
    db: &mut SqliteConnection,
    code: &str,
    state: &str,
    accepted_at: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT)
        .bind(code)
        .bind(state)
        .bind(accepted_at)
        .execute(db)
        .await
        .map(drop)
}

#[tokio::test]
async fn rebuilding_invites_keeps_every_invite_and_still_rejects_unknown_states() {
    let dir = tempfile::tempdir().unwrap();
    // No parent rows: the invites stand alone with foreign keys off.
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("db.sqlite"))
        .create_if_missing(true)
        .foreign_keys(false);
    let mut db = SqliteConnection::connect_with(&options).await.unwrap();
    up_to(13).run(&mut db).await.unwrap();
    for (code, state, accepted_at) in [
        ("c-issued", "issued", None),
        (
            "c-accepted",
            "accepted",
            Some("2026-11-02T00:00:00.000000Z"),
        ),
    ] {
        insert(&mut db, code, state, accepted_at).await.unwrap();
    }
    MIGRATIONS.run(&mut db).await.unwrap();

    let rows = sqlx::query(
        "SELECT code, state, traits, accepted_at, issued_at FROM invites ORDER BY code",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let rows: Vec<(String, String, String, Option<String>, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "c-accepted".into(),
                "accepted".into(),
                "{\"plan\":\"pro\"}".into(),
                Some("2026-11-02T00:00:00.000000Z".into()),
                "2026-11-01T00:00:00.000000Z".into()
            ),
            (
                "c-issued".into(),
                "issued".into(),
                "{\"plan\":\"pro\"}".into(),
                None,
                "2026-11-01T00:00:00.000000Z".into()
            ),
        ]
    );

    // The point of the rebuild: checking an invite's state builds no lookup table.
    let program: Vec<String> = sqlx::query(&format!("EXPLAIN {INSERT}"))
        .bind("c-new")
        .bind("issued")
        .bind(None::<String>)
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|op| op.get::<String, _>("opcode"))
        .collect();
    assert!(program.iter().any(|op| op == "Insert"), "{program:?}");
    assert!(
        !program.iter().any(|op| op == "OpenEphemeral"),
        "{program:?}"
    );

    // Every state the domain knows is accepted, anything else is not.
    for state in ["dismissed", "expired", "withdrawn"] {
        insert(&mut db, &format!("c-{state}"), state, None)
            .await
            .unwrap_or_else(|e| panic!("{state}: {e}"));
    }
    let error = insert(&mut db, "c-bogus", "pending", None)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("CHECK constraint failed"),
        "{error}"
    );
    // The indexes are back: at most one issued invite per user.
    let error = insert(&mut db, "c-issued-again", "issued", None)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("UNIQUE constraint failed"),
        "{error}"
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invites'
         AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "invites_accepted_by_study",
            "invites_by_rule",
            "invites_by_rule_code",
            "invites_by_user",
            "invites_issued_by_audience"
        ]
    );
}

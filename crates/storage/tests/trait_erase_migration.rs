//! Migration 0022 on a database older servers wrote: they kept the trait keys taken off an
//! allowlist (reads only stopped serving them), so every project starts with its erase due,
//! and the erase that completes clears the mark (it reads back the time it wrote).

use sqlx::migrate::Migrator;
use sqlx::Connection;
use uj_domain::ids::ProjectId;
use uj_storage::testing::TestDatabase;
use uj_storage::Store;

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// `all`'s migrations before 0022.
fn before_0022(all: &Migrator) -> Migrator {
    Migrator {
        migrations: all
            .migrations
            .iter()
            .filter(|m| m.version < 22)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..Migrator::DEFAULT
    }
}

const PROJECT: &str = "INSERT INTO projects (id, name, public_key, created_at, trait_allowlist)
     VALUES ('prj_old', 'Shop', 'uj_pk_old', '2026-11-01T00:00:00Z', '[\"plan\"]')";

/// The project an older server wrote, in `store` opened (and migrated) by this one.
async fn upgraded(store: &dyn Store) {
    let project = ProjectId::from_string("prj_old");
    assert_eq!(
        store.trait_erases_due().await.unwrap(),
        vec![project.clone()]
    );
    let due = store.trait_erase_due(&project).await.unwrap().expect("due");
    assert!(store.trait_erase_done(&project, due).await.unwrap());
    assert!(store.trait_erases_due().await.unwrap().is_empty());
}

#[tokio::test]
async fn on_sqlite_every_project_has_its_erase_due_after_the_upgrade() {
    let db = TestDatabase::sqlite();
    let mut old = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", db.url))
        .await
        .unwrap();
    before_0022(&SQLITE).run(&mut old).await.unwrap();
    sqlx::query(PROJECT).execute(&mut old).await.unwrap();
    old.close().await.unwrap();
    let store = uj_storage::connect(&db.url).await.unwrap();
    upgraded(store.as_ref()).await;
}

#[tokio::test]
async fn on_postgres_every_project_has_its_erase_due_after_the_upgrade() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let mut old = sqlx::PgConnection::connect(&db.url).await.unwrap();
    before_0022(&POSTGRES).run(&mut old).await.unwrap();
    sqlx::query(PROJECT).execute(&mut old).await.unwrap();
    old.close().await.unwrap();
    let store = uj_storage::connect(&db.url).await.unwrap();
    upgraded(store.as_ref()).await;
}

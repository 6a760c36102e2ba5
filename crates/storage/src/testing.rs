//! Throwaway databases for tests: a SQLite file in a temporary directory, or a fresh
//! PostgreSQL database created on the server named by `UJ_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use rand::{distributions::Alphanumeric, Rng};
use sqlx::{Connection, PgConnection};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database URL for one test. A SQLite directory is removed on drop; PostgreSQL test
/// databases are dropped by a later run once they are an hour old.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self {
            url,
            _dir: Some(dir),
        }
    }

    /// A new, empty PostgreSQL database, or `None` when no server answers and
    /// `UJ_REQUIRE_POSTGRES` is unset. With `UJ_REQUIRE_POSTGRES=1` (as in CI) an
    /// unreachable server fails the test instead of skipping it.
    pub async fn postgres() -> Option<Self> {
        let admin_url =
            std::env::var("UJ_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(error) if std::env::var_os("UJ_REQUIRE_POSTGRES").is_none() => {
                eprintln!("SKIPPED: PostgreSQL at {admin_url} is unreachable ({error}); set UJ_TEST_POSTGRES_URL");
                return None;
            }
            Err(error) => {
                panic!("UJ_REQUIRE_POSTGRES is set but {admin_url} is unreachable: {error}")
            }
        };
        drop_stale_databases(&mut admin).await;
        let suffix: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(12)
            .map(char::from)
            .collect();
        let name = format!("uj_test_{}_{}", unix_now(), suffix.to_lowercase());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("UJ_TEST_POSTGRES_URL must end in /database"),
        };
        Some(Self { url, _dir: None })
    }
}

/// Test databases older than this are dropped by later test runs.
const STALE_AFTER_SECS: u64 = 3600;

/// How many stale test databases one test drops at most. Each `DROP DATABASE` waits for a
/// checkpoint (0.6–2.6 s on a busy 2-core machine): a backlog of a few thousand, left by
/// many runs within an hour, would hold one test's setup for an hour; a few at a time, the
/// tests of a run drain it between them.
const STALE_DROPS_PER_TEST: usize = 4;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Test databases carry their creation time in their name (`uj_test_<unix secs>_<random>`);
/// those from runs over an hour ago are dropped so the server does not fill up.
async fn drop_stale_databases(admin: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'uj_test_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    let now = unix_now();
    let stale: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let created = name
                .strip_prefix("uj_test_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            // Names from before this scheme carry no time: treat them as stale.
            created.is_none_or(|secs| now.saturating_sub(secs) > STALE_AFTER_SECS)
        })
        .collect();
    // Tests starting together would drop the same ones: each starts at its own place.
    let start = rand::thread_rng().gen_range(0..stale.len().max(1));
    let dropped = STALE_DROPS_PER_TEST.min(stale.len());
    for name in stale.iter().cycle().skip(start).take(dropped) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut *admin)
            .await;
    }
}

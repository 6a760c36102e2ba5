//! Throwaway databases for tests: a SQLite file in a temporary directory, or a fresh
//! PostgreSQL database created on the server named by `UJ_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use rand::{distributions::Alphanumeric, Rng};
use sqlx::{Connection, PgConnection};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database URL that lives as long as this value (the SQLite directory is removed on
/// drop; PostgreSQL test databases are left for the server to reuse nothing from, and are
/// named `uj_test_…` so they are easy to clean up).
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
        let suffix: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(12)
            .map(char::from)
            .collect();
        let name = format!("uj_test_{}", suffix.to_lowercase());
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

//! `uj-bench ingest`: syncs a large cohort from the Mixpanel emulator into a fresh server
//! process and reports members per second, page acknowledgement p50/p99 and the server's
//! peak memory, against a baseline measured in the same run: the same number of member
//! rows written by a bare batched insert into the same database.
//!
//! `uj-bench sdk-config` and `sdk-events` load the SDK API (see `sdk.rs`).
//!
//! Run them through `scripts/bench`, which builds everything in release mode first.

#![forbid(unsafe_code)]

mod sdk;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use mixpanel_emulator::scenario::{BasicAuth, Destination};
use mixpanel_emulator::{Emulator, Region, RunOutcome, Scenario};
use serde_json::{json, Value};
use uj_storage::testing::TestDatabase;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Cohort-sync ingestion of one large cohort.
    Ingest {
        /// The `userjourneys` binary to measure (release build).
        #[arg(long)]
        server: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        members: usize,
        /// Use a fresh PostgreSQL database (UJ_TEST_POSTGRES_URL) instead of SQLite.
        #[arg(long)]
        postgres: bool,
    },
    /// `GET /sdk/v1/config` under load, against `/healthz`.
    SdkConfig(SdkArgs),
    /// `POST /sdk/v1/events` under load, against `/healthz`.
    SdkEvents(SdkArgs),
}

#[derive(clap::Args)]
struct SdkArgs {
    /// The `userjourneys` binary to measure (release build).
    #[arg(long)]
    server: PathBuf,
    /// Audience members in all, over 20 audiences.
    #[arg(long, default_value_t = 1_000_000)]
    members: usize,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Percent of requests for known users (members); the rest are unknown ids.
    #[arg(long, default_value_t = 50)]
    known_percent: u64,
    /// Seconds each phase (baseline, then the SDK call) runs.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    #[arg(long)]
    postgres: bool,
}

impl SdkArgs {
    async fn run(self, target: sdk::Target) -> anyhow::Result<()> {
        let load = sdk::Load {
            members: self.members,
            known_percent: self.known_percent.min(100),
            connections: self.connections,
            seconds: self.seconds,
            postgres: self.postgres,
        };
        sdk::run(self.server, target, load).await
    }
}

pub const SECRET: &str = "bench-mixpanel-secret";
const PASSWORD: &str = "bench password 123";

fn scenario(members: usize) -> anyhow::Result<Scenario> {
    Ok(Scenario::from_json(
        &json!({
            "organizations": [{"id": 1, "name": "Bench"}],
            "service_accounts": [{"username": "bench", "secret": SECRET, "organization_id": 1,
                "home_region": "eu", "grants": [{"project_id": 10, "role": "analyst"}]}],
            "projects": [{"id": 10, "name": "Bench", "organization_id": 1, "region": "eu",
                "cohorts": [{"id": 1, "name": "Everyone", "generate": {"count": members, "reference_id_every": 2}}]}],
            "limits": {"query_per_hour": 1000},
            "sender": {"request_timeout_ms": 300_000, "backoff_initial_ms": 2000}
        })
        .to_string(),
    )?)
}

/// The server as its own process, configured like an operator would.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    fn command(binary: &PathBuf, db: &str, key: &std::path::Path, emulator: &Emulator) -> Command {
        let mut command = Command::new(binary);
        command
            .env("DATABASE_URL", db)
            .env("UJ_SECRET_KEY_FILE", key)
            .env(
                "RUST_LOG",
                std::env::var("UJ_BENCH_LOG").unwrap_or("warn".into()),
            );
        for region in Region::ALL {
            let name = region.as_str().to_uppercase();
            command.env(format!("UJ_MIXPANEL_{name}_API"), emulator.api_url(region));
            command.env(
                format!("UJ_MIXPANEL_{name}_DATA"),
                emulator.data_url(region),
            );
        }
        command
    }

    /// Starts `serve` with extra environment `env`.
    pub fn start(
        binary: &PathBuf,
        db: &str,
        key: &std::path::Path,
        emulator: &Emulator,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut child = Self::command(binary, db, key, emulator)
            .envs(env.iter().copied())
            .env("UJ_BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .context("start the server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("UserJourneys dashboard: ")
            .context("the server prints its URL")?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self { child, url })
    }

    /// CPU time the server has used so far (user and system, all threads), in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Peak resident memory so far (VmHWM), in MiB.
    pub fn peak_memory_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("VmHWM")?;
        let kib: f64 = line
            .split_whitespace()
            .nth(1)
            .context("VmHWM value")?
            .parse()?;
        Ok(kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User and system CPU time of the process whose `/proc/…/stat` is `path`, in seconds
/// (Linux counts them in USER_HZ, 100 per second on every architecture's ABI).
pub fn cpu_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path)?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat format")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// The keys `admin bootstrap` prints.
pub struct Keys {
    pub secret_key: String,
    pub public_key: String,
}

/// Creates the owner and the project through the binary, as an operator would.
pub fn bootstrap(
    binary: &PathBuf,
    db: &str,
    key: &std::path::Path,
    emulator: &Emulator,
) -> anyhow::Result<Keys> {
    let bootstrap = Server::command(binary, db, key, emulator)
        .args([
            "admin",
            "bootstrap",
            "--email",
            "bench@example.com",
            "--password",
            PASSWORD,
            "--project",
            "Bench",
        ])
        .output()?;
    if !bootstrap.status.success() {
        bail!(
            "bootstrap failed: {}",
            String::from_utf8_lossy(&bootstrap.stderr)
        );
    }
    let keys: Value = serde_json::from_slice(&bootstrap.stdout)?;
    let key = |name: &str| -> anyhow::Result<String> {
        Ok(keys[name].as_str().context("bootstrap keys")?.to_owned())
    };
    Ok(Keys {
        secret_key: key("secret_key")?,
        public_key: key("public_key")?,
    })
}

/// Connects the emulator's project 10 and points a cohort-sync destination
/// (`cohort-{id}`) at the server for each cohort.
pub async fn connect_cohorts(
    http: &reqwest::Client,
    server: &Server,
    secret_key: &str,
    emulator: &Emulator,
    cohorts: &[u64],
) -> anyhow::Result<()> {
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", server.url))
            .bearer_auth(secret_key)
            .json(&body)
            .send()
    };
    post(
        "/api/v1/integrations/mixpanel/connect",
        json!({"username": "bench", "secret": SECRET}),
    )
    .await?
    .error_for_status()?;
    let credentials: Value = post("/api/v1/integrations/mixpanel/cohort-sync", json!({}))
        .await?
        .error_for_status()?
        .json()
        .await?;
    for cohort in cohorts {
        emulator.add_destination(Destination {
            id: format!("cohort-{cohort}"),
            project_id: 10,
            cohort_id: *cohort,
            url: credentials["webhook_url"]
                .as_str()
                .context("webhook url")?
                .to_owned(),
            basic_auth: Some(BasicAuth {
                username: credentials["username"]
                    .as_str()
                    .context("username")?
                    .to_owned(),
                password: credentials["secret"].as_str().context("secret")?.to_owned(),
            }),
        });
    }
    Ok(())
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// The baseline: the same number of member rows, same columns, inserted 1000 per
/// statement, one transaction per statement, into a bare table of the same database.
async fn baseline(db: &str, members: usize) -> anyhow::Result<Duration> {
    use sqlx::Connection;
    let create = "CREATE TABLE bench_baseline (id TEXT PRIMARY KEY, audience_id TEXT NOT NULL, \
                  provider_member_id TEXT NOT NULL, reference_id TEXT, match_key TEXT NOT NULL, \
                  traits TEXT NOT NULL, entered_at TEXT NOT NULL)";
    let now = chrono::Utc::now().to_rfc3339();
    macro_rules! run {
        ($conn:expr, $db:ty) => {{
            let conn = &mut $conn;
            sqlx::query(create).execute(&mut *conn).await?;
            let started = Instant::now();
            for start in (0..members).step_by(1000) {
                let mut tx = conn.begin().await?;
                let mut builder = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO bench_baseline (id, audience_id, provider_member_id, reference_id, match_key, traits, entered_at) ",
                );
                builder.push_values(start..(start + 1000).min(members), |mut row, n| {
                    let id = format!("user_{}", n + 1);
                    row.push_bind(format!("mem_{n:012}"))
                        .push_bind("aud_bench")
                        .push_bind(id.clone())
                        .push_bind(None::<String>)
                        .push_bind(id)
                        .push_bind("{}")
                        .push_bind(now.clone());
                });
                builder.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
            started.elapsed()
        }};
    }
    Ok(if db.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(db).await?;
        run!(conn, sqlx::Postgres)
    } else {
        let mut conn = sqlx::SqliteConnection::connect(db).await?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await?;
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut conn)
            .await?;
        run!(conn, sqlx::Sqlite)
    })
}

async fn ingest(server_binary: PathBuf, members: usize, postgres: bool) -> anyhow::Result<()> {
    let db = if postgres {
        TestDatabase::postgres()
            .await
            .context("PostgreSQL is required for --postgres")?
    } else {
        TestDatabase::sqlite()
    };
    let dir = std::env::temp_dir().join(format!("uj-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("app.key");
    let backend = if postgres { "PostgreSQL" } else { "SQLite" };
    println!("ingest: {members} members into a fresh server on {backend}");

    let started = Instant::now();
    let emulator = Emulator::start(scenario(members)?).await?;
    println!(
        "emulator ready with the cohort in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let keys = bootstrap(&server_binary, &db.url, &key, &emulator)?;
    let secret_key = keys.secret_key;
    let server = Server::start(&server_binary, &db.url, &key, &emulator, &[])?;
    let http = reqwest::Client::new();
    connect_cohorts(&http, &server, &secret_key, &emulator, &[1]).await?;

    let started = Instant::now();
    let outcome = emulator.run_sync("cohort-1").await?;
    let elapsed = started.elapsed();
    if !matches!(outcome, RunOutcome::Synced { .. }) {
        bail!("the sync did not complete: {outcome:?}");
    }
    let peak = server.peak_memory_mib()?;
    let audiences: Value = http
        .get(format!("{}/api/v1/audiences", server.url))
        .bearer_auth(&secret_key)
        .send()
        .await?
        .json()
        .await?;
    let count = audiences["data"][0]["member_count"].as_u64().unwrap_or(0);
    if count != members as u64 {
        bail!("the audience has {count} members, expected {members}");
    }
    let mut acks: Vec<f64> = emulator
        .deliveries("cohort-1")
        .iter()
        .filter(|d| d.status == Some(200))
        .map(|d| d.duration_ms)
        .collect();
    acks.sort_by(f64::total_cmp);
    drop(server);

    let baseline = baseline(&db.url, members).await?;
    let ours = members as f64 / elapsed.as_secs_f64();
    let base = members as f64 / baseline.as_secs_f64();
    println!("pages acknowledged: {}", acks.len());
    let waiting: f64 = acks.iter().sum::<f64>() / 1000.0;
    println!("of which waiting for the server's acknowledgements: {waiting:.1}s (the rest is the sender's own work)");
    println!("ingest: {:.1}s, {ours:.0} members/s", elapsed.as_secs_f64());
    println!(
        "page acknowledgement: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&acks, 0.5),
        percentile(&acks, 0.99),
        acks.last().copied().unwrap_or(0.0)
    );
    println!("server peak memory: {peak:.1} MiB");
    println!(
        "baseline (bare batched insert, same database): {:.1}s, {base:.0} members/s",
        baseline.as_secs_f64()
    );
    println!("RESULT ingest {ours:.0} members/s ratio={:.2}", ours / base);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Bench::Ingest {
            server,
            members,
            postgres,
        } => ingest(server, members, postgres).await,
        Bench::SdkConfig(args) => args.run(sdk::Target::Config).await,
        Bench::SdkEvents(args) => args.run(sdk::Target::Events).await,
    }
}

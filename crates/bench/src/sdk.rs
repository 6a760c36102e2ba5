//! `uj-bench sdk-config` and `uj-bench sdk-events`: the SDK API under load. A fresh server
//! gets 1,000,000 audience members over 20 audiences (synced from the emulator as Mixpanel
//! would), 5 studies and 50 active rules (20 audience rules, 30 app-event rules); then 64
//! concurrent connections drive `GET /sdk/v1/config` (random known and unknown users) or
//! `POST /sdk/v1/events` (an event an active rule waits for) for a fixed time, and
//! `/healthz` the same way in the same run as the baseline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use mixpanel_emulator::{Emulator, RunOutcome, Scenario};
use serde_json::{json, Value};
use uj_storage::testing::TestDatabase;

use crate::{bootstrap, connect_cohorts, cpu_seconds, percentile, Server, SECRET};

const AUDIENCES: usize = 20;
const STUDIES: usize = 5;
const EVENT_RULES: usize = 30;

/// Which SDK call to drive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Config,
    Events,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Config => "sdk-config",
            Target::Events => "sdk-events",
        }
    }
}

pub struct Load {
    pub members: usize,
    /// Share of requests for known users (members), in percent; the rest are unknown.
    pub known_percent: u64,
    pub connections: usize,
    pub seconds: u64,
    pub postgres: bool,
}

fn scenario(members: usize) -> anyhow::Result<Scenario> {
    let per = members / AUDIENCES;
    let cohorts: Vec<Value> = (1..=AUDIENCES)
        .map(|i| {
            json!({"id": i, "name": format!("Segment {i}"),
            "generate": {"count": per, "prefix": format!("c{i}_"), "reference_id_every": 2}})
        })
        .collect();
    Ok(Scenario::from_json(
        &json!({
            "organizations": [{"id": 1, "name": "Bench"}],
            "service_accounts": [{"username": "bench", "secret": SECRET, "organization_id": 1,
                "home_region": "eu", "grants": [{"project_id": 10, "role": "analyst"}]}],
            "projects": [{"id": 10, "name": "Bench", "organization_id": 1, "region": "eu",
                "cohorts": cohorts}],
            "limits": {"query_per_hour": 1000},
            "sender": {"request_timeout_ms": 300_000, "backoff_initial_ms": 2000}
        })
        .to_string(),
    )?)
}

/// A small, fast, deterministic generator (xorshift64*): no dependency for random ids.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random user: known (a member by `reference_id`, or by distinct id when the member
/// has none) `known_percent` of the time, else unknown.
fn reference_id(rng: &mut Rng, per_audience: usize, known_percent: u64) -> String {
    let n = rng.below(per_audience) + 1;
    if rng.next() % 100 >= known_percent {
        format!("stranger_{}", rng.next() % 10_000_000)
    } else if n.is_multiple_of(2) {
        format!("ref_{n}")
    } else {
        format!("c{}_{n}", rng.below(AUDIENCES) + 1)
    }
}

struct Measured {
    requests: usize,
    /// CPU time the server and the load generator used during the phase, in seconds.
    server_cpu: f64,
    client_cpu: f64,
    errors: usize,
    /// What the failed requests got, each kind counted: a status, or the transport's error.
    failures: std::collections::BTreeMap<String, usize>,
    elapsed: Duration,
    latencies_ms: Vec<f64>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn report(&self, label: &str) {
        println!(
            "{label}: {} requests in {:.1}s, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}, CPU per request: server {:.0} µs, load generator {:.0} µs",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            percentile(&self.latencies_ms, 0.5),
            percentile(&self.latencies_ms, 0.99),
            self.errors,
            self.server_cpu_us(),
            self.client_cpu * 1e6 / self.requests.max(1) as f64,
        );
        for (failure, n) in &self.failures {
            println!("  failed {n}x: {failure}");
        }
    }

    /// The server's CPU time per request, in microseconds: steadier than req/s on a shared
    /// machine.
    fn server_cpu_us(&self) -> f64 {
        self.server_cpu * 1e6 / self.requests.max(1) as f64
    }
}

/// `connections` loops sending `request` for `seconds`; returns what they measured.
async fn drive<F>(load: &Load, server: &Server, request: F) -> anyhow::Result<Measured>
where
    F: Fn(&mut Rng) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let (server_cpu, client_cpu) = (server.cpu_seconds()?, cpu_seconds("/proc/self/stat")?);
    let deadline = Instant::now() + Duration::from_secs(load.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.connections)
        .map(|task| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (task as u64 + 1));
                let mut latencies = Vec::new();
                let mut failures = std::collections::BTreeMap::<String, usize>::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let failed = match request(&mut rng).send().await {
                        Ok(response) => {
                            let status = response.status();
                            let body = response.bytes().await;
                            match body {
                                Err(error) => Some(format!("{status}, body: {error}")),
                                Ok(_) if status.is_success() || status.as_u16() == 304 => None,
                                Ok(body) => Some(format!(
                                    "{status}: {}",
                                    String::from_utf8_lossy(&body[..body.len().min(200)])
                                )),
                            }
                        }
                        Err(error) => Some(format!("{error:#}")),
                    };
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    if let Some(failure) = failed {
                        *failures.entry(failure).or_default() += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies_ms = Vec::new();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks {
        if let Ok((l, f)) = task.await {
            latencies_ms.extend(l);
            for (failure, n) in f {
                *failures.entry(failure).or_default() += n;
            }
        }
    }
    let elapsed = started.elapsed();
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Measured {
        requests: latencies_ms.len(),
        server_cpu: server.cpu_seconds()? - server_cpu,
        client_cpu: cpu_seconds("/proc/self/stat")? - client_cpu,
        errors: failures.values().sum(),
        failures,
        elapsed,
        latencies_ms,
    })
}

pub async fn run(server_binary: PathBuf, target: Target, load: Load) -> anyhow::Result<()> {
    let db = if load.postgres {
        TestDatabase::postgres()
            .await
            .context("PostgreSQL is required for --postgres")?
    } else {
        TestDatabase::sqlite()
    };
    let dir = std::env::temp_dir().join(format!("uj-bench-sdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("app.key");
    let backend = if load.postgres {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "{}: {} members over {AUDIENCES} audiences, {} active rules, {} connections, {}s per phase, {}% known users, {backend}",
        target.name(),
        load.members,
        AUDIENCES + EVENT_RULES,
        load.connections,
        load.seconds,
        load.known_percent
    );
    let emulator = Emulator::start(scenario(load.members)?).await?;
    let keys = bootstrap(&server_binary, &db.url, &key, &emulator)?;
    // The per-key rate limit would measure itself; lift it for the benchmark.
    let server = Server::start(
        &server_binary,
        &db.url,
        &key,
        &emulator,
        &[("UJ_SDK_REQUESTS_PER_MINUTE", "1000000000")],
    )?;
    let http = reqwest::Client::new();
    let cohorts: Vec<u64> = (1..=AUDIENCES as u64).collect();
    connect_cohorts(&http, &server, &keys.secret_key, &emulator, &cohorts).await?;
    let started = Instant::now();
    for cohort in &cohorts {
        let outcome = emulator.run_sync(&format!("cohort-{cohort}")).await?;
        if !matches!(outcome, RunOutcome::Synced { .. }) {
            bail!("cohort {cohort} did not sync: {outcome:?}");
        }
    }
    println!(
        "synced {} members in {:.1}s",
        load.members,
        started.elapsed().as_secs_f64()
    );
    set_up_rules(&http, &server, &keys.secret_key).await?;

    let base = server.url.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.connections)
        .build()?;
    let healthz = {
        let (client, base) = (client.clone(), base.clone());
        drive(&load, &server, move |_| {
            client.get(format!("{base}/healthz"))
        })
        .await?
    };
    healthz.report("baseline GET /healthz");
    let per_audience = load.members / AUDIENCES;
    let known = load.known_percent;
    let public_key = keys.public_key.clone();
    let measured = match target {
        Target::Config => {
            drive(&load, &server, move |rng| {
                client
                    .get(format!(
                        "{base}/sdk/v1/config?reference_id={}",
                        reference_id(rng, per_audience, known)
                    ))
                    .bearer_auth(&public_key)
            })
            .await?
        }
        Target::Events => {
            drive(&load, &server, move |rng| {
                client
                    .post(format!("{base}/sdk/v1/events"))
                    .bearer_auth(&public_key)
                    .json(&json!({
                        "event_name": format!("Event {}", rng.below(3)),
                        "reference_id": reference_id(rng, per_audience, known),
                        "metadata": {"screen": "checkout", "amount": 42},
                    }))
            })
            .await?
        }
    };
    let label = match target {
        Target::Config => "GET /sdk/v1/config",
        Target::Events => "POST /sdk/v1/events",
    };
    measured.report(label);
    println!("server peak memory: {:.1} MiB", server.peak_memory_mib()?);
    if measured.errors > 0 {
        bail!("{} requests failed", measured.errors);
    }
    println!(
        "server CPU per request against /healthz: {:.1}x",
        measured.server_cpu_us() / healthz.server_cpu_us()
    );
    println!(
        "RESULT {} {:.0} req/s ratio={:.2}",
        target.name(),
        measured.per_second(),
        measured.per_second() / healthz.per_second()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// 5 studies; one active audience rule per audience and 30 active app-event rules
/// (`Event 0` … `Event 29`), with assorted priorities.
async fn set_up_rules(http: &reqwest::Client, server: &Server, secret: &str) -> anyhow::Result<()> {
    let post = |path: String, body: Value| {
        let request = http
            .post(format!("{}{path}", server.url))
            .bearer_auth(secret)
            .json(&body);
        async move {
            let response = request.send().await?;
            if !response.status().is_success() {
                bail!("{path}: {}", response.text().await?);
            }
            Ok::<Value, anyhow::Error>(response.json().await?)
        }
    };
    let audiences: Value = http
        .get(format!("{}/api/v1/audiences?limit=100", server.url))
        .bearer_auth(secret)
        .send()
        .await?
        .json()
        .await?;
    let audiences: Vec<String> = audiences["data"]
        .as_array()
        .context("audiences")?
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect();
    if audiences.len() != AUDIENCES {
        bail!("expected {AUDIENCES} audiences, found {}", audiences.len());
    }
    let mut studies = Vec::new();
    for s in 0..STUDIES {
        let study = post(
            "/api/v1/studies".into(),
            json!({"name": format!("Study {s}"), "interview_url": format!("https://research.example.com/i/{s}")}),
        )
        .await?;
        studies.push(study["id"].as_str().context("study id")?.to_owned());
    }
    for (i, audience) in audiences.iter().enumerate() {
        post(
            format!("/api/v1/studies/{}/launch-rules", studies[i % STUDIES]),
            json!({"name": format!("Audience rule {i}"), "status": "active", "priority": i % 7,
                   "trigger": {"type": "audience", "audience_id": audience}, "surface": "sdk_prompt",
                   "cooldown_seconds": 86_400}),
        )
        .await?;
    }
    for e in 0..EVENT_RULES {
        post(
            format!("/api/v1/studies/{}/launch-rules", studies[e % STUDIES]),
            json!({"name": format!("Event rule {e}"), "status": "active", "priority": e % 5,
                   "trigger": {"type": "app_event", "event_name": format!("Event {e}")},
                   "surface": "sdk_prompt", "cooldown_seconds": 86_400}),
        )
        .await?;
    }
    Ok(())
}

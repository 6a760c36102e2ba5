//! The `userjourneys` binary as an operator runs it.

mod helpers;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use helpers::TestApp;

#[tokio::test]
async fn bootstrap_is_idempotent_and_mints_a_new_secret_key_each_time() {
    let app = TestApp::spawn().await;
    let first = app.bootstrap("ada@example.com", "Shop");
    let second = app.bootstrap("ada@example.com", "Shop");
    assert_eq!(first.project_id, second.project_id);
    assert_eq!(first.public_key, second.public_key);
    assert_ne!(first.secret_key, second.secret_key);
    assert!(first.public_key.starts_with("uj_pk_") && first.secret_key.starts_with("uj_live_"));
    for key in [&first.secret_key, &second.secret_key] {
        let project: serde_json::Value =
            app.get("/api/v1/project", key).await.json().await.unwrap();
        assert_eq!(project["id"], first.project_id);
    }
    // A second project for the same account is a new project.
    let other = app.bootstrap("ada@example.com", "Blog");
    assert_ne!(other.project_id, first.project_id);
}

/// An account stored before addresses were put in their compatibility form (fullwidth
/// `ｏps@`, kept as typed then) is found by bootstrap as typed then: run again at a
/// deployment's start, it answers that account's project (it made a new account and an
/// empty project: found by the upgrade probe).
#[tokio::test]
async fn bootstrap_finds_an_account_stored_under_an_older_spelling() {
    let app = TestApp::spawn().await;
    let first = app.bootstrap("\u{ff4f}ps@example.com", "Ops");
    app.execute_sql("UPDATE accounts SET email = '\u{ff4f}ps@example.com'")
        .await;
    let again = app.bootstrap("\u{ff4f}ps@example.com", "Ops");
    assert_eq!(again.project_id, first.project_id);
    assert_eq!(app.count_sql("SELECT COUNT(*) FROM accounts").await, 1);
}

/// A project's people may have at most 100 unrevoked secret keys; `admin bootstrap`, the
/// operator's command, is not held to that cap (deployments run it on every start, and a
/// project past the cap, as ones that ran it before the cap existed are, must keep starting)
/// and revokes nothing.
#[tokio::test]
async fn bootstrap_is_not_held_to_the_key_cap_the_rest_api_is() {
    let app = TestApp::spawn().await;
    let first = app.bootstrap("ada@example.com", "Shop").secret_key;
    for n in 0..99 {
        let created = app
            .post_json(
                "/api/v1/api-keys",
                &first,
                serde_json::json!({"name": format!("CI {n}")}),
            )
            .await;
        assert_eq!(created.status().as_u16(), 201);
    }
    let refused = app
        .post_json(
            "/api/v1/api-keys",
            &first,
            serde_json::json!({"name": "one more"}),
        )
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        refused["error"]["code"], "api_key_limit_reached",
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("100 unrevoked secret keys") && message.contains("revoke one"),
        "{message}"
    );
    let active = "SELECT COUNT(*) FROM secret_keys WHERE revoked_at IS NULL";
    assert_eq!(app.count_sql(active).await, 100, "nothing written for it");

    // Past the cap, bootstrap still mints a key, says the project is past it, and every key
    // keeps working.
    let second = app.bootstrap("ada@example.com", "Shop").secret_key;
    let past = app
        .command()
        .env("UJ_BOOTSTRAP_PASSWORD", "correct horse battery")
        .args([
            "admin",
            "bootstrap",
            "--email",
            "ada@example.com",
            "--project",
            "Shop",
        ])
        .output()
        .unwrap();
    assert!(past.status.success());
    let said = String::from_utf8_lossy(&past.stderr);
    assert!(said.contains("revoke those of past deployments"), "{said}");
    let third: serde_json::Value = serde_json::from_slice(&past.stdout).unwrap();
    let third = third["secret_key"].as_str().unwrap().to_owned();
    assert_eq!(app.count_sql(active).await, 102);
    for key in [&first, &second, &third] {
        assert_eq!(app.get("/api/v1/project", key).await.status().as_u16(), 200);
    }
    let refused = app
        .post_json(
            "/api/v1/api-keys",
            &first,
            serde_json::json!({"name": "one more"}),
        )
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    // Said as many as there are (it said 100).
    let refused: serde_json::Value = refused.json().await.unwrap();
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "This project has 102 unrevoked secret keys, and may have 100: revoke 3 no longer used"
        ),
        "{message}"
    );
}

/// Provisioning scripts run bootstrap at once (replicas starting together): on a new
/// install, for an existing account, and for a new account, every run succeeds and they all
/// name one project. (The first-run setup, the account and the project were each made by
/// every run that found them absent: all but one failed, or the project was duplicated.)
#[tokio::test]
async fn bootstraps_at_once_make_one_account_and_one_project() {
    let app = TestApp::spawn().await;
    for (email, project) in [
        ("ada@example.com", "Shop"),
        ("ada@example.com", "Blog"),
        ("bob@example.com", "Forum"),
    ] {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                app.command()
                    .args(["admin", "bootstrap", "--email", email])
                    .args(["--password", "correct horse battery", "--project", project])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut ids = std::collections::BTreeSet::new();
        for run in runs {
            let output = run.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{project}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            ids.insert(printed["project_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 1, "{project}: {ids:?}");
    }
}

/// Admin commands run at once on a new SQLite file (a provisioning script, a server
/// starting beside them) migrate it one after the other: each succeeds. (Two applying one
/// migration at once, one failed with "table installation already exists".)
#[test]
fn admin_commands_at_once_on_a_new_sqlite_file_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            creating_admin_command(dir.path(), "sqlite://new.db")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A new SQLite file, and the write-ahead log SQLite gives the same mode, can be read by
/// its owner only: it holds password hashes, respondent codes and members' traits. Help
/// text never shows the password of the database URL it was given. (The file was readable
/// by every local user, and `--help` printed `DATABASE_URL` with three letters of its
/// password.)
#[test]
fn the_database_file_and_url_stay_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let output = creating_admin_command(dir.path(), "sqlite://new.db")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for file in ["new.db", "new.db-wal"] {
        let Ok(metadata) = std::fs::metadata(dir.path().join(file)) else {
            assert_ne!(file, "new.db", "the database was created");
            continue;
        };
        let mode = metadata.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{file}: mode {mode:o}");
    }

    for args in [&["--help"][..], &["admin", "bootstrap", "--help"][..]] {
        let help = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .env("DATABASE_URL", "postgres://app:hunter2@db.example.com/uj")
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("DATABASE_URL"), "{args:?}: {text}");
        assert!(!text.contains("hun"), "{args:?}: {text}");
    }
}

/// `DATABASE_URL`'s scheme picks the database in any case (RFC 3986: `POSTGRES://` is
/// PostgreSQL, `SQLITE://` SQLite); any other is refused, naming the forms accepted, and no
/// message shows the URL's password. (Any scheme but exactly `postgres://` and
/// `postgresql://` was taken as a SQLite file name: `POSTGRES://`, `mysql://` or a misspelt
/// `postgress://` URL failed with "cannot lock POSTGRES://u:TopSecretPw@…/db.lock".)
#[test]
fn database_urls_pick_their_database_by_scheme_and_never_show_a_password() {
    const PASSWORD: &str = "TopSecretPw";
    let dir = tempfile::tempdir().unwrap();
    let serve = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env("DATABASE_URL", url)
            .env_remove("UJ_SECRET_KEY_FILE")
            .env("UJ_BIND", "127.0.0.1:0")
            .output()
            .unwrap()
    };
    for url in [
        "mysql://u:TopSecretPw@127.0.0.1:1/db",
        "postgress://u:TopSecretPw@127.0.0.1:1/db",
        "Postgres:/u:TopSecretPw@127.0.0.1:1/db",
    ] {
        let output = serve(url);
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url}: {said}");
        assert!(
            said.contains("postgres://") && said.contains("sqlite://"),
            "{url}: the accepted forms are named: {said}"
        );
        assert!(!said.contains(PASSWORD), "{url}: {said}");
    }
    // Upper case is still PostgreSQL: it is tried (nothing answers on port 1), not a file.
    let output = serve("POSTGRES://u:TopSecretPw@127.0.0.1:1/db");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("cannot open the database") && !said.contains("lock"),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "{said}");
    let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(made.is_empty(), "nothing is created: {made:?}");

    for (url, file) in [
        ("SQLITE://upper.db", "upper.db"),
        ("sqlite:plain.db", "plain.db"),
    ] {
        let output = creating_admin_command(dir.path(), url).output().unwrap();
        assert!(
            output.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            dir.path().join(file).exists(),
            "{url} is the SQLite file {file}"
        );
    }
}

#[tokio::test]
async fn bootstrap_rejects_invalid_input_with_a_message() {
    let app = TestApp::spawn().await;
    let output = app
        .command()
        .args([
            "admin",
            "bootstrap",
            "--email",
            "not-an-email",
            "--password",
            "correct horse battery",
            "--project",
            "Shop",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("email"));
}

/// Starts `userjourneys` with no arguments in an empty directory, as a newcomer would.
#[test]
fn serve_starts_with_defaults_prints_the_url_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .env("UJ_BIND", "127.0.0.1:0")
        .env("UJ_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("UserJourneys dashboard: ")
        .unwrap_or_else(|| panic!("the URL is printed: {line:?}"))
        .to_owned();
    // And what to do next, on a server no one has set up.
    let mut next = String::new();
    stdout.read_line(&mut next).unwrap();
    assert!(
        next.starts_with("Not set up yet: the first visit creates the owner account"),
        "{next:?}"
    );

    let health = reqwest::blocking_get(&format!("{url}healthz"), None);
    assert_eq!(health, 200);
    // A request id that would forge a log line is not logged (a fresh one is).
    let forged = "fake method=DELETE path=/api/v1/api-keys/key_FORGED status=204";
    let echoed = reqwest::blocking_get_with_request_id(&format!("{url}healthz"), forged);
    assert_ne!(echoed, forged);

    // Secrets in use never reach the logs, even when misplaced in a query string.
    let bootstrap = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .args([
            "admin",
            "bootstrap",
            "--email",
            "ada@example.com",
            "--password",
            "correct horse battery",
            "--project",
            "Shop",
        ])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&bootstrap.stdout).unwrap();
    let secret = keys["secret_key"].as_str().unwrap().to_owned();
    let project =
        reqwest::blocking_get(&format!("{url}api/v1/project?key={secret}"), Some(&secret));
    assert_eq!(
        project, 200,
        "the server and the CLI share the default database and key"
    );
    assert!(
        dir.path().join("userjourneys.db").exists(),
        "SQLite file in the working directory"
    );
    let key = dir.path().join("userjourneys.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A second server on the same SQLite file waits for the first to stop, then gives up
    // and says why (one server per SQLite file; several run on PostgreSQL).
    let second = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .env("UJ_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("another userjourneys server is serving") && said.contains("userjourneys.db"),
        "{said}"
    );
    assert_eq!(
        reqwest::blocking_get(&format!("{url}healthz"), None),
        200,
        "the first server carries on"
    );
    // Nor through another name of the file (a hard link has its own `<name>.lock`: two
    // servers served one file, one hiding the invites the other issued; found by the SQLite
    // parity review).
    let elsewhere = tempfile::tempdir().unwrap();
    let linked = elsewhere.path().join("linked.db");
    std::fs::hard_link(dir.path().join("userjourneys.db"), &linked).unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .current_dir(dir.path())
        .env("DATABASE_URL", format!("sqlite://{}", linked.display()))
        .env("UJ_SECRET_KEY_FILE", &key)
        .env("UJ_BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = second.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            panic!("a second server serves the file through another name");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!exit.success());
    let mut said = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut said).unwrap();
    assert!(said.contains("hard links"), "{said}");
    std::fs::remove_file(&linked).unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stops within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");

    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("a JSON log line: {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "{logs}");
    assert!(
        lines.iter().any(|l| l["status"] == 200),
        "responses are logged: {logs}"
    );
    assert!(!logs.contains("key_FORGED"), "a forged log line: {logs}");
    assert!(
        logs.contains(&format!("\"request_id\":\"{echoed}\"")),
        "the fresh id is logged: {logs}"
    );
    assert!(!logs.contains(&secret[8..]), "no secret key in the logs");
    assert!(!logs.contains("correct horse battery"));
}

mod reqwest {
    /// One GET on a plain thread (this test has no async runtime): returns the status.
    pub fn blocking_get(url: &str, bearer: Option<&str>) -> u16 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut request = ::reqwest::Client::new().get(url);
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap().status().as_u16()
        })
    }

    /// One GET sending `request_id`: returns the request id the answer carries.
    pub fn blocking_get_with_request_id(url: &str, request_id: &str) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let response = ::reqwest::Client::new()
                .get(url)
                .header("x-request-id", request_id)
                .send()
                .await
                .unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        })
    }
}

/// The server as a separate process with debug logs, connecting Mixpanel (the emulator,
/// in this process): neither the Mixpanel secret nor a key reaches a log line.
#[tokio::test]
async fn connecting_mixpanel_logs_no_secret() {
    const MIXPANEL_SECRET: &str = "mp-log-probe-5e1f";
    let scenario = mixpanel_emulator::Scenario::from_json(
        &serde_json::json!({
            "organizations": [{"id": 1, "name": "Acme"}],
            "service_accounts": [{"username": "probe", "secret": MIXPANEL_SECRET, "organization_id": 1,
                "home_region": "eu", "grants": [{"project_id": 10, "role": "analyst"}, {"project_id": 20, "role": "analyst"}]}],
            "projects": [{"id": 10, "name": "A", "organization_id": 1, "region": "eu"},
                         {"id": 20, "name": "B", "organization_id": 1, "region": "us"}]
        })
        .to_string(),
    )
    .unwrap();
    let emulator = mixpanel_emulator::Emulator::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = |command: &mut Command| {
        command
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE");
        helpers::point_at_emulator(command, &emulator);
    };
    let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut bootstrap);
    let output = bootstrap
        .args([
            "admin",
            "bootstrap",
            "--email",
            "ada@example.com",
            "--password",
            "correct horse battery",
            "--project",
            "Shop",
        ])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = keys["secret_key"].as_str().unwrap().to_owned();

    let mut serve = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut serve);
    let (child, url) = logged_serving(serve.env("RUST_LOG", "debug").stderr(Stdio::piped()));
    let http = ::reqwest::Client::new();
    let chosen: serde_json::Value = http
        .post(format!("{url}/api/v1/integrations/mixpanel/connect"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"username": "probe", "secret": MIXPANEL_SECRET}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = chosen["connect_token"].as_str().unwrap().to_owned();
    let connected = http
        .post(format!(
            "{url}/api/v1/integrations/mixpanel/connect/project"
        ))
        .bearer_auth(&key)
        .json(&serde_json::json!({"connect_token": token, "project_id": "10"}))
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status().as_u16(), 200);
    let verified = http
        .post(format!("{url}/api/v1/integrations/mixpanel/verify"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status().as_u16(), 200);

    let logs = stopped_logs(child);
    assert!(
        logs.contains("Mixpanel connected"),
        "debug logs were captured: {logs}"
    );
    assert!(
        !logs.contains(MIXPANEL_SECRET),
        "the Mixpanel secret is in the logs"
    );
    assert!(!logs.contains(&key[8..]), "the API key is in the logs");
    assert!(
        !logs.contains(&token[4..]),
        "the connect token is in the logs"
    );
}

/// `admin backup` while the server runs, then a server started on the copy: the data is
/// there and the Mixpanel secret, sealed with the application key, still opens.
#[tokio::test]
async fn a_backup_taken_while_serving_restores_data_and_sealed_secrets() {
    use mixpanel_emulator::{Emulator, Scenario};
    let scenario = Scenario::from_json(
        &serde_json::json!({
            "organizations": [{"id": 1, "name": "Acme"}],
            "service_accounts": [{"username": "acme", "secret": "s3cret", "organization_id": 1, "home_region": "eu",
                "grants": [{"project_id": 10, "role": "analyst"}]}],
            "projects": [{"id": 10, "name": "Shop", "organization_id": 1, "region": "eu"}]
        })
        .to_string(),
    )
    .unwrap();
    let emulator = Emulator::start(scenario).await.unwrap();
    let mixpanel = helpers::mixpanel_config(Some(&emulator));
    let app = TestApp::spawn_with(|config| config.mixpanel = mixpanel).await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let connected = app
        .post_json(
            "/api/v1/integrations/mixpanel/connect",
            &keys.secret_key,
            serde_json::json!({"username": "acme", "secret": "s3cret"}),
        )
        .await;
    assert_eq!(connected.status().as_u16(), 200);
    let study: serde_json::Value = app
        .post_json(
            "/api/v1/studies",
            &keys.secret_key,
            serde_json::json!({"name": "Checkout", "interview_url": "https://r.example.com/c"}),
        )
        .await
        .json()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backup");
    let output = app
        .command()
        .args(["admin", "backup", "--to"])
        .arg(&target)
        .output()
        .unwrap();
    if helpers::on_postgres() {
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
        return;
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let key_file = target.join("app.key");
    assert_eq!(printed["key_file"], key_file.to_string_lossy().as_ref());
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the copied key is private");
    let copy = target.join("userjourneys.db");
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "so is the copied database");
    let again = app
        .command()
        .args(["admin", "backup", "--to"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(!again.status.success(), "never overwrites a backup");
    // A DATABASE_URL naming no database (a typo, a cron job's environment) is an error,
    // not an empty database created and backed up.
    let nowhere = dir.path().join("typo.db");
    let missing = app
        .command()
        .env("DATABASE_URL", format!("sqlite://{}", nowhere.display()))
        .args(["admin", "backup", "--to"])
        .arg(dir.path().join("backup-2"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database at"));
    assert!(!nowhere.exists(), "nothing created");
    // Under a permissive umask the directories made for a backup are still the owner's only
    // (they came out rwxrwxrwx: anyone could swap the key or the copy before a restore).
    let nested = dir.path().join("open").join("nested");
    let mut open = Command::new("sh");
    open.args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_userjourneys"))
        .args(["admin", "backup", "--to"])
        .arg(&nested);
    for (name, value) in app.command().get_envs() {
        if let Some(value) = value {
            open.env(name, value);
        }
    }
    let output = open.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("open")), 0o700);
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&nested.join("userjourneys.db")), 0o600);
    assert_eq!(mode(&nested.join("app.key")), 0o600);

    // Restore: a server on the copy and its key.
    let mut restored = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    restored
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", target.join("userjourneys.db").display()),
        )
        .env("UJ_SECRET_KEY_FILE", &key_file)
        .env("RUST_LOG", "warn");
    helpers::point_at_emulator(&mut restored, &emulator);
    let (mut child, url) = helpers::spawn_serving(&mut restored);
    let http = ::reqwest::Client::new();
    let studies: serde_json::Value = http
        .get(format!("{url}/api/v1/studies"))
        .bearer_auth(&keys.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(studies["data"][0]["id"], study["id"]);
    let verified: serde_json::Value = http
        .post(format!("{url}/api/v1/integrations/mixpanel/verify"))
        .bearer_auth(&keys.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        verified["status"], "connected",
        "the sealed secret opens with the copied key: {verified}"
    );
    let _ = child.kill();
    let _ = child.wait();

    // The copy's key lost for good: once another key is adopted, the connection says at
    // once that its secret must be entered again (it said "connected" until the next
    // hourly check).
    let adopted = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", target.join("userjourneys.db").display()),
        )
        .env("UJ_SECRET_KEY_FILE", dir.path().join("new.key"))
        .args(["admin", "adopt-key", "--new-key"])
        .output()
        .unwrap();
    assert!(adopted.status.success());
    assert!(
        String::from_utf8_lossy(&adopted.stderr).contains("1 Mixpanel connection"),
        "{}",
        String::from_utf8_lossy(&adopted.stderr)
    );
    restored.env("UJ_SECRET_KEY_FILE", dir.path().join("new.key"));
    let (mut child, url) = helpers::spawn_serving(&mut restored);
    let shown: serde_json::Value = http
        .get(format!("{url}/api/v1/integrations/mixpanel"))
        .bearer_auth(&keys.secret_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "credentials_rejected", "{shown}");
    assert!(
        shown["status_detail"]
            .as_str()
            .unwrap()
            .contains("application key changed"),
        "{shown}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A database belongs to the key that sealed its secrets: started with another key (the
/// key file lost and replaced, a restore that left it behind), the server refuses to start
/// and says which key to put back, instead of finding every stored secret unreadable.
#[test]
fn a_database_refuses_a_key_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |key: &str| {
        start_or_refusal(
            Command::new(env!("CARGO_BIN_EXE_userjourneys"))
                .current_dir(dir.path())
                .env("DATABASE_URL", "sqlite://shop.db")
                .env("UJ_SECRET_KEY_FILE", key),
        )
    };
    assert!(serve("first.key").0, "the first key is the database's");
    assert!(serve("first.key").0, "and stays so");
    // A key file missing (lost, or a restore that left it behind) is not replaced by a new one.
    let (started, said) = serve("second.key");
    assert!(!started);
    assert!(
        said.contains("second.key") && said.contains("there is no application key file"),
        "{said}"
    );
    assert!(!dir.path().join("second.key").exists(), "no new key made");
    // Another key: refused, and so is a backup that would pair the database with it.
    std::fs::write(
        dir.path().join("second.key"),
        format!("{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let (started, said) = serve("second.key");
    assert!(!started);
    assert!(
        said.contains("second.key") && said.contains("is not the key this database belongs to"),
        "{said}"
    );
    let backup = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .current_dir(dir.path())
        .env("DATABASE_URL", "sqlite://shop.db")
        .env("UJ_SECRET_KEY_FILE", "second.key")
        .args(["admin", "backup", "--to", "copy"])
        .output()
        .unwrap();
    assert!(!backup.status.success());
    assert!(
        String::from_utf8_lossy(&backup.stderr).contains("is not this database's key"),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(!dir.path().join("copy").exists(), "nothing copied");
    // The first key lost for good: the operator adopts the second, knowingly.
    let adopted = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .current_dir(dir.path())
        .env("DATABASE_URL", "sqlite://shop.db")
        .env("UJ_SECRET_KEY_FILE", "second.key")
        .args(["admin", "adopt-key"])
        .output()
        .unwrap();
    assert!(adopted.status.success());
    assert!(String::from_utf8_lossy(&adopted.stderr).contains("Connect Mixpanel again"));
    assert!(serve("second.key").0);
    assert!(!serve("first.key").0, "one key at a time");
}

/// A database from before its key was recorded (migration 0015) that holds a Mixpanel
/// secret belongs to the key that sealed it: started without that key file, or with
/// another key, the server refuses (it made a new key and lost the secret), and so does a
/// backup that would pair the database with another key; with its key, it starts and
/// records it.
#[tokio::test]
async fn a_database_from_before_its_key_was_recorded_keeps_the_key_that_sealed_its_secrets() {
    const MIXPANEL_SECRET: &str = "mp-old-db-3c9a";
    let scenario = mixpanel_emulator::Scenario::from_json(
        &serde_json::json!({
            "organizations": [{"id": 1, "name": "Acme"}],
            "service_accounts": [{"username": "probe", "secret": MIXPANEL_SECRET, "organization_id": 1,
                "home_region": "eu", "grants": [{"project_id": 10, "role": "analyst"}]}],
            "projects": [{"id": 10, "name": "A", "organization_id": 1, "region": "eu"}]
        })
        .to_string(),
    )
    .unwrap();
    let emulator = mixpanel_emulator::Emulator::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let command = |key: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
        command
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://shop.db")
            .env("UJ_SECRET_KEY_FILE", key)
            .env("RUST_LOG", "warn");
        helpers::point_at_emulator(&mut command, &emulator);
        command
    };
    let output = command("first.key")
        .args(["admin", "bootstrap", "--email", "ada@example.com"])
        .args(["--password", "correct horse battery", "--project", "Shop"])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let secret_key = keys["secret_key"].as_str().unwrap().to_owned();
    let http = ::reqwest::Client::new();
    let verify = |url: String| {
        let http = http.clone();
        let secret_key = secret_key.clone();
        async move {
            let answer: serde_json::Value = http
                .post(format!("{url}/api/v1/integrations/mixpanel/verify"))
                .bearer_auth(&secret_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["status"].as_str().unwrap_or_default().to_owned()
        }
    };
    {
        let (child, url) = helpers::spawn_serving(command("first.key").stderr(Stdio::null()));
        let _served = Served(child);
        let connected = http
            .post(format!("{url}/api/v1/integrations/mixpanel/connect"))
            .bearer_auth(&secret_key)
            .json(&serde_json::json!({"username": "probe", "secret": MIXPANEL_SECRET}))
            .send()
            .await
            .unwrap();
        assert_eq!(connected.status().as_u16(), 200);
        assert_eq!(verify(url).await, "connected");
    }
    // As the database was before migration 0015: no key recorded.
    let database = format!("sqlite://{}", dir.path().join("shop.db").display());
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    sqlx::query("DELETE FROM application_key")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // What a start with `key` says on stderr, once it has refused (one that serves fails
    // the test).
    let refused = |key: &str| {
        let (started, said) = start_or_refusal(&mut command(key));
        assert!(!started, "{key} refused, but it served");
        said
    };
    let said = refused("second.key");
    assert!(said.contains("there is no application key file"), "{said}");
    assert!(!dir.path().join("second.key").exists(), "no new key made");
    std::fs::write(
        dir.path().join("second.key"),
        format!("{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let said = refused("second.key");
    assert!(
        said.contains("is not the key this database belongs to"),
        "{said}"
    );
    let backup = command("second.key")
        .args(["admin", "backup", "--to", "copy"])
        .output()
        .unwrap();
    assert!(!backup.status.success());
    assert!(!dir.path().join("copy").exists(), "nothing copied");

    // Its own key: it starts, the secret opens, and the key is recorded from then on.
    {
        let (child, url) = helpers::spawn_serving(command("first.key").stderr(Stdio::null()));
        let _served = Served(child);
        assert_eq!(verify(url).await, "connected");
    }
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM application_key")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, 1);
}

/// Starts `command` (a `userjourneys` serving on port 0) and, once it has printed its URL or
/// exited, answers whether it served (it is then stopped) and what it wrote on stderr.
fn start_or_refusal(command: &mut Command) -> (bool, String) {
    let mut child = command
        .env("UJ_BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started = line.starts_with("UserJourneys dashboard: ");
    if started {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    (
        started,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Bound to every interface with no public URL, every link handed out would point at
/// `http://0.0.0.0:…`: the server says what to set instead of starting.
/// Also when named otherwise (`0:…`, which was refused only after a database and a key were
/// made; found by the HTTP plumbing review).
#[test]
fn listening_everywhere_needs_a_public_url() {
    for bind in ["0.0.0.0:0", "0:0", "[::]:0"] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE")
            .env_remove("UJ_PUBLIC_URL")
            .env("UJ_BIND", bind)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bind}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("set UJ_PUBLIC_URL"), "{bind}: {said}");
        // Refused before anything is made: it created a database bound to a new key first.
        let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(made.is_empty(), "{bind}: {made:?}");
    }
}

/// An address to listen on that names nothing is refused naming its setting, before a
/// database or a key is made (it was found only after both).
#[test]
fn an_address_that_names_nothing_is_refused_before_anything_is_made() {
    for (setting, bind) in [
        ("UJ_BIND", "127.0.0.1"),
        ("UJ_BIND", "nowhere.invalid:8080"),
        ("UJ_METRICS_BIND", "127.0.0.1:x"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE")
            .env_remove("UJ_METRICS_BIND")
            .env("UJ_BIND", "127.0.0.1:0")
            .env(setting, bind)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains(&format!("{setting}=\"{bind}\" is not an address")),
            "{said}"
        );
        let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(made.is_empty(), "{bind}: {made:?}");
    }
}

/// A plain TCP connection to the server, its reads bounded: the bound is the test's, not
/// the server's (a read still blocked after it fails the test).
/// A server process, stopped when the test ends, whether it passes or fails (a failed
/// assertion left it running).
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `userjourneys` serving its default SQLite file in `dir` with `settings` in its
/// environment, and the address it listens on (`host:port`).
fn serve_in(dir: &std::path::Path, settings: &[(&str, &str)]) -> (Served, String) {
    let (child, url) = helpers::spawn_serving(
        Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE")
            .envs(settings.iter().copied())
            .stderr(Stdio::null()),
    );
    (
        Served(child),
        url.strip_prefix("http://").unwrap().to_owned(),
    )
}

fn raw_connection(address: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Connections that hold the server without finishing a request: one that never ends its
/// headers is closed after `UJ_HEADER_TIMEOUT_SECS`, and a shutdown waits for a request
/// whose body never arrives no longer than `UJ_SHUTDOWN_GRACE_SECS`. (Both were held
/// forever: a slow sender kept a connection, and a stop, for as long as it liked.)
#[test]
fn slow_clients_neither_hold_a_connection_nor_a_shutdown_forever() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let keys = bootstrap_in(dir.path());
    let public_key = keys["public_key"].as_str().unwrap();
    let (mut served, address) = serve_in(
        dir.path(),
        &[
            ("UJ_HEADER_TIMEOUT_SECS", "1"),
            ("UJ_SHUTDOWN_GRACE_SECS", "1"),
        ],
    );
    let connect = || raw_connection(&address);

    let mut slow = connect();
    slow.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer)
        .expect("the server closes a connection whose headers do not end");

    let mut stalled = connect();
    let request = format!(
        "POST /sdk/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {public_key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"event_name\""
    );
    stalled.write_all(request.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .args(["-TERM", &served.0.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = served.0.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = served.0.kill();
            panic!("the server still waits for a request whose body never comes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

/// At most `UJ_MAX_CONNECTIONS` connections are served at once: one more waits, unanswered,
/// until one of them closes, and is served then. (There was no limit: a flood of idle
/// connections took every file descriptor, and the database's and Mixpanel's with them.)
#[test]
fn a_connection_past_the_limit_waits_for_one_to_close() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (_served, address) = serve_in(dir.path(), &[("UJ_MAX_CONNECTIONS", "2")]);
    let health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    // Two kept-alive connections, each answered once and then idle, fill the limit.
    let mut idle: Vec<_> = (0..2)
        .map(|_| {
            let mut connection = raw_connection(&address);
            connection
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut answer = [0; 12];
            connection.read_exact(&mut answer).unwrap();
            assert_eq!(&answer, b"HTTP/1.1 200");
            connection
        })
        .collect();

    let mut third = raw_connection(&address);
    third.write_all(health).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut answer = Vec::new();
    let waited = third.read_to_end(&mut answer);
    assert!(
        waited.is_err() && answer.is_empty(),
        "a third connection is not served while two are open: {waited:?} {:?}",
        String::from_utf8_lossy(&answer)
    );

    drop(idle.pop());
    third
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    third.read_to_end(&mut answer).unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "served once a connection closed: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// Connections that hold the server after their headers: a body that stops coming (a
/// sign-in form, a webhook delivery), and a client that sends requests but never reads the
/// answers. Each is closed after `UJ_BODY_TIMEOUT_SECS`; a webhook delivery is
/// authenticated before its body is taken in, so a stranger's is read past, never kept. (All were
/// held for as long as the client liked: a thousand of them used up the server's files,
/// and each webhook one 4 MiB of memory.)
#[test]
fn stalled_bodies_and_unread_answers_do_not_hold_a_connection() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (_served, address) = serve_in(dir.path(), &[("UJ_BODY_TIMEOUT_SECS", "1")]);
    let connect = || raw_connection(&address);
    let closed_within = |mut stream: std::net::TcpStream, request: &[u8]| {
        stream.write_all(request).unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    };

    let (took, _) = closed_within(
        connect(),
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nemail=ada",
    );
    assert!(
        took < Duration::from_secs(10),
        "a stalled form body: {took:?}"
    );

    let (took, answer) = closed_within(
        connect(),
        b"POST /webhooks/mixpanel/whk_unknown HTTP/1.1\r\nHost: x\r\n\
          Authorization: Basic eDp5\r\nContent-Type: application/json\r\n\
          Content-Length: 4000000\r\n\r\n{\"action\": \"members\", ",
    );
    assert!(
        took < Duration::from_secs(10) && answer.starts_with("HTTP/1.1 404"),
        "a stranger's stalled delivery is refused and closed: {took:?} {answer}"
    );

    // Requests sent on and on while no answer is read: once the answers stop moving for
    // the timeout, the connection is closed.
    let mut pipelined = connect();
    let writer = {
        let mut stream = pipelined.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..3000 {
                if stream
                    .write_all(b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    let mut answers = Vec::new();
    let ended = pipelined.read_to_end(&mut answers);
    let _ = writer.join();
    let answered = String::from_utf8_lossy(&answers)
        .matches("HTTP/1.1 200")
        .count();
    assert!(
        answered < 3000,
        "the connection was closed before every answer went: {answered}, {ended:?}"
    );
}

/// The SQLite file deleted, or replaced by another, while the server runs: it went on
/// answering, and acknowledging writes, from the file it had open, which no later start
/// finds. Now it stops serving (every request but `/healthz` answers 503) and saves the
/// database as it had it beside the path, where the log says.
#[tokio::test]
async fn a_database_file_deleted_or_replaced_under_the_server_stops_it_and_is_saved() {
    for replaced in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let (child, url) = helpers::spawn_serving(
            Command::new(env!("CARGO_BIN_EXE_userjourneys"))
                .current_dir(dir.path())
                .env_remove("DATABASE_URL")
                .env_remove("UJ_SECRET_KEY_FILE")
                .env("UJ_LOG_FORMAT", "json")
                .stderr(std::fs::File::create(&log).unwrap()),
        );
        let _served = Served(child);
        let bootstrap = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE")
            .env("UJ_BOOTSTRAP_PASSWORD", "correct horse battery")
            .args(["admin", "bootstrap", "--email", "ada@example.com"])
            .args(["--project", "Shop"])
            .output()
            .unwrap();
        let keys: serde_json::Value = serde_json::from_slice(&bootstrap.stdout).unwrap();
        let (secret, public) = (
            keys["secret_key"].as_str().unwrap(),
            keys["public_key"].as_str().unwrap(),
        );
        let client = ::reqwest::Client::new();
        let create_study = |name: &str| {
            client
                .post(format!("{url}/api/v1/studies"))
                .bearer_auth(secret)
                .json(
                    &serde_json::json!({"name": name, "interview_url": "https://r.example.com/c"}),
                )
                .send()
        };
        assert_eq!(
            create_study("Checkout").await.unwrap().status().as_u16(),
            201
        );

        let file = dir.path().join("userjourneys.db");
        let what = match replaced {
            false => {
                std::fs::remove_file(&file).unwrap();
                "deleted"
            }
            true => {
                // A restore over the live file: another database moved into its place.
                let other = dir.path().join("other.db");
                std::fs::write(&other, b"").unwrap();
                std::fs::rename(&other, &file).unwrap();
                "replaced by another file"
            }
        };
        // Noticed within the file check's interval; a request before that may find the
        // database unavailable without knowing why yet (a fresh connection opens no file).
        let deadline = Instant::now() + Duration::from_secs(15);
        let (status, body) = loop {
            let ready = client.get(format!("{url}/readyz")).send().await.unwrap();
            let status = ready.status().as_u16();
            let body: serde_json::Value = ready.json().await.unwrap_or_default();
            let named = body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("was {what}")));
            if named || Instant::now() > deadline {
                break (status, body);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status, 503, "the loss is noticed ({what}): {body}");
        assert_eq!(body["error"]["code"], "storage_unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("was {what}")), "{message}");
        // Nothing more is acknowledged: writes, the SDK, the dashboard and links are refused.
        assert_eq!(create_study("Lost").await.unwrap().status().as_u16(), 503);
        let config = client
            .get(format!("{url}/sdk/v1/config?reference_id=u1"))
            .bearer_auth(public)
            .header("origin", "https://shop.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(config.status().as_u16(), 503);
        // As any answer: its request id, its headers, CORS for a web app (none were sent;
        // found by the docs probe).
        for header in [
            "x-request-id",
            "x-content-type-options",
            "access-control-allow-origin",
        ] {
            assert!(config.headers().contains_key(header), "{header}");
        }
        let delivery = client
            .post(format!("{url}/webhooks/mixpanel/whk_any"))
            .json(&serde_json::json!({"action": "members"}))
            .send()
            .await
            .unwrap();
        assert_eq!(delivery.status().as_u16(), 503);
        let reply: serde_json::Value = delivery.json().await.unwrap();
        assert_eq!(reply["status"], "failure", "in Mixpanel's format: {reply}");
        for page in ["/", "/i/abc"] {
            let page = client.get(format!("{url}{page}")).send().await.unwrap();
            assert_eq!(page.status().as_u16(), 503);
            assert!(page.text().await.unwrap().contains("<html"));
        }
        let health = client.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200, "the process itself is up");

        // The database as the server had it, saved where the log says.
        let deadline = Instant::now() + Duration::from_secs(15);
        let copy = loop {
            let logged = std::fs::read_to_string(&log).unwrap();
            let copy = logged.lines().find_map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).ok()?;
                Some(line["copy"].as_str()?.to_owned())
            });
            match copy {
                Some(copy) => break copy,
                None if Instant::now() > deadline => panic!("no saved copy logged: {logged}"),
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert!(copy.starts_with(&*dir.path().canonicalize().unwrap().to_string_lossy()));
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "the copy holds what the database did: its owner's only"
        );

        // As the log says: stop, remove what the old file left beside the path, move the
        // copy into place, start again.
        drop(_served);
        for left in ["userjourneys.db-wal", "userjourneys.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(left));
        }
        std::fs::rename(&copy, &file).unwrap();
        let (_served, address) = serve_in(dir.path(), &[]);
        let studies: serde_json::Value = client
            .get(format!("http://{address}/api/v1/studies"))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<_> = studies["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["name"])
            .collect();
        assert_eq!(
            names,
            ["Checkout"],
            "everything acknowledged is back: {studies}"
        );
    }
}

/// Logs written to a file or a pipe (journald, `docker logs`) carry no colour codes, and a
/// `RUST_LOG` that is no filter is said, not silently replaced by `info`.
#[test]
fn logs_to_a_pipe_are_plain_and_a_wrong_filter_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    serve
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .env_remove("UJ_LOG_FORMAT")
        .env("RUST_LOG", "info,sqlx=[")
        .stderr(Stdio::piped());
    let (child, _) = logged_serving(&mut serve);
    let logs = stopped_logs(child);
    assert!(
        logs.contains(r#"RUST_LOG="info,sqlx=[" is not a log filter"#),
        "{logs}"
    );
    assert!(logs.contains("INFO"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes: {logs:?}");
}

/// Mixpanel unreachable (here a base URL nothing listens at) tells the customer to try again
/// later, and the operator's log says why: the URL and the cause, never the secret.
#[tokio::test]
async fn the_log_says_why_mixpanel_could_not_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let base = |command: &mut Command| {
        command
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE")
            .env_remove("UJ_LOG_FORMAT")
            .env_remove("RUST_LOG");
        for region in ["US", "EU", "IN"] {
            command.env(format!("UJ_MIXPANEL_{region}_API"), &nowhere);
        }
    };
    let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut bootstrap);
    let output = bootstrap
        .args(["admin", "bootstrap", "--email", "ada@example.com"])
        .args(["--password", "correct horse battery", "--project", "Shop"])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = keys["secret_key"].as_str().unwrap().to_owned();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut serve);
    let (child, url) = logged_serving(serve.stderr(Stdio::piped()));
    let answer = ::reqwest::Client::new()
        .post(format!("{url}/api/v1/integrations/mixpanel/connect"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"username": "probe", "secret": "a-secret-never-logged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 502, "{:?}", answer.text().await);
    let logs = stopped_logs(child);
    let said = logs
        .lines()
        .find(|line| line.contains("Mixpanel could not be reached (connection failed)"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(said.contains(&nowhere), "{said}");
    assert!(!logs.contains("a-secret-never-logged"));
}

/// A stop waits for the requests in flight (up to `UJ_SHUTDOWN_GRACE_SECS`); a second
/// Ctrl-C or SIGTERM stops at once (it was ignored: Ctrl-C hung for the whole grace).
#[test]
fn a_second_stop_signal_stops_at_once() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    serve
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .env("UJ_SHUTDOWN_GRACE_SECS", "60")
        .env("UJ_BODY_TIMEOUT_SECS", "60")
        .stderr(Stdio::piped());
    let keys = bootstrap_in(dir.path());
    let key = keys["secret_key"].as_str().unwrap();
    let (mut child, url) = helpers::spawn_serving(&mut serve);
    // A request in flight: its body promised, not sent.
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let mut held = std::net::TcpStream::connect(address).unwrap();
    write!(
        held,
        "POST /api/v1/studies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = child.id().to_string();
    let term = || Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    term();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first waits for the request"
    );
    let started = std::time::Instant::now();
    term();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "a second stop signal stops at once"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("stopping now"), "{logs}");
    drop(held);
}

/// Not ready, the server logs why a new connection to PostgreSQL fails: its requests'
/// 503s, and readyz's, said only that the pool had no connection in time.
#[tokio::test]
async fn readyz_logs_why_postgresql_cannot_be_reached() {
    let Some(db) = uj_storage::testing::TestDatabase::postgres().await else {
        return; // No PostgreSQL here; CI sets UJ_REQUIRE_POSTGRES so this cannot pass silently.
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let (child, url) = helpers::spawn_serving(
        Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env("DATABASE_URL", &db.url)
            .env_remove("UJ_SECRET_KEY_FILE")
            .env("UJ_SDK_TIMEOUT_SECS", "1")
            .env("UJ_LOG_FORMAT", "json")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let _served = Served(child);
    let readyz = format!("{url}/readyz");
    let client = helpers::client();
    let status = || async { client.get(&readyz).send().await.unwrap().status().as_u16() };
    assert_eq!(status().await, 200);

    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let admin_url = db.url.replace(&name, "postgres");
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap();
    let allow = |allowed: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed}");
    sqlx::query(&allow(false))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&mut admin)
    .await
    .unwrap();
    let refused = status().await;
    // Logged beside the answer, which does not wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let said = loop {
        let logged = std::fs::read_to_string(&log).unwrap();
        let said = logged
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["message"] == "not ready: a new connection to the database fails");
        match said {
            Some(said) => break said,
            None if Instant::now() > deadline => panic!("no reason logged: {logged}"),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    sqlx::query(&allow(true)).execute(&mut admin).await.unwrap();
    assert_eq!(refused, 503);
    let said = said["error"].as_str().unwrap();
    assert!(
        said.contains("is not currently accepting connections"),
        "{said}"
    );
}

/// `admin bootstrap` on the default database of `dir` (ada@example.com, project "Shop"): the
/// keys it prints.
/// An admin command that creates the database `url` names in `dir` (`admin bootstrap`).
fn creating_admin_command(dir: &std::path::Path, url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    command
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env("UJ_SECRET_KEY_FILE", "app.key")
        .env("UJ_BOOTSTRAP_PASSWORD", "correct horse battery")
        .args([
            "admin",
            "bootstrap",
            "--email",
            "ada@example.com",
            "--project",
            "Shop",
        ]);
    command
}

fn bootstrap_in(dir: &std::path::Path) -> serde_json::Value {
    let bootstrap = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .args(["admin", "bootstrap", "--email", "ada@example.com"])
        .args(["--password", "correct horse battery", "--project", "Shop"])
        .output()
        .unwrap();
    serde_json::from_slice(&bootstrap.stdout).unwrap()
}

/// `admin adopt-key` makes nothing it was not asked for and waits for no server (found by
/// the backup drill): it made an empty database where none was, made a new key when the
/// key's path was wrong (a backup's `app.key` sat beside the database), and ran while the
/// server served the file (which carried on with the old key and refused to start again).
#[test]
fn adopt_key_makes_nothing_it_was_not_asked_for_and_no_server_serves_the_file_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let adopt = |key: &str, more: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://shop.db")
            .env("UJ_SECRET_KEY_FILE", key)
            .args(["admin", "adopt-key"])
            .args(more)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (adopted, said) = adopt("app.key", &[]);
    assert!(!adopted && said.contains("no database at"), "{said}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing made"
    );

    let made = creating_admin_command(dir.path(), "sqlite://shop.db")
        .output()
        .unwrap();
    assert!(made.status.success());
    // Bootstrap makes no key: the first start would; the database has none yet.
    let (adopted, said) = adopt("app.key", &["--new-key"]);
    assert!(adopted, "{said}");
    // A backup directory used in place: its key is `app.key`, the server looks for another.
    std::fs::rename(dir.path().join("app.key"), dir.path().join("kept")).unwrap();
    // Of an older release (migrations 24 on not applied), which a refusal leaves as it was:
    // migrated, the older release could no longer open it.
    let latest = |undo: bool| {
        let url = format!("sqlite://{}", dir.path().join("shop.db").display());
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                if undo {
                    for sql in [
                        "DELETE FROM _sqlx_migrations WHERE version >= 24",
                        "ALTER TABLE audiences DROP COLUMN mixpanel_project_id",
                        "DROP INDEX sessions_by_account",
                        "DROP INDEX sync_ledger_by_time",
                        "ALTER TABLE studies DROP COLUMN public_link",
                        "DROP INDEX sync_ledger_refusals",
                        "ALTER TABLE mixpanel_connections DROP COLUMN cohorts_read_at",
                        "ALTER TABLE secret_keys DROP COLUMN created_by",
                        "ALTER TABLE mixpanel_connections DROP COLUMN event_names_read_at",
                        "DROP INDEX launch_rules_live",
                        "DROP INDEX studies_live",
                        "CREATE INDEX launch_rules_by_project ON launch_rules (project_id, status)",
                        "ALTER TABLE audiences DROP COLUMN deleting_since",
                        "ALTER TABLE sync_ledger DROP COLUMN mixpanel_cohort_id",
                        "ALTER TABLE sync_ledger DROP COLUMN mixpanel_cohort_name",
                    ] {
                        sqlx::query(sql).execute(&pool).await.unwrap();
                    }
                }
                let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                version
            })
    };
    assert_eq!(latest(true), 23);
    let (adopted, said) = adopt("lost.key", &[]);
    assert!(!adopted && said.contains("--new-key"), "{said}");
    assert!(!dir.path().join("lost.key").exists(), "no key made");
    assert_eq!(latest(false), 23, "not migrated");
    std::fs::rename(dir.path().join("kept"), dir.path().join("app.key")).unwrap();
    let (started, said) = start_or_refusal(
        Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://shop.db")
            .env("UJ_SECRET_KEY_FILE", "userjourneys.key"),
    );
    assert!(!started);
    assert!(said.contains("app.key is beside the database"), "{said}");
    // Nor does a start refused for its key file (it migrated the database first).
    assert_eq!(latest(false), 23, "a start refused migrates nothing");
    std::fs::write(dir.path().join("wrong.key"), "ab".repeat(32)).unwrap();
    let (started, said) = start_or_refusal(
        Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://shop.db")
            .env("UJ_SECRET_KEY_FILE", "wrong.key"),
    );
    assert!(
        !started && said.contains("is not the key this database belongs to"),
        "{said}"
    );
    assert_eq!(latest(false), 23, "a start refused migrates nothing");

    let (adopted, said) = adopt("app.key", &["--new-key"]);
    assert!(!adopted && said.contains("exists"), "{said}");
    let mut serving = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    serving
        .current_dir(dir.path())
        .env("DATABASE_URL", "sqlite://shop.db")
        .env("UJ_SECRET_KEY_FILE", "app.key");
    let (mut server, _) = helpers::spawn_serving(&mut serving);
    let (adopted, said) = adopt("new.key", &["--new-key"]);
    assert!(
        !adopted && said.contains("another userjourneys server"),
        "{said}"
    );
    assert!(!dir.path().join("new.key").exists(), "no key made");
    server.kill().unwrap();
    server.wait().unwrap();
    let (adopted, said) = adopt("new.key", &["--new-key"]);
    assert!(adopted, "{said}");
}

/// A backup that fails leaves nothing that blocks the next one or restores as an empty
/// installation, and says where it failed; the directories it makes are the owner's only
/// whatever the umask (found by the backup drill: a 0-byte copy was left, "the database is
/// unavailable" blamed the source, and a umask of 0277 made a directory it could not write).
#[test]
fn a_backup_that_fails_leaves_nothing_behind_and_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let made = creating_admin_command(dir.path(), "sqlite://shop.db")
        .output()
        .unwrap();
    assert!(made.status.success());
    // Served once (which makes its key), and stopped: its log is written into the file.
    let (started, said) = start_or_refusal(
        Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://shop.db")
            .env("UJ_SECRET_KEY_FILE", "app.key"),
    );
    assert!(started, "{said}");
    let backup = |to: &str, shell: &str| {
        let output = Command::new("sh")
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://shop.db")
            .env("UJ_SECRET_KEY_FILE", "app.key")
            .args([
                "-c",
                &format!("{shell}; exec \"$0\" admin backup --to {to}"),
            ])
            .arg(env!("CARGO_BIN_EXE_userjourneys"))
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // Files of at most 100 KiB: the copy (some 300 KiB) cannot be written.
    let (copied, said) = backup("full", "trap '' XFSZ; ulimit -f 200");
    assert!(!copied);
    assert!(
        said.contains("could not be copied into full/userjourneys.db"),
        "{said}"
    );
    assert!(!dir.path().join("full/userjourneys.db").exists(), "{said}");
    let (copied, said) = backup("full", "true");
    assert!(copied, "the next try succeeds: {said}");
    // A key file in the way (a link to nowhere, which `exists` missed): the database's copy
    // is not left behind either.
    std::fs::create_dir(dir.path().join("linked")).unwrap();
    std::os::unix::fs::symlink("nowhere", dir.path().join("linked/app.key")).unwrap();
    let (copied, said) = backup("linked", "true");
    assert!(!copied && said.contains("exists already"), "{said}");
    assert!(
        !dir.path().join("linked/userjourneys.db").exists(),
        "{said}"
    );

    let (copied, said) = backup("a/b/c", "umask 0277");
    assert!(copied, "{said}");
    // A directory whose name starts with `file:` (which SQLite reads as a URI: the copy went
    // to another directory, and an empty file was reported as the backup).
    let (copied, said) = backup("file:zz", "true");
    assert!(copied, "{said}");
    // A file planted under the name a copy is written under (the first version of the
    // partial copy, found by the final review: a second name of a file elsewhere was
    // emptied and overwritten, another user's file kept its owner and mode) is left alone.
    std::fs::create_dir(dir.path().join("planted")).unwrap();
    std::fs::write(dir.path().join("precious.txt"), "precious").unwrap();
    std::fs::hard_link(
        dir.path().join("precious.txt"),
        dir.path().join("planted/userjourneys.db.partial"),
    )
    .unwrap();
    let (copied, said) = backup("planted", "true");
    assert!(copied, "{said}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious.txt")).unwrap(),
        "precious"
    );
    let size = std::fs::metadata(dir.path().join("file:zz/userjourneys.db"))
        .unwrap()
        .len();
    assert!(size > 0);
    assert!(!dir.path().join("zz").exists());
    for made in ["a", "a/b", "a/b/c"] {
        let mode = std::fs::metadata(dir.path().join(made))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{made}");
    }
}

/// An admin command whose output cannot be written (stdout a full disk) fails saying so,
/// with exit code 1, and bootstrap says its new key was made unseen (it panicked, exit 101,
/// a stack trace; found by the CLI probe).
#[test]
fn an_output_that_cannot_be_written_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("sh")
        .current_dir(dir.path())
        .env("DATABASE_URL", "sqlite://shop.db")
        .env("UJ_SECRET_KEY_FILE", "app.key")
        .env("UJ_BOOTSTRAP_PASSWORD", "correct horse battery")
        .args([
            "-c",
            "exec \"$0\" admin bootstrap --email ada@example.com --project Shop > /dev/full",
        ])
        .arg(env!("CARGO_BIN_EXE_userjourneys"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        said.contains("was not shown") && said.contains("cannot write the output"),
        "{said}"
    );
}

/// A backup cut short (killed: a cron job's timeout, a stop) leaves no `userjourneys.db`,
/// which would restore as a new, empty installation, and the next try into the same
/// directory succeeds (found by the CLI probe: a half-written copy was left under the real
/// name, without its key, and blocked the next try).
#[tokio::test]
async fn a_backup_cut_short_leaves_no_copy_behind_and_the_next_try_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let made = creating_admin_command(dir.path(), "sqlite://shop.db")
        .output()
        .unwrap();
    assert!(made.status.success());
    let (started, said) = start_or_refusal(
        Command::new(env!("CARGO_BIN_EXE_userjourneys"))
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://shop.db")
            .env("UJ_SECRET_KEY_FILE", "app.key"),
    );
    assert!(started, "{said}");
    // Some 60 MB, so that a copy takes long enough to be cut short.
    let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for sql in [
        "CREATE TABLE filler (b BLOB)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
         INSERT INTO filler SELECT randomblob(1000000) FROM n",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let backup = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
        command
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite://shop.db")
            .env("UJ_SECRET_KEY_FILE", "app.key")
            .args(["admin", "backup", "--to", "copy"]);
        command
    };
    let copy = dir.path().join("copy");
    // The filler rows a copy holds, read as a restore would.
    let filler_rows = |copy: &std::path::Path| {
        let restored = format!("sqlite://{}", copy.display());
        async move {
            let pool = sqlx::SqlitePool::connect(&restored).await.unwrap();
            let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM filler")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            rows
        }
    };
    let mut cut_short = 0;
    for delay in [20, 50, 100, 150, 250, 400] {
        let mut child = backup()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        child.kill().unwrap();
        if !child.wait().unwrap().success() {
            cut_short += 1;
            let named = copy.join("userjourneys.db");
            if named.exists() {
                // Killed once the copy had its name (its last steps: the partial name
                // removed, the directory synced): a whole copy, with its key (it failed as
                // "left a copy" when a kill came that late; the copy was whole).
                assert!(
                    copy.join("app.key").exists(),
                    "a backup killed after {delay} ms left a copy without its key"
                );
                assert_eq!(
                    filler_rows(&named).await,
                    60,
                    "a backup killed after {delay} ms left a partial copy"
                );
            } else if !copy.join("app.key").exists() {
                // Killed before the key was copied: the next try succeeds. (Killed between
                // copying the key and naming the copy, the key refuses the next try: nothing
                // restores from the directory.)
                let partials = |copy: &std::path::Path| -> Vec<String> {
                    std::fs::read_dir(copy)
                        .map(|files| {
                            files
                                .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
                                .filter(|name| name.starts_with("userjourneys.db.partial"))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let left = partials(&copy);
                let again = backup().output().unwrap();
                assert!(
                    again.status.success(),
                    "{}",
                    String::from_utf8_lossy(&again.stderr)
                );
                assert!(copy.join("app.key").exists());
                // The cut one's leftover, if any, is all that is left beside the copy.
                assert_eq!(partials(&copy), left);
                use std::os::unix::fs::MetadataExt;
                let copied = std::fs::metadata(copy.join("userjourneys.db")).unwrap();
                assert_eq!((copied.nlink(), copied.mode() & 0o777), (1, 0o600));
                assert_eq!(filler_rows(&named).await, 60);
            }
        }
        if copy.exists() {
            std::fs::remove_dir_all(&copy).unwrap();
        }
    }
    assert!(cut_short > 0, "no backup was cut short");
}

/// A webhook address is a stranger's text: its id is logged only percent-encoded, within
/// the request's path, so it cannot forge a log line (the id, decoded, was a field of its
/// own: a `%0a` in it began a new line; found by the logging probe).
#[tokio::test]
async fn a_webhook_address_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    serve
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .env_remove("UJ_LOG_FORMAT")
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped());
    let (child, url) = logged_serving(&mut serve);
    let forged = "whk_x%0a2026-12-06T00:00:00.000000Z%20ERROR%20FORGED%22";
    let answer = ::reqwest::Client::new()
        .post(format!("{url}/webhooks/mixpanel/{forged}"))
        .basic_auth("mixpanel", Some("x"))
        .json(&serde_json::json!({"action": "members"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let logs = stopped_logs(child);
    assert!(logs.contains("whk_x%0a"), "the request is logged: {logs}");
    assert!(
        !logs.lines().any(|line| line.contains("ERROR FORGED")),
        "{logs}"
    );
}

/// Refusals are logged with their reason, never with what the sender sent: a webhook's
/// (the request's own line said only its status) and a locked sign-in (nothing said it).
#[tokio::test]
async fn refused_deliveries_and_locked_sign_ins_are_logged_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .env("UJ_BOOTSTRAP_PASSWORD", "correct horse battery")
        .args(["admin", "bootstrap", "--email", "ada@example.com"])
        .args(["--project", "Shop"])
        .output()
        .unwrap();
    assert!(bootstrap.status.success());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    serve
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("UJ_SECRET_KEY_FILE")
        .env_remove("UJ_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped());
    let (child, url) = logged_serving(&mut serve);
    let answer = ::reqwest::Client::new()
        .post(format!("{url}/webhooks/mixpanel/whk_nope"))
        .basic_auth("mixpanel", Some("s3cret-sent"))
        .json(&serde_json::json!({"action": "members"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let browser = helpers::client();
    for _ in 0..6 {
        let page = browser.get(format!("{url}/login")).send().await.unwrap();
        let token = helpers::csrf_token(&page.text().await.unwrap());
        let form = [
            ("csrf_token", token.as_str()),
            ("email", "ada@example.com"),
            ("password", "wrong guess 1234"),
        ];
        let refused = browser
            .post(format!("{url}/login"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!([401, 429].contains(&refused.status().as_u16()));
    }
    let logs = stopped_logs(child);
    let refused = logs
        .lines()
        .find(|l| l.contains("cohort sync delivery refused"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(refused.contains("status=404"), "{refused}");
    assert!(refused.contains("unknown to UserJourneys"), "{refused}");
    assert!(logs.contains("sign-in failed"), "{logs}");
    let locked = logs
        .lines()
        .find(|l| l.contains("sign-in refused: too many failed attempts"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(locked.contains("client=127.0.0.1"), "{locked}");
    for secret in ["s3cret-sent", "wrong guess", "ada@example.com"] {
        assert!(!logs.contains(secret), "{secret} in {logs}");
    }
}

/// Stops a server as an operator would (`SIGTERM`): what it logged.
fn stopped_logs(mut served: Logged) -> String {
    Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    served.child.wait().unwrap();
    served.logs.join().unwrap()
}

/// A server started by [`logged_serving`], its log read as it writes it.
struct Logged {
    child: std::process::Child,
    logs: std::thread::JoinHandle<String>,
}

/// [`helpers::spawn_serving`] for a command whose log (stderr) is piped: the log is read
/// from the start, so a server writing more than a pipe holds (64 KiB: a debug log of
/// every migration) is not stopped mid-write, a request waiting for it for ever.
fn logged_serving(command: &mut Command) -> (Logged, String) {
    let (mut child, url) = helpers::spawn_serving(command.stderr(Stdio::piped()));
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut logs = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut logs).unwrap();
        logs
    });
    (Logged { child, logs }, url)
}

/// A duration setting past a year is refused naming it (2^64 s started "fine", then every
/// connection panicked adding it to the clock; found by the docs probe).
#[test]
fn a_duration_past_a_year_is_refused_naming_its_setting() {
    for setting in [
        "UJ_HEADER_TIMEOUT_SECS",
        "UJ_BODY_TIMEOUT_SECS",
        "UJ_REQUEST_TIMEOUT_SECS",
        "UJ_SDK_TIMEOUT_SECS",
        "UJ_SHUTDOWN_GRACE_SECS",
        "UJ_MIXPANEL_TIMEOUT_SECS",
        "UJ_MIXPANEL_CHECK_INTERVAL_SECS",
    ] {
        let dir = tempfile::tempdir().unwrap();
        // Bounded: taken, the setting would start a server that serves until stopped.
        let output = Command::new("timeout")
            .args(["10", env!("CARGO_BIN_EXE_userjourneys")])
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE")
            .env("UJ_BIND", "127.0.0.1:0")
            .env(setting, "18446744073709551614")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{setting}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains(setting) || said.contains(&setting[3..].to_lowercase().replace('_', "-")),
            "{setting}: {said}"
        );
        let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(made.is_empty(), "{setting}: {made:?}");
    }
}

/// A server that outgrew SQLite moves to PostgreSQL: `admin copy-to-postgres` copies the
/// stopped server's file into an empty database, whole, and a server on PostgreSQL with the
/// same key file serves what the SQLite one did: keys, studies and rules, the Mixpanel
/// connection (its secret still opens), cohort sync (its secret still checks), audiences
/// and their members, and a user's pending invite. A second copy into it is refused.
#[tokio::test]
async fn a_sqlite_database_moves_to_postgres_and_serves_the_same() {
    let Some(target) = uj_storage::testing::TestDatabase::postgres().await else {
        return;
    };
    let scenario = mixpanel_emulator::Scenario::from_json(
        &serde_json::json!({
            "organizations": [{"id": 1, "name": "Acme"}],
            "service_accounts": [{"username": "acme", "secret": "mp-secret", "organization_id": 1,
                "home_region": "us", "grants": [{"project_id": 10, "role": "analyst"}]}],
            "projects": [{"id": 10, "name": "Shop", "organization_id": 1, "region": "us"}]
        })
        .to_string(),
    )
    .unwrap();
    let emulator = mixpanel_emulator::Emulator::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = |command: &mut Command| {
        command
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE")
            .env_remove("UJ_COPY_TO");
        helpers::point_at_emulator(command, &emulator);
    };
    let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut bootstrap);
    let output = bootstrap
        .env("UJ_BOOTSTRAP_PASSWORD", "correct horse battery")
        .args(["admin", "bootstrap", "--email", "ada@example.com"])
        .args(["--project", "Shop"])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let (key, public) = (
        keys["secret_key"].as_str().unwrap().to_owned(),
        keys["public_key"].as_str().unwrap().to_owned(),
    );
    let http = ::reqwest::Client::new();
    let call = |url: &str, method: &str, path: &str, body: Option<serde_json::Value>| {
        let request = http.request(method.parse().unwrap(), format!("{url}{path}"));
        let request = match path.starts_with("/sdk/") {
            true => request.bearer_auth(&public),
            false => request.bearer_auth(&key),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (
                status,
                answer.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };

    let mut serve = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut serve);
    let (child, url) = logged_serving(serve.stderr(Stdio::piped()));
    let connect = serde_json::json!({"username": "acme", "secret": "mp-secret"});
    let (status, _) = call(
        &url,
        "POST",
        "/api/v1/integrations/mixpanel/connect",
        Some(connect),
    )
    .await;
    assert_eq!(status, 200);
    let (status, sync) = call(
        &url,
        "POST",
        "/api/v1/integrations/mixpanel/cohort-sync",
        None,
    )
    .await;
    assert_eq!(status, 201, "{sync}");
    let deliver = |url: String, members: &[&str]| {
        let members: Vec<serde_json::Value> = members
            .iter()
            .map(|id| serde_json::json!({"mixpanel_distinct_id": id, "reference_id": format!("ref-{id}")}))
            .collect();
        http.post(url)
            .basic_auth(sync["username"].as_str().unwrap(), sync["secret"].as_str())
            .json(&serde_json::json!({"action": "add_members", "parameters": {
                "mixpanel_project_id": "10", "mixpanel_cohort_id": "7",
                "mixpanel_cohort_name": "Trial users", "members": members}}))
            .send()
    };
    let webhook = sync["webhook_url"].as_str().unwrap().to_owned();
    let delivered = deliver(webhook.clone(), &["a", "b"]).await.unwrap();
    assert_eq!(delivered.status().as_u16(), 200);
    let (_, audiences) = call(&url, "GET", "/api/v1/audiences", None).await;
    let audience = audiences["data"][0]["id"].as_str().unwrap().to_owned();
    let study =
        serde_json::json!({"name": "Checkout", "interview_url": "https://r.example.com/i/c"});
    let (_, study) = call(&url, "POST", "/api/v1/studies", Some(study)).await;
    let rule = serde_json::json!({"name": "Trial", "status": "active", "surface": "sdk_prompt",
        "trigger": {"type": "audience", "audience_id": audience}});
    let rules = format!(
        "/api/v1/studies/{}/launch-rules",
        study["id"].as_str().unwrap()
    );
    let (status, _) = call(&url, "POST", &rules, Some(rule)).await;
    assert_eq!(status, 201);
    let (_, config) = call(&url, "GET", "/sdk/v1/config?reference_id=ref-a", None).await;
    let code = config["pending_invite"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let copy = |target: &str| {
        let mut copy = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
        base(&mut copy);
        copy.env("UJ_COPY_TO", target)
            .args(["admin", "copy-to-postgres"])
            .output()
            .unwrap()
    };
    // Not while a server serves the file: what it writes meanwhile would be lost.
    let refused = copy(&target.url);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("another userjourneys server"), "{said}");
    stopped_logs(child);

    // Refused, and nothing written: into another application's database (it was migrated
    // first), from a file that is not there (it was made, and copied as an empty
    // installation), or to a server that cannot be reached (without its password).
    let Some(foreign) = uj_storage::testing::TestDatabase::postgres().await else {
        return;
    };
    let pool = sqlx::PgPool::connect(&foreign.url).await.unwrap();
    sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    let refused = copy(&foreign.url);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("tables of another application (customers)"),
        "{said}"
    );
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tables, 1, "not migrated");
    let elsewhere = tempfile::tempdir().unwrap();
    let mut missing = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut missing);
    let refused = missing
        .current_dir(elsewhere.path())
        .env("UJ_COPY_TO", &target.url)
        .args(["admin", "copy-to-postgres"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("no SQLite database at"), "{said}");
    assert!(
        !elsewhere.path().join("userjourneys.db").exists(),
        "no file made"
    );
    let refused = copy("postgres://uj:pa55word-never-shown@127.0.0.1:1/uj");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!said.contains("pa55word"), "{said}");

    // Into a database a server of its own was started on once (migrated, its key recorded).
    let mut first = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut first);
    let (started, _) = logged_serving(
        first
            .env("DATABASE_URL", &target.url)
            .env("UJ_SECRET_KEY_FILE", elsewhere.path().join("other.key"))
            .stderr(Stdio::piped()),
    );
    stopped_logs(started);
    let copied = copy(&target.url);
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let counts: serde_json::Value = serde_json::from_slice(&copied.stdout).unwrap();
    assert_eq!(counts["copied"]["audience_members"], 2, "{counts}");
    assert_eq!(counts["copied"]["invites"], 1, "{counts}");
    let again = copy(&target.url);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already holds"), "{said}");

    let mut serve = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    base(&mut serve);
    let (child, url) = logged_serving(
        serve
            .env("DATABASE_URL", &target.url)
            .env("UJ_SECRET_KEY_FILE", dir.path().join("userjourneys.key"))
            .stderr(Stdio::piped()),
    );
    let (status, studies) = call(&url, "GET", "/api/v1/studies", None).await;
    assert_eq!(
        (status, studies["data"][0]["name"].as_str()),
        (200, Some("Checkout"))
    );
    let (_, config) = call(&url, "GET", "/sdk/v1/config?reference_id=ref-a", None).await;
    assert_eq!(config["pending_invite"]["code"], code.as_str(), "{config}");
    let (status, verified) = call(&url, "POST", "/api/v1/integrations/mixpanel/verify", None).await;
    assert_eq!(status, 200, "the stored Mixpanel secret opens: {verified}");
    let webhook = webhook.replace(&webhook[..webhook.find("/webhooks").unwrap()], &url);
    let delivered = deliver(webhook, &["c"]).await.unwrap();
    assert_eq!(
        delivered.status().as_u16(),
        200,
        "the cohort sync secret still checks"
    );
    let (_, audience) = call(&url, "GET", &format!("/api/v1/audiences/{audience}"), None).await;
    assert_eq!(audience["member_count"], 3, "{audience}");
    stopped_logs(child);
}

/// A stop right after a Mixpanel connect answered waits a few seconds for the reads that go
/// on behind the answer: the event names Mixpanel was still reading were lost, and nothing
/// read them again (found by the shutdown probe).
#[tokio::test]
async fn a_stop_right_after_a_connect_keeps_the_reads_behind_its_answer() {
    let now = chrono::Utc::now().timestamp();
    let scenario = mixpanel_emulator::Scenario::from_json(
        &serde_json::json!({
            "organizations": [{"id": 1, "name": "Acme"}],
            "service_accounts": [{"username": "probe", "secret": "s", "organization_id": 1,
                "home_region": "eu", "grants": [{"project_id": 10, "role": "analyst"}]}],
            "projects": [{"id": 10, "name": "A", "organization_id": 1, "region": "eu",
                "events": [{"event": "Order Completed", "properties": {"time": now - 60, "distinct_id": "a"}}]}]
        })
        .to_string(),
    )
    .unwrap();
    let emulator = mixpanel_emulator::Emulator::start(scenario).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = bootstrap_in(dir.path());
    let key = keys["secret_key"].as_str().unwrap().to_owned();
    let command = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
        command
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("UJ_SECRET_KEY_FILE")
            .stderr(Stdio::null());
        helpers::point_at_emulator(&mut command, &emulator);
        command
    };
    let http = ::reqwest::Client::new();
    {
        let (mut child, url) = helpers::spawn_serving(&mut command());
        // Each of Mixpanel's answers takes 3 s: the connect answers 5 s into its reads,
        // with the event names still on their way.
        emulator.set_faults(mixpanel_emulator::Faults {
            latency_ms: 3000,
            ..Default::default()
        });
        let connected = http
            .post(format!("{url}/api/v1/integrations/mixpanel/connect"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"username": "probe", "secret": "s"}))
            .send()
            .await
            .unwrap();
        assert_eq!(connected.status().as_u16(), 200);
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        // Waited for without blocking this runtime, which serves the emulator.
        let stopped = tokio::task::spawn_blocking(move || child.wait().unwrap());
        assert!(stopped.await.unwrap().success());
    }
    emulator.set_faults(mixpanel_emulator::Faults::default());
    let (child, url) = helpers::spawn_serving(&mut command());
    let _served = Served(child);
    let events: serde_json::Value = http
        .get(format!("{url}/api/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events["data"][0]["name"], "Order Completed", "{events}");
}

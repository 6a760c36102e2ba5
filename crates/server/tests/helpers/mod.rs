//! Test harness: spawns the real application on a random port against a throwaway
//! database (SQLite by default; PostgreSQL with `UJ_TEST_DATABASE=postgres`) and talks to
//! it over HTTP.

#![allow(dead_code)]

pub mod demo;

use std::process::Command;

use serde::Deserialize;
use uj_storage::testing::TestDatabase;
use userjourneys::config::{Config, LogFormat, MixpanelConfig};
use userjourneys::startup::Application;

pub struct TestApp {
    pub address: String,
    /// Where `GET /metrics` is served, when the configuration asks for it.
    pub metrics_address: Option<String>,
    /// A client that keeps cookies, like a browser.
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub config: Config,
    _dir: tempfile::TempDir,
}

#[derive(Debug, Deserialize)]
pub struct Bootstrap {
    pub project_id: String,
    pub public_key: String,
    pub secret_key: String,
}

/// Whether this run targets PostgreSQL (`UJ_TEST_DATABASE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("UJ_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

pub async fn test_database() -> TestDatabase {
    if on_postgres() {
        TestDatabase::postgres()
            .await
            .expect("UJ_TEST_DATABASE=postgres needs a reachable PostgreSQL")
    } else {
        TestDatabase::sqlite()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns the app after letting `adjust` change its configuration.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(test_database().await, adjust).await
    }

    /// Spawns the app on a database of the test's choosing.
    pub async fn spawn_on(db: TestDatabase, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            database_url: db.url.clone(),
            bind: "127.0.0.1:0".into(),
            public_url: None,
            secret_key_file: Some(dir.path().join("app.key")),
            log_format: LogFormat::Text,
            sdk_requests_per_minute: 1200,
            api_requests_per_minute: 6000,
            sdk_timeout_secs: 10,
            request_timeout_secs: 60,
            trusted_proxies: 0,
            header_timeout_secs: 75,
            body_timeout_secs: 30,
            shutdown_grace_secs: 30,
            max_connections: None,
            metrics_bind: None,
            mixpanel: mixpanel_config(None),
        };
        adjust(&mut config);
        let app = Application::build(&config).await.expect("the app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            metrics_address,
            client: client(),
            db,
            config,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Runs `userjourneys admin bootstrap` against this app's database, as automation would.
    pub fn bootstrap(&self, email: &str, project: &str) -> Bootstrap {
        let output = self
            .command()
            .args([
                "admin",
                "bootstrap",
                "--email",
                email,
                "--password",
                "correct horse battery",
                "--project",
                project,
            ])
            .output()
            .expect("run userjourneys");
        assert!(
            output.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("bootstrap prints one JSON object")
    }

    /// Runs `sql` on this app's database directly, beside the server: for rows the API
    /// would no longer write (stored before a bound, sealed by another key).
    pub async fn execute_sql(&self, sql: &str) {
        if on_postgres() {
            let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::SqlitePool::connect(&self.db.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
    }

    /// The count `sql` answers on this app's database, read beside the server.
    pub async fn count_sql(&self, sql: &str) -> i64 {
        if on_postgres() {
            let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
        } else {
            let pool = sqlx::SqlitePool::connect(&self.db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
        }
    }

    /// The `userjourneys` binary configured like this app.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
        command
            .env("DATABASE_URL", &self.config.database_url)
            .env(
                "UJ_SECRET_KEY_FILE",
                self.config.secret_key_file.as_ref().unwrap(),
            )
            .env("RUST_LOG", "warn");
        command
    }

    /// What the metrics listener serves (`metrics_bind` must be set).
    pub async fn metrics(&self) -> String {
        let address = self.metrics_address.as_deref().expect("metrics are served");
        let answer = self.client.get(format!("{address}/metrics")).send().await;
        answer.unwrap().text().await.unwrap()
    }

    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// Sets the project's trait allowlist through the REST API.
    pub async fn set_trait_allowlist(&self, key: &str, keys: &[&str]) {
        let patched = self
            .client
            .patch(self.url("/api/v1/project"))
            .bearer_auth(key)
            .json(&serde_json::json!({ "trait_allowlist": keys }))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status().as_u16(), 200);
    }

    /// Creates a study through the REST API: the study as answered.
    pub async fn create_study(&self, key: &str, interview_url: &str) -> serde_json::Value {
        let created = self
            .post_json(
                "/api/v1/studies",
                key,
                serde_json::json!({"name": "Study", "interview_url": interview_url}),
            )
            .await;
        assert_eq!(created.status().as_u16(), 201);
        created.json().await.unwrap()
    }

    pub async fn patch_json(
        &self,
        path: &str,
        key: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(
        &self,
        path: &str,
        key: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    // --- Dashboard ----------------------------------------------------------------------

    /// GETs a page with `client` and returns (status, body).
    pub async fn page(&self, client: &reqwest::Client, path: &str) -> (u16, String) {
        let response = client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Loads `form_page`, then posts `fields` to `action` with the page's CSRF token.
    pub async fn submit(
        &self,
        client: &reqwest::Client,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let (status, html) = self.page(client, form_page).await;
        assert_eq!(status, 200, "{form_page} shows a form");
        let token = csrf_token(&html);
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &token)];
        form.extend_from_slice(fields);
        client
            .post(self.url(action))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Completes first-run setup with `client`, which ends up signed in; returns the
    /// project's dashboard path.
    pub async fn set_up(&self, client: &reqwest::Client, email: &str, project: &str) -> String {
        let response = self
            .submit(
                client,
                "/setup",
                "/setup",
                &[
                    ("email", email),
                    ("password", "correct horse battery"),
                    ("project_name", project),
                ],
            )
            .await;
        assert_eq!(
            response.status().as_u16(),
            303,
            "setup redirects to the project"
        );
        location(&response)
    }

    /// Signs `client` in; returns the response (303 on success).
    pub async fn login(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        self.submit(
            client,
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Spawns `command` (a `userjourneys` serving on port 0, stdout piped) and reads the URL it
/// prints; the caller keeps the child (and kills it).
pub fn spawn_serving(command: &mut Command) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .env("UJ_BIND", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start userjourneys");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("UserJourneys dashboard: ")
        .unwrap_or_else(|| panic!("the server prints its URL, not {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (child, url)
}

/// The CSRF token of the first form in `html`.
pub fn csrf_token(html: &str) -> String {
    input_value(html, "csrf_token")
}

/// The value of the first input named `name` in `html`.
pub fn input_value(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("an input named {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// The text of the text area named `name`, as its page writes it (escaped; the line break
/// after the opening tag, which browsers drop, left out).
pub fn textarea_value(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("a text area named {name} in {html}"));
    let open_end = html[start..].find('>').unwrap() + start + 1;
    let end = html[open_end..].find("</textarea>").unwrap() + open_end;
    let text = &html[open_end..end];
    text.strip_prefix('\n').unwrap_or(text).to_owned()
}

/// The text of the element with `id` (first occurrence; enough for our pages).
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let marker = format!(r#"id="{id}""#);
    let start = html.find(&marker)?;
    let open_end = html[start..].find('>')? + start + 1;
    let close = html[open_end..].find('<')? + open_end;
    Some(html[open_end..close].trim().to_owned())
}

/// `command` (a `userjourneys` process) pointed at `emulator` for every Mixpanel region.
pub fn point_at_emulator(command: &mut Command, emulator: &mixpanel_emulator::Emulator) {
    for region in mixpanel_emulator::Region::ALL {
        let name = region.as_str().to_uppercase();
        command.env(format!("UJ_MIXPANEL_{name}_API"), emulator.api_url(region));
        command.env(
            format!("UJ_MIXPANEL_{name}_DATA"),
            emulator.data_url(region),
        );
    }
}

/// Mixpanel settings pointing at `emulator`, or at a closed local port when there is none
/// (so no test ever reaches the real Mixpanel).
pub fn mixpanel_config(emulator: Option<&mixpanel_emulator::Emulator>) -> MixpanelConfig {
    use mixpanel_emulator::Region::{Eu, In, Us};
    let (api, data) = match emulator {
        Some(e) => (
            [e.api_url(Us), e.api_url(Eu), e.api_url(In)],
            [e.data_url(Us), e.data_url(Eu), e.data_url(In)],
        ),
        None => (
            std::array::from_fn(|_| "http://127.0.0.1:9".to_owned()),
            std::array::from_fn(|_| "http://127.0.0.1:9".to_owned()),
        ),
    };
    let [us_api, eu_api, in_api] = api;
    let [us_data, eu_data, in_data] = data;
    MixpanelConfig {
        mixpanel_us_api: us_api,
        mixpanel_eu_api: eu_api,
        mixpanel_in_api: in_api,
        mixpanel_us_data: us_data,
        mixpanel_eu_data: eu_data,
        mixpanel_in_data: in_data,
        mixpanel_timeout_secs: 2,
        mixpanel_check_interval_secs: 0,
    }
}

/// A connection of another process to the app's database, holding a transaction open.
pub enum Other {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Other {
    pub async fn connect(url: &str) -> Self {
        if on_postgres() {
            Self::Postgres(
                <sqlx::PgConnection as sqlx::Connection>::connect(url)
                    .await
                    .unwrap(),
            )
        } else {
            Self::Sqlite(
                <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
                    .await
                    .unwrap(),
            )
        }
    }

    /// Begins a transaction that takes the write lock (SQLite) and runs `sql` in it.
    pub async fn hold(&mut self, sql: &str) {
        match self {
            Self::Postgres(c) => {
                sqlx::query("BEGIN").execute(&mut *c).await.unwrap();
                sqlx::query(sql).execute(&mut *c).await.unwrap();
            }
            Self::Sqlite(c) => {
                sqlx::query("BEGIN EXCLUSIVE")
                    .execute(&mut *c)
                    .await
                    .unwrap();
                sqlx::query(sql).execute(&mut *c).await.unwrap();
            }
        }
    }

    pub async fn release(&mut self) {
        match self {
            Self::Postgres(c) => {
                sqlx::query("ROLLBACK").execute(c).await.unwrap();
            }
            Self::Sqlite(c) => {
                sqlx::query("ROLLBACK").execute(c).await.unwrap();
            }
        }
    }

    /// Ends the held transaction keeping what it wrote: a write the server made wait on it
    /// goes on, seeing that.
    pub async fn commit(&mut self) {
        match self {
            Self::Postgres(c) => {
                sqlx::query("COMMIT").execute(c).await.unwrap();
            }
            Self::Sqlite(c) => {
                sqlx::query("COMMIT").execute(c).await.unwrap();
            }
        }
    }
}

/// The status line of the answer read from `reader`, the rest of the answer read past.
pub async fn status_line(
    reader: &mut tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.unwrap();
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        if header == "\r\n" || header.is_empty() {
            break;
        }
    }
    let mut rest = vec![0; length];
    reader.read_exact(&mut rest).await.unwrap();
    line
}

/// Sends a request's head (with `content_type`) and the first bytes of its `body`, runs
/// `meanwhile`, then the rest of the body: the status line of its answer.
pub async fn with_a_slow_body<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    content_type: &str,
    head: &str,
    body: &str,
    meanwhile: F,
) -> String {
    use tokio::io::AsyncWriteExt;
    let stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let (reader, mut writer) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(reader);
    let head = format!(
        "{head}\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    writer.write_all(&body.as_bytes()[..5]).await.unwrap();
    // The head is read (and, before, its credential checked) while the body trickles in.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    meanwhile.await;
    writer.write_all(&body.as_bytes()[5..]).await.unwrap();
    status_line(&mut reader).await
}

/// A project's row held by another connection's transaction (on SQLite, the write lock),
/// until released: the server's writes to it wait, its reads go on. For requests that must
/// all have read before any writes.
pub enum ProjectsLocked {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl ProjectsLocked {
    pub async fn take(app: &TestApp, project: &str) -> Self {
        use sqlx::Connection;
        if on_postgres() {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE")
                .bind(project)
                .execute(&mut conn)
                .await
                .unwrap();
            Self::Postgres(conn)
        } else {
            // Reads go on beside it (WAL); writes wait for it, within the busy timeout.
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut conn)
                .await
                .unwrap();
            Self::Sqlite(conn)
        }
    }

    pub async fn release(self) {
        match self {
            Self::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            }
            Self::Postgres(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            }
        }
    }
}

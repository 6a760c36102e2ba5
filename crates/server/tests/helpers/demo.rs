//! `userjourneys demo` as its own process, with what it printed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::csrf_token;

pub struct Demo {
    child: Child,
    pub url: String,
    pub password: String,
    /// The project's dashboard path (`/p/prj_…`).
    pub project: String,
    pub public_key: String,
    pub directory: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The word after `label` on the first printed line containing it.
fn after<'a>(lines: &'a [String], label: &str) -> &'a str {
    let line = lines
        .iter()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("{label:?} in {lines:#?}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.split_whitespace().next().unwrap()
}

/// Starts `userjourneys demo` on a free port and reads what it prints.
pub fn start() -> Demo {
    start_with(&["--bind", "127.0.0.1:0"])
}

/// Starts `userjourneys demo` with these arguments and reads what it prints.
pub fn start_with(args: &[&str]) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_userjourneys"))
        .arg("demo")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        // The production environment loaded: the demo serves at its own address (it
        // printed this one, and its simulated Mixpanel posted cohorts to that host).
        .env("UJ_PUBLIC_URL", "https://research.example.com")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the demo printed {lines:#?}"
        );
        let done = line.contains("curl ");
        lines.push(line);
        if done {
            break;
        }
    }
    let url = after(&lines, "UserJourneys demo:")
        .trim_end_matches('/')
        .to_owned();
    let panel = after(&lines, "Open the demo panel,").trim_end_matches(':');
    Demo {
        url: url.clone(),
        password: after(&lines, "password").to_owned(),
        project: panel
            .strip_prefix(&url)
            .unwrap()
            .trim_end_matches("/demo")
            .to_owned(),
        public_key: after(&lines, "Bearer").trim_end_matches('\'').to_owned(),
        directory: after(&lines, "the data lives in").to_owned(),
        child,
    }
}

impl Demo {
    /// Stops the demo as Ctrl-C or a service manager would (SIGTERM), and waits for it.
    pub fn stop(&mut self) {
        let sent = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the demo stops on SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub async fn page(&self, browser: &reqwest::Client, path: &str) -> String {
        let response = browser
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.text().await.unwrap()
    }

    pub async fn submit(
        &self,
        browser: &reqwest::Client,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = csrf_token(&self.page(browser, form_page).await);
        let mut form = vec![("csrf_token", token.as_str())];
        form.extend_from_slice(fields);
        browser
            .post(format!("{}{action}", self.url))
            .form(&form)
            .send()
            .await
            .unwrap()
    }
}

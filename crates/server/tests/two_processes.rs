//! Two server processes on one PostgreSQL database, as a team outgrowing one machine runs
//! them behind a load balancer: a change made through one is served by the other, and max
//! starts hold across both.

mod helpers;

use std::process::{Child, Command};

use serde_json::{json, Value};
use uj_storage::testing::TestDatabase;

struct Process {
    child: Child,
    url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(db: &str, key: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_userjourneys"));
    command
        .env("DATABASE_URL", db)
        .env("UJ_SECRET_KEY_FILE", key)
        .env("RUST_LOG", "warn");
    command
}

fn start(db: &str, key: &std::path::Path) -> Process {
    let (child, url) = helpers::spawn_serving(&mut command(db, key));
    Process { child, url }
}

/// Two processes on a new database with one project: `(a, b, secret key, public key)`, and
/// what must outlive them.
struct Pair {
    a: Process,
    b: Process,
    secret: String,
    public: String,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

async fn two_processes() -> Option<Pair> {
    let db = TestDatabase::postgres().await?;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.key");
    let keys: Value = serde_json::from_slice(
        &command(&db.url, &key)
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
            .unwrap()
            .stdout,
    )
    .unwrap();
    Some(Pair {
        a: start(&db.url, &key),
        b: start(&db.url, &key),
        secret: keys["secret_key"].as_str().unwrap().to_owned(),
        public: keys["public_key"].as_str().unwrap().to_owned(),
        _db: db,
        _dir: dir,
    })
}

/// A study with one active app-event rule waiting for `event`, made through `base`: the
/// rule's id.
async fn event_rule(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    event: &str,
    extra: Value,
) -> String {
    let study: Value = http
        .post(format!("{base}/api/v1/studies"))
        .bearer_auth(secret)
        .json(&json!({"name": "Checkout", "interview_url": "https://r.example.com/i/c"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut rule = json!({"name": "R", "status": "active", "trigger": {"type": "app_event", "event_name": event}, "surface": "sdk_prompt"});
    rule.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let rule: Value = http
        .post(format!(
            "{base}/api/v1/studies/{}/launch-rules",
            study["id"].as_str().unwrap()
        ))
        .bearer_auth(secret)
        .json(&rule)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rule["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_processes_share_rules_and_never_overshoot_max_starts() {
    let Some(pair) = two_processes().await else {
        return;
    };
    let (a, b, secret, public) = (&pair.a, &pair.b, pair.secret.as_str(), pair.public.as_str());
    let http = reqwest::Client::new();

    let rule_id = &event_rule(
        &http,
        &a.url,
        secret,
        "Order Completed",
        json!({"max_starts": 5}),
    )
    .await;

    // Made through A, served by B (which has not read the project yet) at once.
    let config: Value = http
        .get(format!("{}/sdk/v1/config?reference_id=u", b.url))
        .bearer_auth(public)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config["triggers"],
        json!([{"event_name": "Order Completed"}])
    );

    // Twenty users invited through either process, all accepting at once through either.
    let mut codes = Vec::new();
    for n in 0..20 {
        let base = if n % 2 == 0 { &a.url } else { &b.url };
        let invited: Value = http
            .post(format!("{base}/sdk/v1/events"))
            .bearer_auth(public)
            .json(&json!({"event_name": "Order Completed", "reference_id": format!("user-{n}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        codes.push((
            invited["pending_invite"]["code"]
                .as_str()
                .unwrap()
                .to_owned(),
            format!("user-{n}"),
            if n % 3 == 0 {
                a.url.clone()
            } else {
                b.url.clone()
            },
        ));
    }
    let accepts = codes.iter().map(|(code, user, base)| {
        http.post(format!("{base}/sdk/v1/invites/{code}/accept"))
            .bearer_auth(public)
            .json(&json!({"reference_id": user, "supports_webview": true}))
            .send()
    });
    let mut started = 0;
    for response in futures::future::join_all(accepts).await {
        let body: Value = response.unwrap().json().await.unwrap();
        if body["outcome"] == "webview" {
            started += 1;
        } else {
            assert_eq!(body["reason"], "max_starts_reached");
        }
    }
    assert_eq!(started, 5);

    // At the cap, A says no (within its one-second snapshot of the starts B made; an invite
    // issued meanwhile could not be accepted past the cap); its counted decisions reach the
    // database and B reports them.
    let mut refused = 0;
    let mut n = 20;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while refused < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "A kept inviting past the cap"
        );
        let answer: Value = http
            .post(format!("{}/sdk/v1/events", a.url))
            .bearer_auth(public)
            .json(&json!({"event_name": "Order Completed", "reference_id": format!("user-{n}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        n += 1;
        if answer["reason"] == "max_starts_reached" {
            refused += 1;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let stats: Value = http
            .get(format!("{}/api/v1/launch-rules/{rule_id}/stats", b.url))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stats["suppressions"]["max_starts_reached"] == 3 {
            assert_eq!(stats["invites"]["accepted"], 5);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A's counts never reached B: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }

    // Paused through B: A issues nothing more.
    let paused = http
        .patch(format!("{}/api/v1/launch-rules/{rule_id}", b.url))
        .bearer_auth(secret)
        .json(&json!({"status": "paused"}))
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status().as_u16(), 200);
    // A serves the change within its snapshot's second, well inside the config TTL.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let config: Value = http
            .get(format!("{}/sdk/v1/config?reference_id=u", a.url))
            .bearer_auth(public)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if config["triggers"] == json!([]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A still serves the paused rule"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An invite issued through one process a moment after a rule was made there is served by
/// the other, whose snapshot (read just before) does not know the rule yet: it reads the
/// rule before judging the invite closed, and neither withdraws it nor holds the user in the
/// rule's cooldown.
#[tokio::test]
async fn an_invite_from_a_rule_newer_than_the_other_process_s_snapshot_is_kept() {
    let Some(pair) = two_processes().await else {
        return;
    };
    let (a, b, secret, public) = (&pair.a, &pair.b, pair.secret.as_str(), pair.public.as_str());
    let http = reqwest::Client::new();
    let config = |base: &str, user: &str| {
        http.get(format!("{base}/sdk/v1/config?reference_id={user}"))
            .bearer_auth(public)
            .send()
    };
    // B reads the project's rules: none yet (the first load marks the SDK contacted, which
    // drops B's snapshot; the second keeps one).
    for _ in 0..2 {
        let warm: Value = config(&b.url, "warm").await.unwrap().json().await.unwrap();
        assert_eq!(warm["triggers"], json!([]));
    }
    event_rule(&http, &a.url, secret, "Signed Up", json!({})).await;
    let invited: Value = http
        .post(format!("{}/sdk/v1/events", a.url))
        .bearer_auth(public)
        .json(&json!({"event_name": "Signed Up", "reference_id": "u"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = invited["pending_invite"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for base in [&b.url, &a.url] {
        let loaded: Value = config(base, "u").await.unwrap().json().await.unwrap();
        assert_eq!(
            loaded["pending_invite"]["code"],
            code.as_str(),
            "{base}: {loaded}"
        );
    }
}

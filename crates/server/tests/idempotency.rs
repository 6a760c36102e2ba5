//! `Idempotency-Key` on the REST creates of studies and launch rules: a retry is answered
//! as the first request was and creates nothing, racing retries make one resource, another
//! request with the key is refused, and each project's keys are its own.

mod helpers;

use helpers::TestApp;
use reqwest::header::HeaderValue;
use serde_json::{json, Value};

const STUDY: &str = "/api/v1/studies";

fn checkout() -> Value {
    json!({"name": "Checkout interviews", "interview_url": "https://research.example.com/i/ck"})
}

fn after_checkout() -> Value {
    json!({"name": "After checkout", "trigger": {"type": "app_event", "event_name": "Order Completed"}, "surface": "sdk_prompt"})
}

/// An answer as the client saw it: status, whether it was marked replayed, its body bytes.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    replayed: bool,
    body: Vec<u8>,
    /// The `Location` header.
    location: Option<String>,
    /// The `ETag` header.
    etag: Option<String>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn id(&self) -> String {
        self.json()["id"].as_str().unwrap().to_owned()
    }
}

/// POSTs `body` to `path` with `Idempotency-Key: idempotency_key`.
async fn post_keyed(
    app: &TestApp,
    path: &str,
    key: &str,
    idempotency_key: impl TryInto<HeaderValue, Error: std::fmt::Debug>,
    body: &Value,
) -> Answer {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency_key.try_into().unwrap())
        .json(body)
        .send()
        .await
        .unwrap();
    answer_of(response).await
}

async fn answer_of(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let replayed = match response.headers().get("idempotent-replayed") {
        Some(value) => {
            assert_eq!(value, "true", "marked only as replayed");
            true
        }
        None => false,
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let (location, etag) = (header("location"), header("etag"));
    let body = response.bytes().await.unwrap().to_vec();
    Answer {
        status,
        replayed,
        body,
        location,
        etag,
    }
}

/// How many items the list at `path` holds (at most 100).
async fn listed(app: &TestApp, path: &str, key: &str) -> usize {
    let list: Value = app
        .get(&format!("{path}?limit=100"), key)
        .await
        .json()
        .await
        .unwrap();
    list["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_create_sent_again_with_its_key_is_answered_as_the_first_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let first = post_keyed(&app, STUDY, &key, "order-7f3a", &checkout()).await;
    assert_eq!((first.status, first.replayed), (201, false), "{first:?}");
    assert_eq!(first.json()["name"], "Checkout interviews");

    let again = post_keyed(&app, STUDY, &key, "order-7f3a", &checkout()).await;
    assert_eq!(again.status, 201);
    assert!(again.replayed, "a replay says so");
    assert_eq!(again.body, first.body, "the same bytes");
    assert_eq!(listed(&app, STUDY, &key).await, 1);
    // Both say where the study is.
    let at = format!("{STUDY}/{}", first.id());
    assert_eq!(
        (first.location.as_deref(), again.location.as_deref()),
        (Some(at.as_str()), Some(at.as_str()))
    );
    let rule = post_keyed(
        &app,
        &format!("{at}/launch-rules"),
        &key,
        "rule-1",
        &json!({"name": "R", "surface": "sdk_prompt",
                "trigger": {"type": "app_event", "event_name": "X"}}),
    )
    .await;
    assert_eq!(
        rule.location,
        Some(format!("/api/v1/launch-rules/{}", rule.id()))
    );
    // Each answers its version, as a read does, for a change made over it (If-Match): the
    // creates answered none, so a client had to read what it had just created.
    let etag_of = |path: String| {
        let app = &app;
        let key = &key;
        async move {
            let read = app.get(&path, key).await;
            read.headers()["etag"].to_str().unwrap().to_owned()
        }
    };
    let created_version = etag_of(at.clone()).await;
    assert_eq!(
        (first.etag.as_deref(), again.etag.as_deref()),
        (
            Some(created_version.as_str()),
            Some(created_version.as_str())
        )
    );
    let rule_again = post_keyed(
        &app,
        &format!("{at}/launch-rules"),
        &key,
        "rule-1",
        &json!({"name": "R", "surface": "sdk_prompt",
                "trigger": {"type": "app_event", "event_name": "X"}}),
    )
    .await;
    assert!(rule_again.replayed);
    let rule_version = etag_of(format!("/api/v1/launch-rules/{}", rule.id())).await;
    assert_eq!(
        (rule.etag.as_deref(), rule_again.etag.as_deref()),
        (Some(rule_version.as_str()), Some(rule_version.as_str()))
    );

    // The answer recorded is replayed, not the study as it is now.
    let renamed = app
        .client
        .patch(app.url(&format!("{STUDY}/{}", first.id())))
        .bearer_auth(&key)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status().as_u16(), 200);
    let later = post_keyed(&app, STUDY, &key, "order-7f3a", &checkout()).await;
    assert_eq!((later.status, later.replayed), (201, true));
    assert_eq!(later.body, first.body);
    // With the version of the study it shows: a change over it is refused, not made over
    // the rename.
    assert_eq!(later.etag, first.etag);
    assert_ne!(later.etag, Some(etag_of(at.clone()).await));

    // Without a key, each create is its own.
    app.create_study(&key, "https://research.example.com/i/ck")
        .await;
    assert_eq!(listed(&app, STUDY, &key).await, 2);
}

#[tokio::test]
async fn the_key_of_one_request_is_refused_for_a_different_one() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let first = post_keyed(&app, STUDY, &key, "k-1", &checkout()).await;
    assert_eq!(first.status, 201);
    let study = first.id();

    let mut other_body = checkout();
    other_body["name"] = json!("Another study");
    let rules = format!("{STUDY}/{study}/launch-rules");
    for (path, body) in [
        (STUDY, &other_body),
        // Another route, same key.
        (rules.as_str(), &after_checkout()),
    ] {
        let refused = post_keyed(&app, path, &key, "k-1", body).await;
        assert_eq!(refused.status, 422, "{path}");
        assert!(!refused.replayed);
        let error = &refused.json()["error"];
        assert_eq!(error["code"], "idempotency_key_reused");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("different request"),
            "{error}"
        );
    }
    // The same body to another study's rules is another request too.
    let rule = post_keyed(&app, &rules, &key, "k-rule", &after_checkout()).await;
    assert_eq!(rule.status, 201);
    let other_study = app
        .create_study(&key, "https://research.example.com/i/2")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let elsewhere = post_keyed(
        &app,
        &format!("{STUDY}/{other_study}/launch-rules"),
        &key,
        "k-rule",
        &after_checkout(),
    )
    .await;
    assert_eq!(elsewhere.status, 422);
    assert_eq!(listed(&app, STUDY, &key).await, 2);
    assert_eq!(listed(&app, &rules, &key).await, 1);
    assert_eq!(
        listed(&app, &format!("{STUDY}/{other_study}/launch-rules"), &key).await,
        0
    );
}

#[tokio::test]
async fn projects_use_the_same_key_independently() {
    let app = TestApp::spawn().await;
    let shop = app.bootstrap("ada@example.com", "Shop").secret_key;
    let blog = app.bootstrap("bob@example.com", "Blog").secret_key;
    let ours = post_keyed(&app, STUDY, &shop, "shared-key", &checkout()).await;
    let theirs = post_keyed(&app, STUDY, &blog, "shared-key", &checkout()).await;
    assert_eq!((ours.status, ours.replayed), (201, false));
    assert_eq!((theirs.status, theirs.replayed), (201, false));
    assert_ne!(ours.id(), theirs.id());
    // And a different body under it in the other project is no reuse.
    let mut other_body = checkout();
    other_body["name"] = json!("Blog readers");
    let third = app.bootstrap("eve@example.com", "Docs").secret_key;
    let docs = post_keyed(&app, STUDY, &third, "shared-key", &other_body).await;
    assert_eq!((docs.status, docs.replayed), (201, false));
    for key in [&shop, &blog, &third] {
        assert_eq!(listed(&app, STUDY, key).await, 1);
    }
    let replayed = post_keyed(&app, STUDY, &blog, "shared-key", &checkout()).await;
    assert_eq!(replayed.body, theirs.body, "each project replays its own");
}

#[tokio::test]
async fn twenty_creates_at_once_with_one_key_make_one_study() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let body = checkout();
    let answers =
        futures::future::join_all((0..20).map(|_| post_keyed(&app, STUDY, &key, "burst", &body)))
            .await;
    assert!(answers.iter().all(|a| a.status == 201), "{answers:?}");
    assert!(answers.iter().all(|a| a.body == answers[0].body));
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert_eq!(listed(&app, STUDY, &key).await, 1);
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM idempotency_keys").await,
        1
    );
}

#[tokio::test]
async fn a_launch_rule_create_is_replayed_and_made_once_under_racing_retries() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = app
        .create_study(&key, "https://research.example.com/i/1")
        .await;
    let rules = format!("{STUDY}/{}/launch-rules", study["id"].as_str().unwrap());
    let first = post_keyed(&app, &rules, &key, "rule-1", &after_checkout()).await;
    assert_eq!((first.status, first.replayed), (201, false), "{first:?}");
    let again = post_keyed(&app, &rules, &key, "rule-1", &after_checkout()).await;
    assert_eq!((again.status, again.replayed), (201, true));
    assert_eq!(again.body, first.body);
    assert_eq!(listed(&app, &rules, &key).await, 1);

    let mut second = after_checkout();
    second["name"] = json!("Second");
    let answers = futures::future::join_all(
        (0..20).map(|_| post_keyed(&app, &rules, &key, "rule-2", &second)),
    )
    .await;
    assert!(answers.iter().all(|a| a.status == 201), "{answers:?}");
    assert!(answers.iter().all(|a| a.id() == answers[0].id()));
    assert_eq!(answers.iter().filter(|a| !a.replayed).count(), 1);
    assert_eq!(listed(&app, &rules, &key).await, 2);
}

#[tokio::test]
async fn a_key_that_is_not_1_to_255_printable_ascii_characters_is_refused_with_400() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let long = "k".repeat(256);
    let bad: [&[u8]; 5] = [
        b"",
        long.as_bytes(),
        b"two words",
        b"tab\tinside",
        "caf\u{e9}".as_bytes(),
    ];
    for idempotency_key in bad {
        let value = HeaderValue::from_bytes(idempotency_key).unwrap();
        let refused = post_keyed(&app, STUDY, &key, value, &checkout()).await;
        assert_eq!(refused.status, 400, "{idempotency_key:?}");
        let error = &refused.json()["error"];
        assert_eq!(
            (error["code"].as_str(), error["field"].as_str()),
            (Some("invalid_request"), Some("Idempotency-Key")),
            "{error}"
        );
    }
    // One key per request.
    let twice = app
        .client
        .post(app.url(STUDY))
        .bearer_auth(&key)
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .json(&checkout())
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status().as_u16(), 400);
    assert_eq!(listed(&app, STUDY, &key).await, 0);
    // The longest key is taken.
    let longest = post_keyed(&app, STUDY, &key, "k".repeat(255), &checkout()).await;
    assert_eq!(longest.status, 201);
}

#[tokio::test]
async fn a_refused_create_records_nothing_so_its_key_can_be_sent_again_corrected() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let mut wrong = checkout();
    wrong["interview_url"] = json!("javascript:alert(1)");
    let refused = post_keyed(&app, STUDY, &key, "fix-me", &wrong).await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.json()["error"]["field"], "interview_url");
    let refused_again = post_keyed(&app, STUDY, &key, "fix-me", &wrong).await;
    assert_eq!(
        (refused_again.status, refused_again.replayed),
        (422, false),
        "validated afresh, not replayed"
    );

    let fixed = post_keyed(&app, STUDY, &key, "fix-me", &checkout()).await;
    assert_eq!((fixed.status, fixed.replayed), (201, false));
    let retried = post_keyed(&app, STUDY, &key, "fix-me", &checkout()).await;
    assert_eq!((retried.status, retried.replayed), (201, true));
    assert_eq!(retried.body, fixed.body);
    assert_eq!(listed(&app, STUDY, &key).await, 1);

    // A rule for a study that is not there is refused too, and records nothing.
    let missing = post_keyed(
        &app,
        &format!("{STUDY}/std_01jnotthere0000000000000000/launch-rules"),
        &key,
        "rule-key",
        &after_checkout(),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM idempotency_keys").await,
        1
    );
}

#[tokio::test]
async fn a_key_older_than_24_hours_makes_a_new_create() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let first = post_keyed(&app, STUDY, &key, "daily-import", &checkout()).await;
    let again = post_keyed(&app, STUDY, &key, "daily-import", &checkout()).await;
    assert_eq!((first.status, again.replayed), (201, true));
    // A day and a bit later (the record's time moved back, as the clock cannot move).
    app.execute_sql("UPDATE idempotency_keys SET created_at = '2000-01-01T00:00:00.000000Z'")
        .await;
    let next_day = post_keyed(&app, STUDY, &key, "daily-import", &checkout()).await;
    assert_eq!((next_day.status, next_day.replayed), (201, false));
    assert_ne!(next_day.id(), first.id());
    assert_eq!(listed(&app, STUDY, &key).await, 2);
    let retried = post_keyed(&app, STUDY, &key, "daily-import", &checkout()).await;
    assert_eq!((retried.status, retried.replayed), (201, true));
    assert_eq!(retried.body, next_day.body, "the new record answers now");
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM idempotency_keys").await,
        1
    );
}

#[tokio::test]
async fn creating_an_api_key_ignores_the_idempotency_key() {
    // Its answer shows the new secret once; a replay would mean keeping the secret.
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let body = json!({"name": "CI"});
    let first = post_keyed(&app, "/api/v1/api-keys", &key, "ci-key", &body).await;
    let second = post_keyed(&app, "/api/v1/api-keys", &key, "ci-key", &body).await;
    assert_eq!((first.status, second.status), (201, 201));
    assert!(!second.replayed);
    assert_ne!(first.json()["secret"], second.json()["secret"]);
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM idempotency_keys").await,
        0
    );
}

/// A create and its replay are both answered `Content-Type: application/json`, for a study
/// and a launch rule alike: the recorded bytes are sent as JSON, not as bytes of no type
/// (found by the mutation audit).
#[tokio::test]
async fn a_create_and_its_replay_are_answered_as_json() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let content_type = |path: String, idempotency_key: &'static str, body: Value| {
        let request = app
            .client
            .post(app.url(&path))
            .bearer_auth(&key)
            .header("Idempotency-Key", idempotency_key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201, "{path}");
            let replayed = response.headers().contains_key("idempotent-replayed");
            let json = response.headers().get("content-type").cloned();
            let id = response.json::<Value>().await.unwrap()["id"].clone();
            (replayed, json, id)
        }
    };
    let first = content_type(STUDY.to_owned(), "study-1", checkout()).await;
    let again = content_type(STUDY.to_owned(), "study-1", checkout()).await;
    let rules = format!("{STUDY}/{}/launch-rules", first.2.as_str().unwrap());
    let rule = content_type(rules.clone(), "rule-1", after_checkout()).await;
    let rule_again = content_type(rules, "rule-1", after_checkout()).await;
    for (answer, replayed) in [
        (first, false),
        (again, true),
        (rule, false),
        (rule_again, true),
    ] {
        assert_eq!(answer.0, replayed, "{answer:?}");
        assert_eq!(
            answer.1.as_ref().map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "{answer:?}"
        );
    }
}

/// A dashboard form's key and the API's `Idempotency-Key` are keys of their own: a form
/// sent with the key an API client sends later takes nothing from it (found by the
/// idempotency review: the API's create was refused 422 `idempotency_key_reused`).
#[tokio::test]
async fn a_form_s_key_takes_no_key_of_the_api() {
    let app = TestApp::spawn().await;
    let browser = helpers::client();
    let project = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    assert!(project.ends_with(&keys.project_id), "{project}");
    let studies = format!("{project}/studies");
    let (_, page) = app.page(&browser, &studies).await;
    let form = [
        ("csrf_token", helpers::csrf_token(&page)),
        ("form_key", "ci-study-1".to_owned()),
        ("name", "From the form".to_owned()),
        ("interview_url", "https://r.example.com/i/1".to_owned()),
        ("launch_mode", "in_app".to_owned()),
    ];
    let made = browser
        .post(app.url(&studies))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 303);
    let created = post_keyed(&app, STUDY, &keys.secret_key, "ci-study-1", &checkout()).await;
    assert_eq!(
        (created.status, created.replayed),
        (201, false),
        "{created:?}"
    );
    assert_eq!(app.count_sql("SELECT COUNT(*) FROM studies").await, 2);
}

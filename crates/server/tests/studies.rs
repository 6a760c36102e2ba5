//! Studies and launch rules over REST: every field, transition and validation error,
//! tenant isolation, and `explain` against a synced audience.

mod helpers;

use helpers::TestApp;
use serde_json::{json, Value};

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn patch(app: &TestApp, path: &str, key: &str, body: Value) -> (u16, Value) {
    json_of(
        app.client
            .patch(app.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn study(app: &TestApp, key: &str) -> String {
    let (status, body) = json_of(
        app.post_json("/api/v1/studies", key, json!({"name": "Checkout interviews", "interview_url": "https://research.example.com/i/ck"}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_study_is_created_with_defaults_changed_and_listed() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let (status, created) = json_of(
        app.post_json("/api/v1/studies", &key, json!({"name": " Checkout ", "interview_url": "https://r.example.com/i/1", "weekly_limit": 20}))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        (
            created["name"].as_str(),
            created["status"].as_str(),
            created["launch_mode"].as_str()
        ),
        (Some("Checkout"), Some("active"), Some("in_app"))
    );
    assert_eq!(created["weekly_limit"], 20);
    assert_eq!(created["public_code"].as_str().unwrap().len(), 10);
    let id = created["id"].as_str().unwrap();

    let (status, changed) = patch(&app, &format!("/api/v1/studies/{id}"), &key, json!({"status": "paused", "launch_mode": "browser", "weekly_limit": null, "monthly_limit": 100})).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (changed["status"].as_str(), changed["launch_mode"].as_str()),
        (Some("paused"), Some("browser"))
    );
    assert_eq!(
        (
            changed["weekly_limit"].clone(),
            changed["monthly_limit"].clone()
        ),
        (Value::Null, json!(100))
    );

    let listed: Value = app.get("/api/v1/studies", &key).await.json().await.unwrap();
    assert_eq!(listed["data"][0]["id"], id);
    let shown: Value = app
        .get(&format!("/api/v1/studies/{id}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["monthly_limit"], 100);
}

#[tokio::test]
async fn invalid_studies_name_the_field() {
    let app = TestApp::spawn().await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let key = keys.secret_key.clone();
    let cases = [
        (
            json!({"name": "", "interview_url": "https://x.example"}),
            "name",
        ),
        (
            json!({"name": "A", "interview_url": "javascript:alert(1)"}),
            "interview_url",
        ),
        (
            json!({"name": "A", "interview_url": "https://x.example", "weekly_limit": 0}),
            "weekly_limit",
        ),
        (
            json!({"name": "A", "interview_url": "https://x.example", "weekly_limit": 10, "monthly_limit": 5}),
            "monthly_limit",
        ),
        (
            json!({"name": "A", "interview_url": "https://x.example", "launch_mode": "tv"}),
            "launch_mode",
        ),
        (
            json!({"name": "A", "interview_url": "https://x.example", "status": "deleted"}),
            "status",
        ),
    ];
    for (body, field) in cases {
        let (status, error) =
            json_of(app.post_json("/api/v1/studies", &key, body.clone()).await).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    let (status, _) = json_of(
        app.post_json("/api/v1/studies", &key, json!({"name": "A"}))
            .await,
    )
    .await;
    assert_eq!(status, 400, "interview_url is required");
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM studies").await,
        0,
        "nothing of a refused study is stored"
    );

    // A change to one limit is checked against the other one already stored.
    let (status, created) = json_of(
        app.post_json(
            "/api/v1/studies",
            &key,
            json!({"name": "A", "interview_url": "https://x.example", "weekly_limit": 10}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/studies/{}", created["id"].as_str().unwrap());
    let (status, error) = patch(&app, &path, &key, json!({"monthly_limit": 4})).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("monthly_limit")),
        "{error}"
    );
    let (_, unchanged) = json_of(app.get(&path, &key).await).await;
    assert_eq!(unchanged["monthly_limit"], Value::Null);

    // A study stored before that check, with limits that disagree, can still be paused:
    // only a change to a limit is held to it.
    let store = uj_storage::connect(&app.db.url).await.unwrap();
    let project = uj_domain::ids::ProjectId::from_string(&keys.project_id);
    let id = uj_domain::ids::StudyId::from_string(created["id"].as_str().unwrap());
    let mut old = store.study(&project, &id).await.unwrap().unwrap();
    let read_at = old.updated_at;
    old.monthly_limit = Some(5);
    assert!(store.update_study(&old, read_at).await.unwrap());
    let (status, paused) = patch(&app, &path, &key, json!({"status": "paused"})).await;
    assert_eq!(
        (status, paused["status"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );
    // Sent unchanged (as the dashboard's form sends both), the limits are not held to it.
    let (status, renamed) = patch(
        &app,
        &path,
        &key,
        json!({"name": "B", "weekly_limit": 10, "monthly_limit": 5}),
    )
    .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (200, Some("B")),
        "{renamed}"
    );
}

/// A body read again for a whole number written as a float (`5.0`) is held to what the
/// first reading holds it to: a field given twice is refused with the same error (read as a
/// tree, the second reading kept the last and created the study).
#[tokio::test]
async fn a_whole_number_written_as_a_float_lets_no_field_be_given_twice() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let post = |body: &'static str| {
        let app = &app;
        let key = &key;
        async move {
            json_of(
                app.client
                    .post(app.url("/api/v1/studies"))
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    for body in [
        r#"{"weekly_limit":5,"name":"A","name":"B","interview_url":"https://x.io"}"#,
        r#"{"weekly_limit":5.0,"name":"A","name":"B","interview_url":"https://x.io"}"#,
        r#"{"weekly_limit":1e1,"name":"A","interview_url":"https://x.io","name":"B"}"#,
    ] {
        // Where the body sent has it, whatever the reading.
        let column = body.rfind(r#""name""#).unwrap() + 6;
        let (status, error) = post(body).await;
        assert_eq!(
            (status, error),
            (
                400,
                json!({"error": {"code": "invalid_request", "field": "name", "message":
                    format!("Invalid request body: duplicate field `name` at line 1 column {column}")}})
            ),
            "{body}"
        );
    }
    assert_eq!(app.count_sql("SELECT COUNT(*) FROM studies").await, 0);
    // Given once, the float is still the whole number it is, and a fraction refused.
    let (status, created) =
        post(r#"{"weekly_limit":5.0,"name":"A","interview_url":"https://x.io"}"#).await;
    assert_eq!(
        (status, &created["name"], &created["weekly_limit"]),
        (201, &json!("A"), &json!(5)),
        "{created}"
    );
    let (status, error) =
        post(r#"{"weekly_limit":5.5,"name":"A","interview_url":"https://x.io"}"#).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (400, Some("weekly_limit")),
        "{error}"
    );
}

#[tokio::test]
async fn rules_take_every_field_and_refuse_a_changed_trigger() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let body = json!({
        "name": "After checkout", "trigger": {"type": "app_event", "event_name": " Order Completed "},
        "surface": "sdk_prompt", "prompt": {"title": "Got 5 minutes?", "start_label": "Sure"},
        "priority": 7, "cooldown_seconds": 3600, "max_starts": 50, "sampling_percent": 25,
        "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"
    });
    let (status, rule) = json_of(
        app.post_json(&format!("/api/v1/studies/{study}/launch-rules"), &key, body)
            .await,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["status"], "draft");
    assert_eq!(
        rule["trigger"],
        json!({"type": "app_event", "event_name": "Order Completed"})
    );
    assert_eq!(
        rule["prompt"],
        json!({"title": "Got 5 minutes?", "message": "", "start_label": "Sure", "dismiss_label": ""})
    );
    assert_eq!(
        (
            rule["priority"].as_i64(),
            rule["cooldown_seconds"].as_i64(),
            rule["max_starts"].as_i64(),
            rule["sampling_percent"].as_i64()
        ),
        (Some(7), Some(3600), Some(50), Some(25))
    );
    let id = rule["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/launch-rules/{id}");

    let (status, active) = patch(
        &app,
        &path,
        &key,
        json!({"status": "active", "max_starts": null, "prompt": {"message": "Tell us"}}),
    )
    .await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(
        (active["status"].as_str(), active["max_starts"].clone()),
        (Some("active"), Value::Null)
    );
    assert_eq!(
        active["prompt"]["title"], "Got 5 minutes?",
        "untouched prompt fields stay"
    );
    assert_eq!(active["prompt"]["message"], "Tell us");

    // Sent again as it was created (spaces around the name, trimmed then): the same.
    let same = patch(&app, &path, &key, json!({"trigger": {"type": "app_event", "event_name": " Order Completed "}, "status": "paused"})).await;
    assert_eq!(
        (same.0, same.1["status"].as_str()),
        (200, Some("paused")),
        "the same trigger is fine"
    );
    let (status, error) = patch(
        &app,
        &path,
        &key,
        json!({"trigger": {"type": "app_event", "event_name": "Signed Up"}}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("trigger_immutable"))
    );

    let (status, error) = patch(&app, &path, &key, json!({"status": "archived"})).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("status"))
    );
    let archiving = app
        .post_json(&format!("{path}/archive"), &key, json!({}))
        .await;
    // Its version, as a read of it says (the archive's answer had none).
    let etag = archiving.headers().get("etag").cloned();
    let (status, archived) = json_of(archiving).await;
    assert_eq!(
        (status, archived["status"].as_str()),
        (200, Some("archived"))
    );
    let read = app.get(&path, &key).await;
    assert!(etag.is_some());
    assert_eq!(read.headers().get("etag"), etag.as_ref());
    let (status, error) = patch(&app, &path, &key, json!({"name": "revived"})).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("rule_archived"))
    );
    let listed: Value = app
        .get(&format!("/api/v1/studies/{study}/launch-rules"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["status"], "archived");

    // The list pages, as every list does.
    for n in 0..2 {
        let body = json!({"name": format!("R{n}"), "trigger": {"type": "app_event", "event_name": "E"}, "surface": "sdk_prompt"});
        let created = app
            .post_json(&format!("/api/v1/studies/{study}/launch-rules"), &key, body)
            .await;
        assert_eq!(created.status().as_u16(), 201);
    }
    let list = |query: String| {
        let (app, key, study) = (&app, &key, &study);
        async move {
            let url = format!("/api/v1/studies/{study}/launch-rules?{query}");
            app.get(&url, key).await.json::<Value>().await.unwrap()
        }
    };
    let first = list("limit=2".into()).await;
    assert_eq!(
        (first["data"].as_array().unwrap().len(), &first["has_more"]),
        (2, &json!(true))
    );
    let last_id = first["data"][1]["id"].as_str().unwrap();
    let next = list(format!("limit=2&starting_after={last_id}")).await;
    assert_eq!(
        (next["data"].as_array().unwrap().len(), &next["has_more"]),
        (1, &json!(false))
    );
    let too_many = app
        .get(
            &format!("/api/v1/studies/{study}/launch-rules?limit=1000"),
            &key,
        )
        .await;
    assert_eq!(too_many.status().as_u16(), 400);
}

/// Prompt copy may hold bidirectional controls that each close on their line (copy in a
/// right-to-left language); one left open, which would reorder what the app shows after
/// the prompt, is refused naming the field, on a create and on a PATCH. (Any was taken.)
#[tokio::test]
async fn prompt_copy_with_an_unclosed_bidirectional_control_is_refused() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let url = format!("/api/v1/studies/{study}/launch-rules");
    let rule = |prompt: Value| {
        json!({"name": "R", "trigger": {"type": "app_event", "event_name": "E"},
            "surface": "sdk_prompt", "prompt": prompt})
    };
    let open = rule(json!({"dismiss_label": "\u{202e}Later"}));
    let (status, error) = json_of(app.post_json(&url, &key, open).await).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("prompt.dismiss_label")),
        "{error}"
    );
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("U+202C") && message.contains("U+2069"),
        "{message}"
    );
    let closed = rule(
        json!({"title": "\u{2067}\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{2069}",
        "message": "\u{202b}\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{202c}\nHello"}),
    );
    let (status, created) = json_of(app.post_json(&url, &key, closed).await).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, error) = patch(
        &app,
        &format!("/api/v1/launch-rules/{id}"),
        &key,
        json!({"prompt": {"message": "\u{2067}a\nb\u{2069}"}}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("prompt.message")),
        "{error}"
    );
}

#[tokio::test]
async fn invalid_rules_name_the_field() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let base = json!({"name": "R", "trigger": {"type": "app_event", "event_name": "E"}, "surface": "sdk_prompt"});
    let with = |patch: Value| {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (
            with(json!({"trigger": {"type": "app_event", "event_name": ""}})),
            "trigger.event_name",
        ),
        (
            with(json!({"trigger": {"type": "audience", "audience_id": "aud_unknown"}})),
            "trigger.audience_id",
        ),
        (with(json!({"cooldown_seconds": -1})), "cooldown_seconds"),
        // Beyond ten years: a cooldown that large overflowed the date arithmetic of every
        // SDK request of the project (a 500 for all its users), even as a draft.
        (
            with(json!({"cooldown_seconds": i64::MAX})),
            "cooldown_seconds",
        ),
        (
            with(json!({"cooldown_seconds": 10 * 366 * 86_400 + 1})),
            "cooldown_seconds",
        ),
        (with(json!({"max_starts": 0})), "max_starts"),
        (with(json!({"sampling_percent": 101})), "sampling_percent"),
        (
            with(json!({"starts_at": "2026-06-01T00:00:00Z", "ends_at": "2026-05-01T00:00:00Z"})),
            "ends_at",
        ),
        (with(json!({"surface": "billboard"})), "surface"),
        (with(json!({"name": " "})), "name"),
        (
            with(json!({"prompt": {"title": "Got a\u{7} minute?"}})),
            "prompt.title",
        ),
    ];
    let url = format!("/api/v1/studies/{study}/launch-rules");
    for (body, field) in cases {
        let (status, error) = json_of(app.post_json(&url, &key, body.clone()).await).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM launch_rules").await,
        0,
        "nothing of a refused rule is stored"
    );
    let shaped =
        with(json!({"prompt": {"title": "Hi", "message": "Line one\nLine two\r\n\tthree"}}));
    let (status, created) = json_of(app.post_json(&url, &key, shaped).await).await;
    assert_eq!(
        status, 201,
        "line breaks and tabs shape the copy: {created}"
    );
    // A whole number written as a float is the integer it is (JSON Schema's `integer`, as
    // the document declares these fields): it was a 400. A fraction is still refused.
    let whole = with(json!({"priority": 5.0, "max_starts": 1e2, "cooldown_seconds": 3600.0}));
    let (status, created) = json_of(app.post_json(&url, &key, whole).await).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (
            &created["priority"],
            &created["max_starts"],
            &created["cooldown_seconds"]
        ),
        (&json!(5), &json!(100), &json!(3600))
    );
    let (status, _) = json_of(
        app.post_json(&url, &key, with(json!({"priority": 5.5})))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = json_of(
        app.post_json(&url, &key, json!({"name": "R", "surface": "sdk_prompt"}))
            .await,
    )
    .await;
    assert_eq!(status, 400, "the trigger is required");
    let (status, _) = json_of(
        app.post_json(&url, &key, with(json!({"trigger": {"type": "weather"}})))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = json_of(
        app.post_json("/api/v1/studies/std_missing/launch-rules", &key, base)
            .await,
    )
    .await;
    assert_eq!(status, 404);
}

/// A PATCH sending `null` for a field that cannot be cleared is refused naming the field;
/// it was read as "not sent" and answered 200 with nothing changed. Fields that can be
/// cleared (limits, max starts, the schedule, the contact limit) take `null`.
#[tokio::test]
async fn null_for_a_field_that_cannot_be_cleared_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let (status, rule) = json_of(
        app.post_json(
            &format!("/api/v1/studies/{study}/launch-rules"),
            &key,
            json!({"name": "R", "trigger": {"type": "app_event", "event_name": "E"}, "surface": "sdk_prompt"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    let rule = format!("/api/v1/launch-rules/{}", rule["id"].as_str().unwrap());
    let study = format!("/api/v1/studies/{study}");
    let cases = [
        (&study, json!({"name": null}), "name"),
        (&study, json!({"status": null}), "status"),
        (&rule, json!({"priority": null}), "priority"),
        (&rule, json!({"prompt": {"title": null}}), "prompt.title"),
        (&rule, json!({"cooldown_seconds": null}), "cooldown_seconds"),
    ];
    for (path, body, field) in cases {
        let (status, error) = patch(&app, path, &key, body.clone()).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}: {error}"
        );
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("null"),
            "{message}"
        );
    }
    let (status, error) = patch(
        &app,
        "/api/v1/project",
        &key,
        json!({"trait_allowlist": null}),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    for (path, body) in [
        (&study, json!({"weekly_limit": null})),
        (&rule, json!({"max_starts": null, "ends_at": null})),
    ] {
        assert_eq!(patch(&app, path, &key, body).await.0, 200);
    }
    let (status, _) = patch(
        &app,
        "/api/v1/project",
        &key,
        json!({"contact_limit_days": null}),
    )
    .await;
    assert_eq!(status, 200);
}

/// A create sending `null` for a field that cannot be null is refused naming it, exactly as a
/// PATCH refuses it: it was read as not sent, so `{"priority": null}` made a rule of priority
/// 0 where the same body in a PATCH is a 400. Fields a study or rule holds as null (the
/// limits, `max_starts`: no cap, the schedule) take `null` on create too, meaning just that.
#[tokio::test]
async fn null_for_a_field_that_cannot_be_null_is_refused_on_create_as_on_patch() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study_id = study(&app, &key).await;
    let studies = "/api/v1/studies".to_owned();
    let rules = format!("/api/v1/studies/{study_id}/launch-rules");
    let a_study = json!({"name": "S", "interview_url": "https://research.example.com/s"});
    let a_rule = json!({"name": "R", "surface": "sdk_prompt",
                        "trigger": {"type": "app_event", "event_name": "E"}});
    let with = |base: &Value, field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases = [
        (&studies, with(&a_study, "status", Value::Null), "status"),
        (
            &studies,
            with(&a_study, "launch_mode", Value::Null),
            "launch_mode",
        ),
        (
            &studies,
            with(&a_study, "public_link", Value::Null),
            "public_link",
        ),
        (&rules, with(&a_rule, "status", Value::Null), "status"),
        (&rules, with(&a_rule, "priority", Value::Null), "priority"),
        (
            &rules,
            with(&a_rule, "cooldown_seconds", Value::Null),
            "cooldown_seconds",
        ),
        (
            &rules,
            with(&a_rule, "sampling_percent", Value::Null),
            "sampling_percent",
        ),
        (&rules, with(&a_rule, "prompt", Value::Null), "prompt"),
        (
            &rules,
            with(&a_rule, "prompt", json!({"title": null})),
            "prompt.title",
        ),
    ];
    for (path, body, field) in cases {
        let (status, error) = json_of(app.post_json(path, &key, body.clone()).await).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}: {error}"
        );
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("null"),
            "{message}"
        );
    }
    // Nothing was made by the refused bodies.
    let (_, listed) = json_of(app.get(&studies, &key).await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    let (_, listed) = json_of(app.get(&rules, &key).await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "{listed}");

    // The nullable ones: null is what they hold when unset.
    let body = json!({"name": "S", "interview_url": "https://research.example.com/s",
                      "weekly_limit": null, "monthly_limit": null});
    let (status, made) = json_of(app.post_json(&studies, &key, body).await).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (&made["weekly_limit"], &made["monthly_limit"]),
        (&Value::Null, &Value::Null)
    );
    let mut body = a_rule.clone();
    for field in ["max_starts", "starts_at", "ends_at"] {
        body[field] = Value::Null;
    }
    let (status, made) = json_of(app.post_json(&rules, &key, body).await).await;
    assert_eq!(status, 201, "{made}");
    for field in ["max_starts", "starts_at", "ends_at"] {
        assert_eq!(made[field], Value::Null, "{field}");
    }
}

#[tokio::test]
async fn another_projects_studies_and_rules_are_not_found() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let other = app.bootstrap("bob@example.com", "Blog").secret_key;
    let study = study(&app, &key).await;
    let (_, rule) = json_of(
        app.post_json(&format!("/api/v1/studies/{study}/launch-rules"), &key, json!({"name": "R", "trigger": {"type": "app_event", "event_name": "E"}, "surface": "direct_link"}))
            .await,
    )
    .await;
    let rule = rule["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/studies/{study}"),
        format!("/api/v1/studies/{study}/launch-rules"),
        format!("/api/v1/launch-rules/{rule}"),
        format!("/api/v1/launch-rules/{rule}/explain?reference_id=u"),
    ] {
        assert_eq!(
            app.get(&path, &other).await.status().as_u16(),
            404,
            "{path}"
        );
    }
    assert_eq!(
        patch(
            &app,
            &format!("/api/v1/launch-rules/{rule}"),
            &other,
            json!({"name": "x"})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.post_json(
            &format!("/api/v1/launch-rules/{rule}/archive"),
            &other,
            json!({})
        )
        .await
        .status()
        .as_u16(),
        404
    );
    let mine: Value = app
        .get(&format!("/api/v1/launch-rules/{rule}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["status"], "draft", "untouched");
    let theirs: Value = app
        .get("/api/v1/studies", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["data"], json!([]));
}

#[tokio::test]
async fn explain_shows_every_gate_for_a_user_now() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let (_, rule) = json_of(
        app.post_json(&format!("/api/v1/studies/{study}/launch-rules"), &key, json!({"name": "R", "trigger": {"type": "app_event", "event_name": "Order Completed"}, "surface": "sdk_prompt", "sampling_percent": 100}))
            .await,
    )
    .await;
    let id = rule["id"].as_str().unwrap();
    let explain = || async {
        app.get(
            &format!("/api/v1/launch-rules/{id}/explain?reference_id=user-1"),
            &key,
        )
        .await
        .json::<Value>()
        .await
        .unwrap()
    };
    let explained = explain().await;
    assert_eq!(explained["eligible"], false);
    assert_eq!(explained["reference_id"], "user-1");
    let gates: Vec<(&str, bool)> = explained["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["gate"].as_str().unwrap(), g["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(gates[0], ("rule_status", false), "a draft");
    assert_eq!(explained["gates"][0]["reason"], "rule_draft");
    assert!(gates.iter().skip(1).all(|(_, passed)| *passed), "{gates:?}");
    assert_eq!(
        gates.iter().map(|g| g.0).collect::<Vec<_>>(),
        [
            "rule_status",
            "study_status",
            "schedule",
            "trigger",
            "sampling",
            "already_started",
            "cooldown",
            "max_starts",
            "study_limit",
            "contact_limit"
        ]
    );

    patch(
        &app,
        &format!("/api/v1/launch-rules/{id}"),
        &key,
        json!({"status": "active"}),
    )
    .await;
    let explained = explain().await;
    assert_eq!(explained["eligible"], true);
    // Missing, the parameter is a bad request, as everywhere; empty, an invalid value.
    let missing = app
        .get(&format!("/api/v1/launch-rules/{id}/explain"), &key)
        .await;
    assert_eq!(missing.status().as_u16(), 400);
    let empty = app
        .get(
            &format!("/api/v1/launch-rules/{id}/explain?reference_id="),
            &key,
        )
        .await;
    assert_eq!(empty.status().as_u16(), 422);

    // Archived, and its study's only rule: the rule's gate says so; the study's is still
    // read (it said "archived" for a study no live rule held).
    let archived = app
        .post_json(
            &format!("/api/v1/launch-rules/{id}/archive"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(archived.status().as_u16(), 200);
    let explained = explain().await;
    let gates = explained["gates"].as_array().unwrap();
    assert_eq!(
        (&gates[0]["reason"], &gates[1]["gate"], &gates[1]["passed"]),
        (
            &json!("rule_archived"),
            &json!("study_status"),
            &json!(true)
        ),
        "{explained}"
    );
}

mod dashboard {
    use super::*;
    use helpers::{client, csrf_token, element_text, input_value, location, textarea_value};

    /// A new server set up through its pages, and a study "Checkout" made there: the
    /// project's path and the study's.
    async fn a_study(app: &TestApp, browser: &reqwest::Client) -> (String, String) {
        let project = app.set_up(browser, "ada@example.com", "Shop").await;
        let studies = format!("{project}/studies");
        let created = app
            .submit(
                browser,
                &studies,
                &studies,
                &[
                    ("name", "Checkout"),
                    ("interview_url", "https://r.example.com/i/1"),
                    ("launch_mode", "in_app"),
                ],
            )
            .await;
        let study = location(&created);
        (project, study)
    }

    /// The same create form sent twice (a double click, a slow answer clicked again) makes
    /// one study and one rule, both answers leading to it; the form sent again with other
    /// fields makes nothing and says why (it made two of each; found by the dashboard parity
    /// sweep).
    #[tokio::test]
    async fn a_create_form_sent_twice_makes_one() {
        let app = TestApp::spawn().await;
        let browser = client();
        let project = app.set_up(&browser, "ada@example.com", "Shop").await;
        let studies = format!("{project}/studies");
        let (_, page) = app.page(&browser, &studies).await;
        let mut form = vec![
            ("csrf_token", csrf_token(&page)),
            ("form_key", input_value(&page, "form_key")),
            ("name", "Checkout".to_owned()),
            ("interview_url", "https://r.example.com/i/1".to_owned()),
            ("launch_mode", "in_app".to_owned()),
        ];
        let post = |path: String, form: Vec<(&'static str, String)>| {
            browser.post(app.url(&path)).form(&form).send()
        };
        let first = post(studies.clone(), form.clone()).await.unwrap();
        let second = post(studies.clone(), form.clone()).await.unwrap();
        let study = location(&first);
        assert_eq!(location(&second), study);
        assert_eq!(app.count_sql("SELECT COUNT(*) FROM studies").await, 1);
        form[2].1 = "Another".to_owned();
        let refused = post(studies.clone(), form.clone()).await.unwrap();
        assert_eq!(refused.status().as_u16(), 422);
        let refused = refused.text().await.unwrap();
        assert!(refused.contains("sent already"));
        assert_eq!(app.count_sql("SELECT COUNT(*) FROM studies").await, 1);
        // The page that says so has a key of its own: sent from it, the form makes the study.
        assert_ne!(input_value(&refused, "form_key"), form[1].1);
        form[0].1 = csrf_token(&refused);
        form[1].1 = input_value(&refused, "form_key");
        let another = post(studies.clone(), form).await.unwrap();
        assert_eq!(another.status().as_u16(), 303);
        assert_eq!(app.count_sql("SELECT COUNT(*) FROM studies").await, 2);

        let (_, page) = app.page(&browser, &study).await;
        let form = vec![
            ("csrf_token", csrf_token(&page)),
            ("form_key", input_value(&page, "form_key")),
            ("name", "On checkout".to_owned()),
            ("trigger_type", "app_event".to_owned()),
            ("event_name", "Order Completed".to_owned()),
            ("audience_id", String::new()),
            ("surface", "sdk_prompt".to_owned()),
        ];
        let rules = format!("{study}/rules");
        let first = post(rules.clone(), form.clone()).await.unwrap();
        let second = post(rules, form).await.unwrap();
        assert_eq!(location(&second), location(&first));
        assert_eq!(app.count_sql("SELECT COUNT(*) FROM launch_rules").await, 1);
        // A page shown again (a refusal, another visit) has a key of its own.
        let (_, again) = app.page(&browser, &study).await;
        assert_ne!(
            input_value(&again, "form_key"),
            input_value(&page, "form_key")
        );
    }

    /// A save from a rule page older than the rule shows the current version, and lists
    /// what was typed that it does not hold (it was dropped: "make your change again").
    #[tokio::test]
    async fn a_save_from_an_older_rule_page_keeps_what_was_typed_beside_the_current_version() {
        let app = TestApp::spawn().await;
        let browser = client();
        let rule = a_checkout_rule(&app, &browser).await;
        let (_, first_tab) = app.page(&browser, &rule).await;
        let (_, second_tab) = app.page(&browser, &rule).await;
        let save = |page: &str, title: &'static str, priority: &'static str| {
            let changed = [
                ("prompt_title", title.into()),
                ("priority", priority.into()),
            ];
            let form = editor_post(page, editor_defaults(), &changed);
            browser.post(app.url(&rule)).form(&form).send()
        };
        let saved = save(&first_tab, "From the first tab", "5").await.unwrap();
        assert_eq!(location(&saved), format!("{rule}?saved=1"));
        // A value the older page's form cannot read is refused as from an older page first
        // (found by the final review: it came back to correct, with the current version).
        let unreadable = save(&second_tab, "From the second", "abc").await.unwrap();
        assert_eq!(unreadable.status().as_u16(), 409);
        // The same form sent again (a double click): saved, not refused as older.
        let again = save(&first_tab, "From the first tab", "5").await.unwrap();
        assert_eq!(location(&again), format!("{rule}?saved=1"));
        let stale = save(&second_tab, "From <the second>", "3").await.unwrap();
        // 409, as the API answers a conflict (was 422).
        assert_eq!(stale.status().as_u16(), 409);
        let page = stale.text().await.unwrap();
        assert_eq!(textarea_value(&page, "prompt_title"), "From the first tab");
        let unsaved = page
            .split(r#"id="unsaved""#)
            .nth(1)
            .and_then(|rest| rest.split("</div>").next())
            .unwrap_or_else(|| panic!("what was typed is listed: {page}"));
        assert!(
            unsaved
                .contains("<li>Title: “From &#60;the second&#62;” (now “From the first tab”)</li>")
                && unsaved.contains("<li>Priority: “3” (now “5”)</li>")
                && !unsaved.contains("Name"),
            "{unsaved}"
        );
        // Archived meanwhile: refused for that (it said the rule had changed, to make the
        // change again), 409 as the API answers.
        let (_, current) = app.page(&browser, &rule).await;
        let archive = format!("{rule}/archive");
        let archived = app
            .submit(&browser, &rule, &archive, &[("confirmed", "yes")])
            .await;
        assert_eq!(location(&archived), rule);
        let refused = save(&current, "After archiving", "1").await.unwrap();
        assert_eq!(refused.status().as_u16(), 409);
        let page = refused.text().await.unwrap();
        assert!(
            element_text(&page, "form-error")
                .unwrap()
                .contains("An archived rule cannot change"),
            "{page}"
        );
    }

    /// Prompt copy keeps its line breaks through the editor: its one-line inputs dropped them
    /// on every save (a browser strips them from an input's value). A browser sends a text
    /// area's breaks as CRLF; they are kept as LF.
    #[tokio::test]
    async fn prompt_copy_keeps_its_line_breaks_through_the_editor() {
        let app = TestApp::spawn().await;
        let browser = client();
        let rule = a_checkout_rule(&app, &browser).await;
        // What a browser sends from the page: every field as shown, one changed.
        let save = |page: String, field: &'static str, value: String| {
            let mut shown = editor_defaults();
            for (name, text) in shown.iter_mut() {
                match *name {
                    "prompt_title" | "prompt_message" => {
                        *text = textarea_value(&page, name).replace('\n', "\r\n");
                    }
                    "prompt_start_label" | "prompt_dismiss_label" => {
                        *text = input_value(&page, name);
                    }
                    _ => {}
                }
            }
            let form = editor_post(&page, shown, &[(field, value)]);
            browser.post(app.url(&rule)).form(&form).send()
        };
        let (_, page) = app.page(&browser, &rule).await;
        let saved = save(page, "prompt_message", "\r\nLine one\r\nLine two".into())
            .await
            .unwrap();
        assert_eq!(location(&saved), format!("{rule}?saved=1"));
        let (_, page) = app.page(&browser, &rule).await;
        assert_eq!(
            textarea_value(&page, "prompt_message"),
            "\nLine one\nLine two"
        );
        let saved = save(page, "priority", "7".into()).await.unwrap();
        assert_eq!(location(&saved), format!("{rule}?saved=1"));
        let (_, page) = app.page(&browser, &rule).await;
        assert_eq!(
            (
                textarea_value(&page, "prompt_message"),
                input_value(&page, "priority")
            ),
            ("\nLine one\nLine two".to_owned(), "7".to_owned())
        );
    }

    /// The rule editor offers only event names a rule takes: one stored before invisible
    /// characters were refused, a lookalike of a real one, is left out (it was offered, and
    /// refused when picked).
    #[tokio::test]
    async fn the_rule_editor_offers_no_event_name_a_rule_refuses() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (project, study) = a_study(&app, &browser).await;
        let id = project.rsplit('/').next().unwrap();
        app.execute_sql(&format!(
            "INSERT INTO event_catalog (project_id, name, app_count) VALUES \
             ('{id}', 'Order Completed', 1), ('{id}', 'Order\u{200b} Completed', 1)"
        ))
        .await;
        let (_, page) = app.page(&browser, &study).await;
        assert!(
            page.contains(r#"<option value="Order Completed">"#),
            "{page}"
        );
        assert!(!page.contains('\u{200b}'), "{page}");
    }

    /// A direct-link rule's copy labels its link: its editor says so (it said "Prompt copy").
    #[tokio::test]
    async fn a_direct_link_rule_s_copy_is_called_link_copy() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (_, study) = a_study(&app, &browser).await;
        let mut form = new_rule("Beta link", "app_event", "Order Completed", "");
        form[4] = ("surface", "direct_link");
        let made = app
            .submit(&browser, &study, &format!("{study}/rules"), &form)
            .await;
        let (_, page) = app.page(&browser, &location(&made)).await;
        assert!(page.contains("<h2>Link copy") && !page.contains("<h2>Prompt copy"));
    }

    /// A new study the page refuses comes back with what was typed, to correct it.
    #[tokio::test]
    async fn a_refused_new_study_keeps_what_was_typed() {
        let app = TestApp::spawn().await;
        let browser = client();
        let project = app.set_up(&browser, "ada@example.com", "Shop").await;
        let studies = format!("{project}/studies");
        let refused = app
            .submit(
                &browser,
                &studies,
                &studies,
                &[
                    ("name", "Checkout <q>"),
                    ("interview_url", "ftp://x.example.com/a"),
                    ("launch_mode", "browser"),
                ],
            )
            .await;
        assert_eq!(refused.status().as_u16(), 422);
        let html = refused.text().await.unwrap();
        assert!(element_text(&html, "form-error")
            .unwrap()
            .starts_with("Interview URL"));
        assert_eq!(input_value(&html, "name"), "Checkout &#60;q&#62;");
        assert_eq!(input_value(&html, "interview_url"), "ftp://x.example.com/a");
        assert!(
            html.contains(r#"<option value="browser" selected>"#),
            "{html}"
        );
    }

    /// "Power users", an audience of the project at `project` as a cohort sync makes it:
    /// its id.
    async fn an_audience(app: &TestApp, project: &str) -> String {
        let store = uj_storage::connect(&app.db.url).await.unwrap();
        let project = uj_domain::ids::ProjectId::from_string(project.rsplit('/').next().unwrap());
        store
            .upsert_audience(&project, "7", "Power users", "", uj_domain::now())
            .await
            .unwrap()
            .id
            .to_string()
    }

    /// The rule form's audience picker lists audiences by name, whatever order their cohorts
    /// were first synced in (among hundreds, one was hard to find; found by the scale probe).
    #[tokio::test]
    async fn the_audience_picker_lists_audiences_by_name() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (project, study) = a_study(&app, &browser).await;
        let store = uj_storage::connect(&app.db.url).await.unwrap();
        let project = uj_domain::ids::ProjectId::from_string(project.rsplit('/').next().unwrap());
        for (cohort, name) in [("1", "beta"), ("2", "Alpha"), ("3", "gamma")] {
            store
                .upsert_audience(&project, cohort, name, "", uj_domain::now())
                .await
                .unwrap();
        }
        let (_, page) = app.page(&browser, &study).await;
        let picker = page.split(r#"id="audience""#).nth(1).unwrap();
        let picker = picker.split("</select>").next().unwrap();
        let names: Vec<&str> = picker
            .split("<option value=\"aud_")
            .skip(1)
            .map(|option| {
                option
                    .split('>')
                    .nth(1)
                    .unwrap()
                    .split(" (")
                    .next()
                    .unwrap()
            })
            .collect();
        assert_eq!(names, ["Alpha", "beta", "gamma"], "{picker}");
    }

    /// The opening tag of the element with `id` in `html`.
    fn tag<'a>(html: &'a str, id: &str) -> &'a str {
        let at = html
            .find(&format!(r#"id="{id}""#))
            .unwrap_or_else(|| panic!("no #{id} in {html}"));
        let start = html[..at].rfind('<').unwrap();
        let end = at + html[at..].find('>').unwrap();
        &html[start..=end]
    }

    /// The study page's new-rule form as a browser sends it: both trigger fields, whichever
    /// radio is checked.
    fn new_rule<'a>(
        name: &'a str,
        trigger_type: &'a str,
        event_name: &'a str,
        audience_id: &'a str,
    ) -> [(&'a str, &'a str); 5] {
        [
            ("name", name),
            ("trigger_type", trigger_type),
            ("event_name", event_name),
            ("audience_id", audience_id),
            ("surface", "sdk_prompt"),
        ]
    }

    /// The study form as its page posts it.
    fn study_form<'a>(
        interview_url: &'a str,
        status: &'a str,
        launch_mode: &'a str,
        weekly_limit: &'a str,
    ) -> [(&'a str, &'a str); 6] {
        [
            ("name", "Checkout"),
            ("interview_url", interview_url),
            ("status", status),
            ("launch_mode", launch_mode),
            ("weekly_limit", weekly_limit),
            ("monthly_limit", ""),
        ]
    }

    /// The rule editor's form as its page posts it: the title "Got 5 minutes?", the
    /// cooldown given, the rest as a new rule has them.
    /// A rule "Checkout" made on a new study's page: its path.
    async fn a_checkout_rule(app: &TestApp, browser: &reqwest::Client) -> String {
        let (_, study) = a_study(app, browser).await;
        let made = app
            .submit(
                browser,
                &study,
                &format!("{study}/rules"),
                &new_rule("Checkout", "app_event", "Order Completed", ""),
            )
            .await;
        location(&made)
    }

    /// [`editor_form`] of "Checkout" (24 hours), as owned values to change.
    fn editor_defaults() -> Vec<(&'static str, String)> {
        editor_form("Checkout", "24")
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect()
    }

    /// The editor's form as a browser sends it from `page`: `fields` with `changed` in
    /// place of theirs, and the page's CSRF token and version.
    fn editor_post(
        page: &str,
        mut fields: Vec<(&'static str, String)>,
        changed: &[(&'static str, String)],
    ) -> Vec<(&'static str, String)> {
        fields.retain(|(k, _)| !changed.iter().any(|(c, _)| c == k));
        fields.extend(changed.iter().cloned());
        fields.push(("csrf_token", csrf_token(page)));
        fields.push(("version", input_value(page, "version")));
        fields
    }

    fn editor_form<'a>(name: &'a str, cooldown_hours: &'a str) -> [(&'a str, &'a str); 12] {
        [
            ("name", name),
            ("surface", "sdk_prompt"),
            ("prompt_title", "Got 5 minutes?"),
            ("prompt_message", ""),
            ("prompt_start_label", ""),
            ("prompt_dismiss_label", ""),
            ("priority", "0"),
            ("cooldown_hours", cooldown_hours),
            ("max_starts", ""),
            ("sampling_percent", "100"),
            ("starts_at", ""),
            ("ends_at", ""),
        ]
    }

    /// Picking an audience without JavaScript leaves the default "app event" radio checked:
    /// the one trigger field filled says which trigger is meant (the rule was refused with
    /// "Event name: must not be empty"), and the same the other way round.
    #[tokio::test]
    async fn the_filled_trigger_field_decides_when_the_checked_radio_s_field_is_empty() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (project, study) = a_study(&app, &browser).await;
        let audience = an_audience(&app, &project).await;
        let rules = format!("{study}/rules");
        for (form, trigger) in [
            (
                new_rule("Power users", "app_event", "", &audience),
                "audience “Power users”",
            ),
            (
                new_rule("After checkout", "audience", "Order Completed", ""),
                "app event “Order Completed”",
            ),
        ] {
            let made = app.submit(&browser, &study, &rules, &form).await;
            assert_eq!(made.status().as_u16(), 303, "{trigger}");
            let (_, page) = app.page(&browser, &location(&made)).await;
            assert_eq!(
                element_text(&page, "rule-trigger").as_deref(),
                Some(trigger)
            );
        }
    }

    /// Pausing a rule withdraws its open invites: the page asks first (a confirmation page
    /// without JavaScript) and then says how many were withdrawn. One without asks nothing.
    #[tokio::test]
    async fn pausing_a_rule_with_open_invites_asks_first_and_says_what_it_withdrew() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (_, study) = a_study(&app, &browser).await;
        let keys = app.bootstrap("ada@example.com", "Shop");
        let made = app
            .submit(
                &browser,
                &study,
                &format!("{study}/rules"),
                &new_rule("After checkout", "app_event", "Order Completed", ""),
            )
            .await;
        let rule = location(&made);
        let status = |status: &'static str| {
            let (app, browser, rule) = (&app, &browser, &rule);
            async move {
                let (_, html) = app.page(browser, rule).await;
                browser
                    .post(app.url(&format!("{rule}/status")))
                    .form(&[
                        ("csrf_token", csrf_token(&html).as_str()),
                        ("status", status),
                    ])
                    .send()
                    .await
                    .unwrap()
            }
        };
        let pause = |confirmed: &'static str| {
            let (app, browser, rule) = (&app, &browser, &rule);
            async move {
                let (_, html) = app.page(browser, rule).await;
                browser
                    .post(app.url(&format!("{rule}/pause")))
                    .form(&[
                        ("csrf_token", csrf_token(&html).as_str()),
                        ("status", "paused"),
                        ("confirmed", confirmed),
                    ])
                    .send()
                    .await
                    .unwrap()
            }
        };
        let rule_status = |html: &str| element_text(html, "rule-status").unwrap();
        // A status form forged to archive says where archiving is (it named the API's
        // endpoint), and changes nothing.
        let forged = status("archived").await;
        assert_eq!(forged.status().as_u16(), 422);
        let html = forged.text().await.unwrap();
        assert!(html.contains("its Archive button"), "{html}");
        assert_eq!(rule_status(&html), "draft");
        assert_eq!(status("active").await.status().as_u16(), 303);
        // No open invite: paused at once.
        let paused = pause("").await;
        assert_eq!(location(&paused), rule);
        let (_, html) = app.page(&browser, &location(&paused)).await;
        assert_eq!(
            (
                rule_status(&html).as_str(),
                element_text(&html, "paused-notice").as_deref()
            ),
            ("paused", Some("Rule paused."))
        );

        // Two users invited: the page's Pause asks first, naming them.
        assert_eq!(status("active").await.status().as_u16(), 303);
        for user in ["u1", "u2"] {
            let sent = app
                .post_json(
                    "/sdk/v1/events",
                    &keys.public_key,
                    json!({"event_name": "Order Completed", "reference_id": user}),
                )
                .await;
            let answer: Value = sent.json().await.unwrap();
            assert!(answer["pending_invite"].is_object(), "{answer}");
        }
        let (_, html) = app.page(&browser, &rule).await;
        assert!(
            tag(&html, "status-paused").contains("button")
                && html.contains(r#"data-confirm="Pause this rule? It stops inviting, and its 2 open invites are withdrawn"#),
            "{html}"
        );
        let asked = pause("").await;
        assert_eq!(asked.status().as_u16(), 200);
        let html = asked.text().await.unwrap();
        assert!(html.contains("its 2 open invites are withdrawn"), "{html}");
        assert!(
            html.contains(&format!(r#"action="{rule}/pause""#)),
            "{html}"
        );
        let (_, page) = app.page(&browser, &rule).await;
        assert_eq!(
            rule_status(&page),
            "active",
            "nothing paused before confirming"
        );
        let paused = pause("yes").await;
        assert_eq!(location(&paused), rule);
        let (_, html) = app.page(&browser, &location(&paused)).await;
        assert_eq!(rule_status(&html), "paused");
        assert_eq!(
            element_text(&html, "paused-notice").as_deref(),
            Some("Rule paused. Its 2 open invites were withdrawn.")
        );
    }

    /// With both trigger fields filled, or neither, which trigger is meant is not known (and
    /// it cannot be changed later): refused, the field to fix named, no rule made.
    #[tokio::test]
    async fn a_new_rule_with_both_trigger_fields_or_neither_is_refused_naming_the_field() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (project, study) = a_study(&app, &browser).await;
        let audience = an_audience(&app, &project).await;
        let rules = format!("{study}/rules");
        for (trigger_type, event, audience, said) in [
            (
                "app_event",
                "Order Completed",
                audience.as_str(),
                "Trigger: ",
            ),
            ("audience", "Order Completed", &audience, "Trigger: "),
            ("app_event", "", "", "Event name: "),
            ("audience", "", "", "Audience: "),
        ] {
            let form = new_rule("R", trigger_type, event, audience);
            let refused = app.submit(&browser, &study, &rules, &form).await;
            assert_eq!(refused.status().as_u16(), 422, "{form:?}");
            let page = refused.text().await.unwrap();
            let error = element_text(&page, "form-error").unwrap();
            assert!(error.starts_with(said), "{form:?}: {error}");
            if said == "Trigger: " {
                assert!(
                    error.contains("event name") && error.contains("audience"),
                    "{error}"
                );
            }
            assert!(element_text(&page, "no-rules").is_some(), "no rule made");
        }
    }

    /// A refused new rule comes back with everything entered: the name, the trigger chosen,
    /// the event name, the audience and the surface (the name and audience were cleared).
    #[tokio::test]
    async fn a_refused_new_rule_comes_back_as_entered() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (project, study) = a_study(&app, &browser).await;
        let audience = an_audience(&app, &project).await;
        let rules = format!("{study}/rules");
        // Refused for another field than the trigger: the trigger stays as chosen.
        let form = new_rule(" ", "app_event", "Order Completed", "");
        let refused = app.submit(&browser, &study, &rules, &form).await;
        let page = refused.text().await.unwrap();
        assert!(element_text(&page, "form-error")
            .unwrap()
            .starts_with("Name: "));
        // Said in the new rule's form, not above the study's (it read as about the study),
        // and the page opens on that form.
        let said = page.find(r#"id="form-error""#).unwrap();
        assert!(said > page.find("New targeting rule").unwrap(), "{page}");
        assert!(tag(&page, "rule-name").contains("autofocus"));
        assert!(tag(&page, "trigger-app-event").contains("checked"));
        assert!(tag(&page, "event-name").contains(r#"value="Order Completed""#));
        assert!(!page.contains(&format!(r#"<option value="{audience}" selected>"#)));
        // Refused for its trigger: all of it comes back.
        let mut form = new_rule("Power users <3", "audience", "Order Completed", &audience);
        form[4] = ("surface", "direct_link");
        let refused = app.submit(&browser, &study, &rules, &form).await;
        assert_eq!(refused.status().as_u16(), 422);
        let page = refused.text().await.unwrap();
        assert!(
            tag(&page, "rule-name").contains(r#"value="Power users &#60;3""#),
            "{page}"
        );
        assert!(tag(&page, "trigger-audience").contains("checked"));
        assert!(!tag(&page, "trigger-app-event").contains("checked"));
        assert!(tag(&page, "event-name").contains(r#"value="Order Completed""#));
        assert!(page.contains(&format!(r#"<option value="{audience}" selected>"#)));
        assert!(page.contains(r#"<option value="direct_link" selected>"#));
    }

    /// A refused study comes back with the status and the launch mode chosen, as its text
    /// fields do (the stored ones were shown, and saving again undid the choice).
    #[tokio::test]
    async fn a_refused_study_comes_back_with_the_status_and_launch_mode_chosen() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (_, study) = a_study(&app, &browser).await;
        let mut form = study_form("ftp://r.example.com/i/1", "paused", "browser", "").to_vec();
        form.push(("public_link", "app_only"));
        let refused = app.submit(&browser, &study, &study, &form).await;
        assert_eq!(refused.status().as_u16(), 422);
        let page = refused.text().await.unwrap();
        assert!(
            page.contains(r#"<option value="app_only" selected>"#),
            "{page}"
        );
        assert!(
            page.contains(r#"<option value="paused" selected>"#),
            "{page}"
        );
        assert!(
            page.contains(r#"<option value="browser" selected>"#),
            "{page}"
        );
        assert!(!page.contains(r#"<option value="active" selected>"#));
        // The URL is the field at fault, and only it.
        assert!(tag(&page, "interview_url").contains(r#"aria-invalid="true""#));
        assert_eq!(page.matches("aria-invalid").count(), 1);
        assert!(element_text(&page, "field-error")
            .unwrap()
            .starts_with("Interview URL"));
    }

    /// The study page turns its public link off and on: off, the page says what the link
    /// still does, and a browser opening it gets the "not valid" page.
    #[tokio::test]
    async fn the_study_page_turns_its_public_link_off() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (_, study) = a_study(&app, &browser).await;
        let (_, page) = app.page(&browser, &study).await;
        assert!(page.contains(r#"<option value="open" selected>"#), "{page}");
        let link = element_text(&page, "study-public-link").unwrap();
        let path = link.strip_prefix(&app.address).unwrap().to_owned();
        let opened = || async { client().get(app.url(&path)).send().await.unwrap().status() };
        assert_eq!(opened().await.as_u16(), 303);

        let mut form = study_form("https://r.example.com/i/1", "active", "in_app", "").to_vec();
        form.push(("public_link", "app_only"));
        let saved = app.submit(&browser, &study, &study, &form).await;
        assert_eq!(location(&saved), format!("{study}?saved=1"));
        let (_, page) = app.page(&browser, &study).await;
        assert!(page.contains(r#"<option value="app_only" selected>"#));
        assert!(element_text(&page, "study-public-link").is_none());
        assert!(element_text(&page, "study-public-link-off")
            .unwrap()
            .contains("opens nothing"));
        assert_eq!(opened().await.as_u16(), 404);

        // A form without the field (an older page) leaves it as it is.
        let form = study_form("https://r.example.com/i/1", "active", "in_app", "");
        app.submit(&browser, &study, &study, &form).await;
        assert_eq!(opened().await.as_u16(), 404);
        form_with(&app, &browser, &study, "open").await;
        assert_eq!(opened().await.as_u16(), 303);
    }

    async fn form_with(app: &TestApp, browser: &reqwest::Client, study: &str, public_link: &str) {
        let mut form = study_form("https://r.example.com/i/1", "active", "in_app", "").to_vec();
        form.push(("public_link", public_link));
        let saved = app.submit(browser, study, study, &form).await;
        assert_eq!(location(&saved), format!("{study}?saved=1"));
    }

    /// The rule's stats call withdrawn invites "Withdrawn" and say what it covers: the user
    /// left the audience, or the rule or its study stopped (it read "left the audience", for
    /// app-event rules too).
    #[tokio::test]
    async fn the_rule_page_says_what_withdrawn_covers() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (_, study) = a_study(&app, &browser).await;
        let form = new_rule("After checkout", "app_event", "Order Completed", "");
        let made = app
            .submit(&browser, &study, &format!("{study}/rules"), &form)
            .await;
        let (_, page) = app.page(&browser, &location(&made)).await;
        assert_eq!(
            element_text(&page, "withdrawn-label").as_deref(),
            Some("Withdrawn")
        );
        assert!(page.contains(
            "the user left the audience, the rule or its study stopped, or its start was \
             refused: a cap reached"
        ));
        assert!(!page.contains("Withdrawn (left the audience)"));
    }

    /// "Why (not)?" names another rule a gate is about (the winner on priority, the rule
    /// of the user's open invite) by its name, escaped, linking to its page: it showed the
    /// raw `rul_…` id.
    #[tokio::test]
    async fn why_not_names_and_links_the_rule_that_wins() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (project, study) = a_study(&app, &browser).await;
        let keys = app.bootstrap("ada@example.com", "Shop");
        let study_id = study.rsplit('/').next().unwrap();
        let mut ids = Vec::new();
        for (name, priority) in [("Winner <b>", 5), ("Runner-up", 0)] {
            let (status, rule) = json_of(
                app.post_json(
                    &format!("/api/v1/studies/{study_id}/launch-rules"),
                    &keys.secret_key,
                    json!({"name": name, "status": "active", "priority": priority,
                        "surface": "sdk_prompt",
                        "trigger": {"type": "app_event", "event_name": "Order Completed"}}),
                )
                .await,
            )
            .await;
            assert_eq!(status, 201, "{rule}");
            ids.push(rule["id"].as_str().unwrap().to_owned());
        }
        let (winner, runner_up) = (&ids[0], &ids[1]);
        let link = format!(r#"<a href="{project}/rules/{winner}">Winner &#60;b&#62;</a>"#);
        let gates = |page: &str| {
            let table = page.split(r#"id="gates""#).nth(1).expect("the gates");
            table.split("</table>").next().unwrap().to_owned()
        };
        let explained = format!("{project}/rules/{runner_up}?reference_id=u1");
        let (_, page) = app.page(&browser, &explained).await;
        // Said in a sentence first, then check by check.
        assert_eq!(
            element_text(&page, "explain-verdict").as_deref(),
            Some("u1 is held back now by: priority.")
        );
        let table = gates(&page);
        let priority = table
            .split("<tr>")
            .find(|row| row.contains("priority"))
            .unwrap();
        assert!(priority.contains(&link), "{table}");
        assert!(!table.contains(&format!("rule {winner}")), "{table}");

        // The winner invites u1: its open invite holds the runner-up back.
        let sent = app
            .post_json(
                "/sdk/v1/events",
                &keys.public_key,
                json!({"event_name": "Order Completed", "reference_id": "u1"}),
            )
            .await;
        assert_eq!(sent.status().as_u16(), 200);
        let (_, page) = app.page(&browser, &explained).await;
        let table = gates(&page);
        let open = table
            .split("<tr>")
            .find(|row| row.contains("open_invite"))
            .unwrap();
        assert!(open.contains(&link), "{table}");
        assert!(!table.contains(&format!("rule {winner}")), "{table}");
    }

    /// "Save study" and "Save rule" say so on the page they land on (nothing said the save
    /// went through); the page opened afresh says nothing.
    #[tokio::test]
    async fn saving_a_study_or_a_rule_says_saved_on_the_page_it_lands_on() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (_, study) = a_study(&app, &browser).await;
        let form = study_form("https://r.example.com/i/1", "active", "in_app", "5");
        let saved = app.submit(&browser, &study, &study, &form).await;
        assert_eq!(saved.status().as_u16(), 303);
        let (_, page) = app.page(&browser, &location(&saved)).await;
        assert_eq!(
            element_text(&page, "saved-notice").as_deref(),
            Some("Study saved.")
        );
        assert!(page.contains(r#"value="5""#));
        let (_, page) = app.page(&browser, &study).await;
        assert!(element_text(&page, "saved-notice").is_none());

        let form = new_rule("After checkout", "app_event", "Order Completed", "");
        let made = app
            .submit(&browser, &study, &format!("{study}/rules"), &form)
            .await;
        let rule = location(&made);
        let (_, page) = app.page(&browser, &rule).await;
        assert!(
            element_text(&page, "saved-notice").is_none(),
            "created, not saved"
        );
        let form = editor_form("After checkout", "24");
        let saved = app.submit(&browser, &rule, &rule, &form).await;
        assert_eq!(saved.status().as_u16(), 303);
        let (_, page) = app.page(&browser, &location(&saved)).await;
        assert_eq!(
            element_text(&page, "saved-notice").as_deref(),
            Some("Rule saved.")
        );
        assert_eq!(
            element_text(&page, "preview-title").as_deref(),
            Some("Got 5 minutes?")
        );
        let (_, page) = app.page(&browser, &rule).await;
        assert!(element_text(&page, "saved-notice").is_none());
    }

    /// A new rule's trigger is one of the two kinds: anything else is refused, not taken for
    /// an app event.
    #[tokio::test]
    async fn a_rule_of_an_unknown_trigger_kind_is_refused() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (_, study) = a_study(&app, &browser).await;
        let refused = app
            .submit(
                &browser,
                &study,
                &format!("{study}/rules"),
                &[
                    ("name", "Odd"),
                    ("trigger_type", "bogus"),
                    ("event_name", "Order Completed"),
                    ("surface", "sdk_prompt"),
                ],
            )
            .await;
        assert_eq!(refused.status().as_u16(), 422);
        let page = refused.text().await.unwrap();
        assert!(element_text(&page, "form-error")
            .unwrap()
            .starts_with("Trigger: "));
        assert!(element_text(&page, "no-rules").is_some(), "no rule made");
    }

    /// Two tabs on one study: a save from the older page is refused with the current
    /// version shown, never applied over the newer change (it un-paused the study).
    #[tokio::test]
    async fn a_save_from_a_page_older_than_the_study_is_refused() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (_, study) = a_study(&app, &browser).await;
        let (_, first_tab) = app.page(&browser, &study).await;
        let (_, second_tab) = app.page(&browser, &study).await;
        let save = |page: &str, status: &'static str, weekly: &'static str| {
            let form = [
                ("csrf_token", csrf_token(page)),
                ("version", input_value(page, "version")),
                ("name", "Checkout".to_owned()),
                ("interview_url", "https://r.example.com/i/1".to_owned()),
                ("status", status.to_owned()),
                (
                    "launch_mode",
                    if weekly.is_empty() {
                        "in_app"
                    } else {
                        "browser"
                    }
                    .to_owned(),
                ),
                ("weekly_limit", weekly.to_owned()),
                ("monthly_limit", String::new()),
            ];
            browser.post(app.url(&study)).form(&form).send()
        };
        let paused = save(&first_tab, "paused", "").await.unwrap();
        assert_eq!(location(&paused), format!("{study}?saved=1"));
        // The same form sent again (a double click): saved, not refused as older.
        let again = save(&first_tab, "paused", "").await.unwrap();
        assert_eq!(location(&again), format!("{study}?saved=1"));
        let stale = save(&second_tab, "active", "20").await.unwrap();
        // 409, as the API answers a conflict (was 422).
        assert_eq!(stale.status().as_u16(), 409);
        let page = stale.text().await.unwrap();
        assert!(
            element_text(&page, "form-error")
                .unwrap()
                .contains("changed after this page was opened"),
            "{page}"
        );
        assert!(
            page.contains(r#"<option value="paused" selected>"#),
            "the current version"
        );
        // What was typed is listed beside it (it was lost).
        let unsaved = page
            .split(r#"id="unsaved""#)
            .nth(1)
            .and_then(|rest| rest.split("</div>").next())
            .unwrap_or_else(|| panic!("what was typed is listed: {page}"));
        assert!(
            unsaved.contains("<li>Weekly start limit: “20” (now “”)</li>")
                && unsaved.contains("<li>Status: “active” (now “paused”)</li>")
                && unsaved.contains("<li>The interview opens: “in the browser”")
                && !unsaved.contains("Name"),
            "{unsaved}"
        );
        // A value refused on the older page is refused as older first: answered as a value to
        // correct, its form (with the page's old fields and the current version) would then
        // carry those over the newer change.
        let invalid = [
            ("csrf_token", csrf_token(&second_tab)),
            ("version", input_value(&second_tab, "version")),
            ("name", "Checkout".to_owned()),
            ("interview_url", "ftp://r.example.com/i/1".to_owned()),
            ("status", "active".to_owned()),
            ("launch_mode", "in_app".to_owned()),
            ("weekly_limit", String::new()),
            ("monthly_limit", String::new()),
        ];
        let stale = browser
            .post(app.url(&study))
            .form(&invalid)
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status().as_u16(), 409);
        // So is one the form cannot read (a limit that is no number; found by the final
        // review: it came back to correct, with the current version).
        let mut unreadable = invalid.clone();
        unreadable[3].1 = "https://r.example.com/i/1".to_owned();
        unreadable[7].1 = "abc".to_owned();
        let stale = browser
            .post(app.url(&study))
            .form(&unreadable)
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status().as_u16(), 409);
        assert!(stale
            .text()
            .await
            .unwrap()
            .contains("changed after this page was opened"));
        // A refused value comes back with what was typed, the field named by its label.
        let (_, current) = app.page(&browser, &study).await;
        let typo = [
            ("csrf_token", csrf_token(&current)),
            ("version", input_value(&current, "version")),
            ("name", "Checkout, renamed".to_owned()),
            ("interview_url", "ftp://r.example.com/i/1".to_owned()),
            ("status", "paused".to_owned()),
            ("weekly_limit", "7".to_owned()),
            ("monthly_limit", String::new()),
        ];
        let refused = browser
            .post(app.url(&study))
            .form(&typo)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 422);
        let page = refused.text().await.unwrap();
        assert!(
            element_text(&page, "form-error")
                .unwrap()
                .starts_with("Interview URL: "),
            "{page}"
        );
        assert!(
            page.contains(r#"value="Checkout, renamed""#)
                && page.contains(r#"value="ftp://r.example.com/i/1""#)
        );
        assert!(page.contains(r#"value="7""#));
        // From the current page, the change goes through.
        let (_, current) = app.page(&browser, &study).await;
        let saved = save(&current, "paused", "20").await.unwrap();
        assert_eq!(location(&saved), format!("{study}?saved=1"));
        let (_, page) = app.page(&browser, &study).await;
        assert!(page.contains(r#"<option value="paused" selected>"#));
        assert!(page.contains(r#"value="20""#));
        // The study page shows and edits every field of the study, as the API does.
        assert!(
            page.contains(r#"<option value="browser" selected>"#),
            "{page}"
        );
        let link = element_text(&page, "study-public-link").unwrap();
        let code = link
            .strip_prefix(&app.url("/i/"))
            .expect("the server's own link");
        assert_eq!(code.len(), 10, "{link}");
    }

    #[tokio::test]
    async fn the_targeting_tab_leads_with_sdk_setup_drafts_rules_and_warns_about_overlaps() {
        let app = TestApp::spawn().await;
        let browser = client();
        let (project, study_path) = a_study(&app, &browser).await;
        let (_, page) = app.page(&browser, &study_path).await;
        let public_key = element_text(&page, "sdk-public-key").expect("SDK setup comes first");
        assert!(public_key.starts_with("uj_pk_"));

        // Two rules on the same event; the newer one, at equal priority, is outranked.
        let rules = format!("{study_path}/rules");
        let mut rule_paths = Vec::new();
        for name in ["First", "Second"] {
            let made = app
                .submit(
                    &browser,
                    &study_path,
                    &rules,
                    &[
                        ("name", name),
                        ("trigger_type", "app_event"),
                        ("event_name", "Order Completed"),
                        ("surface", "sdk_prompt"),
                    ],
                )
                .await;
            rule_paths.push(location(&made));
        }
        app.submit(
            &browser,
            &rule_paths[0],
            &format!("{}/status", rule_paths[0]),
            &[("status", "active")],
        )
        .await;
        let (_, second) = app.page(&browser, &rule_paths[1]).await;
        assert!(
            element_text(&second, "overlap-warning").is_some(),
            "the second rule is warned"
        );
        // "Why (not)?" for an id no app could send says so beside the field.
        let long = "x".repeat(300);
        let (status, page) = app
            .page(&browser, &format!("{}?reference_id={long}", rule_paths[1]))
            .await;
        assert_eq!(status, 200);
        assert!(
            element_text(&page, "explain-error")
                .unwrap()
                .contains("at most 256 characters"),
            "{page}"
        );
        assert!(second.contains("First"));
        assert_eq!(
            element_text(&second, "rule-status").as_deref(),
            Some("draft")
        );

        // Validation errors are shown on the editor and nothing changes; a cooldown shorter
        // than a second would be stored as none at all.
        for hours in ["-1", "inf", "NaN", "1e300", "0.0001", "-0.0001"] {
            let refused = app
                .submit(
                    &browser,
                    &rule_paths[1],
                    &rule_paths[1],
                    &editor_form("Second", hours),
                )
                .await;
            assert_eq!(refused.status().as_u16(), 422, "{hours}");
            let page = refused.text().await.unwrap();
            let said = element_text(&page, "form-error").unwrap();
            assert!(said.starts_with("Cooldown per user: "), "{hours}: {said}");
            assert!(
                !said.contains("seconds") && !said.contains("316224000"),
                "{said}"
            );
            // What was typed comes back to be corrected.
            assert_eq!(textarea_value(&page, "prompt_title"), "Got 5 minutes?");
            // The card previews what the fields hold (it showed the stored copy).
            assert_eq!(
                element_text(&page, "preview-title").as_deref(),
                Some("Got 5 minutes?")
            );
            assert!(page.contains(&format!(r#"value="{hours}""#)), "{hours}");
            // The field at fault is marked, focused, and says why right below it; no other
            // field is marked.
            let field = tag(&page, "cooldown_hours");
            assert!(
                field.contains(r#"aria-invalid="true""#)
                    && field.contains(r#"aria-describedby="field-error""#)
                    && field.contains("autofocus"),
                "{field}"
            );
            assert_eq!(element_text(&page, "field-error"), Some(said.clone()));
            assert_eq!(page.matches("aria-invalid").count(), 1, "{hours}");
        }
        let saved = app
            .submit(
                &browser,
                &rule_paths[1],
                &rule_paths[1],
                &editor_form("Second", "24"),
            )
            .await;
        assert_eq!(location(&saved), format!("{}?saved=1", rule_paths[1]));
        let (_, page) = app.page(&browser, &rule_paths[1]).await;
        assert_eq!(
            element_text(&page, "preview-title").as_deref(),
            Some("Got 5 minutes?")
        );
        assert!(page.contains(r#"value="24""#));

        // Once the app calls the SDK API, the setup steps give way: an event counts as a
        // config load does (an app reporting events only was told it had never called).
        let keys = app.bootstrap("ada@example.com", "Shop");
        let event = json!({"event_name": "Signed Up", "reference_id": "u1"});
        assert_eq!(
            app.post_json("/sdk/v1/events", &keys.public_key, event)
                .await
                .status()
                .as_u16(),
            200
        );
        let (_, page) = app.page(&browser, &study_path).await;
        assert!(element_text(&page, "sdk-public-key").is_none());
        assert!(page.contains("First") && page.contains("Second"));
        assert!(element_text(&page, "rules-more").is_none());

        // A study with more rules than a page lists links to the next ones: each rule is a
        // page away (it listed the first 200 only, so a study's live rules could all be out
        // of reach behind archived ones; found by the scale probe).
        let store = uj_storage::connect(&app.db.url).await.unwrap();
        let project_id =
            uj_domain::ids::ProjectId::from_string(project.rsplit('/').next().unwrap());
        let study_id = uj_domain::ids::StudyId::from_string(study_path.rsplit('/').next().unwrap());
        let first_page = uj_storage::PageRequest {
            limit: 1,
            starting_after: None,
        };
        let model = store
            .launch_rules_of_study(&project_id, &study_id, &first_page)
            .await
            .unwrap()
            .items
            .remove(0);
        for n in 0..199 {
            let more = uj_domain::studies::LaunchRule {
                id: uj_domain::ids::LaunchRuleId::generate(),
                name: format!("More {n}"),
                ..model.clone()
            };
            store.create_launch_rule(&more, None).await.unwrap();
        }
        let (_, page) = app.page(&browser, &study_path).await;
        assert_eq!(page.matches("/rules/rul_").count(), 200);
        assert!(element_text(&page, "rules-first").is_none());
        let next = page
            .split(r#"id="rules-more" href=""#)
            .nth(1)
            .expect("a link to the next rules")
            .split('"')
            .next()
            .unwrap()
            .replace("&#38;", "&");
        let (status, second) = app.page(&browser, &next).await;
        assert_eq!(status, 200);
        assert_eq!(second.matches("/rules/rul_").count(), 1);
        assert!(second.contains("More 198"), "the last rule made");
        assert!(element_text(&second, "rules-more").is_none());
        assert!(element_text(&second, "rules-first").is_some());
        let listed: std::collections::HashSet<_> = [&page, &second]
            .iter()
            .flat_map(|html| html.split("/rules/rul_").skip(1))
            .map(|rest| rest.split('"').next().unwrap().to_owned())
            .collect();
        assert_eq!(listed.len(), 201, "every rule once");
    }
}

/// A PATCH of the project's settings writes both or neither: they were written one after
/// the other, so a failure of the second (here the database refusing the contact limit's
/// write, as a lost connection or a full disk would) answered an error with the allowlist
/// already changed.
#[tokio::test]
async fn a_project_patch_writes_both_settings_or_neither() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    if helpers::on_postgres() {
        app.execute_sql(
            "CREATE FUNCTION refuse_write() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
        )
        .await;
        app.execute_sql(
            "CREATE TRIGGER refuse_contact_limit BEFORE UPDATE OF contact_limit_days ON projects
             FOR EACH ROW EXECUTE FUNCTION refuse_write()",
        )
        .await;
    } else {
        app.execute_sql(
            "CREATE TRIGGER refuse_contact_limit BEFORE UPDATE OF contact_limit_days ON projects
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .await;
    }
    let both = json!({"trait_allowlist": ["plan"], "contact_limit_days": 14});
    let (status, error) = patch(&app, "/api/v1/project", &key, both.clone()).await;
    assert_eq!(status, 500, "{error}");
    let project: Value = app.get("/api/v1/project", &key).await.json().await.unwrap();
    assert_eq!(
        (&project["trait_allowlist"], &project["contact_limit_days"]),
        (&json!([]), &Value::Null),
        "{project}"
    );

    let on = if helpers::on_postgres() {
        " ON projects"
    } else {
        ""
    };
    app.execute_sql(&format!("DROP TRIGGER refuse_contact_limit{on}"))
        .await;
    let (status, project) = patch(&app, "/api/v1/project", &key, both).await;
    assert_eq!(status, 200, "{project}");
    assert_eq!(
        (&project["trait_allowlist"], &project["contact_limit_days"]),
        (&json!(["plan"]), &json!(14))
    );
}

#[tokio::test]
async fn the_project_contact_limit_is_a_setting_the_engine_reads() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let project: Value = app.get("/api/v1/project", &key).await.json().await.unwrap();
    assert_eq!(project["contact_limit_days"], Value::Null, "off by default");
    let (status, set) = patch(
        &app,
        "/api/v1/project",
        &key,
        json!({"contact_limit_days": 14}),
    )
    .await;
    assert_eq!(
        (status, set["contact_limit_days"].as_i64()),
        (200, Some(14))
    );
    // A refused body changes nothing, its valid fields included.
    let (status, error) = patch(
        &app,
        "/api/v1/project",
        &key,
        json!({"trait_allowlist": ["plan"], "contact_limit_days": 0}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("contact_limit_days"))
    );
    let project: Value = app.get("/api/v1/project", &key).await.json().await.unwrap();
    assert_eq!(project["trait_allowlist"], json!([]), "{project}");
    assert_eq!(project["contact_limit_days"], 14);
    // A trait key holds no control character nor bidirectional override, as names and ids
    // (both were stored; found by the dashboard parity sweep).
    for key_text in ["pl\u{7}an", "cou\u{202e}ntry"] {
        let (status, error) = patch(
            &app,
            "/api/v1/project",
            &key,
            json!({"trait_allowlist": ["plan", key_text]}),
        )
        .await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some("trait_allowlist")),
            "{error}"
        );
    }
    let project: Value = app.get("/api/v1/project", &key).await.json().await.unwrap();
    assert_eq!(project["trait_allowlist"], json!([]), "{project}");
    let study = study(&app, &key).await;
    let (_, rule) = json_of(
        app.post_json(&format!("/api/v1/studies/{study}/launch-rules"), &key, json!({"name": "R", "status": "active", "trigger": {"type": "app_event", "event_name": "E"}, "surface": "sdk_prompt"}))
            .await,
    )
    .await;
    let explained: Value = app
        .get(
            &format!(
                "/api/v1/launch-rules/{}/explain?reference_id=u",
                rule["id"].as_str().unwrap()
            ),
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    let gate = explained["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "contact_limit")
        .unwrap()
        .clone();
    assert_eq!(gate["passed"], true, "no invite yet, so within the limit");
    let (status, off) = patch(
        &app,
        "/api/v1/project",
        &key,
        json!({"contact_limit_days": null}),
    )
    .await;
    assert_eq!(
        (status, off["contact_limit_days"].clone()),
        (200, Value::Null)
    );
}

/// Archiving is final however requests interleave: a PATCH read before the archive and
/// written after it must not bring the rule back (nor lose another PATCH's field).
#[tokio::test]
async fn concurrent_changes_never_undo_an_archive_or_each_other() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    for round in 0..15 {
        let (_, rule) = json_of(
            app.post_json(
                &format!("/api/v1/studies/{study}/launch-rules"),
                &key,
                json!({"name": "R", "status": "active", "surface": "sdk_prompt",
                       "trigger": {"type": "app_event", "event_name": "E"}}),
            )
            .await,
        )
        .await;
        let path = format!("/api/v1/launch-rules/{}", rule["id"].as_str().unwrap());
        let archive = format!("{path}/archive");
        let (archived, priority, title) = tokio::join!(
            app.post_json(&archive, &key, json!({})),
            patch(&app, &path, &key, json!({"priority": 5})),
            patch(&app, &path, &key, json!({"prompt": {"title": "Hi"}})),
        );
        assert_eq!(archived.status().as_u16(), 200, "round {round}");
        let stored: Value = app.get(&path, &key).await.json().await.unwrap();
        assert_eq!(stored["status"], "archived", "round {round}: {stored}");
        // Each PATCH either landed before the archive (and stays) or was refused.
        for ((status, _), field, value) in [
            (priority, &stored["priority"], json!(5)),
            (title, &stored["prompt"]["title"], json!("Hi")),
        ] {
            match status {
                200 => assert_eq!(*field, value, "round {round}: {stored}"),
                409 => {}
                other => panic!("round {round}: {other}"),
            }
        }
    }
}

/// Many clients changing one rule and one study at once all land, each whole (one that lost
/// the race is applied again to the new version): a change fails only after losing to as many
/// other writes as the server tries, more than clients write one row together in practice.
/// (Ten at once got `409 changed_meanwhile` after five tries.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_changes_of_one_rule_at_once_all_land() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let (_, rule) = json_of(
        app.post_json(
            &format!("/api/v1/studies/{study}/launch-rules"),
            &key,
            json!({"name": "R", "surface": "sdk_prompt",
                   "trigger": {"type": "app_event", "event_name": "E"}}),
        )
        .await,
    )
    .await;
    let rule = format!("/api/v1/launch-rules/{}", rule["id"].as_str().unwrap());
    let study = format!("/api/v1/studies/{study}");
    for round in 0..3 {
        let changes = (0..16).map(|i| {
            let (app, key, rule, study) = (&app, &key, &rule, &study);
            async move {
                let (path, body) = match i % 2 {
                    0 => (
                        rule,
                        json!({"priority": i, "prompt": {"title": format!("T{i}")}}),
                    ),
                    _ => (
                        study,
                        json!({"name": format!("S{i}"), "weekly_limit": 100 + i}),
                    ),
                };
                patch(app, path, key, body).await
            }
        });
        let answers = futures::future::join_all(changes).await;
        for (i, (status, body)) in answers.iter().enumerate() {
            assert_eq!(*status, 200, "round {round}, change {i}: {body}");
        }
        // The last to land is stored whole: its fields together, never mixed.
        let stored: Value = app.get(&rule, &key).await.json().await.unwrap();
        let priority = stored["priority"].as_i64().unwrap();
        assert_eq!(
            stored["prompt"]["title"],
            format!("T{priority}"),
            "{stored}"
        );
        let stored: Value = app.get(&study, &key).await.json().await.unwrap();
        let limit = stored["weekly_limit"].as_i64().unwrap();
        assert_eq!(stored["name"], format!("S{}", limit - 100), "{stored}");
    }
}

/// A study URL with non-ASCII characters, or characters no URI holds, opens through its
/// public link: the `Location` is a URI, those characters percent-encoded (as UTF-8). (Quotes
/// and angle brackets were copied raw: `…/s"><script>…` reached the header as written.)
#[tokio::test]
async fn a_study_url_redirects_with_what_no_uri_holds_percent_encoded() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    for (url, location) in [
        (
            "https://r.example.com/ü?x=é#ß",
            "https://r.example.com/%C3%BC?x=%C3%A9#%C3%9F",
        ),
        (
            r#"https://r.example.com/s"><script>alert(1)</script>"#,
            "https://r.example.com/s%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
        ),
    ] {
        let (status, created) = json_of(
            app.post_json(
                "/api/v1/studies",
                &key,
                json!({"name": "Umfrage", "interview_url": url}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let opened = app
            .client
            .get(app.url(&format!("/i/{}", created["public_code"].as_str().unwrap())))
            .send()
            .await
            .unwrap();
        assert_eq!(opened.status().as_u16(), 303);
        assert_eq!(
            String::from_utf8_lossy(opened.headers()["location"].as_bytes()),
            location
        );
    }
}

/// Start caps and study limits are at most 1,000,000,000, on creation and on a change
/// (`422` naming the field). They were taken up to 2^63−1 and then read by the pacing
/// engine as 4,294,967,295, so `explain` showed another cap than the one set.
#[tokio::test]
async fn start_caps_and_study_limits_above_a_billion_are_refused() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let too_many = json!(1_000_000_001_i64);
    let most = json!(9_223_372_036_854_775_807_i64);
    for (field, value) in [
        ("weekly_limit", &too_many),
        ("monthly_limit", &too_many),
        ("weekly_limit", &most),
        ("monthly_limit", &most),
    ] {
        let mut body = json!({"name": "A", "interview_url": "https://x.example"});
        body[field] = value.clone();
        let (status, error) = json_of(app.post_json("/api/v1/studies", &key, body).await).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{field} {value}: {error}"
        );
    }
    // Past 64 bits: refused in plain words (it said "expected i64"; found by the HTTP probe).
    for past in [json!(9_223_372_036_854_775_808_u64), json!(1e19)] {
        let body = json!({"name": "A", "interview_url": "https://x.example", "weekly_limit": past});
        let (status, error) = json_of(app.post_json("/api/v1/studies", &key, body).await).await;
        let message = error["error"]["message"].as_str().unwrap();
        assert_eq!(status, 400, "{error}");
        assert!(
            message.contains("a whole number from") && !message.contains("i64"),
            "{message}"
        );
    }
    let (status, created) = json_of(
        app.post_json(
            "/api/v1/studies",
            &key,
            json!({"name": "A", "interview_url": "https://x.example",
                "weekly_limit": 1_000_000_000, "monthly_limit": 1_000_000_000}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let study = created["id"].as_str().unwrap();
    for field in ["weekly_limit", "monthly_limit"] {
        let (status, error) = patch(
            &app,
            &format!("/api/v1/studies/{study}"),
            &key,
            json!({ field: too_many }),
        )
        .await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{error}"
        );
    }

    let rules = format!("/api/v1/studies/{study}/launch-rules");
    let new_rule = |max_starts: &Value| {
        json!({"name": "R", "trigger": {"type": "app_event", "event_name": "E"},
            "surface": "sdk_prompt", "max_starts": max_starts})
    };
    for value in [&too_many, &most] {
        let (status, error) = json_of(app.post_json(&rules, &key, new_rule(value)).await).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some("max_starts")),
            "{value}: {error}"
        );
    }
    let (status, rule) = json_of(
        app.post_json(&rules, &key, new_rule(&json!(1_000_000_000)))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    let rule = rule["id"].as_str().unwrap();
    let (status, error) = patch(
        &app,
        &format!("/api/v1/launch-rules/{rule}"),
        &key,
        json!({ "max_starts": too_many }),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("max_starts")),
        "{error}"
    );

    let (_, explained) = json_of(
        app.get(
            &format!("/api/v1/launch-rules/{rule}/explain?reference_id=u"),
            &key,
        )
        .await,
    )
    .await;
    let detail = |gate: &str| {
        explained["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["gate"] == gate)
            .map(|g| g["detail"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(detail("max_starts"), "0 of 1000000000 starts");
    assert_eq!(
        detail("study_limit"),
        "0 starts this week (limit 1000000000), 0 this month (limit 1000000000)"
    );
}

/// A cap or limit stored before the bound (up to 2^63−1) is read as it is, never clamped
/// or a panic, and does not stand in the way of other changes to its study or rule.
#[tokio::test]
async fn caps_and_limits_stored_before_the_bound_are_read_as_they_are() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let (status, rule) = json_of(
        app.post_json(&format!("/api/v1/studies/{study}/launch-rules"), &key, json!({"name": "R", "trigger": {"type": "app_event", "event_name": "E"}, "surface": "sdk_prompt", "max_starts": 5}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    let rule = rule["id"].as_str().unwrap();
    let most = i64::MAX;
    for sql in [
        format!("UPDATE launch_rules SET max_starts = {most}"),
        format!("UPDATE studies SET weekly_limit = {most}, monthly_limit = {most}"),
    ] {
        app.execute_sql(&sql).await;
    }

    let (status, explained) = json_of(
        app.get(
            &format!("/api/v1/launch-rules/{rule}/explain?reference_id=u"),
            &key,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{explained}");
    let details: Vec<&str> = explained["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["gate"] == "max_starts" || g["gate"] == "study_limit")
        .map(|g| g["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            format!("0 of {most} starts"),
            format!("0 starts this week (limit {most}), 0 this month (limit {most})")
        ]
    );

    let (status, renamed) = patch(
        &app,
        &format!("/api/v1/launch-rules/{rule}"),
        &key,
        json!({"name": "Renamed", "status": "active"}),
    )
    .await;
    assert_eq!(
        (status, renamed["max_starts"].as_i64()),
        (200, Some(most)),
        "{renamed}"
    );
    let (status, paused) = patch(
        &app,
        &format!("/api/v1/studies/{study}"),
        &key,
        json!({"status": "paused"}),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    // One limit changed is held to the bound, not the other one kept as it was.
    let (status, changed) = patch(
        &app,
        &format!("/api/v1/studies/{study}"),
        &key,
        json!({"weekly_limit": 100}),
    )
    .await;
    assert_eq!(
        (status, changed["monthly_limit"].as_i64()),
        (200, Some(most)),
        "{changed}"
    );
    let (status, error) = patch(
        &app,
        &format!("/api/v1/studies/{study}"),
        &key,
        json!({"weekly_limit": most - 1}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("weekly_limit")),
        "{error}"
    );
    let (status, error) = patch(
        &app,
        &format!("/api/v1/launch-rules/{rule}"),
        &key,
        json!({"max_starts": most - 1}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("max_starts")),
        "a change is held to the bound: {error}"
    );
}

/// A rule or study stored before a field's bound (a cooldown past ten years, a priority past
/// 1000, a longer prompt or name, an interview URL without a valid host) can still be paused
/// and renamed: a change holds only the fields it sets to today's bounds.
#[tokio::test]
async fn fields_stored_before_their_bounds_do_not_block_other_changes() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let (status, rule) = json_of(
        app.post_json(&format!("/api/v1/studies/{study}/launch-rules"), &key, json!({"name": "R", "trigger": {"type": "app_event", "event_name": "E"}, "surface": "sdk_prompt"}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    let rule = rule["id"].as_str().unwrap();
    let long = "x".repeat(300);
    let stored_url = r#"http://x"><script>alert(1)</script>"#;
    for sql in [
        format!(
            "UPDATE launch_rules SET cooldown_seconds = 999999999999, priority = 5000, \
             prompt_title = '{long}', name = '{long}'"
        ),
        format!("UPDATE studies SET name = '{long}', interview_url = '{stored_url}'"),
    ] {
        app.execute_sql(&sql).await;
    }

    let (status, paused) = patch(
        &app,
        &format!("/api/v1/launch-rules/{rule}"),
        &key,
        json!({"status": "paused"}),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(
        (
            paused["cooldown_seconds"].as_i64(),
            paused["priority"].as_i64(),
            paused["prompt"]["title"].as_str().map(str::len),
        ),
        (Some(999_999_999_999), Some(5000), Some(300)),
        "kept as stored: {paused}"
    );
    let (status, renamed) = patch(
        &app,
        &format!("/api/v1/launch-rules/{rule}"),
        &key,
        json!({"name": "Renamed", "cooldown_seconds": 999_999_999_999_i64}),
    )
    .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (200, Some("Renamed")),
        "the stored cooldown sent back unchanged is no change: {renamed}"
    );
    let (status, error) = patch(
        &app,
        &format!("/api/v1/launch-rules/{rule}"),
        &key,
        json!({"cooldown_seconds": 999_999_999_998_i64}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("cooldown_seconds")),
        "a change is held to the bound: {error}"
    );
    let (status, error) = patch(
        &app,
        &format!("/api/v1/launch-rules/{rule}"),
        &key,
        json!({"priority": 4999}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("priority")),
        "{error}"
    );

    let (status, paused) = patch(
        &app,
        &format!("/api/v1/studies/{study}"),
        &key,
        json!({"status": "paused"}),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["interview_url"], stored_url, "kept as stored");
    let (status, error) = patch(
        &app,
        &format!("/api/v1/studies/{study}"),
        &key,
        json!({"name": long.clone() + "y"}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("name")),
        "{error}"
    );
    let (status, renamed) = patch(
        &app,
        &format!("/api/v1/studies/{study}"),
        &key,
        json!({"name": "Renamed", "interview_url": stored_url}),
    )
    .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (200, Some("Renamed")),
        "the stored URL sent back unchanged is no change: {renamed}"
    );
    let (status, error) = patch(
        &app,
        &format!("/api/v1/studies/{study}"),
        &key,
        json!({"interview_url": "http://y\"/"}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("interview_url")),
        "{error}"
    );
}

/// A time a write answers is the time later reads answer, to the digit: the databases keep
/// microseconds, so a create or change must not answer nanoseconds it then loses (a client
/// comparing `updated_at` would see a change that did not happen).
#[tokio::test]
async fn times_a_write_answers_are_the_times_reads_answer() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let (status, created) = json_of(
        app.post_json(
            "/api/v1/studies",
            &key,
            json!({"name": "S", "interview_url": "https://r.example.com/s"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let study = format!("/api/v1/studies/{}", created["id"].as_str().unwrap());
    let (status, rule) = json_of(
        app.post_json(&format!("{study}/launch-rules"), &key, json!({"name": "R", "trigger": {"type": "app_event", "event_name": "E"}, "surface": "sdk_prompt"}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    let rule = format!("/api/v1/launch-rules/{}", rule["id"].as_str().unwrap());
    let (_, patched_study) = patch(&app, &study, &key, json!({"name": "S2"})).await;
    let (_, patched_rule) = patch(&app, &rule, &key, json!({"name": "R2"})).await;
    for (path, written) in [(&study, &patched_study), (&rule, &patched_rule)] {
        let (_, read) = json_of(app.get(path, &key).await).await;
        for field in ["created_at", "updated_at"] {
            assert_eq!(read[field], written[field], "{path} {field}");
        }
    }
    let (_, read) = json_of(app.get(&study, &key).await).await;
    assert_eq!(read["created_at"], created["created_at"]);
}

/// Schedule times are kept to the microsecond, as the databases keep them: finer digits are
/// cut before the window is checked, so a create or change answers the window stored, and a
/// window that holds no whole microsecond is refused as empty. It was checked to the
/// nanosecond, stored empty (`ends_at == starts_at`) and answered with times the rule did not
/// have.
#[tokio::test]
async fn a_schedule_window_is_stored_as_validated_and_answered() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let rules = format!("/api/v1/studies/{study}/launch-rules");
    let window = |starts_at: &str, ends_at: &str| {
        json!({"name": "Window", "surface": "sdk_prompt",
               "trigger": {"type": "app_event", "event_name": "X"},
               "starts_at": starts_at, "ends_at": ends_at})
    };
    let empty = json!({"error": {"code": "validation_failed",
                                 "message": "ends_at: must be after starts_at", "field": "ends_at"}});
    let (status, error) = json_of(
        app.post_json(
            &rules,
            &key,
            window(
                "2030-01-01T00:00:00.0000001Z",
                "2030-01-01T00:00:00.0000009Z",
            ),
        )
        .await,
    )
    .await;
    assert_eq!((status, &error), (422, &empty), "{error}");

    let (status, created) = json_of(
        app.post_json(
            &rules,
            &key,
            window(
                "2030-01-01T00:00:00.0000001Z",
                "2030-01-01T00:00:00.0000019Z",
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let answered = |rule: &Value| (rule["starts_at"].clone(), rule["ends_at"].clone());
    assert_eq!(
        answered(&created),
        (
            json!("2030-01-01T00:00:00Z"),
            json!("2030-01-01T00:00:00.000001Z")
        )
    );
    let rule = format!("/api/v1/launch-rules/{}", created["id"].as_str().unwrap());
    let (_, read) = json_of(app.get(&rule, &key).await).await;
    assert_eq!(answered(&read), answered(&created));

    let (status, error) = patch(
        &app,
        &rule,
        &key,
        json!({"starts_at": "2030-01-01T00:00:00.0000021Z", "ends_at": "2030-01-01T00:00:00.0000029Z"}),
    )
    .await;
    assert_eq!((status, &error), (422, &empty), "{error}");
    let (status, patched) = patch(
        &app,
        &rule,
        &key,
        json!({"ends_at": "2030-01-01T00:00:00.0000029Z"}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["ends_at"], "2030-01-01T00:00:00.000002Z");
    let (_, read) = json_of(app.get(&rule, &key).await).await;
    assert_eq!(answered(&read), answered(&patched));
}

/// Over the SDK, as the engine decides: the project's contact limit keeps a user another
/// rule invited within the limit from a second invite (`contact_limit`), until it is turned
/// off; a rule sampling 0 % invites no one (`sampled_out`).
#[tokio::test]
async fn the_contact_limit_and_sampling_refuse_invites_over_the_sdk() {
    let app = &TestApp::spawn().await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let (key, public_key) = (&keys.secret_key, &keys.public_key);
    let study = study(app, key).await;
    for (event, sampling) in [("A", 100), ("B", 100), ("C", 0)] {
        let (status, rule) = json_of(
            app.post_json(&format!("/api/v1/studies/{study}/launch-rules"), key, json!({"name": event, "status": "active", "trigger": {"type": "app_event", "event_name": event}, "surface": "sdk_prompt", "sampling_percent": sampling}))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{rule}");
    }
    let limit = |days: Value| {
        patch(
            app,
            "/api/v1/project",
            key,
            json!({ "contact_limit_days": days }),
        )
    };
    assert_eq!(limit(json!(14)).await.0, 200);
    let event = |name: &'static str, user: &'static str| async move {
        let answer = app
            .post_json(
                "/sdk/v1/events",
                public_key,
                json!({"event_name": name, "reference_id": user}),
            )
            .await;
        json_of(answer).await.1
    };

    let invited = event("A", "u1").await;
    let code = invited["pending_invite"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let dismissed = app
        .post_json(
            &format!("/sdk/v1/invites/{code}/dismiss"),
            public_key,
            json!({"reference_id": "u1"}),
        )
        .await;
    assert_eq!(dismissed.status().as_u16(), 204);
    assert_eq!(
        event("B", "u1").await,
        json!({"outcome": "not_eligible", "reason": "contact_limit"}),
        "rule A invited u1 within the project's limit"
    );
    assert_eq!(
        event("C", "u2").await,
        json!({"outcome": "not_eligible", "reason": "sampled_out"})
    );
    assert_eq!(limit(Value::Null).await.0, 200);
    assert!(
        event("B", "u1").await["pending_invite"].is_object(),
        "the limit turned off, rule B invites"
    );
}

/// A schedule that ends far off ("forever": 9999-12-31) is kept like any other, and a time
/// before 1970 is refused naming its field. Past 2262 or before 1678 the server answered 500
/// (a time no nanosecond count holds).
#[tokio::test]
async fn far_off_schedule_times_are_kept_or_refused_never_a_500() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let (status, created) = json_of(
        app.post_json(
            &format!("/api/v1/studies/{study}/launch-rules"),
            &key,
            json!({"name": "Forever", "surface": "sdk_prompt", "status": "active",
                   "trigger": {"type": "app_event", "event_name": "X"},
                   "ends_at": "9999-12-31T23:59:59Z"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["ends_at"], "9999-12-31T23:59:59Z");
    let rule = format!("/api/v1/launch-rules/{}", created["id"].as_str().unwrap());
    let (status, patched) = patch(
        &app,
        &rule,
        &key,
        json!({"starts_at": "2262-04-12T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let (_, read) = json_of(app.get(&rule, &key).await).await;
    assert_eq!(
        (&read["starts_at"], &read["ends_at"]),
        (
            &json!("2262-04-12T00:00:00Z"),
            &json!("9999-12-31T23:59:59Z")
        )
    );
    for (field, at) in [
        ("starts_at", "0001-01-01T00:00:00Z"),
        ("ends_at", "1969-12-31T23:59:59Z"),
        ("starts_at", "1677-09-21T00:12:43Z"),
    ] {
        let (status, error) = patch(&app, &rule, &key, json!({ field: at })).await;
        assert_eq!(status, 422, "{field} {at}: {error}");
        assert_eq!(error["error"]["field"], field, "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("between 1970 and 9999"),
            "{error}"
        );
    }
    let (_, unchanged) = json_of(app.get(&rule, &key).await).await;
    assert_eq!(unchanged["starts_at"], read["starts_at"]);
}

/// A read-modify-write over the REST API changes only the version it read: a study or rule
/// answers its version as an `ETag`, and a change sent with `If-Match` over an older one is
/// `412 precondition_failed`, changing nothing (two jobs each raising `max_starts` "by 10"
/// both landed on the same read, and one raise was lost).
#[tokio::test]
async fn a_change_sent_with_if_match_lands_only_over_that_version() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let (_, rule) = json_of(
        app.post_json(
            &format!("/api/v1/studies/{study}/launch-rules"),
            &key,
            json!({"name": "Cap", "surface": "sdk_prompt", "max_starts": 10,
                   "trigger": {"type": "app_event", "event_name": "X"}}),
        )
        .await,
    )
    .await;
    let rule = format!("/api/v1/launch-rules/{}", rule["id"].as_str().unwrap());
    let study = format!("/api/v1/studies/{study}");
    let read = |path: String| {
        let app = &app;
        let key = &key;
        async move {
            let response = app.get(&path, key).await;
            assert_eq!(response.status().as_u16(), 200);
            let tag = response.headers()["etag"].to_str().unwrap().to_owned();
            (tag, response.json::<Value>().await.unwrap())
        }
    };
    let change = |path: String, if_match: Vec<&'static str>, tag: Option<String>, body: Value| {
        let app = &app;
        let key = &key;
        async move {
            let mut request = app
                .client
                .patch(app.url(&path))
                .bearer_auth(key)
                .json(&body);
            for value in if_match {
                request = request.header("if-match", value);
            }
            if let Some(tag) = tag {
                request = request.header("if-match", tag);
            }
            let response = request.send().await.unwrap();
            let tag = response
                .headers()
                .get("etag")
                .map(|t| t.to_str().unwrap().to_owned());
            let (status, body) = json_of(response).await;
            (status, tag, body)
        }
    };

    for (path, body) in [
        (rule.clone(), json!({"max_starts": 20})),
        (study.clone(), json!({"weekly_limit": 20})),
    ] {
        let (first, _) = read(path.clone()).await;
        let (status, second, _) =
            change(path.clone(), vec![], Some(first.clone()), body.clone()).await;
        assert_eq!(status, 200, "{path}");
        let second = second.expect("the new version's tag");
        assert_ne!(second, first);
        assert_eq!(read(path.clone()).await.0, second, "{path}");
        // The second job read the first version too: refused, nothing changed.
        let (status, _, error) = change(
            path.clone(),
            vec![],
            Some(first.clone()),
            json!({"name": "Lost"}),
        )
        .await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (412, Some("precondition_failed")),
            "{error}"
        );
        let (now, current) = read(path.clone()).await;
        assert_eq!(now, second, "{path}");
        assert_ne!(current["name"], "Lost");
        // A change already made (the first job's answer lost, sent again): what it asks for
        // is there, so it succeeds and changes nothing (RFC 9110 §13.1.1).
        let (status, again, _) =
            change(path.clone(), vec![], Some(first.clone()), body.clone()).await;
        assert_eq!(
            (status, again.as_deref()),
            (200, Some(second.as_str())),
            "{path}"
        );
        // A weak or foreign tag matches no version; `*` and no header take any.
        for tag in [format!("W/{second}"), "\"nope\"".to_owned()] {
            let (status, _, _) = change(path.clone(), vec![], Some(tag.clone()), json!({})).await;
            assert_eq!(status, 412, "{path} {tag}");
        }
        let (status, _, _) = change(path.clone(), vec!["*"], None, json!({})).await;
        assert_eq!(status, 200);
        let (status, _, _) = change(path.clone(), vec![], None, json!({})).await;
        assert_eq!(status, 200);
        // Two tags at once name no one version, nor `*` beside a tag (RFC 9110 takes `*`
        // only alone; it was taken as any version), and an empty header none.
        for tags in [
            vec!["\"1\"", "\"2\""],
            vec!["*, \"1\""],
            vec!["*", "\"1\""],
            vec![""],
        ] {
            let (status, _, error) = change(path.clone(), tags, None, json!({})).await;
            assert_eq!(
                (status, error["error"]["field"].as_str()),
                (400, Some("If-Match"))
            );
        }
    }
    // An unknown id is still 404, whatever the tag.
    let (status, _, _) = change(
        "/api/v1/launch-rules/rul_nope".into(),
        vec![],
        Some("\"1\"".into()),
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
}

/// Archiving a rule honours `If-Match` as its PATCH does: over an older version it is
/// `412 precondition_failed` and the rule stays live (a job that read a rule, decided to
/// archive it, and meanwhile lost the race to someone who changed it, archived the changed
/// rule: the header was ignored); over the current version it archives, and sent again once
/// archived it answers the archived rule whatever its tag (RFC 9110 §13.1.1).
#[tokio::test]
async fn archiving_a_rule_with_if_match_lands_only_over_that_version() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let created = app
        .post_json(
            &format!("/api/v1/studies/{study}/launch-rules"),
            &key,
            json!({"name": "Old", "surface": "sdk_prompt", "status": "active",
                   "trigger": {"type": "app_event", "event_name": "X"}}),
        )
        .await;
    let first = created.headers()["etag"].to_str().unwrap().to_owned();
    let (_, rule) = json_of(created).await;
    let path = format!("/api/v1/launch-rules/{}", rule["id"].as_str().unwrap());
    let archive = |tags: Vec<String>| {
        let app = &app;
        let key = &key;
        let path = &path;
        async move {
            let mut request = app
                .client
                .post(app.url(&format!("{path}/archive")))
                .bearer_auth(key)
                .json(&json!({}));
            for tag in tags {
                request = request.header("if-match", tag);
            }
            let response = request.send().await.unwrap();
            let tag = response
                .headers()
                .get("etag")
                .map(|t| t.to_str().unwrap().to_owned());
            let (status, body) = json_of(response).await;
            (status, tag, body)
        }
    };
    let (status, changed) = patch(&app, &path, &key, json!({"priority": 5})).await;
    assert_eq!(status, 200, "{changed}");
    let second = app.get(&path, &key).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);

    // Over the version before the change, or a tag of no version: refused, still live.
    for tag in [first.clone(), format!("W/{second}"), "\"nope\"".to_owned()] {
        let (status, _, error) = archive(vec![tag.clone()]).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (412, Some("precondition_failed")),
            "{tag}: {error}"
        );
        let (_, read) = json_of(app.get(&path, &key).await).await;
        assert_eq!(read["status"], "active", "{tag}");
    }
    // Two tags name no one version, as on a PATCH.
    let (status, _, error) = archive(vec!["\"1\"".into(), "\"2\"".into()]).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (400, Some("If-Match"))
    );
    // Over the current version: archived, answered with its new version.
    let (status, third, archived) = archive(vec![second.clone()]).await;
    assert_eq!(
        (status, archived["status"].as_str()),
        (200, Some("archived"))
    );
    let third = third.expect("the archived version's tag");
    assert_ne!(third, second);
    // Sent again (its answer lost), over the version it archived or an older one: what it
    // asks for is there.
    for tag in [second, first] {
        let (status, again, _) = archive(vec![tag]).await;
        assert_eq!((status, again.as_deref()), (200, Some(third.as_str())));
    }
    // An unknown rule is still 404, whatever the tag.
    let missing = app
        .client
        .post(app.url("/api/v1/launch-rules/rul_nope/archive"))
        .bearer_auth(&key)
        .header("if-match", "\"1\"")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

/// A PATCH that changes nothing writes nothing: `updated_at` (and the ETag) stay, so a
/// client that PATCHes its desired state every run does not make every rule look changed.
#[tokio::test]
async fn a_patch_that_changes_nothing_keeps_updated_at() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = format!("/api/v1/studies/{}", study(&app, &key).await);
    let (_, rule) = json_of(
        app.post_json(
            &format!("{study}/launch-rules"),
            &key,
            json!({"name": "Same", "surface": "sdk_prompt", "priority": 3,
                   "trigger": {"type": "app_event", "event_name": "X"}}),
        )
        .await,
    )
    .await;
    let rule = format!("/api/v1/launch-rules/{}", rule["id"].as_str().unwrap());
    for (path, same) in [
        (&rule, json!({"name": " Same ", "priority": 3})),
        (&study, json!({"name": "Checkout interviews"})),
    ] {
        let (_, before) = json_of(app.get(path, &key).await).await;
        for body in [json!({}), same] {
            let (status, after) = patch(&app, path, &key, body).await;
            assert_eq!(status, 200, "{after}");
            assert_eq!(after["updated_at"], before["updated_at"], "{path}");
        }
    }
    let (status, changed) = patch(&app, &rule, &key, json!({"priority": 4})).await;
    assert_eq!(status, 200);
    let (_, read) = json_of(app.get(&rule, &key).await).await;
    assert_eq!(read["updated_at"], changed["updated_at"]);
}

/// Copy is kept as an app shows it: blank is empty (the SDK's default, not a blank title or a
/// button without words), a button label is trimmed and one line (Enter in one saved a line
/// break the app showed as its label).
#[tokio::test]
async fn blank_copy_is_the_default_and_a_button_label_is_one_trimmed_line() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = study(&app, &key).await;
    let (status, rule) = json_of(
        app.post_json(
            &format!("/api/v1/studies/{study}/launch-rules"),
            &key,
            json!({"name": "Copy", "surface": "sdk_prompt",
                   "trigger": {"type": "app_event", "event_name": "X"},
                   "prompt": {"title": " \n ", "message": "  Two\nlines ", "start_label": " Let's go ",
                              "dismiss_label": "\t"}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(
        rule["prompt"],
        json!({"title": "", "message": "  Two\nlines ", "start_label": "Let's go", "dismiss_label": ""})
    );
    let path = format!("/api/v1/launch-rules/{}", rule["id"].as_str().unwrap());
    for label in ["start_label", "dismiss_label"] {
        let (status, error) =
            patch(&app, &path, &key, json!({"prompt": {label: "Let's\ngo"}})).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["field"], format!("prompt.{label}"));
    }
}

/// A project has at most 1,000 rules that are not archived: the SDK path reads every one each
/// second, so without a bound one project's rules took the server's time from every other's
/// (found by the scale probe). Archiving one makes room.
#[tokio::test]
async fn a_project_holds_at_most_a_thousand_live_rules() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let other = app.bootstrap("bob@example.com", "Blog").secret_key;
    let ours = study(&app, &key).await;
    let theirs = study(&app, &other).await;
    let path = format!("/api/v1/studies/{ours}/launch-rules");
    let rule = |n: usize| json!({"name": format!("Rule {n}"), "trigger": {"type": "app_event", "event_name": format!("Event {n}")}, "surface": "sdk_prompt"});
    let mut first = None;
    for n in 0..1000 {
        let (status, body) = json_of(app.post_json(&path, &key, rule(n)).await).await;
        assert_eq!(status, 201, "{n}: {body}");
        first.get_or_insert(body["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = json_of(app.post_json(&path, &key, rule(1000)).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("rule_limit_reached")),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("archive"));
    // Another project's are its own.
    let (status, _) = json_of(
        app.post_json(
            &format!("/api/v1/studies/{theirs}/launch-rules"),
            &other,
            rule(0),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    let archive = format!("/api/v1/launch-rules/{}/archive", first.unwrap());
    let (status, _) = json_of(app.post_json(&archive, &key, json!({})).await).await;
    assert_eq!(status, 200);
    let (status, body) = json_of(app.post_json(&path, &key, rule(1000)).await).await;
    assert_eq!(status, 201, "{body}");
}

/// A project has at most 1,000 studies that are not archived, as it has rules (a hostile
/// owner's studies were unbounded rows every list of the project reads). Archiving one makes
/// room; another project's are its own.
#[tokio::test]
async fn a_project_holds_at_most_a_thousand_live_studies() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let other = app.bootstrap("bob@example.com", "Blog").secret_key;
    let new = |n: usize| json!({"name": format!("Study {n}"), "interview_url": "https://r.example.com/i/1"});
    let mut first = None;
    for n in 0..1000 {
        let (status, body) = json_of(app.post_json("/api/v1/studies", &key, new(n)).await).await;
        assert_eq!(status, 201, "{n}: {body}");
        first.get_or_insert(body["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = json_of(app.post_json("/api/v1/studies", &key, new(1000)).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("study_limit_reached")),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("archive the studies"));
    let (status, _) = json_of(app.post_json("/api/v1/studies", &other, new(0)).await).await;
    assert_eq!(status, 201);
    // A study made archived takes no place.
    let archived =
        json!({"name": "Old", "interview_url": "https://r.example.com/i/1", "status": "archived"});
    let (status, body) = json_of(app.post_json("/api/v1/studies", &key, archived).await).await;
    assert_eq!(status, 201, "{body}");
    let old = body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/studies/{}", first.unwrap());
    let (status, body) = patch(&app, &path, &key, json!({"status": "archived"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = json_of(app.post_json("/api/v1/studies", &key, new(1000)).await).await;
    assert_eq!(status, 201, "{body}");
    // Nor does bringing one back from the archive pass the bound (found by the diff review).
    let (status, body) = patch(&app, &path, &key, json!({"status": "active"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("study_limit_reached")),
        "{body}"
    );
    let (status, _) = patch(
        &app,
        &format!("/api/v1/studies/{old}"),
        &key,
        json!({"status": "paused"}),
    )
    .await;
    assert_eq!(status, 422);
}

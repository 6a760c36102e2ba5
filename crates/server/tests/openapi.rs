//! The OpenAPI document: generated from the routed handlers, checked against a snapshot
//! (a change to the API shows up in review as a change to `tests/snapshots/openapi.json`;
//! `UPDATE_SNAPSHOTS=1` rewrites it), and every operation it lists is really served.

mod helpers;

use helpers::TestApp;
use serde_json::Value;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_document_matches_its_snapshot() {
    let app = TestApp::spawn().await;
    let served = document(&app).await;
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &pretty).unwrap();
    }
    let expected = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        pretty == expected,
        "the OpenAPI document changed; review the difference and run \
         `UPDATE_SNAPSHOTS=1 cargo nextest run -p userjourneys --test openapi` to accept it"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served_and_asks_for_its_key() {
    let app = TestApp::spawn().await;
    let served = document(&app).await;
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().unwrap();
    assert!(
        paths.len() >= 30,
        "REST and SDK operations: {}",
        paths.len()
    );
    let mut checked = 0;
    for (path, item) in paths {
        let concrete = path.replace("{id}", "x").replace("{code}", "x");
        for (method, operation) in item.as_object().unwrap() {
            let scheme = operation["security"][0].as_object().unwrap();
            let expected = if path.starts_with("/sdk/") {
                "public_key"
            } else {
                "secret_key"
            };
            assert!(
                scheme.contains_key(expected),
                "{method} {path} names its key"
            );
            assert!(
                !operation["summary"].as_str().unwrap_or_default().is_empty(),
                "{method} {path} says what it does"
            );
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status().as_u16(),
                401,
                "{method} {path} is routed and asks for a key"
            );
            checked += 1;
        }
    }
    assert!(checked >= 38, "{checked} operations");
}

#[tokio::test]
async fn the_reference_page_lists_every_operation() {
    let app = TestApp::spawn().await;
    let served = document(&app).await;
    let (status, html) = app.page(&app.client, "/api/reference").await;
    assert_eq!(status, 200);
    for path in served["paths"].as_object().unwrap().keys() {
        assert!(html.contains(&format!("<code>{path}</code>")), "{path}");
    }
    assert!(html.contains(r#"href="/api/openapi.json""#));
}

/// Every operation of the document: (method, path, operation).
fn operations(document: &Value) -> Vec<(&str, &str, &Value)> {
    let paths = document["paths"].as_object().unwrap().iter();
    paths
        .flat_map(|(path, item)| {
            let methods = item.as_object().unwrap().iter();
            methods.map(move |(method, operation)| (method.as_str(), path.as_str(), operation))
        })
        .collect()
}

/// Whether a property's schema admits `null`: `"type": [.., "null"]` or a `oneOf` with a
/// `null` branch, as utoipa writes an `Option`.
fn admits_null(schema: &Value) -> bool {
    let typed = schema["type"]
        .as_array()
        .is_some_and(|types| types.iter().any(|t| t == "null"));
    let branched = schema["oneOf"]
        .as_array()
        .is_some_and(|branches| branches.iter().any(|b| b["type"] == "null"));
    typed || branched || schema["type"] == "null"
}

/// Every operation also documents the server errors it can answer with the error body (a
/// client generated from the document otherwise has no type for a 503 `storage_unavailable`).
#[tokio::test]
async fn every_operation_documents_its_server_errors_with_the_error_body() {
    let app = TestApp::spawn().await;
    let served = document(&app).await;
    let operations = operations(&served);
    for (method, path, operation) in &operations {
        let answer = &operation["responses"]["5XX"];
        assert_eq!(
            answer["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{method} {path}: {answer}"
        );
        let description = answer["description"].as_str().unwrap_or_default();
        for code in [
            "internal_error",
            "storage_unavailable",
            "timed_out",
            "mixpanel_unreachable",
            "mixpanel_rate_limited",
        ] {
            assert!(description.contains(code), "{method} {path}: {description}");
        }
    }
    assert!(operations.len() >= 38, "{} operations", operations.len());
}

/// A PATCH field the server refuses as `null` (400 `invalid_request`) is not nullable in
/// the document, and one it clears with `null` is: each property of each PATCH body is sent
/// as `null` to the live server and its answer compared with the document.
#[tokio::test]
async fn patch_fields_are_nullable_in_the_document_exactly_when_the_server_takes_null() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = app
        .post_json(
            "/api/v1/studies",
            &key,
            serde_json::json!({"name": "Checkout", "interview_url": "https://r.example.com/i/1"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rule = app
        .post_json(
            &format!("/api/v1/studies/{study}/launch-rules"),
            &key,
            serde_json::json!({"name": "After checkout", "surface": "sdk_prompt",
                "trigger": {"type": "app_event", "event_name": "checkout"}}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let served = document(&app).await;
    let schemas = &served["components"]["schemas"];
    let mut nullable = Vec::new();
    for (schema, path, nest) in [
        (
            "UpdateStudyRequest",
            format!("/api/v1/studies/{study}"),
            None,
        ),
        (
            "UpdateRuleRequest",
            format!("/api/v1/launch-rules/{rule}"),
            None,
        ),
        (
            "PromptChange",
            format!("/api/v1/launch-rules/{rule}"),
            Some("prompt"),
        ),
        ("UpdateProjectRequest", "/api/v1/project".to_owned(), None),
    ] {
        let properties = schemas[schema]["properties"].as_object().unwrap();
        assert!(!properties.is_empty(), "{schema}");
        for (field, property) in properties {
            let mut body = serde_json::json!({ field: null });
            if let Some(outer) = nest {
                body = serde_json::json!({ outer: body });
            }
            let response = app
                .client
                .patch(app.url(&path))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            let taken = status == 200;
            assert!(
                taken || (status, &answer["error"]["code"]) == (400, &"invalid_request".into()),
                "{schema}.{field}: {status} {answer}"
            );
            assert_eq!(
                admits_null(property),
                taken,
                "{schema}.{field} is nullable in the document exactly when null is taken: {property}; {status} {answer}"
            );
            if taken {
                nullable.push(format!("{schema}.{field}"));
            }
        }
    }
    nullable.sort();
    assert_eq!(
        nullable,
        [
            "UpdateProjectRequest.contact_limit_days",
            "UpdateRuleRequest.ends_at",
            "UpdateRuleRequest.max_starts",
            "UpdateRuleRequest.starts_at",
            "UpdateStudyRequest.monthly_limit",
            "UpdateStudyRequest.weekly_limit",
        ]
    );
}

/// `limit` is documented with the bounds the server holds it to (1–100; 0 and 101 are 400).
#[tokio::test]
async fn every_limit_parameter_is_documented_between_1_and_100() {
    let app = TestApp::spawn().await;
    let served = document(&app).await;
    let mut checked = 0;
    for (method, path, operation) in operations(&served) {
        let parameters = operation["parameters"].as_array();
        for parameter in parameters.into_iter().flatten() {
            if parameter["name"] == "limit" {
                let schema = &parameter["schema"];
                assert_eq!(
                    (&schema["minimum"], &schema["maximum"]),
                    (&1.into(), &100.into()),
                    "{method} {path}: {parameter}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked} limit parameters");
}

/// A field's bounds as the document states them: (keyword, value).
type Bounds = &'static [(&'static str, i64)];
const NAME: Bounds = &[("minLength", 1), ("maxLength", 200)];
const NAME_255: Bounds = &[("minLength", 1), ("maxLength", 255)];
const CAP: Bounds = &[("minimum", 1), ("maximum", 1_000_000_000)];
const REFERENCE_ID: Bounds = &[("minLength", 1), ("maxLength", 256)];

/// A bounded field: where it sits in a body, the schema that describes it, its bounds.
type Field = (&'static str, &'static str, Bounds);

/// The bounded fields of a launch rule's create and change bodies.
fn rule_fields(rule: &'static str, prompt: &'static str) -> Vec<Field> {
    vec![
        ("/name", rule, NAME),
        ("/priority", rule, &[("minimum", -1000), ("maximum", 1000)]),
        (
            "/cooldown_seconds",
            rule,
            &[("minimum", 0), ("maximum", 316_224_000)],
        ),
        ("/max_starts", rule, CAP),
        (
            "/sampling_percent",
            rule,
            &[("minimum", 0), ("maximum", 100)],
        ),
        ("/prompt/title", prompt, &[("maxLength", 120)]),
        ("/prompt/message", prompt, &[("maxLength", 500)]),
        ("/prompt/start_label", prompt, &[("maxLength", 40)]),
        ("/prompt/dismiss_label", prompt, &[("maxLength", 40)]),
    ]
}

/// `body` with its value at `at` replaced by one that sits at `bound` (`past`: one step
/// beyond): a number, a text of that many characters (the valid text padded with `é`, two
/// bytes in UTF-8, as JSON Schema counts characters), or a list of that many distinct keys.
fn edge(body: &Value, at: &str, keyword: &str, bound: i64, past: bool) -> Value {
    let step = match (keyword.starts_with("min"), past) {
        (_, false) => 0,
        (true, true) => -1,
        (false, true) => 1,
    };
    let n = bound + step;
    let mut edged = body.clone();
    let value = edged.pointer_mut(at).expect(at);
    *value = match (keyword, &*value) {
        ("minimum" | "maximum", _) => n.into(),
        ("maxItems", _) => (0..n).map(|i| format!("k{i}")).collect(),
        (_, Value::String(valid)) => {
            let padded = valid.chars().chain(std::iter::repeat('é'));
            padded.take(n as usize).collect::<String>().into()
        }
        _ => panic!("no edge for {keyword} at {at}"),
    };
    edged
}

/// Each bound the server holds a request body to is stated on its schema, and the live
/// server agrees at the edge: a value at the bound passes validation, one step past it is
/// `422 validation_failed` naming the field.
#[tokio::test]
async fn every_bound_on_a_request_body_is_documented_and_held_at_its_edge() {
    use serde_json::json;
    let app = TestApp::spawn().await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let study = json!({"name": "S", "interview_url": "https://r.example.com/i/1"});
    let answer = app.post_json("/api/v1/studies", &keys.secret_key, study.clone());
    let id = answer.await.json::<Value>().await.unwrap()["id"].clone();
    let study_path = format!("/api/v1/studies/{}", id.as_str().unwrap());
    let prompt = json!({"title": "", "message": "", "start_label": "", "dismiss_label": ""});
    let rule = json!({"name": "R", "prompt": prompt, "priority": 0, "cooldown_seconds": 0,
        "max_starts": 1, "sampling_percent": 0});
    let mut new_rule = rule.clone();
    new_rule["surface"] = "sdk_prompt".into();
    new_rule["trigger"] = json!({"type": "app_event", "event_name": "checkout"});
    let rules = format!("{study_path}/launch-rules");
    let answer = app.post_json(&rules, &keys.secret_key, new_rule.clone());
    let id = answer.await.json::<Value>().await.unwrap()["id"].clone();
    let rule_path = format!("/api/v1/launch-rules/{}", id.as_str().unwrap());
    let mut new_rule_fields = rule_fields("CreateRuleRequest", "PromptBody");
    new_rule_fields.push(("/trigger/event_name", "TriggerBody/oneOf/0", NAME_255));
    let mut new_study = study.clone();
    new_study["weekly_limit"] = Value::Null;
    new_study["monthly_limit"] = Value::Null;
    let table: Vec<(&str, &str, Value, Vec<Field>)> = vec![
        (
            "post",
            "/api/v1/studies",
            new_study,
            vec![
                ("/name", "CreateStudyRequest", NAME),
                (
                    "/interview_url",
                    "CreateStudyRequest",
                    &[("maxLength", 2000)],
                ),
                ("/weekly_limit", "CreateStudyRequest", CAP),
                ("/monthly_limit", "CreateStudyRequest", CAP),
            ],
        ),
        (
            "patch",
            &study_path,
            study,
            vec![
                ("/name", "UpdateStudyRequest", NAME),
                (
                    "/interview_url",
                    "UpdateStudyRequest",
                    &[("maxLength", 2000)],
                ),
            ],
        ),
        // The other limit cleared: a monthly limit below the weekly one is refused.
        (
            "patch",
            &study_path,
            json!({"weekly_limit": 1, "monthly_limit": null}),
            vec![("/weekly_limit", "UpdateStudyRequest", CAP)],
        ),
        (
            "patch",
            &study_path,
            json!({"weekly_limit": null, "monthly_limit": 1}),
            vec![("/monthly_limit", "UpdateStudyRequest", CAP)],
        ),
        ("post", &rules, new_rule, new_rule_fields),
        (
            "patch",
            &rule_path,
            rule,
            rule_fields("UpdateRuleRequest", "PromptChange"),
        ),
        (
            "patch",
            "/api/v1/project",
            json!({"trait_allowlist": ["plan"], "contact_limit_days": 1}),
            vec![
                (
                    "/trait_allowlist",
                    "UpdateProjectRequest",
                    &[("maxItems", 50)],
                ),
                (
                    "/trait_allowlist/0",
                    "UpdateProjectRequest",
                    &[("minLength", 1), ("maxLength", 100)],
                ),
                (
                    "/contact_limit_days",
                    "UpdateProjectRequest",
                    &[("minimum", 1), ("maximum", 365)],
                ),
            ],
        ),
        (
            "post",
            "/api/v1/api-keys",
            json!({"name": "CI"}),
            vec![(
                "/name",
                "CreateApiKeyRequest",
                &[("minLength", 1), ("maxLength", 100)],
            )],
        ),
        // Valid credentials go on to Mixpanel (unreachable here: 502).
        (
            "post",
            "/api/v1/integrations/mixpanel/connect",
            json!({"username": "sa", "secret": "s"}),
            vec![
                ("/username", "ConnectRequest", NAME_255),
                (
                    "/secret",
                    "ConnectRequest",
                    &[("minLength", 1), ("maxLength", 1024)],
                ),
            ],
        ),
        (
            "post",
            "/sdk/v1/events",
            json!({"event_name": "checkout", "reference_id": "u1"}),
            vec![
                ("/event_name", "EventRequest", NAME_255),
                ("/reference_id", "EventRequest", REFERENCE_ID),
            ],
        ),
        // A link to no study: 404 once the body is valid.
        (
            "post",
            "/sdk/v1/links/resolve",
            json!({"url": "https://r.example.com/i/none", "reference_id": "u1"}),
            vec![("/reference_id", "ResolveRequest", REFERENCE_ID)],
        ),
    ];
    let served = document(&app).await;
    let mut checked = 0;
    for (method, path, body, fields) in &table {
        let key = if path.starts_with("/sdk/") {
            &keys.public_key
        } else {
            &keys.secret_key
        };
        for (at, schema, bounds) in fields {
            // `/prompt/title` is `title` of its schema; `/trait_allowlist/0` is an item.
            let segments: Vec<&str> = at.split('/').skip(1).collect();
            let named: Vec<&str> = segments
                .iter()
                .copied()
                .filter(|s| s.parse::<usize>().is_err())
                .collect();
            let field = named.join(".");
            let mut pointer = format!("/{schema}/properties/{}", named.last().unwrap());
            if named.len() < segments.len() {
                pointer += "/items";
            }
            let documented = served["components"]["schemas"].pointer(&pointer);
            for &(keyword, bound) in *bounds {
                assert_eq!(
                    documented.map(|d| &d[keyword]),
                    Some(&Value::from(bound)),
                    "{schema} states {keyword} {bound} for {field}: {documented:?}"
                );
                for past in [false, true] {
                    let edged = edge(body, at, keyword, bound, past);
                    let request = app
                        .client
                        .request(method.to_uppercase().parse().unwrap(), app.url(path));
                    let response = request.bearer_auth(key).json(&edged).send().await.unwrap();
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.unwrap_or_default();
                    let (code, named) = (&answer["error"]["code"], &answer["error"]["field"]);
                    let failed = code == "validation_failed" || code == "invalid_request";
                    assert!(
                        if past { status == 422 && failed && named == field.as_str() } else { !failed },
                        "{method} {path} with {field} at {keyword} {bound} (past: {past}): {status} {answer}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 50, "{checked} bounds");
}

/// `reference_id` in a query is documented with the bounds the server holds it to (1–256
/// characters), and each operation agrees at the edges (no rule is needed: the id is checked
/// first).
#[tokio::test]
async fn every_reference_id_parameter_is_documented_and_held_at_its_edges() {
    let app = TestApp::spawn().await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let served = document(&app).await;
    let mut checked = 0;
    for (method, path, operation) in operations(&served) {
        let parameters = operation["parameters"].as_array().into_iter().flatten();
        for parameter in parameters.filter(|p| p["name"] == "reference_id") {
            let schema = &parameter["schema"];
            assert_eq!(
                (&schema["minLength"], &schema["maxLength"]),
                (&1.into(), &256.into()),
                "{method} {path}: {parameter}"
            );
            let key = if path.starts_with("/sdk/") {
                &keys.public_key
            } else {
                &keys.secret_key
            };
            for (length, taken) in [(0, false), (1, true), (256, true), (257, false)] {
                let reference_id = "é".repeat(length);
                let url = app.url(&path.replace("{id}", "rul_x"));
                let request = app
                    .client
                    .get(url)
                    .query(&[("reference_id", &reference_id)]);
                let response = request.bearer_auth(key).send().await.unwrap();
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap();
                let refused = (status, &answer["error"]["code"], &answer["error"]["field"])
                    == (422, &"validation_failed".into(), &"reference_id".into());
                assert_eq!(
                    !refused, taken,
                    "{method} {path} with {length} characters: {status} {answer}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "{checked} reference_id parameters");
}

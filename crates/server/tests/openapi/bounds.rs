//! The bounds the server holds requests to, as the document states them and as the live
//! server answers at each edge.

use serde_json::Value;

use super::helpers::TestApp;
use super::{document, operations};

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
                        if past {
                            status == 422 && failed && named == field.as_str()
                        } else {
                            // Taken: answered, or refused for something else than the
                            // bound (Mixpanel, not reachable from here, is a 502; a link
                            // made up for the body, a 404), never a failure of ours.
                            !failed && !matches!(status, 500 | 503)
                        },
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

/// Each field the server takes one of a few names for (a study's status and launch mode, a
/// rule's status and surface) lists them in the document, and the live server takes every
/// name listed and refuses another with `422 validation_failed` naming the field.
#[tokio::test]
async fn every_named_value_a_request_body_documents_is_taken_and_no_other() {
    use serde_json::json;
    let app = TestApp::spawn().await;
    let key = &app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = json!({"name": "S", "interview_url": "https://r.example.com/i/1"});
    let answer = app.post_json("/api/v1/studies", key, study.clone()).await;
    let study_path = format!(
        "/api/v1/studies/{}",
        answer.json::<Value>().await.unwrap()["id"]
    );
    let study_path = study_path.replace('"', "");
    let rules = format!("{study_path}/launch-rules");
    let rule = json!({"name": "R", "surface": "sdk_prompt",
        "trigger": {"type": "app_event", "event_name": "checkout"}});
    let answer = app.post_json(&rules, key, rule.clone()).await;
    let rule_path = format!(
        "/api/v1/launch-rules/{}",
        answer.json::<Value>().await.unwrap()["id"]
    );
    let rule_path = rule_path.replace('"', "");
    let table = [
        (
            "post",
            "/api/v1/studies",
            &study,
            "CreateStudyRequest",
            "status",
        ),
        (
            "post",
            "/api/v1/studies",
            &study,
            "CreateStudyRequest",
            "launch_mode",
        ),
        (
            "patch",
            &study_path,
            &json!({}),
            "UpdateStudyRequest",
            "status",
        ),
        (
            "patch",
            &study_path,
            &json!({}),
            "UpdateStudyRequest",
            "launch_mode",
        ),
        ("post", &rules, &rule, "CreateRuleRequest", "status"),
        ("post", &rules, &rule, "CreateRuleRequest", "surface"),
        (
            "patch",
            &rule_path,
            &json!({}),
            "UpdateRuleRequest",
            "status",
        ),
        (
            "patch",
            &rule_path,
            &json!({}),
            "UpdateRuleRequest",
            "surface",
        ),
    ];
    let served = document(&app).await;
    for (method, path, body, schema, field) in table {
        let documented = &served["components"]["schemas"][schema]["properties"][field];
        let names = documented["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema}.{field} lists its values: {documented}"));
        let others = [json!("bogus"), json!("ACTIVE")];
        for (value, listed) in names
            .iter()
            .map(|n| (n, true))
            .chain(others.iter().map(|o| (o, false)))
        {
            let mut body = body.clone();
            body[field] = value.clone();
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(path));
            let response = request.bearer_auth(key).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            let refused = (status, &answer["error"]["code"], &answer["error"]["field"])
                == (422, &"validation_failed".into(), &field.into());
            assert_eq!(
                refused, !listed,
                "{method} {path} with {field} {value}: {status} {answer}"
            );
        }
    }
}

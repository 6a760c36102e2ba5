//! The OpenAPI document: generated from the routed handlers, checked against a snapshot
//! (a change to the API shows up in review as a change to `tests/snapshots/openapi.json`;
//! `UPDATE_SNAPSHOTS=1` rewrites it), and every operation it lists is really served.

mod bounds;
#[path = "../helpers/mod.rs"]
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
    let mut operation_ids = std::collections::HashSet::new();
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
            // Unique, as OpenAPI requires: client generators name their calls by it (four
            // operations were `list`, five `show`, and validators refused the document).
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                !id.is_empty() && operation_ids.insert(id.to_owned()),
                "{method} {path}: operationId {id:?} is missing or taken"
            );
            // One parameter a name, wherever it is: client generators make each an argument
            // (the members lookup's query `id` beside the audience's path `id` clashed).
            let mut names = std::collections::HashSet::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap_or_default();
                assert!(
                    names.insert(name),
                    "{method} {path}: two parameters {name:?}"
                );
            }
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

/// Every JSON answer a client gets on success has its shape in the document, as a generated
/// client needs (the lists, stats, explain and connect answers were `{}`: any value), and a
/// field always sent, even as null, is required.
#[tokio::test]
async fn every_success_answer_is_typed_and_lists_share_one_shape() {
    let app = TestApp::spawn().await;
    let served = document(&app).await;
    let schemas = &served["components"]["schemas"];
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(at) => schemas[at.trim_start_matches("#/components/schemas/")].clone(),
            None => schema.clone(),
        }
    };
    for (method, path, operation) in operations(&served) {
        for (status, answer) in operation["responses"].as_object().unwrap() {
            let Some(schema) = answer["content"]["application/json"]["schema"].as_object() else {
                continue;
            };
            if !status.starts_with('2') {
                continue;
            }
            let schema = resolve(&Value::Object(schema.clone()));
            assert!(
                schema["properties"].is_object(),
                "{method} {path} {status}: untyped {schema}"
            );
            if path.ends_with('s') && method == "get" && schema["properties"]["data"].is_object() {
                assert_eq!(
                    schema["required"],
                    serde_json::json!(["object", "data", "has_more"]),
                    "{method} {path}"
                );
                let item = resolve(&schema["properties"]["data"]["items"]);
                assert!(item["properties"].is_object(), "{method} {path}: {item}");
            }
        }
    }
    // Fields always sent, null when unset, are required (generators made them optional).
    let rule = &schemas["RuleResponse"];
    for field in ["max_starts", "starts_at", "ends_at", "prompt"] {
        assert!(
            rule["required"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(field)),
            "RuleResponse.{field}"
        );
    }
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

/// A create takes `null` exactly where its PATCH does, and the document says so: each
/// property of each create body is sent as `null` beside the required ones to the live
/// server and its answer compared with the document (a create took `null` for any field
/// that has a default, as if it was not sent, where the document and the PATCH refused it).
#[tokio::test]
async fn create_fields_are_nullable_in_the_document_exactly_when_the_server_takes_null() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let a_study =
        serde_json::json!({"name": "Checkout", "interview_url": "https://r.example.com/i/1"});
    let study = app
        .post_json("/api/v1/studies", &key, a_study.clone())
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_rule = serde_json::json!({"name": "After checkout", "surface": "sdk_prompt",
        "trigger": {"type": "app_event", "event_name": "checkout"}});
    let rules = format!("/api/v1/studies/{study}/launch-rules");
    let served = document(&app).await;
    let schemas = &served["components"]["schemas"];
    let mut nullable = Vec::new();
    for (schema, path, base, nest) in [
        ("CreateStudyRequest", "/api/v1/studies", &a_study, None),
        ("CreateRuleRequest", rules.as_str(), &a_rule, None),
        ("PromptBody", rules.as_str(), &a_rule, Some("prompt")),
    ] {
        let properties = schemas[schema]["properties"].as_object().unwrap();
        assert!(!properties.is_empty(), "{schema}");
        for (field, property) in properties {
            let mut body = base.clone();
            match nest {
                Some(outer) => body[outer] = serde_json::json!({ field: null }),
                None => body[field] = Value::Null,
            }
            let response = app.post_json(path, &key, body).await;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap();
            let taken = status == 201;
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
            "CreateRuleRequest.ends_at",
            "CreateRuleRequest.max_starts",
            "CreateRuleRequest.starts_at",
            "CreateStudyRequest.monthly_limit",
            "CreateStudyRequest.weekly_limit",
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

/// A trigger is refused with a field the server does not know (400), so each of its
/// variants says `additionalProperties: false`, as every request body does (found by
/// schemathesis: extra fields were generated as valid).
#[tokio::test]
async fn trigger_variants_are_closed_in_the_document_as_the_server_holds_them() {
    let app = TestApp::spawn().await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let study = serde_json::json!({"name": "S", "interview_url": "https://r.example.com/i/1"});
    let study = app.post_json("/api/v1/studies", &key, study).await;
    let study = study.json::<Value>().await.unwrap()["id"].clone();
    let rules = format!("/api/v1/studies/{}/launch-rules", study.as_str().unwrap());
    let served = document(&app).await;
    let variants = served["components"]["schemas"]["TriggerBody"]["oneOf"]
        .as_array()
        .unwrap();
    assert_eq!(variants.len(), 2);
    for variant in variants {
        assert_eq!(variant["additionalProperties"], false, "{variant}");
        let tag = &variant["properties"]["type"]["enum"][0];
        let trigger = serde_json::json!({"type": tag, "event_name": "e", "audience_id": "a"});
        let rule = serde_json::json!({"name": "R", "surface": "sdk_prompt", "trigger": trigger});
        let response = app.post_json(&rules, &key, rule).await;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &"invalid_request".into()),
            "{tag}: {answer}"
        );
    }
}

//! The emulated Mixpanel APIs over HTTP, as the server's Mixpanel client will meet them.

use std::io::Read;

use chrono::{Duration, Utc};
use mixpanel_emulator::{Emulator, Faults, Member, Region, Scenario, Truncate, TruncateMode};
use serde_json::{json, Value};

const EU_USER: &str = "acme.3fa2c1.mp-service-account";
const EU_SECRET: &str = "eu-secret";

fn scenario(limits: Value) -> Scenario {
    let now = Utc::now().timestamp();
    let events: Vec<Value> = (0..30)
        .map(|i| {
            let name = match i % 3 { 0 => "App Opened", 1 => "Purchase", _ => "Signed Up" };
            let name = if i < 20 && i % 3 == 2 { "App Opened" } else { name };
            json!({"event": name, "properties": {"time": now - 3600 * (30 - i), "distinct_id": format!("u{i}"), "$insert_id": format!("i{i}")}})
        })
        .collect();
    let members: Vec<Value> = (1..=7)
        .map(|i| json!({"distinct_id": format!("u{i}"), "properties": {"$email": format!("u{i}@example.com"), "reference_id": format!("ref{i}")}, "has_profile": i != 7}))
        .collect();
    Scenario::from_json(&json!({
        "organizations": [{"id": 88123, "name": "Acme Inc"}],
        "service_accounts": [
            {"username": EU_USER, "secret": EU_SECRET, "organization_id": 88123, "home_region": "eu",
             "grants": [{"project_id": 2301456, "role": "analyst"}, {"project_id": 2301999, "role": "consumer", "permissions": []},
                        {"project_id": 77, "role": "analyst"}]},
            {"username": "old.mp-service-account", "secret": "s", "organization_id": 88123, "home_region": "eu",
             "expires_at": "2020-01-01T00:00:00Z", "grants": [{"project_id": 2301456, "role": "analyst"}]}
        ],
        "projects": [
            {"id": 2301456, "name": "Acme Web (prod)", "organization_id": 88123, "region": "eu", "timezone": "Europe/Berlin",
             "data_views": [{"id": 3190001, "name": "All Project Data", "is_global": true, "is_default": true}],
             "cohorts": [{"id": 51234, "name": "Trial users", "description": "Day 3", "members": members},
                         {"id": 51290, "name": "Churn risk", "is_visible": false}],
             "events": events},
            {"id": 2301999, "name": "Acme Web (staging)", "organization_id": 88123, "region": "eu", "domain": ""},
            {"id": 77, "name": "Acme US", "organization_id": 88123, "region": "us"}
        ],
        "limits": limits,
    }).to_string())
    .unwrap()
}

async fn start(limits: Value) -> Emulator {
    Emulator::start(scenario(limits)).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(url: String) -> reqwest::Response {
    client()
        .get(url)
        .basic_auth(EU_USER, Some(EU_SECRET))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn me_lists_the_accounts_projects_with_domains_on_its_home_region_only() {
    let emulator = start(json!({})).await;
    for path in ["/api/app/me?include_workspace_users=false", "/api/app/me/"] {
        let response = get(format!("{}{path}", emulator.api_url(Region::Eu))).await;
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        let projects = &body["results"]["projects"];
        assert_eq!(projects.as_object().unwrap().len(), 3);
        assert_eq!(projects["2301456"]["domain"], "eu.mixpanel.com");
        assert_eq!(projects["2301456"]["timezone"], "Europe/Berlin");
        assert_eq!(projects["2301456"]["has_workspaces"], true);
        assert!(projects["2301456"]["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("view_base_reports")));
        assert_eq!(projects["2301999"]["domain"], "");
        assert_eq!(projects["2301999"]["permissions"], json!([]));
        assert_eq!(projects["77"]["domain"], "mixpanel.com");
        assert_eq!(
            body["results"]["organizations"]["88123"]["name"],
            "Acme Inc"
        );
        assert_eq!(body["results"]["workspaces"]["3190001"]["is_global"], true);
    }
    for region in [Region::Us, Region::In] {
        let response = get(format!("{}/api/app/me", emulator.api_url(region))).await;
        assert_eq!(response.status().as_u16(), 401, "{region:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "error");
    }
}

#[tokio::test]
async fn wrong_missing_and_expired_credentials_get_401() {
    let emulator = start(json!({})).await;
    let url = format!("{}/api/app/me", emulator.api_url(Region::Eu));
    let wrong = client()
        .get(&url)
        .basic_auth(EU_USER, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let missing = client().get(&url).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    let expired = client()
        .get(&url)
        .basic_auth("old.mp-service-account", Some("s"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status().as_u16(), 401);
    // Mixpanel also takes the credentials un-encoded.
    let raw = client()
        .get(&url)
        .header("authorization", format!("Basic {EU_USER}:{EU_SECRET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 200);
}

/// Older Query endpoints have been seen refusing bad or expired credentials with 400
/// "Unable to authenticate request" (reference §2.3); the current paths answer 401.
#[tokio::test]
async fn the_legacy_query_paths_refuse_credentials_with_400_unable_to_authenticate_request() {
    let emulator = start(json!({})).await;
    let base = emulator.api_url(Region::Eu);
    for (path, user, secret) in [
        ("/api/2.0/cohorts/list", EU_USER, "nope"),
        ("/api/2.0/engage", "old.mp-service-account", "s"),
    ] {
        let refused = client()
            .post(format!("{base}{path}?project_id=2301456"))
            .basic_auth(user, Some(secret))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 400, "{path}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(
            body,
            json!({"request": path, "error": "Unable to authenticate request"})
        );
    }
    let current = client()
        .post(format!("{base}/api/query/cohorts/list?project_id=2301456"))
        .basic_auth(EU_USER, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(current.status().as_u16(), 401);
}

#[tokio::test]
async fn cohorts_list_answers_get_and_post_and_needs_a_queryable_project() {
    let emulator = start(json!({})).await;
    let base = emulator.api_url(Region::Eu);
    let listed: Value = get(format!("{base}/api/query/cohorts/list?project_id=2301456"))
        .await
        .json()
        .await
        .unwrap();
    let posted: Value = client()
        .post(format!(
            "{base}/api/query/cohorts/list?project_id=2301456&workspace_id=3190001"
        ))
        .basic_auth(EU_USER, Some(EU_SECRET))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, posted);
    assert_eq!(listed[0]["id"], 51234);
    assert_eq!(listed[0]["count"], 7);
    assert_eq!(listed[0]["is_visible"], 1);
    assert_eq!(listed[1]["is_visible"], 0);
    assert_eq!(listed[0]["project_id"], 2301456);

    let missing = get(format!("{base}/api/query/cohorts/list")).await;
    assert_eq!(missing.status().as_u16(), 400);
    let body: Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("project_id"));
    assert_eq!(
        get(format!("{base}/api/query/cohorts/list?project_id=2301999"))
            .await
            .status()
            .as_u16(),
        403,
        "no view_base_reports"
    );
    assert_eq!(
        get(format!("{base}/api/query/cohorts/list?project_id=1"))
            .await
            .status()
            .as_u16(),
        403,
        "no grant"
    );
    assert_eq!(
        get(format!(
            "{base}/api/query/cohorts/list?project_id=2301456&workspace_id=9"
        ))
        .await
        .status()
        .as_u16(),
        400
    );

    emulator
        .add_members(2301456, 51234, vec![Member::new("u100")])
        .unwrap();
    let listed: Value = get(format!("{base}/api/query/cohorts/list?project_id=2301456"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["count"], 8, "counts follow membership changes");
}

#[tokio::test]
async fn every_api_request_is_logged_with_its_method_and_path_but_not_the_controls() {
    let emulator = start(json!({})).await;
    let base = emulator.api_url(Region::Eu);
    get(format!("{base}/api/query/cohorts/list?project_id=2301456")).await;
    client()
        .post(format!("{base}/api/query/cohorts/list?project_id=2301456"))
        .send()
        .await
        .unwrap();
    get(format!("{}/_emulator", emulator.base_url())).await;
    get(export_url(
        &emulator,
        "from_date=2020-01-01&to_date=2020-01-01",
    ))
    .await;
    let logged: Vec<String> = emulator
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        logged,
        [
            "GET /eu/api/query/cohorts/list",
            "POST /eu/api/query/cohorts/list",
            "GET /data-eu/api/2.0/export"
        ]
    );
    let shown: Value = get(format!("{}/_emulator/requests", emulator.base_url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown[1],
        json!({"method": "POST", "path": "/eu/api/query/cohorts/list"})
    );
}

#[tokio::test]
async fn engage_pages_cohort_members_with_a_session() {
    let emulator = start(json!({"engage_page_size": 3})).await;
    let url = format!(
        "{}/api/query/engage?project_id=2301456",
        emulator.api_url(Region::Eu)
    );
    let page = |form: Vec<(&'static str, String)>| {
        client()
            .post(&url)
            .basic_auth(EU_USER, Some(EU_SECRET))
            .form(&form)
            .send()
    };
    let first: Value = page(vec![
        ("filter_by_cohort", r#"{"id": 51234}"#.into()),
        ("output_properties", r#"["$email"]"#.into()),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        (
            first["page"].as_u64(),
            first["page_size"].as_u64(),
            first["total"].as_u64()
        ),
        (Some(0), Some(3), Some(7))
    );
    let session = first["session_id"].as_str().unwrap().to_owned();
    assert_eq!(first["results"][0]["$distinct_id"], "u1");
    assert_eq!(
        first["results"][0]["$properties"],
        json!({"$email": "u1@example.com"})
    );

    // Membership changes after page 0 do not disturb the session's pages.
    emulator.remove_members(2301456, 51234, &["u4"]).unwrap();
    let mut seen: Vec<String> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["$distinct_id"].as_str().unwrap().to_owned())
        .collect();
    for n in 1.. {
        let next: Value = page(vec![
            ("filter_by_cohort", r#"{"id": "51234"}"#.into()),
            ("session_id", session.clone()),
            ("page", n.to_string()),
        ])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert!(next.get("total").is_none(), "total only on the first page");
        let results = next["results"].as_array().unwrap();
        seen.extend(
            results
                .iter()
                .map(|r| r["$distinct_id"].as_str().unwrap().to_owned()),
        );
        if results.len() < 3 {
            break;
        }
    }
    assert_eq!(seen, ["u1", "u2", "u3", "u4", "u5", "u6", "u7"]);

    let no_session = page(vec![("page", "1".into())]).await.unwrap();
    assert_eq!(no_session.status().as_u16(), 400);
    let profiles_only: Value = page(vec![
        ("filter_by_cohort", r#"{"id": 51234}"#.into()),
        ("include_all_users", "false".into()),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(profiles_only["total"], 5, "u7 has no profile and u4 left");
    let unknown = page(vec![("filter_by_cohort", r#"{"id": 1}"#.into())])
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 400);
}

#[tokio::test]
async fn event_names_are_the_top_events_of_the_last_31_days() {
    let emulator = start(json!({})).await;
    let base = emulator.api_url(Region::Eu);
    let names: Value = get(format!(
        "{base}/api/query/events/names?project_id=2301456&type=general"
    ))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(names, json!(["App Opened", "Purchase", "Signed Up"]));
    let top: Value = get(format!(
        "{base}/api/query/events/names?project_id=2301456&type=general&limit=1"
    ))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(top, json!(["App Opened"]));
    assert_eq!(
        get(format!("{base}/api/query/events/names?project_id=2301456"))
            .await
            .status()
            .as_u16(),
        400,
        "type is required"
    );
}

#[tokio::test]
async fn the_query_budget_runs_out_with_429_and_optional_retry_after() {
    let emulator = start(json!({"query_per_hour": 2, "retry_after_seconds": 7})).await;
    let url = format!(
        "{}/api/query/cohorts/list?project_id=2301456",
        emulator.api_url(Region::Eu)
    );
    assert_eq!(get(url.clone()).await.status().as_u16(), 200);
    assert_eq!(get(url.clone()).await.status().as_u16(), 200);
    let limited = get(url.clone()).await;
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "Query rate limit exceeded");
    emulator.reset_limits();
    assert_eq!(get(url).await.status().as_u16(), 200);
}

#[tokio::test]
async fn concurrent_queries_beyond_the_cap_get_429() {
    let emulator = start(json!({"query_concurrent": 2})).await;
    emulator.set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let url = format!(
        "{}/api/query/cohorts/list?project_id=2301456",
        emulator.api_url(Region::Eu)
    );
    let statuses: Vec<u16> = futures_util::future::join_all((0..4).map(|_| get(url.clone())))
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
}

/// The injected latency is added to every API request once, whether the request is answered
/// (holding its rate-limit slot meanwhile) or refused.
#[tokio::test]
async fn injected_latency_is_added_to_each_api_request_once() {
    let emulator = start(json!({})).await;
    let latency = std::time::Duration::from_millis(200);
    emulator.set_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    });
    let eu = emulator.api_url(Region::Eu);
    for url in [
        format!("{eu}/api/query/cohorts/list?project_id=2301456"),
        format!("{eu}/api/app/me"),
        export_url(&emulator, "from_date=2020-01-01&to_date=2020-01-01"),
        format!("{}/api/app/me", emulator.api_url(Region::Us)),
    ] {
        let started = std::time::Instant::now();
        get(url.clone()).await.bytes().await.unwrap();
        let took = started.elapsed();
        assert!(took >= latency && took < 2 * latency, "{url}: {took:?}");
    }
}

fn export_url(emulator: &Emulator, query: &str) -> String {
    format!(
        "{}/api/2.0/export?project_id=2301456&{query}",
        emulator.data_url(Region::Eu)
    )
}

#[tokio::test]
async fn export_streams_jsonl_filtered_by_date_event_and_limit() {
    let emulator = start(json!({})).await;
    let today = Utc::now().date_naive();
    let from = today - Duration::days(3);
    let response = get(export_url(
        &emulator,
        &format!("from_date={from}&to_date={today}"),
    ))
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 30);
    assert!(lines
        .windows(2)
        .all(|w| w[0]["properties"]["time"].as_i64() <= w[1]["properties"]["time"].as_i64()));

    let only: Value = json!(["Purchase"]);
    let filtered = get(export_url(
        &emulator,
        &format!(
            "from_date={from}&to_date={today}&event={}&limit=2&time_in_ms=true",
            urlencode(&only.to_string())
        ),
    ))
    .await
    .text()
    .await
    .unwrap();
    let lines: Vec<Value> = filtered
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["event"] == "Purchase"));
    assert!(
        lines[0]["properties"]["time"].as_i64().unwrap() > 1_000_000_000_000,
        "milliseconds"
    );

    let long_ago = get(export_url(
        &emulator,
        "from_date=2020-01-01&to_date=2020-01-02",
    ))
    .await;
    assert_eq!(long_ago.status().as_u16(), 200);
    assert_eq!(
        long_ago.text().await.unwrap(),
        "",
        "an empty range is an empty body"
    );
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).unwrap()[2..].to_owned()
}

#[tokio::test]
async fn export_rejects_bad_parameters_with_400_and_lives_only_on_data_hosts() {
    let emulator = start(json!({})).await;
    let tomorrow = Utc::now().date_naive() + Duration::days(1);
    let cases = [
        ("to_date=2026-01-01".to_owned(), "from_date is required"),
        (
            "from_date=2026-1-1&to_date=2026-01-02".to_owned(),
            "YYYY-MM-DD",
        ),
        (
            format!("from_date=2026-01-01&to_date={tomorrow}"),
            "to_date cannot be later than today",
        ),
        (
            "from_date=2026-01-05&to_date=2026-01-01".to_owned(),
            "from_date cannot be later than to_date",
        ),
        (
            "from_date=2026-01-01&to_date=2026-01-02&event=Purchase".to_owned(),
            "JSON array",
        ),
        (
            "from_date=2026-01-01&to_date=2026-01-02&limit=100001".to_owned(),
            "limit",
        ),
    ];
    for (query, expected) in cases {
        let response = get(export_url(&emulator, &query)).await;
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{query}: {body}"
        );
        assert!(body["request"]
            .as_str()
            .unwrap()
            .ends_with("/api/2.0/export"));
    }
    let on_api_host = get(format!(
        "{}/api/2.0/export?project_id=2301456&from_date=2026-01-01&to_date=2026-01-01",
        emulator.api_url(Region::Eu)
    ))
    .await;
    assert_eq!(on_api_host.status().as_u16(), 404);
    let us_data = get(format!(
        "{}/api/2.0/export?project_id=2301456&from_date=2026-01-01&to_date=2026-01-01",
        emulator.data_url(Region::Us)
    ))
    .await;
    assert_eq!(
        us_data.status().as_u16(),
        401,
        "credentials are bound to the EU cluster"
    );
}

#[tokio::test]
async fn export_is_gzipped_when_asked_and_above_1400_bytes() {
    let emulator = start(json!({"export_per_second": 10})).await;
    let today = Utc::now().date_naive();
    let url = export_url(
        &emulator,
        &format!("from_date={}&to_date={today}", today - Duration::days(3)),
    );
    let plain = client()
        .get(&url)
        .basic_auth(EU_USER, Some(EU_SECRET))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 1400);

    let zipped = client()
        .get(&url)
        .basic_auth(EU_USER, Some(EU_SECRET))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let compressed = zipped.bytes().await.unwrap();
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);

    // A streamed export's size is not known up front; a small one must still go out plain.
    for query in [
        format!(
            "from_date={}&to_date={today}&limit=1",
            today - Duration::days(3)
        ),
        "from_date=2020-01-01&to_date=2020-01-01".to_owned(),
    ] {
        let small = client()
            .get(export_url(&emulator, &query))
            .basic_auth(EU_USER, Some(EU_SECRET))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(small.status().as_u16(), 200, "{query}");
        assert!(small.headers().get("content-encoding").is_none(), "{query}");
        let body = small.text().await.unwrap();
        assert!(body.len() <= 1400, "{query}");
        assert_eq!(body.lines().count(), usize::from(query.contains("limit")));
    }
}

#[tokio::test]
async fn export_has_its_own_limits_per_second() {
    let emulator = start(json!({"export_per_second": 2})).await;
    let url = export_url(&emulator, "from_date=2020-01-01&to_date=2020-01-01");
    // Three at once, so the test does not depend on how fast the machine is.
    let mut statuses: Vec<u16> = futures_util::future::join_all((0..3).map(|_| get(url.clone())))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 429]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(url).await.status().as_u16(), 200);
}

#[tokio::test]
async fn injected_faults_fail_reset_and_truncate_then_clear() {
    let emulator = start(json!({})).await;
    let me = format!("{}/api/app/me", emulator.api_url(Region::Eu));
    emulator.set_faults(Faults {
        fail_next: 1,
        fail_status: Some(502),
        reset_next: 1,
        ..Faults::default()
    });
    let reset = client()
        .get(&me)
        .basic_auth(EU_USER, Some(EU_SECRET))
        .send()
        .await;
    let dropped = match reset {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(dropped, "the connection drops before a complete response");
    assert_eq!(get(me.clone()).await.status().as_u16(), 502);
    assert_eq!(
        get(me.clone()).await.status().as_u16(),
        200,
        "faults are consumed"
    );

    let today = Utc::now().date_naive();
    let url = export_url(
        &emulator,
        &format!("from_date={}&to_date={today}", today - Duration::days(3)),
    );
    emulator.set_faults(Faults {
        truncate_export: Some(Truncate {
            after_lines: 4,
            mode: TruncateMode::TerminatedEarly,
        }),
        ..Faults::default()
    });
    let text = get(url.clone()).await.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4], "terminated early");
    emulator.set_faults(Faults {
        truncate_export: Some(Truncate {
            after_lines: 4,
            mode: TruncateMode::Reset,
        }),
        ..Faults::default()
    });
    let cut = client()
        .get(&url)
        .basic_auth(EU_USER, Some(EU_SECRET))
        .send()
        .await;
    assert!(
        cut.is_err() || cut.unwrap().text().await.is_err(),
        "the export is cut off"
    );
    emulator.set_faults(Faults {
        only_region: Some(Region::Us),
        fail_next: 5,
        ..Faults::default()
    });
    assert_eq!(
        get(me).await.status().as_u16(),
        200,
        "faults scoped to another region"
    );
}

#[tokio::test]
async fn the_control_surface_changes_membership_and_faults_over_http() {
    let emulator = start(json!({})).await;
    let base = emulator.base_url();
    let changed: Value = client()
        .post(format!("{base}/_emulator/projects/2301456/cohorts/51234/members"))
        .json(&json!({"add": [{"distinct_id": "new", "properties": {"reference_id": "r-new"}}], "remove": ["u1", "u2"]}))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(changed["members"], 6);
    let ids: Vec<String> = emulator
        .members(2301456, 51234)
        .unwrap()
        .into_iter()
        .map(|m| m.distinct_id)
        .collect();
    assert!(ids.contains(&"new".to_owned()) && !ids.contains(&"u1".to_owned()));
    let unknown = client()
        .post(format!(
            "{base}/_emulator/projects/2301456/cohorts/9/members"
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    let set = client()
        .put(format!("{base}/_emulator/faults"))
        .json(&json!({"fail_next": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    assert_eq!(
        get(format!("{}/api/app/me", emulator.api_url(Region::Eu)))
            .await
            .status()
            .as_u16(),
        503
    );
    let overview: Value = client()
        .get(format!("{base}/_emulator"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(overview["projects"][0]["cohorts"][0]["members"], 6);
}

#[test]
fn the_shipped_example_scenario_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/example.toml");
    let scenario = Scenario::load(&path).unwrap();
    assert_eq!(scenario.projects.len(), 4);
    let power_users = &scenario.projects[0].cohorts[1];
    let members = power_users.all_members();
    assert_eq!(members.len(), 2500);
    assert_eq!(members[1].properties["reference_id"], "ref_2");
    assert!(!members[0].properties.contains_key("reference_id"));
    assert_eq!(scenario.destinations[0].cohort_id, 51234);
    assert_eq!(scenario.limits.query_per_hour, 60);
}

#[test]
fn unknown_scenario_fields_are_errors_not_silently_ignored() {
    let error = Scenario::from_json(r#"{"projects": [], "colour": "blue"}"#).unwrap_err();
    assert!(error.to_string().contains("colour"));
}

/// A webhook receiver that accepts everything and keeps the bodies.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                let action = body["action"].clone();
                kept.lock().unwrap().push(body);
                axum::Json(json!({"action": action, "status": "success"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bodies)
}

/// An emulator embedded without its controls (the demo's) answers Mixpanel's APIs but
/// not `/_emulator/`: anyone reaching its port sent a cohort to any address through them
/// (found by the demo review).
#[tokio::test]
async fn an_emulator_without_controls_serves_no_controls() {
    let emulator = Emulator::start_without_controls(scenario(json!({})))
        .await
        .unwrap();
    let base = emulator.base_url();
    let added = client()
        .post(format!("{base}/_emulator/destinations"))
        .json(
            &json!({"id": "x", "project_id": 2301456, "cohort_id": 51234,
                      "url": "http://127.0.0.1:9/anything"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 404);
    let me = client()
        .get(format!("{}/api/app/me", emulator.api_url(Region::Eu)))
        .basic_auth(EU_USER, Some(EU_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
}

#[tokio::test]
async fn a_destination_added_over_http_syncs_the_cohort_and_then_its_changes() {
    let emulator = start(json!({})).await;
    let base = emulator.base_url();
    let (url, bodies) = receiver().await;
    let added = client()
        .post(format!("{base}/_emulator/destinations"))
        .json(
            &json!({"id": "uj", "project_id": 2301456, "cohort_id": 51234, "url": url,
                      "basic_auth": {"username": "mixpanel", "password": "hunter2"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 201);
    assert_eq!(
        added.json::<Value>().await.unwrap()["basic_auth"]["password"],
        "********"
    );

    let first: Value = client()
        .post(format!("{base}/_emulator/destinations/uj/run"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (first["outcome"].as_str(), first["full"].as_bool()),
        (Some("synced"), Some(true))
    );
    assert_eq!(
        bodies.lock().unwrap()[0]["parameters"]["members"]
            .as_array()
            .unwrap()
            .len(),
        7
    );

    emulator.remove_members(2301456, 51234, &["u1"]).unwrap();
    let second = emulator.run_sync("uj").await.unwrap();
    assert!(
        matches!(
            second,
            mixpanel_emulator::RunOutcome::Synced {
                full: false,
                added: 0,
                removed: 1,
                ..
            }
        ),
        "{second:?}"
    );
    let actions: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["members", "add_members", "remove_members"]);

    let shown: Value = client()
        .get(format!("{base}/_emulator/destinations/uj"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["state"]["snapshot_members"], 6);
    assert_eq!(shown["deliveries"].as_array().unwrap().len(), 3);
    assert!(!shown.to_string().contains("hunter2"));
    let unknown = client()
        .post(format!("{base}/_emulator/destinations/nope/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

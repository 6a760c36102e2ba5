//! When the database goes away or is locked, requests get 503 `storage_unavailable` (or
//! `timed_out`, a REST request cut by its deadline), never a hang, never a 500 with a stack
//! trace, and nothing half-written remains.

mod helpers;

use helpers::{Other, TestApp};
use serde_json::{json, Value};
use sqlx::Connection;
use uj_storage::testing::TestDatabase;

#[tokio::test]
async fn a_locked_sqlite_database_answers_503_and_recovers() {
    let app = TestApp::spawn_on(TestDatabase::sqlite(), |_| {}).await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    // Use the key once so that recording its use needs no write below.
    app.get("/api/v1/project", &keys.secret_key).await;

    // Another process takes the write lock and keeps it.
    let mut other = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();

    let response = app
        .post_json(
            "/api/v1/api-keys",
            &keys.secret_key,
            json!({"name": "blocked"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response.headers()["retry-after"],
        "5",
        "a 503 says when to retry"
    );
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable");
    // The client gets the id to quote, the one its answer carries (found by the mutation
    // audit).
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !request_id.is_empty() && message.ends_with(&format!("(request id {request_id})")),
        "{message}"
    );
    // Reads still work while a writer holds the lock (WAL).
    assert_eq!(
        app.get("/api/v1/project", &keys.secret_key)
            .await
            .status()
            .as_u16(),
        200
    );

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    let response = app
        .post_json(
            "/api/v1/api-keys",
            &keys.secret_key,
            json!({"name": "later"}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    let listed: Value = app
        .get("/api/v1/api-keys", &keys.secret_key)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bootstrap", "later"]);
}

#[tokio::test]
async fn a_vanished_postgres_database_answers_503() {
    let Some(db) = TestDatabase::postgres().await else {
        return; // No PostgreSQL here; CI sets UJ_REQUIRE_POSTGRES so this cannot pass silently.
    };
    let app = TestApp::spawn_on(db, |_| {}).await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let (mut admin, name) = postgres_admin(&app).await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let response = app.get("/api/v1/project", &keys.secret_key).await;
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable");
    // A token that cannot be a public key is refused from its shape, with no lookup (which
    // would answer 503 now; found by the mutation audit).
    let junk = format!("uj_pk_{}", "x".repeat(200));
    let refused = app.get("/sdk/v1/config?reference_id=u1", &junk).await;
    assert_eq!(refused.status().as_u16(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let page = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 503);
    let link = app.client.get(app.url("/i/S0MEC0DE")).send().await.unwrap();
    assert_eq!(link.status().as_u16(), 503);
    assert!(
        link.text()
            .await
            .unwrap()
            .contains("Not available right now"),
        "a respondent gets the friendly page"
    );
}

/// A link whose lookup fails for a reason other than the database being away (here a
/// table renamed under the running server) gets the friendly page with 500: no database
/// error, no trace.
#[tokio::test]
async fn a_link_whose_lookup_fails_gets_the_friendly_page() {
    let app = TestApp::spawn().await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let study = app
        .create_study(&keys.secret_key, "https://r.example.com/t")
        .await;
    let link = format!("/i/{}", study["public_code"].as_str().unwrap());
    let opened = app.client.get(app.url(&link)).send().await.unwrap();
    assert_eq!(opened.status().as_u16(), 303);

    app.execute_sql("ALTER TABLE studies RENAME TO studies_elsewhere")
        .await;
    let failed = app.client.get(app.url(&link)).send().await.unwrap();
    assert_eq!(failed.status().as_u16(), 500);
    assert!(failed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = failed.text().await.unwrap();
    assert!(page.contains("Something went wrong"), "{page}");
    assert!(!page.contains("studies"), "no database error: {page}");
}

/// PostgreSQL ends the server's connections (a restart, a failover, an administrator): the
/// pool replaces them. Connections are checked before use only once they have been idle for
/// a while (a check per query would cost a round trip each), or once a connection was found
/// cut: a request that meets a connection cut a moment ago gets 503 and the next ones are
/// served.
#[tokio::test]
async fn postgres_connections_cut_by_the_server_are_replaced() {
    let Some(db) = TestDatabase::postgres().await else {
        return; // No PostgreSQL here; CI sets UJ_REQUIRE_POSTGRES so this cannot pass silently.
    };
    let app = TestApp::spawn_on(db, |_| {}).await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let (mut admin, name) = postgres_admin(&app).await;
    let status = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        if status != 200 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (503, Some("storage_unavailable"))
            );
        }
        status
    };

    // Connections idle past the check are tested before use: nothing fails.
    for _ in 0..5 {
        assert_eq!(
            status(app.get("/api/v1/project", &keys.secret_key).await).await,
            200
        );
    }
    cut_connections(&mut admin, &name).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for _ in 0..20 {
        assert_eq!(
            status(app.get("/api/v1/project", &keys.secret_key).await).await,
            200
        );
    }

    // Cut while in use, with several connections in the pool (requests at once opened
    // them): the first request to meet a cut one fails, and the pool then checks every
    // connection it kept from before that failure. (Each cut connection failed a request.)
    let at_once = (0..12).map(|_| app.get("/api/v1/project", &keys.secret_key));
    for response in futures::future::join_all(at_once).await {
        assert_eq!(status(response).await, 200);
    }
    cut_connections(&mut admin, &name).await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(status(app.get("/api/v1/project", &keys.secret_key).await).await);
    }
    assert!(
        statuses.iter().filter(|s| **s != 200).count() <= 1,
        "one failure at most after the cut: {statuses:?}"
    );
}

/// PostgreSQL refusing new connections to the database (an administrator's
/// `ALLOW_CONNECTIONS false`, SQLSTATE 55000) is the database being away, not our bug: 503
/// `storage_unavailable` (it was 500 `internal_error`), and served again once it lets the
/// server in, without a restart.
#[tokio::test]
async fn a_postgres_database_refusing_connections_answers_503_then_recovers() {
    let Some(db) = TestDatabase::postgres().await else {
        return; // No PostgreSQL here; CI sets UJ_REQUIRE_POSTGRES so this cannot pass silently.
    };
    let app = TestApp::spawn_on(db, |_| {}).await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let (mut admin, name) = postgres_admin(&app).await;
    let allow = |allowed: bool| format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed}");
    sqlx::query(&allow(false))
        .execute(&mut admin)
        .await
        .unwrap();
    cut_connections(&mut admin, &name).await;
    for _ in 0..5 {
        let response = app.get("/api/v1/project", &keys.secret_key).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("storage_unavailable")),
            "{body}"
        );
    }
    sqlx::query(&allow(true)).execute(&mut admin).await.unwrap();
    let mut served = false;
    for _ in 0..20 {
        if app.get("/api/v1/project", &keys.secret_key).await.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "served again once connections are allowed");
}

/// Ends every connection to database `name` but the caller's, as PostgreSQL does when it
/// restarts.
async fn cut_connections(admin: &mut sqlx::PgConnection, name: &str) {
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .fetch_all(admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the app holds connections to cut");
}

/// A connection to the server's `postgres` database, and the name of the app's database.
async fn postgres_admin(app: &TestApp) -> (sqlx::PgConnection, String) {
    let name = app.db.url.rsplit('/').next().unwrap().to_owned();
    let admin_url = app.db.url.replace(&name, "postgres");
    (sqlx::PgConnection::connect(&admin_url).await.unwrap(), name)
}

/// A database that stops answering (here: a lock another connection holds) gets the SDK a
/// 503 within `UJ_SDK_TIMEOUT_SECS`, not a wait as long as the outage; once it answers again,
/// so does the SDK.
#[tokio::test]
async fn an_sdk_request_the_database_does_not_answer_gets_503_in_time() {
    let app = TestApp::spawn_with(|config| {
        config.sdk_timeout_secs = 2;
        config.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let study: Value = app
        .post_json(
            "/api/v1/studies",
            &keys.secret_key,
            json!({"name": "Checkout", "interview_url": "https://r.example.com/i/c"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let rule = app
        .post_json(
            &format!(
                "/api/v1/studies/{}/launch-rules",
                study["id"].as_str().unwrap()
            ),
            &keys.secret_key,
            json!({"name": "R", "status": "active", "surface": "sdk_prompt",
                   "trigger": {"type": "app_event", "event_name": "Signed Up"}}),
        )
        .await;
    assert_eq!(rule.status().as_u16(), 201);
    let event = |user: &str| {
        app.client
            .post(app.url("/sdk/v1/events"))
            .bearer_auth(&keys.public_key)
            .json(&json!({"event_name": "Signed Up", "reference_id": user}))
            .send()
    };
    assert_eq!(event("first").await.unwrap().status().as_u16(), 200);

    // Another connection holds the invites: PostgreSQL makes the user's read wait, SQLite
    // the invite's write.
    let lock = if helpers::on_postgres() {
        "LOCK TABLE invites IN ACCESS EXCLUSIVE MODE"
    } else {
        "SELECT 1"
    };
    let mut other = Other::connect(&app.db.url).await;
    other.hold(lock).await;
    unavailable_after_two_seconds("storage_unavailable", async {
        event("second").await.unwrap()
    })
    .await;
    other.release().await;
    let answer = event("third").await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let body: Value = answer.json().await.unwrap();
    assert!(body["pending_invite"]["code"].is_string(), "{body}");
    // The metrics count the invites written, the one a request gave up waiting for included
    // (SQLite's writer had it, and wrote it once the lock went; it went uncounted).
    let written = app.count_sql("SELECT COUNT(*) FROM invites").await;
    if !helpers::on_postgres() {
        assert_eq!(written, 3, "the second user's invite is written after all");
    }
    let metrics = app.metrics().await;
    let counted = format!("uj_invites_issued_total{{via=\"event\"}} {written}\n");
    assert!(metrics.contains(&counted), "{counted} in {metrics}");
}

/// A request whose client gives up before the answer (a load balancer's shorter timeout
/// while the database stalls) is counted as 499: hyper drops its handling, and nothing
/// counted it (found by the telemetry review: a stall then showed no 503s to alert on).
#[tokio::test]
async fn a_request_its_client_gave_up_on_is_counted_as_499() {
    let app = TestApp::spawn_with(|config| {
        config.request_timeout_secs = 30;
        config.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let lock = if helpers::on_postgres() {
        "LOCK TABLE studies IN ACCESS EXCLUSIVE MODE"
    } else {
        "SELECT 1"
    };
    let mut other = Other::connect(&app.db.url).await;
    other.hold(lock).await;
    let gave_up = app
        .client
        .post(app.url("/api/v1/studies"))
        .bearer_auth(&keys.secret_key)
        .json(&json!({"name": "Checkout", "interview_url": "https://r.example.com/i/c"}))
        .timeout(std::time::Duration::from_millis(500))
        .send()
        .await;
    assert!(gave_up.unwrap_err().is_timeout());
    let counted = "uj_http_requests_total{api=\"rest\",status=\"499\"} 1\n";
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = app.metrics().await;
        if metrics.contains(counted) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    other.release().await;
    assert!(metrics.contains(counted), "{counted} in {metrics}");
}

/// A client's slow upload is refused by the body's deadline, however short the request's:
/// inside the request's deadline, it was answered 503 `timed_out`, "the database or
/// Mixpanel was too slow" (found by the HTTP plumbing review).
#[tokio::test]
async fn a_slow_upload_is_refused_as_such_not_as_a_slow_database() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|config| {
        config.request_timeout_secs = 1;
        config.body_timeout_secs = 2;
    })
    .await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/studies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 20\r\n\r\n{{\"na",
        keys.secret_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
}

/// The REST API (and the dashboard) end a request the database does not answer after
/// `UJ_REQUEST_TIMEOUT_SECS` with 503 `timed_out`, and nothing of it is written.
/// (They waited for as long as the database did: on PostgreSQL, a lock held for an hour
/// held every such request for the hour.)
#[tokio::test]
async fn a_rest_request_the_database_does_not_answer_gets_503_in_time() {
    let app = TestApp::spawn_with(|config| config.request_timeout_secs = 2).await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let lock = if helpers::on_postgres() {
        "LOCK TABLE studies IN ACCESS EXCLUSIVE MODE"
    } else {
        "SELECT 1"
    };
    let mut other = Other::connect(&app.db.url).await;
    other.hold(lock).await;
    unavailable_after_two_seconds(
        "timed_out",
        app.post_json(
            "/api/v1/studies",
            &keys.secret_key,
            json!({"name": "Checkout", "interview_url": "https://r.example.com/i/c"}),
        ),
    )
    .await;
    other.release().await;
    // A write the timed-out request left running would wait for the lock ahead of this one,
    // so it would be in by the time this one is (listing at once could miss it).
    let after = app
        .post_json(
            "/api/v1/studies",
            &keys.secret_key,
            json!({"name": "After", "interview_url": "https://r.example.com/i/a"}),
        )
        .await;
    assert_eq!(after.status().as_u16(), 201);
    let studies: Value = app
        .get("/api/v1/studies", &keys.secret_key)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = studies["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["After"], "nothing of the timed-out request written");
}

/// Asserts `request` is answered 503 `code` by a deadline of 2 s: not before it, and not
/// long after.
async fn unavailable_after_two_seconds(
    code: &str,
    request: impl std::future::Future<Output = reqwest::Response>,
) {
    let asked = std::time::Instant::now();
    let answer = request.await;
    let waited = asked.elapsed();
    assert_eq!(answer.status().as_u16(), 503);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], code);
    assert!(
        waited >= std::time::Duration::from_secs(2) && waited < std::time::Duration::from_secs(4),
        "answered after {waited:?}"
    );
}

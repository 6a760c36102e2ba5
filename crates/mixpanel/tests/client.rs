//! The client against the Mixpanel emulator: discovery across clusters and every way it
//! can fail, cohorts and event names, rate limits and timeouts.

use std::time::Duration;

use mixpanel_emulator::{Emulator, Faults, Scenario};
use secrecy::SecretString;
use serde_json::json;
use uj_mixpanel::{BaseUrls, Client, Credentials, MixpanelError, ProjectRef, Region, Settings};

fn scenario() -> Scenario {
    let now = chrono_now();
    Scenario::from_json(
        &json!({
            "organizations": [{"id": 1, "name": "Acme Inc"}],
            "service_accounts": [
                {"username": "eu-only", "secret": "s", "organization_id": 1, "home_region": "eu",
                 "grants": [{"project_id": 10, "role": "analyst"}]},
                {"username": "multi", "secret": "s", "organization_id": 1, "home_region": "eu",
                 "grants": [{"project_id": 10, "role": "analyst"}, {"project_id": 20, "role": "analyst"},
                            {"project_id": 30, "role": "consumer", "permissions": []}]},
                {"username": "india", "secret": "s", "organization_id": 1, "home_region": "in",
                 "grants": [{"project_id": 40, "role": "analyst"}]},
                {"username": "spread", "secret": "s", "organization_id": 1, "home_region": "us",
                 "also_valid_in": ["eu"], "grants": [{"project_id": 50, "role": "analyst"}]},
                {"username": "mirror", "secret": "s", "organization_id": 1, "home_region": "eu",
                 "also_valid_in": ["us"], "grants": [{"project_id": 60, "role": "analyst"}]},
                {"username": "nothing", "secret": "s", "organization_id": 1, "home_region": "us", "grants": []},
                {"username": "expired", "secret": "s", "organization_id": 1, "home_region": "eu",
                 "expires_at": "2021-01-01T00:00:00Z", "grants": [{"project_id": 10, "role": "analyst"}]}
            ],
            "projects": [
                {"id": 10, "name": "Shop EU", "organization_id": 1, "region": "eu", "timezone": "Europe/Berlin",
                 "data_views": [{"id": 501, "name": "All", "is_global": true}],
                 "cohorts": [{"id": 7, "name": "Buyers", "description": "Bought twice",
                              "members": [{"distinct_id": "a"}, {"distinct_id": "b"}]}],
                 "events": [{"event": "Order Completed", "properties": {"time": now - 60, "distinct_id": "a"}},
                            {"event": "Order Completed", "properties": {"time": now - 50, "distinct_id": "b"}},
                            {"event": "App Opened", "properties": {"time": now - 40, "distinct_id": "a"}}]},
                {"id": 20, "name": "Shop US", "organization_id": 1, "region": "us", "timezone": "US/Pacific"},
                {"id": 30, "name": "Finance", "organization_id": 1, "region": "eu", "domain": ""},
                {"id": 40, "name": "Shop India", "organization_id": 1, "region": "in"},
                {"id": 50, "name": "Ledger", "organization_id": 1, "region": "eu", "domain": ""},
                {"id": 60, "name": "Books", "organization_id": 1, "region": "us", "domain": ""}
            ],
            "limits": {"query_per_hour": 3}
        })
        .to_string(),
    )
    .unwrap()
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn client(emulator: &Emulator) -> Client {
    let urls = BaseUrls {
        us_api: emulator.api_url(mixpanel_emulator::Region::Us),
        eu_api: emulator.api_url(mixpanel_emulator::Region::Eu),
        in_api: emulator.api_url(mixpanel_emulator::Region::In),
        us_data: emulator.data_url(mixpanel_emulator::Region::Us),
        eu_data: emulator.data_url(mixpanel_emulator::Region::Eu),
        in_data: emulator.data_url(mixpanel_emulator::Region::In),
    };
    Client::new(
        urls,
        Settings {
            timeout: Duration::from_millis(500),
            retries: 1,
            backoff: Duration::from_millis(10),
            max_wait: Duration::from_secs(1),
        },
    )
}

fn account(username: &str, secret: &str) -> Credentials {
    Credentials {
        username: username.into(),
        secret: SecretString::from(secret.to_owned()),
    }
}

#[tokio::test]
async fn an_eu_account_is_found_on_the_eu_cluster_with_its_region_and_data_view() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let found = client(&emulator)
        .discover(&account("eu-only", "s"))
        .await
        .unwrap();
    assert_eq!(found.projects.len(), 1);
    let project = &found.projects[0];
    assert_eq!((project.id.as_str(), project.region), ("10", Region::Eu));
    assert_eq!(project.organization, "Acme Inc");
    assert_eq!(project.timezone, "Europe/Berlin");
    assert_eq!(project.workspace_id.as_deref(), Some("501"));
    assert!(project.selectable);
}

#[tokio::test]
async fn several_projects_across_regions_are_merged_with_reasons_for_the_unusable() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let found = client(&emulator)
        .discover(&account("multi", "s"))
        .await
        .unwrap();
    let summary: Vec<(&str, Region, bool)> = found
        .projects
        .iter()
        .map(|p| (p.name.as_str(), p.region, p.selectable))
        .collect();
    assert_eq!(
        summary,
        [
            ("Finance", Region::Eu, false),
            ("Shop EU", Region::Eu, true),
            ("Shop US", Region::Us, false)
        ]
    );
    assert!(found.projects[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("Analyst"));
    // Listed by the account's EU cluster, Shop US lives on the US cluster, which refuses
    // the account: every call about it would fail there.
    assert!(found.projects[2]
        .reason
        .as_deref()
        .unwrap()
        .contains("US servers"));
    assert_eq!(found.selectable().count(), 1);
}

/// A project listed without a `domain` by two clusters is taken for the US one's until
/// connecting it finds where its data is: the first cluster whose Query API knows it. An EU
/// project so listed was connected as US and never read (found by the Mixpanel connection
/// review), and then, preferring the other cluster, a US project as EU (the diff review).
#[tokio::test]
async fn a_project_listed_without_a_domain_by_two_clusters_is_confirmed_where_its_data_is() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let client = client(&emulator);
    for (username, id, lives_in) in [("spread", "50", Region::Eu), ("mirror", "60", Region::Us)] {
        let credentials = account(username, "s");
        let found = client.discover(&credentials).await.unwrap();
        let project = &found.projects[0];
        assert_eq!(
            (
                project.id.as_str(),
                project.region,
                project.unsure_regions.len()
            ),
            (id, Region::Us, 1),
            "{username}"
        );
        let region = client.confirm(&credentials, project).await.unwrap();
        assert_eq!(region, lives_in, "{username}");
        let at = ProjectRef {
            id,
            region,
            workspace_id: None,
        };
        client.cohorts(&credentials, &at).await.unwrap();
    }
}

#[tokio::test]
async fn an_india_only_account_is_found_in_india() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let found = client(&emulator)
        .discover(&account("india", "s"))
        .await
        .unwrap();
    assert_eq!(found.projects[0].region, Region::In);
}

#[tokio::test]
async fn wrong_and_expired_credentials_are_invalid_credentials() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    for (user, secret) in [("eu-only", "wrong"), ("expired", "s"), ("nobody", "s")] {
        let error = client(&emulator)
            .discover(&account(user, secret))
            .await
            .unwrap_err();
        assert!(
            matches!(error, MixpanelError::InvalidCredentials),
            "{user}: {error:?}"
        );
    }
}

#[tokio::test]
async fn an_account_without_projects_discovers_an_empty_list() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let found = client(&emulator)
        .discover(&account("nothing", "s"))
        .await
        .unwrap();
    assert!(found.projects.is_empty());
}

#[tokio::test]
async fn a_mixpanel_that_does_not_answer_in_time_is_unreachable() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    emulator.set_faults(Faults {
        latency_ms: 2000,
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let error = client(&emulator)
        .discover(&account("eu-only", "s"))
        .await
        .unwrap_err();
    assert!(matches!(error, MixpanelError::Unreachable(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the clusters are asked in parallel"
    );

    let nowhere = Client::new(
        BaseUrls {
            us_api: "http://127.0.0.1:9".into(),
            eu_api: "http://127.0.0.1:9".into(),
            in_api: "http://127.0.0.1:9".into(),
            ..BaseUrls::default()
        },
        Settings::default(),
    );
    let error = nowhere
        .discover(&account("eu-only", "s"))
        .await
        .unwrap_err();
    assert!(matches!(error, MixpanelError::Unreachable(_)), "{error:?}");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    emulator.set_faults(Faults {
        fail_next: 1,
        only_region: Some(mixpanel_emulator::Region::Eu),
        ..Faults::default()
    });
    let found = client(&emulator)
        .discover(&account("eu-only", "s"))
        .await
        .unwrap();
    assert_eq!(found.projects.len(), 1);
}

/// Mixpanel allows a project 5 queries at once and 60 an hour, shared with the customer's
/// other tools (reference §8): the client keeps 5 in flight at most and spends 10 at once,
/// then one every two minutes, per Mixpanel project; past that it answers as Mixpanel's
/// limit would, without asking.
#[tokio::test]
async fn queries_keep_inside_the_project_s_budget() {
    let mut scenario = scenario();
    scenario.limits.query_per_hour = 1000;
    let emulator = Emulator::start(scenario).await.unwrap();
    emulator.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let client = Client::new(
        client(&emulator).urls().clone(),
        Settings {
            retries: 0,
            ..Settings::default()
        },
    );
    let credentials = account("multi", "s");
    let shop_eu = ProjectRef {
        id: "10",
        region: Region::Eu,
        workspace_id: None,
    };
    // Eight at once: Mixpanel would refuse three of them.
    let reads: Vec<_> = (0..8)
        .map(|_| client.cohorts(&credentials, &shop_eu))
        .collect();
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.unwrap().len(), 1);
    }
    emulator.set_faults(Faults::default());
    client.cohorts(&credentials, &shop_eu).await.unwrap();
    // One left: a read of cohorts and event names takes two, and is refused before either
    // is asked, with the wait until both may go (here, for one more; a refresh that waited
    // for one query spent its cohorts' and was refused its names', for good; found by the
    // review).
    let asked = emulator.requests().len();
    let both = client
        .cohorts_and_event_names(&credentials, &shop_eu, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(both, MixpanelError::RateLimited { retry_after: Some(wait) }
            if wait > Duration::from_secs(60) && wait <= uj_mixpanel::QUERY_EVERY),
        "{both:?}"
    );
    assert_eq!(emulator.requests().len(), asked);
    client.cohorts(&credentials, &shop_eu).await.unwrap();
    let spent = client.cohorts(&credentials, &shop_eu).await.unwrap_err();
    assert!(
        matches!(spent, MixpanelError::RateLimited { retry_after: Some(wait) }
            if wait > Duration::from_secs(60) && wait <= uj_mixpanel::QUERY_EVERY),
        "{spent:?}"
    );
    // Another project's budget is its own: asked, Mixpanel answers for itself (this
    // account may not read Finance's cohorts).
    let finance = ProjectRef {
        id: "30",
        region: Region::Eu,
        workspace_id: None,
    };
    let other = client.cohorts(&credentials, &finance).await.unwrap_err();
    assert!(
        matches!(other, MixpanelError::MissingPermission(_)),
        "{other:?}"
    );
}

/// A 200 that is not the documented list (an error object, as a proxy or a bad day sends) is
/// an error, for event names as for cohorts: read as "no names", it emptied the catalog.
#[tokio::test]
async fn a_list_answered_as_something_else_is_unexpected() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let client = client(&emulator);
    let project = ProjectRef {
        id: "10",
        region: Region::Eu,
        workspace_id: None,
    };
    let odd = Faults {
        fail_next: 1,
        fail_status: Some(200),
        ..Faults::default()
    };
    emulator.set_faults(odd.clone());
    let names = client
        .top_event_names(&account("eu-only", "s"), &project, 10)
        .await;
    assert!(
        matches!(names, Err(MixpanelError::Unexpected { status: 200, .. })),
        "{names:?}"
    );
    emulator.set_faults(odd);
    let cohorts = client.cohorts(&account("eu-only", "s"), &project).await;
    assert!(
        matches!(cohorts, Err(MixpanelError::Unexpected { status: 200, .. })),
        "{cohorts:?}"
    );
}

/// A connection dropped before its answer (a reset, a cluster restarting) is retried as a 5xx
/// is (reference §8): one reset failed the customer's whole connect.
#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    emulator.set_faults(Faults {
        reset_next: 1,
        only_region: Some(mixpanel_emulator::Region::Eu),
        ..Faults::default()
    });
    let found = client(&emulator)
        .discover(&account("eu-only", "s"))
        .await
        .unwrap();
    assert_eq!(found.projects.len(), 1);
    // As many times as a 5xx, no more.
    emulator.set_faults(Faults {
        reset_next: 2,
        only_region: Some(mixpanel_emulator::Region::Eu),
        ..Faults::default()
    });
    let error = client(&emulator)
        .discover(&account("eu-only", "s"))
        .await
        .unwrap_err();
    assert!(matches!(error, MixpanelError::Unreachable(_)), "{error:?}");
}

#[tokio::test]
async fn cohorts_and_event_names_are_read_until_the_rate_limit_says_no() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let client = client(&emulator);
    let credentials = account("eu-only", "s");
    let project = ProjectRef {
        id: "10",
        region: Region::Eu,
        workspace_id: Some("501"),
    };
    let cohorts = client.cohorts(&credentials, &project).await.unwrap();
    assert_eq!(cohorts.len(), 1);
    assert_eq!(
        (
            cohorts[0].id.as_str(),
            cohorts[0].name.as_str(),
            cohorts[0].count
        ),
        ("7", "Buyers", 2)
    );
    let names = client
        .top_event_names(&credentials, &project, 10)
        .await
        .unwrap();
    assert_eq!(names, ["Order Completed", "App Opened"]);
    client.cohorts(&credentials, &project).await.unwrap();
    let limited = client.cohorts(&credentials, &project).await.unwrap_err();
    assert!(
        matches!(limited, MixpanelError::RateLimited { .. }),
        "{limited:?}"
    );
}

/// Mixpanel documents `cohorts/list` as POST (GET is only seen to work) and `events/names` as
/// GET; each is called the documented way, with its parameters in the query string.
#[tokio::test]
async fn cohorts_are_listed_with_post_and_event_names_read_with_get() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let client = client(&emulator);
    let credentials = account("eu-only", "s");
    let project = ProjectRef {
        id: "10",
        region: Region::Eu,
        workspace_id: Some("501"),
    };
    assert_eq!(
        client.cohorts(&credentials, &project).await.unwrap().len(),
        1
    );
    client
        .top_event_names(&credentials, &project, 10)
        .await
        .unwrap();
    let calls: Vec<String> = emulator
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        [
            "POST /eu/api/query/cohorts/list",
            "GET /eu/api/query/events/names"
        ]
    );
}

#[tokio::test]
async fn verify_confirms_access_to_the_connected_project() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let client = client(&emulator);
    client
        .verify(&account("eu-only", "s"), Region::Eu, "10")
        .await
        .unwrap();
    let gone = client
        .verify(&account("eu-only", "s"), Region::Eu, "20")
        .await
        .unwrap_err();
    assert!(matches!(gone, MixpanelError::MissingPermission(_)));
    let rejected = client
        .verify(&account("eu-only", "bad"), Region::Eu, "10")
        .await
        .unwrap_err();
    assert!(matches!(rejected, MixpanelError::InvalidCredentials));
}

#[test]
fn credentials_never_show_the_secret() {
    let shown = format!("{:?}", account("eu-only", "super-secret-value"));
    assert!(!shown.contains("super-secret-value"));
}

#[tokio::test]
async fn an_answer_that_does_not_end_is_refused_once_it_passes_the_cap() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    let client = Client::new(
        client(&emulator).urls().clone(),
        Settings {
            // Long enough to read far past the cap on loopback: the cap must end the read,
            // not the timeout.
            timeout: Duration::from_secs(30),
            ..Settings::default()
        },
    );
    emulator.set_faults(Faults {
        endless_next: 1,
        ..Faults::default()
    });
    let project = ProjectRef {
        id: "10",
        region: Region::Eu,
        workspace_id: None,
    };
    let started = std::time::Instant::now();
    let error = client
        .cohorts(&account("eu-only", "s"), &project)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, MixpanelError::Unexpected { status: 200, detail } if detail.contains("longer than 16 MiB")),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // The next answer is whole again.
    let cohorts = client
        .cohorts(&account("eu-only", "s"), &project)
        .await
        .unwrap();
    assert_eq!(cohorts.len(), 1);
}

/// The account's own cluster answering something odd (a 404, a proxy's page) while the
/// others refuse the account, as they always do: that answer is the error, not "invalid
/// credentials", which would send the customer to re-copy a secret that is right.
#[tokio::test]
async fn an_odd_answer_from_the_accounts_cluster_is_not_invalid_credentials() {
    let emulator = Emulator::start(scenario()).await.unwrap();
    emulator.set_faults(Faults {
        fail_next: 1,
        fail_status: Some(404),
        only_region: Some(mixpanel_emulator::Region::Eu),
        ..Faults::default()
    });
    let found = client(&emulator).discover(&account("eu-only", "s")).await;
    assert!(
        matches!(found, Err(MixpanelError::Unexpected { status: 404, .. })),
        "{found:?}"
    );
}

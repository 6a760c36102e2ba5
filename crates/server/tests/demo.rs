//! `userjourneys demo`, as a newcomer runs it: the printed credentials sign in, the
//! simulated Mixpanel connects (with the project picker), the demo panel points a cohort at
//! the webhook and syncs it, and membership changes arrive as diffs.

mod helpers;

use helpers::demo;
use helpers::{client, element_text, input_value, location, TestApp};

#[tokio::test]
async fn the_demo_prints_what_a_newcomer_needs_and_its_panel_plays_mixpanel() {
    let demo = demo::start();
    assert!(std::path::Path::new(&demo.directory).exists());
    let browser = client();
    let signed_in = demo
        .submit(
            &browser,
            "/login",
            "/login",
            &[
                ("email", "demo@userjourneys.test"),
                ("password", &demo.password),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status().as_u16(),
        303,
        "the printed credentials sign in"
    );

    // Connect the simulated Mixpanel: the account sees several projects, so the picker.
    let page = format!("{}/integrations/mixpanel", demo.project);
    let connected = demo
        .submit(
            &browser,
            &page,
            &page,
            &[
                ("username", "acme-connector.3fa2c1.mp-service-account"),
                ("secret", "demo-secret-eu"),
            ],
        )
        .await;
    assert_eq!(location(&connected), page);
    let picker = demo.page(&browser, &page).await;
    assert!(picker.contains("Acme App (staging)"), "the picker");
    let token = input_value(&picker, "connect_token");
    let chosen = demo
        .submit(
            &browser,
            &page,
            &format!("{page}/project"),
            &[("connect_token", &token), ("project_id", "2301456")],
        )
        .await;
    assert_eq!(location(&chosen), page);
    let created = demo
        .submit(&browser, &page, &format!("{page}/cohort-sync"), &[])
        .await
        .text()
        .await
        .unwrap();
    let secret = element_text(&created, "webhook-secret").unwrap();
    let webhook = element_text(&created, "webhook-url").unwrap();
    // A local webhook URL is what the demo needs: said so, not shown as an error.
    assert!(
        !created.contains("local-url-warning"),
        "no alarm in the demo"
    );
    assert!(created.contains("id=\"local-url-demo\""));

    // The panel, linked from every project page, prefills the webhook.
    let panel = format!("{}/demo", demo.project);
    let html = demo.page(&browser, &panel).await;
    assert!(html.contains(r#"id="nav-demo""#));
    assert!(html.contains(&webhook));
    assert_eq!(
        element_text(&html, "demo-connected").as_deref(),
        Some("Acme App (prod) (2301456)")
    );
    // The simulated Mixpanel posts from the server's process: only to its own webhook.
    let elsewhere = format!("{}/api/v1/project", demo.url);
    for url in [
        "http://127.0.0.1:9/webhooks/mixpanel/whk_x",
        elsewhere.as_str(),
    ] {
        let refused = demo
            .submit(
                &browser,
                &panel,
                &format!("{panel}/destinations"),
                &[
                    ("cohort", "2301456:51290"),
                    ("webhook_url", url),
                    ("username", "mixpanel"),
                    ("secret", &secret),
                ],
            )
            .await
            .text()
            .await
            .unwrap();
        assert!(
            element_text(&refused, "form-error")
                .unwrap()
                .starts_with("The demo sends cohorts only to this server"),
            "{url}"
        );
        assert!(element_text(&refused, "demo-message").is_none());
    }
    let wrong = demo
        .submit(
            &browser,
            &panel,
            &format!("{panel}/destinations"),
            &[
                ("cohort", "2301456:51290"),
                ("webhook_url", &webhook),
                ("username", "mixpanel"),
                ("secret", "not-the-secret"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        element_text(&wrong, "form-error")
            .unwrap()
            .starts_with("Paused by UserJourneys (401)"),
        "a wrong secret pauses the sync, as Mixpanel would, shown as an error"
    );
    let synced = demo
        .submit(
            &browser,
            &panel,
            &format!("{panel}/destinations"),
            &[
                ("cohort", "2301456:51290"),
                ("webhook_url", &webhook),
                ("username", "mixpanel"),
                ("secret", &secret),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        element_text(&synced, "demo-message").as_deref(),
        Some("Synced: the full cohort, 3000 members, in 3 requests.")
    );
    let audiences = demo
        .page(&browser, &format!("{}/audiences", demo.project))
        .await;
    assert!(
        audiences.contains("Power users") && audiences.contains("<td>3000</td>"),
        "{audiences}"
    );

    // People leave in Mixpanel; the next sync sends the difference.
    let changed = demo
        .submit(
            &browser,
            &panel,
            &format!("{panel}/membership"),
            &[
                ("cohort", "2301456:51290"),
                ("change", "remove"),
                ("count", "5"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(element_text(&changed, "demo-message")
        .unwrap()
        .starts_with("5 left the cohort; it has 2995 members"));
    let destination = input_value(&demo.page(&browser, &panel).await, "destination");
    // Another project's panel neither shows nor runs this project's sync.
    let other = demo
        .submit(&browser, "/projects/new", "/projects", &[("name", "Other")])
        .await;
    let other_panel = format!("{}/demo", location(&other));
    let html = demo.page(&browser, &other_panel).await;
    assert!(!html.contains(&destination), "{html}");
    assert!(!html.contains("3000 members"));
    let refused = demo
        .submit(
            &browser,
            &other_panel,
            &format!("{other_panel}/sync"),
            &[("destination", &destination)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        element_text(&refused, "form-error").as_deref(),
        Some("That cohort is not synced yet.")
    );
    let diff = demo
        .submit(
            &browser,
            &panel,
            &format!("{panel}/sync"),
            &[("destination", &destination)],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        element_text(&diff, "demo-message")
            .unwrap()
            .contains("5 removed"),
        "{diff}"
    );
    let audiences = demo
        .page(&browser, &format!("{}/audiences", demo.project))
        .await;
    assert!(audiences.contains("<td>2995</td>"));
    let bad = demo
        .submit(
            &browser,
            &panel,
            &format!("{panel}/membership"),
            &[
                ("cohort", "2301456:51290"),
                ("change", "add"),
                ("count", "0"),
            ],
        )
        .await;
    // Refused as the dashboard's other forms are (it was 200).
    assert_eq!(bad.status().as_u16(), 422);
    let bad = bad.text().await.unwrap();
    assert!(element_text(&bad, "form-error")
        .unwrap()
        .contains("between 1 and 1000"));
    // A change the form does not offer changes nothing (it added people).
    let bad = demo
        .submit(
            &browser,
            &panel,
            &format!("{panel}/membership"),
            &[
                ("cohort", "2301456:51290"),
                ("change", "explode"),
                ("count", "3"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(element_text(&bad, "form-error")
        .unwrap()
        .contains("join or leave"));

    // A member sees the panel but cannot run the owner's syncs nor change the simulated
    // cohorts: cohort sync is the owners' (a member ran it: found by the demo review).
    let members = format!("{}/members", demo.project);
    let invited = demo
        .submit(
            &browser,
            &members,
            &members,
            &[("email", "bob@example.com")],
        )
        .await;
    let link = element_text(&invited.text().await.unwrap(), "invite-link").unwrap();
    let invitation = link.strip_prefix(&demo.url).unwrap().to_owned();
    let bob = client();
    let joined = demo
        .submit(
            &bob,
            &invitation,
            &invitation,
            &[("password", "bobs own password")],
        )
        .await;
    assert_eq!(location(&joined), "/");
    for (action, fields) in [
        (
            "destinations",
            vec![
                ("cohort", "2301456:51290"),
                ("webhook_url", webhook.as_str()),
                ("username", "mixpanel"),
                ("secret", "a guess"),
            ],
        ),
        ("sync", vec![("destination", destination.as_str())]),
        (
            "membership",
            vec![
                ("cohort", "2301456:51290"),
                ("change", "remove"),
                ("count", "1"),
            ],
        ),
    ] {
        let refused = demo
            .submit(&bob, &panel, &format!("{panel}/{action}"), &fields)
            .await;
        assert_eq!(refused.status().as_u16(), 403, "{action}");
    }
    let audiences = demo
        .page(&browser, &format!("{}/audiences", demo.project))
        .await;
    assert!(audiences.contains("<td>2995</td>"));

    // The printed public key works against the SDK API, as the printed curl does.
    let config = browser
        .get(format!("{}/sdk/v1/config?reference_id=ref_2", demo.url))
        .bearer_auth(&demo.public_key)
        .send()
        .await
        .unwrap();
    assert_eq!(config.status().as_u16(), 200);

    let mut demo = demo;
    demo.stop();
    assert!(
        !std::path::Path::new(&demo.directory).exists(),
        "the demo's data is removed when it stops"
    );
}

/// In a container the demo listens on every interface, at an address typed for it (it
/// refused, telling to set UJ_PUBLIC_URL, which it ignores: found by the demo review).
#[tokio::test]
async fn the_demo_serves_at_a_public_url_typed_for_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let typed = format!("http://127.0.0.1:{port}");
    let demo = demo::start_with(&["--bind", &format!("0.0.0.0:{port}"), "--public-url", &typed]);
    assert_eq!(demo.url, typed);
    let login = client().get(format!("{typed}/login")).send().await.unwrap();
    assert_eq!(login.status().as_u16(), 200);
}

#[tokio::test]
async fn the_demo_panel_exists_only_in_the_demo() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project = app.set_up(&browser, "ada@example.com", "Shop").await;
    let (status, _) = app.page(&browser, &format!("{project}/demo")).await;
    assert_eq!(status, 404);
    let (_, html) = app.page(&browser, &project).await;
    assert!(!html.contains("nav-demo"));
}

//! The dashboard over HTTP, as a browser without JavaScript uses it: first-run setup,
//! sessions, CSRF, sign-in throttling, API key pages, projects and invitations.

mod helpers;

use helpers::{client, csrf_token, element_text, input_value, location, TestApp};

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn a_fresh_server_leads_to_setup_which_creates_the_owner_and_project_once() {
    let app = TestApp::spawn().await;
    let browser = client();
    let home = browser.get(app.url("/")).send().await.unwrap();
    assert_eq!(
        (home.status().as_u16(), location(&home)),
        (303, "/setup".to_owned())
    );
    assert_eq!(
        app.page(&browser, "/login").await.0,
        303,
        "no login before setup"
    );

    let project_path = app.set_up(&browser, "Ada@Example.com", "Shop").await;
    let (status, overview) = app.page(&browser, &project_path).await;
    assert_eq!(status, 200);
    assert_eq!(
        element_text(&overview, "project-name").as_deref(),
        Some("Shop")
    );
    let public_key = element_text(&overview, "public-key").unwrap();
    assert!(public_key.starts_with("uj_pk_"));
    assert!(
        overview.contains("ada@example.com"),
        "the email is normalised"
    );

    // Setup is closed now, for everyone.
    let stranger = client();
    let again = app.page(&stranger, "/setup").await;
    assert_eq!(again.0, 303);
    let home = app.client.get(app.url("/setup")).send().await.unwrap();
    assert_eq!(
        home.headers()["location"],
        "/",
        "home: the project once signed in, else sign-in"
    );
    let response = app
        .submit(
            &stranger,
            "/login",
            "/setup",
            &[
                ("email", "eve@example.com"),
                ("password", PASSWORD),
                ("project_name", "Evil"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/login");
    assert_eq!(
        app.login(&stranger, "eve@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        401
    );
}

/// Pages name an icon the server serves, the respondents' too: without one, browsers asked
/// for `/favicon.ico` and logged its 404 on every page (found by the web SDK probe).
#[tokio::test]
async fn pages_name_an_icon_that_is_served() {
    let app = TestApp::spawn().await;
    let client = helpers::client();
    for path in ["/setup", "/i/unknowncode1"] {
        let response = client.get(app.url(path)).send().await.unwrap();
        let html = response.text().await.unwrap();
        assert!(
            html.contains(r#"<link rel="icon" href="/static/icon.svg""#),
            "{path}: {html}"
        );
    }
    let icon = client
        .get(app.url("/static/icon.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status().as_u16(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().starts_with("<svg"));
}

#[tokio::test]
async fn setup_with_invalid_fields_says_what_to_fix_and_keeps_the_input() {
    let app = TestApp::spawn().await;
    let browser = client();
    let response = app
        .submit(
            &browser,
            "/setup",
            "/setup",
            &[
                ("email", "ada@example.com"),
                ("password", "short"),
                ("project_name", "Shop"),
            ],
        )
        .await;
    assert_eq!(response.status().as_u16(), 422);
    let html = response.text().await.unwrap();
    // By the field's label, and said below the field, which is marked and focused.
    assert!(element_text(&html, "form-error")
        .unwrap()
        .starts_with("Password: must be at least 10 characters"));
    assert!(html.contains(r#"autocomplete="new-password" minlength="10" required aria-invalid="true" aria-describedby="field-error" autofocus>"#));
    assert!(element_text(&html, "field-error").is_some());
    assert!(html.contains(r#"value="ada@example.com""#));
    let unnamed = app
        .submit(
            &browser,
            "/setup",
            "/setup",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("project_name", " "),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(element_text(&unnamed, "form-error")
        .unwrap()
        .starts_with("Project name: must not be empty"));
    assert!(unnamed.contains(r#"placeholder="My app" aria-invalid="true""#));
    assert_eq!(
        app.page(&browser, "/setup").await.0,
        200,
        "still not set up"
    );
}

/// A form whose fields are not UTF-8 (a script posting Latin-1) is refused, not stored with
/// U+FFFD in place of its bytes (found by the dashboard parity sweep).
#[tokio::test]
async fn a_form_that_is_not_utf8_is_refused() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project = app.set_up(&browser, "ada@example.com", "Shop").await;
    let studies = format!("{project}/studies");
    let (_, html) = app.page(&browser, &studies).await;
    let token = csrf_token(&html);
    let post = |name: &'static str| {
        browser
            .post(app.url(&studies))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf_token={token}&name={name}&interview_url=https%3A%2F%2Fr.example.com%2Fi&launch_mode=in_app"
            ))
            .send()
    };
    for latin1 in ["Caf%E9", "%FF%FE"] {
        let refused = post(latin1).await.unwrap();
        assert_eq!(refused.status().as_u16(), 400, "{latin1}");
        assert!(refused.text().await.unwrap().contains("not UTF-8"));
    }
    let (_, html) = app.page(&browser, &studies).await;
    assert!(!html.contains('\u{fffd}'), "nothing stored");
    // The same in UTF-8 is a study.
    let created = post("Caf%C3%A9").await.unwrap();
    assert_eq!(created.status().as_u16(), 303);
}

/// A NUL (`%00`) is in no field of a form: the form is refused as such, and nothing is
/// stored (PostgreSQL cannot store one in text; SQLite would).
#[tokio::test]
async fn a_form_with_a_nul_is_refused() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project = app.set_up(&browser, "ada@example.com", "Shop").await;
    let studies = format!("{project}/studies");
    let (_, html) = app.page(&browser, &studies).await;
    let token = csrf_token(&html);
    let refused = browser
        .post(app.url(&studies))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf_token={token}&name=Check%00out&interview_url=https%3A%2F%2Fr.example.com%2Fi&launch_mode=in_app"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.text().await.unwrap().contains("NUL character"));
    assert_eq!(app.count_sql("SELECT COUNT(*) FROM studies").await, 0);
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused_with_403() {
    let app = TestApp::spawn().await;
    let browser = client();
    app.page(&browser, "/setup").await;
    let fields = [
        ("email", "ada@example.com"),
        ("password", PASSWORD),
        ("project_name", "Shop"),
    ];
    let missing = browser
        .post(app.url("/setup"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 403);
    assert!(missing.text().await.unwrap().contains("Form expired"));

    // A token minted for another browser does not work in this one.
    let other = client();
    let (_, html) = app.page(&other, "/setup").await;
    let foreign = csrf_token(&html);
    let mut form = vec![("csrf_token", foreign.as_str())];
    form.extend_from_slice(&fields);
    let forged = browser
        .post(app.url("/setup"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    // A body no page's form sends is refused as such, not as an expired form (found by
    // the HTTP probe).
    let mut fields = vec![(
        "csrf_token",
        csrf_token(&app.page(&browser, "/setup").await.1),
    )];
    fields.extend(form[1..].iter().map(|(k, v)| (*k, v.to_string())));
    for kind in [
        "application/json",
        "multipart/form-data; boundary=x",
        "text/plain",
    ] {
        let body = serde_urlencoded::to_string(&fields).unwrap();
        let refused = browser
            .post(app.url("/setup"))
            .header("content-type", kind)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 415, "{kind}");
        assert!(
            refused.text().await.unwrap().contains("Not a form"),
            "{kind}"
        );
    }
    assert_eq!(
        app.page(&browser, "/setup").await.0,
        200,
        "nothing was created"
    );
}

#[tokio::test]
async fn session_cookies_are_http_only_and_same_site_lax() {
    let app = TestApp::spawn().await;
    let browser = client();
    let response = app
        .submit(
            &browser,
            "/setup",
            "/setup",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("project_name", "Shop"),
            ],
        )
        .await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("uj_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http in tests: {cookie}");
    // Plain http (local development): HSTS would be ignored, or pin a local name to https.
    assert!(response
        .headers()
        .get("strict-transport-security")
        .is_none());
}

/// Behind HTTPS the cookies are named `__Host-…`, which browsers take only from this very
/// host (`Secure`, `Path=/`, no `Domain`): a sibling subdomain cannot plant a session or a
/// CSRF binding of its choosing, and a cookie of the plain name is not read. Answers tell
/// browsers to come back over HTTPS only (HSTS), without binding the subdomains. (The cookies
/// were `uj_session` and `uj_csrf`, which any sibling subdomain could set, and no HSTS was
/// sent.)
#[tokio::test]
async fn behind_https_cookies_are_host_only_and_browsers_keep_to_https() {
    let app =
        TestApp::spawn_with(|config| config.public_url = Some("https://uj.example.com".into()))
            .await;
    let browser = client();
    let response = browser.get(app.url("/setup")).send().await.unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-uj_csrf="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    let token = csrf_token(&response.text().await.unwrap());
    let set_up = browser
        .post(app.url("/setup"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
            ("project_name", "Shop"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(set_up.status().as_u16(), 303);
    let project = location(&set_up);
    let session = set_up
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-uj_session="))
        .and_then(|v| v.split(';').next())
        .expect("a __Host- session cookie")
        .to_owned();
    assert_eq!(app.page(&browser, &project).await.0, 200, "signed in");

    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let with_cookie = |cookie: String| bare.get(app.url(&project)).header("cookie", cookie).send();
    let planted = with_cookie(format!("uj_session={session}")).await.unwrap();
    assert_eq!(
        (planted.status().as_u16(), location(&planted)),
        (303, "/login".to_owned()),
        "a cookie of the plain name is not read"
    );
    let host_only = with_cookie(format!("__Host-uj_session={session}"))
        .await
        .unwrap();
    assert_eq!(host_only.status().as_u16(), 200);
    // A planted CSRF cookie binds nothing: the browser is issued one of its own.
    let login = bare
        .get(app.url("/login"))
        .header("cookie", "uj_csrf=planted-by-a-sibling")
        .send()
        .await
        .unwrap();
    assert!(login
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("__Host-uj_csrf=")));
}

/// Pages and API answers carry the security headers with their exact values, not merely
/// some value: a weaker policy (framing allowed, scripts from anywhere) would pass a test
/// of presence (found by the mutation audit).
#[tokio::test]
async fn pages_and_api_answers_carry_the_security_headers_as_set() {
    let app = TestApp::spawn().await;
    let page = client().get(app.url("/setup")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let api = client()
        .get(app.url("/api/v1/project"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 401);
    for answer in [&page, &api] {
        for (name, value) in [
            (
                "content-security-policy",
                "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(answer.headers()[name], value, "{name} of {}", answer.url());
        }
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.set_up(&client(), "ada@example.com", "Shop").await;
    let wrong = app
        .login(&client(), "ada@example.com", "not the password")
        .await;
    let unknown = app.login(&client(), "nobody@example.com", PASSWORD).await;
    assert_eq!(wrong.status().as_u16(), 401);
    assert_eq!(unknown.status().as_u16(), 401);
    let (wrong, unknown) = (wrong.text().await.unwrap(), unknown.text().await.unwrap());
    // The address typed stays in its field: only the password is typed again.
    let typed = |html: &str| {
        let field = html.split(r#"id="email""#).nth(1)?.split('>').next()?;
        Some(
            field
                .split(r#"value=""#)
                .nth(1)?
                .split('"')
                .next()?
                .to_owned(),
        )
    };
    assert_eq!(typed(&wrong).as_deref(), Some("ada@example.com"));
    assert_eq!(typed(&unknown).as_deref(), Some("nobody@example.com"));
    let wrong = element_text(&wrong, "form-error");
    let unknown = element_text(&unknown, "form-error");
    assert!(wrong.is_some());
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn sign_in_is_throttled_after_repeated_failures() {
    let app = TestApp::spawn().await;
    app.set_up(&client(), "ada@example.com", "Shop").await;
    let browser = client();
    for _ in 0..5 {
        assert_eq!(
            app.login(&browser, "ada@example.com", "guess guess guess")
                .await
                .status()
                .as_u16(),
            401
        );
    }
    let throttled = app.login(&browser, "ada@example.com", PASSWORD).await;
    assert_eq!(
        throttled.status().as_u16(),
        429,
        "even the right password waits"
    );
    // When, for a client too (it was said on the page alone).
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&wait), "{wait}");
    assert!(throttled.text().await.unwrap().contains("Try again in"));
}

/// Strangers' failures do not lock out a browser that signed in to the account before
/// (found by the accounts probe: five wrong passwords from anywhere kept the owner from
/// signing in, and from changing the password, for 15 minutes); the address stays locked
/// for everyone else, and the device cookie helps no other address.
#[tokio::test]
async fn failures_from_elsewhere_do_not_lock_out_a_browser_that_signed_in_before() {
    let app = TestApp::spawn().await;
    let owner = client();
    app.set_up(&owner, "ada@example.com", "Shop").await;
    let stranger = client();
    for address in ["ada@example.com", "bob@example.com"] {
        for _ in 0..5 {
            let guess = app.login(&stranger, address, "guess guess guess").await;
            assert_eq!(guess.status().as_u16(), 401);
        }
    }
    let locked = app.login(&stranger, "ada@example.com", PASSWORD).await;
    assert_eq!(locked.status().as_u16(), 429);
    // The owner's session changes the password: its own window.
    let changed = app
        .submit(
            &owner,
            "/account",
            "/account",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a new long password"),
            ],
        )
        .await;
    assert_eq!(
        (changed.status().as_u16(), location(&changed)),
        (303, "/account?changed=1".to_owned())
    );
    let (_, html) = app.page(&owner, "/account").await;
    let logout = owner
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf_token(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&logout), "/login");
    let back = app
        .login(&owner, "ada@example.com", "a new long password")
        .await;
    assert_eq!(
        (back.status().as_u16(), location(&back)),
        (303, "/".to_owned())
    );
    // The address is still locked for the stranger, and the owner's cookie is for Ada only.
    let still = app
        .login(&stranger, "ada@example.com", "a new long password")
        .await;
    assert_eq!(still.status().as_u16(), 429);
    let bob = app.login(&owner, "bob@example.com", PASSWORD).await;
    assert_eq!(bob.status().as_u16(), 429);
}

/// An address is one account however its letters were composed or how wide they were
/// typed (found by the accounts probe: `zoe\u{308}` and `zoë`, `ｂob` and `bob` were
/// accounts side by side); an account stored before that still signs in as typed then.
#[tokio::test]
async fn lookalike_spellings_of_an_address_are_one_account() {
    let app = TestApp::spawn().await;
    let owner = client();
    let shop = app.set_up(&owner, "zoe\u{308}@example.com", "Shop").await;
    let signed_in = app.login(&client(), "ZO\u{cb}@example.com", PASSWORD).await;
    assert_eq!(location(&signed_in), "/");
    let members = format!("{shop}/members");
    let invited = app
        .submit(
            &owner,
            &members,
            &members,
            &[("email", "\u{ff5a}o\u{eb}@example.com")],
        )
        .await;
    let html = invited.text().await.unwrap();
    assert!(!html.contains("invite-link"), "{html}");
    // A row as an older server stored it, decomposed.
    app.execute_sql("UPDATE accounts SET email = 'zoe\u{308}@example.com'")
        .await;
    let signed_in = app
        .login(&client(), "zoe\u{308}@example.com", PASSWORD)
        .await;
    assert_eq!(location(&signed_in), "/");
}

/// A client whose only cookie is this device cookie.
fn browser_with_device(app: &TestApp, value: &str) -> reqwest::Client {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(
        &format!("uj_device={value}; Path=/"),
        &app.url("/").parse().unwrap(),
    );
    reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the cookie `name` an answer sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("{name} is set"))
        .to_owned()
}

/// A device cookie helps only as it was made, under the password it was made with: one
/// altered, or kept from before a password change (by someone who knew the old one), is a
/// stranger's browser (found by the session's review: cookies gathered before a change gave
/// five tries each after it).
#[tokio::test]
async fn a_device_cookie_altered_or_from_before_a_password_change_helps_no_one() {
    let app = TestApp::spawn().await;
    let owner = client();
    app.set_up(&owner, "ada@example.com", "Shop").await;
    let kept = app.login(&client(), "ada@example.com", PASSWORD).await;
    let device = set_cookie(&kept, "uj_device");
    let stranger = client();
    for _ in 0..5 {
        let guess = app
            .login(&stranger, "ada@example.com", "guess guess guess")
            .await;
        assert_eq!(guess.status().as_u16(), 401);
    }
    let mut altered = device.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == '0' { '1' } else { '0' });
    let signed_in = |value: String, password: &'static str| {
        let app = &app;
        async move {
            let browser = browser_with_device(app, &value);
            let answer = app.login(&browser, "ada@example.com", password).await;
            answer.status().as_u16()
        }
    };
    assert_eq!(signed_in(altered, PASSWORD).await, 429);
    assert_eq!(signed_in(device.clone(), PASSWORD).await, 303);
    let changed = app
        .submit(
            &owner,
            "/account",
            "/account",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a new long password"),
            ],
        )
        .await;
    assert_eq!(location(&changed), "/account?changed=1");
    assert_eq!(signed_in(device, "a new long password").await, 429);
}

/// Accounts stored before addresses were put in their compatibility form keep their
/// spelling then: one beside an account of the other spelling signs in with its own
/// password, and one invited to a project is found, and joins (found by the upgrade probe:
/// the other account's password was checked and refused, and the invitation went to a new
/// address the signed-in account could not join).
#[tokio::test]
async fn accounts_stored_under_an_older_spelling_sign_in_and_join_as_before() {
    let app = TestApp::spawn().await;
    let owner = client();
    let shop = app.set_up(&owner, "owner@example.com", "Shop").await;
    // Two accounts as an older release stored them: `ﬁona@` (a ligature) and `fiona@`.
    let members = format!("{shop}/members");
    for address in ["fiona@example.com", "carl@example.com"] {
        let invited = app
            .submit(&owner, &members, &members, &[("email", address)])
            .await;
        let link = element_text(&invited.text().await.unwrap(), "invite-link").unwrap();
        let path = link.strip_prefix(&app.address).unwrap().to_owned();
        let password = format!("{address} password");
        let joined = app
            .submit(&client(), &path, &path, &[("password", password.as_str())])
            .await;
        assert_eq!(location(&joined), "/");
    }
    app.execute_sql(
        "UPDATE accounts SET email = '\u{fb01}ona@example.com' WHERE email = 'carl@example.com'",
    )
    .await;
    let ligature = app
        .login(
            &client(),
            "\u{fb01}ona@example.com",
            "carl@example.com password",
        )
        .await;
    assert_eq!(location(&ligature), "/");
    let plain = app
        .login(&client(), "fiona@example.com", "fiona@example.com password")
        .await;
    assert_eq!(location(&plain), "/");
    // Removed from the project, then invited again as typed then: the same account joins.
    app.execute_sql(
        "DELETE FROM project_members WHERE account_id = \
         (SELECT id FROM accounts WHERE email = '\u{fb01}ona@example.com')",
    )
    .await;
    let invited = app
        .submit(
            &owner,
            &members,
            &members,
            &[("email", "\u{fb01}ona@example.com")],
        )
        .await;
    let html = invited.text().await.unwrap();
    assert!(html.contains("\u{fb01}ona@example.com"), "{html}");
    let link = element_text(&html, "invite-link").unwrap();
    let path = link.strip_prefix(&app.address).unwrap().to_owned();
    let carl = client();
    let signed_in = app
        .login(
            &carl,
            "\u{fb01}ona@example.com",
            "carl@example.com password",
        )
        .await;
    assert_eq!(location(&signed_in), "/");
    let joined = app.submit(&carl, &path, &path, &[]).await;
    assert_eq!(joined.status().as_u16(), 303, "the signed-in account joins");
    assert_eq!(app.count_sql("SELECT COUNT(*) FROM accounts").await, 3);
    // The address names both: Carl's device cookie is no window of his own there, or his
    // guesses at Fiona's password would have one (found by the second review).
    for _ in 0..5 {
        let guess = app
            .login(&carl, "\u{fb01}ona@example.com", "guess guess guess")
            .await;
        assert_eq!(guess.status().as_u16(), 401);
    }
    let locked = app
        .login(
            &carl,
            "\u{fb01}ona@example.com",
            "carl@example.com password",
        )
        .await;
    assert_eq!(locked.status().as_u16(), 429);
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    // No signed-in page is kept by a cache: Back after signing out shows none of them.
    for path in [
        project_path.clone(),
        format!("{project_path}/studies"),
        "/account".to_owned(),
    ] {
        let page = browser.get(app.url(&path)).send().await.unwrap();
        assert_eq!(page.headers()["cache-control"], "no-store", "{path}");
    }
    // Tabs of two projects tell apart: a project's pages name it in their title.
    let (_, studies) = app.page(&browser, &format!("{project_path}/studies")).await;
    assert!(
        studies.contains("<title>Studies · Shop · UserJourneys</title>"),
        "{studies}"
    );
    assert!(studies.contains(r##"<a class="skip" href="#content">"##));
    let (_, html) = app.page(&browser, &project_path).await;
    let token = csrf_token(&html);

    // Keep a copy of the session cookie, as a thief would.
    let response = app.login(&client(), "ada@example.com", PASSWORD).await;
    assert_eq!(response.status().as_u16(), 303);

    let logout = browser
        .post(app.url("/logout"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&logout), "/login");
    let after = browser.get(app.url(&project_path)).send().await.unwrap();
    assert_eq!(
        (after.status().as_u16(), location(&after)),
        (303, "/login".to_owned())
    );

    let back = app.login(&browser, "ada@example.com", PASSWORD).await;
    assert_eq!(location(&back), "/");
    let home = browser.get(app.url("/")).send().await.unwrap();
    assert_eq!(location(&home), project_path);
}

/// A person changes their password on the account page, given the current one; every other
/// browser (a stolen session too) is signed out, this one stays signed in.
#[tokio::test]
async fn a_password_change_signs_out_every_other_browser() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let other = client();
    assert_eq!(
        app.login(&other, "ada@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        303
    );
    let (status, html) = app.page(&browser, "/account").await;
    assert_eq!(status, 200);
    assert_eq!(
        element_text(&html, "account-email").as_deref(),
        Some("ada@example.com")
    );
    for (current, new, said) in [
        (
            "not my password",
            "a brand new password",
            "Current password: ",
        ),
        (PASSWORD, "short", "New password: must be at least 10"),
    ] {
        let refused = app
            .submit(
                &browser,
                "/account",
                "/account",
                &[("current_password", current), ("new_password", new)],
            )
            .await;
        assert_eq!(refused.status().as_u16(), 422);
        let html = refused.text().await.unwrap();
        let error = element_text(&html, "form-error").unwrap();
        assert!(error.starts_with(said), "{error}");
        // Beside the field at fault.
        let field = if said.starts_with("Current") {
            "current_password"
        } else {
            "new_password"
        };
        assert!(html.contains(&format!(r#"id="{field}" name="{field}""#)));
        let marked = html.split(&format!(r#"id="{field}""#)).nth(1).unwrap();
        assert!(
            marked
                .split('>')
                .next()
                .unwrap()
                .contains(r#"aria-invalid="true""#),
            "{field}"
        );
    }
    assert_eq!(
        app.page(&other, &project_path).await.0,
        200,
        "nothing changed yet"
    );

    let changed = app
        .submit(
            &browser,
            "/account",
            "/account",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(location(&changed), "/account?changed=1");
    let (_, html) = app.page(&browser, "/account?changed=1").await;
    assert!(element_text(&html, "notice")
        .unwrap()
        .contains("Password changed"));
    assert_eq!(
        app.page(&browser, &project_path).await.0,
        200,
        "still signed in here"
    );
    let elsewhere = other.get(app.url(&project_path)).send().await.unwrap();
    assert_eq!(location(&elsewhere), "/login", "signed out elsewhere");
    assert_eq!(
        app.login(&client(), "ada@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        app.login(&client(), "ada@example.com", "a brand new password")
            .await
            .status()
            .as_u16(),
        303
    );
    // Two changes at once from two browsers, both given the current password: one wins,
    // the other is told, and the winner's password is the one that works. (Both were told
    // "changed", and one of them was then locked out.)
    let first = client();
    let second = client();
    for browser in [&first, &second] {
        let signed_in = app
            .login(browser, "ada@example.com", "a brand new password")
            .await;
        assert_eq!(signed_in.status().as_u16(), 303);
    }
    let app = &app;
    let change = |browser, new: &'static str| async move {
        let fields = [
            ("current_password", "a brand new password"),
            ("new_password", new),
        ];
        app.submit(browser, "/account", "/account", &fields).await
    };
    let (a, b) = tokio::join!(
        change(&first, "first browser's password"),
        change(&second, "second browser's password")
    );
    let outcomes = [a.status().as_u16(), b.status().as_u16()];
    assert!(
        outcomes == [303, 422] || outcomes == [422, 303],
        "{outcomes:?}"
    );
    let winner = match outcomes[0] {
        303 => "first browser's password",
        _ => "second browser's password",
    };
    assert_eq!(
        app.login(&client(), "ada@example.com", winner)
            .await
            .status()
            .as_u16(),
        303
    );
}

/// Guessing the current password on the account page is slowed as at sign-in: after five
/// wrong ones the next waits, the right one too. A new password refused (too short) after
/// the right current one is no guess, however often it is sent.
#[tokio::test]
async fn guessing_the_current_password_is_throttled_but_a_refused_new_one_is_no_guess() {
    let app = TestApp::spawn().await;
    let browser = client();
    app.set_up(&browser, "ada@example.com", "Shop").await;
    let (app, browser) = (&app, &browser);
    let change = |current: &'static str, new: &'static str| async move {
        let fields = [("current_password", current), ("new_password", new)];
        app.submit(browser, "/account", "/account", &fields).await
    };
    for _ in 0..6 {
        let refused = change(PASSWORD, "short").await;
        assert_eq!(refused.status().as_u16(), 422);
    }
    let changed = change(PASSWORD, "a brand new password").await;
    assert_eq!(location(&changed), "/account?changed=1");
    for _ in 0..5 {
        let refused = change("a wrong guess", "another new password").await;
        assert_eq!(refused.status().as_u16(), 422);
    }
    let throttled = change("a brand new password", "another new password").await;
    assert_eq!(
        throttled.status().as_u16(),
        429,
        "even the right password waits"
    );
    assert!(throttled.headers().contains_key("retry-after"));
    assert!(throttled.text().await.unwrap().contains("Try again in"));
    assert_eq!(
        app.login(&client(), "ada@example.com", "a brand new password")
            .await
            .status()
            .as_u16(),
        303,
        "the password did not change"
    );
}

#[tokio::test]
async fn api_keys_page_shows_a_new_secret_once_and_revokes_it() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys_path = format!("{project_path}/api-keys");

    let created = app
        .submit(
            &browser,
            &keys_path,
            &keys_path,
            &[("name", "Backend <prod>")],
        )
        .await;
    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    let secret = element_text(&html, "new-secret-value").expect("the secret is shown");
    assert!(secret.starts_with("uj_live_"));
    assert!(html.contains("Backend &#60;prod&#62;"), "names are escaped");
    assert!(!html.contains("<prod>"));

    // The key works, and the page never shows it again.
    let project = app
        .client
        .get(app.url("/api/v1/project"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(project.status().as_u16(), 200);
    let (_, listing) = app.page(&browser, &keys_path).await;
    assert!(!listing.contains(&secret));
    assert!(listing.contains(&secret[..14]), "listed by prefix");
    assert!(listing.contains("by ada@example.com"), "said who made it");
    // Revoking asks about this key by its name and prefix.
    assert!(
        listing.contains(&format!(
            "Revoke “Backend &#60;prod&#62;” ({}…)?",
            &secret[..14]
        )),
        "{listing}"
    );

    let key_id = listing
        .split(r#"data-key-id=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let revoke_path = format!("{keys_path}/{key_id}/revoke");
    // Without JavaScript's dialog, the button leads to a confirmation page first.
    let asked = app.submit(&browser, &keys_path, &revoke_path, &[]).await;
    assert_eq!(asked.status().as_u16(), 200);
    let asked = asked.text().await.unwrap();
    assert!(asked.contains("Revoke this key?"), "{asked}");
    // Which key, as the dialog says (it did not).
    assert!(
        asked.contains(&format!(
            "“Backend &#60;prod&#62;” ({}…): requests using it will fail at once.",
            &secret[..14]
        )),
        "{asked}"
    );
    // Of an unknown key, nothing is asked.
    let unknown = app
        .submit(
            &browser,
            &keys_path,
            &format!("{keys_path}/sk_unknown/revoke"),
            &[],
        )
        .await;
    assert_eq!(unknown.status().as_u16(), 404);
    assert_eq!(
        app.get("/api/v1/project", &secret).await.status().as_u16(),
        200,
        "not revoked before it is confirmed"
    );
    let form = [
        ("csrf_token", csrf_token(&asked)),
        ("confirmed", input_value(&asked, "confirmed")),
    ];
    let revoked = browser
        .post(app.url(&revoke_path))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&revoked), keys_path);
    let project = app
        .client
        .get(app.url("/api/v1/project"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(project.status().as_u16(), 401);
    // Said with when (it said "Revoked" alone).
    let (_, listing) = app.page(&browser, &keys_path).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(listing.contains(&format!("Revoked {today}")), "{listing}");
}

/// The HTML of the element `id` opens, up to the first `</{tag}>` after it.
fn element_html<'a>(html: &'a str, id: &str, tag: &str) -> Option<&'a str> {
    let start = html.find(&format!(r#"id="{id}""#))?;
    let end = html[start..].find(&format!("</{tag}>"))? + start;
    Some(&html[start..end])
}

/// A form of one name field as `page` offers it: its CSRF token and form key, and `name`.
fn name_form(page: &str, name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("csrf_token", csrf_token(page)),
        ("form_key", input_value(page, "form_key")),
        ("name", name.to_owned()),
    ]
}

/// The API keys form sent again (the page that showed a new secret reloaded, a double click)
/// makes no second key: the answer names the key the form made, says its secret was shown
/// once and what to do if it was not copied, and shows no secret; the same form sent twice at
/// once makes one key too; a fresh form makes another (each send made a key).
#[tokio::test]
async fn the_api_key_form_sent_again_makes_no_second_key() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys_path = format!("{project_path}/api-keys");
    let keys = || app.count_sql("SELECT COUNT(*) FROM secret_keys");
    let post =
        |form: Vec<(&'static str, String)>| browser.post(app.url(&keys_path)).form(&form).send();
    let (_, page) = app.page(&browser, &keys_path).await;
    let form = name_form(&page, "Backend");
    let first = post(form.clone()).await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first = first.text().await.unwrap();
    let secret = element_text(&first, "new-secret-value").expect("the secret is shown");
    assert_eq!(keys().await, 1);

    let again = post(form.clone()).await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.headers()["cache-control"], "no-store");
    let again = again.text().await.unwrap();
    assert_eq!(keys().await, 1, "no second key");
    assert!(!again.contains(&secret), "no secret: {again}");
    assert!(element_text(&again, "new-secret-value").is_none());
    let said = element_html(&again, "made-already", "div").expect("says it was made");
    assert!(said.contains("<strong>Backend</strong>"), "{said}");
    assert!(said.contains(&format!("({}…)", &secret[..14])), "{said}");
    assert!(said.contains("its secret was shown then, once"), "{said}");
    assert!(
        said.contains("revoke it below and create another"),
        "{said}"
    );
    assert!(
        said.contains(&format!(r#"href="{keys_path}" id="keys-list""#)),
        "{said}"
    );
    // The same form with another name was not the first request: nothing made, said so.
    let mut edited = form.clone();
    edited[2].1 = "Other".to_owned();
    let refused = post(edited).await.unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("sent already"), "{refused}");
    assert_eq!(keys().await, 1);

    // The page that says so has a fresh form, which makes another key; so does the list.
    assert_ne!(input_value(&again, "form_key"), form[1].1);
    let another = post(name_form(&again, "Backend")).await.unwrap();
    assert_eq!(another.status().as_u16(), 201);
    assert_eq!(keys().await, 2);

    // Sent several times at once: one key, one answer with its secret.
    let (_, page) = app.page(&browser, &keys_path).await;
    let form = name_form(&page, "Worker");
    let sent = (0..8).map(|_| post(form.clone()));
    let mut statuses: Vec<u16> = futures::future::join_all(sent)
        .await
        .into_iter()
        .map(|answer| answer.unwrap().status().as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201]);
    assert_eq!(keys().await, 3);
}

#[tokio::test]
async fn a_key_past_the_projects_cap_is_refused_on_the_page_with_what_to_do() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys_path = format!("{project_path}/api-keys");
    // A name refused keeps what was typed, and is said by its label (the field came back
    // empty, the message named the API's field; found by the dashboard parity sweep).
    // A paste of 20,000 characters too, answered by the field's bound (it was a bare 413
    // page, the form gone).
    for long in ["k".repeat(300), "k".repeat(20_000)] {
        let refused = app
            .submit(&browser, &keys_path, &keys_path, &[("name", &long)])
            .await;
        assert_eq!(refused.status().as_u16(), 422);
        let html = refused.text().await.unwrap();
        assert!(
            element_text(&html, "form-error")
                .unwrap()
                .starts_with("Name: must be at most"),
            "{html}"
        );
        assert_eq!(input_value(&html, "name"), long);
    }
    for n in 0..100 {
        let name = format!("key {n}");
        let created = app
            .submit(&browser, &keys_path, &keys_path, &[("name", &name)])
            .await;
        assert_eq!(created.status().as_u16(), 201);
    }
    let refused = app
        .submit(&browser, &keys_path, &keys_path, &[("name", "one more")])
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let html = refused.text().await.unwrap();
    assert!(element_text(&html, "new-secret-value").is_none());
    assert!(
        html.contains("This project has 100 unrevoked secret keys, and may have 100: revoke one no longer used"),
        "{html}"
    );
    let active = "SELECT COUNT(*) FROM secret_keys WHERE revoked_at IS NULL";
    assert_eq!(app.count_sql(active).await, 100);
    // A revoked key stays listed: with one more made in its place, the page lists 100 and
    // links to the rest.
    let (_, html) = app.page(&browser, &keys_path).await;
    assert!(!html.contains("keys-more"), "100 keys: one page");
    let revoke = form_action(&html, "/revoke").expect("a revoke button");
    let revoked = app
        .submit(&browser, &keys_path, &revoke, &[("confirmed", "yes")])
        .await;
    assert_eq!(location(&revoked), keys_path);
    let created = app
        .submit(&browser, &keys_path, &keys_path, &[("name", "one more")])
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let (_, first) = app.page(&browser, &keys_path).await;
    let more = first
        .split(r#"id="keys-more" href=""#)
        .nth(1)
        .expect("a link to the rest")
        .split('"')
        .next()
        .unwrap()
        .replace("&#61;", "=")
        .replace("&#63;", "?");
    let (status, second) = app.page(&browser, &more).await;
    assert_eq!(status, 200, "{more}");
    let rows = |html: &str| html.matches("data-key-id=").count();
    assert_eq!((rows(&first), rows(&second)), (100, 1), "{more}");
    assert!(second.contains(r#"id="keys-first""#) && !second.contains("keys-more"));
}

#[tokio::test]
async fn the_public_key_can_be_rotated_from_the_page() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys_path = format!("{project_path}/api-keys");
    let (_, before) = app.page(&browser, &keys_path).await;
    let old = element_text(&before, "public-key").unwrap();
    let rotate = format!("{project_path}/public-key/rotate");
    // Without JavaScript's dialog, the button leads to a confirmation page first.
    let asked = app.submit(&browser, &keys_path, &rotate, &[]).await;
    let asked = asked.text().await.unwrap();
    assert!(asked.contains("Rotate the public key?"), "{asked}");
    let (_, unchanged) = app.page(&browser, &keys_path).await;
    assert_eq!(element_text(&unchanged, "public-key").unwrap(), old);
    app.submit(&browser, &keys_path, &rotate, &[("confirmed", "yes")])
        .await;
    let (_, after) = app.page(&browser, &keys_path).await;
    let new = element_text(&after, "public-key").unwrap();
    assert!(new.starts_with("uj_pk_") && new != old);
}

/// The rotate button pressed twice at once (a double click, two tabs) rotates the key once
/// or twice, never answers an error: each press leads back to the page, which shows the key
/// that works. A press whose rotation lost to the other (it read the same key) did nothing
/// more to do.
#[tokio::test]
async fn rotating_the_public_key_twice_at_once_leads_to_the_key_that_works() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys_path = format!("{project_path}/api-keys");
    let (_, before) = app.page(&browser, &keys_path).await;
    let old = element_text(&before, "public-key").unwrap();
    let token = csrf_token(&before);
    let project = project_path.trim_start_matches("/p/");
    let lock = helpers::ProjectsLocked::take(&app, project).await;
    let press = || {
        browser
            .post(app.url(&format!("{project_path}/public-key/rotate")))
            .form(&[("csrf_token", token.as_str()), ("confirmed", "yes")])
            .send()
    };
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        lock.release().await;
    };
    let (first, second, ()) = tokio::join!(press(), press(), release);
    for pressed in [first.unwrap(), second.unwrap()] {
        assert_eq!(
            (pressed.status().as_u16(), location(&pressed)),
            (303, keys_path.clone())
        );
    }
    let (_, after) = app.page(&browser, &keys_path).await;
    let new = element_text(&after, "public-key").unwrap();
    assert_ne!(new, old);
    let config = app.get("/sdk/v1/config?reference_id=u", &new).await;
    assert_eq!(config.status().as_u16(), 200);
}

#[tokio::test]
async fn another_accounts_project_is_not_found() {
    let app = TestApp::spawn().await;
    let ada = client();
    let ada_project = app.set_up(&ada, "ada@example.com", "Shop").await;
    app.bootstrap("bob@example.com", "Blog");
    let bob = client();
    assert_eq!(
        app.login(&bob, "bob@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        303
    );

    for path in [
        ada_project.clone(),
        format!("{ada_project}/api-keys"),
        format!("{ada_project}/members"),
    ] {
        let (status, html) = app.page(&bob, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!html.contains("Shop"));
    }
    let response = app
        .submit(
            &bob,
            "/projects/new",
            &format!("{ada_project}/api-keys"),
            &[("name", "stolen")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 404);
    let (_, listing) = app.page(&ada, &format!("{ada_project}/api-keys")).await;
    assert!(!listing.contains("stolen"));
}

#[tokio::test]
async fn the_switcher_lists_every_project_of_the_account() {
    let app = TestApp::spawn().await;
    let browser = client();
    let shop = app.set_up(&browser, "ada@example.com", "Shop").await;
    let created = app
        .submit(
            &browser,
            "/projects/new",
            "/projects",
            &[("name", "<b>Blog</b>")],
        )
        .await;
    let blog = location(&created);
    assert_ne!(blog, shop);
    let (_, html) = app.page(&browser, &shop).await;
    assert!(html.contains(&format!(r#"href="{blog}""#)));
    assert!(html.contains("&#60;b&#62;Blog&#60;/b&#62;"), "escaped");
    assert!(!html.contains("<b>Blog</b>"));

    let empty = app
        .submit(&browser, "/projects/new", "/projects", &[("name", " ")])
        .await;
    assert_eq!(empty.status().as_u16(), 422);
}

/// The address of the page's first form whose action ends with `ending`.
fn form_action(html: &str, ending: &str) -> Option<String> {
    html.split(r#"action=""#)
        .filter_map(|rest| rest.split('"').next())
        .find(|action| action.ends_with(ending))
        .map(str::to_owned)
}

#[tokio::test]
async fn the_owner_invites_a_new_person_who_joins_with_a_password() {
    let app = TestApp::spawn().await;
    let owner = client();
    let shop = app.set_up(&owner, "ada@example.com", "Shop").await;
    let members = format!("{shop}/members");

    // A mistyped email comes back to be corrected, its error by the field's label.
    let refused = app
        .submit(&owner, &members, &members, &[("email", "bob@example")])
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let html = refused.text().await.unwrap();
    assert!(
        element_text(&html, "form-error")
            .unwrap()
            .starts_with("Email: "),
        "{html}"
    );
    assert_eq!(input_value(&html, "email"), "bob@example");
    // Beside the field too, which is marked and focused (a text field now: the browser no
    // longer checks it first).
    assert!(element_text(&html, "field-error")
        .unwrap()
        .starts_with("Email: "));
    assert!(
        html.contains(r#"required aria-invalid="true" aria-describedby="field-error" autofocus>"#)
    );

    let invited = app
        .submit(&owner, &members, &members, &[("email", "bob@example.com")])
        .await;
    assert_eq!(invited.status().as_u16(), 201);
    let link = element_text(&invited.text().await.unwrap(), "invite-link").unwrap();
    let invitation_path = link
        .strip_prefix(&app.address)
        .expect("a link to this server")
        .to_owned();

    // The owner sees it open; inviting the same email again replaces its link, and a
    // withdrawn invitation's link opens nothing.
    let open_invitations = |html: &str| {
        let table = html.split(r#"id="invitations""#).nth(1).unwrap_or_default();
        table
            .split("</table>")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let (_, html) = app.page(&owner, &members).await;
    assert!(open_invitations(&html).contains("bob@example.com"));
    let invite_carol = || async {
        let invited = app
            .submit(
                &owner,
                &members,
                &members,
                &[("email", "carol@example.com")],
            )
            .await;
        let link = element_text(&invited.text().await.unwrap(), "invite-link").unwrap();
        link.strip_prefix(&app.address).unwrap().to_owned()
    };
    let carol_path = invite_carol().await;
    let newer_path = invite_carol().await;
    assert_eq!(
        app.page(&client(), &carol_path).await.0,
        400,
        "the earlier link died"
    );
    assert_eq!(app.page(&client(), &newer_path).await.0, 200);
    let (_, html) = app.page(&owner, &members).await;
    let withdraw = form_action(&html, "/withdraw").expect("a withdraw button");
    // Asked first, naming whose link dies (the answer to the form, without JavaScript).
    let asked = app.submit(&owner, &members, &withdraw, &[]).await;
    assert_eq!(asked.status().as_u16(), 200);
    let asked = asked.text().await.unwrap();
    assert!(asked.contains("Withdraw this invitation?") && asked.contains("carol@example.com"));
    assert_eq!(app.page(&client(), &newer_path).await.0, 200, "not yet");
    let withdrawn = app
        .submit(&owner, &members, &withdraw, &[("confirmed", "yes")])
        .await;
    assert_eq!(location(&withdrawn), members);
    // Sent again (a second click, an older tab): the members page says it is not open any
    // more (it was "Page not found").
    let again = app
        .submit(&owner, &members, &withdraw, &[("confirmed", "yes")])
        .await;
    assert_eq!(again.status().as_u16(), 404);
    let again = again.text().await.unwrap();
    assert!(
        again.contains("This invitation is not open any more"),
        "{again}"
    );
    // Newest first: Carol's went, Bob's stays.
    assert_eq!(app.page(&client(), &newer_path).await.0, 400);
    let (_, html) = app.page(&owner, &members).await;
    let listed = open_invitations(&html);
    assert!(listed.contains("bob@example.com") && !listed.contains("carol"));

    let bob = client();
    let (status, page) = app.page(&bob, &invitation_path).await;
    assert_eq!(status, 200);
    assert!(page.contains("bob@example.com") && page.contains("Shop"));
    let joined = app
        .submit(
            &bob,
            &invitation_path,
            &invitation_path,
            &[("password", "bobs own password")],
        )
        .await;
    assert_eq!(location(&joined), "/");
    let (status, _) = app.page(&bob, &shop).await;
    assert_eq!(status, 200, "bob is a member now");

    // The link is spent, and the page says so.
    let (status, html) = app.page(&client(), &invitation_path).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("<h1>Invitation link not valid</h1>"),
        "{html}"
    );
    // A member cannot invite.
    let (_, html) = app.page(&bob, &members).await;
    assert!(html.contains("Only the project's owners can invite"));
    assert!(!html.contains("/remove"), "nor remove anyone");
    let refused = app
        .submit(&bob, &members, &members, &[("email", "eve@example.com")])
        .await;
    assert_eq!(refused.status().as_u16(), 403);
    // Nor manage the project's keys, Mixpanel credentials or cohort sync: a member could
    // otherwise revoke the keys the app and the integrations run on.
    let keys = format!("{shop}/api-keys");
    let mixpanel = format!("{shop}/integrations/mixpanel");
    let (_, html) = app.page(&bob, &keys).await;
    assert!(element_text(&html, "owners-only").is_some());
    assert!(!html.contains("create-secret-key") && !html.contains("rotate-public-key"));
    let (_, html) = app
        .page(&bob, &format!("{shop}/integrations/mixpanel"))
        .await;
    assert!(element_text(&html, "owners-only").is_some());
    assert!(
        !html.contains(r#"id="connect-mixpanel""#),
        "no connect form"
    );
    let (status, _) = app
        .page(&bob, &format!("{shop}/integrations/mixpanel/disconnect"))
        .await;
    assert_eq!(
        status, 403,
        "nor the confirmation page of an owner's action"
    );
    for (page, action, fields) in [
        (&keys, keys.clone(), vec![("name", "mine")]),
        (
            &keys,
            format!("{shop}/public-key/rotate"),
            vec![("confirmed", "yes")],
        ),
        (
            &mixpanel,
            mixpanel.clone(),
            vec![("username", "u"), ("secret", "s")],
        ),
        (&mixpanel, format!("{mixpanel}/cohort-sync"), vec![]),
        (&mixpanel, format!("{mixpanel}/disconnect"), vec![]),
    ] {
        let refused = app.submit(&bob, page, &action, &fields).await;
        assert_eq!(refused.status().as_u16(), 403, "{action}");
        assert!(
            refused.text().await.unwrap().contains("owners can"),
            "{action}"
        );
    }
    let created = app.submit(&owner, &keys, &keys, &[("name", "ci")]).await;
    assert!(created.status().is_success(), "the owner still can");
    // The owner removes Bob (after confirming): he loses the project at once, and can
    // still sign in to his account.
    let (_, html) = app.page(&owner, &members).await;
    let remove = form_action(&html, "/remove").expect("a remove button beside bob");
    let asked = app.submit(&owner, &members, &remove, &[]).await;
    assert_eq!(asked.status().as_u16(), 200);
    assert!(asked.text().await.unwrap().contains("Remove this member?"));
    assert_eq!(app.page(&bob, &shop).await.0, 200, "not before confirming");
    let removed = app
        .submit(&owner, &members, &remove, &[("confirmed", "yes")])
        .await;
    assert_eq!(location(&removed), members);
    assert_eq!(app.page(&bob, &shop).await.0, 404);
    let (_, html) = app.page(&owner, &members).await;
    assert!(!html.contains("bob@example.com"));
    // Bob signs in with his own password.
    assert_eq!(
        app.login(&client(), "bob@example.com", "bobs own password")
            .await
            .status()
            .as_u16(),
        303
    );
}

/// Removing members, withdrawing invitations and revoking keys are the owners' alone: a
/// member's forms are refused with 403 and change nothing, and a member sees no open
/// invitations. An owner is removed by no one, not even by a form that names them.
#[tokio::test]
async fn a_member_cannot_remove_members_withdraw_invitations_or_revoke_keys() {
    let app = TestApp::spawn().await;
    let owner = client();
    let shop = app.set_up(&owner, "ada@example.com", "Shop").await;
    let members = format!("{shop}/members");
    let keys = format!("{shop}/api-keys");
    // Bob and Carol join; Dave's invitation stays open.
    let mut links = Vec::new();
    for email in ["bob@example.com", "carol@example.com", "dave@example.com"] {
        let invited = app
            .submit(&owner, &members, &members, &[("email", email)])
            .await;
        assert_eq!(invited.status().as_u16(), 201);
        let link = element_text(&invited.text().await.unwrap(), "invite-link").unwrap();
        links.push(link.strip_prefix(&app.address).unwrap().to_owned());
    }
    let (bob, carol) = (client(), client());
    for (browser, link) in [(&bob, &links[0]), (&carol, &links[1])] {
        let password = [("password", "a password of my own")];
        let joined = app.submit(browser, link, link, &password).await;
        assert_eq!(location(&joined), "/");
    }
    let created = app.submit(&owner, &keys, &keys, &[("name", "ci")]).await;
    assert_eq!(created.status().as_u16(), 201);
    let (_, html) = app.page(&owner, &members).await;
    let removals: Vec<String> = html
        .split(r#"action=""#)
        .filter_map(|rest| rest.split('"').next())
        .filter(|action| action.ends_with("/remove"))
        .map(str::to_owned)
        .collect();
    assert_eq!(removals.len(), 2, "bob and carol: {html}");
    let withdraw = form_action(&html, "/withdraw").expect("dave's invitation");
    let (_, html) = app.page(&owner, &keys).await;
    let revoke = form_action(&html, "/revoke").expect("a revoke button");

    let (status, html) = app.page(&bob, &members).await;
    assert_eq!(status, 200);
    assert!(html.contains("carol@example.com"));
    assert!(
        !html.contains("dave@example.com"),
        "open invitations are shown to owners: {html}"
    );
    for action in removals.iter().chain([&withdraw, &revoke]) {
        let refused = app
            .submit(&bob, "/account", action, &[("confirmed", "yes")])
            .await;
        assert_eq!(refused.status().as_u16(), 403, "{action}");
        assert!(
            refused.text().await.unwrap().contains("owners can"),
            "{action}"
        );
    }
    assert_eq!(app.page(&bob, &shop).await.0, 200, "bob stays");
    assert_eq!(app.page(&carol, &shop).await.0, 200, "carol stays");
    assert_eq!(
        app.page(&client(), &links[2]).await.0,
        200,
        "dave's link still opens"
    );
    let active = "SELECT COUNT(*) FROM secret_keys WHERE revoked_at IS NULL";
    assert_eq!(app.count_sql(active).await, 1, "the key still works");

    // Ada's account id, as the owner of a project she joined sees it (Bob's Blog).
    let blog = app
        .submit(&bob, "/projects/new", "/projects", &[("name", "Blog")])
        .await;
    let blog = location(&blog);
    let blog_members = format!("{blog}/members");
    let invited = app
        .submit(
            &bob,
            &blog_members,
            &blog_members,
            &[("email", "ada@example.com")],
        )
        .await;
    let link = element_text(&invited.text().await.unwrap(), "invite-link").unwrap();
    let link = link.strip_prefix(&app.address).unwrap().to_owned();
    let joined = app.submit(&owner, &link, &link, &[]).await;
    assert_eq!(location(&joined), blog);
    let (_, html) = app.page(&bob, &blog_members).await;
    let remove_ada = form_action(&html, "/remove").expect("ada is a member of the blog");
    let ada = remove_ada
        .strip_prefix(&format!("{blog_members}/"))
        .and_then(|rest| rest.strip_suffix("/remove"))
        .unwrap()
        .to_owned();
    // In her own project she is an owner: the form that names her finds no member to remove.
    let refused = app
        .submit(
            &owner,
            &members,
            &format!("{members}/{ada}/remove"),
            &[("confirmed", "yes")],
        )
        .await;
    assert_eq!(refused.status().as_u16(), 404);
}

/// Anyone can make an account for any address (through an invitation of a project of their
/// own), so having one proves nothing: an account is never added to a project without its
/// own consent. Invited, it joins by opening the link while signed in as itself.
#[tokio::test]
async fn someone_with_an_account_joins_only_by_accepting_while_signed_in() {
    let app = TestApp::spawn().await;
    let owner = client();
    let shop = app.set_up(&owner, "ada@example.com", "Shop").await;
    app.bootstrap("bob@example.com", "Blog");
    app.bootstrap("eve@example.com", "Eve's");
    let members = format!("{shop}/members");
    let invited = app
        .submit(&owner, &members, &members, &[("email", "BOB@example.com")])
        .await;
    assert_eq!(invited.status().as_u16(), 201);
    let html = invited.text().await.unwrap();
    assert!(element_text(&html, "invite-result")
        .unwrap()
        .contains("They have an account"));
    let link = element_text(&html, "invite-link").unwrap();
    let invitation = link.strip_prefix(&app.address).unwrap().to_owned();
    let bob = client();
    app.login(&bob, "bob@example.com", PASSWORD).await;
    assert_ne!(app.page(&bob, &shop).await.0, 200, "not a member yet");

    // Whoever holds the link cannot take over the account with a password of their own.
    let stranger = client();
    let (status, html) = app.page(&stranger, &invitation).await;
    assert_eq!(status, 200);
    assert!(element_text(&html, "sign-in-first").is_some(), "{html}");
    let taken = app
        .submit(
            &stranger,
            "/login",
            &invitation,
            &[("password", "a new password")],
        )
        .await;
    assert_eq!(taken.status().as_u16(), 409);
    assert_eq!(
        app.login(&client(), "bob@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        303,
        "bob's password is his own"
    );
    // Another account cannot join with it either.
    let eve = client();
    app.login(&eve, "eve@example.com", PASSWORD).await;
    let (_, html) = app.page(&eve, &invitation).await;
    assert!(
        html.contains("You are signed in as eve@example.com"),
        "{html}"
    );
    let refused = app.submit(&eve, "/login", &invitation, &[]).await;
    assert_eq!(refused.status().as_u16(), 403);
    assert_ne!(app.page(&eve, &shop).await.0, 200);

    // Bob, signed in, accepts.
    let (_, html) = app.page(&bob, &invitation).await;
    assert!(html.contains(r#"id="join""#), "{html}");
    let joined = app.submit(&bob, &invitation, &invitation, &[]).await;
    assert_eq!(location(&joined), shop);
    assert_eq!(app.page(&bob, &shop).await.0, 200);
    assert_eq!(app.page(&client(), &invitation).await.0, 400, "spent");
}

#[tokio::test]
async fn oversized_forms_are_refused_with_413() {
    let app = TestApp::spawn().await;
    let browser = client();
    let shop = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys_path = format!("{shop}/api-keys");
    let huge = "x".repeat(64 * 1024);
    let response = app
        .submit(&browser, &keys_path, &keys_path, &[("name", &huge)])
        .await;
    assert_eq!(response.status().as_u16(), 413);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<html") && page.contains("too large"),
        "{page}"
    );
    assert_eq!(
        app.count_sql("SELECT COUNT(*) FROM secret_keys").await,
        0,
        "no key made"
    );
}

#[tokio::test]
async fn the_dashboard_takes_only_a_session_not_an_api_key() {
    let app = TestApp::spawn().await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let response = client()
        .get(app.url(&format!("/p/{}/api-keys", keys.project_id)))
        .bearer_auth(&keys.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (response.status().as_u16(), location(&response)),
        (303, "/login".to_owned())
    );
}

/// Signing in on a browser that holds another session ends that session on the server: it
/// stayed valid for its 14 days, usable by whoever had copied its cookie.
#[tokio::test]
async fn signing_in_again_ends_the_session_the_browser_had() {
    let app = TestApp::spawn().await;
    let shop = app.set_up(&client(), "ada@example.com", "Shop").await;
    app.bootstrap("bob@example.com", "Blog");
    let browser = client();
    let first = app.login(&browser, "ada@example.com", PASSWORD).await;
    let session = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("uj_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let with_old_session = || async {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(app.url(&shop))
            .header("cookie", format!("uj_session={session}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(with_old_session().await, 200);
    assert_eq!(
        app.login(&browser, "bob@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        303
    );
    assert_eq!(with_old_session().await, 303, "ended: sent to sign in");
}

/// A path segment or query that does not decode gets the dashboard's page, not axum's
/// plain-text rejection.
#[tokio::test]
async fn an_address_that_does_not_decode_gets_a_page() {
    let app = TestApp::spawn().await;
    let browser = client();
    let shop = app.set_up(&browser, "ada@example.com", "Shop").await;
    for path in [
        "/p/%FF".to_owned(),
        format!("{shop}/audiences/aud_x?member=a&member=b"),
    ] {
        let response = browser.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        assert!(response.text().await.unwrap().contains("Bad request"));
    }
}

/// A project with more studies than a page lists pages through them: none is out of reach
/// (the newest were hidden).
#[tokio::test]
async fn the_studies_page_pages_through_every_study() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    for n in 0..101 {
        let created = app
            .post_json(
                "/api/v1/studies",
                &keys.secret_key,
                serde_json::json!({"name": format!("Study {n:03}"), "interview_url": "https://r.example.com/i/1"}),
            )
            .await;
        assert_eq!(created.status().as_u16(), 201);
    }
    let (_, first) = app.page(&browser, &format!("{project_path}/studies")).await;
    assert!(first.contains("Study 000") && !first.contains("Study 100"));
    // Named as the forms name it, not by the API's code.
    assert!(first.contains("<td>in the app</td>") && !first.contains("<td>in_app</td>"));
    let more = first
        .split(r#"id="studies-more" href=""#)
        .nth(1)
        .expect("a link to the rest")
        .split('"')
        .next()
        .unwrap()
        .replace("&#61;", "=")
        .replace("&#63;", "?");
    let (status, second) = app.page(&browser, &more).await;
    assert_eq!(status, 200, "{more}");
    assert!(
        second.contains("Study 100") && !second.contains("Study 000"),
        "{more}"
    );
    assert!(!second.contains("studies-more"));
    assert!(second.contains(r#"id="studies-first""#));
    assert!(element_text(&first, "studies-first").is_none());
    // A page past the last study says so, not "No study yet" (found by the scale probe).
    let (_, past) = app
        .page(&browser, &format!("{project_path}/studies?after=zzz"))
        .await;
    assert_eq!(
        element_text(&past, "no-studies").as_deref(),
        Some("No more studies.")
    );
}

/// The project's contact limit, a pacing setting of the API, is set on the overview too.
#[tokio::test]
async fn the_contact_limit_is_set_on_the_overview() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let action = format!("{project_path}/contact-limit");
    let limit = || async {
        let project: serde_json::Value = app
            .get("/api/v1/project", &keys.secret_key)
            .await
            .json()
            .await
            .unwrap();
        project["contact_limit_days"].clone()
    };
    let saved = app
        .submit(&browser, &project_path, &action, &[("days", "7")])
        .await;
    assert_eq!(location(&saved), project_path);
    assert_eq!(limit().await, 7);
    let (_, page) = app.page(&browser, &project_path).await;
    assert_eq!(input_value(&page, "days"), "7");
    for wrong in ["abc", "0", "366"] {
        let refused = app
            .submit(&browser, &project_path, &action, &[("days", wrong)])
            .await;
        assert_eq!(refused.status().as_u16(), 422, "{wrong}");
        let page = refused.text().await.unwrap();
        assert!(element_text(&page, "form-error")
            .unwrap()
            .starts_with("Contact limit: "));
        assert_eq!(input_value(&page, "days"), wrong);
        assert_eq!(limit().await, 7, "unchanged");
    }
    app.submit(&browser, &project_path, &action, &[("days", "")])
        .await;
    assert!(limit().await.is_null(), "empty turns it off");
}

/// A form's address visited (a bookmark, a reload after a redirect) gets a page that says
/// what to do, not a blank one.
#[tokio::test]
async fn a_form_address_visited_gets_a_page() {
    let app = TestApp::spawn().await;
    let browser = client();
    app.set_up(&browser, "ada@example.com", "Shop").await;
    let visited = browser.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(visited.status().as_u16(), 405);
    assert!(visited.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = visited.text().await.unwrap();
    assert!(
        page.contains("does not take that kind of request"),
        "{page}"
    );
}

/// An empty session cookie (cleared by a proxy or a script) does not break every form: the
/// browser's CSRF cookie binds its token as without one.
#[tokio::test]
async fn an_empty_session_cookie_leaves_forms_working() {
    let app = TestApp::spawn().await;
    app.bootstrap("ada@example.com", "Shop");
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = bare
        .get(app.url("/login"))
        .header("cookie", "uj_session=")
        .send()
        .await
        .unwrap();
    let issued = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("uj_csrf="))
        .expect("a CSRF cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let token = csrf_token(&login.text().await.unwrap());
    let signed_in = bare
        .post(app.url("/login"))
        .header("cookie", format!("uj_session=; {issued}"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_in.status().as_u16(),
        303,
        "not refused as a forged form"
    );
}

/// The study and rule forms hold start limits and caps to 1,000,000,000 as the REST API
/// does, naming the field by its label.
#[tokio::test]
async fn the_forms_refuse_start_limits_and_caps_above_a_billion() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let study: serde_json::Value = app
        .post_json(
            "/api/v1/studies",
            &keys.secret_key,
            serde_json::json!({"name": "Checkout", "interview_url": "https://r.example.com/i/1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let study_path = format!("{project_path}/studies/{}", study["id"].as_str().unwrap());
    // Past what a number holds too: said by the bound (it was "must be a whole number").
    for (weekly, monthly, label) in [
        ("1000000001", "", "Weekly start limit"),
        ("", "1000000001", "Monthly start limit"),
        ("99999999999999999999", "", "Weekly start limit"),
    ] {
        let refused = app
            .submit(
                &browser,
                &study_path,
                &study_path,
                &[
                    ("name", "Checkout"),
                    ("interview_url", "https://r.example.com/i/1"),
                    ("status", "active"),
                    ("weekly_limit", weekly),
                    ("monthly_limit", monthly),
                ],
            )
            .await;
        assert_eq!(refused.status().as_u16(), 422, "{label}");
        let error = element_text(&refused.text().await.unwrap(), "form-error").unwrap();
        assert!(
            error.starts_with(&format!("{label}: must be at most 1000000000")),
            "{error}"
        );
    }

    let rule: serde_json::Value = app
        .post_json(
            &format!(
                "/api/v1/studies/{}/launch-rules",
                study["id"].as_str().unwrap()
            ),
            &keys.secret_key,
            serde_json::json!({"name": "R", "surface": "sdk_prompt",
                "trigger": {"type": "app_event", "event_name": "E"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let rule_path = format!("{project_path}/rules/{}", rule["id"].as_str().unwrap());
    let refused = app
        .submit(
            &browser,
            &rule_path,
            &rule_path,
            &[
                ("name", "R"),
                ("surface", "sdk_prompt"),
                ("prompt_title", ""),
                ("prompt_message", ""),
                ("prompt_start_label", ""),
                ("prompt_dismiss_label", ""),
                ("priority", "0"),
                ("cooldown_hours", "168"),
                ("max_starts", "1000000001"),
                ("sampling_percent", "100"),
                ("starts_at", ""),
                ("ends_at", ""),
            ],
        )
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let error = element_text(&refused.text().await.unwrap(), "form-error").unwrap();
    assert!(
        error.starts_with("Max starts: must be at most 1000000000"),
        "{error}"
    );
}

/// Saving the rule editor changes only what was edited: times set over REST finer than the
/// editor's seconds, and copy with CRLF line breaks, stay as they were on a rename. They were
/// rewritten to the second (and two times within one second, shown the same, were refused
/// as "Ends: must be after starts_at", so the rule could not be renamed at all).
#[tokio::test]
async fn saving_the_rule_editor_keeps_what_was_not_edited() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let study: serde_json::Value = app
        .post_json(
            "/api/v1/studies",
            &keys.secret_key,
            serde_json::json!({"name": "Checkout", "interview_url": "https://r.example.com/i/1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let rule: serde_json::Value = app
        .post_json(
            &format!(
                "/api/v1/studies/{}/launch-rules",
                study["id"].as_str().unwrap()
            ),
            &keys.secret_key,
            serde_json::json!({"name": "R", "surface": "sdk_prompt", "cooldown_seconds": 3600,
                "trigger": {"type": "app_event", "event_name": "E"},
                "prompt": {"message": "line1\r\nline2"},
                "starts_at": "2027-01-01T10:00:40.306Z", "ends_at": "2027-01-01T10:00:40.907Z"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = rule["id"].as_str().unwrap();
    let rule_path = format!("{project_path}/rules/{id}");
    // What a browser sends back: the fields as the page shows them, one renamed.
    let saved = app
        .submit(
            &browser,
            &rule_path,
            &rule_path,
            &[
                ("name", "Renamed"),
                ("surface", "sdk_prompt"),
                ("prompt_title", ""),
                ("prompt_message", "line1\r\nline2"),
                ("prompt_start_label", ""),
                ("prompt_dismiss_label", ""),
                ("priority", "0"),
                ("cooldown_hours", "1"),
                ("max_starts", ""),
                ("sampling_percent", "100"),
                ("starts_at", "2027-01-01T10:00:40"),
                ("ends_at", "2027-01-01T10:00:40"),
            ],
        )
        .await;
    assert_eq!(saved.status().as_u16(), 303);
    let now: serde_json::Value = app
        .get(&format!("/api/v1/launch-rules/{id}"), &keys.secret_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["name"], "Renamed");
    for field in ["starts_at", "ends_at"] {
        assert_eq!(now[field], rule[field], "{field}");
    }
    assert_eq!(now["prompt"]["message"], "line1\r\nline2");
}

/// A rule's page warns of the rules that reach its users first: not of a direct link (decided
/// apart from prompts), a rule of a paused study, or one whose schedule has ended.
#[tokio::test]
async fn the_outranked_warning_names_only_rules_that_can_outrank() {
    let app = TestApp::spawn().await;
    let browser = client();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let key = app.bootstrap("ada@example.com", "Shop").secret_key;
    let mut studies = Vec::new();
    for status in ["active", "paused"] {
        let study: serde_json::Value = app
            .post_json(
                "/api/v1/studies",
                &key,
                serde_json::json!({"name": status, "status": status,
                    "interview_url": "https://r.example.com/i/1"}),
            )
            .await
            .json()
            .await
            .unwrap();
        studies.push(study["id"].as_str().unwrap().to_owned());
    }
    let mut ids = Vec::new();
    for (name, study, surface, priority, ends_at) in [
        ("Mine", &studies[0], "sdk_prompt", 0, None),
        ("Higher prompt", &studies[0], "sdk_prompt", 3, None),
        ("Direct link", &studies[0], "direct_link", 5, None),
        ("Lower link", &studies[0], "direct_link", 1, None),
        ("Paused study's", &studies[1], "sdk_prompt", 9, None),
        (
            "Ended",
            &studies[0],
            "sdk_prompt",
            7,
            Some("2020-01-01T00:00:00Z"),
        ),
    ] {
        let rule = app
            .post_json(
                &format!("/api/v1/studies/{study}/launch-rules"),
                &key,
                serde_json::json!({"name": name, "surface": surface, "priority": priority,
                    "status": "active", "ends_at": ends_at,
                    "trigger": {"type": "app_event", "event_name": "Ev2"}}),
            )
            .await;
        assert_eq!(rule.status().as_u16(), 201, "{name}");
        let rule: serde_json::Value = rule.json().await.unwrap();
        ids.push(rule["id"].as_str().unwrap().to_owned());
    }
    let (_, page) = app
        .page(&browser, &format!("{project_path}/rules/{}", ids[0]))
        .await;
    // The names are links inside the warning's paragraph.
    let start = page.find("id=\"overlap-warning\"").expect("a warning");
    let warning = &page[start..start + page[start..].find("</p>").unwrap()];
    assert!(warning.contains("Higher prompt"), "{warning}");
    for other in ["Direct link", "Paused study", "Ended"] {
        assert!(!warning.contains(other), "{warning}");
    }
    // Every eligible direct link is offered: none outranks another.
    let (_, page) = app
        .page(&browser, &format!("{project_path}/rules/{}", ids[3]))
        .await;
    assert!(
        !page.contains("id=\"overlap-warning\""),
        "a direct link warned"
    );
}

/// A password hashed with other parameters than today's is hashed anew when its account
/// signs in, and signs in again after (OWASP's password storage advice: a server that raises
/// Argon2's cost reaches every account that signs in).
#[tokio::test]
async fn a_password_hashed_with_older_parameters_is_hashed_anew_at_sign_in() {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let app = TestApp::spawn().await;
    app.set_up(&client(), "ada@example.com", "Shop").await;
    let store = uj_storage::connect(&app.config.database_url).await.unwrap();
    let weaker = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8 * 1024, 2, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
    .unwrap()
    .to_string();
    store
        .create_account(uj_storage::NewAccount {
            email: "ops@example.com".into(),
            password_hash: weaker.clone(),
        })
        .await
        .unwrap();
    let wrong = app
        .login(&client(), "ops@example.com", "not the password")
        .await;
    assert_eq!(wrong.status().as_u16(), 401);
    let stored = |store: std::sync::Arc<dyn uj_storage::Store>| async move {
        store
            .account_by_email("ops@example.com")
            .await
            .unwrap()
            .unwrap()
            .password_hash
    };
    assert_eq!(
        stored(store.clone()).await,
        weaker,
        "a wrong password changed it"
    );
    let signed_in = app.login(&client(), "ops@example.com", PASSWORD).await;
    assert_eq!(signed_in.status().as_u16(), 303);
    let anew = stored(store.clone()).await;
    assert_ne!(anew, weaker);
    assert!(uj_domain::password::is_current(&anew), "{anew}");
    assert!(uj_domain::password::verify(Some(&anew), PASSWORD));
    let again = app.login(&client(), "ops@example.com", PASSWORD).await;
    assert_eq!(again.status().as_u16(), 303);
    assert_eq!(stored(store).await, anew, "a current hash was made again");
}

/// Sets `email`'s password hash to `hash` in a transaction of another connection, committed
/// after `request` has had a moment: the server reads the hash that was there, and its own
/// write to the account waits for this one, then sees it (the race of a sign-in elsewhere,
/// or a password change, made certain).
async fn hash_changed_during<T>(
    app: &TestApp,
    email: &str,
    hash: &str,
    request: impl std::future::Future<Output = T>,
) -> T {
    let mut elsewhere = helpers::Other::connect(&app.db.url).await;
    elsewhere
        .hold(&format!(
            "UPDATE accounts SET password_hash = '{hash}' WHERE email = '{email}'"
        ))
        .await;
    let commit = async {
        // Long enough for a password check and a hash (Argon2 is optimised in tests), well
        // within SQLite's busy timeout.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        elsewhere.commit().await;
    };
    tokio::join!(request, commit).0
}

fn weaker_hash(password: &str) -> String {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8 * 1024, 2, 1, None).unwrap(),
    )
    .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
    .unwrap()
    .to_string()
}

/// A password changed while a sign-in elsewhere makes its hash anew (the same password,
/// today's parameters) is changed: the current password is checked again against the new
/// hash (the form answered "changed meanwhile", and counted a wrong guess, though no one had
/// changed it: found by the accounts review).
#[tokio::test]
async fn a_password_change_racing_a_new_hash_of_the_same_password_goes_through() {
    let app = TestApp::spawn().await;
    let browser = client();
    app.set_up(&browser, "ada@example.com", "Shop").await;
    // Made before today's parameters: the next sign-in elsewhere makes it anew.
    app.execute_sql(&format!(
        "UPDATE accounts SET password_hash = '{}' WHERE email = 'ada@example.com'",
        weaker_hash(PASSWORD)
    ))
    .await;
    let anew = uj_domain::password::Password::parse(PASSWORD)
        .unwrap()
        .hash();
    let (_, page) = app.page(&browser, "/account").await;
    let token = csrf_token(&page);
    let change = browser
        .post(app.url("/account"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("current_password", PASSWORD),
            ("new_password", "a brand new passphrase"),
        ])
        .send();
    let changed = hash_changed_during(&app, "ada@example.com", &anew, change)
        .await
        .unwrap();
    let status = changed.status().as_u16();
    let body = changed.text().await.unwrap();
    assert_eq!(status, 303, "{body}");
    let (status, _) = app.page(&browser, "/account").await;
    assert_eq!(status, 200, "this browser stays signed in");
    let old = app.login(&client(), "ada@example.com", PASSWORD).await;
    assert_eq!(old.status().as_u16(), 401);
    let new = app
        .login(&client(), "ada@example.com", "a brand new passphrase")
        .await;
    assert_eq!(new.status().as_u16(), 303);
}

/// A sign-in to another account refused because its password changed between the check and
/// the session leaves the browser signed in as it was (its session was ended first, so a
/// refused sign-in signed it out: found by the accounts review).
#[tokio::test]
async fn a_sign_in_refused_as_the_password_changes_keeps_the_browsers_session() {
    let app = TestApp::spawn().await;
    let browser = client();
    app.set_up(&browser, "ada@example.com", "Shop").await;
    let store = uj_storage::connect(&app.config.database_url).await.unwrap();
    store
        .create_account(uj_storage::NewAccount {
            email: "ops@example.com".into(),
            password_hash: uj_domain::password::Password::parse(PASSWORD)
                .unwrap()
                .hash(),
        })
        .await
        .unwrap();
    let changed = uj_domain::password::Password::parse("changed meanwhile elsewhere")
        .unwrap()
        .hash();
    let (_, page) = app.page(&browser, "/login").await;
    let token = csrf_token(&page);
    let sign_in = browser
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "ops@example.com"),
            ("password", PASSWORD),
        ])
        .send();
    let refused = hash_changed_during(&app, "ops@example.com", &changed, sign_in)
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let (status, page) = app.page(&browser, "/account").await;
    assert_eq!(status, 200, "signed out by a refused sign-in");
    assert!(page.contains("ada@example.com"), "{page}");
}

/// An account whose address was taken with an invisible character, before they were
/// refused, still signs in (found by the upgrade probe: it could not, its owner locked out).
#[tokio::test]
async fn an_account_made_before_invisible_characters_were_refused_still_signs_in() {
    let app = TestApp::spawn().await;
    app.set_up(&client(), "ada@example.com", "Shop").await;
    let store = uj_storage::connect(&app.config.database_url).await.unwrap();
    let hash = uj_domain::password::Password::parse(PASSWORD)
        .unwrap()
        .hash();
    store
        .create_account(uj_storage::NewAccount {
            email: "ops\u{200b}@example.com".into(),
            password_hash: hash,
        })
        .await
        .unwrap();
    let browser = client();
    let signed_in = app
        .login(&browser, "ops\u{200b}@example.com", PASSWORD)
        .await;
    assert_eq!(signed_in.status().as_u16(), 303);
    // A new one cannot be made so: an invitation sent to such an address before is refused
    // when accepted, saying why (it made an account no one could sign in as).
    let owner = store
        .account_by_email("ada@example.com")
        .await
        .unwrap()
        .unwrap();
    let project = store.memberships(&owner.id).await.unwrap()[0]
        .project
        .id
        .clone();
    let token = "an-invitation-token-from-before";
    store
        .create_invitation(
            uj_storage::NewInvitation {
                project_id: project,
                email: "mate\u{2060}@example.com".into(),
                token_hash: uj_domain::keys::token_hash(token),
                invited_by: owner.id,
                expires_at: chrono::Utc::now() + chrono::Duration::days(1),
            },
            100,
        )
        .await
        .unwrap()
        .expect("under the cap");
    let path = format!("/invitations/{token}");
    let refused = app
        .submit(&client(), &path, &path, &[("password", PASSWORD)])
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let html = refused.text().await.unwrap();
    assert!(
        element_text(&html, "form-error")
            .unwrap()
            .contains("invite you again"),
        "{html}"
    );
    assert!(store
        .account_by_email("mate\u{2060}@example.com")
        .await
        .unwrap()
        .is_none());
}

/// A session ended while a form's body arrives refuses that form: the session is checked
/// once the body is in, as keys are (it was checked on the head alone, so a form posted
/// slowly outlived a sign-out).
#[tokio::test]
async fn a_session_ended_while_a_form_arrives_refuses_it() {
    let app = TestApp::spawn().await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let project_path = app.set_up(&browser, "ada@example.com", "Shop").await;
    let keys_path = format!("{project_path}/api-keys");
    let token = csrf_token(&app.page(&browser, &keys_path).await.1);
    let cookies = reqwest::cookie::CookieStore::cookies(&*jar, &app.url("/").parse().unwrap())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let sign_out = async {
        let out = browser
            .post(app.url("/logout"))
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(location(&out), "/login");
    };
    let body = serde_urlencoded::to_string([
        ("csrf_token", token.as_str()),
        ("name", "made-after-sign-out"),
    ])
    .unwrap();
    let line = helpers::with_a_slow_body(
        &app,
        "application/x-www-form-urlencoded",
        &format!("POST {keys_path} HTTP/1.1\r\nCookie: {cookies}"),
        &body,
        sign_out,
    )
    .await;
    assert!(line.starts_with("HTTP/1.1 303"), "sent to sign in: {line}");
    app.login(&browser, "ada@example.com", PASSWORD).await;
    let (_, listing) = app.page(&browser, &keys_path).await;
    assert!(!listing.contains("made-after-sign-out"), "{listing}");
}

/// The New project form sent twice (a double click, a slow answer clicked again, a reload
/// of its answer) makes one project, each answer leading to it; so does the form sent twice
/// at once; a fresh form makes another (each send made a project: a project's records are
/// its own, and a new one had none to find the first in).
#[tokio::test]
async fn the_new_project_form_sent_twice_makes_one_project() {
    let app = TestApp::spawn().await;
    let browser = client();
    app.set_up(&browser, "ada@example.com", "Shop").await;
    let projects = || app.count_sql("SELECT COUNT(*) FROM projects");
    let post =
        |form: Vec<(&'static str, String)>| browser.post(app.url("/projects")).form(&form).send();
    let (_, page) = app.page(&browser, "/projects/new").await;
    let form = name_form(&page, "Blog");
    let first = post(form.clone()).await.unwrap();
    assert_eq!(first.status().as_u16(), 303);
    let blog = location(&first);
    assert!(blog.starts_with("/p/"), "{blog}");
    let again = post(form.clone()).await.unwrap();
    assert_eq!(again.status().as_u16(), 303);
    assert_eq!(location(&again), blog, "where the first landed");
    assert_eq!(projects().await, 2);
    let (status, _) = app.page(&browser, &blog).await;
    assert_eq!(status, 200);

    // The same form with another name was not the first request: nothing made, said so, and
    // a fresh key to send it with.
    let mut edited = form.clone();
    edited[2].1 = "Other".to_owned();
    let refused = post(edited).await.unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("sent already"), "{refused}");
    assert_eq!(projects().await, 2);
    assert_ne!(input_value(&refused, "form_key"), form[1].1);
    let other = post(name_form(&refused, "Other")).await.unwrap();
    assert_eq!(other.status().as_u16(), 303);
    assert_ne!(location(&other), blog);
    assert_eq!(projects().await, 3);

    // Sent several times at once: one project, every answer leading to it.
    let (_, page) = app.page(&browser, "/projects/new").await;
    let form = name_form(&page, "Docs");
    let sent = (0..8).map(|_| post(form.clone()));
    let answers = futures::future::join_all(sent).await;
    let docs = location(answers[0].as_ref().unwrap());
    for answer in &answers {
        assert_eq!(location(answer.as_ref().unwrap()), docs);
    }
    assert_eq!(projects().await, 4);

    // A fresh form makes another, even of the same name.
    let (_, page) = app.page(&browser, "/projects/new").await;
    let fresh = post(name_form(&page, "Docs")).await.unwrap();
    assert_eq!(fresh.status().as_u16(), 303);
    assert_eq!(projects().await, 5);
}

/// An account owns at most 100 projects, and a project has at most 100 open invitations: the
/// forms say so on their page (the cap on invitations once, above the form: the address typed
/// is not at fault), and inviting an address invited before still replaces its link.
#[tokio::test]
async fn projects_and_open_invitations_are_capped_with_a_message_on_the_form() {
    let app = TestApp::spawn().await;
    let browser = client();
    let shop = app.set_up(&browser, "ada@example.com", "Shop").await;
    for n in 1..100 {
        let name = format!("Project {n}");
        let created = app
            .submit(&browser, "/projects/new", "/projects", &[("name", &name)])
            .await;
        assert_eq!(created.status().as_u16(), 303, "{n}");
    }
    let refused = app
        .submit(
            &browser,
            "/projects/new",
            "/projects",
            &[("name", "One more")],
        )
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("You own 100 projects"), "{html}");
    assert!(
        html.contains(r#"name="name" required value="One more""#),
        "{html}"
    );

    let members = format!("{shop}/members");
    for n in 0..100 {
        let email = format!("mate{n}@example.com");
        let invited = app
            .submit(&browser, &members, &members, &[("email", &email)])
            .await;
        assert_eq!(invited.status().as_u16(), 201, "{n}");
    }
    let refused = app
        .submit(
            &browser,
            &members,
            &members,
            &[("email", "late@example.com")],
        )
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let html = refused.text().await.unwrap();
    assert!(element_text(&html, "form-error")
        .unwrap()
        .contains("100 open invitations"));
    assert_eq!(html.matches("100 open invitations").count(), 1, "{html}");
    assert_eq!(input_value(&html, "email"), "late@example.com");
    let again = app
        .submit(
            &browser,
            &members,
            &members,
            &[("email", "mate7@example.com")],
        )
        .await;
    assert_eq!(again.status().as_u16(), 201);
}

/// The Pause page says how many open invites the pause itself withdrew, told by the server
/// with the redirect: an address cannot make it say another number, nor say a rule was
/// paused at all. (The count was read before pausing and carried in `?paused=N`, which
/// anyone could write into a link.)
#[tokio::test]
async fn pausing_a_rule_says_what_the_pause_withdrew_and_no_address_can_say_otherwise() {
    let app = TestApp::spawn().await;
    let keys = app.bootstrap("ada@example.com", "Shop");
    let study = app
        .create_study(&keys.secret_key, "https://r.example.com/i/1")
        .await;
    let made = app
        .post_json(
            &format!("/api/v1/studies/{}/launch-rules", study["id"].as_str().unwrap()),
            &keys.secret_key,
            serde_json::json!({"name": "After checkout", "status": "active", "surface": "sdk_prompt",
                "trigger": {"type": "app_event", "event_name": "Order Completed"}}),
        )
        .await;
    assert_eq!(made.status().as_u16(), 201);
    let made: serde_json::Value = made.json().await.unwrap();
    for user in ["u1", "u2"] {
        let sent = app
            .post_json(
                "/sdk/v1/events",
                &keys.public_key,
                serde_json::json!({"event_name": "Order Completed", "reference_id": user}),
            )
            .await;
        let answer: serde_json::Value = sent.json().await.unwrap();
        assert!(answer["pending_invite"].is_object(), "{answer}");
    }
    let project: serde_json::Value = app
        .get("/api/v1/project", &keys.secret_key)
        .await
        .json()
        .await
        .unwrap();
    let rule = format!(
        "/p/{}/rules/{}",
        project["id"].as_str().unwrap(),
        made["id"].as_str().unwrap()
    );
    let browser = client();
    assert_eq!(
        app.login(&browser, "ada@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        303
    );

    // A link written to say so says nothing: the rule is active and nothing was withdrawn.
    let (_, forged) = app.page(&browser, &format!("{rule}?paused=500")).await;
    assert_eq!(element_text(&forged, "paused-notice"), None, "{forged}");

    let (_, html) = app.page(&browser, &rule).await;
    let paused = browser
        .post(app.url(&format!("{rule}/pause")))
        .form(&[
            ("csrf_token", csrf_token(&html).as_str()),
            ("confirmed", "yes"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (paused.status().as_u16(), location(&paused)),
        (303, rule.clone())
    );
    let (_, html) = app.page(&browser, &rule).await;
    assert_eq!(
        element_text(&html, "paused-notice").as_deref(),
        Some("Rule paused. Its 2 open invites were withdrawn.")
    );
    // Said once: the page loaded again says nothing more.
    let (_, again) = app.page(&browser, &rule).await;
    assert_eq!(element_text(&again, "paused-notice"), None);
}

//! `userjourneys demo`: the server on a throwaway SQLite database, beside a simulated
//! Mixpanel (the emulator, in this process) loaded with a realistic scenario, and a demo
//! panel in the dashboard to make that Mixpanel push cohorts. It never touches the
//! configured database or key file; everything lives in a temporary directory removed when
//! the demo stops.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use mixpanel_emulator::{Emulator, Region, Scenario};

use crate::config::Config;
use crate::services::bootstrap;
use crate::startup::{open_store, Application};

/// The simulated Mixpanel's scenario (see the file for what it holds).
pub const SCENARIO: &str = include_str!("../demo/scenario.toml");
/// The account the demo creates.
pub const EMAIL: &str = "demo@userjourneys.test";
/// The service account to paste into the Connect form: it sees several projects.
pub const MIXPANEL_USERNAME: &str = "acme-connector.3fa2c1.mp-service-account";
pub const MIXPANEL_SECRET: &str = "demo-secret-eu";

/// Removes the demo's directory when the demo ends, however it ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh password for the demo account, printed once.
fn password() -> String {
    use secrecy::ExposeSecret;
    let token = uj_domain::keys::NewToken::generate("");
    token.token.expose_secret().chars().take(20).collect()
}

/// `public_url_typed`: `--public-url` was typed on the demo's command line (kept), not read
/// from `UJ_PUBLIC_URL` (dropped).
pub async fn run(mut config: Config, public_url_typed: bool) -> anyhow::Result<()> {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "userjourneys-demo-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    )));
    std::fs::create_dir_all(&dir.0).context("cannot create the demo's directory")?;
    let scenario = Scenario::from_toml(SCENARIO).context("the demo scenario")?;
    let emulator = Arc::new(
        Emulator::start_without_controls(scenario)
            .await
            .context("cannot start the simulated Mixpanel")?,
    );
    config.database_url = format!("sqlite://{}", dir.0.join("demo.db").display());
    config.secret_key_file = Some(dir.0.join("app.key"));
    // Served at its own address, whatever the environment says of the real server's: the
    // links it prints and the webhook its simulated Mixpanel posts cohorts to are the demo's.
    // An address typed for the demo is its own.
    if !public_url_typed {
        config.public_url = None;
    }
    for region in Region::ALL {
        let (api, data) = (emulator.api_url(region), emulator.data_url(region));
        let m = &mut config.mixpanel;
        match region {
            Region::Us => (m.mixpanel_us_api, m.mixpanel_us_data) = (api, data),
            Region::Eu => (m.mixpanel_eu_api, m.mixpanel_eu_data) = (api, data),
            Region::In => (m.mixpanel_in_api, m.mixpanel_in_data) = (api, data),
        }
    }
    let password = password();
    let keys = {
        let store = open_store(&config).await?;
        bootstrap::run(store.as_ref(), EMAIL, &password, "Acme App").await?
    };
    let app = Application::build(&config).await?.with_demo(emulator);
    let url = app.public_url().to_owned();
    println!(
        "UserJourneys demo: {url}/\n\
         \n\
         A simulated Mixpanel runs beside the server; the data lives in {dir} and is deleted\n\
         when you stop the demo (Ctrl-C).\n\
         \n\
         1. Sign in at {url}/login\n\
         \x20    email     {EMAIL}\n\
         \x20    password  {password}\n\
         2. Mixpanel → Connect Mixpanel, with this service account (it sees several projects:\n\
         \x20  pick \"Acme App (prod)\"):\n\
         \x20    username  {MIXPANEL_USERNAME}\n\
         \x20    secret    {MIXPANEL_SECRET}\n\
         3. Mixpanel → Cohort sync (optional) → Set up cohort sync, and copy the secret.\n\
         4. Open the demo panel, {url}/p/{project}/demo: point a cohort at UserJourneys with that\n\
         \x20  secret and run a sync. The audience appears under Audiences; change membership and\n\
         \x20  sync again to watch the diff arrive.\n\
         5. Studies → create a study → Targeting rules: an audience rule, then Activate.\n\
         6. Be the app: load the configuration of a member with the project's public key:\n\
         \x20    curl -H 'Authorization: Bearer {public_key}' '{url}/sdk/v1/config?reference_id=ref_2'\n",
        dir = dir.0.display(),
        project = keys.project_id,
        public_key = keys.public_key,
    );
    app.run_until_stopped().await
}

//! Integrations → Mixpanel: the connection form with a short guide, the project picker,
//! the connected state (test, replace credentials, disconnect) and the project's cohorts.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use secrecy::ExposeSecret;
use serde::Deserialize;
use uj_domain::mixpanel::{ConnectionStatus, MixpanelCohort, MixpanelConnection};
use uj_mixpanel::DiscoveredProject;

use super::pages::{minute, render, render_with, ConfirmPage, Nav, PageError};
use super::projects::ProjectContext;
use super::session::{CookieName, CsrfToken, CurrentUser, EmptyForm, VerifiedForm};
use crate::services::cohort_sync::{self, SyncCredentials};
use crate::services::mixpanel::{self, ConnectOutcome, CONNECT_TOKEN_TTL};
use crate::services::{audiences, settings, ServiceError};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/p/{project_id}/integrations/mixpanel",
            get(show).post(connect),
        )
        .route(
            "/p/{project_id}/integrations/mixpanel/project",
            get(to_page).post(choose_project),
        )
        .route(
            "/p/{project_id}/integrations/mixpanel/verify",
            get(to_page).post(verify),
        )
        .route(
            "/p/{project_id}/integrations/mixpanel/disconnect",
            get(confirm_disconnect).post(disconnect),
        )
        .route(
            "/p/{project_id}/integrations/mixpanel/cohort-sync",
            get(to_page).post(set_up_sync),
        )
        .route(
            "/p/{project_id}/integrations/mixpanel/cohort-sync/regenerate",
            get(confirm_regenerate).post(regenerate),
        )
        .route(
            "/p/{project_id}/integrations/mixpanel/cohort-sync/disable",
            get(confirm_disable).post(disable_sync),
        )
        .route(
            "/p/{project_id}/integrations/mixpanel/cohort-sync/traits",
            get(to_page).post(save_traits),
        )
}

/// The browser's pending project choice: the connect token, in a cookie only this project's
/// Mixpanel pages receive, so the picker survives a reload, Back, or a visit to another page
/// until the choice is made or expires (it was shown once, in the answer to the form).
/// Behind HTTPS `__Secure-` named: a browser takes it only over HTTPS.
const PICK_COOKIE: CookieName = CookieName("uj_mixpanel_pick", "__Secure-uj_mixpanel_pick");

fn pick_cookie(state: &AppState, context: &ProjectContext, token: String) -> Cookie<'static> {
    Cookie::build((PICK_COOKIE.on(state), token))
        .path(format!("/p/{}/integrations/mixpanel", context.project_id()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.https)
        .max_age(cookie::time::Duration::seconds(
            CONNECT_TOKEN_TTL.num_seconds(),
        ))
        .build()
}

/// The pick cookie's removal (the choice was made, or is gone).
fn forget_pick(state: &AppState, context: &ProjectContext, jar: CookieJar) -> CookieJar {
    jar.remove(pick_cookie(state, context, String::new()))
}

/// A form's address opened as a page (the address bar after the form answered in place,
/// with the secret shown once; a reload): the Mixpanel page it belongs to, which checks who
/// may see it.
async fn to_page(Path(project_id): Path<String>) -> Redirect {
    // Encoded but for what ids hold: it is whatever the address held (a `Location` takes
    // no raw controls).
    const KEPT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'-');
    let project_id = percent_encoding::utf8_percent_encode(&project_id, KEPT);
    Redirect::to(&format!("/p/{project_id}/integrations/mixpanel"))
}

struct ConnectionView {
    project_name: String,
    mixpanel_project_id: String,
    region: String,
    organization: String,
    timezone: String,
    username: String,
    status: &'static str,
    status_label: &'static str,
    status_detail: Option<String>,
    connected_at: String,
    last_verified_at: String,
}

impl From<MixpanelConnection> for ConnectionView {
    fn from(c: MixpanelConnection) -> Self {
        let status_label = match c.status {
            ConnectionStatus::Connected => "Connected: Mixpanel accepts the credentials.",
            ConnectionStatus::CredentialsRejected => {
                "Mixpanel refused the last check: the reason and what to do are below."
            }
            ConnectionStatus::Unreachable => "Mixpanel could not be reached at the last check.",
        };
        Self {
            project_name: c.mixpanel_project_name,
            mixpanel_project_id: c.mixpanel_project_id,
            region: c.region.to_uppercase(),
            organization: c.organization,
            timezone: c.timezone,
            username: c.username,
            status: c.status.as_str(),
            status_label,
            status_detail: c.status_detail,
            connected_at: minute(c.connected_at),
            last_verified_at: minute(c.last_verified_at),
        }
    }
}

struct CohortView {
    id: String,
    name: String,
    description: String,
    members: i64,
    fetched_at: String,
    /// The audience this cohort syncs into, once it has.
    audience_id: Option<String>,
}

impl From<MixpanelCohort> for CohortView {
    fn from(c: MixpanelCohort) -> Self {
        Self {
            id: c.cohort_id,
            name: c.name,
            description: c.description,
            members: c.member_count,
            fetched_at: minute(c.fetched_at),
            audience_id: None,
        }
    }
}

struct SyncView {
    webhook_url: String,
    username: String,
    rotated_at: String,
    last_delivery: String,
    enabled: bool,
    /// The latest deliveries the webhook refused, newest first.
    refused: Vec<RefusedView>,
}

struct RefusedView {
    received: String,
    action: String,
    /// The cohort its body named: "name (id)", or the id alone; empty when none.
    cohort: String,
    error: String,
}

/// Shown once, right after setting up or regenerating.
struct CredentialsView {
    webhook_url: String,
    username: String,
    secret: String,
}

struct PickerView {
    token: String,
    projects: Vec<PickerRow>,
}

struct PickerRow {
    id: String,
    name: String,
    region: String,
    organization: String,
    timezone: String,
    selectable: bool,
    reason: Option<String>,
}

impl From<DiscoveredProject> for PickerRow {
    fn from(p: DiscoveredProject) -> Self {
        Self {
            id: p.id,
            name: p.name,
            region: p.region.as_str().to_uppercase(),
            organization: p.organization,
            timezone: p.timezone,
            selectable: p.selectable,
            reason: p.reason,
        }
    }
}

#[derive(Template)]
#[template(path = "mixpanel.html")]
struct MixpanelPage {
    title: &'static str,
    nav: Option<Nav>,
    csrf_token: String,
    project_id: String,
    connection: Option<ConnectionView>,
    cohorts: Vec<CohortView>,
    picker: Option<PickerView>,
    show_form: bool,
    /// The username the connection form shows again when Mixpanel refused it (never the
    /// secret).
    username: String,
    error: Option<String>,
    notice: Option<String>,
    sync: Option<SyncView>,
    sync_credentials: Option<CredentialsView>,
    sync_open: bool,
    traits: String,
    /// The allowlist as saved (shown to members, who cannot change it).
    traits_kept: Vec<String>,
    /// The trait allowlist was just saved, or why it was not (beside its field).
    traits_saved: bool,
    traits_error: Option<String>,
    /// `UJ_PUBLIC_URL` points at loopback: Mixpanel cannot deliver.
    webhook_is_local: bool,
    /// `userjourneys demo`, whose simulated Mixpanel runs on this machine.
    in_demo: bool,
    /// Only owners change the connection and cohort sync: members see them without the
    /// forms.
    is_owner: bool,
}

/// The project's five latest refused deliveries, newest first, however many deliveries came
/// since (it looked through the last 20: a refusal among hundreds of cohorts' deliveries went
/// unshown within one sync run).
async fn recently_refused(
    state: &AppState,
    project: &uj_domain::ids::ProjectId,
) -> Result<Vec<RefusedView>, PageError> {
    let refused = state.store.refused_deliveries(project, 5).await?;
    Ok(refused
        .into_iter()
        .map(|e| RefusedView {
            received: minute(e.received_at),
            action: e.action,
            cohort: match (e.mixpanel_cohort_name, e.mixpanel_cohort_id) {
                (Some(name), Some(id)) => format!("{name} ({id})"),
                (name, id) => id.or(name).unwrap_or_default(),
            },
            error: e.error.unwrap_or_default(),
        })
        .collect())
}

async fn page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    replace: bool,
) -> Result<MixpanelPage, PageError> {
    let project = &context.current.project.id;
    let status = mixpanel::status(state, project).await?;
    let (connection, cohorts) = match status {
        Some((connection, cohorts)) => {
            // By cohort id among the connected Mixpanel project's audiences: an old
            // project's cohort of the same id is another cohort (its deliveries are refused).
            let synced: HashMap<String, String> = audiences::all(state, project)
                .await?
                .into_iter()
                .filter(|a| {
                    a.mixpanel_project_id
                        .as_deref()
                        .is_none_or(|from| from == connection.mixpanel_project_id)
                })
                .map(|a| (a.mixpanel_cohort_id, a.id.into_string()))
                .collect();
            let cohorts = cohorts
                .into_iter()
                .map(|c| {
                    let mut view = CohortView::from(c);
                    view.audience_id = synced.get(&view.id).cloned();
                    view
                })
                .collect();
            (Some(connection.into()), cohorts)
        }
        None => (None, Vec::new()),
    };
    let sync = match state.store.cohort_sync_config(project).await? {
        Some(config) => Some(SyncView {
            webhook_url: cohort_sync::webhook_url(&state.public_url, &config.webhook_id),
            username: config.username,
            rotated_at: minute(config.secret_rotated_at),
            last_delivery: config
                .last_delivery_at
                .map(minute)
                .unwrap_or_else(|| "none yet".into()),
            enabled: config.enabled,
            refused: recently_refused(state, project).await?,
        }),
        None => None,
    };
    let traits_kept = state.store.trait_allowlist(project).await?;
    // One key a line: a key may hold a comma (Mixpanel's property names may).
    let traits = traits_kept.join("\n");
    // Open when deliveries were refused: the reason Mixpanel paused the sync is in it.
    let sync_open = sync.as_ref().is_some_and(|s| !s.refused.is_empty());
    Ok(MixpanelPage {
        title: "Mixpanel",
        nav: context.nav(),
        csrf_token,
        project_id: context.project_id(),
        show_form: connection.is_none() || replace,
        connection,
        cohorts,
        picker: None,
        username: String::new(),
        error: None,
        notice: None,
        sync,
        sync_open,
        sync_credentials: None,
        traits,
        traits_kept,
        traits_saved: false,
        traits_error: None,
        webhook_is_local: ["http://127.", "http://localhost", "http://[::1]"]
            .iter()
            .any(|local| state.public_url.starts_with(local)),
        in_demo: state.demo.is_some(),
        is_owner: context.current.role == uj_domain::accounts::Role::Owner,
    })
}

#[derive(Deserialize)]
struct ShowParams {
    replace: Option<String>,
    traits_saved: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    jar: CookieJar,
    Path(project_id): Path<String>,
    Query(params): Query<ShowParams>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let mut page = page(&state, &context, csrf.0, params.replace.is_some()).await?;
    page.traits_saved = params.traits_saved.is_some();
    page.sync_open |= page.traits_saved;
    // "Use other credentials" (`?replace`) shows the form instead of the pending choice.
    let pending = jar
        .get(PICK_COOKIE.on(&state))
        .map(|c| c.value().to_owned());
    let Some(token) = pending.filter(|_| params.replace.is_none()) else {
        return Ok(render(&page));
    };
    // A choice this browser has pending is offered again while it holds.
    let offered = match page.is_owner {
        true => mixpanel::offered_projects(&state, &context.current.project.id, &token).await?,
        false => None,
    };
    let Some(projects) = offered else {
        return Ok((forget_pick(&state, &context, jar), render(&page)).into_response());
    };
    page.show_form = false;
    page.picker = Some(PickerView {
        token,
        projects: projects.into_iter().map(Into::into).collect(),
    });
    Ok(render(&page))
}

/// Renders the page again with a plain-sentence error about what to fix.
async fn with_error(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    error: ServiceError,
    picker: Option<PickerView>,
) -> Result<Response, PageError> {
    let (answer, page) = error_page(state, context, csrf_token, error, picker).await?;
    Ok(answer.render(&page))
}

/// How a page with an error is answered: its status, and when to try again (Mixpanel's
/// budget spent), as the API answers.
struct ErrorAnswer {
    status: StatusCode,
    retry_after: Option<axum::http::HeaderValue>,
}

impl ErrorAnswer {
    fn render(self, page: &MixpanelPage) -> Response {
        let mut response = render_with(self.status, page);
        if let Some(retry_after) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after);
        }
        response
    }
}

/// The page with a plain-sentence error about what to fix, and its status.
async fn error_page(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    error: ServiceError,
    picker: Option<PickerView>,
) -> Result<(ErrorAnswer, MixpanelPage), PageError> {
    let mut retry_after = None;
    let (status, message) = match error {
        ServiceError::Mixpanel(problem) => {
            retry_after = crate::http::error::mixpanel_retry_after(&problem);
            (
                crate::http::error::mixpanel_status(&problem),
                problem.message(),
            )
        }
        ServiceError::Invalid(invalid) => (StatusCode::UNPROCESSABLE_ENTITY, invalid.to_string()),
        ServiceError::Conflict { message, .. } => (StatusCode::CONFLICT, message),
        ServiceError::NotFound("connect_token") => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The project choice expired. Enter the service account again.".to_owned(),
        ),
        ServiceError::NotFound("mixpanel_project") => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Pick one of the listed projects.".to_owned(),
        ),
        other => return Err(other.into()),
    };
    let mut page = page(state, context, csrf_token, true).await?;
    page.error = Some(message);
    if picker.is_some() {
        page.show_form = false;
        page.picker = picker;
    }
    Ok((
        ErrorAnswer {
            status,
            retry_after,
        },
        page,
    ))
}

#[derive(Deserialize)]
struct ConnectForm {
    username: String,
    secret: String,
}

async fn connect(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    jar: CookieJar,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<ConnectForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "connect Mixpanel").await?;
    match mixpanel::connect(
        &state,
        &context.current.project.id,
        &form.username,
        &form.secret,
    )
    .await
    {
        Ok(ConnectOutcome::Connected(_)) => {
            Ok(Redirect::to(&format!("/p/{project_id}/integrations/mixpanel")).into_response())
        }
        // The picker is the page's, opened from the cookie: a reload shows it again rather
        // than posting the secret a second time.
        Ok(ConnectOutcome::ChooseProject { token, .. }) => {
            let jar = jar.add(pick_cookie(
                &state,
                &context,
                token.expose_secret().to_owned(),
            ));
            let page = format!("/p/{}/integrations/mixpanel", context.project_id());
            Ok((jar, Redirect::to(&page)).into_response())
        }
        Err(error) => {
            let (answer, mut page) = error_page(&state, &context, csrf.0, error, None).await?;
            page.username = form.username;
            Ok(answer.render(&page))
        }
    }
}

#[derive(Deserialize)]
struct ChooseForm {
    connect_token: String,
    project_id: Option<String>,
}

async fn choose_project(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    jar: CookieJar,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<ChooseForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "connect Mixpanel").await?;
    let chosen = form.project_id.unwrap_or_default();
    match mixpanel::choose_project(
        &state,
        &context.current.project.id,
        &form.connect_token,
        &chosen,
    )
    .await
    {
        Ok(_) => {
            let jar = forget_pick(&state, &context, jar);
            let page = format!("/p/{project_id}/integrations/mixpanel");
            Ok((jar, Redirect::to(&page)).into_response())
        }
        // Picked meanwhile (in another tab): the connection is the answer.
        Err(ServiceError::NotFound("connect_token"))
            if mixpanel::status(&state, &context.current.project.id)
                .await?
                .is_some() =>
        {
            let jar = forget_pick(&state, &context, jar);
            let page = format!("/p/{project_id}/integrations/mixpanel");
            Ok((jar, Redirect::to(&page)).into_response())
        }
        Err(error) => {
            // While the token holds, the list stays on screen beside the reason.
            let offered = mixpanel::offered_projects(
                &state,
                &context.current.project.id,
                &form.connect_token,
            )
            .await?;
            let jar = match offered {
                Some(_) => jar,
                None => forget_pick(&state, &context, jar),
            };
            let picker = offered.map(|projects| PickerView {
                token: form.connect_token,
                projects: projects.into_iter().map(Into::into).collect(),
            });
            Ok((
                jar,
                with_error(&state, &context, csrf.0, error, picker).await?,
            )
                .into_response())
        }
    }
}

async fn verify(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load(&state, &user, &project_id).await?;
    let project = &context.current.project.id;
    let connection = match mixpanel::verify(&state, project).await {
        Ok(connection) => connection,
        // Disconnected since the page was opened (another tab, the API): the page says so
        // with its connect form, as the API's `409 not_connected` (it was "Page not found").
        Err(ServiceError::NotFound("mixpanel_connection")) => {
            let mut page = page(&state, &context, csrf.0, true).await?;
            page.error = Some(
                "Mixpanel is not connected (it was disconnected meanwhile): connect it first."
                    .into(),
            );
            return Ok(render_with(StatusCode::CONFLICT, &page));
        }
        Err(other) => return Err(other.into()),
    };
    let mut notice = None;
    if connection.status == ConnectionStatus::Connected {
        notice = Some(match mixpanel::refresh(&state, project).await {
            Ok((cohorts, events)) => format!("Mixpanel accepts the credentials. Read {cohorts} cohorts and {events} event names."),
            Err(ServiceError::Mixpanel(problem)) => format!(
                "Mixpanel lists the project for these credentials, but its cohorts and event \
                 names could not be read: {}",
                problem.message()
            ),
            // Disconnected or replaced meanwhile: the page shows what is connected now.
            Err(ServiceError::NotFound(_)) => String::new(),
            // Our own failure (the database): the error page, logged with its request id,
            // never its text on the page.
            Err(other) => return Err(other.into()),
        })
        .filter(|notice| !notice.is_empty());
    }
    let mut page = page(&state, &context, csrf.0, false).await?;
    page.notice = notice;
    Ok(render(&page))
}

async fn confirm_disconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "disconnect Mixpanel").await?;
    let (connection, _) = mixpanel::status(&state, &context.current.project.id)
        .await?
        .ok_or(PageError::NotFound)?;
    let message = format!(
        "UserJourneys forgets the service account and stops reading {}. Audiences, rules and \
         the cohort-sync setup are kept, but until you connect again every cohort delivery is \
         refused, so Mixpanel pauses those syncs: resume them in Mixpanel after connecting \
         again.",
        connection.mixpanel_project_name
    );
    Ok(confirm(
        &context,
        csrf.0,
        "Disconnect Mixpanel?",
        message,
        "/disconnect",
        "Disconnect",
    ))
}

async fn disconnect(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project_id): Path<String>,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "disconnect Mixpanel").await?;
    match mixpanel::disconnect(&state, &context.current.project.id).await {
        // Disconnected already (the form sent twice, another tab): what was asked is done
        // (it was "Page not found").
        Ok(()) | Err(ServiceError::NotFound("mixpanel_connection")) => {}
        Err(other) => return Err(other.into()),
    }
    Ok(Redirect::to(&format!("/p/{project_id}/integrations/mixpanel")).into_response())
}

/// The page with the webhook credentials shown, once (or, turned on again, saying the
/// current secret works again).
async fn with_credentials(
    state: &AppState,
    context: &ProjectContext,
    csrf_token: String,
    credentials: SyncCredentials,
) -> Result<Response, PageError> {
    let mut page = page(state, context, csrf_token, false).await?;
    page.sync_open = true;
    let Some(secret) = credentials.secret else {
        page.notice = Some("Cohort sync is on again with the same webhook URL and its current secret (the last one shown): resume the sync in Mixpanel (Data → Destinations). If you connected another Mixpanel project meanwhile, regenerate the secret and add a destination there.".into());
        return Ok(render(&page));
    };
    page.sync_credentials = Some(CredentialsView {
        webhook_url: credentials.webhook_url,
        username: credentials.username,
        secret: secret.expose_secret().to_owned(),
    });
    Ok(render(&page))
}

async fn set_up_sync(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "set up cohort sync").await?;
    match cohort_sync::set_up(&state, &context.current.project.id).await {
        Ok(credentials) => with_credentials(&state, &context, csrf.0, credentials).await,
        Err(ServiceError::Conflict { message, .. }) => {
            let mut page = page(&state, &context, csrf.0, false).await?;
            page.error = Some(message);
            page.sync_open = true;
            Ok(render_with(StatusCode::CONFLICT, &page))
        }
        Err(other) => Err(other.into()),
    }
}

/// A page asking to confirm a destructive action, posting to `action` on this page.
fn confirm(
    context: &ProjectContext,
    csrf_token: String,
    title: &'static str,
    message: String,
    action: &str,
    button: &'static str,
) -> Response {
    let project_id = context.project_id();
    render(&ConfirmPage {
        title,
        nav: context.nav(),
        csrf_token,
        message,
        action: format!("/p/{project_id}/integrations/mixpanel{action}"),
        button,
        back: format!("/p/{project_id}/integrations/mixpanel"),
    })
}

async fn confirm_regenerate(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load_as_owner(
        &state,
        &user,
        &project_id,
        "regenerate the cohort-sync secret",
    )
    .await?;
    let message = "The current secret stops working at once: Mixpanel's deliveries fail (and Mixpanel pauses the sync) until you paste the new secret into the webhook destination.";
    Ok(confirm(
        &context,
        csrf.0,
        "Regenerate the cohort-sync secret?",
        message.into(),
        "/cohort-sync/regenerate",
        "Regenerate secret",
    ))
}

async fn regenerate(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    let context = ProjectContext::load_as_owner(
        &state,
        &user,
        &project_id,
        "regenerate the cohort-sync secret",
    )
    .await?;
    let credentials = cohort_sync::regenerate_secret(&state, &context.current.project.id).await?;
    with_credentials(&state, &context, csrf.0, credentials).await
}

async fn confirm_disable(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "turn off cohort sync").await?;
    let message = "The webhook stops accepting deliveries (Mixpanel pauses the sync). Audiences already synced stay as they are. Turned on again, it keeps its URL and secret.";
    Ok(confirm(
        &context,
        csrf.0,
        "Disable cohort sync?",
        message.into(),
        "/cohort-sync/disable",
        "Disable cohort sync",
    ))
}

async fn disable_sync(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project_id): Path<String>,
    VerifiedForm(_): VerifiedForm<EmptyForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "turn off cohort sync").await?;
    cohort_sync::disable(&state, &context.current.project.id).await?;
    Ok(Redirect::to(&format!("/p/{project_id}/integrations/mixpanel")).into_response())
}

#[derive(Deserialize)]
struct TraitsForm {
    traits: String,
}

async fn save_traits(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(project_id): Path<String>,
    VerifiedForm(form): VerifiedForm<TraitsForm>,
) -> Result<Response, PageError> {
    let context =
        ProjectContext::load_as_owner(&state, &user, &project_id, "change the trait allowlist")
            .await?;
    // A key a line (a comma may be part of one); empty lines are none. A key too long, or
    // too many, refuses the list whole rather than keeping part of it unsaid.
    let keys: Vec<String> = form
        .traits
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    let saved = settings::set_trait_allowlist(&state, &context.current.project.id, keys).await;
    match saved {
        Ok(_) => Ok(Redirect::to(&format!(
            "/p/{project_id}/integrations/mixpanel?traits_saved=1#cohort-sync"
        ))
        .into_response()),
        // Said beside the field, in its open section, with what was typed.
        Err(error) => {
            let (answer, mut page) = error_page(&state, &context, csrf.0, error, None).await?;
            // Said by the field's label, beside it; the page as it was (no credentials form).
            page.traits_error = page.error.take().map(|message| {
                let said = message
                    .strip_prefix("trait_allowlist: ")
                    .unwrap_or(&message);
                format!("Traits to keep: {said}")
            });
            page.show_form = page.connection.is_none();
            page.traits = form.traits;
            page.sync_open = true;
            Ok(answer.render(&page))
        }
    }
}

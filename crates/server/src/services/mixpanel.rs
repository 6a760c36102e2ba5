//! Connecting a project to Mixpanel with a service account: discovery of the project and
//! its region, the picker when there are several, the encrypted credentials, reading
//! cohorts and event names through the connection, and re-verification.

use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use tracing::Instrument;
use uj_domain::ids::ProjectId;
use uj_domain::keys::{token_hash, NewToken};
use uj_domain::mixpanel::{
    ConnectAttempt, ConnectionStatus, MixpanelCohort, MixpanelConnection, StoredConnection,
};
use uj_domain::ValidationError;
use uj_mixpanel::{Credentials, DiscoveredProject, MixpanelError, ProjectRef, Region};

use super::ServiceError;
use crate::crypto;
use crate::state::AppState;

/// How long a customer has to pick a project after connecting.
pub const CONNECT_TOKEN_TTL: chrono::Duration = chrono::Duration::minutes(15);
/// How many top event names are read into the catalog.
const EVENT_NAMES: u32 = 255;

/// A Mixpanel-side reason a connection cannot be made or used, worded for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MixpanelProblem {
    InvalidCredentials,
    NoProjects,
    MissingPermission(String),
    Unreachable,
    /// Mixpanel's rate limit, or the client's own Query budget (`uj_mixpanel::QUERY_EVERY`):
    /// how long to wait, when known.
    RateLimited(Option<std::time::Duration>),
    /// Mixpanel refused because of the project's plan (402): what it said.
    PlanLimited(String),
    /// An answer neither a refusal nor a failure we know (its HTTP status).
    UnexpectedAnswer(u16),
    /// The stored secret does not decrypt: the server's application key changed or was lost.
    SecretUnreadable,
}

impl MixpanelProblem {
    /// Mixpanel refused the account (not failed): the connection cannot read until its
    /// credentials, role or plan change.
    fn rejects_credentials(&self) -> bool {
        matches!(
            self,
            MixpanelProblem::InvalidCredentials
                | MixpanelProblem::MissingPermission(_)
                | MixpanelProblem::PlanLimited(_)
        )
    }

    pub fn code(&self) -> &'static str {
        match self {
            MixpanelProblem::InvalidCredentials => "invalid_credentials",
            MixpanelProblem::NoProjects => "no_projects",
            MixpanelProblem::MissingPermission(_) => "missing_permission",
            MixpanelProblem::Unreachable => "mixpanel_unreachable",
            MixpanelProblem::RateLimited(_) => "mixpanel_rate_limited",
            MixpanelProblem::SecretUnreadable => "credentials_unreadable",
            MixpanelProblem::PlanLimited(_) => "mixpanel_plan_limit",
            MixpanelProblem::UnexpectedAnswer(_) => "mixpanel_unexpected_answer",
        }
    }

    pub fn message(&self) -> String {
        match self {
            MixpanelProblem::InvalidCredentials => "Mixpanel did not accept this username and secret. Check that you copied both from Project Settings → Service Accounts, and that the service account has not expired.".into(),
            MixpanelProblem::NoProjects => "This service account has no access to any Mixpanel project. In Mixpanel, open Project Settings → Service Accounts and add it to your project with the Analyst role.".into(),
            MixpanelProblem::MissingPermission(reason) => reason.clone(),
            MixpanelProblem::Unreachable => "Mixpanel could not be reached. Try again in a few minutes.".into(),
            MixpanelProblem::RateLimited(_) => "Mixpanel's rate limit for this project was reached (60 queries an hour, shared with your other tools), or UserJourneys' own share of it. Try again in a few minutes.".into(),
            MixpanelProblem::PlanLimited(detail) => format!("Mixpanel refused because of the project's plan ({detail}). Check that the project's Mixpanel plan includes API access."),
            MixpanelProblem::UnexpectedAnswer(status) => format!("Mixpanel gave an answer UserJourneys did not expect (HTTP {status}). Try again in a few minutes; if it keeps happening, check the project in Mixpanel."),
            MixpanelProblem::SecretUnreadable => "The stored service account secret cannot be read: this server's application key changed (UJ_SECRET_KEY_FILE). Connect Mixpanel again with the secret.".into(),
        }
    }
}

impl From<MixpanelError> for MixpanelProblem {
    fn from(error: MixpanelError) -> Self {
        match error {
            MixpanelError::InvalidCredentials => MixpanelProblem::InvalidCredentials,
            MixpanelError::MissingPermission(detail) => MixpanelProblem::MissingPermission(
                format!("The service account cannot read this Mixpanel project: {detail}. Give the service account the Analyst role on the project."),
            ),
            MixpanelError::RateLimited { retry_after } => MixpanelProblem::RateLimited(retry_after),
            MixpanelError::PlanLimited(detail) => MixpanelProblem::PlanLimited(detail),
            MixpanelError::Unreachable(_) => MixpanelProblem::Unreachable,
            MixpanelError::Unexpected { status, .. } => MixpanelProblem::UnexpectedAnswer(status),
        }
    }
}

/// What a connect request led to.
pub enum ConnectOutcome {
    Connected(Box<MixpanelConnection>),
    /// Several projects: the customer picks one with this token (shown to them only).
    ChooseProject {
        token: SecretString,
        projects: Vec<DiscoveredProject>,
    },
}

fn connection_row(project: &ProjectId) -> String {
    format!("mixpanel_connection:{project}")
}

fn attempt_row(project: &ProjectId, token_hash: &str) -> String {
    format!("mixpanel_connect_attempt:{project}:{token_hash}")
}

fn credentials(username: &str, secret: &str) -> Result<Credentials, ServiceError> {
    let username = username.trim();
    let secret = secret.trim();
    if username.is_empty() || username.chars().count() > 255 {
        return Err(ValidationError::new(
            "username",
            "must be the service account's username (1–255 characters)",
        )
        .into());
    }
    if secret.is_empty() || secret.chars().count() > 1024 {
        return Err(ValidationError::new(
            "secret",
            "must be the service account's secret (1–1024 characters)",
        )
        .into());
    }
    // As every text taken: no control nor bidirectional override character (no service
    // account's holds one; the message never quotes the value).
    uj_domain::validation_text("username", username, 255)?;
    uj_domain::validation_text("secret", secret, 1024)?;
    Ok(Credentials {
        username: username.to_owned(),
        secret: SecretString::from(secret.to_owned()),
    })
}

/// Finds the service account's projects; connects at once when there is exactly one.
#[tracing::instrument(skip_all, fields(project_id = %project))]
pub async fn connect(
    state: &AppState,
    project: &ProjectId,
    username: &str,
    secret: &str,
) -> Result<ConnectOutcome, ServiceError> {
    let answer_by = answer_by(state);
    let credentials = credentials(username, secret)?;
    let discovery = state
        .mixpanel
        .discover(&credentials)
        .await
        .map_err(|e| ServiceError::Mixpanel(e.into()))?;
    // A cluster that failed (rather than refused the account) may hold what is missing: the
    // answer is no reason to say "no projects" nor to connect the one project found unasked.
    let complete = discovery.incomplete.is_none();
    if discovery.selectable().next().is_none() {
        if let Some(failure) = discovery.incomplete {
            return Err(ServiceError::Mixpanel(failure.into()));
        }
    }
    match discovery.projects.as_slice() {
        [] => return Err(ServiceError::Mixpanel(MixpanelProblem::NoProjects)),
        // Nothing to pick: a picker of disabled choices would only say it later.
        all if discovery.selectable().next().is_none() => {
            let reasons: Vec<String> = all
                .iter()
                .map(|p| format!("{}: {}", p.name, p.reason.as_deref().unwrap_or_default()))
                .collect();
            return Err(ServiceError::Mixpanel(MixpanelProblem::MissingPermission(
                format!(
                    "None of the service account's Mixpanel projects can be used. {}",
                    reasons.join(" ")
                ),
            )));
        }
        _ => {}
    }
    // Connected already: the new credentials replace those of the connected project, and
    // must reach it; a different project takes a disconnect first.
    let chosen = match connected(state, project).await? {
        Some(current) => {
            match discovery
                .projects
                .iter()
                .find(|p| p.id == current.mixpanel_project_id)
            {
                Some(same) if same.selectable => {
                    // Its cluster was found when it was connected: replacing credentials
                    // spends none of its Query budget finding it again.
                    let mut same = same.clone();
                    let stored = Region::parse(&current.region)
                        .filter(|r| *r == same.region || same.unsure_regions.contains(r));
                    if let Some(stored) = stored {
                        same.region = stored;
                        same.unsure_regions.clear();
                    }
                    Some(same)
                }
                Some(same) => {
                    return Err(ServiceError::Mixpanel(MixpanelProblem::MissingPermission(
                        same.reason.clone().unwrap_or_default(),
                    )))
                }
                // The cluster that failed may be the one that lists it.
                None => {
                    return Err(match discovery.incomplete {
                        Some(failure) => ServiceError::Mixpanel(failure.into()),
                        None => project_mismatch(&current),
                    })
                }
            }
        }
        None => match discovery.projects.as_slice() {
            [only] if complete => Some(only.clone()),
            _ => None,
        },
    };
    if let Some(chosen) = chosen {
        let chosen = confirm(state, &credentials, &chosen).await?;
        let connection = finish(state, project, &credentials, &chosen, answer_by).await?;
        return Ok(ConnectOutcome::Connected(Box::new(connection)));
    }
    let token = NewToken::generate("mpc_");
    let attempt = ConnectAttempt {
        project_id: project.clone(),
        username: credentials.username.clone(),
        secret_ciphertext: crypto::seal(
            &state.key,
            &credentials.secret,
            &attempt_row(project, &token.hash),
        ),
        candidates: serde_json::to_string(&discovery.projects).map_err(anyhow::Error::from)?,
        expires_at: Utc::now() + CONNECT_TOKEN_TTL,
    };
    state
        .store
        .save_connect_attempt(&token.hash, &attempt)
        .await?;
    Ok(ConnectOutcome::ChooseProject {
        token: token.token,
        projects: discovery.projects,
    })
}

/// Completes a connect that found several projects with the customer's choice.
#[tracing::instrument(skip_all, fields(project_id = %project))]
pub async fn choose_project(
    state: &AppState,
    project: &ProjectId,
    connect_token: &str,
    mixpanel_project_id: &str,
) -> Result<MixpanelConnection, ServiceError> {
    let answer_by = answer_by(state);
    // Trimmed as the project id, the username and the secret are: pasted with a line break,
    // a valid token was a 404 (found by the REST review).
    let hash = token_hash(connect_token.trim());
    let attempt = state
        .store
        .connect_attempt(project, &hash, Utc::now())
        .await?
        .ok_or(ServiceError::NotFound("connect_token"))?;
    let candidates = candidates_of(&attempt)?;
    let chosen = candidates
        .iter()
        .find(|p| p.id == mixpanel_project_id.trim())
        .ok_or(ServiceError::NotFound("mixpanel_project"))?;
    if !chosen.selectable {
        return Err(ServiceError::Mixpanel(MixpanelProblem::MissingPermission(
            chosen.reason.clone().unwrap_or_default(),
        )));
    }
    let secret = crypto::open(
        &state.key,
        &attempt.secret_ciphertext,
        &attempt_row(project, &hash),
    )
    .map_err(|_| ServiceError::Mixpanel(MixpanelProblem::SecretUnreadable))?;
    let credentials = Credentials {
        username: attempt.username,
        secret,
    };
    // Mixpanel is asked first: a failure there (unreachable, rate limited) leaves the token
    // for another try, as the error's message invites.
    let chosen = confirm(state, &credentials, chosen).await?;
    // Used up before connecting: of two picks sent at once, one connects and the other
    // finds no token (both connected, the last one's project winning).
    if !state
        .store
        .take_connect_attempt(project, &hash, Utc::now())
        .await?
    {
        return Err(ServiceError::NotFound("connect_token"));
    }
    finish(state, project, &credentials, &chosen, answer_by).await
}

/// The projects a pending choice offers while its token is valid: the picker shown again
/// after a refused pick.
pub async fn offered_projects(
    state: &AppState,
    project: &ProjectId,
    connect_token: &str,
) -> Result<Option<Vec<DiscoveredProject>>, ServiceError> {
    let attempt = state
        .store
        .connect_attempt(project, &token_hash(connect_token), Utc::now())
        .await?;
    attempt.as_ref().map(candidates_of).transpose()
}

/// The project's Mixpanel connection, if it has one.
async fn connected(
    state: &AppState,
    project: &ProjectId,
) -> Result<Option<MixpanelConnection>, ServiceError> {
    let stored = state.store.mixpanel_connection(project).await?;
    Ok(stored.map(|stored| stored.connection))
}

/// Credentials that would move a connection to another Mixpanel project: its audiences
/// would stop updating and its deliveries be refused, so that is never done unasked.
fn project_mismatch(current: &MixpanelConnection) -> ServiceError {
    ServiceError::Conflict {
        code: "mixpanel_project_mismatch",
        message: format!(
            "This UserJourneys project is connected to Mixpanel project {} ({}), which these \
             credentials do not reach. Replacing credentials keeps the connected project: use a \
             service account of {0}. To connect another Mixpanel project, disconnect first; \
             the audiences synced from {0} then stop updating.",
            current.mixpanel_project_name, current.mixpanel_project_id
        ),
    }
}

fn candidates_of(attempt: &ConnectAttempt) -> Result<Vec<DiscoveredProject>, ServiceError> {
    Ok(serde_json::from_str(&attempt.candidates).map_err(anyhow::Error::from)?)
}

/// Every later call goes to the project's own cluster: it must accept the account now, or
/// the connection would say "connected" and read nothing. `chosen` in the cluster found
/// to hold its data.
async fn confirm(
    state: &AppState,
    credentials: &Credentials,
    chosen: &DiscoveredProject,
) -> Result<DiscoveredProject, ServiceError> {
    let region = state
        .mixpanel
        .confirm(credentials, chosen)
        .await
        .map_err(|e| ServiceError::Mixpanel(e.into()))?;
    Ok(DiscoveredProject {
        region,
        unsure_regions: Vec::new(),
        ..chosen.clone()
    })
}

/// How long a connect waits for its first read of cohorts and event names.
const FIRST_READ_WAIT: Duration = Duration::from_secs(5);

/// When a connect that has saved its connection must answer: a second before the request's
/// deadline (`request_timeout`, counted here from a moment after the middleware's), so that
/// waiting for the first reads never has a saved connection answered `timed_out`.
fn answer_by(state: &AppState) -> tokio::time::Instant {
    tokio::time::Instant::now() + state.request_timeout.saturating_sub(Duration::from_secs(1))
}

/// Saves the connection to `chosen`, confirmed on its cluster, and answers by `answer_by`.
async fn finish(
    state: &AppState,
    project: &ProjectId,
    credentials: &Credentials,
    chosen: &DiscoveredProject,
    answer_by: tokio::time::Instant,
) -> Result<MixpanelConnection, ServiceError> {
    let now = uj_domain::now();
    let connection = MixpanelConnection {
        project_id: project.clone(),
        username: credentials.username.clone(),
        mixpanel_project_id: chosen.id.clone(),
        mixpanel_project_name: chosen.name.clone(),
        organization: chosen.organization.clone(),
        region: chosen.region.as_str().to_owned(),
        timezone: chosen.timezone.clone(),
        workspace_id: chosen.workspace_id.clone(),
        status: ConnectionStatus::Connected,
        status_detail: None,
        connected_at: now,
        last_verified_at: now,
    };
    let sealed = crypto::seal(&state.key, &credentials.secret, &connection_row(project));
    // Checked in the write: another connect or pick may have connected meanwhile.
    if !state
        .store
        .save_mixpanel_connection(&connection, &sealed)
        .await?
    {
        let message = match connected(state, project).await? {
            Some(current) => format!(
                "Meanwhile this UserJourneys project was connected to Mixpanel project {} ({}) \
                 (another connect, or a pick in another tab). To connect {} ({}) instead, \
                 disconnect first; the audiences synced from {0} then stop updating.",
                current.mixpanel_project_name, current.mixpanel_project_id, chosen.name, chosen.id
            ),
            None => "The connection changed while connecting; try again.".to_owned(),
        };
        return Err(ServiceError::Conflict {
            code: "mixpanel_project_mismatch",
            message,
        });
    }
    state.store.delete_connect_attempts(project).await?;
    tracing::info!(mixpanel_project_id = %chosen.id, region = chosen.region.as_str(), "Mixpanel connected");
    // Cohorts and event names are a bonus at this point: a rate limit must not undo the
    // connect, nor a slow Mixpanel (each read may retry and wait out a rate limit) hold
    // the answer past `FIRST_READ_WAIT`; the reads go on behind it.
    let reads = state.background.spawn({
        let (state, project) = (state.clone(), project.clone());
        async move {
            if let Err(error) = refresh(&state, &project).await {
                tracing::warn!(error = %error, "could not read cohorts and events after connecting");
            }
        }
        .in_current_span()
    });
    let wait =
        FIRST_READ_WAIT.min(answer_by.saturating_duration_since(tokio::time::Instant::now()));
    let _ = tokio::time::timeout(wait, reads).await;
    Ok(connection)
}

/// The stored connection with its decrypted credentials.
async fn open_connection(
    state: &AppState,
    project: &ProjectId,
) -> Result<(MixpanelConnection, Credentials), ServiceError> {
    let StoredConnection {
        connection,
        secret_ciphertext,
    } = state
        .store
        .mixpanel_connection(project)
        .await?
        .ok_or(ServiceError::NotFound("mixpanel_connection"))?;
    let secret = crypto::open(&state.key, &secret_ciphertext, &connection_row(project))
        .map_err(|_| ServiceError::Mixpanel(MixpanelProblem::SecretUnreadable))?;
    let credentials = Credentials {
        username: connection.username.clone(),
        secret,
    };
    Ok((connection, credentials))
}

fn region_of(connection: &MixpanelConnection) -> Result<Region, ServiceError> {
    Region::parse(&connection.region).ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!("stored region {:?}", connection.region))
    })
}

/// Reads the connected project's cohorts and top event names into storage.
pub async fn refresh(
    state: &AppState,
    project: &ProjectId,
) -> Result<(usize, usize), ServiceError> {
    let (connection, credentials) = open_connection(state, project).await?;
    let target = ProjectRef {
        id: &connection.mixpanel_project_id,
        region: region_of(&connection)?,
        workspace_id: connection.workspace_id.as_deref(),
    };
    let now = uj_domain::now();
    // Both read before either is written (a failed read changes nothing), paid from the
    // Mixpanel project's budget together.
    let read = state
        .mixpanel
        .cohorts_and_event_names(&credentials, &target, EVENT_NAMES)
        .await;
    let (cohorts, names) = match read {
        Ok(read) => read,
        Err(error) => {
            let problem = MixpanelProblem::from(error);
            // The connection says so now, as the next check would.
            if problem.rejects_credentials() {
                state
                    .store
                    .set_mixpanel_connection_status(
                        project,
                        connection.connected_at,
                        ConnectionStatus::CredentialsRejected,
                        Some(&problem.message()),
                        Some(now),
                    )
                    .await?;
            }
            return Err(ServiceError::Mixpanel(problem));
        }
    };
    let cohorts: Vec<MixpanelCohort> = cohorts
        .into_iter()
        .map(|c| MixpanelCohort {
            cohort_id: c.id,
            name: c.name,
            description: c.description,
            member_count: c.count,
            is_visible: c.is_visible,
            fetched_at: now,
        })
        .collect();
    // Written only if the connection read through is still the project's.
    let gone = || ServiceError::NotFound("mixpanel_connection");
    let connected_at = connection.connected_at;
    if !state
        .store
        .replace_mixpanel_cohorts(project, connected_at, now, &cohorts)
        .await?
    {
        return Err(gone());
    }
    if !state
        .store
        .record_mixpanel_event_names(project, connected_at, &names, now)
        .await?
    {
        return Err(gone());
    }
    // Reads that worked say the credentials do (a refused read or check said otherwise).
    if connection.status != ConnectionStatus::Connected {
        state
            .store
            .set_mixpanel_connection_status(
                project,
                connected_at,
                ConnectionStatus::Connected,
                None,
                Some(now),
            )
            .await?;
    }
    Ok((cohorts.len(), names.len()))
}

/// The project's connection and the cohorts last read through it.
pub async fn status(
    state: &AppState,
    project: &ProjectId,
) -> Result<Option<(MixpanelConnection, Vec<MixpanelCohort>)>, ServiceError> {
    let Some(stored) = state.store.mixpanel_connection(project).await? else {
        return Ok(None);
    };
    let cohorts = state.store.mixpanel_cohorts(project).await?;
    Ok(Some((stored.connection, cohorts)))
}

pub async fn disconnect(state: &AppState, project: &ProjectId) -> Result<(), ServiceError> {
    if state.store.delete_mixpanel_connection(project).await? {
        tracing::info!(project_id = %project, "Mixpanel disconnected");
        Ok(())
    } else {
        Err(ServiceError::NotFound("mixpanel_connection"))
    }
}

/// Asks Mixpanel whether the stored credentials still work, records the answer and
/// returns the updated connection.
#[tracing::instrument(skip_all, fields(project_id = %project))]
pub async fn verify(
    state: &AppState,
    project: &ProjectId,
) -> Result<MixpanelConnection, ServiceError> {
    let (connection, credentials) = match open_connection(state, project).await {
        Ok(opened) => opened,
        Err(ServiceError::Mixpanel(problem @ MixpanelProblem::SecretUnreadable)) => {
            // Nothing works until the secret is entered again: the status says so.
            let (connection, _) = status_or_missing(state, project).await?;
            state
                .store
                .set_mixpanel_connection_status(
                    project,
                    connection.connected_at,
                    ConnectionStatus::CredentialsRejected,
                    Some(&problem.message()),
                    None,
                )
                .await?;
            tracing::warn!("the stored Mixpanel secret does not decrypt");
            let (connection, _) = status_or_missing(state, project).await?;
            return Ok(connection);
        }
        Err(other) => return Err(other),
    };
    let answer = state
        .mixpanel
        .verify(
            &credentials,
            region_of(&connection)?,
            &connection.mixpanel_project_id,
        )
        .await;
    let now = uj_domain::now();
    let (status, detail, verified_at) = match answer {
        Ok(()) => (ConnectionStatus::Connected, None, Some(now)),
        Err(error) => match MixpanelProblem::from(error) {
            problem if problem.rejects_credentials() => (
                ConnectionStatus::CredentialsRejected,
                Some(problem.message()),
                Some(now),
            ),
            problem => (ConnectionStatus::Unreachable, Some(problem.message()), None),
        },
    };
    state
        .store
        .set_mixpanel_connection_status(
            project,
            connection.connected_at,
            status,
            detail.as_deref(),
            verified_at,
        )
        .await?;
    if status != connection.status {
        // The hourly check runs outside any request: the line names its project.
        tracing::warn!(
            project_id = project.as_str(),
            from = connection.status.as_str(),
            to = status.as_str(),
            "Mixpanel connection status changed"
        );
    }
    let (connection, _) = status_or_missing(state, project).await?;
    Ok(connection)
}

async fn status_or_missing(
    state: &AppState,
    project: &ProjectId,
) -> Result<(MixpanelConnection, Vec<MixpanelCohort>), ServiceError> {
    status(state, project)
        .await?
        .ok_or(ServiceError::NotFound("mixpanel_connection"))
}

/// After `admin adopt-key`: every connection whose stored secret the adopted key cannot open
/// says so at once (the periodic check would find it only later). Returns how many.
pub async fn mark_unreadable_secrets(
    store: &dyn uj_storage::Store,
    key: &crate::app_key::AppKey,
) -> Result<usize, ServiceError> {
    let mut marked = 0;
    for stored in store.mixpanel_connections().await? {
        let connection = &stored.connection;
        let project = &connection.project_id;
        if crypto::open(key, &stored.secret_ciphertext, &connection_row(project)).is_ok() {
            continue;
        }
        store
            .set_mixpanel_connection_status(
                project,
                connection.connected_at,
                ConnectionStatus::CredentialsRejected,
                Some(&MixpanelProblem::SecretUnreadable.message()),
                None,
            )
            .await?;
        marked += 1;
    }
    Ok(marked)
}

/// Whether the Mixpanel secrets a database holds, `(project id, sealed secret)`, were sealed
/// with `key`: true when it holds none, or when any opens with it (a key that opens one is
/// the database's; a secret that does not is damaged, as `mark_unreadable_secrets` finds).
pub fn sealed_with<'a>(
    key: &crate::app_key::AppKey,
    mut sealed: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> bool {
    sealed.len() == 0
        || sealed.any(|(project, secret)| {
            let row = connection_row(&ProjectId::from_string(project.to_owned()));
            crypto::open(key, secret, &row).is_ok()
        })
}

/// Re-verifies every connection each `interval`, so a project whose credentials Mixpanel
/// now rejects shows it.
pub async fn check_connections_every(state: AppState, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        let connections = match state.store.mixpanel_connections().await {
            Ok(connections) => connections,
            Err(error) => {
                tracing::warn!(error = %error, "cannot list Mixpanel connections to check");
                continue;
            }
        };
        for stored in connections {
            let project = stored.connection.project_id;
            if let Err(error) = verify(&state, &project).await {
                tracing::warn!(project_id = %project, error = %error, "Mixpanel connection check failed");
            }
        }
    }
}

//! Cohort sync: the webhook Mixpanel delivers cohorts to (set up, regenerate the secret,
//! disable), and the receiver that turns deliveries into Audiences (SPEC §4).

use base64::Engine;
use chrono::Utc;
use rand::{rngs::OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use uj_domain::audiences::{CohortSyncConfig, LedgerEntry, LedgerOutcome};
use uj_domain::cohort_sync::{parse_delivery, Outline, SyncAction, SyncDelivery};
use uj_domain::ids::{LedgerEntryId, ProjectId};
use uj_domain::keys::{token_hash, NewToken};
use uj_storage::{StoreError, SyncCohort, SyncPage, WebhookReceiver};

use super::ServiceError;
use crate::state::AppState;

/// The Basic Auth username Mixpanel is told to send.
const USERNAME: &str = "mixpanel";

/// What the customer pastes into Mixpanel. The secret appears only here, once; `None` when
/// cohort sync was turned on again, with its current secret (the last one shown).
pub struct SyncCredentials {
    pub webhook_url: String,
    pub username: String,
    pub secret: Option<SecretString>,
}

pub fn webhook_url(public_url: &str, webhook_id: &str) -> String {
    format!("{public_url}/webhooks/mixpanel/{webhook_id}")
}

/// 256 random bits, hex-encoded.
fn new_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    SecretString::from(hex::encode(bytes))
}

/// Sets up cohort sync for a connected project, or turns it on again: then with the webhook
/// URL and secret it had (Mixpanel's destination URL cannot be edited), and no secret shown.
pub async fn set_up(
    state: &AppState,
    project: &ProjectId,
) -> Result<SyncCredentials, ServiceError> {
    connected(state, project).await?;
    if let Some(webhook_id) = state.store.enable_cohort_sync(project).await? {
        return Ok(SyncCredentials {
            webhook_url: webhook_url(&state.public_url, &webhook_id),
            username: USERNAME.into(),
            secret: None,
        });
    }
    if state.store.cohort_sync_config(project).await?.is_some() {
        return Err(exists());
    }
    let now = uj_domain::now();
    let secret = new_secret();
    let config = CohortSyncConfig {
        project_id: project.clone(),
        webhook_id: NewToken::generate("whk_")
            .token
            .expose_secret()
            .to_lowercase(),
        username: USERNAME.into(),
        secret_hash: token_hash(secret.expose_secret()),
        created_at: now,
        secret_rotated_at: now,
        last_delivery_at: None,
        enabled: true,
    };
    // Checked above for a clear answer; this is what holds when two set-ups race.
    if !state.store.create_cohort_sync_config(&config).await? {
        return Err(exists());
    }
    Ok(SyncCredentials {
        webhook_url: webhook_url(&state.public_url, &config.webhook_id),
        username: config.username,
        secret: Some(secret),
    })
}

fn exists() -> ServiceError {
    ServiceError::Conflict {
        code: "cohort_sync_exists",
        message: "Cohort sync is already set up and on; regenerate the secret to see a new one."
            .into(),
    }
}

/// `Ok` while Mixpanel is connected: cohort sync delivers the connected project's cohorts.
async fn connected(state: &AppState, project: &ProjectId) -> Result<(), ServiceError> {
    if state.store.mixpanel_connection(project).await?.is_none() {
        return Err(ServiceError::Conflict {
            code: "not_connected",
            message:
                "Connect Mixpanel first: cohort sync delivers the connected project's cohorts."
                    .into(),
        });
    }
    Ok(())
}

/// A new secret for the webhook (the old one stops working at once), while Mixpanel is
/// connected: disconnected, no cohort would be accepted with it, and the dashboard shows no
/// secret to copy. Cohort sync turned off stays off.
pub async fn regenerate_secret(
    state: &AppState,
    project: &ProjectId,
) -> Result<SyncCredentials, ServiceError> {
    connected(state, project).await?;
    let secret = new_secret();
    // One statement: a secret regenerated as sync is turned off does not turn it back on.
    let webhook_id = state
        .store
        .rotate_cohort_sync_secret(
            project,
            &token_hash(secret.expose_secret()),
            uj_domain::now(),
        )
        .await?
        .ok_or(ServiceError::NotFound("cohort_sync"))?;
    Ok(SyncCredentials {
        webhook_url: webhook_url(&state.public_url, &webhook_id),
        username: USERNAME.into(),
        secret: Some(secret),
    })
}

/// Turns cohort sync off: the webhook answers 404 (Mixpanel pauses the sync) until it is
/// turned on again, with the same URL and secret. Audiences already synced stay.
pub async fn disable(state: &AppState, project: &ProjectId) -> Result<(), ServiceError> {
    if state.store.disable_cohort_sync(project).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound("cohort_sync"))
    }
}

/// A delivery refused, in Mixpanel's terms: the status decides whether Mixpanel pauses
/// (400/401/403/404) or retries (429/5xx); the message is shown to the customer there.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    /// The project of a known webhook that refused a delivery before reading it
    /// ([`Refusal::unread`]): [`note_refusal`] records it there.
    pub unread_for: Option<ProjectId>,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            unread_for: None,
        }
    }

    /// Refused by a known webhook before its body was read as a delivery: wrong credentials,
    /// sync turned off, or a body too large, cut short or in a coding not read.
    pub fn unread(status: u16, message: impl Into<String>, project: &ProjectId) -> Self {
        Self {
            unread_for: Some(project.clone()),
            ..Self::new(status, message)
        }
    }
}

/// How many deliveries of one project a process receives at once. Mixpanel sends a
/// destination's deliveries one after the other; a customer with several destinations on the
/// same webhook, or a retry arriving while the delivery it repeats is still being applied,
/// takes a few more (a probe's five destinations at once were refused at a cap of 4, retried).
/// Beyond that a sender is flooding, and queueing for the database writer every project
/// shares: it is answered 503 (overloaded, SPEC §4), which Mixpanel retries.
pub const DELIVERIES_AT_ONCE: usize = 8;

/// How many deliveries of all projects a process applies at once: each applied holds a
/// database connection, and on PostgreSQL the process has 16, which the SDK, the REST API
/// and the dashboard share (24 big deliveries of three projects at once left an idle
/// project's SDK calls 5 s without a connection, then 503: found by the engines' parity
/// probe). Taken once a delivery's body is in, so senders whose bodies stall hold their own
/// project's places alone (found by the session's review: they held every project's).
/// Past it, a delivery waits up to [`APPLY_WAIT`] for a place, and places given back go to
/// the waiting delivery of the project applying the fewest (a project at its own cap in
/// flight kept every place taken, and every other project's deliveries were refused: found
/// by the webhook review); one that waits longer is refused, and retried.
pub const DELIVERIES_AT_ONCE_IN_ALL: usize = 12;

/// How long a delivery whose body is in waits for a place among those applied.
pub const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The message of a delivery refused for [`DELIVERIES_AT_ONCE`].
pub const TOO_MANY_AT_ONCE: &str =
    "UserJourneys is still receiving this project's earlier deliveries; this one will be retried.";

/// The message of a delivery refused for [`DELIVERIES_AT_ONCE_IN_ALL`].
pub const TOO_MANY_IN_ALL: &str =
    "UserJourneys is receiving many deliveries right now; this one will be retried.";

/// Each project's deliveries being received, read or applied, in this process, and their
/// sum.
#[derive(Default)]
pub struct DeliveriesInFlight(std::sync::Mutex<InFlight>);

#[derive(Default)]
struct InFlight {
    by_project: std::collections::HashMap<ProjectId, usize>,
    /// Those applied ([`DeliveriesInFlight::apply`]), in all and by project.
    applying: usize,
    applying_by_project: std::collections::HashMap<ProjectId, usize>,
    /// Deliveries waiting for a place to be applied, oldest first; each is handed its place.
    /// At most [`DELIVERIES_AT_ONCE`] of a project, as those in flight.
    waiting: std::collections::VecDeque<(ProjectId, tokio::sync::oneshot::Sender<ApplySlot>)>,
}

impl InFlight {
    fn start_applying(&mut self, project: &ProjectId) {
        self.applying += 1;
        *self.applying_by_project.entry(project.clone()).or_insert(0) += 1;
    }

    fn stop_applying(&mut self, project: &ProjectId) {
        self.applying -= 1;
        if let Some(count) = self.applying_by_project.get_mut(project) {
            *count -= 1;
            if *count == 0 {
                self.applying_by_project.remove(project);
            }
        }
    }

    /// The waiting delivery of the project applying the fewest (the oldest of those), if any
    /// still waits (those that gave up are dropped).
    fn next_waiting(&mut self) -> Option<(ProjectId, tokio::sync::oneshot::Sender<ApplySlot>)> {
        self.waiting.retain(|(_, ready)| !ready.is_closed());
        let applying = |project: &ProjectId| self.applying_by_project.get(project).copied();
        let (next, _) = self
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(at, (project, _))| (applying(project).unwrap_or(0), *at))?;
        self.waiting.remove(next)
    }
}

/// One delivery's place among [`DeliveriesInFlight`], given back when dropped.
pub struct DeliverySlot {
    in_flight: std::sync::Arc<DeliveriesInFlight>,
    project: ProjectId,
}

impl DeliveriesInFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for one more delivery of `project`, unless it has [`DELIVERIES_AT_ONCE`]:
    /// `Err` with the refusal's message.
    pub fn take(
        self: &std::sync::Arc<Self>,
        project: &ProjectId,
    ) -> Result<DeliverySlot, &'static str> {
        let mut counts = self.lock();
        let count = counts.by_project.entry(project.clone()).or_insert(0);
        if *count >= DELIVERIES_AT_ONCE {
            return Err(TOO_MANY_AT_ONCE);
        }
        *count += 1;
        Ok(DeliverySlot {
            in_flight: self.clone(),
            project: project.clone(),
        })
    }

    /// A place to apply one of `project`'s deliveries whose body is in: at once while all
    /// projects have fewer than [`DELIVERIES_AT_ONCE_IN_ALL`] applied, else the first given
    /// back to it within [`APPLY_WAIT`]; `Err` with the refusal's message past that.
    pub async fn apply(
        self: &std::sync::Arc<Self>,
        project: &ProjectId,
    ) -> Result<ApplySlot, &'static str> {
        let handed = {
            let mut counts = self.lock();
            if counts.applying < DELIVERIES_AT_ONCE_IN_ALL {
                counts.start_applying(project);
                return Ok(ApplySlot {
                    in_flight: self.clone(),
                    project: project.clone(),
                });
            }
            let (ready, handed) = tokio::sync::oneshot::channel();
            counts.waiting.push_back((project.clone(), ready));
            handed
        };
        // Given up, the place handed meanwhile (if one was) is dropped with the channel,
        // which gives it on.
        match tokio::time::timeout(APPLY_WAIT, handed).await {
            Ok(Ok(slot)) => Ok(slot),
            Ok(Err(_)) | Err(_) => Err(TOO_MANY_IN_ALL),
        }
    }
}

impl Drop for DeliverySlot {
    fn drop(&mut self) {
        let mut counts = self.in_flight.lock();
        if let Some(count) = counts.by_project.get_mut(&self.project) {
            *count -= 1;
            if *count == 0 {
                counts.by_project.remove(&self.project);
            }
        }
    }
}

/// One delivery's place among those applied ([`DeliveriesInFlight::apply`]), given back
/// when dropped: to the next waiting delivery, if one waits.
pub struct ApplySlot {
    in_flight: std::sync::Arc<DeliveriesInFlight>,
    project: ProjectId,
}

impl Drop for ApplySlot {
    fn drop(&mut self) {
        let next = {
            let mut counts = self.in_flight.lock();
            counts.stop_applying(&self.project);
            let next = counts.next_waiting();
            if let Some((project, _)) = &next {
                counts.start_applying(project);
            }
            next
        };
        if let Some((project, ready)) = next {
            // A delivery that gave up meanwhile hands it back: dropped here, it goes on.
            let _ = ready.send(ApplySlot {
                in_flight: self.in_flight.clone(),
                project,
            });
        }
    }
}

/// Records a delivery a known webhook refused before reading it in the project's sync
/// history (`GET /api/v1/syncs`, the Mixpanel page), so the customer sees why Mixpanel paused:
/// its action as the sender named it and, when the right credentials sent it, the cohort
/// `body` (the body, or as much of its beginning as was read) names; nothing else of a body
/// no one vouched for. At most one a minute per project and status in each process, so that
/// a stranger's guesses (401s) neither make a write each nor hide Mixpanel's own 404 while
/// sync is off (only the right credentials reach that). Best effort: the answer stands
/// whether it is written or not.
pub async fn note_refusal(state: &AppState, refusal: &Refusal, action: Option<&str>, body: &[u8]) {
    let Some(project) = &refusal.unread_for else {
        return;
    };
    if state
        .refusal_notes
        .check_key(&format!("{}:{}", project.as_str(), refusal.status))
        .is_err()
    {
        return;
    }
    // Read once the note is to be written (once a minute at most), the rest of the body
    // skipped. Not tied to the cohort's audience: unread, the delivery may not be the
    // cohort's (a 503 of ours says nothing of it).
    let named = match refusal.status {
        401 => Outline::default(),
        _ => Outline::cohort_named(body),
    };
    let outline = Outline {
        action: action.and_then(SyncAction::parse),
        ..named
    };
    // In the history only: unread, it is no delivery the metrics count.
    let recorded = record_rejection(state, project, &outline, false, refusal.message.clone());
    if let Err(error) = recorded.await {
        tracing::warn!(status = error.status, "a refused delivery was not recorded");
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        match error {
            // Refused for Mixpanel to retry, then give the run up: its next run goes on
            // from the last membership it completed, which is the audience's.
            // Its settings changed while it waited to be applied: the retry is answered as
            // they are now (401 for a new secret, 404 turned off, 403 another project).
            StoreError::Gone("cohort sync settings") => Refusal::new(
                503,
                "UserJourneys' cohort sync settings changed while this delivery waited (its secret regenerated, sync turned off or Mixpanel disconnected); it was not applied and will be retried.",
            ),
            // Retried until it is gone: the next delivery then makes the audience anew.
            StoreError::Gone("audience being deleted") => Refusal::new(
                503,
                "This cohort's audience is being deleted in UserJourneys; the delivery was not applied and will be retried.",
            ),
            StoreError::RunReplaced => Refusal::new(
                503,
                "This page's sync run was replaced by another before it was complete, and UserJourneys did not apply it; Mixpanel's next run brings the cohort up to date.",
            ),
            StoreError::Unavailable(error) => {
                // As the APIs log their 503s: the operator sees why deliveries are refused.
                tracing::warn!(error = %error, "a cohort sync delivery could not be stored");
                Refusal::new(
                    503,
                    "UserJourneys is briefly unavailable; the delivery will be retried.",
                )
            }
            other => {
                tracing::error!(
                    error = crate::telemetry::causes(&anyhow::Error::from(other)),
                    "cohort sync delivery failed"
                );
                Refusal::new(
                    500,
                    "UserJourneys failed to store this delivery; it will be retried.",
                )
            }
        }
    }
}

/// Checks `Authorization: Basic` against the stored username and secret hash, in
/// constant time.
fn authorized(config: &CohortSyncConfig, header: Option<&str>) -> bool {
    // The scheme is case-insensitive (RFC 7235), the credentials follow after spaces.
    let Some((scheme, encoded)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((username, secret)) = decoded.split_once(':') else {
        return false;
    };
    // As pasted into Mixpanel's form: a space or line break copied along with the secret
    // would pause the customer's sync (ours hold none).
    let (username, secret) = (username.trim(), secret.trim());
    let username_ok = username.as_bytes().ct_eq(config.username.as_bytes());
    let secret_ok = token_hash(secret)
        .as_bytes()
        .ct_eq(config.secret_hash.as_bytes());
    (username_ok & secret_ok).into()
}

/// The answer to a delivery to an address that is no webhook's.
pub const UNKNOWN_WEBHOOK: &str = "This webhook URL is unknown to UserJourneys. Copy the webhook URL shown in UserJourneys (Mixpanel → Cohort sync) into a new destination.";

/// The webhook's receiver, when `authorization` is its Basic Auth: looked at before the
/// delivery's body is read, so a stranger's body is never taken in, and again once it is
/// in, so a secret regenerated meanwhile refuses it.
pub async fn authenticate(
    state: &AppState,
    webhook_id: &str,
    authorization: Option<&str>,
) -> Result<WebhookReceiver, Refusal> {
    // The configuration, the allowlist and the connection in one read: nothing but the
    // authentication is looked at until it passes.
    let receiver = state
        .store
        .webhook_receiver(webhook_id)
        .await?
        .ok_or_else(|| Refusal::new(404, UNKNOWN_WEBHOOK))?;
    let project = &receiver.config.project_id;
    if !authorized(&receiver.config, authorization) {
        return Err(Refusal::unread(401, "Basic Auth credentials were rejected by UserJourneys. Copy the username and the current secret from UserJourneys (Mixpanel → Cohort sync) into this destination.", project));
    }
    if !receiver.config.enabled {
        return Err(Refusal::unread(404, "Cohort sync is turned off in UserJourneys. Turn it on there (Mixpanel → Cohort sync; the URL and secret stay the same), then resume this sync.", project));
    }
    Ok(receiver)
}

/// Receives one authenticated delivery (see [`authenticate`]): checks it is for the
/// connected Mixpanel project, applies or stages it, writes the ledger, and only then lets
/// the caller acknowledge.
pub async fn receive(
    state: &AppState,
    receiver: WebhookReceiver,
    body: &[u8],
) -> Result<SyncAction, Refusal> {
    let project = receiver.config.project_id;
    let delivery = match parse_delivery(body, &receiver.trait_allowlist) {
        Ok(delivery) => delivery,
        Err(error) => {
            let outline = Outline::of_body(body);
            reject(state, &project, &outline, true, error.0.clone()).await?;
            return Err(Refusal::new(400, error.0));
        }
    };
    let connected = receiver.connected_project.as_ref();
    if connected.is_none_or(|(id, _)| *id != delivery.mixpanel_project_id) {
        let message = match connected {
            Some((id, name)) => format!(
                "This UserJourneys project is connected to Mixpanel project {name} ({id}), not {}. Sync cohorts of {name} to this webhook, or connect the other project.",
                delivery.mixpanel_project_id
            ),
            None => "This UserJourneys project is not connected to Mixpanel any more. Connect it again in UserJourneys.".to_owned(),
        };
        // Not the failure of an audience of the same cohort id: the connected project's
        // cohort of that id is another cohort (an audience of the project connected before
        // shows `detached` already).
        let outline = Outline::of_delivery(&delivery);
        reject(state, &project, &outline, false, message.clone()).await?;
        return Err(Refusal::new(403, message));
    }
    match apply(state, &project, &delivery, &receiver.config.secret_hash).await {
        Err(StoreError::CohortOfAnotherProject(owner)) => {
            let message = format!(
                "Cohort {} of Mixpanel project {} has the id of a cohort of Mixpanel project {owner} synced before, whose audience this project keeps. Delete that audience in UserJourneys (archive its rules first), or sync this cohort to another UserJourneys project.",
                delivery.mixpanel_cohort_id, delivery.mixpanel_project_id
            );
            // Not the old cohort's failure: kept out of its audience's history.
            let outline = Outline::of_delivery(&delivery);
            reject(state, &project, &outline, false, message.clone()).await?;
            Err(Refusal::new(403, message))
        }
        applied => {
            applied?;
            Ok(delivery.action)
        }
    }
}

/// Records a refused delivery (what it says of itself, as far as it reads), in its
/// audience's history too when `in_audience` and its cohort is one of the project's
/// audiences.
async fn reject(
    state: &AppState,
    project: &ProjectId,
    outline: &Outline,
    in_audience: bool,
    error: String,
) -> Result<(), Refusal> {
    record_rejection(state, project, outline, in_audience, error).await?;
    let action = outline.action.map_or("unknown", |a| a.as_str());
    state
        .metrics
        .delivery(action, LedgerOutcome::Rejected.as_str(), 0, 0);
    Ok(())
}

/// [`reject`]'s entry in the history, uncounted.
async fn record_rejection(
    state: &AppState,
    project: &ProjectId,
    outline: &Outline,
    in_audience: bool,
    error: String,
) -> Result<(), Refusal> {
    let entry = LedgerEntry {
        id: LedgerEntryId::generate(),
        audience_id: None,
        action: outline.action.map_or("unknown", |a| a.as_str()).to_owned(),
        session_id: outline.session_id.clone(),
        page: outline.page.map(i64::from),
        total_pages: outline.total_pages.map(i64::from),
        members: outline.members as i64,
        added: 0,
        removed: 0,
        outcome: LedgerOutcome::Rejected,
        error: Some(error),
        received_at: Utc::now(),
        mixpanel_cohort_id: outline.cohort.clone(),
        mixpanel_cohort_name: outline.cohort_name.clone(),
    };
    let audience_of = outline.cohort.as_deref().filter(|_| in_audience);
    state
        .store
        .record_sync(project, &entry, audience_of)
        .await?;
    Ok(())
}

/// Applies `delivery`, accepted with the webhook secret whose hash is `secret_hash`, if the
/// project's sync settings still take it (see [`SyncCohort::accepted_with`]).
async fn apply(
    state: &AppState,
    project: &ProjectId,
    delivery: &SyncDelivery,
    secret_hash: &str,
) -> Result<(), StoreError> {
    let store = state.store.as_ref();
    let now = uj_domain::now();
    let cohort = SyncCohort {
        mixpanel_project_id: Some(&delivery.mixpanel_project_id),
        mixpanel_cohort_id: &delivery.mixpanel_cohort_id,
        name: &delivery.cohort_name,
        description: delivery.cohort_description.as_deref(),
        accepted_with: Some(secret_hash),
    };
    let entry = LedgerEntry {
        id: LedgerEntryId::generate(),
        audience_id: None,
        action: delivery.action.as_str().to_owned(),
        session_id: delivery.session_id.clone(),
        page: Some(i64::from(delivery.page)),
        total_pages: Some(i64::from(delivery.total_pages)),
        members: delivery.members.len() as i64,
        added: 0,
        removed: 0,
        outcome: LedgerOutcome::Applied,
        // Applied, with a word on the members it left out, for the customer to see.
        error: delivery.skipped_note(),
        received_at: now,
        mixpanel_cohort_id: None,
        mixpanel_cohort_name: None,
    };
    let entry = match delivery.action {
        SyncAction::Members => {
            // A members without a session (one page of one) is its own session.
            let session = delivery
                .session_id
                .clone()
                .unwrap_or_else(|| format!("single-{}", LedgerEntryId::generate()));
            let page = SyncPage {
                session_id: &session,
                page: i64::from(delivery.page),
                total_pages: i64::from(delivery.total_pages),
                members: &delivery.members,
            };
            // The audience, the page (applied when it completes the session) and the
            // ledger entry, in one transaction.
            store
                .receive_sync_page(project, &cohort, &page, entry)
                .await?
        }
        // The audience, the members entering or leaving and the ledger entry, in one
        // transaction.
        SyncAction::AddMembers | SyncAction::RemoveMembers => {
            let leaving = delivery.action == SyncAction::RemoveMembers;
            store
                .receive_sync_diff(project, &cohort, &delivery.members, leaving, entry)
                .await?
        }
    };
    state.metrics.delivery(
        delivery.action.as_str(),
        entry.outcome.as_str(),
        entry.added,
        entry.removed,
    );
    tracing::info!(
        audience_id = entry.audience_id.as_ref().map(|a| a.as_str()),
        action = delivery.action.as_str(),
        outcome = entry.outcome.as_str(),
        page = delivery.page,
        total_pages = delivery.total_pages,
        added = entry.added,
        removed = entry.removed,
        skipped = delivery.skipped_members,
        "cohort sync delivery"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A project may receive 8 deliveries at once whatever others receive, and all
    /// projects apply 12: past 8 a delivery is refused; past 12 it waits, and a place given
    /// back goes to the waiting delivery of the project applying the fewest (a project
    /// applying 12 refused every other project's deliveries).
    #[tokio::test]
    async fn deliveries_are_capped_per_project_and_places_to_apply_shared_fairly() {
        use super::*;
        let in_flight = std::sync::Arc::new(DeliveriesInFlight::default());
        let (a, b) = (
            ProjectId::from_string("prj_a"),
            ProjectId::from_string("prj_b"),
        );
        let received: Vec<DeliverySlot> = (0..DELIVERIES_AT_ONCE)
            .map(|_| in_flight.take(&a).unwrap())
            .collect();
        assert_eq!(in_flight.take(&a).err(), Some(TOO_MANY_AT_ONCE));
        let of_b = in_flight.take(&b).unwrap();
        let mut applying = Vec::new();
        for _ in 0..DELIVERIES_AT_ONCE_IN_ALL {
            applying.push(in_flight.apply(&a).await.unwrap());
        }
        // All taken: one waits in vain (5 s), and is refused.
        assert_eq!(in_flight.apply(&a).await.err(), Some(TOO_MANY_IN_ALL));
        // `a` waits first, `b` after it: the place given back goes to `b`, and the next to
        // `a`.
        let of_a = tokio::spawn({
            let (in_flight, a) = (in_flight.clone(), a.clone());
            async move { in_flight.apply(&a).await }
        });
        tokio::task::yield_now().await;
        let for_b = tokio::spawn({
            let (in_flight, b) = (in_flight.clone(), b.clone());
            async move { in_flight.apply(&b).await }
        });
        tokio::task::yield_now().await;
        let waiting = |in_flight: &DeliveriesInFlight| {
            let counts = in_flight.lock();
            counts
                .waiting
                .iter()
                .filter(|(_, r)| !r.is_closed())
                .count()
        };
        assert_eq!(waiting(&in_flight), 2);
        applying.pop();
        let for_b = for_b.await.unwrap().unwrap();
        assert_eq!(for_b.project, b);
        assert!(!of_a.is_finished());
        applying.pop();
        applying.push(of_a.await.unwrap().unwrap());
        drop((received, of_b, applying, for_b));
        let counts = in_flight.lock();
        assert_eq!(counts.applying, 0);
        assert!(counts.by_project.is_empty() && counts.applying_by_project.is_empty());
        assert!(counts.waiting.is_empty());
    }

    use super::*;

    #[test]
    fn basic_auth_takes_the_scheme_in_any_case_and_only_the_current_secret() {
        let now = uj_domain::now();
        let config = CohortSyncConfig {
            project_id: ProjectId::generate(),
            webhook_id: "whk_test".into(),
            username: USERNAME.into(),
            secret_hash: token_hash("s3cret"),
            created_at: now,
            secret_rotated_at: now,
            last_delivery_at: None,
            enabled: true,
        };
        let encode = |pair: &str| base64::engine::general_purpose::STANDARD.encode(pair);
        let right = encode(&format!("{USERNAME}:s3cret"));
        for header in [
            format!("Basic {right}"),
            format!("basic {right}"),
            format!("BASIC  {right}"),
        ] {
            assert!(authorized(&config, Some(&header)), "{header}");
        }
        let wrong = encode(&format!("{USERNAME}:other"));
        for header in [
            format!("Basic {wrong}"),
            format!("Bearer {right}"),
            right.clone(),
            "Basic".into(),
        ] {
            assert!(!authorized(&config, Some(&header)), "{header}");
        }
        assert!(!authorized(&config, None));
    }
}

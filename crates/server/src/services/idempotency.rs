//! Creates sent with an `Idempotency-Key` (REST: studies and launch rules; the dashboard's
//! forms for studies, rules, secret keys and projects carry a form key). The answer of
//! the first request with a key is recorded in the transaction of what it created, so a
//! create that lands always has its record: a retry of the same request gets that answer
//! again, even after the first was cut off with `timed_out`; a different request with the
//! key is refused. Requests racing with one key make one resource: the unique record per
//! project and key lets one write, the others replay it. A create refused (validation, an
//! unknown study) records nothing, so the client may correct it and send the key again.

use chrono::{DateTime, Utc};
use uj_domain::idempotency::{fingerprint, IdempotencyKey, IdempotencyRecord};
use uj_domain::ids::{AccountId, ProjectId};

use super::ServiceError;
use crate::state::AppState;

/// A create's answer as the API sends it: its HTTP status and body bytes, made now or
/// replayed from the record of the first request with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub replayed: bool,
}

/// A request sent with an idempotency key: the key, and the fingerprint that tells it from
/// another request sent with the same key.
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    key: IdempotencyKey,
    fingerprint: String,
}

impl KeyedRequest {
    /// `route` is the route's pattern, `path_ids` the ids its path holds, `body` the bytes
    /// as received.
    pub fn new(
        key: IdempotencyKey,
        method: &str,
        route: &str,
        path_ids: &[&str],
        body: &[u8],
    ) -> Self {
        Self {
            fingerprint: fingerprint(method, route, path_ids, body),
            key,
        }
    }

    /// The record of `answer`, the answer to this request that created `resource_id` at `at`.
    pub(super) fn record(
        &self,
        project: &ProjectId,
        resource_id: &str,
        answer: &Answer,
        at: DateTime<Utc>,
    ) -> IdempotencyRecord {
        IdempotencyRecord {
            project_id: project.clone(),
            key: self.key.as_str().to_owned(),
            fingerprint: self.fingerprint.clone(),
            resource_id: resource_id.to_owned(),
            status: answer.status,
            body: answer.body.clone(),
            created_at: at,
        }
    }
}

/// The answer of the first request sent with `request`'s key (within the key's lifetime),
/// replayed when `request` is that same request; `None` when the key is unused or there is
/// no key. Another request with the key is refused (422 `idempotency_key_reused`).
pub(super) async fn replay(
    state: &AppState,
    project: &ProjectId,
    request: Option<&KeyedRequest>,
) -> Result<Option<Answer>, ServiceError> {
    let Some(request) = request else {
        return Ok(None);
    };
    let record = state
        .store
        .idempotency_record(project, request.key.as_str(), uj_domain::now())
        .await?;
    Ok(first(record, request)?.map(|record| Answer {
        status: record.status,
        body: record.body,
        replayed: true,
    }))
}

/// `record`, the record of `request`'s key, when it is of that same request; another
/// request with the key is refused (422 `idempotency_key_reused`).
pub(super) fn first(
    record: Option<IdempotencyRecord>,
    request: &KeyedRequest,
) -> Result<Option<IdempotencyRecord>, ServiceError> {
    match record {
        Some(record) if record.fingerprint != request.fingerprint => Err(ServiceError::Refused {
            code: "idempotency_key_reused",
            message: "This Idempotency-Key was used for a different request (another route, study or body) in the last 24 hours; send a new key for a new request.".into(),
        }),
        record => Ok(record),
    }
}

/// The answer of the first request sent with `request`'s key in a project `account` belongs
/// to, as [`replay`]: for a create that makes a project, which has no records before it
/// (its record is the new project's).
pub(super) async fn replay_of_account(
    store: &dyn uj_storage::Store,
    account: &AccountId,
    request: Option<&KeyedRequest>,
) -> Result<Option<Answer>, ServiceError> {
    let Some(request) = request else {
        return Ok(None);
    };
    let record = store
        .account_idempotency_record(account, request.key.as_str(), uj_domain::now())
        .await?;
    Ok(first(record, request)?.map(|record| Answer {
        status: record.status,
        body: record.body,
        replayed: true,
    }))
}

/// What a dashboard form whose create's answer is not kept (a secret key's secret, shown
/// once) made, by the record of its key in `project`: the id of what the same form, sent
/// first, made; none when the key is unused or there is no key.
pub(super) async fn made_by(
    store: &dyn uj_storage::Store,
    project: &ProjectId,
    request: Option<&KeyedRequest>,
) -> Result<Option<String>, ServiceError> {
    let Some(request) = request else {
        return Ok(None);
    };
    let record = store
        .idempotency_record(project, request.key.as_str(), uj_domain::now())
        .await?;
    Ok(first(record, request)?.map(|record| record.resource_id))
}

/// The answer for a keyed request its create refused (`refused`): the first request's,
/// when it landed meanwhile (a retry that found no record while the first was in flight
/// was refused by a limit the first had just reached: found by the idempotency review);
/// else the refusal.
pub(super) async fn replay_or(
    state: &AppState,
    project: &ProjectId,
    request: Option<&KeyedRequest>,
    refused: ServiceError,
) -> Result<Answer, ServiceError> {
    match replay(state, project, request).await? {
        Some(replayed) => Ok(replayed),
        None => Err(refused),
    }
}

/// The answer for a request whose create lost the race for its key: the winner's, replayed.
pub(super) async fn replay_winner(
    state: &AppState,
    project: &ProjectId,
    request: &KeyedRequest,
) -> Result<Answer, ServiceError> {
    // The winner committed before this request's write returned, so its record is there
    // (fresh: an older one was found by the first look, or replaced).
    replay(state, project, Some(request))
        .await?
        .ok_or_else(|| ServiceError::Conflict {
            code: "conflict",
            message: "Another request with this Idempotency-Key was answered at the same moment; send it again.".into(),
        })
}

//! The webhook request body as Mixpanel sends it.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::scenario::Member;

/// The request body of §7.2.
#[derive(Serialize)]
pub(super) struct SyncRequest<'a> {
    pub(super) action: &'static str,
    pub(super) parameters: SyncParameters<'a>,
}

#[derive(Serialize)]
pub(super) struct SyncParameters<'a> {
    pub(super) mixpanel_project_id: WireId,
    pub(super) mixpanel_cohort_id: WireId,
    pub(super) mixpanel_cohort_name: &'a str,
    pub(super) mixpanel_cohort_description: &'a str,
    pub(super) mixpanel_session_id: &'a str,
    pub(super) page_info: PageInfo,
    pub(super) members: Vec<Map<String, Value>>,
}

#[derive(Serialize)]
pub(super) struct PageInfo {
    pub(super) total_pages: usize,
    pub(super) page_count: usize,
}

/// Mixpanel's docs show ids as strings; real payloads may carry numbers.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum WireId {
    Text(String),
    Number(u64),
}

/// A member as the webhook carries it: `email`, `first_name` and `last_name` always (null when
/// the profile lacks them), `phone_number` from `$phone` when present, and every custom
/// property; other `$` properties are Mixpanel's own and are not exported.
pub(super) fn member_payload(member: &Member) -> Map<String, Value> {
    let properties = &member.properties;
    let mut payload: Map<String, Value> = properties
        .iter()
        .filter(|(key, _)| !key.starts_with('$'))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let standard = |key: &str| properties.get(key).cloned().unwrap_or(Value::Null);
    payload.insert(
        "mixpanel_distinct_id".into(),
        member.distinct_id.clone().into(),
    );
    payload.insert("email".into(), standard("$email"));
    payload.insert("first_name".into(), standard("$first_name"));
    payload.insert("last_name".into(), standard("$last_name"));
    if let Some(phone) = properties.get("$phone") {
        payload.insert("phone_number".into(), phone.clone());
    }
    payload
}

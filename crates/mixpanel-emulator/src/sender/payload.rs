//! The webhook request body as Mixpanel sends it.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

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
    pub(super) members: Vec<MemberPayload<'a>>,
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
/// property; other `$` properties are Mixpanel's own and are not exported. Written straight
/// from the member, without building a map per member.
pub(super) struct MemberPayload<'a>(pub(super) &'a Member);

impl Serialize for MemberPayload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let member = self.0;
        let properties = &member.properties;
        let phone = properties.get("$phone");
        // A custom property of a standard field's name gives way to the standard field.
        let standard = |key: &str| match key {
            "mixpanel_distinct_id" | "email" | "first_name" | "last_name" => true,
            "phone_number" => phone.is_some(),
            _ => false,
        };
        let custom = properties
            .iter()
            .filter(|(key, _)| !key.starts_with('$') && !standard(key));
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in custom {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("mixpanel_distinct_id", &member.distinct_id)?;
        for (field, property) in [
            ("email", "$email"),
            ("first_name", "$first_name"),
            ("last_name", "$last_name"),
        ] {
            map.serialize_entry(field, properties.get(property).unwrap_or(&Value::Null))?;
        }
        if let Some(phone) = phone {
            map.serialize_entry("phone_number", phone)?;
        }
        map.end()
    }
}

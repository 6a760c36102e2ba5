//! Mixpanel's cohort-sync webhook payload (reference §7.2), parsed leniently: ids may be
//! strings or numbers, `members` may be missing, unknown member keys are trait candidates.
//! Parsing also filters traits: only JSON primitives, only allowlisted keys, and the
//! contact fields (email, names, phone) only when explicitly allowlisted.

use serde::Deserialize;
use serde_json::{Map, Value};

/// What a delivery asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAction {
    /// A full snapshot (one page of a session): replace membership once complete.
    Members,
    AddMembers,
    RemoveMembers,
}

impl SyncAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncAction::Members => "members",
            SyncAction::AddMembers => "add_members",
            SyncAction::RemoveMembers => "remove_members",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "members" => Some(SyncAction::Members),
            "add_members" => Some(SyncAction::AddMembers),
            "remove_members" => Some(SyncAction::RemoveMembers),
            _ => None,
        }
    }
}

/// One member as we keep it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyncedMember {
    /// `mixpanel_distinct_id`.
    pub provider_member_id: String,
    pub reference_id: Option<String>,
    /// Allowlisted primitive traits.
    pub traits: Map<String, Value>,
}

impl SyncedMember {
    /// The id an SDK `referenceId` matches: `reference_id` when present, else the
    /// provider member id.
    pub fn match_key(&self) -> &str {
        self.reference_id
            .as_deref()
            .unwrap_or(&self.provider_member_id)
    }
}

/// A parsed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncDelivery {
    pub action: SyncAction,
    pub mixpanel_project_id: String,
    pub mixpanel_cohort_id: String,
    pub cohort_name: String,
    pub cohort_description: String,
    pub session_id: Option<String>,
    /// 1-based page number and the session's page count; `members` without `page_info` is
    /// page 1 of 1.
    pub page: u32,
    pub total_pages: u32,
    pub members: Vec<SyncedMember>,
}

/// Why a body is not a Mixpanel cohort-sync delivery; the message is shown to the
/// customer inside Mixpanel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// The most pages one session may announce (10 million members at 1000 a page, Mixpanel's
/// cohort limit, with room to spare).
pub const MAX_TOTAL_PAGES: u32 = 100_000;

#[derive(Deserialize)]
struct RawDelivery {
    action: Option<String>,
    parameters: Option<RawParameters>,
}

#[derive(Deserialize)]
struct RawParameters {
    mixpanel_project_id: Option<Value>,
    mixpanel_cohort_id: Option<Value>,
    mixpanel_cohort_name: Option<String>,
    mixpanel_cohort_description: Option<String>,
    mixpanel_session_id: Option<Value>,
    page_info: Option<RawPageInfo>,
    #[serde(default)]
    members: Option<Vec<Map<String, Value>>>,
}

#[derive(Deserialize)]
struct RawPageInfo {
    total_pages: Option<Value>,
    page_count: Option<Value>,
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn count(value: Option<&Value>) -> Option<u32> {
    match value? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn bad(message: impl Into<String>) -> PayloadError {
    PayloadError(message.into())
}

/// Parses a delivery body, keeping only traits named in `allowlist`.
pub fn parse_delivery(body: &[u8], allowlist: &[String]) -> Result<SyncDelivery, PayloadError> {
    let raw: RawDelivery = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "The body is not valid JSON for a Mixpanel cohort sync: {e}"
        ))
    })?;
    let action_text = raw
        .action
        .ok_or_else(|| bad("The body has no \"action\"."))?;
    let action = SyncAction::parse(&action_text).ok_or_else(|| {
        bad(format!(
            "Unknown action {action_text:?}; expected members, add_members or remove_members."
        ))
    })?;
    let p = raw
        .parameters
        .ok_or_else(|| bad("The body has no \"parameters\"."))?;
    let mixpanel_project_id = p
        .mixpanel_project_id
        .as_ref()
        .and_then(id_text)
        .ok_or_else(|| bad("parameters.mixpanel_project_id is missing."))?;
    let mixpanel_cohort_id = p
        .mixpanel_cohort_id
        .as_ref()
        .and_then(id_text)
        .ok_or_else(|| bad("parameters.mixpanel_cohort_id is missing."))?;
    let (page, total_pages) = match &p.page_info {
        None => (1, 1),
        Some(info) => {
            let total = count(info.total_pages.as_ref()).ok_or_else(|| {
                bad("parameters.page_info.total_pages must be a positive integer.")
            })?;
            let page = count(info.page_count.as_ref()).ok_or_else(|| {
                bad("parameters.page_info.page_count must be a positive integer.")
            })?;
            (page, total)
        }
    };
    if total_pages == 0 || total_pages > MAX_TOTAL_PAGES || page == 0 || page > total_pages {
        return Err(bad(format!(
            "page_info says page {page} of {total_pages}; pages count from 1 up to total_pages (at most {MAX_TOTAL_PAGES})."
        )));
    }
    let session_id = p.mixpanel_session_id.as_ref().and_then(id_text);
    if action == SyncAction::Members && total_pages > 1 && session_id.is_none() {
        return Err(bad(
            "A members sync of several pages needs parameters.mixpanel_session_id.",
        ));
    }
    let members = p
        .members
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, member)| member_of(index, member, allowlist))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SyncDelivery {
        action,
        mixpanel_project_id,
        mixpanel_cohort_id,
        cohort_name: p.mixpanel_cohort_name.unwrap_or_default(),
        cohort_description: p.mixpanel_cohort_description.unwrap_or_default(),
        session_id,
        page,
        total_pages,
        members,
    })
}

fn member_of(
    index: usize,
    mut fields: Map<String, Value>,
    allowlist: &[String],
) -> Result<SyncedMember, PayloadError> {
    let provider_member_id = fields
        .remove("mixpanel_distinct_id")
        .as_ref()
        .and_then(id_text)
        .ok_or_else(|| bad(format!("members[{index}] has no mixpanel_distinct_id.")))?;
    let reference_id = fields
        .remove("reference_id")
        .or_else(|| fields.remove("$reference_id"))
        .as_ref()
        .and_then(id_text);
    let traits = fields
        .into_iter()
        // Only allowlisted keys survive, so the contact fields Mixpanel always sends
        // (email, first_name, last_name, phone_number) are dropped unless named there.
        .filter(|(key, value)| {
            matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
                && allowlist.iter().any(|k| k == key)
        })
        .collect();
    Ok(SyncedMember {
        provider_member_id,
        reference_id,
        traits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value, allowlist: &[&str]) -> Result<SyncDelivery, PayloadError> {
        let allowlist: Vec<String> = allowlist.iter().map(|s| (*s).to_owned()).collect();
        parse_delivery(body.to_string().as_bytes(), &allowlist)
    }

    fn page(action: &str, page_info: Value, members: Value) -> Value {
        json!({"action": action, "parameters": {
            "mixpanel_project_id": "2301456", "mixpanel_cohort_id": 51234,
            "mixpanel_cohort_name": "Trial", "mixpanel_cohort_description": "Day 3",
            "mixpanel_session_id": "s-1", "page_info": page_info, "members": members}})
    }

    #[test]
    fn a_full_page_is_parsed_with_ids_as_strings_or_numbers() {
        let delivery = parse(
            page("members", json!({"total_pages": "3", "page_count": 2}),
                 json!([{"mixpanel_distinct_id": 42, "email": "a@x.com", "reference_id": "app-1", "plan": "pro"}])),
            &["plan"],
        )
        .unwrap();
        assert_eq!(delivery.action, SyncAction::Members);
        assert_eq!(
            (
                delivery.mixpanel_project_id.as_str(),
                delivery.mixpanel_cohort_id.as_str()
            ),
            ("2301456", "51234")
        );
        assert_eq!((delivery.page, delivery.total_pages), (2, 3));
        let member = &delivery.members[0];
        assert_eq!(member.provider_member_id, "42");
        assert_eq!(member.reference_id.as_deref(), Some("app-1"));
        assert_eq!(member.match_key(), "app-1");
        assert_eq!(
            member.traits,
            json!({"plan": "pro"}).as_object().unwrap().clone()
        );
    }

    #[test]
    fn traits_are_primitives_on_the_allowlist_and_contact_fields_need_it_explicitly() {
        let members = json!([{"mixpanel_distinct_id": "u", "email": "a@x.com", "first_name": "A",
            "phone_number": "+1", "plan": "pro", "nested": {"a": 1}, "list": [1], "none": null, "score": 3}]);
        let none = parse(
            page(
                "add_members",
                json!({"total_pages": 1, "page_count": 1}),
                members.clone(),
            ),
            &[],
        )
        .unwrap();
        assert!(none.members[0].traits.is_empty());
        let some = parse(
            page(
                "add_members",
                json!({"total_pages": 1, "page_count": 1}),
                members,
            ),
            &["email", "plan", "nested", "list", "none", "score"],
        )
        .unwrap();
        let keys: Vec<&str> = some.members[0].traits.keys().map(String::as_str).collect();
        assert_eq!(keys, ["email", "plan", "score"]);
        assert_eq!(some.members[0].match_key(), "u");
    }

    #[test]
    fn members_without_page_info_are_one_page_of_one() {
        let body = json!({"action": "members", "parameters": {"mixpanel_project_id": 1, "mixpanel_cohort_id": 2}});
        let delivery = parse(body, &[]).unwrap();
        assert_eq!(
            (delivery.page, delivery.total_pages, delivery.members.len()),
            (1, 1, 0)
        );
        assert_eq!(delivery.session_id, None);
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        let cases = [
            (json!("nope"), "not valid JSON"),
            (json!({"parameters": {}}), "no \"action\""),
            (
                json!({"action": "delete_everything", "parameters": {}}),
                "Unknown action",
            ),
            (json!({"action": "members"}), "no \"parameters\""),
            (
                json!({"action": "members", "parameters": {"mixpanel_cohort_id": 1}}),
                "mixpanel_project_id",
            ),
            (
                page(
                    "members",
                    json!({"total_pages": 2, "page_count": 3}),
                    json!([]),
                ),
                "page 3 of 2",
            ),
            (
                page(
                    "members",
                    json!({"total_pages": 0, "page_count": 0}),
                    json!([]),
                ),
                "page 0 of 0",
            ),
            (
                page(
                    "add_members",
                    json!({"total_pages": 1, "page_count": 1}),
                    json!([{"email": "x"}]),
                ),
                "members[0] has no mixpanel_distinct_id",
            ),
        ];
        for (body, expected) in cases {
            let error = parse(body.clone(), &[]).unwrap_err();
            assert!(error.0.contains(expected), "{body}: {error}");
        }
        assert!(parse_delivery(b"{not json", &[]).is_err());
    }
}

//! Mixpanel's cohort-sync webhook payload (reference §7.2), parsed leniently: ids may be
//! strings or numbers, `members` may be missing, unknown member keys are trait candidates.
//! Parsing also filters traits: only JSON primitives, only allowlisted keys, and the
//! contact fields (email, names, phone) only when explicitly allowlisted.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::json::repair_lone_surrogates;

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

    /// Mixpanel's name of an action, in any case (`Add_Members` too: a 400 would pause the
    /// customer's sync).
    pub fn parse(raw: &str) -> Option<Self> {
        [
            SyncAction::Members,
            SyncAction::AddMembers,
            SyncAction::RemoveMembers,
        ]
        .into_iter()
        .find(|action| action.as_str().eq_ignore_ascii_case(raw))
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
    /// None when the delivery carries none: the audience keeps its own.
    pub cohort_description: Option<String>,
    pub session_id: Option<String>,
    /// 1-based page number and the session's page count; `members` without `page_info` is
    /// page 1 of 1.
    pub page: u32,
    pub total_pages: u32,
    pub members: Vec<SyncedMember>,
    /// Members listed without any id (no distinct id, no reference id), which cannot be
    /// addressed: left out of `members`.
    pub skipped_members: usize,
}

impl SyncDelivery {
    /// What the sync history says of the members left out, and of those kept whom no app can
    /// name (their id is longer than the 256 characters an SDK `referenceId` may have, or
    /// holds a control character), if any.
    pub fn skipped_note(&self) -> Option<String> {
        let skipped = match self.skipped_members {
            0 => None,
            1 => Some(
                "Skipped 1 member without a mixpanel_distinct_id; the rest was applied.".into(),
            ),
            n => Some(format!(
                "Skipped {n} members without a mixpanel_distinct_id; the rest was applied."
            )),
        };
        let unnamed = self
            .members
            .iter()
            .filter(|m| !an_app_can_send(m.match_key()))
            .count();
        let unnamed = match unnamed {
            0 => None,
            1 => Some("1 member's id (reference_id, or else mixpanel_distinct_id) is over 256 characters or holds a control character, a bidirectional override or U+FFFD: no app can send it as a referenceId, so it is kept but never matched.".into()),
            n => Some(format!("{n} members' ids (reference_id, or else mixpanel_distinct_id) are over 256 characters or hold a control character, a bidirectional override or U+FFFD: no app can send them as a referenceId, so they are kept but never matched.")),
        };
        match (skipped, unnamed) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b),
        }
    }
}

/// Whether an app can send `id` as its user's `referenceId`: the SDK takes it as it is
/// (`crate::invites::reference_id`: at most 256 characters, no control character,
/// bidirectional override or U+FFFD).
fn an_app_can_send(id: &str) -> bool {
    crate::invites::reference_id(id).is_ok_and(|taken| taken == id)
}

/// Who a diff's members are, as a digest (SHA-256 of their ids in the order sent): a call
/// delivered again has the same one, whatever its `page_info` says.
pub fn members_digest(members: &[SyncedMember]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for member in members {
        hasher.update(member.provider_member_id.as_bytes());
        hasher.update([0]);
        hasher.update(
            member
                .reference_id
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
        );
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// Why a body is not a Mixpanel cohort-sync delivery; the message is shown to the
/// customer inside Mixpanel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// How long a full sync's unfinished staging is kept after its latest page: past it the run
/// is dropped (hourly), and a page of it that comes later starts it afresh.
pub const STAGING_KEPT_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The most pages one session may announce (10 million members at 1000 a page, Mixpanel's
/// cohort limit, with room to spare).
pub const MAX_TOTAL_PAGES: u32 = 100_000;

#[derive(Deserialize)]
struct RawDelivery<'a> {
    action: Option<String>,
    #[serde(borrow)]
    parameters: Option<RawParameters<'a>>,
}

#[derive(Deserialize)]
struct RawParameters<'a> {
    mixpanel_project_id: Option<Value>,
    mixpanel_cohort_id: Option<Value>,
    mixpanel_cohort_name: Option<Value>,
    mixpanel_cohort_description: Option<Value>,
    mixpanel_session_id: Option<Value>,
    page_info: Option<RawPageInfo>,
    #[serde(default, borrow)]
    members: Option<Vec<RawMember<'a>>>,
}

/// One member's fields in arrival order, borrowed from the body where JSON allows it (no
/// escapes): a page of 1000 members is read without a map or a string per field. Nested
/// values are skipped, as traits are primitives.
struct RawMember<'a>(Vec<(Cow<'a, str>, Field<'a>)>);

enum Field<'a> {
    Text(Cow<'a, str>),
    Number(Number),
    Bool(bool),
    /// `null`, an array or an object.
    Other,
}

impl Field<'_> {
    /// An id ([`id_of`]); `None` for blank text, `null` and nested values.
    fn id_text(&self) -> Result<Option<String>, UnusableId> {
        match self {
            Field::Text(s) => id_of_text(s),
            Field::Number(n) => id_of_number(n),
            _ => Ok(None),
        }
    }

    fn into_value(self) -> Option<Value> {
        match self {
            Field::Text(s) => Some(Value::String(s.into_owned())),
            Field::Number(n) => Some(Value::Number(n)),
            Field::Bool(b) => Some(Value::Bool(b)),
            Field::Other => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawMember<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawMember<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                // serde_json tells no size: a page's members are all held at once, so each
                // keeps the room it needs (8 fields reserved each made 4 MiB of `{}` 600 MB).
                let mut fields = Vec::new();
                while let Some(Text(key)) = map.next_key()? {
                    let FieldOf(value) = map.next_value()?;
                    fields.push((key, value));
                }
                fields.shrink_to_fit();
                Ok(RawMember(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A string borrowed from the body when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Key;
        impl<'de> Visitor<'de> for Key {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
        }
        deserializer.deserialize_str(Key).map(Text)
    }
}

/// A field's value, strings borrowed like [`Text`].
struct FieldOf<'a>(Field<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for FieldOf<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Field::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Field::Number(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Field::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Number::from_f64(v).map_or(Field::Other, Field::Number))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }
        deserializer.deserialize_any(Any).map(FieldOf)
    }
}

#[derive(Deserialize)]
struct RawPageInfo {
    total_pages: Option<Value>,
    page_count: Option<Value>,
}

/// A value that cannot be an id: a number that is not an integer of 64 bits (one past 64
/// bits arrives rounded through a float, so two such ids could become one), text with a
/// NUL character (which PostgreSQL cannot store in text), or text longer than
/// [`MAX_ID_BYTES`].
#[derive(Debug)]
struct UnusableId;

/// The longest id kept: ids are keys of indexes, and PostgreSQL's b-tree rows stop near
/// 2.7 KB (a member's row key holds its audience, session and id). Mixpanel's distinct ids
/// are far shorter.
pub const MAX_ID_BYTES: usize = 1024;

/// What every id must be, for messages.
const ID_RULE: &str = "ids are integers of at most 64 bits (whole numbers written as floats \
    below 2^53) or non-blank strings of at most 1024 bytes without NUL characters";

/// An id: a non-blank string (trimmed) or an integer; `None` for blank text, `null` and
/// nested values.
fn id_of(value: &Value) -> Result<Option<String>, UnusableId> {
    match value {
        Value::String(s) => id_of_text(s),
        Value::Number(n) => id_of_number(n),
        _ => Ok(None),
    }
}

fn id_of_text(s: &str) -> Result<Option<String>, UnusableId> {
    let s = s.trim();
    if s.contains('\0') || s.len() > MAX_ID_BYTES {
        Err(UnusableId)
    } else {
        Ok((!s.is_empty()).then(|| s.to_owned()))
    }
}

fn id_of_number(n: &Number) -> Result<Option<String>, UnusableId> {
    // A whole number written as a float (a numeric property Mixpanel keeps as a double).
    if n.is_i64() || n.is_u64() {
        return Ok(Some(n.to_string()));
    }
    match n.as_f64().and_then(crate::json::whole_number) {
        Some(whole) => Ok(Some(whole.to_string())),
        None => Err(UnusableId),
    }
}

/// `parameters.{name}` as an id; a message naming it when it is there but unusable.
fn parameter_id(value: Option<&Value>, name: &str) -> Result<Option<String>, PayloadError> {
    value
        .map(id_of)
        .transpose()
        .map(Option::flatten)
        .map_err(|UnusableId| bad(format!("parameters.{name} is not a usable id: {ID_RULE}.")))
}

/// `parameters.{name}`, one of Mixpanel's ids: a string of digits (or a number), written
/// without leading zeros, so that `"0051290"` and `51290` name one cohort.
fn mixpanel_id(value: Option<&Value>, name: &str) -> Result<String, PayloadError> {
    let id =
        parameter_id(value, name)?.ok_or_else(|| bad(format!("parameters.{name} is missing.")))?;
    match id
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| id.parse::<u64>())
    {
        Some(Ok(number)) => Ok(number.to_string()),
        _ => Err(bad(format!(
            "parameters.{name} is not a Mixpanel id: Mixpanel's ids are strings of digits, at most 18446744073709551615."
        ))),
    }
}

/// The most characters of a cohort's name and description kept (longer ones are cut).
pub const NAME_CHARS: usize = 200;
pub const DESCRIPTION_CHARS: usize = 1000;

/// Free text Mixpanel sends (a cohort's name and description): a number or a boolean is
/// read as its text, `null` as none; refused when it is an array or an object.
/// Shown as names are: trimmed, each line break or other control character (and each
/// bidirectional override, which would reorder the page around it) a space, at most
/// `most` characters (cut with "…"). Blank is empty: a blank name keeps the audience's, a
/// blank description clears it.
fn parameter_text(
    value: Option<Value>,
    name: &str,
    most: usize,
) -> Result<Option<String>, PayloadError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text,
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::Bool(flag)) => flag.to_string(),
        Some(_) => return Err(bad(format!("parameters.{name} must be text."))),
    };
    // A NUL too is a space: a display name is no reason to pause a sync.
    Ok(Some(
        crate::validation::one_line(&text, most).unwrap_or_default(),
    ))
}

/// A cohort's name in a body that may not parse, as [`parameter_text`] reads it; none
/// when blank or not text.
fn name_of(value: &Value) -> Option<String> {
    parameter_text(Some(value.clone()), "mixpanel_cohort_name", NAME_CHARS)
        .ok()
        .flatten()
        .filter(|name| !name.is_empty())
}

/// A page number or count: a whole number of 32 bits, also written as text (`"3"`) or as
/// a float (`3.0`); `1.5` is none.
fn count(value: Option<&Value>) -> Option<u32> {
    let whole =
        |f: f64| (f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f)).then_some(f as u32);
    match value? {
        Value::Number(n) => match n.as_u64() {
            Some(n) => u32::try_from(n).ok(),
            None => n.as_f64().and_then(whole),
        },
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The longest refusal message, in bytes: it may quote the body (an unknown action, a value
/// of the wrong type), and it is answered and kept in the sync history.
pub const MAX_MESSAGE: usize = 1000;

fn bad(message: impl Into<String>) -> PayloadError {
    let mut message = message.into();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    PayloadError(message)
}

/// What a delivery says of itself as far as it reads: for the sync history's entry of a
/// refusal, so the customer sees which run, page and cohort Mixpanel must send again.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outline {
    pub cohort: Option<String>,
    /// The cohort's name, as a delivery's is read (on one line, at most 200 characters).
    pub cohort_name: Option<String>,
    pub action: Option<SyncAction>,
    pub session_id: Option<String>,
    pub page: Option<u32>,
    pub total_pages: Option<u32>,
    pub members: usize,
}

impl Outline {
    /// A body that [`parse_delivery`] refused, where it is JSON: each part that reads as
    /// it should (ids usable, numbers whole, the action a known one), the rest left out.
    pub fn of_body(body: &[u8]) -> Self {
        Self::read(body)
            .or_else(|| repair_lone_surrogates(body).and_then(|body| Self::read(&body)))
            .unwrap_or_default()
    }

    /// [`Self::of_body`], where the body is JSON. Its fields are slices of the body, and
    /// only the few read are parsed; the members are counted, not kept (read as a tree, a
    /// 4 MiB list of small members took ~100 MB, for each of 12 deliveries at once: found by
    /// the webhook review).
    fn read(body: &[u8]) -> Option<Self> {
        type Fields<'a> = std::collections::HashMap<String, &'a serde_json::value::RawValue>;
        let top: Fields = serde_json::from_slice(body).ok()?;
        let parameters: Fields = top
            .get("parameters")
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default();
        let value = |fields: &Fields, name: &str| {
            let raw = fields.get(name)?;
            serde_json::from_str::<Value>(raw.get()).ok()
        };
        let usable_id = |name: &str| id_of(&value(&parameters, name)?).ok().flatten();
        let page_info = value(&parameters, "page_info");
        let page_info = |name: &str| count(page_info.as_ref()?.get(name));
        Some(Self {
            cohort: usable_id("mixpanel_cohort_id"),
            cohort_name: value(&parameters, "mixpanel_cohort_name")
                .as_ref()
                .and_then(name_of),
            action: value(&top, "action")
                .as_ref()
                .and_then(Value::as_str)
                .and_then(SyncAction::parse),
            session_id: usable_id("mixpanel_session_id"),
            page: page_info("page_count"),
            total_pages: page_info("total_pages"),
            members: parameters.get("members").map_or(0, |raw| {
                serde_json::from_str::<Elements>(raw.get()).map_or(0, |n| n.0)
            }),
        })
    }
}

/// How many elements a JSON array has, each read and dropped; not an array is an error.
struct Elements(usize);

impl<'de> Deserialize<'de> for Elements {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counting;
        impl<'de> Visitor<'de> for Counting {
            type Value = Elements;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Elements, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Elements(n))
            }
        }
        deserializer.deserialize_seq(Counting)
    }
}

impl Outline {
    /// The cohort a body names, from the whole body or its beginning, read alone: the rest
    /// is skipped, not built into a tree (a body of a few MiB of small values would take
    /// tens of MiB as one), and a beginning cut short is searched for its two parameters.
    /// For a refusal recorded before the body is read as a delivery.
    pub fn cohort_named(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Named {
            parameters: Option<Parameters>,
        }
        #[derive(Deserialize)]
        struct Parameters {
            mixpanel_cohort_id: Option<Value>,
            mixpanel_cohort_name: Option<Value>,
        }
        let (id, name) = match serde_json::from_slice::<Named>(body) {
            Ok(named) => named.parameters.map_or((None, None), |p| {
                (p.mixpanel_cohort_id, p.mixpanel_cohort_name)
            }),
            Err(_) => {
                // A beginning only: the first value of each name, wherever it is.
                let text = String::from_utf8_lossy(body);
                let value_of = |name: &str| {
                    let key = format!("\"{name}\"");
                    let at = text.find(&key)?;
                    let rest = text[at + key.len()..].trim_start().strip_prefix(':')?;
                    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                    values.next()?.ok()
                };
                (
                    value_of("mixpanel_cohort_id"),
                    value_of("mixpanel_cohort_name"),
                )
            }
        };
        Self {
            cohort: id.and_then(|id| id_of(&id).ok().flatten()),
            cohort_name: name.as_ref().and_then(name_of),
            ..Self::default()
        }
    }

    /// A delivery that parsed (and was refused for another reason).
    pub fn of_delivery(delivery: &SyncDelivery) -> Self {
        Self {
            cohort: Some(delivery.mixpanel_cohort_id.clone()),
            cohort_name: Some(delivery.cohort_name.clone()).filter(|name| !name.is_empty()),
            action: Some(delivery.action),
            session_id: delivery.session_id.clone(),
            page: Some(delivery.page),
            total_pages: Some(delivery.total_pages),
            members: delivery.members.len(),
        }
    }
}

/// Keeps only the traits `allowlist` names (a key taken off it is no longer served nor kept);
/// whether any was dropped.
pub fn keep_allowlisted(traits: &mut Map<String, Value>, allowlist: &[String]) -> bool {
    let before = traits.len();
    traits.retain(|key, _| allowlist.iter().any(|k| k == key));
    traits.len() != before
}

/// Parses a delivery body, keeping only traits named in `allowlist`.
pub fn parse_delivery(body: &[u8], allowlist: &[String]) -> Result<SyncDelivery, PayloadError> {
    let not_json = |e: serde_json::Error| {
        bad(format!(
            "The body is not valid JSON for a Mixpanel cohort sync: {}",
            without_values(&e)
        ))
    };
    match serde_json::from_slice(body) {
        Ok(raw) => delivery_of(raw, allowlist),
        // Only a body that does not parse is scanned, and read again only when repaired.
        Err(error) => match repair_lone_surrogates(body) {
            Some(repaired) => delivery_of(
                serde_json::from_slice(&repaired).map_err(not_json)?,
                allowlist,
            ),
            None => Err(not_json(error)),
        },
    }
}

/// serde's reason, without the value it quotes ("invalid type: string \"ada@example.com\",
/// expected a member object"): the message goes to the log, the answer Mixpanel shows and the
/// sync history, and the value may be a member's id or email (found by the telemetry
/// review). What was expected, and where, is kept.
fn without_values(error: &serde_json::Error) -> String {
    let reason = error.to_string();
    let reason = match reason.rfind(" at line ") {
        Some(at) => &reason[..at],
        None => &reason,
    };
    let reason = match error.classify() {
        serde_json::error::Category::Data => {
            // The last: a quoted value may hold the words itself.
            let expected = reason.rfind(", expected ").map(|at| &reason[at + 2..]);
            match (reason.split_once(':'), expected) {
                (Some((kind, _)), Some(expected))
                    if kind == "invalid type" || kind == "invalid value" =>
                {
                    format!("{kind}, {expected}")
                }
                _ if reason.starts_with("invalid length ") => "invalid length".to_owned(),
                _ if reason.starts_with("unknown variant ") => "unknown variant".to_owned(),
                _ if reason.starts_with("missing field ") => reason.to_owned(),
                _ => "a value of the wrong kind".to_owned(),
            }
        }
        _ => reason.to_owned(),
    };
    format!(
        "{reason} at line {} column {}",
        error.line(),
        error.column()
    )
}

fn delivery_of(raw: RawDelivery<'_>, allowlist: &[String]) -> Result<SyncDelivery, PayloadError> {
    let action_text = raw
        .action
        .ok_or_else(|| bad("The body has no \"action\"."))?;
    let action = SyncAction::parse(&action_text).ok_or_else(|| {
        let mut shown: String = action_text.chars().take(64).collect();
        if shown.len() < action_text.len() {
            shown.push('…');
        }
        bad(format!(
            "Unknown action {shown:?}; expected members, add_members or remove_members."
        ))
    })?;
    let p = raw
        .parameters
        .ok_or_else(|| bad("The body has no \"parameters\"."))?;
    let mixpanel_project_id = mixpanel_id(p.mixpanel_project_id.as_ref(), "mixpanel_project_id")?;
    let mixpanel_cohort_id = mixpanel_id(p.mixpanel_cohort_id.as_ref(), "mixpanel_cohort_id")?;
    let members = p.members.unwrap_or_default();
    let (page, total_pages) = match &p.page_info {
        None => (1, 1),
        // A diff is applied as it comes, page numbers unused: one whose page_info is off
        // (an empty diff saying 0 pages) is still applied, recorded as one page.
        Some(info) if action != SyncAction::Members => {
            match (
                count(info.page_count.as_ref()),
                count(info.total_pages.as_ref()),
            ) {
                (Some(page), Some(total))
                    if 0 < page && page <= total && total <= MAX_TOTAL_PAGES =>
                {
                    (page, total)
                }
                _ => (1, 1),
            }
        }
        // An empty cohort's snapshot may say it has no pages.
        Some(info)
            if members.is_empty()
                && count(info.total_pages.as_ref()) == Some(0)
                && count(info.page_count.as_ref()).is_some_and(|page| page <= 1) =>
        {
            (1, 1)
        }
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
    let session_id = parameter_id(p.mixpanel_session_id.as_ref(), "mixpanel_session_id")?;
    if action == SyncAction::Members && total_pages > 1 && session_id.is_none() {
        return Err(bad(
            "A members sync of several pages needs parameters.mixpanel_session_id.",
        ));
    }
    let listed = members.len();
    let mut kept = Vec::with_capacity(listed);
    for (index, member) in members.into_iter().enumerate() {
        kept.extend(member_of(index, member, allowlist)?);
    }
    // A snapshot's absent members exit: a page listing members none of whom can be addressed
    // (the id's field renamed, say) would remove everyone it meant to keep.
    if action == SyncAction::Members && listed > 0 && kept.is_empty() {
        return Err(bad(format!(
            "This page of a full sync lists members, but none of its {listed} members has a mixpanel_distinct_id; applied, it would remove them all. Export mixpanel_distinct_id in this sync."
        )));
    }
    Ok(SyncDelivery {
        action,
        mixpanel_project_id,
        mixpanel_cohort_id,
        cohort_name: parameter_text(p.mixpanel_cohort_name, "mixpanel_cohort_name", NAME_CHARS)?
            .unwrap_or_default(),
        cohort_description: parameter_text(
            p.mixpanel_cohort_description,
            "mixpanel_cohort_description",
            DESCRIPTION_CHARS,
        )?,
        session_id,
        page,
        total_pages,
        skipped_members: listed - kept.len(),
        members: kept,
    })
}

/// The member, or `None` for one with no id at all, which cannot be addressed: skipped
/// rather than refusing the page (a 400 pauses the customer's whole sync).
fn member_of(
    index: usize,
    RawMember(fields): RawMember<'_>,
    allowlist: &[String],
) -> Result<Option<SyncedMember>, PayloadError> {
    // A key given twice counts with its last value, as in a JSON object read into a map.
    let last = |name: &str| fields.iter().rposition(|(key, _)| key == name);
    let id = |key: &str| {
        last(key)
            .map(|i| fields[i].1.id_text())
            .transpose()
            .map(Option::flatten)
            .map_err(|UnusableId| {
                bad(format!(
                    "members[{index}].{key} is not a usable id: {ID_RULE}."
                ))
            })
    };
    // `$reference_id` stands in only when there is no `reference_id` key at all.
    let reference_key = if last("reference_id").is_some() {
        "reference_id"
    } else {
        "$reference_id"
    };
    let distinct_id = id("mixpanel_distinct_id")?;
    let reference_id = id(reference_key)?;
    let Some(provider_member_id) = distinct_id else {
        // A member with a reference id is someone real, whom a snapshot would drop (members
        // are kept by distinct id): refused, not skipped.
        return match reference_id {
            Some(_) => Err(bad(format!(
                "members[{index}] has a {reference_key} but no mixpanel_distinct_id."
            ))),
            None => Ok(None),
        };
    };
    let mut traits = Map::new();
    for (key, value) in fields {
        // Only allowlisted keys survive, so the contact fields Mixpanel always sends
        // (email, first_name, last_name, phone_number) are dropped unless named there.
        if key == "mixpanel_distinct_id" || key == reference_key {
            continue;
        }
        if !allowlist.iter().any(|k| *k == key) {
            continue;
        }
        match value.into_value() {
            Some(value) => traits.insert(key.into_owned(), value),
            None => traits.remove(key.as_ref()),
        };
    }
    Ok(Some(SyncedMember {
        provider_member_id,
        reference_id,
        traits,
    }))
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
        // Written with leading zeros, an id is the same id.
        let mut zeros = page(
            "members",
            json!({"total_pages": 1, "page_count": 1}),
            json!([]),
        );
        zeros["parameters"]["mixpanel_cohort_id"] = json!("0051234");
        assert_eq!(parse(zeros, &[]).unwrap().mixpanel_cohort_id, "51234");
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
    fn members_are_read_alike_however_their_json_is_spelled() {
        // Escapes in keys and values, a repeated key (the last counts), `$reference_id` when
        // there is no `reference_id`, numbers and booleans as traits, ids with whitespace.
        let body = r#"{"action": "add_members", "parameters": {"mixpanel_project_id": 1,
            "mixpanel_cohort_id": 2, "members": [
              {"mixpanel_distinct_id": " u1 ", "pl\u0061n": "pr\"o", "plan": "team", "score": 2.5,
               "vip": true, "$reference_id": 7},
              {"mixpanel_distinct_id": 9, "reference_id": "app-9", "$reference_id": "x",
               "tags": ["a"], "score": {"nested": [1, {"deep": null}]}},
              {"mixpanel_distinct_id": "u3", "reference_id": null, "$reference_id": "ignored"}
            ]}}"#;
        let allowlist = ["plan", "score", "vip", "$reference_id"].map(String::from);
        let delivery = parse_delivery(body.as_bytes(), &allowlist).unwrap();
        let [first, second, third] = &delivery.members[..] else {
            panic!("three members: {:?}", delivery.members);
        };
        assert_eq!(first.provider_member_id, "u1");
        assert_eq!(first.reference_id.as_deref(), Some("7"));
        assert_eq!(
            Value::Object(first.traits.clone()),
            json!({"plan": "team", "score": 2.5, "vip": true})
        );
        assert_eq!(
            (
                second.provider_member_id.as_str(),
                second.reference_id.as_deref()
            ),
            ("9", Some("app-9"))
        );
        assert_eq!(
            Value::Object(second.traits.clone()),
            json!({"$reference_id": "x"})
        );
        assert_eq!(
            (
                third.provider_member_id.as_str(),
                third.reference_id.as_deref()
            ),
            ("u3", None)
        );
        assert_eq!(
            Value::Object(third.traits.clone()),
            json!({"$reference_id": "ignored"})
        );

        let escaped = r#"{"action": "add_members", "parameters": {"mixpanel_project_id": 1,
            "mixpanel_cohort_id": 2, "members": [{"mixpanel_distinct_id": "a\nb", "plan": "\u00e9"}]}}"#;
        let delivery = parse_delivery(escaped.as_bytes(), &allowlist).unwrap();
        assert_eq!(delivery.members[0].provider_member_id, "a\nb");
        assert_eq!(delivery.members[0].traits["plan"], "é");

        let not_an_object = r#"{"action": "add_members", "parameters": {"mixpanel_project_id": 1,
            "mixpanel_cohort_id": 2, "members": ["u1"]}}"#;
        let error = parse_delivery(not_an_object.as_bytes(), &allowlist).unwrap_err();
        assert!(error.0.contains("not valid JSON"), "{error}");
        // Said without the value, which may be a member's email (it was quoted), with what
        // was expected and where.
        let an_email = not_an_object.replace("\"u1\"", "\"dave@example.com\"");
        let error = parse_delivery(an_email.as_bytes(), &allowlist).unwrap_err();
        assert!(!error.0.contains("dave"), "{error}");
        assert!(
            error.0.contains("invalid type, expected") && error.0.contains(" at line 2 column"),
            "{error}"
        );
        for (shape, value) in [
            (r#""mixpanel_project_id": "p-secret-1""#, "p-secret-1"),
            (r#""members": {"n": "x-secret-2"}"#, "x-secret-2"),
        ] {
            let body = format!(r#"{{"action": "add_members", "parameters": {{{shape}}}}}"#);
            if let Err(error) = parse_delivery(body.as_bytes(), &allowlist) {
                assert!(!error.0.contains(value), "{error}");
            }
        }
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

    /// serde_json reads an integer past 64 bits as a float, rounded: two such ids would
    /// become one member, so they are refused instead.
    #[test]
    fn ids_past_64_bits_are_refused_not_rounded() {
        let body = br#"{"action": "add_members", "parameters": {"mixpanel_project_id": 1,
            "mixpanel_cohort_id": 2, "members": [{"mixpanel_distinct_id": 18446744073709551617}]}}"#;
        let error = parse_delivery(body, &[]).unwrap_err();
        assert!(error.0.contains("integers of at most 64 bits"), "{error}");
        let body = br#"{"action": "add_members", "parameters": {"mixpanel_project_id": 1,
            "mixpanel_cohort_id": 2, "members": [{"mixpanel_distinct_id": 18446744073709551615},
            {"mixpanel_distinct_id": -9223372036854775808}]}}"#;
        let ids: Vec<String> = parse_delivery(body, &[])
            .unwrap()
            .members
            .into_iter()
            .map(|m| m.provider_member_id)
            .collect();
        assert_eq!(ids, ["18446744073709551615", "-9223372036854775808"]);
    }

    /// A page's members are held at once: each keeps no more room than its fields need.
    #[test]
    fn a_member_keeps_the_room_its_fields_need() {
        let members: Vec<RawMember> =
            serde_json::from_str(r#"[{}, {"a": 1}, {"a": 1, "b": "x", "c": true}]"#).unwrap();
        let room: Vec<(usize, usize)> = members
            .iter()
            .map(|m| (m.0.len(), m.0.capacity()))
            .collect();
        assert_eq!(room, [(0, 0), (1, 1), (3, 3)]);
    }

    /// A numeric property Mixpanel keeps as a double (`12345.0`, `1e3`) is the whole number
    /// it names: one such member paused the customer's whole sync. Past 2^53 a float may be
    /// rounded: refused.
    #[test]
    fn whole_numbers_written_as_floats_are_ids() {
        let body = br#"{"action": "add_members", "parameters": {"mixpanel_project_id": 1,
            "mixpanel_cohort_id": 2, "members": [{"mixpanel_distinct_id": 42.0, "reference_id": 12345.0},
            {"mixpanel_distinct_id": 1e3}, {"mixpanel_distinct_id": -7.0}]}}"#;
        let delivery = parse_delivery(body, &[]).unwrap();
        let ids: Vec<(&str, Option<&str>)> = delivery
            .members
            .iter()
            .map(|m| (m.provider_member_id.as_str(), m.reference_id.as_deref()))
            .collect();
        assert_eq!(ids, [("42", Some("12345")), ("1000", None), ("-7", None)]);
        for refused in ["1.5", "9007199254740993.0", "1e300"] {
            let body = format!(
                r#"{{"action": "add_members", "parameters": {{"mixpanel_project_id": 1,
                "mixpanel_cohort_id": 2, "members": [{{"mixpanel_distinct_id": {refused}}}]}}}}"#
            );
            let error = parse_delivery(body.as_bytes(), &[]).unwrap_err();
            assert!(error.0.contains("not a usable id"), "{refused}: {error}");
        }
    }

    /// Page numbers matter only to a `members` session; a diff or an empty cohort's
    /// snapshot that says "0 pages" is applied (a 400 would pause the customer's sync).
    #[test]
    fn diffs_and_empty_snapshots_saying_zero_pages_are_one_page() {
        for action in ["add_members", "remove_members"] {
            for info in [
                json!({"total_pages": 0, "page_count": 0}),
                json!({"total_pages": 0, "page_count": 1}),
                json!({"total_pages": "x"}),
            ] {
                let body = page(action, info.clone(), json!([{"mixpanel_distinct_id": "a"}]));
                let delivery = parse(body, &[]).unwrap();
                assert_eq!(
                    (delivery.page, delivery.total_pages),
                    (1, 1),
                    "{action} {info}"
                );
                assert_eq!(delivery.members.len(), 1);
            }
        }
        let diff = parse(
            page(
                "add_members",
                json!({"total_pages": 3, "page_count": 2}),
                json!([]),
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            (diff.page, diff.total_pages),
            (2, 3),
            "kept when it makes sense"
        );
        for info in [
            json!({"total_pages": 0, "page_count": 0}),
            json!({"total_pages": 0, "page_count": 1}),
        ] {
            let empty = parse(page("members", info.clone(), json!([])), &[]).unwrap();
            assert_eq!((empty.page, empty.total_pages), (1, 1), "{info}");
        }
    }

    #[test]
    fn a_refused_body_still_names_its_cohort_where_it_can() {
        let cases: [(&[u8], Option<&str>); 5] = [
            (
                br#"{"parameters": {"mixpanel_cohort_id": 51234}}"#,
                Some("51234"),
            ),
            (
                br#"{"action": "x", "parameters": {"mixpanel_cohort_id": " 7 "}}"#,
                Some("7"),
            ),
            (br#"{"parameters": {"mixpanel_cohort_id": 1.5}}"#, None),
            (br#"{"parameters": {}}"#, None),
            (b"{not json", None),
        ];
        for (body, cohort) in cases {
            assert_eq!(Outline::of_body(body).cohort.as_deref(), cohort);
        }
        // The rest of what a refused page says of itself, as far as it reads.
        let refused = br#"{"action": "members", "parameters": {"mixpanel_cohort_id": 7,
            "mixpanel_session_id": "s-1", "page_info": {"page_count": 3, "total_pages": 2},
            "members": [{}, {}]}}"#;
        assert_eq!(
            Outline::of_body(refused),
            Outline {
                cohort: Some("7".into()),
                cohort_name: None,
                action: Some(SyncAction::Members),
                session_id: Some("s-1".into()),
                page: Some(3),
                total_pages: Some(2),
                members: 2,
            }
        );
        let odd = br#"{"action": "explode", "parameters": {"mixpanel_session_id": "a\u0000"}}"#;
        assert_eq!(Outline::of_body(odd), Outline::default());
        // Parameters that are not an object, members that are not a list: the rest reads.
        let askew = br#"{"action": "add_members", "parameters": "x"}"#;
        assert_eq!(Outline::of_body(askew).action, Some(SyncAction::AddMembers));
        let askew = br#"{"parameters": {"mixpanel_cohort_id": 7, "members": {"a": 1}}}"#;
        assert_eq!(
            (
                Outline::of_body(askew).cohort.as_deref(),
                Outline::of_body(askew).members
            ),
            (Some("7"), 0)
        );
        // Members of any shape are counted, nested ones once.
        let counted = br#"{"parameters": {"members": [0, [1, 2], {"a": [3]}, "s", null]}}"#;
        assert_eq!(Outline::of_body(counted).members, 5);
    }

    /// A body refused before it is read as a delivery names its cohort as far as its whole,
    /// or its beginning, reads: the id as a delivery's, the name on one line.
    #[test]
    fn a_body_or_its_beginning_names_its_cohort() {
        let named = |body: &[u8]| {
            let outline = Outline::cohort_named(body);
            (outline.cohort, outline.cohort_name)
        };
        let whole =
            br#"{"action": "members", "parameters": {"members": [{"mixpanel_distinct_id": "a"}],
            "mixpanel_cohort_id": 51234, "mixpanel_cohort_name": " Trial\nusers\u202e "}}"#;
        assert_eq!(
            named(whole),
            (Some("51234".into()), Some("Trial users".into()))
        );
        let cut = br#"{"action": "members", "parameters": {"mixpanel_cohort_id": "7",
            "mixpanel_cohort_name": "Fans", "members": [{"mixpanel_distinct_id": "a"}, {"mixpa"#;
        assert_eq!(named(cut), (Some("7".into()), Some("Fans".into())));
        for none in [
            &br#"{"parameters": {"mixpanel_cohort_id": 1.5, "mixpanel_cohort_name": " "}}"#[..],
            br#"{"action": "members", "parameters": {"members": [{"mixpanel_distinct_id": "a"}, {"#,
            b"not json",
        ] {
            assert_eq!(named(none), (None, None));
        }
        assert_eq!(
            Outline::of_body(whole).cohort_name.as_deref(),
            Some("Trial users")
        );
    }

    /// Members kept whom no app can name are said in the sync history (they were applied
    /// without a word, and the SDK refuses their ids).
    #[test]
    fn members_no_app_can_name_are_noted() {
        let body = serde_json::json!({"action": "add_members", "parameters": {
            "mixpanel_project_id": 1, "mixpanel_cohort_id": 2, "members": [
                {"mixpanel_distinct_id": "ok"},
                {"mixpanel_distinct_id": "d1", "reference_id": "tab\there"},
                {"mixpanel_distinct_id": "r".repeat(300)},
                {"mixpanel_distinct_id": "line\nbreak", "reference_id": "fine"},
                {"mixpanel_distinct_id": "d2", "reference_id": "\u{202e}evil\u{202d}txt"},
                {"mixpanel_distinct_id": "d3", "reference_id": "broken \u{fffd}"},
                {"email": "no id"}]}});
        let delivery = parse_delivery(body.to_string().as_bytes(), &[]).unwrap();
        assert_eq!(delivery.members.len(), 6);
        let note = delivery.skipped_note().unwrap();
        assert!(note.starts_with("Skipped 1 member without"), "{note}");
        assert!(note.contains(" 4 members' ids (reference_id"), "{note}");
    }

    /// A cohort's name is shown as names are: a blank one keeps the audience's (it
    /// replaced a good name with spaces), line breaks and tabs are spaces, and 50,000
    /// characters are cut to 200.
    #[test]
    fn cohort_names_are_trimmed_kept_on_one_line_and_bounded() {
        let named = |name: Value| {
            let body = serde_json::json!({"action": "add_members", "parameters": {
                "mixpanel_project_id": 1, "mixpanel_cohort_id": 2, "mixpanel_cohort_name": name,
                "mixpanel_cohort_description": "  Day\n3 ", "members": []}});
            parse_delivery(body.to_string().as_bytes(), &[]).unwrap()
        };
        assert_eq!(named(serde_json::json!("   ")).cohort_name, "");
        assert_eq!(named(serde_json::json!("\u{1}\u{7f}")).cohort_name, "");
        assert_eq!(named(serde_json::json!("Tri\u{0}al")).cohort_name, "Tri al");
        assert_eq!(
            named(serde_json::json!("Fans\u{202e}nuR")).cohort_name,
            "Fans nuR"
        );
        assert_eq!(
            named(serde_json::json!("\n Churn\trisk ")).cohort_name,
            "Churn risk"
        );
        let long = named(serde_json::json!("é".repeat(50_000))).cohort_name;
        assert_eq!(long, format!("{}…", "é".repeat(200)));
        assert_eq!(
            named(Value::Null).cohort_description.as_deref(),
            Some("Day 3")
        );
        // A description cleared in Mixpanel is cleared (a blank name keeps the audience's:
        // Mixpanel's cohorts always have one); one not sent keeps the audience's.
        let described = |description: Value| {
            let body = serde_json::json!({"action": "add_members", "parameters": {
                "mixpanel_project_id": 1, "mixpanel_cohort_id": 2,
                "mixpanel_cohort_description": description, "members": []}});
            parse_delivery(body.to_string().as_bytes(), &[])
                .unwrap()
                .cohort_description
        };
        assert_eq!(described(serde_json::json!(" \n")).as_deref(), Some(""));
        assert_eq!(described(Value::Null), None);
    }

    #[test]
    fn a_body_with_a_lone_surrogate_is_parsed_anywhere_in_it() {
        let body = br#"{"action": "add_members", "parameters": {"mixpanel_project_id": 1,
            "mixpanel_cohort_id": 2, "mixpanel_cohort_name": "Fans \ud83d", "members": [
              {"mixpanel_distinct_id": "u1", "bio": "I love \ud83d", "plan": "pro\udc00"},
              {"mixpanel_distinct_id": "u2\ud83d\ude00", "note": "\\ud83d"}]}}"#;
        let delivery = parse_delivery(body, &["plan".to_owned(), "note".to_owned()]).unwrap();
        assert_eq!(delivery.cohort_name, "Fans \u{FFFD}");
        assert_eq!(delivery.members[0].provider_member_id, "u1");
        assert_eq!(delivery.members[0].traits["plan"], "pro\u{FFFD}");
        assert_eq!(delivery.members[1].provider_member_id, "u2\u{1F600}");
        assert_eq!(delivery.members[1].traits["note"], "\\ud83d");
        // What else is wrong is still said, and a refusal still names its cohort.
        let broken = br#"{"action": "members", "parameters": {"mixpanel_cohort_id": 7,
            "mixpanel_cohort_name": "\ud83d", "members": [}"#;
        assert!(parse_delivery(broken, &[])
            .unwrap_err()
            .0
            .contains("not valid JSON"));
        let refused = br#"{"action": "members", "parameters": {"mixpanel_cohort_id": 7,
            "mixpanel_cohort_name": "\ud83d"}}"#;
        assert!(parse_delivery(refused, &[]).is_err());
        assert_eq!(Outline::of_body(refused).cohort.as_deref(), Some("7"));
    }

    #[test]
    fn actions_are_read_in_any_case() {
        for (raw, action) in [
            ("Add_Members", SyncAction::AddMembers),
            ("REMOVE_MEMBERS", SyncAction::RemoveMembers),
            ("MEMBERS", SyncAction::Members),
            ("Members", SyncAction::Members),
        ] {
            let delivery = parse(
                page(raw, json!({"total_pages": 1, "page_count": 1}), json!([])),
                &[],
            )
            .unwrap();
            assert_eq!(delivery.action, action, "{raw}");
        }
        assert_eq!(SyncAction::parse("add members"), None);
    }

    #[test]
    fn page_numbers_written_as_whole_floats_are_read() {
        let delivery = parse(
            page(
                "members",
                json!({"total_pages": 3.0, "page_count": 1.0}),
                json!([{"mixpanel_distinct_id": "a"}]),
            ),
            &[],
        )
        .unwrap();
        assert_eq!((delivery.page, delivery.total_pages), (1, 3));
        let diff = parse(
            page(
                "add_members",
                json!({"total_pages": 2.0, "page_count": 2.0}),
                json!([]),
            ),
            &[],
        )
        .unwrap();
        assert_eq!((diff.page, diff.total_pages), (2, 2));
        for info in [
            json!({"total_pages": 3, "page_count": 1.5}),
            json!({"total_pages": 2.5, "page_count": 1}),
            json!({"total_pages": 3, "page_count": -1.0}),
            json!({"total_pages": 1e300, "page_count": 1}),
        ] {
            let error = parse(
                page(
                    "members",
                    info.clone(),
                    json!([{"mixpanel_distinct_id": "a"}]),
                ),
                &[],
            )
            .unwrap_err();
            assert!(error.0.contains("positive integer"), "{info}: {error}");
        }
    }

    #[test]
    fn a_cohort_name_or_description_sent_as_a_number_is_its_text() {
        let mut body = page(
            "members",
            json!({"total_pages": 1, "page_count": 1}),
            json!([]),
        );
        body["parameters"]["mixpanel_cohort_name"] = json!(2024);
        body["parameters"]["mixpanel_cohort_description"] = json!(1.5);
        let delivery = parse(body.clone(), &[]).unwrap();
        assert_eq!(delivery.cohort_name, "2024");
        assert_eq!(delivery.cohort_description.as_deref(), Some("1.5"));
        body["parameters"]["mixpanel_cohort_name"] = json!(null);
        body["parameters"]["mixpanel_cohort_description"] = json!(null);
        let delivery = parse(body.clone(), &[]).unwrap();
        assert_eq!(
            (delivery.cohort_name.as_str(), delivery.cohort_description),
            ("", None)
        );
        body["parameters"]["mixpanel_cohort_name"] = json!({"en": "Trial"});
        let error = parse(body, &[]).unwrap_err();
        assert!(
            error.0.contains("mixpanel_cohort_name must be text"),
            "{error}"
        );
    }

    /// A profile without a distinct id cannot be addressed: it is skipped (and counted)
    /// rather than pausing the customer's whole sync.
    #[test]
    fn members_without_any_id_are_skipped_and_counted() {
        for action in ["members", "add_members", "remove_members"] {
            let delivery = parse(
                page(
                    action,
                    json!({"total_pages": 2, "page_count": 1}),
                    json!([{"mixpanel_distinct_id": null, "email": "x"}, {"mixpanel_distinct_id": "a"},
                           {"email": "y"}, {"mixpanel_distinct_id": "  "}, {"mixpanel_distinct_id": ""}]),
                ),
                &[],
            )
            .unwrap();
            let ids: Vec<&str> = delivery
                .members
                .iter()
                .map(|m| m.provider_member_id.as_str())
                .collect();
            assert_eq!(ids, ["a"], "{action}");
            assert_eq!(delivery.skipped_members, 4, "{action}");
        }
        let diff = parse(
            page(
                "remove_members",
                json!({"total_pages": 1, "page_count": 1}),
                json!([{"mixpanel_distinct_id": null}]),
            ),
            &[],
        )
        .unwrap();
        assert_eq!((diff.members.len(), diff.skipped_members), (0, 1));
    }

    /// A snapshot's absent members exit: a page none of whose members has an id (the field
    /// renamed, say) would empty the audience, so it is refused; a page of 0 pages saying
    /// it has members stays a contradiction; and a member Mixpanel identifies by a
    /// reference id alone is a real one, refused rather than dropped.
    #[test]
    fn skipping_never_lets_a_snapshot_drop_members_it_names() {
        let cases = [
            (
                page(
                    "members",
                    json!({"total_pages": 1, "page_count": 1}),
                    json!([{"distinct_id": "a"}, {"distinct_id": "b"}]),
                ),
                "none of its 2 members has a mixpanel_distinct_id",
            ),
            (
                page(
                    "members",
                    json!({"total_pages": 0, "page_count": 0}),
                    json!([{"mixpanel_distinct_id": null}]),
                ),
                "page 0 of 0",
            ),
            (
                page(
                    "add_members",
                    json!({"total_pages": 1, "page_count": 1}),
                    json!([{"mixpanel_distinct_id": "a"}, {"reference_id": "app-1"}]),
                ),
                "members[1] has a reference_id but no mixpanel_distinct_id",
            ),
        ];
        for (body, expected) in cases {
            let error = parse(body.clone(), &[]).unwrap_err();
            assert!(error.0.contains(expected), "{body}: {error}");
        }
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
                    json!([{"mixpanel_distinct_id": "a"}]),
                ),
                "page 0 of 0",
            ),
            (
                page(
                    "add_members",
                    json!({"total_pages": 1, "page_count": 1}),
                    json!([{"mixpanel_distinct_id": "a\u{0}b"}]),
                ),
                "members[0].mixpanel_distinct_id is not a usable id",
            ),
            (
                page(
                    "add_members",
                    json!({"total_pages": 1, "page_count": 1}),
                    json!([{"mixpanel_distinct_id": "a", "reference_id": "\u{0}"}]),
                ),
                "members[0].reference_id is not a usable id",
            ),
            (
                page(
                    "members",
                    json!({"total_pages": 1, "page_count": 1}),
                    json!([{"mixpanel_distinct_id": 1.5}]),
                ),
                "members[0].mixpanel_distinct_id is not a usable id",
            ),
            (
                json!({"action": "members", "parameters": {"mixpanel_project_id": 1,
                    "mixpanel_cohort_id": 2, "mixpanel_session_id": "s\u{0}"}}),
                "parameters.mixpanel_session_id is not a usable id",
            ),
            (
                json!({"action": "members", "parameters": {"mixpanel_project_id": 1,
                    "mixpanel_cohort_id": "c".repeat(MAX_ID_BYTES + 1)}}),
                "parameters.mixpanel_cohort_id is not a usable id",
            ),
            // Mixpanel's ids are strings of digits: anything else would become an audience.
            (
                json!({"action": "members", "parameters": {"mixpanel_project_id": 1,
                    "mixpanel_cohort_id": "abc"}}),
                "parameters.mixpanel_cohort_id is not a Mixpanel id",
            ),
            (
                json!({"action": "members", "parameters": {"mixpanel_project_id": 1,
                    "mixpanel_cohort_id": -5}}),
                "parameters.mixpanel_cohort_id is not a Mixpanel id",
            ),
            (
                json!({"action": "members", "parameters": {"mixpanel_project_id": "p1",
                    "mixpanel_cohort_id": 5}}),
                "parameters.mixpanel_project_id is not a Mixpanel id",
            ),
            (
                page(
                    "add_members",
                    json!({"total_pages": 1, "page_count": 1}),
                    json!([{"mixpanel_distinct_id": "é".repeat(MAX_ID_BYTES / 2 + 1)}]),
                ),
                "members[0].mixpanel_distinct_id is not a usable id",
            ),
        ];
        for (body, expected) in cases {
            let error = parse(body.clone(), &[]).unwrap_err();
            assert!(error.0.contains(expected), "{body}: {error}");
        }
        assert!(parse_delivery(b"{not json", &[]).is_err());
    }
}

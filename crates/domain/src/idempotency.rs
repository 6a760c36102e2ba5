//! Idempotency keys of the REST API's creates (`Idempotency-Key`, as in the IETF draft
//! draft-ietf-httpapi-idempotency-key-header and Stripe): a retry sent with the key of a
//! create that landed gets that create's answer again instead of making a second resource.

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use crate::ids::ProjectId;

/// How long a key's record answers retries. An older record is ignored, its key may be
/// used again, and it is purged.
pub const KEY_LIFETIME: TimeDelta = TimeDelta::hours(24);

/// The longest key, in characters.
pub const MAX_KEY_LENGTH: usize = 255;

/// A client's `Idempotency-Key`: 1–255 printable ASCII characters (`!` to `~`, no space),
/// taken as sent (a key sent quoted, as the draft's structured-field string, keeps its
/// quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key in a header value's bytes, or `None` when they are not one.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let printable = raw.iter().all(|b| (0x21..=0x7e).contains(b));
        let sized = (1..=MAX_KEY_LENGTH).contains(&raw.len());
        if !(printable && sized) {
            return None;
        }
        std::str::from_utf8(raw)
            .ok()
            .map(|key| Self(key.to_owned()))
    }

    /// The key of a dashboard form sent with `raw` (a key as [`parse`](Self::parse) takes
    /// one), in a space of its own: stored after `form `, which no header's key can be (it
    /// has a space), so a form's key cannot take a key the project's API client sends
    /// (found by the idempotency review: a form sent with `ci-study-1` made that API create
    /// a 422).
    pub fn of_form(raw: &[u8]) -> Option<Self> {
        Self::parse(raw).map(|key| Self(format!("form {}", key.0)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What tells one request from another under the same key: the method, the route, the
/// ids in its path and the SHA-256 of its body's bytes, hashed together (hex). Each part
/// is length-prefixed, so no two different requests run together into one.
pub fn fingerprint(method: &str, route: &str, path_ids: &[&str], body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for part in [method, route].iter().chain(path_ids) {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(Sha256::digest(body));
    hex::encode(hasher.finalize())
}

/// A create's answer, kept under its key to be replayed to retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub project_id: ProjectId,
    pub key: String,
    /// The [`fingerprint`] of the request that made it.
    pub fingerprint: String,
    /// The id of what the create made (a study, a launch rule).
    pub resource_id: String,
    /// The answer's HTTP status and body, byte for byte.
    pub status: u16,
    pub body: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_to_255_printable_ascii_characters() {
        for ok in [
            "a",
            "8e03978e-40d5-43e8-bc93-6894a57f9324",
            "\"quoted\"",
            "!~",
        ] {
            assert_eq!(
                IdempotencyKey::parse(ok.as_bytes()).map(|k| k.0),
                Some(ok.to_owned())
            );
        }
        assert!(IdempotencyKey::parse("k".repeat(255).as_bytes()).is_some());
        for bad in [
            "".as_bytes(),
            "k".repeat(256).as_bytes(),
            b"with space",
            b"tab\there",
            "caf\u{e9}".as_bytes(),
            b"nul\0",
            b"del\x7f",
        ] {
            assert_eq!(IdempotencyKey::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_form_s_key_is_none_a_header_can_send() {
        let form = IdempotencyKey::of_form(b"ci-study-1").unwrap();
        assert_ne!(Some(&form), IdempotencyKey::parse(b"ci-study-1").as_ref());
        assert_eq!(IdempotencyKey::parse(form.as_str().as_bytes()), None);
        assert_eq!(IdempotencyKey::of_form(b"a b"), None);
    }

    #[test]
    fn requests_differing_in_any_part_have_different_fingerprints() {
        let base = fingerprint("POST", "/r/{id}", &["a"], b"{}");
        assert_eq!(base, fingerprint("POST", "/r/{id}", &["a"], b"{}"));
        for other in [
            fingerprint("PUT", "/r/{id}", &["a"], b"{}"),
            fingerprint("POST", "/s/{id}", &["a"], b"{}"),
            fingerprint("POST", "/r/{id}", &["b"], b"{}"),
            fingerprint("POST", "/r/{id}", &["a"], b"{ }"),
            fingerprint("POST", "/r/{id}", &[], b"{}"),
            // Parts cannot run together.
            fingerprint("POS", "T/r/{id}", &["a"], b"{}"),
        ] {
            assert_ne!(base, other);
        }
    }
}

//! Typed, prefixed, time-sortable ids (`prj_01j…`). Sorting by id is sorting by creation
//! time, which is what cursor pagination (`starting_after`) relies on.

use std::fmt;
use std::sync::Mutex;

/// ULIDs from one monotonic generator, so ids made within the same millisecond still
/// sort in the order they were made (within this process).
fn next_ulid() -> ulid::Ulid {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Overflow needs 2^80 ids in one millisecond; fall back to a plain ULID regardless.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, next_ulid().to_string().to_lowercase()))
            }

            /// Wraps an id read from storage or a URL. Ids are opaque: a malformed one
            /// simply matches nothing.
            pub fn from_string(raw: impl Into<String>) -> Self {
                Self(raw.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// A dashboard account.
    AccountId, "acc"
);
typed_id!(
    /// A project, the tenant.
    ProjectId, "prj"
);
typed_id!(
    /// A named secret REST key.
    SecretKeyId, "key"
);
typed_id!(
    /// An invitation for someone to join a project.
    InvitationId, "inv"
);
typed_id!(
    /// An audience: one synced Mixpanel cohort.
    AudienceId, "aud"
);
typed_id!(
    /// One cohort-sync delivery in the ledger.
    LedgerEntryId, "syn"
);
typed_id!(
    /// A study (an AI interview to launch).
    StudyId, "std"
);
typed_id!(
    /// A study launch rule.
    LaunchRuleId, "rul"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_sort_by_creation() {
        let ids: Vec<ProjectId> = (0..1000).map(|_| ProjectId::generate()).collect();
        assert!(ids[0].as_str().starts_with("prj_"));
        assert_eq!(ids[0].as_str().len(), 4 + 26);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }
}

//! The domain of UserJourneys: value types that validate themselves once, typed ids,
//! key and token formats, and the records the storage layer hands back.
//!
//! Nothing here talks to a database, the network or the clock beyond `Utc::now()` in
//! constructors; everything is plain data and pure functions.

pub mod accounts;
pub mod audiences;
pub mod cohort_sync;
pub mod idempotency;
pub mod ids;
pub mod invites;
pub mod json;
pub mod keys;
pub mod mixpanel;
pub mod pacing;
pub mod password;
pub mod projects;
pub mod studies;
mod validation;

pub use validation::bounded_text as validation_text;
pub use validation::name as validation_name;
pub use validation::one_line;
pub use validation::sendable_event;

/// Now, to the microsecond both databases keep: a time a write answers at once equals the
/// one reads answer later.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    stored(chrono::Utc::now())
}

/// `at` as the databases keep it: cut to the microsecond. A time taken from a client is cut
/// before it is checked, so the check holds for the value stored.
pub fn stored(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    // In microseconds, which hold every time chrono does (nanoseconds end in 2262).
    chrono::DateTime::from_timestamp_micros(at.timestamp_micros())
        .expect("a time chrono holds, to the microsecond")
}
pub use validation::ValidationError;

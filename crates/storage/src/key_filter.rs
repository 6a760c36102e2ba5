//! Which users may have rows, so the SDK's reads can skip the database for the others.
//!
//! Every config load and app event reads the user's invites, and a config load their
//! audience memberships: index seeks that, for most users (no invite yet, or in no
//! audience), find nothing. Skipping them took an unknown user's config load from 33 / 51
//! to 27 / 30 µs of server CPU (`docs/benchmarks.md`). A serving SQLite store keeps a
//! Bloom filter of the keys those reads look up (reference ids with invites, match keys
//! with audience rows): a key the filter has never seen has no rows, and the read is
//! skipped; a key it may have seen is read as before (about one in a hundred wrongly, at
//! the size it is made for).
//!
//! "Never seen" is exact only while every row's key is noted before its transaction
//! commits, by this process: the store notes keys where writes of invites and members
//! enter it, and a lock on the file (`sqlite.rs`) keeps a second server, with a filter of
//! its own, away from it. Keys are never taken out: rows that go away stay "maybe".
//!
//! The bits are set with relaxed atomics. A request that depends on a write (a config load
//! after the sync delivery that added the member was answered) reaches the filter through
//! that answer and a new request, system calls and SQLite's own locks in between, each a
//! full barrier on the machines we run on.

use std::hash::RandomState;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use fastbloom::AtomicBloomFilter;

/// The two sets of keys, kept in one filter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keys {
    /// Reference ids with invites (the SDK's history read).
    Invitees,
    /// Match keys with audience rows (the SDK's memberships read).
    MatchKeys,
}

/// Bits set per key. Seven would be optimal for 10 bits per key (0.8% false "maybe"s);
/// four give 1.2% and touch four memory lines instead of seven per write and read, which
/// the ingest of a million members notices.
const HASHES: u32 = 4;
/// Bits per key at the size the filter is made for: about 1% false "maybe"s.
const BITS_PER_KEY: usize = 10;
/// The smallest filter is made for at least this many keys (8 MiB, 6.7 million keys):
/// enough for a young installation to grow into before a restart sizes it again.
const MIN_KEYS: usize = 4 << 20;
/// The largest filter: 32 MiB, made for 27 million keys. It stays correct beyond, and
/// skips fewer reads.
const MAX_BITS: usize = 1 << 28;

pub(crate) struct KeyFilter {
    filter: AtomicBloomFilter<RandomState>,
    /// How many keys it is made for.
    capacity: usize,
    /// Keys noted that were not in the filter before (roughly the distinct keys).
    added: AtomicUsize,
    /// Whether the log said it is full.
    warned: AtomicBool,
}

impl std::fmt::Debug for KeyFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFilter")
            .field("capacity", &self.capacity)
            .field("added", &self.added)
            .finish_non_exhaustive()
    }
}

impl KeyFilter {
    /// An empty filter sized for twice `keys` (the keys present when the store opens),
    /// within its bounds.
    pub(crate) fn for_keys(keys: usize) -> Self {
        let bits = (keys.saturating_mul(2).max(MIN_KEYS))
            .saturating_mul(BITS_PER_KEY)
            .min(MAX_BITS)
            .next_power_of_two();
        let capacity = bits / BITS_PER_KEY;
        Self {
            filter: AtomicBloomFilter::with_num_bits(bits)
                .hasher(RandomState::new())
                .hashes(HASHES),
            capacity,
            added: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// How many keys it is made for.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Notes that `key` has (or is about to have) rows. Call before the write commits.
    pub(crate) fn note(&self, keys: Keys, key: &str) {
        if self.filter.insert(&(keys as u8, key)) {
            return;
        }
        let added = self.added.fetch_add(1, Ordering::Relaxed) + 1;
        if added > 2 * self.capacity && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                capacity = self.capacity,
                "the SDK's key filter holds twice the keys it was made for; more SDK reads go \
                 to the database until the server restarts (and sizes it again)"
            );
        }
    }

    /// Whether `key` may have rows: `false` is certain.
    pub(crate) fn may_have(&self, keys: Keys, key: &str) -> bool {
        self.filter.contains(&(keys as u8, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_key_is_always_maybe_and_the_rest_mostly_not() {
        let filter = KeyFilter::for_keys(0);
        let noted = 200_000;
        for i in 0..noted {
            filter.note(Keys::Invitees, &format!("ref_{i}"));
        }
        assert!((0..noted).all(|i| filter.may_have(Keys::Invitees, &format!("ref_{i}"))));
        // The same string as another kind of key, and keys never noted.
        let wrong = (0..noted)
            .filter(|i| filter.may_have(Keys::MatchKeys, &format!("ref_{i}")))
            .count()
            + (0..noted)
                .filter(|i| filter.may_have(Keys::Invitees, &format!("stranger_{i}")))
                .count();
        assert!(
            wrong < 2 * noted / 100,
            "{wrong} of {} unnoted keys said maybe",
            2 * noted
        );
    }

    #[test]
    fn its_size_follows_the_keys_present_within_bounds() {
        assert_eq!(KeyFilter::for_keys(0).capacity, (1 << 26) / BITS_PER_KEY);
        assert_eq!(
            KeyFilter::for_keys(5_000_000).capacity,
            (1 << 27) / BITS_PER_KEY
        );
        assert_eq!(
            KeyFilter::for_keys(usize::MAX / 4).capacity,
            MAX_BITS / BITS_PER_KEY
        );
    }
}

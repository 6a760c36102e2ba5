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
//!
//! The filter is a split-block Bloom filter (as Parquet's): a key's bits all fall in one
//! 64-byte block, one bit in each of its eight words, so noting or looking up a key touches
//! one memory line. A classic Bloom filter touches one per bit set: with four bits, noting
//! a first sync's million keys took 8% of the server's CPU; in blocks, with the loads of a
//! few keys overlapped, 4% (`docs/benchmarks.md`).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The two sets of keys, kept in one filter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keys {
    /// Reference ids with invites (the SDK's history read).
    Invitees,
    /// Match keys with audience rows (the SDK's memberships read).
    MatchKeys,
}

/// A block: one memory line of eight words, one bit of each set per key.
#[derive(Default)]
#[repr(align(64))]
struct Block([AtomicU64; 8]);
const BLOCK_BITS: usize = 512;
/// Odd multipliers that pick a key's bit in each word from one 32-bit hash (Parquet's).
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];
/// Bits per key at the size the filter is made for: about 1% false "maybe"s.
const BITS_PER_KEY: usize = 10;
/// The smallest filter is made for at least this many keys (8 MiB, 6.7 million keys):
/// enough for a young installation to grow into before a restart sizes it again.
const MIN_KEYS: usize = 4 << 20;
/// The largest filter: 32 MiB, made for 27 million keys. It stays correct beyond, and
/// skips fewer reads.
const MAX_BITS: usize = 1 << 28;

pub(crate) struct KeyFilter {
    /// A power of two of them.
    blocks: Box<[Block]>,
    hasher: foldhash::quality::RandomState,
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
        Self::with_bits(
            keys.saturating_mul(2)
                .max(MIN_KEYS)
                .saturating_mul(BITS_PER_KEY)
                .min(MAX_BITS),
        )
    }

    /// An empty filter of at least `bits` bits (a power of two of blocks).
    fn with_bits(bits: usize) -> Self {
        let blocks = (bits / BLOCK_BITS).max(1).next_power_of_two();
        Self {
            blocks: (0..blocks).map(|_| Block::default()).collect(),
            hasher: foldhash::quality::RandomState::default(),
            capacity: blocks * BLOCK_BITS / BITS_PER_KEY,
            added: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// How many keys it is made for.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The key's block (its index), and its bit in each of the block's words.
    fn bits(&self, keys: Keys, key: &str) -> (usize, [u64; 8]) {
        let hash = self.hasher.hash_one((keys as u8, key));
        // The low bits pick the block, the high ones the bits in it.
        let block = hash as usize & (self.blocks.len() - 1);
        let high = (hash >> 32) as u32;
        (block, SALT.map(|salt| 1 << (high.wrapping_mul(salt) >> 26)))
    }

    /// Notes that each key has (or is about to have) rows. Call before the write commits.
    pub(crate) fn note<'k>(&self, keys: Keys, each: impl IntoIterator<Item = &'k str>) {
        // A block is rarely in the CPU's cache: a few keys' blocks are read first, so that
        // their loads from memory overlap instead of waiting for one another.
        const AHEAD: usize = 16;
        let mut each = each.into_iter();
        let mut new = 0;
        loop {
            let mut located = [(0, [0; 8]); AHEAD];
            let mut n = 0;
            for key in each.by_ref().take(AHEAD) {
                located[n] = self.bits(keys, key);
                std::hint::black_box(self.blocks[located[n].0].0[0].load(Ordering::Relaxed));
                n += 1;
            }
            if n == 0 {
                break;
            }
            for (block, bits) in &located[..n] {
                let mut seen = true;
                for (word, bit) in self.blocks[*block].0.iter().zip(bits) {
                    seen &= word.fetch_or(*bit, Ordering::Relaxed) & bit != 0;
                }
                new += usize::from(!seen);
            }
        }
        if new == 0 {
            return;
        }
        let added = self.added.fetch_add(new, Ordering::Relaxed) + new;
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
        let (block, bits) = self.bits(keys, key);
        self.blocks[block]
            .0
            .iter()
            .zip(bits)
            .all(|(word, bit)| word.load(Ordering::Relaxed) & bit != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_key_is_always_maybe_and_the_rest_mostly_not() {
        let filter = KeyFilter::for_keys(0);
        let noted = 200_000;
        let refs: Vec<String> = (0..noted).map(|i| format!("ref_{i}")).collect();
        filter.note(Keys::Invitees, refs.iter().map(String::as_str));
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
    fn filled_to_its_capacity_it_says_maybe_wrongly_about_one_time_in_a_hundred() {
        let filter = KeyFilter::with_bits(1 << 20);
        let keys = filter.capacity();
        // One at a time and many at once.
        let distinct: Vec<String> = (0..keys).map(|i| format!("distinct_{i}")).collect();
        filter.note(Keys::MatchKeys, [distinct[0].as_str()]);
        filter.note(Keys::MatchKeys, distinct[1..].iter().map(String::as_str));
        assert!((0..keys).all(|i| filter.may_have(Keys::MatchKeys, &format!("distinct_{i}"))));
        let wrong = (0..keys)
            .filter(|i| filter.may_have(Keys::MatchKeys, &format!("other_{i}")))
            .count();
        assert!(
            wrong < keys * 15 / 1000,
            "{wrong} of {keys} unnoted keys said maybe"
        );
        // Noting counts the keys new to it: all but the few it already said maybe about.
        let added = filter.added.load(Ordering::Relaxed);
        assert!(
            added <= keys && added > keys * 98 / 100,
            "{added} of {keys}"
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

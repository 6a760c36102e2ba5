//! API key and token formats.
//!
//! - Public SDK keys `uj_pk_…` are not secret: they ship inside apps, so they are stored
//!   as they are and may be shown again.
//! - Secret REST keys `uj_live_…`, dashboard session tokens and invitation tokens are
//!   bearer secrets of 238 random bits. Only their SHA-256 is stored: with that much
//!   entropy a fast hash is enough, and a lookup by hash leaks nothing usable in timing.

use rand::{distributions::Alphanumeric, Rng};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub const PUBLIC_KEY_PREFIX: &str = "uj_pk_";
pub const SECRET_KEY_PREFIX: &str = "uj_live_";

/// Characters of randomness in every generated key or token (log2(62) * 40 ≈ 238 bits).
const RANDOM_CHARS: usize = 40;
/// How many characters of a secret key stay visible in listings, prefix included.
const SHOWN_PREFIX_CHARS: usize = SECRET_KEY_PREFIX.len() + 6;

/// What kind of key a bearer token claims to be, judged by its prefix only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Public,
    Secret,
    Unknown,
}

pub fn classify(token: &str) -> KeyKind {
    if token.starts_with(SECRET_KEY_PREFIX) {
        KeyKind::Secret
    } else if token.starts_with(PUBLIC_KEY_PREFIX) {
        KeyKind::Public
    } else {
        KeyKind::Unknown
    }
}

/// Whether `token` has the shape of a public key this server makes: the prefix and 40
/// letters and digits. Nothing else can be one, so it is turned away without a lookup and
/// never tracked per key (a bearer token may be as long as a request's headers).
pub fn is_public_key_shaped(token: &str) -> bool {
    token.strip_prefix(PUBLIC_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// `n` random letters and digits for a code that must not be guessed (an invite's code, a
/// study's public code), without a key's hash.
pub fn random_code(n: usize) -> String {
    random_chars(n)
}

/// Digits of a respondent code's time part: base 36 milliseconds since 1970, enough until
/// the year 5000.
const TIME_DIGITS: usize = 9;

/// An invite's code: the time `at` in milliseconds (9 lower-case base-36 digits, so codes
/// sort by issue time in any collation) and `n` random letters and digits, the part that
/// must not be guessed. Invites issued together have neighbouring codes, so a batch of them
/// adds to one page of the code index instead of one random page each
/// (`docs/benchmarks.md`). The code tells when it was issued, as its invite does.
pub fn time_ordered_code(at: chrono::DateTime<chrono::Utc>, n: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut time = [b'0'; TIME_DIGITS];
    for digit in time.iter_mut().rev() {
        *digit = DIGITS[(millis % 36) as usize];
        millis /= 36;
    }
    let mut code = String::from_utf8(time.to_vec()).expect("ASCII digits");
    code.push_str(&random_chars(n));
    code
}

/// From the thread's CSPRNG (ChaCha, seeded and periodically reseeded from the operating
/// system): the OS generator directly cost a system call per character.
fn random_chars(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Hex SHA-256 of a bearer secret, the form in which it is stored and looked up.
pub fn token_hash(token: &str) -> String {
    bytes_hash(token.as_bytes())
}

/// The SHA-256 of `bytes`, in hex.
pub fn bytes_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn generate_public_key() -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", random_chars(RANDOM_CHARS))
}

/// A freshly minted bearer secret: the value to show once, and what to store.
pub struct NewToken {
    pub token: SecretString,
    pub hash: String,
}

impl NewToken {
    /// A random token with an optional recognisable prefix.
    pub fn generate(prefix: &str) -> Self {
        let token = format!("{prefix}{}", random_chars(RANDOM_CHARS));
        let hash = token_hash(&token);
        Self {
            token: SecretString::from(token),
            hash,
        }
    }
}

/// A new secret REST key: the token (shown once), its stored hash and the prefix that
/// identifies it in listings.
pub struct NewSecretKey {
    pub token: SecretString,
    pub hash: String,
    pub shown_prefix: String,
}

impl NewSecretKey {
    pub fn generate() -> Self {
        let NewToken { token, hash } = NewToken::generate(SECRET_KEY_PREFIX);
        let shown_prefix = token.expose_secret()[..SHOWN_PREFIX_CHARS].to_owned();
        Self {
            token,
            hash,
            shown_prefix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generated_public_keys_are_public_key_shaped() {
        assert!(is_public_key_shaped(&generate_public_key()));
        let secret = NewToken::generate(SECRET_KEY_PREFIX);
        for token in [
            PUBLIC_KEY_PREFIX.to_owned(),
            format!("{PUBLIC_KEY_PREFIX}unknown"),
            format!("{}x", generate_public_key()),
            format!("{PUBLIC_KEY_PREFIX}{}", "é".repeat(20)),
            format!("{PUBLIC_KEY_PREFIX}{}", "-".repeat(RANDOM_CHARS)),
            format!("{PUBLIC_KEY_PREFIX}{}", "a".repeat(100_000)),
            secret.token.expose_secret().to_owned(),
        ] {
            assert!(!is_public_key_shaped(&token), "{token:.60}");
        }
    }

    #[test]
    fn invite_codes_sort_by_issue_time_and_end_random() {
        use chrono::{Duration, TimeZone, Utc};
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 18, 0, 0).unwrap();
        let first = time_ordered_code(at, 16);
        let same_ms = time_ordered_code(at, 16);
        let later = time_ordered_code(at + Duration::milliseconds(1), 16);
        let much_later = time_ordered_code(at + Duration::days(10_000), 16);
        assert_eq!(first.len(), 9 + 16);
        assert!(first.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(
            first[..9],
            same_ms[..9],
            "the same millisecond, the same time part"
        );
        assert_ne!(first[9..], same_ms[9..], "the random part differs");
        assert!(first < later && later < much_later, "codes sort by time");
        let epoch = time_ordered_code(Utc.timestamp_millis_opt(0).unwrap(), 4);
        assert_eq!(&epoch[..9], "000000000");
        let ms = Utc.timestamp_millis_opt(36 * 36 + 36 + 35).unwrap();
        assert_eq!(&time_ordered_code(ms, 4)[..9], "00000011z");
    }

    #[test]
    fn secret_keys_are_prefixed_unique_and_hashed() {
        let a = NewSecretKey::generate();
        let b = NewSecretKey::generate();
        assert!(a.token.expose_secret().starts_with("uj_live_"));
        assert_eq!(a.token.expose_secret().len(), 8 + 40);
        assert_ne!(a.token.expose_secret(), b.token.expose_secret());
        assert_eq!(a.hash, token_hash(a.token.expose_secret()));
        assert_ne!(a.hash, *a.token.expose_secret());
        assert!(a.token.expose_secret().starts_with(&a.shown_prefix));
        assert_eq!(a.shown_prefix.len(), 14);
    }

    #[test]
    fn keys_are_classified_by_prefix() {
        assert_eq!(classify(&generate_public_key()), KeyKind::Public);
        assert_eq!(
            classify(NewSecretKey::generate().token.expose_secret()),
            KeyKind::Secret
        );
        assert_eq!(classify("sk_test_123"), KeyKind::Unknown);
        assert_eq!(classify(""), KeyKind::Unknown);
    }
}

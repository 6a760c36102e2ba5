//! Slows password guessing: after too many failed sign-ins for one email address or from
//! one client address within a window, further attempts are refused until it passes.
//!
//! A browser that signed in to an account before (its device cookie, signed for that
//! account and its current password: `dashboard::session::known_device`) is counted on its
//! own window instead of the address's, and not by its client address: failures sent by
//! anyone else cannot lock its owner out (OWASP's device cookies). A signed-in session giving its current password (a
//! password change) is counted on its account's own window, for the same reason.
//!
//! Kept in memory: each server process counts on its own, which bounds guessing per
//! process. The map is bounded whatever is sent: an email address is kept as a hash (the
//! form takes 16 KiB of it), an IPv6 client by its /64 (what one host is given), expired
//! windows are swept as it grows, and when it is full of live ones a tenth goes: those with
//! the fewest failures, never one at its limit (forgetting it would give its guesser a
//! fresh count). Full of windows at their limit, it refuses new attempts until some expire.
//!
//! The SDK API counts the same way, on a throttle of its own
//! ([`LoginThrottle::for_public_keys`]), the lookups of public keys that turn out to be no
//! project's ([`Attempt::PublicKey`]): each is a database query, and any client can send
//! keys of the right shape without end.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_FAILURES_PER_EMAIL: u32 = 5;
const MAX_FAILURES_PER_CLIENT: u32 = 30;
const MAX_TRACKED: usize = 100_000;

/// A client's lookups of unknown public keys: ten a minute. An app with a wrong or revoked
/// key is refused anyway (and its SDK backs off on 429 as on 401); a client trying keys
/// makes ten queries a minute, not one per request.
const PUBLIC_KEY_WINDOW: Duration = Duration::from_secs(60);
const MAX_UNKNOWN_KEYS_PER_CLIENT: u32 = 10;

/// How long a throttle's windows last, and the failures each allows.
struct Limits {
    window: Duration,
    /// An address's, a device's or an account's own window.
    own: u32,
    client: u32,
}

const SIGN_IN: Limits = Limits {
    window: WINDOW,
    own: MAX_FAILURES_PER_EMAIL,
    client: MAX_FAILURES_PER_CLIENT,
};

struct Window {
    started: Instant,
    failures: u32,
    limit: u32,
}

/// An email address, a device or a client, hashed with this process's random keys.
type Key = u64;

/// Whose password an attempt guesses, as it is counted.
#[derive(Clone, Copy, Debug)]
pub enum Attempt<'a> {
    /// A sign-in for this address from a browser not known to have signed in to it: on the
    /// address's window and the client's.
    Email { email: &'a str, client: IpAddr },
    /// A sign-in from a browser that signed in to the account before with its current
    /// password (its device cookie's nonce): on that device's window alone.
    KnownDevice { device: &'a str },
    /// A signed-in session's current password (a password change): on its account's window
    /// and the client's.
    SignedIn { account: &'a str, client: IpAddr },
    /// A lookup of a public key not found lately, on the SDK's throttle: on the client's
    /// window alone (each key tried is a new one). It counts as unknown until
    /// [`LoginThrottle::succeeded`] (the key is a project's).
    PublicKey { client: IpAddr },
}

pub struct LoginThrottle {
    windows: Mutex<HashMap<Key, Window>>,
    hasher: std::collections::hash_map::RandomState,
    limits: Limits,
}

impl Default for LoginThrottle {
    /// Sign-in's: 5 failures per address (or device, or account) and 30 per client in 15
    /// minutes.
    fn default() -> Self {
        Self::with(SIGN_IN)
    }
}

impl LoginThrottle {
    fn with(limits: Limits) -> Self {
        Self {
            windows: Mutex::default(),
            hasher: Default::default(),
            limits,
        }
    }

    /// The SDK's: 10 lookups of unknown public keys per client a minute. Apart from
    /// sign-in's, so that neither evicts the other's windows.
    pub fn for_public_keys() -> Self {
        Self::with(Limits {
            window: PUBLIC_KEY_WINDOW,
            // None: a lookup counts on its client's window alone.
            own: 0,
            client: MAX_UNKNOWN_KEYS_PER_CLIENT,
        })
    }

    /// The attempt's own window first, then its client's when it is counted by one.
    fn keys(&self, attempt: Attempt<'_>) -> [Option<(Key, u32)>; 2] {
        let (own, client) = match attempt {
            Attempt::Email { email, client } => {
                // As the account is looked up: every spelling that signs in to it counts as
                // one (a domain with fullwidth letters was its own window, five more guesses
                // each), one the compatibility form refuses too, as an account stored before
                // it is found (`jo´e@ｅxample.com` is `jo´e@example.com`: found by the second
                // review).
                let email = match uj_domain::accounts::Email::lookup(email) {
                    Ok(email) => email.as_str().to_owned(),
                    Err(_) => uj_domain::accounts::Email::stored_before_nfkc(email)
                        .unwrap_or_else(|| email.trim().to_lowercase()),
                };
                (Some(format!("email:{email}")), Some(client))
            }
            Attempt::KnownDevice { device } => (Some(format!("device:{device}")), None),
            Attempt::SignedIn { account, client } => {
                (Some(format!("account:{account}")), Some(client))
            }
            Attempt::PublicKey { client } => (None, Some(client)),
        };
        let client = client.map(|client| {
            let client = match client {
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                    let prefix = u128::from(v6) >> 64;
                    format!("client:{prefix:x}::/64")
                }
                IpAddr::V6(v6) => format!("client:{}", v6.to_canonical()),
                IpAddr::V4(v4) => format!("client:{v4}"),
            };
            (self.hasher.hash_one(client), self.limits.client)
        });
        [
            own.map(|own| (self.hasher.hash_one(own), self.limits.own)),
            client,
        ]
    }

    /// Room for new windows: expired ones swept, then up to a tenth of the open ones, fewest
    /// failures first, never one of `keep` (this attempt's); `Err(wait)` when none can go.
    fn make_room(
        windows: &mut HashMap<Key, Window>,
        keep: &[Key],
        window: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        windows.retain(|_, w| now.duration_since(w.started) < window);
        if windows.len() < MAX_TRACKED {
            return Ok(());
        }
        let mut open: Vec<(u32, Instant, Key)> = windows
            .iter()
            .filter(|(key, w)| w.failures < w.limit && !keep.contains(key))
            .map(|(key, w)| (w.failures, w.started, *key))
            .collect();
        let evict = (MAX_TRACKED / 10).min(open.len());
        if evict == 0 {
            let oldest = windows.values().map(|w| w.started).min().unwrap_or(now);
            return Err(window.saturating_sub(now.duration_since(oldest)));
        }
        open.select_nth_unstable(evict - 1);
        for (_, _, key) in &open[..evict] {
            windows.remove(key);
        }
        Ok(())
    }

    /// Counts an attempt, in one step with the check, so attempts sent at once cannot all
    /// pass it: `Err(wait)` (nothing counted) when one of its windows must wait. The attempt
    /// counts as failed until [`Self::succeeded`].
    pub fn attempt(&self, attempt: Attempt<'_>) -> Result<(), Duration> {
        let keys = self.keys(attempt);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (key, limit) in keys.iter().flatten() {
            if let Some(window) = windows.get(key) {
                let elapsed = now.duration_since(window.started);
                if elapsed < self.limits.window && window.failures >= *limit {
                    return Err(self.limits.window - elapsed);
                }
            }
        }
        // Only a new key needs room: an attempt on windows already kept evicts nothing
        // (a flood of them cannot clear the way for its own guesses).
        let new_key = keys
            .iter()
            .flatten()
            .any(|(key, _)| !windows.contains_key(key));
        if windows.len() >= MAX_TRACKED && new_key {
            let keep: Vec<Key> = keys.iter().flatten().map(|(key, _)| *key).collect();
            Self::make_room(&mut windows, &keep, self.limits.window, now)?;
        }
        for (key, limit) in keys.into_iter().flatten() {
            let window = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
                limit,
            });
            if now.duration_since(window.started) >= self.limits.window {
                *window = Window {
                    started: now,
                    failures: 0,
                    limit,
                };
            }
            window.failures += 1;
        }
        Ok(())
    }

    /// [`Self::attempt`], held until it is decided: one the server could not decide (its
    /// database failed) is taken back with [`Counted::undecided`]; one whose request ends
    /// otherwise stays counted (a client cutting its attempts must not get hashes free).
    pub fn count<'a>(&'a self, attempt: Attempt<'a>) -> Result<Counted<'a>, Duration> {
        self.attempt(attempt)?;
        Ok(Counted {
            throttle: self,
            attempt,
        })
    }

    /// The attempt could not be checked (the database did not answer): it decided
    /// nothing, so its counts take it back.
    pub fn undecided(&self, attempt: Attempt<'_>) {
        let keys = self.keys(attempt);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        for (key, _) in keys.into_iter().flatten() {
            if let Some(window) = windows.get_mut(&key) {
                window.failures = window.failures.saturating_sub(1);
            }
        }
    }

    /// The attempt gave the right password (or the key was a project's): its own window is
    /// cleared, and its client's takes the attempt back. (A known device's success leaves the address's window as it
    /// is: clearing it would give whoever filled it a fresh count.)
    pub fn succeeded(&self, attempt: Attempt<'_>) {
        let [own, client] = self.keys(attempt);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((key, _)) = own {
            windows.remove(&key);
        }
        if let Some(window) = client.and_then(|(key, _)| windows.get_mut(&key)) {
            window.failures = window.failures.saturating_sub(1);
        }
    }
}

/// An attempt counted ([`LoginThrottle::count`]): it stays counted unless it succeeded or
/// the server could not decide it.
pub struct Counted<'a> {
    throttle: &'a LoginThrottle,
    attempt: Attempt<'a>,
}

impl Counted<'_> {
    /// The password was wrong: the attempt stays counted.
    pub fn failed(self) {}

    /// The password was right, the key a project's ([`LoginThrottle::succeeded`]).
    pub fn succeeded(self) {
        self.throttle.succeeded(self.attempt);
    }

    /// The server could not decide it (its database failed): taken back.
    pub fn undecided(self) {
        self.throttle.undecided(self.attempt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sign-in for `address` from `client`, as a browser not known to it sends one.
    fn email<'a>(address: &'a str, client: &str) -> Attempt<'a> {
        Attempt::Email {
            email: address,
            client: client.parse().unwrap(),
        }
    }

    /// Attempts the database could not answer (an outage) decide nothing: they are taken
    /// back, so a user who tried during it is not locked out after it.
    #[test]
    fn attempts_that_could_not_be_checked_are_taken_back() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL * 2 {
            assert!(throttle
                .attempt(email("ada@example.com", "1.2.3.4"))
                .is_ok());
            throttle.undecided(email("ada@example.com", "1.2.3.4"));
        }
        assert!(throttle
            .attempt(email("ada@example.com", "1.2.3.4"))
            .is_ok());
    }

    #[test]
    fn an_email_is_locked_after_five_failures_and_others_are_not() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle
                .attempt(email("Ada@Example.com", "1.2.3.4"))
                .is_ok());
        }
        let wait = throttle
            .attempt(email("ada@example.com", "5.6.7.8"))
            .unwrap_err();
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(throttle
            .attempt(email("bob@example.com", "1.2.3.4"))
            .is_ok());
    }

    /// Spellings of one address that sign in to one account share its window: a domain
    /// typed with fullwidth letters or dots (found by the team probe), or in Unicode.
    #[test]
    fn every_spelling_of_an_address_shares_its_window() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle
                .attempt(email("dave@example.com", "1.2.3.4"))
                .is_ok());
        }
        for spelling in ["dave@\u{ff45}xample.com", " DAVE@EXAMPLE\u{3002}COM "] {
            assert!(
                throttle.attempt(email(spelling, "5.6.7.8")).is_err(),
                "{spelling}"
            );
        }
        for spelling in [
            "jo\u{b4}e@\u{ff45}xample.com",
            "JO\u{b4}E@example\u{ff0e}com",
        ] {
            let throttle = LoginThrottle::default();
            for _ in 0..MAX_FAILURES_PER_EMAIL {
                assert!(throttle
                    .attempt(email("jo\u{b4}e@example.com", "1.2.3.4"))
                    .is_ok());
            }
            assert!(
                throttle.attempt(email(spelling, "5.6.7.8")).is_err(),
                "{spelling}"
            );
        }
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle
                .attempt(email("dave@müller.example", "1.2.3.4"))
                .is_ok());
        }
        assert!(throttle
            .attempt(email("dave@xn--mller-kva.example", "5.6.7.8"))
            .is_err());
    }

    #[test]
    fn a_client_is_locked_after_many_failures_across_emails() {
        let throttle = LoginThrottle::default();
        for i in 0..MAX_FAILURES_PER_CLIENT {
            assert!(throttle
                .attempt(email(&format!("user{i}@example.com"), "1.2.3.4"))
                .is_ok());
        }
        assert!(throttle
            .attempt(email("new@example.com", "1.2.3.4"))
            .is_err());
        assert!(throttle
            .attempt(email("new@example.com", "9.9.9.9"))
            .is_ok());
    }

    /// One host is given a whole IPv6 /64: its addresses count as one client.
    #[test]
    fn an_ipv6_client_is_counted_by_its_64_prefix() {
        let throttle = LoginThrottle::default();
        for i in 0..MAX_FAILURES_PER_CLIENT {
            let address = format!("2001:db8:1:2::{i:x}");
            assert!(throttle
                .attempt(email(&format!("u{i}@example.com"), &address))
                .is_ok());
        }
        assert!(throttle
            .attempt(email("new@example.com", "2001:db8:1:2:ffff::1"))
            .is_err());
        assert!(throttle
            .attempt(email("new@example.com", "2001:db8:1:3::1"))
            .is_ok());
    }

    /// Whatever is sent (long "emails", ever new addresses), the map stays bounded, and a
    /// window just opened survives the eviction. (Raw 16 KiB emails were kept, and the map
    /// grew past its bound while its windows were live.)
    #[test]
    fn the_map_stays_bounded_by_count_and_size() {
        let throttle = LoginThrottle::default();
        let long = "a".repeat(300);
        for i in 0..MAX_TRACKED as u32 + 20_000 {
            let _ = throttle.attempt(email(
                &format!("{long}{i}@ex.com"),
                &format!("10.0.{}.{}", i / 256 % 256, i % 256),
            ));
        }
        assert!(throttle.windows.lock().unwrap().len() <= MAX_TRACKED + 1);
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle
                .attempt(email("ada@example.com", "1.2.3.4"))
                .is_ok());
        }
        assert!(throttle
            .attempt(email("ada@example.com", "5.6.7.8"))
            .is_err());
    }

    /// Filling the map with junk does not forget a window at its limit: an email locked
    /// stays locked, so its guesser gets no fresh count. (The oldest windows were evicted,
    /// the ones an attacker opened first.)
    #[test]
    fn junk_attempts_do_not_unlock_a_locked_email() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle
                .attempt(email("victim@example.com", "1.2.3.4"))
                .is_ok());
        }
        for i in 0..MAX_TRACKED as u32 {
            let _ = throttle.attempt(email(
                &format!("junk{i}@ex.com"),
                &format!("10.0.{}.{}", i / 256 % 256, i % 256),
            ));
        }
        assert!(throttle
            .attempt(email("victim@example.com", "9.9.9.9"))
            .is_err());
    }

    /// A browser that signed in to the address before is counted on its own window:
    /// whoever else fills the address's (found by the accounts probe: five wrong passwords
    /// from anywhere refused its owner's correct one for 15 minutes) or its client's does not
    /// lock it out, and its own failures lock it alone.
    #[test]
    fn a_known_device_is_not_locked_by_others_failures() {
        let throttle = LoginThrottle::default();
        for i in 0..MAX_FAILURES_PER_CLIENT {
            let _ = throttle.attempt(email(&format!("u{i}@example.com"), "1.2.3.4"));
        }
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle
                .attempt(email("ada@example.com", "5.6.7.8"))
                .is_ok());
        }
        assert!(throttle
            .attempt(email("ada@example.com", "1.2.3.4"))
            .is_err());
        let device = Attempt::KnownDevice { device: "d1" };
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle.attempt(device).is_ok());
        }
        assert!(throttle.attempt(device).is_err());
        assert!(throttle
            .attempt(Attempt::KnownDevice { device: "d2" })
            .is_ok());
        // Its owner signing in there leaves the address's window to whoever filled it.
        throttle.succeeded(Attempt::KnownDevice { device: "d2" });
        assert!(throttle
            .attempt(email("ada@example.com", "9.9.9.9"))
            .is_err());
    }

    /// A signed-in session checking its current password is counted on its account's
    /// window: an address locked by strangers does not keep its owner from changing it.
    #[test]
    fn a_signed_in_check_has_its_own_window() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle
                .attempt(email("ada@example.com", "5.6.7.8"))
                .is_ok());
        }
        let signed_in = Attempt::SignedIn {
            account: "acc_1",
            client: "1.2.3.4".parse().unwrap(),
        };
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle.attempt(signed_in).is_ok());
        }
        assert!(throttle.attempt(signed_in).is_err());
    }

    /// An attempt the server could not decide is taken back; one whose request just ended
    /// (dropped) stays counted, as a failed one does (a client cutting its sign-ins got
    /// hashes free: found by the second review).
    #[test]
    fn only_an_undecided_attempt_is_taken_back() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL * 2 {
            let counted = throttle.count(email("ada@example.com", "1.2.3.4"));
            counted.unwrap().undecided();
        }
        for _ in 0..MAX_FAILURES_PER_EMAIL - 1 {
            let _ended = throttle.count(email("ada@example.com", "1.2.3.4")).unwrap();
        }
        throttle
            .count(email("ada@example.com", "1.2.3.4"))
            .unwrap()
            .failed();
        assert!(throttle.count(email("ada@example.com", "1.2.3.4")).is_err());
    }

    /// Lookups of unknown public keys: ten a client a minute; one that finds a project's key
    /// is taken back, so an app's own lookups never count.
    #[test]
    fn a_client_gets_ten_unknown_public_keys_a_minute() {
        let throttle = LoginThrottle::for_public_keys();
        let lookup = |client: &str| Attempt::PublicKey {
            client: client.parse().unwrap(),
        };
        for _ in 0..100 {
            throttle.count(lookup("1.2.3.4")).unwrap().succeeded();
        }
        for _ in 0..MAX_UNKNOWN_KEYS_PER_CLIENT {
            throttle.count(lookup("1.2.3.4")).unwrap().failed();
        }
        let Err(wait) = throttle.count(lookup("1.2.3.4")) else {
            panic!("an eleventh unknown key is looked up");
        };
        assert!(wait > Duration::from_secs(55) && wait <= PUBLIC_KEY_WINDOW);
        assert!(throttle.count(lookup("5.6.7.8")).is_ok());
    }

    #[test]
    fn success_clears_the_email_count() {
        let throttle = LoginThrottle::default();
        for _ in 0..4 {
            throttle
                .attempt(email("ada@example.com", "1.2.3.4"))
                .unwrap();
        }
        throttle
            .attempt(email("ada@example.com", "1.2.3.4"))
            .unwrap();
        throttle.succeeded(email("ada@example.com", "1.2.3.4"));
        for _ in 0..4 {
            throttle
                .attempt(email("ada@example.com", "1.2.3.4"))
                .unwrap();
        }
        assert!(throttle
            .attempt(email("ada@example.com", "1.2.3.4"))
            .is_ok());
    }

    /// Attempts sent at once are counted as they are checked: only as many as the limit
    /// get to try a password (checking, then counting after the slow hash, let a burst of
    /// a thousand through).
    #[test]
    fn attempts_at_once_cannot_pass_the_check_together() {
        let throttle = std::sync::Arc::new(LoginThrottle::default());
        let passed: usize = std::thread::scope(|scope| {
            let tries: Vec<_> = (0..8)
                .map(|_| {
                    let throttle = &throttle;
                    scope.spawn(move || {
                        (0..25)
                            .filter(|_| {
                                throttle
                                    .attempt(email("ada@example.com", "1.2.3.4"))
                                    .is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            tries.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert_eq!(passed, MAX_FAILURES_PER_EMAIL as usize);
    }
}

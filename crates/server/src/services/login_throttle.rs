//! Slows password guessing: after too many failed sign-ins for one email address or from
//! one client address within a window, further attempts are refused until it passes.
//!
//! Kept in memory: each server process counts on its own, which bounds guessing per
//! process. The map is bounded whatever is sent: an email address is kept as a hash (the
//! form takes 16 KiB of it), an IPv6 client by its /64 (what one host is given), expired
//! windows are swept as it grows, and when it is full of live ones a tenth goes: those with
//! the fewest failures, never one at its limit (forgetting it would give its guesser a
//! fresh count). Full of windows at their limit, it refuses new attempts until some expire.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_FAILURES_PER_EMAIL: u32 = 5;
const MAX_FAILURES_PER_CLIENT: u32 = 30;
const MAX_TRACKED: usize = 100_000;

struct Window {
    started: Instant,
    failures: u32,
    limit: u32,
}

/// An email address or a client, hashed with this process's random keys.
type Key = u64;

#[derive(Default)]
pub struct LoginThrottle {
    windows: Mutex<HashMap<Key, Window>>,
    hasher: std::collections::hash_map::RandomState,
}

impl LoginThrottle {
    fn keys(&self, email: &str, client: &str) -> [(Key, u32); 2] {
        let client = match client.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let prefix = u128::from(v6) >> 64;
                format!("client:{prefix:x}::/64")
            }
            _ => format!("client:{client}"),
        };
        // As the account is looked up: every spelling that signs in to it counts as one
        // (a domain with fullwidth letters was its own window, five more guesses each).
        let email = match uj_domain::accounts::Email::lookup(email) {
            Ok(email) => email.as_str().to_owned(),
            Err(_) => email.trim().to_lowercase(),
        };
        [
            (
                self.hasher.hash_one(format!("email:{email}")),
                MAX_FAILURES_PER_EMAIL,
            ),
            (self.hasher.hash_one(client), MAX_FAILURES_PER_CLIENT),
        ]
    }

    /// Room for new windows: expired ones swept, then up to a tenth of the open ones, fewest
    /// failures first, never one of `keep` (this attempt's); `Err(wait)` when none can go.
    fn make_room(
        windows: &mut HashMap<Key, Window>,
        keep: &[Key],
        now: Instant,
    ) -> Result<(), Duration> {
        windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
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
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        open.select_nth_unstable(evict - 1);
        for (_, _, key) in &open[..evict] {
            windows.remove(key);
        }
        Ok(())
    }

    /// Counts a sign-in attempt for this email from this client, in one step with the
    /// check, so attempts sent at once cannot all pass it: `Err(wait)` (nothing counted)
    /// when either must wait. The attempt counts as failed until [`Self::succeeded`].
    pub fn attempt(&self, email: &str, client: &str) -> Result<(), Duration> {
        let keys = self.keys(email, client);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (key, limit) in &keys {
            if let Some(window) = windows.get(key) {
                let elapsed = now.duration_since(window.started);
                if elapsed < WINDOW && window.failures >= *limit {
                    return Err(WINDOW - elapsed);
                }
            }
        }
        // Only a new key needs room: an attempt on windows already kept evicts nothing
        // (a flood of them cannot clear the way for its own guesses).
        if windows.len() >= MAX_TRACKED && keys.iter().any(|(key, _)| !windows.contains_key(key)) {
            let keep = [keys[0].0, keys[1].0];
            Self::make_room(&mut windows, &keep, now)?;
        }
        for (key, limit) in keys {
            let fresh = Window {
                started: now,
                failures: 0,
                limit,
            };
            let window = windows.entry(key).or_insert(fresh);
            if now.duration_since(window.started) >= WINDOW {
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

    /// The attempt could not be checked (the database did not answer): it decided
    /// nothing, so both counts take it back.
    pub fn undecided(&self, email: &str, client: &str) {
        let keys = self.keys(email, client);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        for (key, _) in keys {
            if let Some(window) = windows.get_mut(&key) {
                window.failures = window.failures.saturating_sub(1);
            }
        }
    }

    /// The attempt signed in: the email's count is cleared, and the client's takes the
    /// attempt back.
    pub fn succeeded(&self, email: &str, client: &str) {
        let [(email_key, _), (client_key, _)] = self.keys(email, client);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.remove(&email_key);
        if let Some(window) = windows.get_mut(&client_key) {
            window.failures = window.failures.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attempts the database could not answer (an outage) decide nothing: they are taken
    /// back, so a user who tried during it is not locked out after it.
    #[test]
    fn attempts_that_could_not_be_checked_are_taken_back() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL * 2 {
            assert!(throttle.attempt("ada@example.com", "1.2.3.4").is_ok());
            throttle.undecided("ada@example.com", "1.2.3.4");
        }
        assert!(throttle.attempt("ada@example.com", "1.2.3.4").is_ok());
    }

    #[test]
    fn an_email_is_locked_after_five_failures_and_others_are_not() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle.attempt("Ada@Example.com", "1.2.3.4").is_ok());
        }
        let wait = throttle.attempt("ada@example.com", "5.6.7.8").unwrap_err();
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(throttle.attempt("bob@example.com", "1.2.3.4").is_ok());
    }

    /// Spellings of one address that sign in to one account share its window: a domain
    /// typed with fullwidth letters or dots (found by the team probe), or in Unicode.
    #[test]
    fn every_spelling_of_an_address_shares_its_window() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle.attempt("dave@example.com", "1.2.3.4").is_ok());
        }
        for spelling in ["dave@\u{ff45}xample.com", " DAVE@EXAMPLE\u{3002}COM "] {
            assert!(throttle.attempt(spelling, "5.6.7.8").is_err(), "{spelling}");
        }
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle.attempt("dave@müller.example", "1.2.3.4").is_ok());
        }
        assert!(throttle
            .attempt("dave@xn--mller-kva.example", "5.6.7.8")
            .is_err());
    }

    #[test]
    fn a_client_is_locked_after_many_failures_across_emails() {
        let throttle = LoginThrottle::default();
        for i in 0..MAX_FAILURES_PER_CLIENT {
            assert!(throttle
                .attempt(&format!("user{i}@example.com"), "1.2.3.4")
                .is_ok());
        }
        assert!(throttle.attempt("new@example.com", "1.2.3.4").is_err());
        assert!(throttle.attempt("new@example.com", "9.9.9.9").is_ok());
    }

    /// One host is given a whole IPv6 /64: its addresses count as one client.
    #[test]
    fn an_ipv6_client_is_counted_by_its_64_prefix() {
        let throttle = LoginThrottle::default();
        for i in 0..MAX_FAILURES_PER_CLIENT {
            let address = format!("2001:db8:1:2::{i:x}");
            assert!(throttle
                .attempt(&format!("u{i}@example.com"), &address)
                .is_ok());
        }
        assert!(throttle
            .attempt("new@example.com", "2001:db8:1:2:ffff::1")
            .is_err());
        assert!(throttle
            .attempt("new@example.com", "2001:db8:1:3::1")
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
            let _ = throttle.attempt(&format!("{long}{i}@ex.com"), &format!("10.{i}"));
        }
        assert!(throttle.windows.lock().unwrap().len() <= MAX_TRACKED + 1);
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle.attempt("ada@example.com", "1.2.3.4").is_ok());
        }
        assert!(throttle.attempt("ada@example.com", "5.6.7.8").is_err());
    }

    /// Filling the map with junk does not forget a window at its limit: an email locked
    /// stays locked, so its guesser gets no fresh count. (The oldest windows were evicted,
    /// the ones an attacker opened first.)
    #[test]
    fn junk_attempts_do_not_unlock_a_locked_email() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle.attempt("victim@example.com", "1.2.3.4").is_ok());
        }
        for i in 0..MAX_TRACKED as u32 {
            let _ = throttle.attempt(&format!("junk{i}@ex.com"), &format!("10.{i}"));
        }
        assert!(throttle.attempt("victim@example.com", "9.9.9.9").is_err());
    }

    #[test]
    fn success_clears_the_email_count() {
        let throttle = LoginThrottle::default();
        for _ in 0..4 {
            throttle.attempt("ada@example.com", "1.2.3.4").unwrap();
        }
        throttle.attempt("ada@example.com", "1.2.3.4").unwrap();
        throttle.succeeded("ada@example.com", "1.2.3.4");
        for _ in 0..4 {
            throttle.attempt("ada@example.com", "1.2.3.4").unwrap();
        }
        assert!(throttle.attempt("ada@example.com", "1.2.3.4").is_ok());
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
                            .filter(|_| throttle.attempt("ada@example.com", "1.2.3.4").is_ok())
                            .count()
                    })
                })
                .collect();
            tries.into_iter().map(|t| t.join().unwrap()).sum()
        });
        assert_eq!(passed, MAX_FAILURES_PER_EMAIL as usize);
    }
}

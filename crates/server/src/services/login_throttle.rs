//! Slows password guessing: after too many failed sign-ins for one email address or from
//! one client address within a window, further attempts are refused until it passes.
//!
//! Kept in memory: each server process counts on its own, which bounds guessing per
//! process. The map is bounded; expired windows are swept as it grows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_FAILURES_PER_EMAIL: u32 = 5;
const MAX_FAILURES_PER_CLIENT: u32 = 30;
const MAX_TRACKED: usize = 100_000;

struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Default)]
pub struct LoginThrottle {
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginThrottle {
    fn keys(email: &str, client: &str) -> [(String, u32); 2] {
        [
            (
                format!("email:{}", email.trim().to_lowercase()),
                MAX_FAILURES_PER_EMAIL,
            ),
            (format!("client:{client}"), MAX_FAILURES_PER_CLIENT),
        ]
    }

    /// `Err(wait)` when this email or client must wait before trying again.
    pub fn check(&self, email: &str, client: &str) -> Result<(), Duration> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (key, limit) in Self::keys(email, client) {
            if let Some(window) = windows.get(&key) {
                let elapsed = now.duration_since(window.started);
                if elapsed < WINDOW && window.failures >= limit {
                    return Err(WINDOW - elapsed);
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, email: &str, client: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        for (key, _) in Self::keys(email, client) {
            let window = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(window.started) >= WINDOW {
                *window = Window {
                    started: now,
                    failures: 0,
                };
            }
            window.failures += 1;
        }
    }

    /// A successful sign-in clears the email's count (not the client's).
    pub fn record_success(&self, email: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.remove(&format!("email:{}", email.trim().to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_locked_after_five_failures_and_others_are_not() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILURES_PER_EMAIL {
            assert!(throttle.check("ada@example.com", "1.2.3.4").is_ok());
            throttle.record_failure("Ada@Example.com", "1.2.3.4");
        }
        let wait = throttle.check("ada@example.com", "5.6.7.8").unwrap_err();
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(throttle.check("bob@example.com", "1.2.3.4").is_ok());
    }

    #[test]
    fn a_client_is_locked_after_many_failures_across_emails() {
        let throttle = LoginThrottle::default();
        for i in 0..MAX_FAILURES_PER_CLIENT {
            throttle.record_failure(&format!("user{i}@example.com"), "1.2.3.4");
        }
        assert!(throttle.check("new@example.com", "1.2.3.4").is_err());
        assert!(throttle.check("new@example.com", "9.9.9.9").is_ok());
    }

    #[test]
    fn success_clears_the_email_count() {
        let throttle = LoginThrottle::default();
        for _ in 0..4 {
            throttle.record_failure("ada@example.com", "1.2.3.4");
        }
        throttle.record_success("ada@example.com");
        throttle.record_failure("ada@example.com", "1.2.3.4");
        assert!(throttle.check("ada@example.com", "1.2.3.4").is_ok());
    }
}
